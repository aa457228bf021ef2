import { describe, expect, it } from "vitest";
import { Collector, type CounterSink, type HostReport } from "./collector.js";
import type { CounterSource, DomainCounters } from "./types.js";

/** An in-memory host: answers after `delayMs`, or fails, or never. */
function host(name: string, behaviour: { delayMs?: number; fail?: string; hang?: boolean } = {}): CounterSource & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    host: name,
    calls,
    sample(names) {
      calls.push(names);
      if (behaviour.hang) return new Promise(() => undefined);
      return new Promise((resolve, reject) =>
        setTimeout(() => (behaviour.fail ? reject(new Error(behaviour.fail)) : resolve(names.map((n) => ({ name: n, at: Date.now(), cpuTimeNs: 1, vcpus: 1 })))), behaviour.delayMs ?? 1),
      );
    },
  };
}

function sink(): CounterSink & { got: DomainCounters[] } {
  const got: DomainCounters[] = [];
  return { got, ingest: (c) => void got.push(...c) };
}

const owned = (m: Record<string, string[]>) => () => new Map(Object.entries(m));

describe("Collector", () => {
  it("asks each host once per round for the domains premiscale owns there, and stores what they answer", async () => {
    const a = host("a");
    const b = host("b");
    const s = sink();
    const c = new Collector({ sources: [a, b], owned: owned({ a: ["web-1", "web-2"], b: ["db-1"] }), sink: s });
    const reports = await c.collect();
    expect(a.calls).toEqual([["web-1", "web-2"]]);
    expect(b.calls).toEqual([["db-1"]]);
    expect(s.got.map((x) => x.name).sort()).toEqual(["db-1", "web-1", "web-2"]);
    expect(reports).toEqual([expect.objectContaining({ host: "a", status: "ok", domains: 2 }), expect.objectContaining({ host: "b", status: "ok", domains: 1 })]);
  });

  it("does not ask a host without owned domains", async () => {
    const a = host("a");
    await new Collector({ sources: [a], owned: owned({ a: [] }), sink: sink() }).collect();
    expect(a.calls).toEqual([]);
  });

  it("marks a failing host with its reason and still collects the others", async () => {
    const s = sink();
    const reports = await new Collector({ sources: [host("a", { fail: "connection refused" }), host("b")], owned: owned({ a: ["x"], b: ["y"] }), sink: s }).collect();
    expect(reports[0]).toMatchObject({ host: "a", status: "failed", kind: "error", reason: "connection refused" });
    expect(reports[1]).toMatchObject({ host: "b", status: "ok" });
    expect(s.got.map((x) => x.name)).toEqual(["y"]);
  });

  it("does not let a hung host stall the others: they are stored and reported before its timeout", async () => {
    const s = sink();
    const seen: { report: HostReport; at: number }[] = [];
    const t0 = performance.now();
    const c = new Collector({
      sources: [host("hung", { hang: true }), host("fast", { delayMs: 5 })],
      owned: owned({ hung: ["x"], fast: ["y"] }),
      sink: s,
      timeoutMs: 400,
      onReport: (report) => seen.push({ report, at: performance.now() - t0 }),
    });
    const reports = await c.collect();
    expect(reports[0]).toMatchObject({ host: "hung", status: "failed", kind: "timeout", reason: "no answer within 0.4 s" });
    const fast = seen.find((r) => r.report.host === "fast")!;
    expect(fast.report.status).toBe("ok");
    expect(fast.at).toBeLessThan(300);
    expect(s.got.map((x) => x.name)).toEqual(["y"]);
    // Its call never ended, so the next round does not pile another one on it.
    const next = await c.collect();
    expect(next[0]).toMatchObject({ host: "hung", status: "busy" });
    expect(next[1]).toMatchObject({ host: "fast", status: "ok" });
  });

  it("reports a store that fails as the host's failure, without throwing", async () => {
    const bad: CounterSink = { ingest: () => { throw new Error("disk full"); } };
    const [r] = await new Collector({ sources: [host("a")], owned: owned({ a: ["x"] }), sink: bad }).collect();
    expect(r).toMatchObject({ host: "a", status: "failed", kind: "store", reason: "disk full" });
  });

  it("collects every interval once started, and stop waits for the round under way", async () => {
    const a = host("a");
    const c = new Collector({ sources: [a], owned: owned({ a: ["x"] }), sink: sink(), intervalMs: 50 });
    c.start();
    await new Promise((r) => setTimeout(r, 230));
    await c.stop();
    const n = a.calls.length;
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThanOrEqual(6);
    await new Promise((r) => setTimeout(r, 120));
    expect(a.calls.length).toBe(n);
  });

  it("refuses an interval that is not positive", () => {
    expect(() => new Collector({ sources: [], owned: owned({}), sink: sink(), intervalMs: 0 })).toThrow(/intervalMs/);
  });
});
