/**
 * `apply --refresh-only`: records a refresh-only plan's updates in state, in one commit, and touches no host. The
 * plan says what each instance's record becomes (planner/refresh-plan.ts); this only writes it.
 */
import type { Plan, RefreshUpdate } from "../planner/plan.js";
import type { StateLock } from "../state/state-store.js";

/** What a refresh-only apply recorded. */
export interface RefreshResult {
  recorded: RefreshUpdate[];
  /** The state commit, or null when nothing changed. */
  commit: string | null;
}

/**
 * WARNING: changes state (never a host). Writes every update of a refresh-only plan through the held lock and commits
 * once. Throws for a plan that is not refresh-only: its changes need `applyPlan`.
 */
export async function applyRefresh(plan: Plan, lock: StateLock): Promise<RefreshResult> {
  if (plan.mode !== "refresh-only") throw new Error("applyRefresh was given a plan that is not refresh-only");
  const updates = plan.refresh ?? [];
  if (updates.length === 0) return { recorded: [], commit: null };
  await lock.init(plan.lineage);
  for (const u of updates) {
    if (u.action === "forget") await lock.removeInstance(u.group, u.name);
    else if (u.instance) await lock.putInstance(u.group, u.instance);
  }
  const lines = updates.map((u) => `  ${u.action.replace("_", " ")} ${u.address} on ${u.host}: ${u.detail}`);
  const message = [
    `premiscale apply --refresh-only: ${updates.length} update${updates.length === 1 ? "" : "s"} recorded, no VM changed`,
    "",
    ...lines,
    "",
    `Plan-Created: ${plan.created_at}`,
    `Based-On: lineage ${plan.based_on.lineage ?? "(new)"}, serial ${plan.based_on.serial}`,
    ...(plan.based_on.config_commit ? [`Config-Commit: ${plan.based_on.config_commit}`] : []),
  ].join("\n");
  return { recorded: updates, commit: await lock.commit(message + "\n") };
}
