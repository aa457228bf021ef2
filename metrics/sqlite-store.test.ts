import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteStore } from "./sqlite-store.js";
import type { DomainCounters } from "./types.js";

const T0 = Date.parse("2026-11-01T12:00:00Z");
const ALL = ["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"] as const;
let dir = "";
const stores: SqliteStore[] = [];
const open = (o: Partial<ConstructorParameters<typeof SqliteStore>[0]> = {}) => {
  const s = new SqliteStore({ path: join(dir, "metrics.db"), ...o });
  stores.push(s);
  return s;
};

/** A domain whose counters grow steadily: `cpuPct` of 2 vCPUs, 1000 B/s read, 10 B/s received, memory 40% used. */
function steady(name: string, fromS: number, toS: number, stepS: number, cpuPct: number, base = 0): DomainCounters[] {
  const out: DomainCounters[] = [];
  for (let t = fromS; t <= toS; t += stepS) {
    const e = t - fromS;
    out.push({
      name,
      at: T0 + t * 1000,
      cpuTimeNs: base + e * 2e9 * (cpuPct / 100),
      vcpus: 2,
      blockReadBytes: base + e * 1000,
      blockWriteBytes: 0,
      netRxBytes: base + e * 10,
      netTxBytes: 0,
      balloonAvailableKiB: 1000,
      balloonUsableKiB: 600,
    });
  }
  return out;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "premiscale-metrics-"));
});
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

describe("SqliteStore", () => {
  it("answers a window query with rates computed from consecutive counters", async () => {
    const s = open();
    s.ingest([...steady("web-1", 0, 120, 15, 30), ...steady("web-2", 0, 120, 15, 70), ...steady("other", 0, 120, 15, 99)]);
    const m = await s.groupMetrics({ group: "web", members: ["web-1", "web-2"], windowSeconds: 60, now: new Date(T0 + 120_000), metrics: ALL });
    expect(Object.keys(m.members)).toEqual(["web-1", "web-2"]);
    const w1 = m.members["web-1"]!;
    expect(w1.cpu!.map((x) => x.at)).toEqual([75, 90, 105, 120].map((t) => T0 + t * 1000));
    for (const x of w1.cpu!) expect(x.value).toBeCloseTo(30, 9);
    for (const x of m.members["web-2"]!.cpu!) expect(x.value).toBeCloseTo(70, 9);
    expect(w1.disk_read_bytes!.map((x) => x.value)).toEqual([1000, 1000, 1000, 1000]);
    expect(w1.net_rx_bytes!.map((x) => x.value)).toEqual([10, 10, 10, 10]);
    expect(w1.memory!.map((x) => x.value)).toEqual([40, 40, 40, 40]);
  });

  it("gives a member without data empty samples, and memory nothing when the guest reports none", async () => {
    const s = open();
    s.ingest([{ name: "web-1", at: T0, cpuTimeNs: 0, vcpus: 1, balloonCurrentKiB: 65536, balloonRssKiB: 40000 }, { name: "web-1", at: T0 + 15_000, cpuTimeNs: 3e9, vcpus: 1, balloonCurrentKiB: 65536 }]);
    const m = await s.groupMetrics({ group: "web", members: ["web-1", "web-9"], windowSeconds: 60, now: new Date(T0 + 15_000), metrics: ["cpu", "memory"] });
    expect(m.members["web-1"]).toEqual({ cpu: [{ at: T0 + 15_000, value: 20 }], memory: [] });
    expect(m.members["web-9"]).toEqual({ cpu: [], memory: [] });
  });

  it("drops the interval of a restart instead of giving a negative rate", async () => {
    const s = open();
    s.ingest([
      { name: "web-1", at: T0, cpuTimeNs: 50e9, vcpus: 1 },
      { name: "web-1", at: T0 + 10_000, cpuTimeNs: 1e9, vcpus: 1 },
      { name: "web-1", at: T0 + 20_000, cpuTimeNs: 6e9, vcpus: 1 },
    ]);
    const m = await s.groupMetrics({ group: "web", members: ["web-1"], windowSeconds: 60, now: new Date(T0 + 20_000), metrics: ["cpu"] });
    expect(m.members["web-1"]!.cpu).toEqual([{ at: T0 + 20_000, value: 50 }]);
  });

  it("uses WAL and keeps what it stored across a reopen", async () => {
    const s = open();
    s.ingest(steady("web-1", 0, 30, 15, 50));
    await s.close();
    const db = new Database(join(dir, "metrics.db"), { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect((db.prepare("SELECT count(*) AS n FROM raw").get() as { n: number }).n).toBe(3);
    db.close();
    const again = open();
    const m = await again.groupMetrics({ group: "web", members: ["web-1"], windowSeconds: 60, now: new Date(T0 + 30_000), metrics: ["cpu"] });
    expect(m.members["web-1"]!.cpu!.map((x) => Math.round(x.value))).toEqual([50, 50]);
  });

  it("rolls complete minutes up, drops raw rows past their retention, and answers long windows from roll-ups", async () => {
    const s = open({ rawRetentionSeconds: 600, rawQueryMaxSeconds: 300 });
    // 30 minutes at 15 s, 40% of 2 vCPUs, ingested as the collector would: one reading per domain at a time.
    for (const c of steady("web-1", 0, 1800, 15, 40)) s.ingest([c]);
    const db = new Database(join(dir, "metrics.db"), { readonly: true });
    const raw = db.prepare("SELECT min(at) AS lo, count(*) AS n FROM raw").get() as { lo: number; n: number };
    const rollups = db.prepare("SELECT at FROM rollup ORDER BY at").all() as { at: number }[];
    db.close();
    // Raw rows older than 600 s before the newest reading are gone.
    expect(raw.lo).toBeGreaterThanOrEqual(T0 + 1200_000);
    expect(raw.n).toBe(41);
    // One roll-up row per complete minute, stamped with the minute's last reading.
    expect(rollups.length).toBe(30);
    expect(rollups[0]!.at).toBe(T0 + 45_000);
    expect(rollups[29]!.at).toBe(T0 + 1785_000);

    const m = await s.groupMetrics({ group: "web", members: ["web-1"], windowSeconds: 1500, now: new Date(T0 + 1800_000), metrics: ["cpu", "disk_read_bytes", "memory"] });
    const cpu = m.members["web-1"]!.cpu!;
    // Minute rows for the old part (one a minute), then the raw rows after the last roll-up.
    expect(cpu.filter((x) => x.at < T0 + 1785_000).length).toBe(24);
    expect(cpu.filter((x) => x.at > T0 + 1785_000).map((x) => x.at)).toEqual([T0 + 1800_000]);
    for (const x of cpu) expect(x.value).toBeCloseTo(40, 9);
    for (const x of m.members["web-1"]!.disk_read_bytes!) expect(x.value).toBeCloseTo(1000, 9);
    for (const x of m.members["web-1"]!.memory!) expect(x.value).toBeCloseTo(40, 9);
  });

  it("marks a roll-up whose minute held a restart, so that interval has no rate even when counters rose again", async () => {
    const s = open({ rawQueryMaxSeconds: 60 });
    const rows: DomainCounters[] = [
      { name: "web-1", at: T0 + 15_000, cpuTimeNs: 10e9, vcpus: 1 },
      { name: "web-1", at: T0 + 45_000, cpuTimeNs: 40e9, vcpus: 1 },
      // restart at 70 s: the counter drops, then climbs past its old value within the minute
      { name: "web-1", at: T0 + 75_000, cpuTimeNs: 1e9, vcpus: 1 },
      { name: "web-1", at: T0 + 105_000, cpuTimeNs: 90e9, vcpus: 1 },
      { name: "web-1", at: T0 + 165_000, cpuTimeNs: 120e9, vcpus: 1 },
      { name: "web-1", at: T0 + 185_000, cpuTimeNs: 125e9, vcpus: 1 },
    ];
    for (const r of rows) s.ingest([r]);
    const m = await s.groupMetrics({ group: "web", members: ["web-1"], windowSeconds: 180, now: new Date(T0 + 185_000), metrics: ["cpu"] });
    // roll-ups: 45 s (40e9), 105 s (90e9, reset), 165 s (120e9); raw after: 185 s.
    expect(m.members["web-1"]!.cpu).toEqual([
      { at: T0 + 165_000, value: 50 },
      { at: T0 + 185_000, value: 25 },
    ]);
  });

  it("forgets roll-ups after their retention", async () => {
    const s = open({ rawRetentionSeconds: 120, rollupRetentionSeconds: 600 });
    for (const c of steady("web-1", 0, 1200, 30, 10)) s.ingest([c]);
    const db = new Database(join(dir, "metrics.db"), { readonly: true });
    const lo = (db.prepare("SELECT min(at) AS lo FROM rollup").get() as { lo: number }).lo;
    db.close();
    expect(lo).toBeGreaterThanOrEqual(T0 + 600_000);
  });

  it("refuses a retention that is not positive, naming the option", () => {
    expect(() => open({ rawRetentionSeconds: 0 })).toThrow(/rawRetentionSeconds/);
  });

  it("fails with a MetricsError naming the file when the database cannot be opened", () => {
    expect(() => new SqliteStore({ path: join(dir, "no", "such", "dir", "m.db") })).toThrow(/metrics source .*m\.db: cannot open the database/);
  });
});
