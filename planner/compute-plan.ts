import type { Config, GroupConfig } from "../config/types.js";
import type { Member } from "../policies/aggregate.js";
import type { Decision } from "../policies/decision.js";
import type { HostObservation, OwnedVm, VmNetwork } from "../providers/provider.js";
import type { Instance, State } from "../state/types.js";
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
  type Shortfall,
} from "./plan.js";
import { seededRng } from "./random.js";

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
  drift: Drift[];
  warnings: string[];
  errors: PlanError[];
  shortfalls: Shortfall[];
  changes: Change[];
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
export function computePlan(input: PlanInput): Plan {
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

  const groupOrder = (g: string): number => {
    const i = config.groups.findIndex((c) => c.name === g);
    return i < 0 ? config.groups.length : i;
  };
  const actionOrder = (c: Change): number => (c.action === "delete" ? 0 : 1);
  w.changes.sort((a, b) => groupOrder(a.group) - groupOrder(b.group) || actionOrder(a) - actionOrder(b) || byName(a.name, b.name));
  w.drift.sort((a, b) => groupOrder(a.group) - groupOrder(b.group) || byName(a.name, b.name));

  const creates = w.changes.filter((c) => c.action === "create").length;
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
    summary: { add: creates, change: 0, destroy: w.changes.length - creates },
  };
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
  what: { gone: boolean; domain?: OwnedVm; instance?: Instance; group?: GroupConfig },
): void {
  const change: Delete = { action: "delete", address: `${at.group}[${at.name}]`, ...at, uuid, reason, detail, gone: what.gone };
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
  const silent = healthy
    .map((i) => ({ i, since: time(seen.get(i.name) ?? i.created) }))
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
  const instances = w.input.state?.groups.find((g) => g.name === group.name)?.instances ?? [];
  if (group.suspend) {
    // Nothing of it is touched, not even leftovers of an interrupted apply: that waits until it is resumed.
    w.warnings.push(`group ${group.name} is suspended (suspend: true): left as it is`);
    return { name: group.name, current: instances.length, desired: instances.length, reason: "suspended" };
  }
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

  const current = present.length;
  const decision = w.input.decide(group, present.map((i) => ({ name: i.name, createdAt: i.created, ready: healthy.includes(i) })));
  if (!decision) {
    w.errors.push({ group: group.name, message: "no desired size was decided for this group" });
    return { name: group.name, current, desired: current, reason: "no decision" };
  }
  const desired = Math.min(group.max, Math.max(group.min, decision.desired));
  if (desired !== decision.desired)
    w.warnings.push(`group ${group.name}: decided size ${decision.desired} is outside min ${group.min} / max ${group.max}: using ${desired}`);
  const plan: GroupPlan = { name: group.name, current, desired, reason: decision.reason, ...(decision.details ? { decision } : {}) };

  const why = `desired ${desired} ${desired < current ? "<" : ">"} current ${current} (${decision.reason})`;
  if (desired < current) scaleIn(w, group, present, healthy, current - desired, why, decision);
  if (desired > current) w.scaleOuts.push({ group, instances, present, count: desired - current, replaced, detail: why });
  return plan;
}

/**
 * Deletes `count` instances: first those the decision names (`remove`, in its order, if present), then healthy ones
 * from the host with the most of the group, newest first; never one the decision says to keep.
 */
function scaleIn(w: Work, group: GroupConfig, present: Instance[], healthy: Instance[], count: number, detail: string, decision: Decision): void {
  const perHost = countByHost(present);
  const keep = new Set(decision.keep ?? []);
  const named = (decision.remove ?? []).flatMap((n) => present.filter((i) => i.name === n && !keep.has(n)));
  for (const n of (decision.remove ?? []).filter((n) => keep.has(n))) {
    w.warnings.push(`group ${group.name}: ${n} is both to be removed and kept by ${decision.source ?? "its decision"}: it is kept`);
  }
  const pool = healthy.filter((i) => !keep.has(i.name) && !named.includes(i));
  const take = (victim: Instance, why: string) => {
    perHost.set(victim.host, (perHost.get(victim.host) ?? 0) - 1);
    const at = { group: group.name, name: victim.name, host: victim.host };
    planDelete(w, at, victim.uuid, "scale_in", why, { gone: false, domain: domainOf(w, victim), instance: victim, group });
  };
  for (const victim of named.slice(0, count)) take(victim, `${detail}: named by ${decision.source ?? "its decision"}`);
  for (let k = named.length; k < count; k++) {
    pool.sort(
      (a, b) =>
        (perHost.get(b.host) ?? 0) - (perHost.get(a.host) ?? 0) || time(b.created) - time(a.created) || byName(a.name, b.name),
    );
    const victim = pool.shift();
    if (!victim) {
      const why = keep.size > 0 ? "the rest are kept or on hosts that were not checked" : "the rest are on hosts that were not checked";
      w.warnings.push(`group ${group.name}: ${plural(count - k, "more instance")} should go, but ${why}`);
      return;
    }
    take(victim, detail);
  }
}

/**
 * Places and creates a group's new VMs: as many as fit. A VM goes where there is room now if any host has some, else
 * where this plan's deletes make room (it then waits for them). What cannot be placed, or gets no static address,
 * is the group's shortfall: the rest of the plan goes ahead, and the next plan tries again.
 */
function scaleOut(w: Work, request: ScaleOut): void {
  const { group, instances, present, count, replaced, detail } = request;
  const { config, now } = w.input;
  const strategy = placementStrategies[group.placement];
  const rng = seededRng(`${w.input.seed ?? w.lineage}:${group.name}`);
  const groupCountByHost = countByHost(present);
  const used = new Map(w.used);

  const placed: { host: string; waits: string[]; need: HostUse }[] = [];
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
  let addresses: { address?: string; waits: string[] }[] = placed.map(() => ({ waits: [] }));
  if (net.mode === "static" && placed.length > 0) {
    const taken = new Set(instances.flatMap((i) => (i.address ? [i.address] : [])));
    const fresh = freeAddresses(net.addresses, taken).map((address) => ({ address, waits: [] as string[] }));
    const reused = (w.freedAddresses.get(group.name) ?? []).map((f) => ({ address: f.address, waits: [f.by] }));
    addresses = [...fresh, ...reused].slice(0, placed.length);
    if (addresses.length < placed.length) {
      const size = net.addresses.length;
      shortReason = `no free static address: all ${size} addresses of the group's pool are in use`;
      placed.length = addresses.length;
    }
  }
  if (placed.length < count) {
    w.shortfalls.push({ group: group.name, wanted: count, missing: count - placed.length, reason: shortReason ?? "no room" });
  }

  // Only what was kept counts against the hosts for later groups.
  for (const p of placed) w.used.set(p.host, addUse(w.used.get(p.host) ?? NO_USE, p.need));
  placed.forEach(({ host: hostName, waits }, i) => {
    const obs = w.observations.get(hostName);
    const fit = obs?.status === "ok" ? obs.fits[group.name] : undefined;
    if (!fit?.ok) throw new Error(`placement chose host ${hostName}, where group ${group.name} does not fit`);
    const uuid = freshUuid(w, group.name);
    const name = `${group.name}-${uuid.slice(0, 8)}`;
    const { address, waits: addressWaits } = addresses[i]!;
    const network: VmNetwork =
      net.mode === "static" && address !== undefined
        ? { mode: "static", address, prefix: net.prefix, dns: [...net.dns], ...(net.gateway ? { gateway: net.gateway } : {}) }
        : { mode: "dhcp" };
    const after = [...new Set([...waits, ...addressWaits])].sort(byName);
    const replacing = replaced[i];
    const t = group.template;
    const change: Create = {
      action: "create",
      address: `${group.name}[${name}]`,
      group: group.name,
      name,
      uuid,
      host: hostName,
      reason: replacing?.reason ?? "scale_out",
      detail: replacing ? `replaces ${replacing.name}` : detail,
      vm: {
        name,
        uuid,
        group: group.name,
        lineage: w.lineage,
        createdAt: now.toISOString(),
        vcpus: t.vcpus,
        memoryMiB: t.memoryMiB,
        userData: t.userData,
        secretEnv: t.secretEnv,
        network,
        settings: fit.settings,
      },
      ...(address !== undefined ? { address_v4: address } : {}),
      ...(group.readiness.checkIn
        ? { ready: { timeoutSeconds: group.readiness.timeoutSeconds, ...(group.readiness.heartbeatSeconds > 0 ? { heartbeatSeconds: group.readiness.heartbeatSeconds } : {}) } }
        : {}),
      ...(after.length > 0 ? { waits_for: after } : {}),
    };
    w.changes.push(change);
  });
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
