/**
 * The plan: plain, versioned data that says which VMs to create and destroy and why.
 * `format_version` changes its major part only with an incompatible change; readers ignore unknown fields.
 * 3.1: paused warm pools (`pool.state` paused, `take.resume`, `return.pause`, `GroupPlan.pool.states`). A 3.0 reader
 * applying such a plan leaves those pool VMs running instead of paused: a pool that costs CPU, nothing broken.
 * Also 3.1: roll-backs (see PLAN_FORMAT_VERSION).
 */
import type { Decision } from "../policies/decision.js";
import type { VmRunState, VmSpec } from "../providers/provider.js";
import type { Instance, TemplateRecord } from "../state/types.js";
import type { TemplateFingerprint } from "./template-fingerprint.js";

/**
 * Major.minor of the plan JSON this release writes. 3.1: roll-backs (`replace_rollback`, `GroupPlan.rollback`,
 * `GroupPlan.template`, and `config`/`start`/`previous` in `GroupPlan.rollout`); a 3.0 reader applies such a plan's
 * changes right and only misses the roll-out records, so the major part stays.
 */
export const PLAN_FORMAT_VERSION = "3.1";

/** Why a change is in the plan (machine-readable). */
export type ActionReason =
  | "scale_out" // desired size above current
  | "scale_in" // desired size below current
  | "replace_missing" // state has it, the host does not: forget it (its volumes are removed) and make a new one
  | "replace_stopped" // the domain is shut off / crashed outside premiscale: remove it and make a new one
  | "orphan" // a domain of ours (same lineage) that state does not know: left by an interrupted apply
  | "interrupted_create" // state records a create that never finished: remove what exists of it and make a new one
  | "interrupted_delete" // state records a delete that never finished: finish it (nothing replaces it)
  | "replace_unhealthy" // no heartbeat for longer than the group allows: remove it and make a new one
  | "replace_drift" // made from a template that has changed since: a roll-out replaces it (create first, then delete)
  | "replace_lifetime" // older than the group's maxInstanceLifetime: replaced the same way
  | "replace_requested" // named by `apply -replace`: replaced the same way, protected or not
  | "replace_rollback" // made from the template of a roll-out that failed: replaced the same way with the previous template
  | "pool_fill" // a VM made for the group's warm pool (booted once, checked in, then stopped, paused or left running)
  | "pool_trim"; // a warm pool VM the pool no longer needs (or that could not be started and waited for)

/** What a group's warm pool VMs do while they wait (`warmPool.state`). */
export type PoolState = "stopped" | "running" | "paused";

/** A VM template as carried in the plan: user-data keeps its `${env:NAME}` placeholders until apply. */
export type PlannedVm = Omit<VmSpec, "userData"> & { userData: string; secretEnv: string[] };

/** What every change says about its VM. */
interface ChangeBase {
  /** `group[name]`. */
  address: string;
  group: string;
  name: string;
  uuid: string;
  host: string;
  reason: ActionReason;
  /** Human reason, e.g. "desired 3 > current 2 (desired: 3 in config)". */
  detail: string;
  /**
   * Addresses of changes of this plan that must succeed first. A create waits for the deletes that free its room (or
   * its static address); a roll-out's delete waits for the create that replaces it (ready first), and its next creates
   * wait for the deletes before them. Apply starts a change once they succeeded, and skips it when one failed.
   */
  waits_for?: string[];
}

/** One change to one VM. */
export type Change =
  | (ChangeBase & {
      action: "create";
      vm: PlannedVm;
      /** Static address assigned from the group's pool. */
      address_v4?: string;
      /**
       * Apply waits this long for the VM to check in; absent when the group does not wait (ready once started).
       * `bootBeacon`: its user-data also posts a beacon on every boot (warm pools: a VM started again says it is up).
       */
      ready?: { timeoutSeconds: number; heartbeatSeconds?: number; bootBeacon?: boolean };
      /**
       * A VM for the group's warm pool, not a member: made and readied like any, then stopped or paused when the
       * pool's state says so; recorded in state as a pool VM. Absent: a member.
       */
      pool?: { state: PoolState };
      /** What it is made from (recorded in state, so a later template change shows as drift). */
      template?: TemplateFingerprint;
      /** The instance (address) this VM replaces in a roll-out; that one is deleted once this one is ready. */
      replaces?: string;
    })
  | (ChangeBase & {
      action: "delete";
      /** True when the domain no longer exists: only leftovers and the state entry are removed. */
      gone: boolean;
      /** A warm pool's VM: it never joined the group, so the group's lifecycle hooks do not run for it. */
      pool?: true;
    })
  | (ChangeBase & {
      /** A warm pool VM joins the group: started if it is not running (and waited for), then the launching hooks run. */
      action: "take";
      /** Start it (startVm): its domain is not running, or its pool keeps VMs paused (a host may report a pause late). */
      start: boolean;
      /** It is paused (or its pool keeps VMs paused): starting it resumes it where it stopped, no boot to wait for. */
      resume?: true;
      /** After starting it, apply waits this long for its boot beacon; absent: ready once started. */
      ready?: { timeoutSeconds: number };
    })
  | (ChangeBase & {
      /** A member goes back to the warm pool instead of being destroyed (reuseOnScaleIn): terminating hooks, then stopped or paused. */
      action: "return";
      /** The pool keeps its VMs stopped: shut it down. */
      stop: boolean;
      /** The pool keeps its VMs paused: pause it. */
      pause?: true;
    });

/** A change to state alone that `apply --refresh-only` records: what is on the hosts, accepted as it is. */
export interface RefreshUpdate {
  /**
   * `forget`: the VM no longer exists (its state entry goes); `mark_stopped`: it was stopped outside premiscale (state
   * records that, and plans leave it alone); `mark_running`: it runs again; `adopt`: a VM of this state's lineage that
   * state did not record (left by an interrupted apply) becomes an instance.
   */
  action: "forget" | "mark_stopped" | "mark_running" | "adopt";
  /** `group[name]`. */
  address: string;
  group: string;
  name: string;
  host: string;
  detail: string;
  /** The instance as state records it afterwards (absent for `forget`). */
  instance?: Instance;
}

/** Objects changed outside premiscale, shown before the plan. */
export interface Drift {
  kind: "missing" | "stopped" | "unhealthy" | "not_in_state" | "foreign_lineage" | "out_of_date" | "expired";
  group: string;
  name: string;
  host: string;
  detail: string;
}

/** A plan that cannot be made at all for a group (e.g. `--target` names no group). Apply refuses a plan with errors. */
export interface PlanError {
  group: string;
  message: string;
}

/**
 * New VMs a group needs that this plan cannot make (no host with room, no free static address): the plan still makes
 * every other change, the group stays below its desired size, and the next plan tries again.
 */
export interface Shortfall {
  group: string;
  /** New VMs the group needed. */
  wanted: number;
  /** How many of them could not be placed. */
  missing: number;
  /** Why, per host or pool. */
  reason: string;
}

/** Per group: where it is and where it is going. */
export interface GroupPlan {
  name: string;
  current: number;
  desired: number;
  /** Why this desired size (from policies). */
  reason: string;
  /** The policy engine's decision with its numbers, for groups with scaling policies; apply records it in history. */
  decision?: Decision;
  /** The group's template roll-out, when this plan replaces out-of-date VMs; apply records how far it got. */
  rollout?: {
    /** Fingerprint id of the template rolled out. */
    template: string;
    /** Out-of-date VMs when the roll-out started, and how many were replaced before this plan. */
    total: number;
    replaced: number;
    /** Replacements in this plan. */
    planned: number;
    /** The checkpoint (percent) this plan reaches, when the group has checkpoints. */
    checkpoint?: number;
    /** Digest of the config template rolled out (planner/template-fingerprint.ts `templateDigest`). */
    config?: string;
    /** This plan begins the roll-out: apply records it (with `previous`) before any change. */
    start?: true;
    /** What a roll-back goes back to if the roll-out's new VMs fail: the group's template record (roll-back on). */
    previous?: TemplateRecord;
  };
  /**
   * The group is rolled back: a roll-out of the config's template failed, and the group runs (and gets new VMs from)
   * the previous template until the config's template changes.
   */
  rollback?: {
    /** Digest of the refused template (the config's) and of the one the group goes back to. */
    from: string;
    to: string;
    /** Why: "roll-out of template sha256:… failed: web[web-1]: …". */
    reason: string;
    /** VMs this plan replaces back; 0 when none is left, or the roll-back stopped. */
    planned: number;
    /** The roll-back's own VMs failed too: it stopped. */
    stopped?: { at: string; message: string };
  };
  /**
   * The group's template record to keep in state once every change of this group in the plan succeeded: every member
   * is then made from it (what a later roll-out that fails goes back to). Absent when nothing is to be recorded.
   */
  template?: TemplateRecord;
  /** The group's warm pool, when it has one (or still has pool VMs). */
  pool?: {
    /** What pool VMs do while they wait. */
    state: PoolState;
    /** Pool VMs the pool should hold (after this plan's takes). */
    size: number;
    /** Pool VMs there are before this plan, usable or not: by name. */
    vms: string[];
    /**
     * Each of those as its host reports it now (`running`, `paused`, `stopped`, `crashed`, `other`), `missing` when
     * its host does not have it, `unknown` when its host was not observed. Absent in 3.0 plans.
     */
    states?: Record<string, VmRunState | "missing" | "unknown">;
    /** Taken into the group, made, returned and removed by this plan. */
    take: number;
    fill: number;
    return: number;
    trim: number;
  };
}

/** The plan. */
export interface Plan {
  format_version: typeof PLAN_FORMAT_VERSION;
  based_on: {
    /** null when no state exists yet (the first apply creates it). */
    lineage: string | null;
    serial: number;
    /** sha256 of the normalised config. */
    config_digest: string;
    /** Commit of the config file's repository, when it is in one. */
    config_commit: string | null;
  };
  /** Lineage new VMs are stamped with (the state's, or a fresh one the first apply will create). */
  lineage: string;
  created_at: string;
  expires_at: string;
  /** Groups the plan was limited to with --target, or null for all. */
  targets: string[] | null;
  drift: Drift[];
  warnings: string[];
  errors: PlanError[];
  /** Groups left below their desired size by this plan (format 1.1; read as none from a 1.0 plan). */
  shortfalls: Shortfall[];
  groups: GroupPlan[];
  changes: Change[];
  /** Creates (pool VMs included), takes and returns, deletes. */
  summary: { add: number; change: number; destroy: number };
  /**
   * `refresh-only` (`plan --refresh-only`): no change to any VM; applying it records `refresh` in state. Absent: a
   * normal plan.
   */
  mode?: "refresh-only";
  /** What a refresh-only plan records in state. */
  refresh?: RefreshUpdate[];
}
