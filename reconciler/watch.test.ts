import { afterEach, describe, expect, it, vi } from "vitest";
import { abortOnSignals, nextDelay, startWatch, type WatchEvent } from "./watch.js";

/** A promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("nextDelay", () => {
  it("backs off exponentially after failures, capped by max and the interval", () => {
    const b = { initialMs: 100, maxMs: 1_000, factor: 2 };
    expect([0, 1, 2, 3, 4, 5, 9].map((f) => nextDelay(f, 60_000, b))).toEqual([60_000, 100, 200, 400, 800, 1_000, 1_000]);
    expect(nextDelay(9, 500, b)).toBe(500);
  });
});

describe("startWatch", () => {
  afterEach(() => void vi.useRealTimers());

  it("runs at start, then on the interval, and at once on a trigger", async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    const reasons: string[] = [];
    const w = startWatch({ intervalMs: 150, signal: ac.signal, random: () => 1, pass: async (t) => (reasons.push(t), { outcome: "no_changes" }) });
    await vi.advanceTimersByTimeAsync(60);
    expect(reasons).toEqual(["start"]);
    w.trigger("webhook");
    await vi.advanceTimersByTimeAsync(0);
    expect(reasons).toEqual(["start", "webhook"]);
    // The interval counts from the end of the triggered pass.
    await vi.advanceTimersByTimeAsync(149);
    expect(reasons).toEqual(["start", "webhook"]);
    await vi.advanceTimersByTimeAsync(1);
    expect(reasons).toEqual(["start", "webhook", "interval"]);
    ac.abort();
    await w.done;
  });

  it("retries failures sooner with growing delays, and goes back to the interval after a success", async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    const events: WatchEvent[] = [];
    const outcomes = ["failed", "locked", "apply_failed", "applied", "no_changes"];
    const passes: { reason: string; at: number }[] = [];
    const t0 = Date.now();
    const w = startWatch({
      intervalMs: 60_000,
      signal: ac.signal,
      random: () => 1,
      backoff: { initialMs: 10, factor: 3 },
      onEvent: (e) => events.push(e),
      pass: async (t) => {
        passes.push({ reason: t, at: Date.now() - t0 });
        return { outcome: outcomes[passes.length - 1]! };
      },
    });
    await vi.advanceTimersByTimeAsync(130);
    ac.abort();
    await w.done;
    expect(passes).toEqual([
      { reason: "start", at: 0 },
      { reason: "retry", at: 10 },
      { reason: "retry", at: 40 },
      { reason: "retry", at: 130 },
    ]);
    expect(events.filter((e) => e.type === "watch_waiting")).toEqual([
      { type: "watch_waiting", ms: 10, next: "retry", failures: 1 },
      { type: "watch_waiting", ms: 30, next: "retry", failures: 2 },
      { type: "watch_waiting", ms: 90, next: "retry", failures: 3 },
      { type: "watch_waiting", ms: 60_000, next: "interval", failures: 0 },
    ]);
    expect(events.at(-1)).toEqual({ type: "watch_stopped" });
  });

  it("survives a pass that throws", async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    const events: WatchEvent[] = [];
    let n = 0;
    const w = startWatch({ intervalMs: 60_000, signal: ac.signal, random: () => 1, backoff: { initialMs: 5 }, onEvent: (e) => events.push(e), pass: async () => {
      if (++n === 1) throw new Error("boom");
      ac.abort();
      return { outcome: "applied" };
    } });
    await vi.advanceTimersByTimeAsync(4);
    expect(n).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await w.done;
    expect(n).toBe(2);
    expect(events[0]).toEqual({ type: "watch_pass_threw", error: "boom" });
  });

  it("on abort lets the pass in flight finish, then stops without starting another", async () => {
    const ac = new AbortController();
    const passStarted = deferred();
    const stepInFlight = deferred();
    let started = 0;
    let sawAbort = false;
    let finished = false;
    const w = startWatch({ intervalMs: 10, signal: ac.signal, pass: async (_t, signal) => {
      started++;
      passStarted.resolve();
      await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
      sawAbort = signal.aborted;
      await stepInFlight.promise;
      finished = true;
      return { outcome: "interrupted" };
    } });
    await passStarted.promise;
    ac.abort();
    let stopped = false;
    void w.done.then(() => (stopped = true));
    await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(false); // still waiting for the step in flight
    stepInFlight.resolve();
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
