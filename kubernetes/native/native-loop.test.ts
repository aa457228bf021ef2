import { describe, expect, it } from "vitest";
import { decideNative, type ClusterSnapshot, type NativeOptions } from "./decide-native.js";
import { NativeLoop, type NativeScanInput } from "./native-loop.js";
import { PodBatcher } from "./pod-batcher.js";
import { DEFAULT_SAFETY } from "./safety.js";
import { ManualTimers, pendingPod, testGroup, testNode } from "./testing.js";

describe("the pod batcher", () => {
  function harness() {
    const timers = new ManualTimers();
    const batches: string[][] = [];
    const b = new PodBatcher({ timers, onBatch: (p) => batches.push(p) });
    return { timers, batches, b };
  }

  it("closes a batch after 1 s without a new pod, holding its pods until then", async () => {
    const { timers, batches, b } = harness();
    b.observe(["a"]);
    await timers.advance(600);
    b.observe(["a", "b"]);
    expect([...b.held]).toEqual(["a", "b"]);
    await timers.advance(999);
    expect(batches).toEqual([]);
    await timers.advance(1);
    expect(batches).toEqual([["a", "b"]]);
    expect(b.held.size).toBe(0);
  });

  it("turns a burst of 50 pods, a few at a time, into one batch", async () => {
    const { timers, batches, b } = harness();
    const seen: string[] = [];
    for (let i = 0; i < 50; i++) {
      seen.push(`p${i}`);
      if (i % 5 === 4) {
        b.observe(seen);
        await timers.advance(300);
      }
    }
    await timers.advance(2000);
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(50);
  });

  it("closes a batch that keeps growing after 10 s", async () => {
    const { timers, batches, b } = harness();
    for (let i = 0; i < 30; i++) {
      b.observe(Array.from({ length: i + 1 }, (_, j) => `p${j}`));
      await timers.advance(500);
    }
    expect(batches[0]).toHaveLength(20);
    expect(timers.now).toBe(15_000);
    expect(batches).toHaveLength(1);
  });

  it("does not batch again a pod still pending from an earlier batch, and forgets pods no longer pending", async () => {
    const { timers, batches, b } = harness();
    b.observe(["a"]);
    await timers.advance(1000);
    b.observe(["a"]);
    await timers.advance(5000);
    expect(batches).toEqual([["a"]]);
    b.observe([]);
    b.observe(["a"]);
    await timers.advance(1000);
    expect(batches).toEqual([["a"], ["a"]]);
  });
});

describe("the native loop", () => {
  function harness(pods: () => ClusterSnapshot["pods"]) {
    const timers = new ManualTimers();
    const scans: NativeScanInput[] = [];
    const loop = new NativeLoop({
      timers,
      now: () => new Date(Date.UTC(2026, 11, 3) + timers.now),
      readCluster: async () => ({ nodes: [], pods: pods(), daemonSets: [], pdbs: [] }),
      listPending: async () => pods().map((p) => p.uid),
      scan: async (input) => (scans.push(input), { memory: { ...input.memory, lastScaleUp: input.now.toISOString() }, again: false }),
    });
    return { timers, scans, loop };
  }

  it("scans at start and every 10 s, and keeps its memory between scans", async () => {
    const { timers, scans, loop } = harness(() => []);
    loop.start();
    await timers.advance(0);
    expect(scans.map((s) => s.trigger)).toEqual(["start"]);
    await timers.advance(10_000);
    expect(scans.map((s) => s.trigger)).toEqual(["start", "scan"]);
    expect(scans[1]!.memory.lastScaleUp).toBe("2026-12-03T00:00:00.000Z");
    await loop.stop();
  });

  it("scans once when a burst of pending pods settles, and holds them from the scans before", async () => {
    let pods: ClusterSnapshot["pods"] = [];
    const { timers, scans, loop } = harness(() => pods);
    loop.start();
    await timers.advance(0);
    const burst = Array.from({ length: 50 }, (_, i) => pendingPod(`p${i}`, 100, 64));
    for (let i = 0; i < 50; i += 10) {
      pods = burst.slice(0, i + 10);
      await timers.advance(500);
    }
    const during = scans.length;
    await timers.advance(1500);
    const byPods = scans.filter((s) => s.trigger === "pods");
    expect(byPods).toHaveLength(1);
    expect(byPods[0]!.held.size).toBe(0);
    expect(byPods[0]!.cluster.pods).toHaveLength(50);
    expect(during).toBe(1);
    expect(loop.batches).toBe(1);
    await loop.stop();
  });

  it("reports a pod no template can ever hold once per scan interval, batches it once, and never scales up for it", async () => {
    const options: NativeOptions = { ...DEFAULT_SAFETY, expander: ["least-waste"], priorities: [], scaleDown: { enabled: true, utilizationThreshold: 0.5, unneededMs: 600_000, budget: "10%", budgets: [] } };
    const web = testGroup("web", { vcpus: 2, max: 5 });
    const huge = pendingPod("huge", 64_000, 256);
    const timers = new ManualTimers();
    const reports: { at: number; trigger: string; pods: string[]; groups: Record<string, string>[]; adds: number }[] = [];
    const loop = new NativeLoop({
      timers,
      now: () => new Date(Date.UTC(2026, 11, 3) + timers.now),
      readCluster: async () => ({ nodes: [testNode("web-a", "web")], pods: [huge], daemonSets: [], pdbs: [] }),
      listPending: async () => [huge.uid],
      scan: async (input) => {
        const r = decideNative({ groups: [web], members: new Map([["web", [{ name: "web-a", createdAt: "2026-12-01T00:00:00Z", ready: true }]]]), cluster: input.cluster, held: input.held, memory: input.memory, now: input.now, options });
        reports.push({ at: timers.now, trigger: input.trigger, pods: r.unplaceable.map((u) => u.pod.name), groups: r.unplaceable.map((u) => u.groups), adds: [...r.decisions.values()].reduce((n, d) => n + d.add, 0) });
        return { memory: r.memory, again: false };
      },
    });
    loop.start();
    await timers.advance(60_000);
    await loop.stop();
    // The start scan sees it first and leaves it to its batch; the batch's scan 1 s later reports it, then each scan
    // every 10 s, however often the pending pods are polled (every 500 ms: 120 polls here).
    expect(reports[0]).toMatchObject({ at: 0, trigger: "start", pods: [], adds: 0 });
    const reported = reports.filter((r) => r.pods.length > 0);
    expect(reported.map((r) => [r.at, r.trigger])).toEqual([
      [1000, "pods"],
      [11_000, "scan"],
      [21_000, "scan"],
      [31_000, "scan"],
      [41_000, "scan"],
      [51_000, "scan"],
    ]);
    expect(reported.every((r) => r.pods.join() === "huge" && r.groups[0]!.web === "cpu" && r.adds === 0)).toBe(true);
    expect(reports).toHaveLength(7);
    expect(loop.batches).toBe(1);
  });

  it("says a failing poll once until it succeeds again, and a failing scan at each retry, 5 s apart", async () => {
    const timers = new ManualTimers();
    let down = false;
    const errors: { at: number; error: string }[] = [];
    const fail = (what: string) => {
      throw new Error(`${what}: connect ECONNREFUSED`);
    };
    const loop = new NativeLoop({
      timers,
      pollMs: 200,
      readCluster: async () => (down ? fail("listing /api/v1/nodes") : { nodes: [], pods: [], daemonSets: [], pdbs: [] }),
      listPending: async () => (down ? fail("listing /api/v1/pods") : []),
      scan: async (input) => ({ memory: input.memory, again: false }),
      onError: (e) => errors.push({ at: timers.now, error: (e as Error).message }),
    });
    loop.start();
    await timers.advance(1000);
    down = true;
    // 20 s: 100 polls and the scans (one due at 10 s, then a retry every 5 s) fail.
    await timers.advance(20_000);
    expect(errors.filter((e) => e.error.startsWith("listing /api/v1/pods"))).toHaveLength(1);
    expect(errors.filter((e) => e.error.startsWith("listing /api/v1/nodes")).map((e) => e.at)).toEqual([10_000, 15_000, 20_000]);
    down = false;
    await timers.advance(5000);
    expect(errors).toHaveLength(4);
    // A second outage is said again.
    down = true;
    await timers.advance(400);
    expect(errors.filter((e) => e.error.startsWith("listing /api/v1/pods"))).toHaveLength(2);
    await loop.stop();
  });
});
