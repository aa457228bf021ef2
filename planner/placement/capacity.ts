import type { GroupConfig, HostConfig } from "../../config/types.js";
import type { HostObservation, HostResource } from "../../providers/provider.js";
import type { HostRoom } from "./types.js";

const GiB = 1024 ** 3;

/** Resources given to (or freed for) new VMs on one host: vCPUs, memory, and the host's other resources by key. */
export interface HostUse {
  memoryMiB: number;
  vcpus: number;
  resources: Record<string, number>;
}

/** Nothing used. */
export const NO_USE: HostUse = Object.freeze({ memoryMiB: 0, vcpus: 0, resources: Object.freeze({}) as Record<string, number> });

/** `a + b`. */
export function addUse(a: HostUse, b: HostUse): HostUse {
  const resources = { ...a.resources };
  for (const [k, v] of Object.entries(b.resources)) resources[k] = (resources[k] ?? 0) + v;
  return { memoryMiB: a.memoryMiB + b.memoryMiB, vcpus: a.vcpus + b.vcpus, resources };
}

/** An amount of a resource in its unit, for people: bytes as GiB with one decimal. */
export function formatAmount(amount: number, unit: HostResource["unit"]): string {
  return unit === "bytes" ? `${Math.round((Math.max(0, amount) / GiB) * 10) / 10} GiB` : String(Math.max(0, amount));
}

/**
 * What one more VM of `group` would take on a host, or why it cannot go there at all: the template's vCPUs and
 * memory, plus what the host's adapter said the template takes of its other resources.
 */
export function demandOn(group: GroupConfig, observation: HostObservation | undefined): { need: HostUse } | { reason: string } {
  if (!observation) return { reason: "not observed" };
  if (observation.status !== "ok") return { reason: "unreachable" };
  const fit = observation.fits[group.name];
  if (!fit) return { reason: "not asked about this group" };
  if (!fit.ok) return { reason: fit.reason };
  return { need: { memoryMiB: group.template.memoryMiB, vcpus: group.template.vcpus, resources: fit.demand } };
}

/**
 * Whether one more VM of `group` fits on a host, given what the plan already puts there (`planned`) and what the
 * plan's deletes on that host give back (`freed`: the vCPUs and memory of running VMs it removes). A VM that fits
 * only thanks to `freed` gets `waits: true`: apply must finish those deletes before it starts the create, since it
 * otherwise runs steps in parallel.
 */
export function assessHost(args: {
  name: string;
  order: number;
  host: HostConfig | undefined;
  observation: HostObservation | undefined;
  group: GroupConfig;
  planned: HostUse;
  freed?: HostUse;
}): { room: HostRoom; need: HostUse; waits?: true } | { reason: string } {
  const { name, order, host, observation: obs, group, planned } = args;
  if (!host) return { reason: "not in config" };
  const d = demandOn(group, obs);
  if ("reason" in d) return d;
  if (obs?.status !== "ok") return { reason: "unreachable" };
  const cap = obs.capacity;
  const need = d.need;
  const roomWith = (freed: HostUse): HostRoom => ({
    name,
    order,
    freeMemoryMiB: cap.freeMemoryMiB - host.reservedMemoryMiB - planned.memoryMiB + freed.memoryMiB,
    freeVcpus: cap.cpus * host.cpuOvercommit - cap.allocatedVcpus - planned.vcpus + freed.vcpus,
    free: Object.fromEntries(
      Object.keys(need.resources).map((k) => [k, (cap.resources[k]?.available ?? 0) - (planned.resources[k] ?? 0) + (freed.resources[k] ?? 0)]),
    ),
  });
  const shortOf = (room: HostRoom): string | null => {
    if (room.freeMemoryMiB < need.memoryMiB) return `${Math.max(0, room.freeMemoryMiB)} MiB free memory < ${need.memoryMiB} MiB needed`;
    if (room.freeVcpus < need.vcpus) return `${Math.max(0, room.freeVcpus)} free vCPUs < ${need.vcpus} needed`;
    for (const [k, amount] of Object.entries(need.resources)) {
      const r = cap.resources[k];
      if (!r) return `the host reports no ${k}`;
      if ((room.free[k] ?? 0) < amount) return `${formatAmount(room.free[k] ?? 0, r.unit)} free in ${r.label} < ${formatAmount(amount, r.unit)} needed`;
    }
    return null;
  };
  const room = roomWith(NO_USE);
  const short = shortOf(room);
  if (short === null) return { room, need };
  const freed = args.freed ?? NO_USE;
  if (freed.memoryMiB === 0 && freed.vcpus === 0 && Object.values(freed.resources).every((v) => v === 0)) return { reason: short };
  const after = roomWith(freed);
  const stillShort = shortOf(after);
  if (stillShort === null) return { room: after, need, waits: true };
  return { reason: `${stillShort}, counting what this plan's deletes on it free` };
}

/**
 * Whether the hosts of a group can hold `max` VMs of it at all, counting each resource's total capacity (not what
 * is free now): "pool "default" of kvm1 holds 20.0 GiB, but max 3 × 10.0 GiB needs 30.0 GiB". Hosts not observed
 * or where the template does not fit are skipped (their own problem is reported elsewhere). Pure.
 */
export function groupCapacityProblems(group: GroupConfig, observations: ReadonlyMap<string, HostObservation>): string[] {
  const totals = new Map<string, { label: string; unit: HostResource["unit"]; capacity: number; perVm: number; where: string[] }>();
  for (const name of group.hosts) {
    const obs = observations.get(name);
    if (obs?.status !== "ok") return [];
    const fit = obs.fits[group.name];
    if (!fit?.ok) return [];
    for (const [key, perVm] of Object.entries(fit.demand)) {
      const r = obs.capacity.resources[key];
      if (!r || r.capacity === undefined) continue;
      const t = totals.get(key) ?? { label: r.label, unit: r.unit, capacity: 0, perVm, where: [] };
      totals.set(key, { ...t, capacity: t.capacity + r.capacity, perVm: Math.max(t.perVm, perVm), where: [...t.where, name] });
    }
  }
  return [...totals.values()].flatMap((t) => {
    const needed = group.max * t.perVm;
    if (t.capacity >= needed) return [];
    const fmt = (n: number) => (t.unit === "bytes" ? `${(n / GiB).toFixed(1)} GiB` : String(n));
    const holds = t.where.length === 1 ? "holds" : "hold";
    return [`${t.label} of ${t.where.join(", ")} ${holds} ${fmt(t.capacity)}, but max ${group.max} × ${fmt(t.perVm)} needs ${fmt(needed)}`];
  });
}
