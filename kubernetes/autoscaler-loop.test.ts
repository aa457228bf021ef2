import { ManualTimers, settle } from "./testing/manual-timers.js";
import { describe, expect, it } from "vitest";
import { AutoscalerLoop, type PassTrigger } from "./autoscaler-loop.js";

const flush = settle;

function harness(o: { again?: () => boolean } = {}) {
  const timers = new ManualTimers();
  const runs: PassTrigger[] = [];
  let release: (() => void) | null = null;
  let hold = false;
  const loop = new AutoscalerLoop({
    debounceMs: 200,
    resyncMs: 60_000,
    retryMs: 5000,
    timers,
    pass: async (trigger) => {
      runs.push(trigger);
      if (hold) await new Promise<void>((r) => (release = r));
      return { again: o.again?.() ?? false };
    },
  });
  return {
    timers,
    runs,
    loop,
    hold: () => (hold = true),
    release: async () => {
      hold = false;
      release?.();
      await flush();
    },
  };
}

describe("the autoscaler loop", () => {
  it("runs a pass at start, so a restarted premiscale resumes at once, then every resync interval", async () => {
    const h = harness();
    h.loop.start();
    await h.timers.advance(0);
    expect(h.runs).toEqual(["start"]);
    expect(h.timers.pending()).toEqual([60_000]);
    await h.timers.advance(60_000);
    expect(h.runs).toEqual(["start", "resync"]);
  });

  it("runs one pass for a burst of intents, debounceMs after the first", async () => {
    const h = harness();
    h.loop.start();
    await h.timers.advance(0);
    h.loop.poke();
    await h.timers.advance(150);
    h.loop.poke();
    h.loop.poke();
    await h.timers.advance(49);
    expect(h.runs).toEqual(["start"]);
    await h.timers.advance(1);
    expect(h.runs).toEqual(["start", "intent"]);
  });

  it("an intent during a pass runs one more pass right after it", async () => {
    const h = harness();
    h.hold();
    h.loop.start();
    await h.timers.advance(0);
    expect(h.loop.busy).toBe(true);
    h.loop.poke();
    h.loop.poke();
    await h.release();
    await h.timers.advance(200);
    expect(h.runs).toEqual(["start", "intent"]);
  });

  it("a pass that asks for another gets one after retryMs", async () => {
    let again = true;
    const h = harness({ again: () => again });
    h.loop.start();
    await h.timers.advance(0);
    expect(h.timers.pending()).toEqual([5000]);
    again = false;
    await h.timers.advance(5000);
    expect(h.runs).toEqual(["start", "retry"]);
    expect(h.timers.pending()).toEqual([60_000]);
  });

  it("stop aborts the pass in flight, waits for it, and schedules nothing more", async () => {
    const h = harness();
    h.hold();
    h.loop.start();
    await h.timers.advance(0);
    const stopped = h.loop.stop();
    await h.release();
    await stopped;
    h.loop.poke();
    expect(h.timers.pending()).toEqual([]);
  });
});
