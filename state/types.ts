/** The git-tracked state: what premiscale believes it owns. */
import type { VmTemplate } from "../config/types.js";

/** The only state format version this release reads and writes. */
export const STATE_VERSION = 1;

/** One VM premiscale created. */
export interface Instance {
  /** Domain name, `<group>-<8 hex>`. */
  name: string;
  /** Domain UUID and instance id. */
  uuid: string;
  host: string;
  /** ISO-8601 time the create step was planned. */
  created: string;
  /**
   * `creating` is written before the first host call of a create (so a crash part-way leaves a record the next
   * plan cleans up); `running` once the VM is created and started (and, when the group waits for readiness, has
   * checked in); `deleting` is written before the first host call of a destroy, so a destroy cut short is finished
   * by the next apply instead of being mistaken for a VM that vanished (and replaced).
   */
  status: "creating" | "running" | "deleting";
  /** Static IPv4 address when the group uses a static pool. */
  address?: string;
  /** vCPUs and memory it was created with (what deleting it gives back to its host); absent in older state. */
  vcpus?: number;
  memoryMiB?: number;
  /** What it was made from (planner/template-fingerprint.ts): a changed template shows as drift. Absent in older state. */
  template?: Record<string, string | number | boolean>;
  /** Scale-in protection: never chosen by scale-in or by lifetime replacement, only by an explicit `-replace`. */
  protected?: boolean;
  /**
   * `warm`: the VM waits in its group's warm pool, outside the group (never a member for sizing, metrics or scale-in),
   * stopped, running or paused as the pool says, until a scale-out takes it. Absent: a member.
   */
  pool?: "warm";
  /**
   * How apply left a warm pool VM to wait (the pool's state when it was made or returned): `state list` shows it.
   * Absent in older state, and for members.
   */
  poolState?: "stopped" | "running" | "paused";
  /**
   * When a warm pool VM joined the group (taken by a scale-out): heartbeats are judged from then on, since a VM that
   * waited paused last beat before its pause. Absent: made as a member.
   */
  joined?: string;
  /**
   * Its user-data posts a boot beacon on every boot (groups with a warm pool get one), so after starting it again apply
   * can wait until it is up; cloud-init's phone_home runs on the first boot only.
   */
  bootBeacon?: boolean;
  /**
   * Found stopped (or crashed) outside premiscale and accepted into state by `apply --refresh-only`: plans leave it
   * alone (not counted, not replaced) until it runs again or `apply --replace` names it.
   */
  stopped?: { at: string; state: "stopped" | "crashed" };
}

/** The instances of a group that are members (not waiting in its warm pool). */
export function membersOf(group: Pick<GroupState, "instances"> | undefined): Instance[] {
  return (group?.instances ?? []).filter((i) => i.pool !== "warm");
}

/** A recommendation (the maximum over the policies, before stabilisation) at a time (ISO 8601). */
export interface Recommendation {
  at: string;
  desired: number;
}

/** Something that happened to a group: VMs added or deleted, or an error (a failed apply). */
export type ScaleEvent =
  | { at: string; kind: "add" | "delete"; count: number }
  | { at: string; kind: "error"; message: string };

/**
 * What the windows and delays of one group need to remember: plain JSON, kept in git-tracked state, oldest first.
 * Only policies/history.ts (`emptyHistory`, `recordDecision`, `recordEvent`) should make new ones.
 */
export interface History {
  recommendations: Recommendation[];
  events: ScaleEvent[];
}

/** A group's slice of state; stored as its own file so changing one group leaves the others untouched. */
export interface GroupState {
  name: string;
  /** Sorted by name. */
  instances: Instance[];
  /**
   * What the group's scaling policies need to remember across runs (recommendations and scale events), for
   * stabilisation windows, cooldowns and delays; absent for groups without policies.
   */
  history?: History;
  /** The group's template roll-out, while one is under way or after one failed (planner/compute-plan.ts). */
  rollout?: RolloutState;
  /**
   * The template every member was made from when the group last settled (none out of date): what a roll-out that
   * fails goes back to. Absent in state written before roll-backs, and for a group that never settled.
   */
  template?: TemplateRecord;
}

/**
 * A group's template as its config wrote it (normalised), kept whole so that VMs can be made from it again after the
 * config moved on: user-data keeps its `${env:NAME}` placeholders (never a secret).
 */
export interface TemplateRecord extends VmTemplate {
  /** `sha256:…` of the template (planner/template-fingerprint.ts `templateDigest`): the same whatever the hosts say. */
  digest: string;
}

/** Where a roll-out to a new template stands. */
export interface RolloutState {
  /** The fingerprint id of the template being rolled out. */
  template: string;
  /** Out-of-date instances when it started (checkpoints are percentages of this). */
  total: number;
  /** Replaced so far. */
  replaced: number;
  /** When the last checkpoint was reached (the next batch waits the pause from here). */
  checkpointAt?: string;
  /** Set when new VMs of the roll-out did not become ready: it stops (the old ones stay) until the template changes. */
  failed?: { at: string; message: string };
  /** Digest of the config template rolled out (`TemplateRecord.digest`). Absent in state written before roll-backs. */
  config?: string;
  /**
   * The group's template record when the roll-out started: what a roll-back goes back to. Absent when roll-back is
   * off, or no record differed from the new template.
   */
  previous?: TemplateRecord;
  /**
   * The roll-out failed and the group goes back to `previous`: when, and why (plans show it). `failed`: a VM of the
   * roll-back did not come up either, so it stopped too.
   */
  rollback?: { at: string; reason: string; failed?: { at: string; message: string } };
}

/** The whole state as read. */
export interface State {
  version: typeof STATE_VERSION;
  /** Set once when the state is created; never changes. */
  lineage: string;
  /** Raised by one on every write. */
  serial: number;
  /** Sorted by name. */
  groups: GroupState[];
}
