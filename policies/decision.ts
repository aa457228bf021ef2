import type { MetricName, Policy } from "../config/scaling.js";

/**
 * Why a group has the size it has (machine-readable). The policy codes say which policy moved the size; the others
 * say which step of the pipeline decided (see policies/README.md).
 */
export type DecisionCode =
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
  code: DecisionCode;
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
  /** Human reason with its numbers, e.g. "desired: 3 in config" or "avg cpu 82% > target 60% over 5m". */
  reason: string;
  /** Present on decisions of the policy engine (`decideGroup`). */
  details?: DecisionDetails;
}
