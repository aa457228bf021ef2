import type { MetricName } from "../config/scaling.js";
import type { DomainCounters, MemberSamples, Sample } from "./types.js";

/** A stored counter row: counters, and whether a roll-up saw them go down inside its minute. */
export interface CounterRow extends DomainCounters {
  /** Some counter went down between the previous row and this one (a restart): the interval has no rate. */
  reset?: boolean;
}

/** Options of `samplesFromCounters`. */
export interface RateOptions {
  /** Samples are kept when `fromMs < at ≤ toMs`. */
  fromMs: number;
  toMs: number;
  /** Two rows further apart than this give no rate (the collector was down; a restart may hide in the gap). */
  maxGapMs: number;
  metrics: readonly MetricName[];
}

type CounterField = "blockReadBytes" | "blockWriteBytes" | "netRxBytes" | "netTxBytes";

const BYTE_COUNTERS: Partial<Record<MetricName, CounterField>> = {
  disk_read_bytes: "blockReadBytes",
  disk_write_bytes: "blockWriteBytes",
  net_rx_bytes: "netRxBytes",
  net_tx_bytes: "netTxBytes",
};

/**
 * Memory used, in percent of what the guest sees, from the guest's own figures (virtio balloon stats):
 * `100 × (available − usable) / available`, with `unused` (free) standing in where the guest reports no `usable`.
 * `undefined` when the guest reports nothing: the balloon size and the QEMU process's RSS say nothing about how much
 * memory the guest uses, so they are never turned into a percentage.
 */
export function memoryUsedPercent(c: DomainCounters): number | undefined {
  const total = c.balloonAvailableKiB;
  const free = c.balloonUsableKiB ?? c.balloonUnusedKiB;
  if (total === undefined || free === undefined || !(total > 0)) return undefined;
  return Math.min(100, Math.max(0, (100 * (total - free)) / total));
}

/**
 * CPU use between two readings, in percent per vCPU: `Δcpu time / (Δwall × vCPUs)`. When the vCPU count changed in
 * between, the larger count is used (the time is a mix of both; this never overstates). `undefined` for a counter
 * that went down (a restart), a missing field, or readings out of order.
 */
export function cpuPercent(prev: DomainCounters, cur: DomainCounters): number | undefined {
  const dtNs = (cur.at - prev.at) * 1e6;
  if (prev.cpuTimeNs === undefined || cur.cpuTimeNs === undefined || !(dtNs > 0)) return undefined;
  const d = cur.cpuTimeNs - prev.cpuTimeNs;
  const vcpus = Math.max(prev.vcpus ?? 0, cur.vcpus ?? 0);
  if (d < 0 || vcpus <= 0) return undefined;
  return (100 * d) / (dtNs * vcpus);
}

/** Bytes per second of one counter between two readings; `undefined` when it went down or is missing. */
export function bytesPerSecond(prev: DomainCounters, cur: DomainCounters, field: CounterField): number | undefined {
  const a = prev[field];
  const b = cur[field];
  const dt = (cur.at - prev.at) / 1000;
  if (a === undefined || b === undefined || !(dt > 0) || b < a) return undefined;
  return (b - a) / dt;
}

/**
 * Turns one member's counter rows (oldest first; include the row before the window so its first interval has a
 * rate) into samples: each rate is stamped with the later reading's time. Pure.
 */
export function samplesFromCounters(rows: readonly CounterRow[], opts: RateOptions): MemberSamples {
  const out: MemberSamples = {};
  for (const m of opts.metrics) out[m] = [];
  const push = (m: MetricName, at: number, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) (out[m] as Sample[]).push({ at, value });
  };
  for (let i = 0; i < rows.length; i++) {
    const cur = rows[i]!;
    if (cur.at <= opts.fromMs || cur.at > opts.toMs) continue;
    if (out.memory) push("memory", cur.at, memoryUsedPercent(cur));
    const prev = i > 0 ? rows[i - 1]! : undefined;
    if (!prev || cur.reset || cur.at - prev.at > opts.maxGapMs) continue;
    if (out.cpu) push("cpu", cur.at, cpuPercent(prev, cur));
    for (const m of opts.metrics) {
      const field = BYTE_COUNTERS[m];
      if (field) push(m, cur.at, bytesPerSecond(prev, cur, field));
    }
  }
  return out;
}

/** True when some counter went down from `prev` to `cur` (the domain restarted, or a disk or NIC went away). */
export function countersWentDown(prev: DomainCounters, cur: DomainCounters): boolean {
  const fields = ["cpuTimeNs", "blockReadBytes", "blockWriteBytes", "blockReadReqs", "blockWriteReqs", "netRxBytes", "netTxBytes"] as const;
  return fields.some((f) => prev[f] !== undefined && cur[f] !== undefined && cur[f]! < prev[f]!);
}
