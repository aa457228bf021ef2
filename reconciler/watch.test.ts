import { describe, expect, it } from "vitest";
import { abortOnSignals, nextDelay, startWatch, type WatchEvent } from "./watch.js";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("nextDelay", () => {
  it("backs off exponentially after failures, capped by max and the interval", () => {
    const b = { initialMs: 100, maxMs: 1_000, factor: 2 };
    expect([0, 1, 2, 3, 4, 5, 9].map((f) => nextDelay(f, 60_000, b))).toEqual([60_000, 100, 200, 400, 800, 1_000, 1_000]);
    expect(nextDelay(9, 500, b)).toBe(500);
  });
});

describe("startWatch", () => {
  it("runs at start, then on the interval, and at once on a trigger", async () => {
    const ac = new AbortController();
    const reasons: string[] = [];
    const w = startWatch({ intervalMs: 150, signal: ac.signal, random: () => 1, pass: async (t) => (reasons.push(t), { outcome: "no_changes" }) });
    await wait(60);
    w.trigger("webhook");
    await wait(60);
    expect(reasons).toEqual(["start", "webhook"]);
    await wait(200);
    expect(reasons[2]).toBe("interval");
    ac.abort();
    await w.done;
  });

  it("retries failures sooner with growing delays, and goes back to the interval after a success", async () => {
    const ac = new AbortController();
    const events: WatchEvent[] = [];
    const outcomes = ["failed", "locked", "apply_failed", "applied", "no_changes"];
    const reasons: string[] = [];
    const w = startWatch({
      intervalMs: 60_000,
      signal: ac.signal,
      random: () => 1,
      backoff: { initialMs: 10, factor: 3 },
      onEvent: (e) => events.push(e),
      pass: async (t) => {
        reasons.push(t);
        if (reasons.length === 4) setTimeout(() => ac.abort(), 50);
        return { outcome: outcomes[reasons.length - 1]! };
      },
    });
    await w.done;
    expect(reasons).toEqual(["start", "retry", "retry", "retry"]);
    expect(events.filter((e) => e.type === "watch_waiting")).toEqual([
      { type: "watch_waiting", ms: 10, next: "retry", failures: 1 },
      { type: "watch_waiting", ms: 30, next: "retry", failures: 2 },
      { type: "watch_waiting", ms: 90, next: "retry", failures: 3 },
      { type: "watch_waiting", ms: 60_000, next: "interval", failures: 0 },
    ]);
    expect(events.at(-1)).toEqual({ type: "watch_stopped" });
  });

  it("survives a pass that throws", async () => {
    const ac = new AbortController();
    const events: WatchEvent[] = [];
    let n = 0;
    const w = startWatch({ intervalMs: 60_000, signal: ac.signal, random: () => 1, backoff: { initialMs: 5 }, onEvent: (e) => events.push(e), pass: async () => {
      if (++n === 1) throw new Error("boom");
      ac.abort();
      return { outcome: "applied" };
    } });
    await w.done;
    expect(n).toBe(2);
    expect(events[0]).toEqual({ type: "watch_pass_threw", error: "boom" });
  });

  it("on abort lets the pass in flight finish, then stops without starting another", async () => {
    const ac = new AbortController();
    let started = 0;
    let sawAbort = false;
    let finished = false;
    const w = startWatch({ intervalMs: 10, signal: ac.signal, pass: async (_t, signal) => {
      started++;
      await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
      sawAbort = signal.aborted;
      await wait(50); // the step in flight
      finished = true;
      return { outcome: "interrupted" };
    } });
    await wait(20);
    ac.abort();
    await w.done;
    expect({ started, sawAbort, finished }).toEqual({ started: 1, sawAbort: true, finished: true });
  });
});

describe("abortOnSignals", () => {
  it("aborts on SIGTERM and removes its handlers on dispose", () => {
    const seen: string[] = [];
    const before = process.listenerCount("SIGTERM");
    const { signal, dispose } = abortOnSignals(["SIGTERM"], (s, n) => seen.push(`${s}:${n}`));
    expect(process.listenerCount("SIGTERM")).toBe(before + 1);
    process.emit("SIGTERM", "SIGTERM");
    expect(signal.aborted).toBe(true);
    expect(seen).toEqual(["SIGTERM:1"]);
    dispose();
    expect(process.listenerCount("SIGTERM")).toBe(before);
  });
});
