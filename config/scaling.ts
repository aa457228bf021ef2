/**
 * Scaling configuration of a group, as the user writes it (camelCase, optional fields have `@default`s), and the
 * defaults. `resolveScaling` fills the defaults; `validateScaling` (validate-scaling.ts) checks the rules between
 * fields. The policy engine (policies/) reads these; it does not own them.
 */

/** Metrics the engine knows: `cpu` is percent per vCPU, `memory` used percent, the rest bytes per second. */
export const METRIC_NAMES = ["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"] as const;

/** One of `METRIC_NAMES`. */
export type MetricName = (typeof METRIC_NAMES)[number];

/** Keeps the average of a metric near a target: `desired = ceil(members × average / target)` (HPA, AWS). */
export interface TargetTrackingPolicy {
  type: "target-tracking";
  metric: MetricName;
  /** Average per member to aim for, in the metric's unit (percent for cpu and memory). */
  target: number;
  /** Relative band around the target where nothing happens (0.1 = ±10%). @default 0.1 */
  tolerance?: number;
  /** Only ever scale out; scale-in is left to other policies. @default false */
  disableScaleIn?: boolean;
  /** Each member's samples are averaged over this window. @default 60 */
  windowSeconds?: number;
}

/** How a step's adjustment changes the size (AWS). */
export type AdjustmentType = "ChangeInCapacity" | "ExactCapacity" | "PercentChangeInCapacity";

/** One step: applies when `lower <= average − threshold < upper` (above the threshold; below it, `lower < … <= upper`). */
export interface Step {
  /** Missing: no lower bound. */
  lower?: number;
  /** Missing: no upper bound. */
  upper?: number;
  /** VMs to add (negative: remove), the size itself, or a percentage, after `adjustmentType`. */
  adjustment: number;
}

/** Adjusts the size by the step the group average falls into (AWS step scaling). */
export interface StepScalingPolicy {
  type: "step";
  metric: MetricName;
  /** Step bounds are relative to this value. @default 0 */
  threshold?: number;
  /** Contiguous: sorted by bounds, each step's `upper` is the next one's `lower`; no gaps, no overlaps. */
  steps: Step[];
  /** @default "ChangeInCapacity" */
  adjustmentType?: AdjustmentType;
  /** With `PercentChangeInCapacity`: change at least this many VMs. */
  minAdjustmentMagnitude?: number;
  /** @default 60 */
  windowSeconds?: number;
}

/** Adds or removes `change` VMs when M of the last N datapoints are above or below a value (an alarm). */
export interface ThresholdPolicy {
  type: "threshold";
  metric: MetricName;
  /** Scale out when the group average is above this. */
  above?: number;
  /** Scale in when the group average is below this. */
  below?: number;
  /** M: datapoints that must breach. @default 3 */
  datapointsToAlarm?: number;
  /** N: datapoints looked at, the newest N periods. @default 3 */
  evaluationPeriods?: number;
  /** Length of one datapoint. @default 60 */
  periodSeconds?: number;
  /** VMs added or removed. @default 1 */
  change?: number;
}

/**
 * A cron schedule that sets a floor (`minSize`), a ceiling (`maxSize`) or a size the policies start from (`desired`)
 * while it is in effect: for `durationSeconds` after each run (GCP), or, without a duration, from its latest run
 * until another duration-less schedule runs (AWS scheduled actions). Dynamic policies keep working inside.
 */
export interface ScheduledPolicy {
  type: "schedule";
  /** Five fields (minute hour day-of-month month day-of-week) or a nickname such as `@daily`. */
  cron: string;
  /** IANA time zone the cron is read in. @default "UTC" */
  timezone?: string;
  minSize?: number;
  maxSize?: number;
  /** A recommendation like any policy's: it goes through stabilisation and rate limits, and others may go higher. */
  desired?: number;
  durationSeconds?: number;
}

/** Any policy; several combine by taking the maximum of their recommendations. */
export type Policy = TargetTrackingPolicy | StepScalingPolicy | ThresholdPolicy | ScheduledPolicy;

/** A rate limit: at most `value` VMs (`Pods`) or percent of the size at the start of the period, per period. */
export interface RateLimit {
  type: "Pods" | "Percent";
  value: number;
  periodSeconds: number;
}

/** Stabilisation and rate limits for one direction (HPA `behavior`). */
export interface ScalingRules {
  /** Up: the lowest recommendation of this window is used; down: the highest. At most 3600. */
  stabilizationWindowSeconds: number;
  policies: RateLimit[];
  /** `Max`: the limit allowing the most change; `Min`: the least; `Disabled`: no change in this direction. */
  selectPolicy: "Max" | "Min" | "Disabled";
}

/** Stabilisation and rate limits, as written (each field falls back to its default). */
export interface BehaviorSpec {
  scaleUp?: Partial<ScalingRules>;
  scaleDown?: Partial<ScalingRules>;
}

/** Delays and health limits (after cluster-autoscaler and the proxmox-autoscaler seed). */
export interface Delays {
  /** Scale in only after the recommendations have been below the size for this long. @default 600 */
  scaleDownUnneededSeconds: number;
  /** No scale-out this soon after the last scale-out. @default 300 */
  scaleUpCooldownSeconds: number;
  /** No scale-in this soon after the last scale-out. @default 600 */
  delayAfterAddSeconds: number;
  /** No scale-in this soon after the last scale-in. @default 600 */
  delayAfterDeleteSeconds: number;
  /** No scaling this soon after an error (a failed apply, or a VM that never became ready). @default 600 */
  delayAfterErrorSeconds: number;
  /** A VM not ready this long after it was created has failed to provision; it counts as unready. @default 900 */
  maxProvisionSeconds: number;
  /** Stop scaling when more than this percent of members are unready… @default 45 */
  maxUnreadyPercent: number;
  /** …and more than this many. @default 3 */
  maxUnreadyCount: number;
}

/** `on`: scale both ways; `off`: keep the current size (within min/max); `scale-out-only`: never scale in. */
export type Mode = "on" | "off" | "scale-out-only";

/** A group's scaling configuration as written; every field is optional. */
export interface ScalingSpec {
  /** @default "on" */
  mode?: Mode;
  /** Members younger than this are left out of the metrics (their samples before it too). @default 60 */
  warmupSeconds?: number;
  /** @default [] */
  policies?: Policy[];
  behavior?: BehaviorSpec;
  delays?: Partial<Delays>;
}

/** A scaling configuration with every default filled in. */
export interface Scaling {
  mode: Mode;
  warmupSeconds: number;
  policies: Policy[];
  behavior: { scaleUp: ScalingRules; scaleDown: ScalingRules };
  delays: Delays;
}

/** HPA's defaults: up 4 VMs or 100% per 15 s, whichever allows more, no window; down 100% per 15 s, 300 s window. */
export const DEFAULT_BEHAVIOR: Scaling["behavior"] = {
  scaleUp: {
    stabilizationWindowSeconds: 0,
    policies: [
      { type: "Pods", value: 4, periodSeconds: 15 },
      { type: "Percent", value: 100, periodSeconds: 15 },
    ],
    selectPolicy: "Max",
  },
  scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: "Percent", value: 100, periodSeconds: 15 }], selectPolicy: "Max" },
};

/** The seeds' delays (see `Delays`). */
export const DEFAULT_DELAYS: Delays = {
  scaleDownUnneededSeconds: 600,
  scaleUpCooldownSeconds: 300,
  delayAfterAddSeconds: 600,
  delayAfterDeleteSeconds: 600,
  delayAfterErrorSeconds: 600,
  maxProvisionSeconds: 900,
  maxUnreadyPercent: 45,
  maxUnreadyCount: 3,
};

/** Policy field defaults, for documentation and for the policies themselves. */
export const POLICY_DEFAULTS = {
  tolerance: 0.1,
  windowSeconds: 60,
  adjustmentType: "ChangeInCapacity",
  datapointsToAlarm: 3,
  evaluationPeriods: 3,
  periodSeconds: 60,
  change: 1,
  timezone: "UTC",
} as const;

/** GCP's initialisation period: a member's metrics count this long after it was created. */
export const DEFAULT_WARMUP_SECONDS = 60;

/** The longest stabilisation window HPA allows, and ours. */
export const MAX_STABILIZATION_WINDOW_SECONDS = 3600;

/** The fields of `o` that are not undefined, so that spreading them keeps the defaults. */
const defined = <T extends object>(o: T | undefined): Partial<T> =>
  Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Fills in every default of a scaling configuration. */
export function resolveScaling(spec: ScalingSpec = {}): Scaling {
  return {
    mode: spec.mode ?? "on",
    warmupSeconds: spec.warmupSeconds ?? DEFAULT_WARMUP_SECONDS,
    policies: spec.policies ?? [],
    behavior: {
      scaleUp: { ...DEFAULT_BEHAVIOR.scaleUp, ...defined(spec.behavior?.scaleUp) },
      scaleDown: { ...DEFAULT_BEHAVIOR.scaleDown, ...defined(spec.behavior?.scaleDown) },
    },
    delays: { ...DEFAULT_DELAYS, ...defined(spec.delays) },
  };
}
