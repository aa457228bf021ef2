import { PremiscaleError } from "../config/errors.js";
import type { GroupMetrics } from "../policies/aggregate.js";
import type { MetricName } from "../policies/types.js";

export type { GroupMetrics, MetricName };

/**
 * Raw cumulative counters of one domain at one moment, as a host reports them. Rates are computed from two of
 * these at query time, never stored. A field a host did not report is `undefined` (never 0).
 */
export interface DomainCounters {
  /** Domain name (unique across hosts: premiscale names are `GROUP-UUID8`). */
  name: string;
  /** When the counters were read, ms since the epoch. */
  at: number;
  /** Total CPU time of the domain (libvirt `cpu.time`), ns. */
  cpuTimeNs?: number;
  /** vCPUs online (libvirt `vcpu.current`). */
  vcpus?: number;
  /** Bytes and requests read / written, summed over the domain's disks. */
  blockReadBytes?: number;
  blockWriteBytes?: number;
  blockReadReqs?: number;
  blockWriteReqs?: number;
  /** Bytes received / sent, summed over the domain's interfaces. */
  netRxBytes?: number;
  netTxBytes?: number;
  /** libvirt `balloon.current`: memory the host gives the guest, KiB. Not a utilisation. */
  balloonCurrentKiB?: number;
  /** Guest-reported (virtio balloon stats) memory it sees in total (`balloon.available`), KiB. */
  balloonAvailableKiB?: number;
  /** Guest-reported free memory (`balloon.unused`), KiB. */
  balloonUnusedKiB?: number;
  /** Guest-reported memory usable without swapping (`balloon.usable`, like MemAvailable), KiB. */
  balloonUsableKiB?: number;
  /** Resident set size of the QEMU process on the host (`balloon.rss`), KiB. */
  balloonRssKiB?: number;
}

/**
 * The port the collector reads counters through: one per host. The libvirt adapter is
 * `providers/libvirt/domain-stats.ts` (`LibvirtCounterSource`).
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
