import { afterEach, describe, expect, it, vi } from "vitest";
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
  afterEach(() => void vi.useRealTimers());

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
    vi.useFakeTimers();
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
    let done = false;
    const collecting = c.collect().then((r) => ((done = true), r));
    await vi.advanceTimersByTimeAsync(5);
    // The fast host is stored and reported at 5 ms, while the hung one still holds its round open.
    expect(seen).toEqual([{ report: expect.objectContaining({ host: "fast", status: "ok" }), at: 5 }]);
    expect(s.got.map((x) => x.name)).toEqual(["y"]);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(394);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const reports = await collecting;
    expect(reports[0]).toMatchObject({ host: "hung", status: "failed", kind: "timeout", reason: "no answer within 0.4 s", ms: 400 });
    expect(seen.map((r) => [r.report.host, r.at])).toEqual([["fast", 5], ["hung", 400]]);
    // Its call never ended, so the next round does not pile another one on it.
    const next = c.collect();
    await vi.advanceTimersByTimeAsync(5);
    expect(await next).toEqual([expect.objectContaining({ host: "hung", status: "busy" }), expect.objectContaining({ host: "fast", status: "ok" })]);
  });

  it("reports a store that fails as the host's failure, without throwing", async () => {
    const bad: CounterSink = { ingest: () => { throw new Error("disk full"); } };
    const [r] = await new Collector({ sources: [host("a")], owned: owned({ a: ["x"] }), sink: bad }).collect();
    expect(r).toMatchObject({ host: "a", status: "failed", kind: "store", reason: "disk full" });
  });

  it("collects every interval once started, and stop waits for the round under way", async () => {
    vi.useFakeTimers();
    const a = host("a", { delayMs: 10 });
    const c = new Collector({ sources: [a], owned: owned({ a: ["x"] }), sink: sink(), intervalMs: 50 });
    c.start();
    expect(a.calls).toHaveLength(1); // a round at once
    await vi.advanceTimersByTimeAsync(49);
    expect(a.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(151);
    expect(a.calls).toHaveLength(5); // at 0, 50, 100, 150 and 200 ms; the last one answers at 210 ms
    let stopped = false;
    const stopping = c.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(9);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await stopping;
    expect(stopped).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(a.calls).toHaveLength(5);
  });

  it("refuses an interval that is not positive", () => {
    expect(() => new Collector({ sources: [], owned: owned({}), sink: sink(), intervalMs: 0 })).toThrow(/intervalMs/);
  });
});
