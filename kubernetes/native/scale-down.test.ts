import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { SimNode, SimPod } from "./cluster-model.js";
import { decideNative, type NativeOptions } from "./decide-native.js";
import { budgetNodes, computeScaleDown, type ScaleDownGroup } from "./scale-down.js";
import { budgetNow, budgetWindowEnd, type ScheduledBudget } from "./disruption-budget.js";
import { selectorMatches } from "./label-selector.js";
import { PdbTracker, pdbFromApi, type SimPdb } from "./pdb-tracker.js";
import { DEFAULT_SAFETY, clusterHealth, emptyMemory, groupBackoff, recordResults, scaleDownDelay } from "./safety.js";
import { pendingPod, testGroup, testNode, testPdb, testPod } from "./testing.js";

const NOW = new Date("2026-12-03T12:00:00Z");
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();
const MIN10 = 600_000;
const group = (o: Partial<ScaleDownGroup> = {}): ScaleDownGroup => ({ name: "web", min: 0, current: 4, threshold: 0.5, unneededMs: MIN10, budget: "100%", ...o });
const groupOf = (n: SimNode) => n.labels["premiscale.io/group"];
const longAgo = (names: string[]) => Object.fromEntries(names.map((n) => [n, ago(MIN10)]));

describe("scale-down", () => {
  it("removes a node under the threshold for the unneeded time whose pods fit elsewhere, naming where they go", () => {
    const nodes = [testNode("web-a", "web"), testNode("web-b", "web")];
    const pods = [testPod("small", 400, 100, { nodeName: "web-a" }), testPod("other", 1200, 100, { nodeName: "web-b" })];
    const r = computeScaleDown({ nodes, pods, groups: [group({ current: 2 })], groupOf, unneededSince: longAgo(["web-a"]), now: NOW });
    expect(r.remove).toEqual([{ group: "web", nodes: ["web-a"], reason: "1 node under 50% for 10m0s: -1 on web: web-a 20% (1 pod fit on web-b)" }]);
  });

  it("waits for the unneeded time, and remembers since when a node is unneeded", () => {
    const nodes = [testNode("web-a", "web"), testNode("web-b", "web")];
    const pods = [testPod("small", 400, 100, { nodeName: "web-a" }), testPod("other", 1200, 100, { nodeName: "web-b" })];
    const first = computeScaleDown({ nodes, pods, groups: [group()], groupOf, unneededSince: {}, now: NOW });
    expect(first.remove).toEqual([]);
    expect(first.unneededSince).toEqual({ "web-a": NOW.toISOString() });
    expect(first.nodes["web-a"]).toMatchObject({ verdict: "unneeded", waitMs: MIN10 });
    const later = computeScaleDown({ nodes, pods, groups: [group()], groupOf, unneededSince: first.unneededSince, now: new Date(NOW.getTime() + MIN10) });
    expect(later.remove[0]?.nodes).toEqual(["web-a"]);
  });

  it("keeps a node whose pods fit nowhere else, a node with a safe-to-evict: false pod, and a scale-down-disabled node", () => {
    const nodes = [testNode("web-a", "web", 4000), testNode("web-b", "web"), testNode("web-c", "web", 2000, 2048, { scaleDownDisabled: true })];
    const pods = [
      testPod("fat", 1500, 100, { nodeName: "web-a" }),
      testPod("busy", 500, 100, { nodeName: "web-b" }),
      testPod("precious", 100, 100, { nodeName: "web-b", safeToEvict: false }),
      testPod("busy2", 1500, 100, { nodeName: "web-c" }),
    ];
    const r = computeScaleDown({ nodes, pods, groups: [group({ current: 3 })], groupOf, unneededSince: longAgo(["web-a", "web-b"]), now: NOW });
    expect(r.remove).toEqual([]);
    expect(r.nodes["web-a"]).toMatchObject({ verdict: "keep", why: "pod default/fat fits on no other node" });
    expect(r.nodes["web-b"]).toMatchObject({ verdict: "keep", why: 'pod default/precious is annotated safe-to-evict: "false"' });
    expect(r.nodes["web-c"]).toMatchObject({ verdict: "keep", why: "annotated cluster-autoscaler.kubernetes.io/scale-down-disabled" });
  });

  it("keeps, as cluster-autoscaler does by default, a node with a pod no controller owns and one with a kube-system pod no PDB covers, unless they are safe to evict", () => {
    const nodes = ["web-a", "web-b", "web-c", "web-d", "web-e"].map((n) => testNode(n, "web"));
    const sys = (name: string, nodeName: string, o: Partial<SimPod> = {}) => testPod(name, 100, 100, { nodeName, namespace: "kube-system", labels: { k8s: name }, ...o });
    const pods = [
      testPod("bare", 100, 100, { nodeName: "web-a", uncontrolled: true }),
      sys("dns", "web-b"),
      sys("metrics", "web-c"),
      testPod("bare-ok", 100, 100, { nodeName: "web-d", uncontrolled: true, safeToEvict: true }),
      sys("dns-ok", "web-d", { safeToEvict: true }),
      testPod("big", 1400, 100, { nodeName: "web-e" }),
    ];
    const pdbs = [{ ...testPdb("metrics-pdb", "x", 1), namespace: "kube-system", selector: { matchLabels: { k8s: "metrics" } } }];
    const r = computeScaleDown({ nodes, pods, pdbs, groups: [group({ current: 5 })], groupOf, unneededSince: longAgo(["web-a", "web-b", "web-c", "web-d"]), now: NOW });
    expect(r.nodes["web-a"]).toMatchObject({ verdict: "keep", why: 'pod default/bare is not managed by a controller (annotate it safe-to-evict: "true" to let it go)' });
    expect(r.nodes["web-b"]).toMatchObject({ verdict: "keep", why: 'kube-system pod kube-system/dns has no PodDisruptionBudget (add one, or annotate it safe-to-evict: "true")' });
    // A PDB covers it, or safe-to-evict says so: such pods move like any other.
    expect(r.remove[0]?.nodes.sort()).toEqual(["web-c", "web-d"]);
  });

  it("leaves DaemonSet and mirror pods behind: only the others must fit elsewhere", () => {
    const nodes = [testNode("web-a", "web"), testNode("web-b", "web")];
    const pods = [testPod("ds", 300, 100, { nodeName: "web-a", daemonSet: true }), testPod("mirror", 300, 100, { nodeName: "web-a", mirror: true }), testPod("ds-b", 300, 100, { nodeName: "web-b", daemonSet: true }), testPod("b", 1400, 100, { nodeName: "web-b" })];
    const r = computeScaleDown({ nodes, pods, groups: [group({ current: 2 })], groupOf, unneededSince: longAgo(["web-a"]), now: NOW });
    expect(r.remove[0]?.reason).toContain("web-a 30% (empty)");
  });

  it("consolidates four half-empty nodes into two in one plan", () => {
    const nodes = ["a", "b", "c", "d"].map((x) => testNode(`web-${x}`, "web"));
    const pods = nodes.map((n) => testPod(`p-${n.name}`, 800, 512, { nodeName: n.name }));
    const r = computeScaleDown({ nodes, pods, groups: [group()], groupOf, unneededSince: longAgo(nodes.map((n) => n.name)), now: NOW });
    expect(r.remove).toHaveLength(1);
    expect(r.remove[0]!.nodes).toEqual(["web-a", "web-c"]);
    expect(r.remove[0]!.reason).toMatch(/-2 on web: web-a 40% \(1 pod fit on web-b\); web-c 40% \(1 pod fit on web-d\) \(consolidated in one plan\)/);
    expect(r.nodes["web-b"]).toMatchObject({ verdict: "keep", why: "utilisation 80% ≥ 50% once pods of removed nodes move here" });
  });

  it("stays within the disruption budget (10% of the group's nodes, at least 1) and the min size", () => {
    const nodes = ["a", "b", "c", "d"].map((x) => testNode(`web-${x}`, "web"));
    const r = computeScaleDown({ nodes, pods: [], groups: [group({ budget: "10%" })], groupOf, unneededSince: longAgo(nodes.map((n) => n.name)), now: NOW });
    expect(r.remove[0]!.nodes).toEqual(["web-a"]);
    expect(r.nodes["web-b"]).toMatchObject({ verdict: "keep", why: "disruption budget 10% of 4 nodes (1 now) is used" });
    const m = computeScaleDown({ nodes, pods: [], groups: [group({ min: 3 })], groupOf, unneededSince: longAgo(nodes.map((n) => n.name)), now: NOW });
    expect(m.remove[0]!.nodes).toEqual(["web-a"]);
    expect(m.nodes["web-b"]).toMatchObject({ why: "group web at its min size 3" });
    expect(budgetNodes("10%", 25)).toBe(3);
    expect(budgetNodes("2", 25)).toBe(2);
    expect(budgetNodes("10%", 0)).toBe(0);
  });

  it("never removes the last Ready node of the cluster", () => {
    const r = computeScaleDown({ nodes: [testNode("web-a", "web")], pods: [], groups: [group({ current: 1 })], groupOf, unneededSince: longAgo(["web-a"]), now: NOW });
    expect(r.remove).toEqual([]);
    expect(r.nodes["web-a"]).toMatchObject({ why: "the last Ready node of the cluster" });
  });

  it("keeps a node whose pod a PDB allowing no disruption covers, and names the PDB in the reason", () => {
    const nodes = ["a", "b", "c", "d"].map((x) => testNode(`web-${x}`, "web"));
    const pods = nodes.map((n) => testPod(n.name === "web-c" ? "x" : `p-${n.name}`, 800, 512, { nodeName: n.name, labels: { app: n.name === "web-c" ? "db" : "web" } }));
    const r = computeScaleDown({ nodes, pods, pdbs: [testPdb("web-pdb", "db", 0)], groups: [group()], groupOf, unneededSince: longAgo(nodes.map((n) => n.name)), now: NOW });
    expect(r.nodes["web-c"]).toEqual({ verdict: "keep", utilisation: 0.4, why: "pod default/x is covered by PDB web-pdb, 0 disruptions allowed", by: "pdb" });
    // web-a's pod moves to web-b (now 80%), web-d's to web-c, which stays for its PDB.
    expect(r.remove[0]!.nodes).toEqual(["web-a", "web-d"]);
    expect(r.remove[0]!.reason).toContain("; web-c kept: pod default/x is covered by PDB web-pdb, 0 disruptions allowed");
  });

  it("takes no more evictions from a PDB across the whole plan than it allows: four half-empty nodes under a PDB allowing one give one node now", () => {
    const nodes = ["a", "b", "c", "d"].map((x) => testNode(`web-${x}`, "web"));
    const pods = nodes.map((n) => testPod(`p-${n.name}`, 800, 512, { nodeName: n.name, labels: { app: "web" } }));
    const r = computeScaleDown({ nodes, pods, pdbs: [testPdb("web-pdb", "web", 1)], groups: [group()], groupOf, unneededSince: longAgo(nodes.map((n) => n.name)), now: NOW });
    expect(r.remove[0]!.nodes).toEqual(["web-a"]);
    expect(r.nodes["web-c"]).toMatchObject({ verdict: "keep", why: "pod default/p-web-c is covered by PDB web-pdb, 1 disruption allowed (0 left once web-a goes)", by: "pdb" });
    expect(r.remove[0]!.reason).toMatch(/^1 node under 50% for 10m0s: -1 on web: web-a 40% \(1 pod fit on web-b\); web-c kept: pod default\/p-web-c is covered by PDB web-pdb, 1 disruption allowed \(0 left once web-a goes\); web-d kept: /);
    // Two pods of one node against a PDB allowing one: the node stays (its drain would wait on the PDB).
    const two = computeScaleDown({
      nodes: nodes.slice(0, 2),
      pods: [testPod("w1", 300, 100, { nodeName: "web-a", labels: { app: "web" } }), testPod("w2", 300, 100, { nodeName: "web-a", labels: { app: "web" } }), testPod("big", 1200, 100, { nodeName: "web-b" })],
      pdbs: [testPdb("web-pdb", "web", 1)],
      groups: [group({ current: 2 })],
      groupOf,
      unneededSince: longAgo(["web-a"]),
      now: NOW,
    });
    expect(two.nodes["web-a"]).toMatchObject({ verdict: "keep", why: "pods default/w1, default/w2 are covered by PDB web-pdb, 1 disruption allowed: 2 evictions needed" });
  });

  it("reads PDBs as the Eviction API does: other namespaces, several PDBs, Pending pods, unready pods, a status not caught up", () => {
    const nodes = [testNode("web-a", "web"), testNode("web-b", "web", 4000)];
    const run = (pod: Partial<Parameters<typeof testPod>[3]>, pdbs: SimPdb[]) =>
      computeScaleDown({ nodes, pods: [testPod("x", 500, 100, { nodeName: "web-a", labels: { app: "web", tier: "front" }, ...pod }), testPod("big", 2500, 100, { nodeName: "web-b" })], pdbs, groups: [group({ current: 2 })], groupOf, unneededSince: longAgo(["web-a", "web-b"]), now: NOW }).nodes["web-a"];
    const none = testPdb("web-pdb", "web", 0);
    expect(run({}, [{ ...none, namespace: "shop" }])).toMatchObject({ verdict: "remove" });
    expect(run({}, [none])).toMatchObject({ verdict: "keep", by: "pdb" });
    expect(run({}, [testPdb("web-pdb", "web", 5), { ...testPdb("front-pdb", "x", 5), selector: { matchExpressions: [{ key: "tier", operator: "In", values: ["front"] }] } }])).toMatchObject({
      verdict: "keep",
      why: "pod default/x is covered by 2 PDBs (front-pdb, web-pdb): the Eviction API refuses to evict a pod with more than one",
    });
    expect(run({ phase: "Pending" }, [none])).toMatchObject({ verdict: "remove" });
    expect(run({ ready: false }, [{ ...none, alwaysAllowUnhealthy: true }])).toMatchObject({ verdict: "remove" });
    expect(run({ ready: false }, [{ ...none, currentHealthy: 3, desiredHealthy: 3 }])).toMatchObject({ verdict: "remove" });
    expect(run({ ready: false }, [{ ...none, currentHealthy: 2, desiredHealthy: 3 }])).toMatchObject({ verdict: "keep" });
    expect(run({}, [{ ...testPdb("web-pdb", "web", 3), stale: true }])).toMatchObject({ verdict: "keep", why: "pod default/x is covered by PDB web-pdb, whose status the disruption controller has not updated yet (the Eviction API refuses until it has)" });
  });

  it("reads a policy/v1 PodDisruptionBudget and matches label selectors as Kubernetes does", () => {
    const pdb = pdbFromApi({
      metadata: { name: "db", namespace: "shop", generation: 2 },
      spec: { minAvailable: 2, selector: { matchLabels: { app: "db" }, matchExpressions: [{ key: "tier", operator: "NotIn", values: ["cache"] }] }, unhealthyPodEvictionPolicy: "AlwaysAllow" },
      status: { observedGeneration: 1, disruptionsAllowed: 1, currentHealthy: 3, desiredHealthy: 2 },
    });
    expect(pdb).toEqual({ namespace: "shop", name: "db", selector: { matchLabels: { app: "db" }, matchExpressions: [{ key: "tier", operator: "NotIn", values: ["cache"] }] }, disruptionsAllowed: 1, currentHealthy: 3, desiredHealthy: 2, alwaysAllowUnhealthy: true, stale: true });
    expect(selectorMatches(pdb.selector, { app: "db" })).toBe(true);
    expect(selectorMatches(pdb.selector, { app: "db", tier: "cache" })).toBe(false);
    expect(selectorMatches({}, { any: "thing" })).toBe(true);
    expect(selectorMatches(pdbFromApi({ metadata: { name: "n" }, spec: {} }).selector, { app: "db" })).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "Exists" }, { key: "b", operator: "DoesNotExist" }] }, { a: "" })).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "Bogus" }] }, { a: "" })).toBe(false);
    const t = new PdbTracker([testPdb("web-pdb", "web", 2)]);
    const web = (n: string) => testPod(n, 1, 1, { labels: { app: "web" } });
    expect(t.check([web("a"), web("b")])).toBeNull();
    t.take([web("a")], "web-a");
    expect(t.remaining()).toEqual({ "default/web-pdb": 1 });
    expect(t.check([web("b"), web("c")])?.why).toBe("pods default/b, default/c are covered by PDB web-pdb, 2 disruptions allowed (1 left once web-a goes): 2 evictions needed");
  });

  it("follows the most restrictive disruption budget in force: a scheduled 0 stops scale-down in its window, and the nodes go when it ends", () => {
    const nodes = ["a", "b", "c", "d"].map((x) => testNode(`web-${x}`, "web"));
    const business: ScheduledBudget = { nodes: "0", schedule: "0 9 * * 1-5", timezone: "UTC", duration: "8h", durationMs: 8 * 3_600_000 };
    const at = (iso: string) => computeScaleDown({ nodes, pods: [], groups: [group({ budget: "50%", scheduledBudgets: [business] })], groupOf, unneededSince: Object.fromEntries(nodes.map((n) => [n.name, "2026-12-01T00:00:00Z"])), now: new Date(iso) });
    // Thursday 12:00 UTC: in the window.
    const noon = at("2026-12-03T12:00:00Z");
    expect(noon.remove).toEqual([]);
    expect(noon.nodes["web-a"]).toMatchObject({ verdict: "keep", by: "budget", why: 'scheduled disruption budget 0 ("0 9 * * 1-5" UTC for 8h, until 2026-12-03T17:00Z) of 4 nodes (0 now) is used' });
    // The unneeded times go on, so the nodes may go as soon as the window ends.
    expect(noon.unneededSince).toEqual({ "web-a": "2026-12-01T00:00:00Z", "web-b": "2026-12-01T00:00:00Z", "web-c": "2026-12-01T00:00:00Z" });
    expect(at("2026-12-03T17:00:00Z").remove[0]!.nodes).toEqual(["web-a", "web-b"]);
    expect(at("2026-12-05T12:00:00Z").remove[0]!.nodes).toEqual(["web-a", "web-b"]);
    expect(at("2026-12-03T08:59:00Z").remove[0]!.nodes).toEqual(["web-a", "web-b"]);
    expect(at("2026-12-03T09:00:00Z").remove).toEqual([]);
  });

  it("reads a scheduled budget's window in its time zone, and takes the lowest of several in force", () => {
    const berlin: ScheduledBudget = { nodes: "1", schedule: "0 9 * * *", timezone: "Europe/Berlin", duration: "1h30m", durationMs: 90 * 60_000 };
    // 09:00 in Berlin is 08:00 UTC in winter.
    expect(budgetWindowEnd(berlin, new Date("2026-12-03T08:00:00Z"))?.toISOString()).toBe("2026-12-03T09:30:00.000Z");
    expect(budgetWindowEnd(berlin, new Date("2026-12-03T09:30:00Z"))).toBeNull();
    expect(budgetWindowEnd(berlin, new Date("2026-12-03T07:59:59Z"))).toBeNull();
    // A cron firing inside its own window extends it.
    const hourly: ScheduledBudget = { nodes: "2", schedule: "0 * * * *", timezone: "UTC", duration: "2h", durationMs: 2 * 3_600_000 };
    expect(budgetWindowEnd(hourly, new Date("2026-12-03T10:30:00Z"))?.toISOString()).toBe("2026-12-03T12:00:00.000Z");
    expect(budgetNow("10%", [berlin, hourly], 40, new Date("2026-12-03T08:30:00Z"))).toEqual({ allowed: 1, by: 'scheduled disruption budget 1 ("0 9 * * *" Europe/Berlin for 1h30m, until 2026-12-03T09:30Z)' });
    expect(budgetNow("10%", [berlin, hourly], 40, new Date("2026-12-03T10:30:00Z")).allowed).toBe(2);
    expect(budgetNow("10%", [berlin, hourly], 10, new Date("2026-12-03T10:30:00Z"))).toEqual({ allowed: 1, by: "disruption budget 10%" });
    expect(budgetNodes("0%", 10)).toBe(0);
  });

  it("never breaks its invariants: moved pods fit on nodes that stay, min and budget hold, a node with pods always remains, no PDB goes below zero (property)", () => {
    const arb = fc.record({
      nodes: fc.array(
        fc.record({
          cpu: fc.constantFrom(1000, 2000, 4000),
          pods: fc.array(fc.record({ cpu: fc.integer({ min: 0, max: 1500 }), mem: fc.integer({ min: 0, max: 1500 }), kind: fc.constantFrom("app", "app", "ds", "mirror", "pinned"), app: fc.constantFrom("a", "b", "c", undefined), tier: fc.constantFrom("front", undefined) }), { maxLength: 4 }),
        }),
        { minLength: 1, maxLength: 8 },
      ),
      min: fc.integer({ min: 0, max: 3 }),
      budget: fc.constantFrom("10%", "50%", "100%", "1", "3"),
      // PDBs on an app or on the tier (a pod may have two), some in another namespace, some not caught up.
      pdbs: fc.array(fc.record({ on: fc.constantFrom("a", "b", "c", "front"), allowed: fc.integer({ min: 0, max: 3 }), stale: fc.boolean(), ns: fc.constantFrom("default", "default", "other") }), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(arb, ({ nodes: spec, min, budget, pdbs: pdbSpec }) => {
        const nodes = spec.map((s, i) => testNode(`web-${i}`, "web", s.cpu, 2048));
        // Pods as the scheduler would have bound them: within each node's allocatable.
        const within = (s: (typeof spec)[number]) => {
          let cpu = 0;
          let mem = 0;
          return s.pods.filter((p) => (cpu + p.cpu <= s.cpu && mem + p.mem <= 2048 ? ((cpu += p.cpu), (mem += p.mem), true) : false));
        };
        const pods: SimPod[] = spec.flatMap((s, i) =>
          within(s).map((p, j) => testPod(`p${i}-${j}`, p.cpu, p.mem, { nodeName: `web-${i}`, daemonSet: p.kind === "ds", mirror: p.kind === "mirror", ...(p.kind === "pinned" ? { safeToEvict: false } : {}), labels: { ...(p.app ? { app: p.app } : {}), ...(p.tier ? { tier: p.tier } : {}) } })),
        );
        const pdbs = pdbSpec.map((d, i) => testPdb(`pdb-${i}`, "", d.allowed, { namespace: d.ns, stale: d.stale, selector: { matchLabels: d.on === "front" ? { tier: "front" } : { app: d.on } } }));
        const r = computeScaleDown({ nodes, pods, pdbs, groups: [group({ min, budget, current: nodes.length })], groupOf, unneededSince: longAgo(nodes.map((n) => n.name)), now: NOW });
        const gone = new Set(r.remove.flatMap((x) => x.nodes));
        expect(nodes.length - gone.size).toBeGreaterThanOrEqual(Math.min(nodes.length, Math.max(min, 1)));
        expect(gone.size).toBeLessThanOrEqual(budgetNodes(budget, nodes.length));
        // Replay: the pods of removed nodes fit, by requests, on the nodes that stay.
        const free = new Map(nodes.filter((n) => !gone.has(n.name)).map((n) => [n.name, { cpu: n.allocatable.cpuMillis, mem: n.allocatable.memoryBytes }]));
        for (const p of pods) {
          const f = free.get(p.nodeName!);
          if (!f) continue;
          f.cpu -= p.requests.cpuMillis;
          f.mem -= p.requests.memoryBytes;
        }
        const moved = pods.filter((p) => gone.has(p.nodeName!) && !p.daemonSet && !p.mirror);
        expect(moved.every((p) => p.safeToEvict !== false)).toBe(true);
        const totalFree = [...free.values()].reduce((s, f) => ({ cpu: s.cpu + f.cpu, mem: s.mem + f.mem }), { cpu: 0, mem: 0 });
        expect(moved.reduce((s, p) => s + p.requests.cpuMillis, 0)).toBeLessThanOrEqual(totalFree.cpu);
        for (const f of free.values()) expect(f.cpu).toBeGreaterThanOrEqual(0);
        // Replay the evictions the plan needs against the PDBs: a pod under two PDBs is never evicted, and no PDB
        // is asked for more than it allows (nothing, when its status is not caught up).
        const covers = (d: SimPdb, p: SimPod) => d.namespace === p.namespace && Object.entries(d.selector!.matchLabels!).every(([k, v]) => p.labels?.[k] === v);
        const left = new Map(pdbs.map((d) => [d, d.stale ? 0 : d.disruptionsAllowed]));
        for (const p of moved) {
          const cover = pdbs.filter((d) => covers(d, p));
          expect(cover.length, `${p.name} is evicted under ${cover.length} PDBs`).toBeLessThanOrEqual(1);
          if (cover[0]) left.set(cover[0], left.get(cover[0])! - 1);
        }
        for (const [d, n] of left) expect(n, `${d.name} left`).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe("the safety rules", () => {
  it("halt scaling only when unready nodes are more than 3 AND more than 45%", () => {
    const nodes = (ready: number, unready: number) => [...Array.from({ length: ready }, (_, i) => ({ name: `r${i}`, ready: true })), ...Array.from({ length: unready }, (_, i) => ({ name: `u${i}`, ready: false }))];
    expect(clusterHealth(nodes(0, 3), DEFAULT_SAFETY).healthy).toBe(true);
    expect(clusterHealth(nodes(10, 4), DEFAULT_SAFETY).healthy).toBe(true);
    expect(clusterHealth(nodes(4, 4), DEFAULT_SAFETY)).toMatchObject({ healthy: false, reason: "4 of 8 nodes unready (> 3 and > 45%): scaling halted until they recover" });
  });

  it("delay scale-down after an add (10 min), a delete (the scan interval) and a failure (3 min)", () => {
    const m = emptyMemory();
    expect(scaleDownDelay(m, NOW, DEFAULT_SAFETY)).toBeUndefined();
    expect(scaleDownDelay({ ...m, lastScaleUp: ago(599_000) }, NOW, DEFAULT_SAFETY)).toMatch(/waits 1 s more after the scale-up/);
    expect(scaleDownDelay({ ...m, lastScaleUp: ago(600_000) }, NOW, DEFAULT_SAFETY)).toBeUndefined();
    expect(scaleDownDelay({ ...m, lastScaleDown: ago(5_000) }, NOW, DEFAULT_SAFETY)).toMatch(/waits 5 s more after the scale-down .* \(delay after delete 10 s\)/);
    expect(scaleDownDelay({ ...m, lastFailure: ago(60_000) }, NOW, DEFAULT_SAFETY)).toMatch(/waits 120 s more after the failure/);
  });

  it("replace a node that never became Ready once, then back the group off, doubling", () => {
    let m = recordResults(emptyMemory(), NOW, { added: 1, removed: 0, failedGroups: ["web"], joinedGroups: [] });
    expect(groupBackoff(m, "web", NOW, DEFAULT_SAFETY)).toBeUndefined();
    m = recordResults(m, NOW, { added: 1, removed: 0, failedGroups: ["web"], joinedGroups: [] });
    expect(groupBackoff(m, "web", new Date(NOW.getTime() + 299_000), DEFAULT_SAFETY)).toMatch(/backed off 1 s more: 2 new nodes in a row failed/);
    expect(groupBackoff(m, "web", new Date(NOW.getTime() + 300_000), DEFAULT_SAFETY)).toBeUndefined();
    m = recordResults(m, NOW, { added: 0, removed: 0, failedGroups: ["web"], joinedGroups: [] });
    expect(groupBackoff(m, "web", new Date(NOW.getTime() + 599_000), DEFAULT_SAFETY)).toMatch(/backed off/);
    m = recordResults(m, NOW, { added: 0, removed: 0, failedGroups: [], joinedGroups: ["web"] });
    expect(groupBackoff(m, "web", NOW, DEFAULT_SAFETY)).toBeUndefined();
  });
});

describe("a scan (decideNative)", () => {
  const options: NativeOptions = { ...DEFAULT_SAFETY, expander: ["least-waste"], priorities: [], scaleDown: { enabled: true, utilizationThreshold: 0.5, unneededMs: MIN10, budget: "10%", budgets: [] } };
  const web = testGroup("web", { max: 5 });
  const member = (name: string, createdAt = ago(3_600_000)) => ({ name, createdAt, ready: true });

  it("scales up for unschedulable pods and leaves scale-down for later scans", () => {
    const nodes = [testNode("web-a", "web")];
    const pods = [testPod("x", 1900, 100, { nodeName: "web-a" }), pendingPod("p1", 1000, 100), pendingPod("p2", 1000, 100)];
    const r = decideNative({ groups: [web], members: new Map([["web", [member("web-a")]]]), cluster: { nodes, pods, daemonSets: [], pdbs: [] }, memory: emptyMemory(), now: NOW, options });
    expect(r.decisions.get("web")).toMatchObject({ add: 1, code: "pending_pods", reason: expect.stringMatching(/^2 pods unschedulable \(cpu\): \+1 on web/) });
    expect(r.scaleDownSkipped).toBe("this scan scales up");
  });

  it("leaves pods the batcher holds for the next scan", () => {
    const nodes = [testNode("web-a", "web")];
    const p = pendingPod("p1", 1000, 100);
    const pods = [testPod("x", 1900, 100, { nodeName: "web-a" }), p];
    const r = decideNative({ groups: [web], members: new Map([["web", [member("web-a")]]]), cluster: { nodes, pods, daemonSets: [], pdbs: [] }, held: new Set([p.uid]), memory: emptyMemory(), now: NOW, options });
    expect(r.decisions.get("web")!.add).toBe(0);
  });

  it("counts a VM without a Ready Node as on its way, within its max provision time, and reports it after", () => {
    const nodes = [testNode("web-a", "web")];
    const pods = [testPod("x", 1900, 100, { nodeName: "web-a" }), pendingPod("p1", 1000, 100)];
    const young = decideNative({ groups: [web], members: new Map([["web", [member("web-a"), member("web-b", ago(10_000))]]]), cluster: { nodes, pods, daemonSets: [], pdbs: [] }, memory: emptyMemory(), now: NOW, options });
    expect(young.decisions.get("web")).toMatchObject({ add: 0, code: "waiting_for_nodes" });
    const old = decideNative({ groups: [web], members: new Map([["web", [member("web-a"), member("web-b", ago(3_600_000))]]]), cluster: { nodes, pods, daemonSets: [], pdbs: [] }, memory: emptyMemory(), now: NOW, options });
    expect(old.stuck).toEqual([{ group: "web", name: "web-b", ageMs: 3_600_000 }]);
    expect(old.decisions.get("web")!.add).toBe(1);
  });

  it("halts every group when too many nodes are unready", () => {
    const nodes = ["a", "b", "c", "d", "e"].map((x) => testNode(`web-${x}`, "web", 2000, 2048, { ready: x === "a" }));
    const r = decideNative({ groups: [web], members: new Map([["web", nodes.map((n) => member(n.name))]]), cluster: { nodes, pods: [pendingPod("p", 100, 100)], daemonSets: [], pdbs: [] }, memory: emptyMemory(), now: NOW, options });
    expect(r.halted).toMatch(/4 of 5 nodes unready/);
    expect(r.decisions.get("web")).toMatchObject({ add: 0, code: "too_many_unready" });
  });

  it("says in a steady group's reason which node a PDB or a scheduled budget keeps, and why", () => {
    const nodes = ["web-a", "web-b", "web-c"].map((n) => testNode(n, "web"));
    const pods = [testPod("x", 1200, 100, { nodeName: "web-a" }), testPod("db-0", 200, 100, { nodeName: "web-b", labels: { app: "db" } })];
    const input = { groups: [web], members: new Map([["web", nodes.map((n) => member(n.name))]]), now: NOW, memory: { ...emptyMemory(), unneededSince: { "web-c": ago(MIN10) } } };
    const r = decideNative({ ...input, cluster: { nodes, pods, daemonSets: [], pdbs: [testPdb("db-pdb", "db", 0)] }, options });
    expect(r.decisions.get("web")).toMatchObject({ remove: ["web-c"], code: "unneeded_nodes" });
    const held = decideNative({ ...input, cluster: { nodes, pods, daemonSets: [], pdbs: [testPdb("db-pdb", "db", 0)] }, options: { ...options, scaleDown: { ...options.scaleDown, budgets: [{ nodes: "0", schedule: "0 9 * * 1-5", timezone: "UTC", duration: "8h", durationMs: 8 * 3_600_000 }] } } });
    expect(held.decisions.get("web")).toMatchObject({
      remove: [],
      code: "steady",
      reason: '3 VMs; no unschedulable pods; web-c kept: scheduled disruption budget 0 ("0 9 * * 1-5" UTC for 8h, until 2026-12-03T17:00Z) of 3 nodes (0 now) is used; web-b kept: pod default/db-0 is covered by PDB db-pdb, 0 disruptions allowed',
    });
  });

  it("removes unneeded VMs by name once the delays allow", () => {
    const nodes = ["a", "b"].map((x) => testNode(`web-${x}`, "web"));
    const pods = [testPod("x", 1200, 100, { nodeName: "web-a" }), testPod("y", 200, 100, { nodeName: "web-b" })];
    const input = { groups: [web], members: new Map([["web", nodes.map((n) => member(n.name))]]), cluster: { nodes, pods, daemonSets: [], pdbs: [] }, now: NOW, options };
    const first = decideNative({ ...input, memory: emptyMemory() });
    expect(first.decisions.get("web")).toMatchObject({ remove: [], code: "steady", reason: "2 VMs; no unschedulable pods; unneeded: web-b 10% (10m0s to go)" });
    const later = decideNative({ ...input, memory: first.memory, now: new Date(NOW.getTime() + MIN10) });
    expect(later.decisions.get("web")).toMatchObject({ remove: ["web-b"], code: "unneeded_nodes" });
    const afterAdd = decideNative({ ...input, memory: { ...first.memory, lastScaleUp: NOW.toISOString() }, now: new Date(NOW.getTime() + MIN10 - 1000) });
    expect(afterAdd.decisions.get("web")!.remove).toEqual([]);
    expect(afterAdd.scaleDownSkipped).toMatch(/after the scale-up/);
  });
});
