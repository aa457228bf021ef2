/**
 * The decision source of Kubernetes node groups: cluster-autoscaler's intents (intent-store.ts) as a `Decision`.
 * The group's desired size is cluster-autoscaler's target less its failed instances (slots reported to
 * cluster-autoscaler as failed creates: no VM is made for them until it deletes them); the VMs it named in
 * DeleteNodes go whatever the size (`removeNow`). Pure: the intents are read before planning.
 */
import type { GroupConfig } from "../config/types.js";
import type { Member } from "../policies/aggregate.js";
import type { Decision, DecisionSource } from "../policies/decision.js";
import { initialIntent, type GroupIntent, type IntentOp } from "./intent-store.js";

/** `Decision.source` of Kubernetes node groups. */
export const AUTOSCALER_SOURCE = "cluster-autoscaler";

/** The decision code of Kubernetes node groups. */
export const AUTOSCALER_CODE = "cluster_autoscaler";

/** The reason of a decision: the changes not yet applied, e.g. "cluster-autoscaler: IncreaseSize +2". */
export function intentReason(intent: GroupIntent): string {
  // Runs of the same call are summed (two IncreaseSize +1 read as IncreaseSize +2), in the order they came.
  const runs: { op: IntentOp["op"]; delta: number; nodes: string[] }[] = [];
  for (const op of intent.pending) {
    const last = runs.at(-1);
    if (last?.op === op.op) {
      last.delta += op.delta;
      last.nodes.push(...(op.nodes ?? []));
    } else runs.push({ op: op.op, delta: op.delta, nodes: [...(op.nodes ?? [])] });
  }
  const words = runs.map((r) => (r.op === "DeleteNodes" ? `DeleteNodes ${r.nodes.join(", ")}` : `${r.op} ${r.delta > 0 ? "+" : ""}${r.delta}`));
  const failed = intent.failed.length > 0 ? ` (${intent.failed.length} failed instance(s) wait for cluster-autoscaler to delete them)` : "";
  return `${AUTOSCALER_SOURCE}: ${words.length > 0 ? words.join(", ") : `target ${intent.target}`}${failed}`;
}

/** The source for these intents (groups without one start at their VMs, within min and max). */
export function autoscalerSource(intents: ReadonlyMap<string, GroupIntent>): DecisionSource {
  return {
    name: AUTOSCALER_SOURCE,
    owns: (g: GroupConfig) => g.kubernetes !== undefined,
    decide(g: GroupConfig, members: Member[]): Decision {
      const intent = intents.get(g.name) ?? initialIntent(g.name, Math.min(g.max, Math.max(g.min, members.length)));
      const present = new Set(members.map((m) => m.name));
      const removeNow = intent.remove.map((v) => v.name).filter((n) => present.has(n));
      return {
        group: g.name,
        desired: Math.max(0, intent.target - intent.failed.length),
        code: AUTOSCALER_CODE,
        reason: intentReason(intent),
        ...(removeNow.length > 0 ? { removeNow } : {}),
      };
    },
  };
}
