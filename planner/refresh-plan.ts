/**
 * Refresh-only plans (Terraform's `-refresh-only`): what state would record if it accepted the hosts as they are,
 * without creating, starting, stopping or destroying any VM. Pure, like `computePlan`.
 *
 * - a VM state records as running that no longer exists is **forgotten** (its state entry goes; leftovers of it on
 *   the host, if any, stay: a normal apply would remove them);
 * - a member found stopped or crashed is **marked stopped** (`Instance.stopped`): normal plans then leave it alone,
 *   do not count it (the group is topped up around it) and do not replace it, until it runs again or `apply
 *   --replace` names it; one marked stopped that runs again is **marked running**;
 * - a VM of this state's lineage that state does not know (left by an interrupted apply) is **adopted** as a member;
 * - records of an interrupted create or delete are left for a normal apply, which finishes or undoes them; a warm
 *   pool's VMs are stopped on purpose and are only forgotten when gone.
 */
import type { Instance } from "../state/types.js";
import type { PlanInput } from "./compute-plan.js";
import { PLAN_FORMAT_VERSION, type Drift, type GroupPlan, type Plan, type RefreshUpdate } from "./plan.js";

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The refresh-only plan for `input` (its `decide`, `replace` and `newUuid` are not used). */
export function computeRefreshPlan(input: PlanInput): Plan {
  const { config, state, now } = input;
  const lineage = state?.lineage ?? input.newLineage;
  const targets = input.targets ?? null;
  const inScope = (g: string) => targets === null || targets.includes(g);
  const observations = new Map(input.observations.map((o) => [o.host, o]));
  const at = now.toISOString();
  const refresh: RefreshUpdate[] = [];
  const drift: Drift[] = [];
  const warnings: string[] = [];
  const groups: GroupPlan[] = [];
  const update = (u: Omit<RefreshUpdate, "address">) => refresh.push({ address: `${u.group}[${u.name}]`, ...u });

  for (const group of config.groups.filter((g) => inScope(g.name))) {
    const instances = state?.groups.find((g) => g.name === group.name)?.instances ?? [];
    const current = instances.filter((i) => i.pool !== "warm").length;
    groups.push({ name: group.name, current, desired: current, reason: "refresh-only" });
    if (group.suspend) {
      warnings.push(`group ${group.name} is suspended (suspend: true): left as it is`);
      continue;
    }
    const unchecked = new Map<string, number>();
    for (const inst of instances) {
      const obs = observations.get(inst.host);
      const where = { group: group.name, name: inst.name, host: inst.host };
      if (obs?.status !== "ok") {
        unchecked.set(inst.host, (unchecked.get(inst.host) ?? 0) + 1);
        continue;
      }
      const domain = obs.vms.find((d) => d.name === inst.name);
      const pool = inst.pool === "warm" ? " (warm pool)" : "";
      if (inst.status !== "running") {
        warnings.push(`${group.name}[${inst.name}] on host ${inst.host} was left ${inst.status === "creating" ? "half-created" : "half-deleted"} by an interrupted apply: refresh-only leaves it; premiscale apply finishes it`);
      } else if (!domain) {
        drift.push({ kind: "missing", ...where, detail: `no longer exists on the host${pool}` });
        update({ action: "forget", ...where, detail: `no longer exists on the host${pool}` });
      } else if ((domain.state === "stopped" || domain.state === "crashed") && !inst.pool) {
        if (inst.stopped?.state === domain.state) continue;
        drift.push({ kind: "stopped", ...where, detail: `is ${domain.state}` });
        update({ action: "mark_stopped", ...where, detail: `is ${domain.state}`, instance: { ...inst, stopped: { at, state: domain.state } } });
      } else if ((domain.state === "running" || domain.state === "paused") && inst.stopped) {
        const { stopped: _stopped, ...rest } = inst;
        update({ action: "mark_running", ...where, detail: `is ${domain.state} again`, instance: rest });
      }
    }
    for (const [host, n] of unchecked) warnings.push(`host ${host} ${observations.has(host) ? "unreachable" : "not observed"}: ${plural(n, "instance")} of group ${group.name} not checked`);
  }

  const known = new Set(state?.groups.flatMap((g) => g.instances.map((i) => i.name)) ?? []);
  for (const obs of input.observations) {
    if (obs.status !== "ok") continue;
    for (const d of obs.vms) {
      const group = config.groups.find((g) => g.name === d.group);
      if (known.has(d.name) || !inScope(d.group) || group?.suspend) continue;
      const where = { group: d.group, name: d.name, host: obs.host };
      if (d.lineage !== lineage) {
        drift.push({ kind: "foreign_lineage", ...where, detail: `belongs to another premiscale state (lineage ${d.lineage}): left untouched` });
        continue;
      }
      if (!group) {
        drift.push({ kind: "not_in_state", ...where, detail: "is not in state and its group is not in config: left untouched" });
        continue;
      }
      drift.push({ kind: "not_in_state", ...where, detail: "is not in state (left by an interrupted apply?)" });
      const stopped = d.state === "stopped" || d.state === "crashed";
      const instance: Instance = { name: d.name, uuid: d.uuid, host: obs.host, created: d.createdAt, status: "running", ...(stopped ? { stopped: { at, state: d.state as "stopped" | "crashed" } } : {}) };
      update({ action: "adopt", ...where, detail: `a VM of this state's lineage, ${d.state}, that state did not record`, instance });
    }
  }
  if (state === null && refresh.length === 0) warnings.push("there is no state yet: nothing to refresh");

  const groupOrder = (g: string): number => {
    const i = config.groups.findIndex((c) => c.name === g);
    return i < 0 ? config.groups.length : i;
  };
  refresh.sort((a, b) => groupOrder(a.group) - groupOrder(b.group) || byName(a.name, b.name));
  drift.sort((a, b) => groupOrder(a.group) - groupOrder(b.group) || byName(a.name, b.name));
  return {
    format_version: PLAN_FORMAT_VERSION,
    based_on: { lineage: state?.lineage ?? null, serial: state?.serial ?? 0, config_digest: input.configDigest, config_commit: input.configCommit },
    lineage,
    created_at: at,
    expires_at: new Date(now.getTime() + (input.ttlSeconds ?? 3600) * 1000).toISOString(),
    targets,
    drift,
    warnings,
    errors: [],
    shortfalls: [],
    groups,
    changes: [],
    summary: { add: 0, change: 0, destroy: 0 },
    mode: "refresh-only",
    refresh,
  };
}
