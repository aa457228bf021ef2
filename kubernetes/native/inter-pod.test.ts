import { describe, expect, it } from "vitest";
import { interPodOf, podFromApi, type SimPod } from "./cluster-model.js";
import { groupTemplate } from "./group-template.js";
import { antiAffinityFit, repelsItself } from "./predicates.js";
import { computeScaleDown, type ScaleDownGroup } from "./scale-down.js";
import { computeScaleUp } from "./scale-up.js";
import { pendingPod, testGroup, testNode, testPod } from "./testing.js";

// Required pod anti-affinity over the hostname is simulated (both ways); a spread over nodes packs one per new node;
// anything else between pods is unmodelled: no node is promised for such a pod, and its node is never consolidated.

const HOST = "kubernetes.io/hostname";
const apart = (app: string) => ({ podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: HOST, labelSelector: { matchLabels: { app } } }] } });
const oneApart = (name: string, cpu: number, o: Partial<SimPod> = {}) => pendingPod(name, cpu, 100, { labels: { app: "db" }, ...interPodOf({ affinity: apart("db") }), ...o });

describe("inter-pod constraints read from a pod spec", () => {
  it("keeps hostname anti-affinity as terms, a hostname spread as one per node, and names what it does not model", () => {
    expect(interPodOf({ affinity: apart("db") })).toEqual({ antiAffinity: [{ selector: { matchLabels: { app: "db" } } }] });
    expect(interPodOf({ topologySpreadConstraints: [{ maxSkew: 1, topologyKey: HOST, labelSelector: { matchLabels: { app: "db" } } }] })).toEqual({ spreadByNode: true });
    // ScheduleAnyway is a preference: the scheduler places the pod anyway.
    expect(interPodOf({ topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "topology.kubernetes.io/zone", whenUnsatisfiable: "ScheduleAnyway" }] })).toEqual({});
    expect(
      interPodOf({
        affinity: {
          podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: HOST, labelSelector: { matchLabels: { app: "cache" } } }] },
          podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: "topology.kubernetes.io/zone", labelSelector: {} }] },
        },
        topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "topology.kubernetes.io/zone", whenUnsatisfiable: "DoNotSchedule" }],
      }).unmodelled,
    ).toBe("required pod affinity, required pod anti-affinity over topology.kubernetes.io/zone, topology spread over topology.kubernetes.io/zone");
    const p = podFromApi({ metadata: { name: "db-0", namespace: "prod", labels: { app: "db" } }, spec: { affinity: apart("db"), containers: [] } });
    expect(repelsItself(p)).toBe(true);
    // The same selector in another namespace's pod does not repel it: a term without namespaces means the pod's own.
    expect(antiAffinityFit(p, [testPod("other-db", 1, 1, { namespace: "dev", labels: { app: "db" } })])).toBeNull();
    expect(antiAffinityFit(p, [testPod("db-1", 1, 1, { namespace: "prod", labels: { app: "db" } })])).toBe("pod-anti-affinity");
    // Both ways: a pod with no anti-affinity of its own is refused where an existing pod's selects it.
    expect(antiAffinityFit(testPod("web", 1, 1, { namespace: "prod", labels: { app: "db" } }), [p])).toBe("pod-anti-affinity");
  });
});

describe("scale-up with inter-pod constraints", () => {
  const web = { template: groupTemplate(testGroup("web", { vcpus: 4, memoryMiB: 8192 }), []), current: 1, max: 10, upcoming: 0 };
  const node = testNode("web-aaaa", "web", 4000, 8192);
  const running = testPod("db-0", 500, 100, { nodeName: "web-aaaa", labels: { app: "db" }, ...interPodOf({ affinity: apart("db") }) });

  it("gives each pod that repels its own kind a node of its own, and never counts a node holding one as room now", () => {
    const pending = [oneApart("db-1", 500), oneApart("db-2", 500), oneApart("db-3", 500)];
    const r = computeScaleUp({ pending, nodes: [node], bound: [running], groups: [web], expander: ["least-waste"] });
    // By CPU all three fit the existing node (3.5 cores free) and one new node; by anti-affinity each needs its own.
    expect(r.schedulable).toEqual([]);
    expect(r.adds).toMatchObject([{ group: "web", add: 3 }]);
  });

  it("still lets an unrelated pod use the room next to it", () => {
    const r = computeScaleUp({ pending: [pendingPod("web-1", 500, 100, { labels: { app: "web" } })], nodes: [node], bound: [running], groups: [web], expander: ["least-waste"] });
    expect(r.schedulable.map((p) => p.name)).toEqual(["web-1"]);
    expect(r.adds).toEqual([]);
  });

  it("packs pods spread over nodes one per new node, and promises no node to a pod whose constraint it does not model", () => {
    const spread = interPodOf({ topologySpreadConstraints: [{ maxSkew: 1, topologyKey: HOST, labelSelector: { matchLabels: { app: "s" } } }] });
    const affine = interPodOf({ affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: HOST, labelSelector: { matchLabels: { app: "cache" } } }] } } });
    const pending = [pendingPod("s-1", 100, 10, spread), pendingPod("s-2", 100, 10, spread), pendingPod("near-cache", 100, 10, affine)];
    const r = computeScaleUp({ pending, nodes: [node], bound: [], groups: [web], expander: ["least-waste"] });
    expect(r.schedulable).toEqual([]);
    expect(r.adds).toMatchObject([{ group: "web", add: 2 }]);
    expect(r.adds[0]!.pods.map((p) => p.name).sort()).toEqual(["s-1", "s-2"]);
    expect(r.unplaceable).toEqual([{ pod: expect.objectContaining({ name: "near-cache" }), groups: { web: "inter-pod" } }]);
  });
});

describe("scale-down with inter-pod constraints", () => {
  const NOW = new Date("2026-12-03T12:00:00Z");
  const group = (current: number): ScaleDownGroup => ({ name: "web", min: 0, current, threshold: 0.5, unneededMs: 0, budget: "100%" });
  const groupOf = (n: { labels: Record<string, string> }) => n.labels["premiscale.io/group"];
  const db = (name: string, nodeName: string) => testPod(name, 200, 100, { nodeName, labels: { app: "db" }, ...interPodOf({ affinity: apart("db") }) });

  it("moves a pod only to a node its anti-affinity allows", () => {
    // web-a's db pod may go to web-c (no db there), not to web-b (db-1 is there).
    const nodes = [testNode("web-a", "web"), testNode("web-b", "web"), testNode("web-c", "web")];
    const pods = [db("db-0", "web-a"), db("db-1", "web-b"), testPod("big", 1200, 100, { nodeName: "web-c" })];
    const r = computeScaleDown({ nodes, pods, groups: [group(3)], groupOf, unneededSince: {}, now: NOW });
    expect(r.remove).toMatchObject([{ group: "web", nodes: ["web-a"] }]);
    expect(r.nodes["web-a"]).toMatchObject({ verdict: "remove", movedTo: { "default/db-0": "web-c" } });
    // web-b's db pod had nowhere left to go once db-0 took web-c.
    expect(r.nodes["web-b"]).toMatchObject({ verdict: "keep", why: "pod default/db-1 fits on no other node" });
  });

  it("keeps a node whose pod has a constraint it does not simulate, and says which", () => {
    const nodes = [testNode("web-a", "web"), testNode("web-b", "web")];
    const zonal = interPodOf({ topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "topology.kubernetes.io/zone", labelSelector: { matchLabels: { app: "z" } } }] });
    const pods = [testPod("z-0", 100, 10, { nodeName: "web-a", ...zonal }), testPod("other", 1200, 100, { nodeName: "web-b" })];
    const r = computeScaleDown({ nodes, pods, groups: [group(2)], groupOf, unneededSince: {}, now: NOW });
    expect(r.remove).toEqual([]);
    expect(r.nodes["web-a"]).toMatchObject({ verdict: "keep", why: "pod default/z-0 has topology spread over topology.kubernetes.io/zone, which native mode does not simulate" });
  });
});
