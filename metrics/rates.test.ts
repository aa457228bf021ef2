import { describe, expect, it } from "vitest";
import { cpuPercent, memoryUsedPercent, samplesFromCounters, type CounterRow } from "./rates.js";

const T0 = Date.parse("2026-11-01T12:00:00Z");
const row = (s: number, fields: Partial<CounterRow>): CounterRow => ({ name: "web-1", at: T0 + s * 1000, ...fields });
const ALL = ["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"] as const;
const opts = { fromMs: T0, toMs: T0 + 3600_000, maxGapMs: 300_000, metrics: ALL };

describe("rates from counters", () => {
  it("computes cpu percent per vCPU as cpu time over wall time times vCPUs", () => {
    // 2 vCPUs, 15 s, 15 s of CPU time: one vCPU's worth = 50%.
    expect(cpuPercent(row(0, { cpuTimeNs: 0, vcpus: 2 }), row(15, { cpuTimeNs: 15e9, vcpus: 2 }))).toBeCloseTo(50, 10);
  });

  it("uses the larger vCPU count when it changed between two readings", () => {
    expect(cpuPercent(row(0, { cpuTimeNs: 0, vcpus: 1 }), row(10, { cpuTimeNs: 10e9, vcpus: 4 }))).toBeCloseTo(25, 10);
    expect(cpuPercent(row(0, { cpuTimeNs: 0, vcpus: 4 }), row(10, { cpuTimeNs: 10e9, vcpus: 1 }))).toBeCloseTo(25, 10);
  });

  it("stamps each rate with the later reading and computes bytes per second", () => {
    const s = samplesFromCounters(
      [
        row(-15, { cpuTimeNs: 1e9, vcpus: 1, blockReadBytes: 1000, blockWriteBytes: 0, netRxBytes: 0, netTxBytes: 100 }),
        row(15, { cpuTimeNs: 16e9, vcpus: 1, blockReadBytes: 31000, blockWriteBytes: 300, netRxBytes: 60, netTxBytes: 100 }),
      ],
      opts,
    );
    expect(s.cpu).toEqual([{ at: T0 + 15_000, value: 50 }]);
    expect(s.disk_read_bytes).toEqual([{ at: T0 + 15_000, value: 1000 }]);
    expect(s.disk_write_bytes).toEqual([{ at: T0 + 15_000, value: 10 }]);
    expect(s.net_rx_bytes).toEqual([{ at: T0 + 15_000, value: 2 }]);
    expect(s.net_tx_bytes).toEqual([{ at: T0 + 15_000, value: 0 }]);
  });

  it("never gives a negative rate: an interval where a counter went down (a restart) is dropped", () => {
    const s = samplesFromCounters(
      [
        row(15, { cpuTimeNs: 100e9, vcpus: 1, netRxBytes: 5000 }),
        row(30, { cpuTimeNs: 1e9, vcpus: 1, netRxBytes: 10 }),
        row(45, { cpuTimeNs: 4e9, vcpus: 1, netRxBytes: 160 }),
      ],
      opts,
    );
    expect(s.cpu).toEqual([{ at: T0 + 45_000, value: 20 }]);
    expect(s.net_rx_bytes).toEqual([{ at: T0 + 45_000, value: 10 }]);
  });

  it("drops an interval a roll-up marked as reset, even when the counters rose again", () => {
    const s = samplesFromCounters([row(60, { cpuTimeNs: 10e9, vcpus: 1 }), row(120, { cpuTimeNs: 50e9, vcpus: 1, reset: true })], opts);
    expect(s.cpu).toEqual([]);
  });

  it("gives no rate across a gap longer than maxGap", () => {
    const s = samplesFromCounters([row(10, { cpuTimeNs: 0, vcpus: 1 }), row(400, { cpuTimeNs: 39e9, vcpus: 1 })], opts);
    expect(s.cpu).toEqual([]);
  });

  it("keeps only samples inside the window (from, to]", () => {
    const rows = [0, 15, 30, 45].map((t) => row(t, { cpuTimeNs: t * 1e9, vcpus: 1 }));
    const s = samplesFromCounters(rows, { ...opts, fromMs: T0 + 15_000, toMs: T0 + 30_000 });
    expect(s.cpu).toEqual([{ at: T0 + 30_000, value: 100 }]);
  });

  it("reads memory use from the guest's usable memory, else its free memory", () => {
    expect(memoryUsedPercent(row(0, { balloonAvailableKiB: 1000, balloonUsableKiB: 250, balloonUnusedKiB: 100 }))).toBe(75);
    expect(memoryUsedPercent(row(0, { balloonAvailableKiB: 1000, balloonUnusedKiB: 100 }))).toBe(90);
  });

  it("treats memory as missing, not 0, when the guest reports nothing (balloon size and RSS are not utilisation)", () => {
    const c = row(15, { cpuTimeNs: 1, vcpus: 1, balloonCurrentKiB: 65536, balloonRssKiB: 45300 });
    expect(memoryUsedPercent(c)).toBeUndefined();
    expect(samplesFromCounters([c], opts).memory).toEqual([]);
  });

  it("gives no cpu rate without a vCPU count or a predecessor", () => {
    expect(cpuPercent(row(0, { cpuTimeNs: 0 }), row(10, { cpuTimeNs: 1e9 }))).toBeUndefined();
    expect(samplesFromCounters([row(10, { cpuTimeNs: 1e9, vcpus: 1 })], opts).cpu).toEqual([]);
  });
});
