import type { Config, GroupConfig } from "../config/types.js";
import type { Member } from "../policies/aggregate.js";
import type { Decision } from "../policies/decision.js";
import type { HostObservation, OwnedVm, VmNetwork } from "../providers/provider.js";
import type { Instance, RolloutState, State, TemplateRecord } from "../state/types.js";
import { freeAddresses } from "./new-vm.js";
import { addUse, assessHost, NO_USE, type HostUse } from "./placement/capacity.js";
import { placementStrategies } from "./placement/index.js";
import type { HostRoom } from "./placement/types.js";
import {
  PLAN_FORMAT_VERSION,
  type ActionReason,
  type Change,
  type Drift,
  type GroupPlan,
  type Plan,
  type PlanError,
  type PoolState,
  type Shortfall,
} from "./plan.js";
import { seededRng } from "./random.js";
import { effectiveGroup, previousFitKey, rolledBackTo, templateRecord } from "./rollback.js";
import { fingerprintChanges, fingerprintId, templateDigest, templateFingerprint, type TemplateFingerprint } from "./template-fingerprint.js";

/** Everything `computePlan` needs; the clock, UUIDs and the random seed come in here so planning is pure. */
export interface PlanInput {
  config: Config;
  configDigest: string;
  configCommit: string | null;
  /** null = no state yet. */
  state: State | null;
  /** One per config host that was observed. */
  observations: HostObservation[];
  /**
   * Decides a group's size (and, when a source knows, which instances go first or must stay), given its present
   * members: the instances the plan counts. Pure, like the planner: metrics, history and external targets were gathered
   * before (see policies/decision.ts `decideWith`). Undefined: no source decided the group (a plan error).
   */
  decide: (group: GroupConfig, members: Member[]) => Decision | undefined;
  /**
   * When each instance (by name) was last heard from (heartbeat or check-in), for groups with heartbeats; null:
   * never. Absent: heartbeats are not known to this planning run, so nothing is judged unhealthy.
   */
  lastSeen?: ReadonlyMap<string, string | null>;
  now: Date;
  /** Lineage stamped on new VMs when there is no state yet. */
  newLineage: string;
  /** Source of instance UUIDs. */
  newUuid: () => string;
  /** Plan lifetime. @default 3600 */
  ttlSeconds?: number;
  /**
   * `apply -replace`: instances (`group[name]`) or whole groups (`group`) to replace through the roll-out path now,
   * whatever the strategy, their age or their protection.
   */
  replace?: string[];
  /** `--target` groups; the others are left untouched. null or absent = all groups. */
  targets?: string[] | null;
  /** Seed of the random placement strategy. @default the plan's lineage */
  seed?: string;
}

type Delete = Extract<Change, { action: "delete" }>;
type Create = Extract<Change, { action: "create" }>;

/** Mutable accumulators shared by the per-group steps of one `computePlan` call. */
interface Work {
  input: PlanInput;
  lineage: string;
  observations: Map<string, HostObservation>;
  /** Resources given to new VMs per host, across groups. */
  used: Map<string, HostUse>;
  /** Instance and domain names that exist or are planned, so new names never collide. */
  takenNames: Set<string>;
  /** What this plan's deletes give back per host (vCPUs and memory of running VMs), and which deletes do. */
  freed: Map<string, HostUse & { by: string[] }>;
  /** Static addresses this plan's deletes give back, per group. */
  freedAddresses: Map<string, { address: string; by: string }[]>;
  /** Scale-outs wait until every group's deletes are known, so each can use what any delete frees. */
  scaleOuts: ScaleOut[];
  /** Placement rounds per group so far (each draws its own random numbers). */
  placements: Map<string, number>;
  /** Roll-outs wait until every scale-out is placed: they use only the room that is left. */
  rollouts: RollOut[];
  /** Warm pools are refilled last, with the room scale-outs and roll-outs left. */
  poolFills: PoolFill[];
  /** Each group's template as made on each host (`group\0host`), or null where it does not fit. */
  fingerprints: Map<string, TemplateFingerprint | null>;
  /** Groups whose roll-out failed and is rolled back, by name. */
  rollbacks: Map<string, Rollback>;
  /** Groups that may settle on their template with this plan: checked once every change is known. */
  settles: { group: GroupConfig; plan: GroupPlan }[];
  drift: Drift[];
  warnings: string[];
  errors: PlanError[];
  shortfalls: Shortfall[];
  changes: Change[];
}

/** One out-of-date instance and why it is replaced. */
interface Stale {
  instance: Instance;
  reason: "replace_drift" | "replace_lifetime" | "replace_requested" | "replace_rollback";
  why: string;
}

/**
 * A group whose roll-out of the config's template failed and was rolled back (state `rollout.rollback`): the plan
 * makes its VMs from `previous`, unless `--replace GROUP` asks for the config's template once more (`retry`).
 */
interface Rollback {
  record: RolloutState;
  previous: TemplateRecord;
  retry: boolean;
}

/** A group's replacements this plan, in order, with its surge and unavailability limits. */
interface RollOut {
  group: GroupConfig;
  instances: Instance[];
  present: Instance[];
  stale: Stale[];
  surge: number;
  unavailable: number;
}

/** New VMs for a group's warm pool, placed after everything else. */
interface PoolFill {
  group: GroupConfig;
  instances: Instance[];
  present: Instance[];
  count: number;
  size: number;
}

/** A group's new VMs, decided in the first pass and placed in the second. */
interface ScaleOut {
  group: GroupConfig;
  instances: Instance[];
  present: Instance[];
  count: number;
  replaced: { name: string; reason: ActionReason }[];
  detail: string;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
const time = (iso: string): number => Date.parse(iso) || 0;
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Diffs what the decisions want against what state and the hosts say, and returns the plan: which VMs to
 * delete and create, where, and why. Pure: the same input always gives the same plan.
 */
export function computePlan(given: PlanInput): Plan {
  const { input, rollbacks } = withRollbacks(given);
  const { config, state, now } = input;
  const lineage = state?.lineage ?? input.newLineage;
  const targets = input.targets ?? null;
  const w: Work = {
    input,
    lineage,
    observations: new Map(input.observations.map((o) => [o.host, o])),
    used: new Map(),
    takenNames: new Set(),
    freed: new Map(),
    freedAddresses: new Map(),
    scaleOuts: [],
    placements: new Map(),
    rollouts: [],
    poolFills: [],
    fingerprints: new Map(),
    rollbacks,
    settles: [],
    drift: [],
    warnings: [],
    errors: [],
    shortfalls: [],
    changes: [],
  };
  const configGroups = new Set(config.groups.map((g) => g.name));
  const inScope = (group: string): boolean => targets === null || targets.includes(group);

  if (targets !== null) {
    for (const t of targets.filter((t) => !configGroups.has(t)))
      w.errors.push({ group: t, message: `--target names no group in config (groups: ${[...configGroups].join(", ")})` });
    w.warnings.push(`--target is in effect: only groups ${targets.join(", ")} are planned; the others may have drifted`);
  }

  const known = new Set(state?.groups.flatMap((g) => g.instances.map((i) => i.name)) ?? []);
  for (const name of known) w.takenNames.add(name);
  for (const obs of input.observations) if (obs.status === "ok") for (const d of obs.vms) w.takenNames.add(d.name);

  for (const g of state?.groups ?? [])
    if (!configGroups.has(g.name) && targets === null && g.instances.length > 0)
      w.warnings.push(`group "${g.name}" is in state (${plural(g.instances.length, "instance")}) but not in config: left untouched`);

  for (const obs of input.observations) {
    if (obs.status !== "ok") continue;
    for (const d of obs.vms) {
      if (known.has(d.name) || !inScope(d.group) || config.groups.some((g) => g.name === d.group && g.suspend)) continue;
      const at = { group: d.group, name: d.name, host: obs.host };
      if (d.lineage !== lineage) {
        // Another premiscale's VMs on a shared host are none of this plan's business, unless they claim a group of this
        // config: then two states manage one group name, which deserves a warning.
        if (!configGroups.has(d.group)) continue;
        w.drift.push({ kind: "foreign_lineage", ...at, detail: `belongs to another premiscale state (lineage ${d.lineage}): left untouched` });
        w.warnings.push(`domain ${d.name} on host ${obs.host} belongs to state lineage ${d.lineage}, not ${lineage}: left untouched`);
      } else if (!configGroups.has(d.group)) {
        w.drift.push({ kind: "not_in_state", ...at, detail: `is not in state and its group is not in config: left untouched` });
      } else {
        w.drift.push({ kind: "not_in_state", ...at, detail: "is not in state (left by an interrupted apply?)" });
        const group = config.groups.find((g) => g.name === d.group);
        planDelete(w, at, d.uuid, "orphan", "not in state: left by an interrupted apply", { gone: false, domain: d, group });
      }
    }
  }

  const groups: GroupPlan[] = config.groups.filter((g) => inScope(g.name)).map((g) => planGroup(w, g));
  for (const request of w.scaleOuts) scaleOut(w, request);
  for (const request of w.rollouts) rollOut(w, request);
  for (const request of w.poolFills) fillPool(w, request);
  for (const { group, plan } of w.settles) settle(w, group, plan);

  const groupOrder = (g: string): number => {
    const i = config.groups.findIndex((c) => c.name === g);
    return i < 0 ? config.groups.length : i;
  };
  // Deletes first (they free room), then pool moves, then the group's new VMs, and the pool's refills last.
  const actionOrder = (c: Change): number => (c.action === "delete" ? 0 : c.action === "return" ? 1 : c.action === "take" ? 2 : c.pool ? 4 : 3);
  w.changes.sort((a, b) => groupOrder(a.group) - groupOrder(b.group) || actionOrder(a) - actionOrder(b) || byName(a.name, b.name));
  w.drift.sort((a, b) => groupOrder(a.group) - groupOrder(b.group) || byName(a.name, b.name));

  const creates = w.changes.filter((c) => c.action === "create").length;
  const deletes = w.changes.filter((c) => c.action === "delete").length;
  return {
    format_version: PLAN_FORMAT_VERSION,
    based_on: {
      lineage: state?.lineage ?? null,
      serial: state?.serial ?? 0,
      config_digest: input.configDigest,
      config_commit: input.configCommit,
    },
    lineage,
    created_at: now.toISOString(),
    expires_at: new Date(now.getTime() + (input.ttlSeconds ?? 3600) * 1000).toISOString(),
    targets,
    drift: w.drift,
    warnings: w.warnings,
    errors: w.errors,
    shortfalls: w.shortfalls,
    groups,
    changes: w.changes,
    summary: { add: creates, change: w.changes.length - creates - deletes, destroy: deletes },
  };
}

/**
 * The input as plans see it while groups are rolled back: such a group's config names its previous template, and the
 * hosts' fit for it is the one they gave for the previous template (`previousFitKey`). Other groups are untouched.
 */
function withRollbacks(input: PlanInput): { input: PlanInput; rollbacks: Map<string, Rollback> } {
  const rollbacks = new Map<string, Rollback>();
  let observations = input.observations;
  const groups = input.config.groups.map((g) => {
    const record = input.state?.groups.find((x) => x.name === g.name)?.rollout;
    const previous = rolledBackTo(g, input.state?.groups.find((x) => x.name === g.name));
    if (!previous || !record) return g;
    const retry = (input.replace ?? []).includes(g.name);
    rollbacks.set(g.name, { record, previous, retry });
    if (retry) return g;
    const key = previousFitKey(g.name);
    observations = observations.map((o) =>
      o.status === "ok" && g.hosts.includes(o.host)
        ? { ...o, fits: { ...o.fits, [g.name]: o.fits[key] ?? { ok: false, reason: "not asked about the group's previous template" } } }
        : o,
    );
    return effectiveGroup(g, previous);
  });
  if (rollbacks.size === 0) return { input, rollbacks };
  return { input: { ...input, config: { ...input.config, groups }, observations }, rollbacks };
}

/**
 * Proposes the group's template record (`GroupPlan.template`) when, once this plan's changes succeed, every member it
 * keeps is made from the group's template as made on its host: none out of date, none on a host not checked, none
 * from before fingerprints. Only when state's record differs, or a roll-out record is left to end.
 */
function settle(w: Work, group: GroupConfig, plan: GroupPlan): void {
  const gs = w.input.state?.groups.find((g) => g.name === group.name);
  const leaving = new Set(w.changes.filter((c) => c.group === group.name && (c.action === "delete" || c.action === "return")).map((c) => c.name));
  const members = (gs?.instances ?? []).filter((i) => i.pool !== "warm" && !leaving.has(i.name));
  const upToDate = members.every((i) => {
    const target = templateOn(w, group, i.host);
    return i.template !== undefined && target !== undefined && fingerprintChanges(i.template, target).length === 0;
  });
  if (!upToDate) return;
  if (gs?.template?.digest === templateDigest(group.template) && !gs.rollout) return;
  plan.template = templateRecord(group.template);
}

/**
 * Adds a delete to the plan and books what it gives back: the vCPUs and memory of a VM whose domain runs (the
 * instance's recorded size, else the group's template), and its static address, for creates that may wait for it.
 */
function planDelete(
  w: Work,
  at: { group: string; name: string; host: string },
  uuid: string,
  reason: ActionReason,
  detail: string,
  what: { gone: boolean; domain?: OwnedVm; instance?: Instance; group?: GroupConfig; waits?: string[] },
): Delete {
  const change: Delete = {
    action: "delete",
    address: `${at.group}[${at.name}]`,
    ...at,
    uuid,
    reason,
    detail,
    gone: what.gone,
    ...(what.instance?.pool === "warm" ? { pool: true as const } : {}),
    ...(what.waits?.length ? { waits_for: [...new Set(what.waits)].sort(byName) } : {}),
  };
  w.changes.push(change);
  const holds = what.domain && (what.domain.state === "running" || what.domain.state === "paused");
  const vcpus = holds ? (what.instance?.vcpus ?? what.group?.template.vcpus ?? 0) : 0;
  const memoryMiB = holds ? (what.instance?.memoryMiB ?? what.group?.template.memoryMiB ?? 0) : 0;
  if (vcpus > 0 || memoryMiB > 0) {
    const f = w.freed.get(at.host) ?? { ...NO_USE, by: [] };
    w.freed.set(at.host, { ...addUse(f, { memoryMiB, vcpus, resources: {} }), by: [...f.by, change.address] });
  }
  if (what.instance?.address) {
    const list = w.freedAddresses.get(at.group) ?? [];
    w.freedAddresses.set(at.group, [...list, { address: what.instance.address, by: change.address }]);
  }
  return change;
}

/**
 * Heartbeats: a running VM not heard from for `unhealthyAfterSeconds` (counted from its creation when it never was)
 * is replaced, like an ASG health check. Guard rails, because a silent heartbeat path looks like dead VMs: nothing is
 * judged when no member of the group was ever heard from (the heartbeats are not reaching premiscale at all), and
 * at most a quarter of the group (at least one) is replaced per plan.
 */
function replaceUnhealthy(w: Work, group: GroupConfig, present: Instance[], healthy: Instance[], replaced: { name: string; reason: ActionReason }[]): void {
  const seen = w.input.lastSeen;
  const { heartbeatSeconds, unhealthyAfterSeconds } = group.readiness;
  if (!seen || heartbeatSeconds <= 0 || healthy.length === 0) return;
  if (healthy.every((i) => (seen.get(i.name) ?? null) === null)) {
    w.warnings.push(`group ${group.name}: no member has ever sent a heartbeat; is the check-in server (premiscale serve) running and reachable? No VM is judged unhealthy`);
    return;
  }
  const now = w.input.now.getTime();
  // Silence counts from the later of the last beat and the VM joining the group: a VM taken from a paused pool last
  // beat before its pause, however long ago, and beats again only once it runs.
  const silent = healthy
    .map((i) => ({ i, since: Math.max(time(seen.get(i.name) ?? i.created), i.joined ? time(i.joined) : 0) }))
    .filter((x) => now - x.since > unhealthyAfterSeconds * 1000)
    .sort((a, b) => a.since - b.since || byName(a.i.name, b.i.name));
  const cap = Math.max(1, Math.floor(present.length / 4));
  if (silent.length > cap) w.warnings.push(`group ${group.name}: ${silent.length} VMs are unhealthy; replacing ${cap} now (a quarter of the group per plan)`);
  for (const { i, since } of silent.slice(0, cap)) {
    const at = { group: group.name, name: i.name, host: i.host };
    const ago = Math.round((now - since) / 1000);
    w.drift.push({ kind: "unhealthy", ...at, detail: `not heard from for ${ago}s (heartbeat every ${heartbeatSeconds}s, unhealthy after ${unhealthyAfterSeconds}s)` });
    planDelete(w, at, i.uuid, "replace_unhealthy", `no heartbeat for ${ago}s: remove it`, { gone: false, domain: domainOf(w, i), instance: i, group });
    replaced.push({ name: i.name, reason: "replace_unhealthy" });
    present.splice(present.indexOf(i), 1);
    healthy.splice(healthy.indexOf(i), 1);
  }
}

/** Checks one group's instances against the hosts, then scales it in or out to its decided size. */
function planGroup(w: Work, group: GroupConfig): GroupPlan {
  const all = w.input.state?.groups.find((g) => g.name === group.name)?.instances ?? [];
  const instances = all.filter((i) => i.pool !== "warm");
  const pooled = all.filter((i) => i.pool === "warm");
  if (group.suspend) {
    // Nothing of it is touched, not even leftovers of an interrupted apply: that waits until it is resumed.
    w.warnings.push(`group ${group.name} is suspended (suspend: true): left as it is`);
    return { name: group.name, current: instances.length, desired: instances.length, reason: "suspended" };
  }
  const requested = (i: Instance) => (w.input.replace ?? []).some((r) => r === group.name || r === `${group.name}[${i.name}]`);
  const present: Instance[] = [];
  const healthy: Instance[] = [];
  const replaced: { name: string; reason: ActionReason }[] = [];
  const unchecked = new Map<string, number>();

  for (const inst of instances) {
    const obs = w.observations.get(inst.host);
    const at = { group: group.name, name: inst.name, host: inst.host };
    if (obs?.status !== "ok") {
      // Never act on what we cannot see: it counts as present and is not a scale-in candidate.
      present.push(inst);
      unchecked.set(inst.host, (unchecked.get(inst.host) ?? 0) + 1);
      continue;
    }
    const domain = obs.vms.find((d) => d.name === inst.name);
    if (inst.status === "creating") {
      // The apply that started it died before it finished: whatever exists of it may be incomplete.
      w.warnings.push(`${group.name}[${inst.name}] on host ${inst.host} was left half-created by an interrupted apply: it is removed and replaced`);
      planDelete(w, at, inst.uuid, "interrupted_create", "create never finished: remove what exists of it", { gone: !domain, domain, instance: inst, group });
      replaced.push({ name: inst.name, reason: "interrupted_create" });
    } else if (inst.status === "deleting") {
      // A destroy was cut short: finish it. It was meant to go, so it is neither counted nor replaced.
      w.warnings.push(`${group.name}[${inst.name}] on host ${inst.host} was left half-deleted by an interrupted apply: its removal is finished`);
      planDelete(w, at, inst.uuid, "interrupted_delete", "delete never finished: finish removing it", { gone: !domain, domain, instance: inst, group });
    } else if (!domain) {
      w.drift.push({ kind: "missing", ...at, detail: "no longer exists on the host" });
      planDelete(w, at, inst.uuid, "replace_missing", "domain no longer exists: forget it and remove its volumes", { gone: true, instance: inst, group });
      replaced.push({ name: inst.name, reason: "replace_missing" });
    } else if ((domain.state === "stopped" || domain.state === "crashed") && inst.stopped) {
      // Accepted as stopped by apply --refresh-only: someone stopped it on purpose. Left alone and not counted.
      if (requested(inst)) planDelete(w, at, inst.uuid, "replace_requested", `${domain.state} (accepted by refresh-only) and named by apply -replace: remove it`, { gone: false, domain, instance: inst, group });
      else w.warnings.push(`${group.name}[${inst.name}] on host ${inst.host} is ${domain.state} (accepted by apply --refresh-only at ${inst.stopped.at}): left alone and not counted; start it again, or premiscale apply --replace ${group.name}[${inst.name}] removes it`);
    } else if (domain.state === "stopped" || domain.state === "crashed") {
      w.drift.push({ kind: "stopped", ...at, detail: `is ${domain.state}` });
      planDelete(w, at, inst.uuid, "replace_stopped", `domain is ${domain.state}: remove it`, { gone: false, domain, instance: inst, group });
      replaced.push({ name: inst.name, reason: "replace_stopped" });
    } else {
      present.push(inst);
      healthy.push(inst);
    }
  }
  replaceUnhealthy(w, group, present, healthy, replaced);
  for (const [host, n] of unchecked)
    w.warnings.push(
      `host ${host} ${w.observations.has(host) ? "unreachable" : "not observed"}: ${plural(n, "instance")} of group ${group.name} not checked`,
    );

  const decision = w.input.decide(group, present.map((i) => ({ name: i.name, createdAt: i.created, ready: healthy.includes(i) })));
  if (!decision) {
    w.errors.push({ group: group.name, message: "no desired size was decided for this group" });
    return { name: group.name, current: present.length, desired: present.length, reason: "no decision" };
  }
  const named = present.filter((i) => decision.removeNow?.includes(i.name));
  for (const victim of named) {
    const at = { group: group.name, name: victim.name, host: victim.host };
    planDelete(w, at, victim.uuid, "scale_in", `named by ${decision.source ?? "its decision"} (${decision.reason})`, { gone: false, domain: domainOf(w, victim), instance: victim, group });
    present.splice(present.indexOf(victim), 1);
    if (healthy.includes(victim)) healthy.splice(healthy.indexOf(victim), 1);
  }
  const current = present.length;
  const desired = Math.min(group.max, Math.max(group.min, decision.desired));
  if (desired !== decision.desired)
    w.warnings.push(`group ${group.name}: decided size ${decision.desired} is outside min ${group.min} / max ${group.max}: using ${desired}`);
  const plan: GroupPlan = { name: group.name, current: current + named.length, desired, reason: decision.reason, ...(decision.details ? { decision } : {}) };

  const stale = staleInstances(w, group, healthy, instances, plan);
  const rolledBack = w.rollbacks.get(group.name);
  if (!rolledBack || rolledBack.retry) w.settles.push({ group, plan });
  const why = `desired ${desired} ${desired < current ? "<" : ">"} current ${current} (${decision.reason})`;
  const pool = checkPool(w, group, pooled, requested);
  const size = poolSize(group, desired);
  let returned = 0;
  let removed: Instance[] = [];
  if (desired < current) {
    // reuseOnScaleIn: victims go back to the pool while it has room, if they are up to date and can be waited for later.
    let room = size - pool.usable.length - pool.unchecked;
    const outdated = new Set(stale.map((s) => s.instance.name));
    const mayReturn = (v: Instance): boolean => {
      const wp = group.warmPool;
      if (!wp?.reuseOnScaleIn || room <= 0 || outdated.has(v.name)) return false;
      if (wp.state === "stopped" && group.readiness.checkIn && !v.bootBeacon) return false;
      room--;
      returned++;
      return true;
    };
    removed = scaleIn(w, group, present, healthy, current - desired, why, decision, stale, mayReturn);
  }
  let taken = 0;
  if (desired > current) {
    // The pool's VMs first: they are made and booted already.
    const takes = pool.usable.slice(0, desired - current);
    takes.forEach((p, i) => {
      const r = replaced[i];
      w.changes.push(takeChange(w, group, p, r?.reason ?? "scale_out", r ? `replaces ${r.name}` : why));
    });
    taken = takes.length;
    if (desired - current > taken) w.scaleOuts.push({ group, instances: all, present, count: desired - current - taken, replaced: replaced.slice(taken), detail: why });
  }
  const kept = pool.usable.slice(taken);
  let trimmed = 0;
  const have = kept.length + pool.unchecked + returned;
  if (have < size) w.poolFills.push({ group, instances: all, present, count: size - have, size });
  else if (have > size) {
    // The pool shrank (or lost its config): VMs in the other state than the pool's go first, then the newest.
    const order = [...kept].sort((a, b) => Number(poolStateOf(w, b) !== group.warmPool?.state) - Number(poolStateOf(w, a) !== group.warmPool?.state) || time(b.created) - time(a.created) || byName(a.name, b.name));
    for (const p of order.slice(0, Math.min(kept.length, have - size))) {
      planDelete(w, { group: group.name, name: p.name, host: p.host }, p.uuid, "pool_trim", `the warm pool holds ${size}: remove it`, { gone: false, domain: domainOf(w, p), instance: p, group });
      kept.splice(kept.indexOf(p), 1);
      trimmed++;
    }
  }
  // A stopped pool VM holds no memory or vCPUs now, but will when taken: its host keeps room for it. A running or
  // paused one holds them already (a paused guest keeps its memory; its vCPUs count as allocated), so the host's
  // observed free memory and vCPUs have it: booking it again would count it twice.
  for (const p of kept) {
    if (poolStateOf(w, p) !== "stopped") continue;
    w.used.set(p.host, addUse(w.used.get(p.host) ?? NO_USE, { vcpus: p.vcpus ?? group.template.vcpus, memoryMiB: p.memoryMiB ?? group.template.memoryMiB, resources: {} }));
  }
  if (group.warmPool || pooled.length > 0) {
    const states = Object.fromEntries(pooled.map((p) => [p.name, w.observations.get(p.host)?.status !== "ok" ? ("unknown" as const) : (domainOf(w, p)?.state ?? ("missing" as const))]));
    plan.pool = { state: group.warmPool?.state ?? "stopped", size, vms: pooled.map((p) => p.name), states, take: taken, fill: Math.max(0, size - have), return: returned, trim: trimmed + pool.removed };
  }
  const left = stale.filter((s) => !removed.includes(s.instance));
  if (left.length > 0) {
    const limits = rolloutLimits(group, desired);
    if (limits.warning) w.warnings.push(`group ${group.name}: ${limits.warning}`);
    w.rollouts.push({ group, instances: all, present, stale: left, surge: limits.surge, unavailable: limits.unavailable });
  }
  return plan;
}

/** How many VMs a group's warm pool should hold at this desired size: `size`, else `maxPrepared` (or max) minus desired. */
export function poolSize(group: GroupConfig, desired: number): number {
  const wp = group.warmPool;
  if (!wp) return 0;
  return wp.size ?? Math.max(0, (wp.maxPrepared ?? group.max) - desired);
}

/** What a pool VM's domain does, as observed: running, paused (both hold their host's memory and vCPUs) or not. */
function poolStateOf(w: Work, p: Instance): PoolState {
  const s = domainOf(w, p)?.state;
  return s === "running" || s === "paused" ? s : "stopped";
}

/**
 * Checks a group's warm pool VMs against the hosts: the ones that can be taken (up to date, whole, startable and
 * waited for), in the order scale-outs take them (running first, then the oldest); those on hosts not observed (kept,
 * never taken); and removes the rest: interrupted, gone, crashed, made from an older template or too old, asked to
 * be replaced, or stopped without a boot beacon to wait for. The pool is refilled to its size afterwards.
 */
function checkPool(w: Work, group: GroupConfig, pooled: Instance[], requested: (i: Instance) => boolean): { usable: Instance[]; unchecked: number; removed: number } {
  const usable: Instance[] = [];
  let unchecked = 0;
  let removed = 0;
  const now = w.input.now.getTime();
  for (const p of pooled) {
    const obs = w.observations.get(p.host);
    const at = { group: group.name, name: p.name, host: p.host };
    if (obs?.status !== "ok") {
      unchecked++;
      continue;
    }
    const domain = obs.vms.find((d) => d.name === p.name);
    const target = templateOn(w, group, p.host);
    const changed = p.template && target ? fingerprintChanges(p.template, target) : [];
    const expired = group.maxInstanceLifetimeSeconds !== undefined && now - (Date.parse(p.created) || now) > group.maxInstanceLifetimeSeconds * 1000;
    const remove = (reason: ActionReason, detail: string) => {
      planDelete(w, at, p.uuid, reason, detail, { gone: !domain, domain, instance: p, group });
      removed++;
    };
    if (p.status === "creating") {
      w.warnings.push(`${group.name}[${p.name}] (warm pool) on host ${p.host} was left half-created by an interrupted apply: it is removed`);
      remove("interrupted_create", "create never finished: remove what exists of it");
    } else if (p.status === "deleting") {
      remove("interrupted_delete", "delete never finished: finish removing it");
    } else if (!domain) {
      w.drift.push({ kind: "missing", ...at, detail: "no longer exists on the host (warm pool)" });
      remove("replace_missing", "warm pool VM no longer exists: forget it and remove its volumes");
    } else if (domain.state === "crashed" || domain.state === "other") {
      w.drift.push({ kind: "stopped", ...at, detail: `is ${domain.state} (warm pool)` });
      remove("replace_stopped", `warm pool VM is ${domain.state}: remove it`);
    } else if (requested(p)) {
      remove("replace_requested", "named by apply -replace: remove it from the warm pool");
    } else if (changed.length > 0) {
      w.drift.push({ kind: "out_of_date", ...at, detail: `made from an older template: ${changed.join("; ")} (warm pool)` });
      remove("replace_drift", `template changed: ${changed.join("; ")}: remove it from the warm pool`);
    } else if (expired) {
      w.drift.push({ kind: "expired", ...at, detail: `older than maxInstanceLifetimeSeconds (${group.maxInstanceLifetimeSeconds}s) (warm pool)` });
      remove("replace_lifetime", `older than ${group.maxInstanceLifetimeSeconds}s: remove it from the warm pool`);
    } else if (domain.state === "stopped" && group.readiness.checkIn && !p.bootBeacon) {
      remove("pool_trim", "stopped, and its guest posts no boot beacon, so it could not be waited for once started: remove it");
    } else usable.push(p);
  }
  // Running VMs are members at once, paused ones a resume later, stopped ones only after a boot.
  const rank = (p: Instance) => ({ running: 0, paused: 1, stopped: 2 })[poolStateOf(w, p)];
  usable.sort((a, b) => rank(a) - rank(b) || time(a.created) - time(b.created) || byName(a.name, b.name));
  return { usable, unchecked, removed };
}

/**
 * A pool VM joins the group: started when it is not running, and waited for when it was stopped (it boots). A paused
 * one is resumed, with nothing to wait for; in a paused pool a VM seen running is "started" too (startVm leaves a
 * running VM alone): a host may report a pause late (Proxmox VE's resource list lags by up to ~10 s).
 */
function takeChange(w: Work, group: GroupConfig, p: Instance, reason: ActionReason, detail: string): Change {
  const state = domainOf(w, p)?.state;
  const resume = state === "paused" || (state === "running" && group.warmPool?.state === "paused");
  const start = state !== "running" || resume;
  return {
    action: "take",
    address: `${group.name}[${p.name}]`,
    group: group.name,
    name: p.name,
    uuid: p.uuid,
    host: p.host,
    reason,
    detail: `${detail}: taken from the warm pool${resume ? " and resumed" : start ? " and started" : ""}`,
    start,
    ...(resume ? { resume: true as const } : {}),
    ...(state === "stopped" && group.readiness.checkIn ? { ready: { timeoutSeconds: group.readiness.timeoutSeconds } } : {}),
  };
}

/** The fingerprint of a group's template as made on a host (what its fit says), or undefined where it does not fit. */
function templateOn(w: Work, group: GroupConfig, host: string): TemplateFingerprint | undefined {
  const key = `${group.name}\0${host}`;
  if (!w.fingerprints.has(key)) {
    const obs = w.observations.get(host);
    const fit = obs?.status === "ok" ? obs.fits[group.name] : undefined;
    w.fingerprints.set(key, fit?.ok ? templateFingerprint(group, fit.settings) : null);
  }
  return w.fingerprints.get(key) ?? undefined;
}

/** A roll-out's surge and unavailability for a group of `size`: percentages of it, and never both 0. */
function rolloutLimits(group: GroupConfig, size: number): { surge: number; unavailable: number; warning?: string } {
  const resolve = (v: number | string, round: (x: number) => number) =>
    typeof v === "number" ? v : round((size * Number(v.replace("%", ""))) / 100);
  const surge = resolve(group.rollout.maxSurge, Math.ceil);
  const unavailable = resolve(group.rollout.maxUnavailable, Math.floor);
  if (surge === 0 && unavailable === 0) return { surge: 1, unavailable: 0, warning: "rollout.maxSurge and maxUnavailable are both 0 here: replacing one at a time with a surge of 1" };
  return { surge, unavailable };
}

/**
 * The healthy instances to replace this plan, in the order they go (asked for with `-replace` first, then the
 * oldest): made from an older template (drift), older than the group's lifetime, or named by `-replace`. Drift is
 * shown for every out-of-date instance; the strategy, protection, a failed roll-out and checkpoints decide how many
 * are replaced now. Records what it decided in the group's plan (`rollout`). A rolled-back group's members not made
 * from its previous template are replaced back (`replace_rollback`), and its plan says why (`rollback`).
 */
function staleInstances(w: Work, group: GroupConfig, healthy: Instance[], instances: Instance[], plan: GroupPlan): Stale[] {
  const now = w.input.now.getTime();
  const rb = w.rollbacks.get(group.name);
  const back = rb && !rb.retry ? rb : undefined;
  // In a rolled-back group, --replace GROUP asks for the refused template again (a new roll-out), not for every VM.
  const wholeGroup = !rb && (w.input.replace ?? []).includes(group.name);
  const requested = (i: Instance) => wholeGroup || (w.input.replace ?? []).includes(`${group.name}[${i.name}]`);
  const targetOn = (host: string): TemplateFingerprint | undefined => templateOn(w, group, host);
  const all: Stale[] = [];
  let untracked = 0;
  for (const i of healthy) {
    const at = { group: group.name, name: i.name, host: i.host };
    const target = targetOn(i.host);
    const changed = i.template && target ? fingerprintChanges(i.template, target) : [];
    if (!i.template) untracked++;
    const age = now - (Date.parse(i.created) || now);
    const expired = group.maxInstanceLifetimeSeconds !== undefined && age > group.maxInstanceLifetimeSeconds * 1000;
    const guarded = i.protected ? " (protected)" : "";
    if (changed.length > 0) {
      const detail = back ? `not made from the previous template, which the group goes back to: ${changed.join("; ")}` : `made from an older template: ${changed.join("; ")}`;
      w.drift.push({ kind: "out_of_date", ...at, detail: `${detail}${guarded}` });
    } else if (expired) w.drift.push({ kind: "expired", ...at, detail: `older than maxInstanceLifetimeSeconds (${group.maxInstanceLifetimeSeconds}s)${guarded}` });
    if (requested(i)) all.push({ instance: i, reason: "replace_requested", why: "apply -replace" });
    else if (i.protected) continue;
    else if (changed.length > 0 && back) all.push({ instance: i, reason: "replace_rollback", why: `${back.record.rollback!.reason}: back to the previous template: ${changed.join("; ")}` });
    else if (changed.length > 0) all.push({ instance: i, reason: "replace_drift", why: `template changed: ${changed.join("; ")}` });
    else if (expired) all.push({ instance: i, reason: "replace_lifetime", why: `older than ${group.maxInstanceLifetimeSeconds}s` });
  }
  if (untracked > 0 && healthy.some((i) => i.template)) {
    w.warnings.push(`group ${group.name}: ${plural(untracked, "instance")} predate template tracking and are not checked for drift (premiscale apply --replace ${group.name} replaces them)`);
  }
  const forced = all.filter((s) => s.reason === "replace_requested").sort((a, b) => byName(a.instance.name, b.instance.name));
  let chosen = all.filter((s) => s.reason !== "replace_requested").sort((a, b) => time(a.instance.created) - time(b.instance.created) || byName(a.instance.name, b.instance.name));
  if (back) return [...forced, ...rollBackStale(w, group, back, chosen, plan)];

  const targetId = fingerprintId(Object.fromEntries([...new Set(group.hosts)].map((h) => [h, targetOn(h) ? fingerprintId(targetOn(h)!) : "-"])));
  const state = w.input.state?.groups.find((g) => g.name === group.name);
  const record = state?.rollout;
  // A retry (--replace GROUP after a roll-back) is a new roll-out of the same template.
  const same = !rb && record?.template === targetId;
  const digest = templateDigest(group.template);
  const previous = rb ? rb.previous : group.rollout.rollback && state?.template && state.template.digest !== digest ? state.template : undefined;
  if (chosen.length > 0 && group.rollout.strategy === "manual") {
    w.warnings.push(`group ${group.name}: ${plural(chosen.length, "VM")} out of date, roll-out is manual: premiscale apply --replace ${group.name} (or ${group.name}[NAME]) replaces them`);
    chosen = [];
  } else if (chosen.length > 0 && same && record?.failed) {
    w.warnings.push(`group ${group.name}: the roll-out of this template stopped at ${record.failed.at} (${record.failed.message}); the old VMs were left alone. Change the template, or premiscale apply --replace ${group.name} to try again`);
    chosen = [];
  } else if (chosen.length > 0 && group.rollout.checkpoints.length > 0) {
    const total = same ? record!.total : chosen.length;
    const replaced = same ? record!.replaced : 0;
    const pauseUntil = same && record?.checkpointAt ? Date.parse(record.checkpointAt) + group.rollout.checkpointPauseSeconds * 1000 : 0;
    if (pauseUntil > now) {
      w.warnings.push(`group ${group.name}: roll-out paused at a checkpoint (${replaced} of ${total} replaced) until ${new Date(pauseUntil).toISOString()}`);
      chosen = [];
    } else {
      const next = group.rollout.checkpoints.find((cp) => Math.ceil((total * cp) / 100) > replaced) ?? 100;
      chosen = chosen.slice(0, Math.max(0, Math.ceil((total * next) / 100) - replaced));
      plan.rollout = { template: targetId, total, replaced, planned: chosen.length, checkpoint: next };
    }
  }
  if (chosen.length > 0 && !plan.rollout) {
    plan.rollout = { template: targetId, total: same ? record!.total : chosen.length, replaced: same ? record!.replaced : 0, planned: chosen.length };
  }
  if (plan.rollout) {
    plan.rollout = { ...plan.rollout, config: digest, ...(same ? {} : { start: true as const }), ...(previous ? { previous } : {}) };
    if (!same && group.rollout.rollback && !state?.template && chosen.some((s) => s.reason === "replace_drift")) {
      w.warnings.push(`group ${group.name}: this roll-out cannot be rolled back if its new VMs fail: state has no record of the template the group ran before (it is recorded once every member runs one template; state written before roll-backs has none yet)`);
    }
  }
  return [...forced, ...chosen];
}

/**
 * A rolled-back group's replacements: every member not made from the previous template goes back to it, in one
 * roll-out with the group's surge and unavailability (checkpoints are for new templates, not for going back), unless
 * the roll-back's own VMs failed too (it stopped) or the roll-out is manual. Every plan says that the group runs
 * another template than its config names, why, and what to do.
 */
function rollBackStale(w: Work, group: GroupConfig, back: Rollback, chosen: Stale[], plan: GroupPlan): Stale[] {
  const r = back.record;
  const rb = r.rollback!;
  const behind = chosen.filter((s) => s.reason === "replace_rollback").length;
  w.warnings.push(
    `group ${group.name} runs its previous template ${back.previous.digest}, not the config's ${r.config}, since ${rb.at}: ${rb.reason}. ` +
      `The config's template is not tried again until it changes: fix it, or revert it to the previous one (premiscale apply --replace ${group.name} tries it again as it is)`,
  );
  for (const host of [...new Set(group.hosts)]) {
    const obs = w.observations.get(host);
    const fit = obs?.status === "ok" ? obs.fits[group.name] : undefined;
    if (fit && !fit.ok) w.warnings.push(`group ${group.name}: the previous template cannot be made on host ${host} (${fit.reason}): its VMs there are not rolled back, and it takes no new VM`);
  }
  let go = chosen;
  if (rb.failed && behind > 0) {
    w.warnings.push(
      `group ${group.name}: the roll-back stopped at ${rb.failed.at} (${rb.failed.message}); ${plural(behind, "VM")} still ${behind === 1 ? "runs" : "run"} another template than the previous one. ` +
        `Fix what keeps the previous template from coming up; premiscale apply --replace ${group.name}[NAME] replaces one with it`,
    );
    go = chosen.filter((s) => s.reason !== "replace_rollback");
  } else if (behind > 0 && group.rollout.strategy === "manual") {
    w.warnings.push(`group ${group.name}: ${plural(behind, "VM")} to roll back, roll-out is manual: premiscale apply --replace ${group.name}[NAME] replaces one with the previous template`);
    go = chosen.filter((s) => s.reason !== "replace_rollback");
  }
  plan.rollback = { from: r.config!, to: back.previous.digest, reason: rb.reason, planned: go.filter((s) => s.reason === "replace_rollback").length, ...(rb.failed ? { stopped: rb.failed } : {}) };
  return go;
}

/**
 * Deletes `count` instances: first those the decision names (`remove`, in its order, if present), then healthy ones
 * from the host with the most of the group, newest first; never one the decision says to keep. A victim that
 * `mayReturn` accepts goes back to the group's warm pool instead of being deleted.
 */
function scaleIn(
  w: Work,
  group: GroupConfig,
  present: Instance[],
  healthy: Instance[],
  count: number,
  detail: string,
  decision: Decision,
  stale: Stale[],
  mayReturn: (victim: Instance) => boolean = () => false,
): Instance[] {
  const perHost = countByHost(present);
  const removed: Instance[] = [];
  const outdated = new Set(stale.map((s) => s.instance.name));
  // Scale-in protection: only an explicit --replace removes a protected instance.
  const keep = new Set([...(decision.keep ?? []), ...present.filter((i) => i.protected).map((i) => i.name)]);
  const named = (decision.remove ?? []).flatMap((n) => present.filter((i) => i.name === n && !keep.has(n)));
  for (const n of (decision.remove ?? []).filter((n) => keep.has(n))) {
    const by = decision.source ?? "its decision";
    w.warnings.push(
      present.some((i) => i.name === n && i.protected)
        ? `group ${group.name}: ${n} is named for removal by ${by}, but it is protected from scale-in (premiscale unprotect, or apply --replace): it is kept`
        : `group ${group.name}: ${n} is both to be removed and kept by ${by}: it is kept`,
    );
  }
  const pool = healthy.filter((i) => !keep.has(i.name) && !named.includes(i));
  const take = (victim: Instance, why: string) => {
    removed.push(victim);
    perHost.set(victim.host, (perHost.get(victim.host) ?? 0) - 1);
    const at = { group: group.name, name: victim.name, host: victim.host };
    if (mayReturn(victim)) {
      const stop = group.warmPool?.state === "stopped";
      const pause = group.warmPool?.state === "paused";
      w.changes.push({
        action: "return",
        address: `${group.name}[${victim.name}]`,
        ...at,
        uuid: victim.uuid,
        reason: "scale_in",
        detail: `${why}: back to the warm pool${stop ? ", stopped" : pause ? ", paused" : ""}`,
        stop,
        ...(pause ? { pause: true as const } : {}),
      });
    } else planDelete(w, at, victim.uuid, "scale_in", why, { gone: false, domain: domainOf(w, victim), instance: victim, group });
  };
  for (const victim of named.slice(0, count)) take(victim, `${detail}: named by ${decision.source ?? "its decision"}`);
  for (let k = named.length; k < count; k++) {
    // Out-of-date VMs go first: removing them is part of the roll-out anyway.
    pool.sort(
      (a, b) =>
        Number(outdated.has(b.name)) - Number(outdated.has(a.name)) ||
        (perHost.get(b.host) ?? 0) - (perHost.get(a.host) ?? 0) ||
        time(b.created) - time(a.created) ||
        byName(a.name, b.name),
    );
    const victim = pool.shift();
    if (!victim) {
      const why = keep.size > 0 ? "the rest are kept, protected or on hosts that were not checked" : "the rest are on hosts that were not checked";
      w.warnings.push(`group ${group.name}: ${plural(count - k, "more instance")} should go, but ${why}`);
      return removed;
    }
    take(victim, detail);
  }
  return removed;
}

/**
 * Replaces out-of-date instances in batches of surge + unavailable: in a batch, `unavailable` old VMs are deleted
 * first and their replacements created after, the others get their replacement first and are deleted once it is
 * ready; each batch waits for the whole batch before it. A replacement that fits nowhere ends the roll-out for this
 * plan (the old VM stays), and a failure in apply stops everything after it.
 */
function rollOut(w: Work, r: RollOut): void {
  const { group, stale, surge, unavailable } = r;
  const size = Math.max(1, surge + unavailable);
  let before: string[] = [];
  for (let k = 0; k * size < stale.length; k++) {
    const batch = stale.slice(k * size, (k + 1) * size);
    const done: string[] = [];
    for (const [j, s] of batch.entries()) {
      const old = s.instance;
      const at = { group: group.name, name: old.name, host: old.host };
      const first = j < unavailable;
      const del = first ? planDelete(w, at, old.uuid, s.reason, `${s.why}: deleted before its replacement is made (maxUnavailable)`, { gone: false, domain: domainOf(w, old), instance: old, group, waits: before }) : null;
      const { placed, shortReason } = place(w, group, 1, r.instances, r.present);
      const p = placed[0];
      if (!p) {
        w.warnings.push(`group ${group.name}: roll-out stopped: no room for a replacement of ${old.name} (${shortReason ?? "no room"}); raise rollout.maxUnavailable to replace in place, or add room`);
        return;
      }
      const create = createChange(w, group, p, s.reason, `replaces ${old.name} (${s.why})`, { waits: [...before, ...(del ? [del.address] : [])], replaces: `${group.name}[${old.name}]` });
      w.changes.push(create);
      done.push(create.address);
      if (del) done.push(del.address);
      else done.push(planDelete(w, at, old.uuid, s.reason, `replaced by ${create.name} once it is ready (${s.why})`, { gone: false, domain: domainOf(w, old), instance: old, group, waits: [create.address] }).address);
    }
    before = done;
  }
}

/**
 * Places and creates a group's new VMs: as many as fit. A VM goes where there is room now if any host has some, else
 * where this plan's deletes make room (it then waits for them). What cannot be placed, or gets no static address,
 * is the group's shortfall: the rest of the plan goes ahead, and the next plan tries again.
 */
function scaleOut(w: Work, request: ScaleOut): void {
  const { group, instances, present, count, replaced, detail } = request;
  const { placed, shortReason } = place(w, group, count, instances, present);
  if (placed.length < count) {
    w.shortfalls.push({ group: group.name, wanted: count, missing: count - placed.length, reason: shortReason ?? "no room" });
  }
  placed.forEach((p, i) => {
    const replacing = replaced[i];
    w.changes.push(createChange(w, group, p, replacing?.reason ?? "scale_out", replacing ? `replaces ${replacing.name}` : detail));
  });
}

/**
 * Refills a group's warm pool with the room that is left: a pool that cannot be filled is a warning, not a shortfall
 * (the group itself has what it needs).
 */
function fillPool(w: Work, request: PoolFill): void {
  const { group, instances, present, count, size } = request;
  const { placed, shortReason } = place(w, group, count, instances, present);
  if (placed.length < count) w.warnings.push(`group ${group.name}: the warm pool stays ${plural(count - placed.length, "VM")} short of ${size}: ${shortReason ?? "no room"}`);
  for (const p of placed) w.changes.push(createChange(w, group, p, "pool_fill", `fills the warm pool (${size}, ${group.warmPool?.state ?? "stopped"})`, { pool: true }));
}

/** Where a new VM goes, what it takes there, its static address, and the deletes it must wait for. */
interface Placed {
  host: string;
  need: HostUse;
  waits: string[];
  address?: string;
}

/**
 * Chooses hosts (and static addresses) for up to `count` new VMs of a group, counting what the plan already put on
 * each host; what it keeps is added to the plan's use. Fewer than `count` come back when the rest fit nowhere.
 */
function place(w: Work, group: GroupConfig, count: number, instances: Instance[], present: Instance[]): { placed: Placed[]; shortReason: string | null } {
  const { config } = w.input;
  const strategy = placementStrategies[group.placement];
  // One generator per placement round of a group: the first round draws as before, later ones (roll-out batches) anew.
  const round = w.placements.get(group.name) ?? 0;
  w.placements.set(group.name, round + 1);
  const rng = seededRng(`${w.input.seed ?? w.lineage}:${group.name}${round > 0 ? `:${round}` : ""}`);
  const groupCountByHost = countByHost(present);
  for (const c of w.changes) {
    if (c.group === group.name && ((c.action === "create" && !c.pool) || c.action === "take")) groupCountByHost.set(c.host, (groupCountByHost.get(c.host) ?? 0) + 1);
  }
  const used = new Map(w.used);

  const placed: Placed[] = [];
  let shortReason: string | null = null;
  for (let index = 0; index < count; index++) {
    const roomNow: HostRoom[] = [];
    const roomLater: HostRoom[] = [];
    const needs = new Map<string, HostUse>();
    const reasons: string[] = [];
    group.hosts.forEach((name, order) => {
      const planned = used.get(name) ?? NO_USE;
      const host = config.hosts.find((h) => h.name === name);
      const freed = w.freed.get(name);
      const r = assessHost({ name, order, host, observation: w.observations.get(name), group, planned, ...(freed ? { freed } : {}) });
      if (!("room" in r)) reasons.push(`host ${name}: ${r.reason}`);
      else {
        (r.waits ? roomLater : roomNow).push(r.room);
        needs.set(name, r.need);
      }
    });
    const rooms = roomNow.length > 0 ? roomNow : roomLater;
    if (rooms.length === 0) {
      shortReason = reasons.join("; ");
      break;
    }
    const chosen = strategy.pick(rooms, { group: group.name, index, rng, groupCountByHost });
    const need = needs.get(chosen)!;
    used.set(chosen, addUse(used.get(chosen) ?? NO_USE, need));
    groupCountByHost.set(chosen, (groupCountByHost.get(chosen) ?? 0) + 1);
    placed.push({ host: chosen, need, waits: rooms === roomNow ? [] : [...(w.freed.get(chosen)?.by ?? [])] });
  }

  const net = group.networking;
  if (net.mode === "static" && placed.length > 0) {
    const taken = new Set([
      ...instances.flatMap((i) => (i.address ? [i.address] : [])),
      ...w.changes.flatMap((c) => (c.action === "create" && c.group === group.name && c.address_v4 ? [c.address_v4] : [])),
    ]);
    const fresh = freeAddresses(net.addresses, taken).map((address) => ({ address, waits: [] as string[] }));
    const reused = (w.freedAddresses.get(group.name) ?? []).filter((f) => !taken.has(f.address) || instances.some((i) => i.address === f.address)).map((f) => ({ address: f.address, waits: [f.by] }));
    const addresses = [...fresh, ...reused.filter((r) => !w.changes.some((c) => c.action === "create" && c.address_v4 === r.address))].slice(0, placed.length);
    if (addresses.length < placed.length) {
      shortReason = `no free static address: all ${net.addresses.length} addresses of the group's pool are in use`;
      placed.length = addresses.length;
    }
    placed.forEach((p, i) => {
      p.address = addresses[i]!.address;
      p.waits = [...new Set([...p.waits, ...addresses[i]!.waits])];
    });
  }
  // Only what was kept counts against the hosts for later placements.
  for (const p of placed) w.used.set(p.host, addUse(w.used.get(p.host) ?? NO_USE, p.need));
  return { placed, shortReason };
}

/** The create of one placed VM, stamped with the fingerprint of the template it is made from. */
function createChange(w: Work, group: GroupConfig, p: Placed, reason: ActionReason, detail: string, extra: { waits?: string[]; replaces?: string; pool?: boolean } = {}): Create {
  const obs = w.observations.get(p.host);
  const fit = obs?.status === "ok" ? obs.fits[group.name] : undefined;
  if (!fit?.ok) throw new Error(`placement chose host ${p.host}, where group ${group.name} does not fit`);
  const uuid = freshUuid(w, group.name);
  const name = `${group.name}-${uuid.slice(0, 8)}`;
  const net = group.networking;
  const network: VmNetwork =
    net.mode === "static" && p.address !== undefined
      ? { mode: "static", address: p.address, prefix: net.prefix, dns: [...net.dns], ...(net.gateway ? { gateway: net.gateway } : {}) }
      : { mode: "dhcp" };
  const after = [...new Set([...p.waits, ...(extra.waits ?? [])])].sort(byName);
  const t = group.template;
  return {
    action: "create",
    address: `${group.name}[${name}]`,
    group: group.name,
    name,
    uuid,
    host: p.host,
    reason,
    detail,
    vm: {
      name,
      uuid,
      group: group.name,
      lineage: w.lineage,
      createdAt: w.input.now.toISOString(),
      vcpus: t.vcpus,
      memoryMiB: t.memoryMiB,
      userData: t.userData,
      secretEnv: t.secretEnv,
      network,
      settings: fit.settings,
    },
    template: templateFingerprint(group, fit.settings),
    ...(p.address !== undefined ? { address_v4: p.address } : {}),
    ...(group.readiness.checkIn
      ? {
          ready: {
            timeoutSeconds: group.readiness.timeoutSeconds,
            ...(group.readiness.heartbeatSeconds > 0 ? { heartbeatSeconds: group.readiness.heartbeatSeconds } : {}),
            // Every VM of a group with a warm pool may one day wait stopped in it (reuseOnScaleIn), and must say when it is up again.
            ...(group.warmPool ? { bootBeacon: true } : {}),
          },
        }
      : {}),
    ...(after.length > 0 ? { waits_for: after } : {}),
    ...(extra.replaces ? { replaces: extra.replaces } : {}),
    ...(extra.pool ? { pool: { state: group.warmPool?.state ?? "stopped" } } : {}),
  };
}

/** The domain observed for an instance, on its host. */
function domainOf(w: Work, instance: Instance): OwnedVm | undefined {
  const obs = w.observations.get(instance.host);
  return obs?.status === "ok" ? obs.vms.find((d) => d.name === instance.name) : undefined;
}

/** A UUID whose derived name is not taken yet. */
function freshUuid(w: Work, group: string): string {
  for (let attempt = 0; attempt < 100; attempt++) {
    const uuid = w.input.newUuid();
    const name = `${group}-${uuid.slice(0, 8)}`;
    if (!w.takenNames.has(name)) {
      w.takenNames.add(name);
      return uuid;
    }
  }
  throw new Error(`newUuid gave 100 UUIDs whose names are all taken in group ${group}`);
}

function countByHost(instances: Instance[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const i of instances) counts.set(i.host, (counts.get(i.host) ?? 0) + 1);
  return counts;
}
