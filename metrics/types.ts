import { PremiscaleError } from "../config/errors.js";
import type { MetricName } from "../config/scaling.js";
import type { VmCounters } from "../providers/provider.js";

/** One reading of a metric (a rate or a percentage, computed by the store), `at` in milliseconds since the epoch. */
export interface Sample {
  at: number;
  value: number;
}

/** A member's samples per metric over the window the policy engine looks at. */
export type MemberSamples = Partial<Record<MetricName, Sample[]>>;

/** Samples of a group's members by member name. Where `decideGroup` gets none at all, the metrics source failed. */
export interface GroupMetrics {
  members: Record<string, MemberSamples>;
}

/** Raw cumulative counters of one VM at one moment (the Provider port's `VmCounters`). */
export type DomainCounters = VmCounters;

/**
 * The port the collector reads counters through: one per host, made from that host's provider
 * (`Provider.counters`; serve gives the collector providers of its own, so sampling never queues behind an apply).
 */
export interface CounterSource {
  /** Host name, for reports. */
  readonly host: string;
  /**
   * Counters of the named domains, in one call to the host. Domains that do not exist (any more) are left out;
   * the call as a whole fails (rejects) only when the host does not answer. Stops waiting when `signal` aborts.
   */
  sample(names: string[], signal?: AbortSignal): Promise<DomainCounters[]>;
}

/** What a metrics source is asked: one group's members over a window ending at `now`. */
export interface GroupMetricsQuery {
  group: string;
  /** Domain names of the group's members. */
  members: string[];
  windowSeconds: number;
  now: Date;
  metrics: readonly MetricName[];
}

/**
 * Where the policy engine's metrics come from: the embedded store (`SqliteStore`) or a read-only server
 * (`PrometheusSource`, `InfluxSource`). Every value is a rate or a percentage (see README: units).
 */
export interface MetricsSource {
  /** Samples per member and metric over `(now − windowSeconds, now]`. Throws `MetricsError` when the source fails. */
  groupMetrics(q: GroupMetricsQuery): Promise<GroupMetrics>;
  close(): Promise<void>;
}

/**
 * A metrics source is down, timed out, refused the query or answered something that is not what its API promises.
 * The caller treats the group's metrics as missing (which never scales in).
 */
export class MetricsError extends PremiscaleError {
  override name = "MetricsError";
  constructor(
    /** The source's URL (or file path), without credentials. */
    readonly source: string,
    message: string,
    hint?: string,
    options?: { cause?: unknown; code?: string },
  ) {
    super(`metrics source ${source}: ${message}`, options?.code ?? "metrics_failed", hint, options);
  }
}
