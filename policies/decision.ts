/**
 * The decide stage's port: a `Decision` is what any decision source says about a group (its desired size, why, and
 * which instances go first or must stay), and a `DecisionSource` is one way of deciding. Sources today: the config's
 * `desired` (static.ts) and the policy engine (decide-group.ts); next, Kubernetes (cluster-autoscaler's externalgrpc
 * calls, the native pending-pods loop). The planner takes one decision per group and does not know which source made it.
 */
import type { MetricName, Policy } from "../config/scaling.js";
import type { GroupConfig } from "../config/types.js";
import type { Member } from "./aggregate.js";

/**
 * Why a group has the size it has (machine-readable). The policy codes say which policy moved the size; the others
 * say which step of the pipeline decided (see policies/README.md). Other sources bring codes of their own (open).
 */
export type DecisionCode = KnownDecisionCode | (string & {});

/** The codes of the config's `desired` and of the policy engine. */
export type KnownDecisionCode =
  | "config" // the config's `desired` field (no policy engine)
  | "target_tracking"
  | "step"
  | "threshold"
  | "schedule" // a schedule's desired size or floor
  | "steady" // the policies recommend the current size
  | "no_policies"
  | "missing_data" // metrics are missing: never scale in
  | "stabilized"
  | "rate_limited"
  | "cooldown"
  | "error_backoff"
  | "unneeded_time" // scale-in waits until the size has been unneeded long enough
  | "too_many_unready"
  | "at_min"
  | "at_max"
  | "mode_off"
  | "scale_out_only";

/** What one policy recommended, and why. */
export interface PolicyOutcome {
  /** Index in the group's `policies`. */
  index: number;
  type: Policy["type"];
  /** Missing: the policy takes no part (a schedule not in effect, or one with only min/max). */
  recommendation?: number;
  code: KnownDecisionCode;
  reason: string;
  /** Data this policy needs is missing, so it recommends no scale-in. */
  missing: boolean;
  metric?: MetricName;
  /** The aggregated metric value the policy looked at. */
  value?: number;
  /** Schedules in effect: the floor and ceiling they set. */
  minSize?: number;
  maxSize?: number;
}

/** The numbers behind a metric-driven decision. */
export interface DecisionDetails {
  current: number;
  /** Maximum of the policies' recommendations (the current size when none has one): what stabilisation records. */
  recommendation: number;
  /** After the stabilisation windows. */
  stabilized: number;
  /** After the rate limits. */
  limited: number;
  /** Effective bounds: the group's min/max with the schedules in effect. */
  min: number;
  max: number;
  policies: PolicyOutcome[];
  /** How far back the history must reach for the windows and delays of this group (see `recordDecision`). */
  retainSeconds: number;
}

/** A desired size per group with the reason for it: what the planner takes as input. */
export interface Decision {
  group: string;
  desired: number;
  /** Machine-readable reason. */
  code: DecisionCode;
  /**
   * Human reason with its numbers, e.g. "desired: 3 in config", "avg cpu 82% > target 60% over 5m" or
   * "cluster-autoscaler: DeleteNodes web-1a2b3c4d".
   */
  reason: string;
  /** Which source decided (`config`, `policies`, `cluster-autoscaler`, …). @default "config" */
  source?: string;
  /** Present on decisions of the policy engine (`decideGroup`). */
  details?: DecisionDetails;
  /**
   * Instances (by name) to remove first when the group scales in, in this order (cluster-autoscaler's DeleteNodes
   * names the nodes it wants gone). Names that are not present members are skipped; the planner's own victim order
   * fills the rest.
   */
  remove?: string[];
  /**
   * Instances (by name) that go whatever the size: the planner deletes those present, then scales what is left to
   * `desired` (cluster-autoscaler's DeleteNodes: it drained them, so they must go even when another VM of the group
   * was lost meanwhile and has to be replaced).
   */
  removeNow?: string[];
  /** Instances (by name) scale-in must never choose (scale-in protection; a node whose pods cannot move). */
  keep?: string[];
}

/**
 * One way of deciding group sizes. `decide` is pure: what it needs (metrics, history, targets recorded by an
 * external autoscaler) was gathered before planning, and it gets exactly the members the planner counts.
 */
export interface DecisionSource {
  /** Short name, recorded as `Decision.source`. */
  readonly name: string;
  /** Whether this source decides the group (the first source that owns a group decides it). */
  owns(group: GroupConfig): boolean;
  decide(group: GroupConfig, members: Member[]): Decision;
}

/** The decision for each group from the first of `sources` that owns it, or undefined when none does. */
export function decideWith(sources: readonly DecisionSource[]): (group: GroupConfig, members: Member[]) => Decision | undefined {
  return (group, members) => {
    const source = sources.find((s) => s.owns(group));
    return source ? { source: source.name, ...source.decide(group, members) } : undefined;
  };
}
