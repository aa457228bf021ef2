import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { packPods, shapeKey } from "./bin-pack.js";
import { daemonSetPod, nodeFromApi, podFromApi, podRequests } from "./cluster-model.js";
import { expand, type ExpansionOption } from "./expander.js";
import { groupTemplate } from "./group-template.js";
import { matchesRequirement, staticFit, tolerates, untoleratedTaint } from "./predicates.js";
import { cpuMillis, memoryBytes, parseQuantity } from "./quantity.js";
import { computeScaleUp, unschedulableCauses } from "./scale-up.js";
import { pendingPod, testGroup, testNode, testPod } from "./testing.js";

const MI = 2 ** 20;

describe("quantities", () => {
  it("read CPU as millicores rounded up and memory as bytes, in every suffix the API uses", () => {
    expect(cpuMillis("100m")).toBe(100);
    expect(cpuMillis("0.5")).toBe(500);
    expect(cpuMillis("2")).toBe(2000);
    expect(cpuMillis("0.1")).toBe(100);
    expect(cpuMillis("1500u")).toBe(2);
    expect(memoryBytes("128Mi")).toBe(128 * MI);
    expect(memoryBytes("1G")).toBe(1e9);
    expect(memoryBytes("129e6")).toBe(129e6);
    expect(memoryBytes("1.5Gi")).toBe(1.5 * 2 ** 30);
    expect(parseQuantity("lots")).toBeUndefined();
    expect(cpuMillis(undefined)).toBe(0);
  });
});

describe("a pod's requests", () => {
  it("are the containers' sum, or the largest init container when it is larger, plus the overhead", () => {
    const spec = {
      containers: [{ resources: { requests: { cpu: "100m", memory: "64Mi" } } }, { resources: { requests: { cpu: "200m" } } }],
      initContainers: [{ resources: { requests: { cpu: "500m", memory: "32Mi" } } }],
      overhead: { cpu: "10m", memory: "1Mi" },
    };
    expect(podRequests(spec)).toEqual({ cpuMillis: 510, memoryBytes: 65 * MI, pods: 1 });
  });

  it("count sidecars (restartPolicy Always) beside the containers and beside the init containers after them", () => {
    const spec = {
      initContainers: [{ restartPolicy: "Always", resources: { requests: { cpu: "100m" } } }, { resources: { requests: { cpu: "300m" } } }],
      containers: [{ resources: { requests: { cpu: "200m" } } }],
    };
    expect(podRequests(spec).cpuMillis).toBe(400);
  });

  it("are read from a v1.Pod with its Unschedulable condition, its owner and its annotations", () => {
    const p = podFromApi({
      metadata: { uid: "u1", name: "web-1", namespace: "shop", ownerReferences: [{ kind: "ReplicaSet", name: "web-7f", controller: true }], annotations: { "cluster-autoscaler.kubernetes.io/safe-to-evict": "false" } },
      spec: { containers: [{ resources: { requests: { cpu: "1", memory: "1Gi" } } }], nodeSelector: { disk: "ssd" } },
      status: { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/2 nodes are available: 2 Insufficient cpu." }] },
    });
    expect(p).toMatchObject({ uid: "u1", name: "web-1", namespace: "shop", owner: "ReplicaSet/web-7f", safeToEvict: false, daemonSet: false, nodeSelector: { disk: "ssd" } });
    expect(p.unschedulable?.message).toMatch(/Insufficient cpu/);
  });

  it("of a pod the scheduler has not tried yet carry no Unschedulable condition (it is not guessed)", () => {
    const p = podFromApi({ metadata: { name: "new" }, spec: { containers: [] }, status: { phase: "Pending" } });
    expect(p.unschedulable).toBeUndefined();
  });
});

describe("the predicates", () => {
  const node = { name: "n1", labels: { zone: "a", gen: "5", disk: "ssd" }, taints: [] };

  it("match node affinity requirements with In, NotIn, Exists, DoesNotExist, Gt and Lt", () => {
    expect(matchesRequirement({ key: "zone", operator: "In", values: ["a", "b"] }, node)).toBe(true);
    expect(matchesRequirement({ key: "zone", operator: "NotIn", values: ["a"] }, node)).toBe(false);
    expect(matchesRequirement({ key: "gpu", operator: "NotIn", values: ["x"] }, node)).toBe(true);
    expect(matchesRequirement({ key: "disk", operator: "Exists" }, node)).toBe(true);
    expect(matchesRequirement({ key: "gpu", operator: "DoesNotExist" }, node)).toBe(true);
    expect(matchesRequirement({ key: "gen", operator: "Gt", values: ["4"] }, node)).toBe(true);
    expect(matchesRequirement({ key: "gen", operator: "Lt", values: ["4"] }, node)).toBe(false);
    expect(matchesRequirement({ key: "zone", operator: "Gt", values: ["4"] }, node)).toBe(false);
    expect(matchesRequirement({ key: "metadata.name", operator: "In", values: ["n1"], field: true }, node)).toBe(true);
  });

  it("need one affinity term to match whole, and the nodeSelector to match exactly", () => {
    const pod = testPod("p", 1, 1, { affinityTerms: [[{ key: "zone", operator: "In", values: ["b"] }], [{ key: "disk", operator: "Exists" }, { key: "gen", operator: "Gt", values: ["3"] }]] });
    expect(staticFit(pod, node)).toBeNull();
    expect(staticFit({ ...pod, affinityTerms: [[{ key: "zone", operator: "In", values: ["b"] }]] }, node)).toBe("node-affinity");
    expect(staticFit({ ...pod, nodeSelector: { disk: "hdd" } }, node)).toBe("node-selector");
  });

  it("let a pod onto a tainted node only with a toleration for each NoSchedule and NoExecute taint", () => {
    const taints = [
      { key: "dedicated", value: "gpu", effect: "NoSchedule" as const },
      { key: "soft", effect: "PreferNoSchedule" as const },
    ];
    expect(untoleratedTaint([], taints)?.key).toBe("dedicated");
    expect(untoleratedTaint([{ key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule" }], taints)).toBeUndefined();
    expect(untoleratedTaint([{ key: "dedicated", operator: "Exists" }], taints)).toBeUndefined();
    expect(untoleratedTaint([{ operator: "Exists" }], taints)).toBeUndefined();
    expect(tolerates({ key: "dedicated", value: "cpu" }, taints[0]!)).toBe(false);
    expect(tolerates({ key: "dedicated", value: "gpu", effect: "NoExecute" }, taints[0]!)).toBe(false);
  });

  it("keep pods off cordoned nodes", () => {
    expect(staticFit(testPod("p", 1, 1), { ...node, unschedulable: true })).toBe("unschedulable");
  });
});

describe("a group's template node", () => {
  it("offers the VM template less reserved, less the DaemonSet pods that would land on it", () => {
    const g = testGroup("web", { vcpus: 4, memoryMiB: 8192, reservedCpuMillis: 200, reservedMemoryMiB: 512, labels: { tier: "web" }, maxPods: 30 });
    const logs = daemonSetPod({ metadata: { name: "logs", namespace: "kube-system" }, spec: { template: { spec: { containers: [{ resources: { requests: { cpu: "100m", memory: "128Mi" } } }] } } } });
    const gpuOnly = daemonSetPod({ metadata: { name: "gpu-plugin", namespace: "kube-system" }, spec: { template: { spec: { nodeSelector: { gpu: "true" }, containers: [{ resources: { requests: { cpu: "1" } } }] } } } });
    const t = groupTemplate(g, [logs, gpuOnly]);
    expect(t.allocatable).toEqual({ cpuMillis: 3800, memoryBytes: 7680 * MI, pods: 30 });
    expect(t.free).toEqual({ cpuMillis: 3700, memoryBytes: 7552 * MI, pods: 29 });
    expect(t.daemonSets.map((d) => d.name)).toEqual(["logs"]);
    expect(t.labels).toMatchObject({ tier: "web", "premiscale.io/group": "web", "kubernetes.io/os": "linux" });
  });

  it("reads a v1.Node's allocatable, taints, cordon and scale-down-disabled annotation", () => {
    const n = nodeFromApi({
      metadata: { name: "n", labels: { a: "b" }, annotations: { "cluster-autoscaler.kubernetes.io/scale-down-disabled": "true" } },
      spec: { unschedulable: true, taints: [{ key: "k", effect: "NoSchedule" }] },
      status: { allocatable: { cpu: "3800m", memory: "7Gi", pods: "110" }, conditions: [{ type: "Ready", status: "True" }] },
    });
    expect(n).toMatchObject({ name: "n", ready: true, unschedulable: true, scaleDownDisabled: true, allocatable: { cpuMillis: 3800, memoryBytes: 7 * 2 ** 30, pods: 110 } });
  });
});

describe("bin-packing (first-fit decreasing)", () => {
  const t = groupTemplate(testGroup("web", { vcpus: 2, memoryMiB: 4096 }), []);

  it("puts the biggest pods first and fills each node before opening the next", () => {
    const pods = [testPod("s1", 500, 256), testPod("big", 1500, 1024), testPod("s2", 500, 256), testPod("s3", 500, 256)];
    const r = packPods(pods, t, { limit: 10 });
    expect(r.newNodes).toBe(2);
    expect(r.nodes.map((n) => n.pods.map((p) => p.name))).toEqual([["big", "s1"], ["s2", "s3"]]);
    expect(r.waste.cpu).toBeCloseTo(0.25);
  });

  it("stops at the limit and says which pods are past it", () => {
    const pods = Array.from({ length: 5 }, (_, i) => testPod(`p${i}`, 1000, 100));
    const r = packPods(pods, t, { limit: 2 });
    expect(r.newNodes).toBe(2);
    expect(r.placed).toHaveLength(4);
    expect(r.overLimit.map((p) => p.name)).toEqual(["p4"]);
  });

  it("fills nodes on their way first, at no cost", () => {
    const r = packPods([testPod("a", 1000, 100), testPod("b", 1000, 100), testPod("c", 1000, 100)], t, { limit: 5, upcoming: 1 });
    expect(r.onUpcoming.map((p) => p.name)).toEqual(["a", "b"]);
    expect(r.newNodes).toBe(1);
  });

  it("places exactly what first fit decreasing one pod at a time places, within the limit and every node's room (property)", () => {
    const small = groupTemplate(testGroup("small", { vcpus: 2, memoryMiB: 2048, maxPods: 5 }), []);
    fc.assert(
      fc.property(fc.array(fc.record({ cpu: fc.constantFrom(0, 100, 300, 700, 1500, 2500), mem: fc.constantFrom(0, 64, 512, 1024) }), { maxLength: 40 }), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 2 }), (spec, limit, upcoming) => {
        const pods = spec.map((x, i) => testPod(`p${String(i).padStart(2, "0")}`, x.cpu, x.mem));
        const r = packPods(pods, small, { limit, upcoming });
        // The reference: one pod at a time, biggest first (ties: shape, then name), first node with room.
        const free = small.free;
        const sz = (p: (typeof pods)[number]) => Math.max(p.requests.cpuMillis / free.cpuMillis, p.requests.memoryBytes / free.memoryBytes);
        const fitting = pods.filter((p) => p.requests.cpuMillis <= free.cpuMillis && p.requests.memoryBytes <= free.memoryBytes);
        const order = [...fitting].sort((a, b) => sz(b) - sz(a) || (shapeKey(a) < shapeKey(b) ? -1 : shapeKey(a) > shapeKey(b) ? 1 : 0) || a.name.localeCompare(b.name));
        const bins: { cpu: number; mem: number; pods: string[] }[] = Array.from({ length: upcoming }, () => ({ cpu: 0, mem: 0, pods: [] }));
        let opened = 0;
        for (const p of order) {
          let b = bins.find((x) => x.cpu + p.requests.cpuMillis <= free.cpuMillis && x.mem + p.requests.memoryBytes <= free.memoryBytes && x.pods.length + 1 <= free.pods);
          if (!b && opened < limit) {
            opened++;
            bins.push((b = { cpu: 0, mem: 0, pods: [] }));
          }
          if (!b) continue;
          b.cpu += p.requests.cpuMillis;
          b.mem += p.requests.memoryBytes;
          b.pods.push(p.name);
        }
        expect(r.newNodes).toBe(opened);
        expect(r.nodes.map((n) => n.pods.map((p) => p.name).sort())).toEqual(bins.map((b) => b.pods.sort()));
        expect(r.placedCount + r.onUpcoming.length + r.overLimit.length + r.misfits.length).toBe(pods.length);
        for (const n of r.nodes) expect(n.used.cpuMillis <= free.cpuMillis && n.used.memoryBytes <= free.memoryBytes && n.used.pods <= free.pods).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("counts pod slots (maxPods) as a resource", () => {
    const tiny = groupTemplate(testGroup("tiny", { maxPods: 3 }), []);
    const r = packPods(Array.from({ length: 7 }, (_, i) => testPod(`p${i}`, 10, 10)), tiny, { limit: 10 });
    expect(r.newNodes).toBe(3);
  });

  it("reports pods no node of the group can hold, with the reason", () => {
    const r = packPods([testPod("huge", 3000, 100), testPod("picky", 10, 10, { nodeSelector: { gpu: "true" } })], t, { limit: 5 });
    expect(r.misfits.map((m) => [m.pod.name, m.why]).sort()).toEqual([["huge", "cpu"], ["picky", "node-selector"]]);
    expect(r.newNodes).toBe(0);
  });
});

describe("the expanders", () => {
  const opt = (group: string, newNodes: number, pods: number, cpu: number, memory: number): ExpansionOption => ({ group, newNodes, pods: Array.from({ length: pods }, (_, i) => testPod(`${group}${i}`, 1, 1)), podCount: pods, waste: { cpu, memory } });
  const options = [opt("web-small", 3, 6, 0.1, 0.2), opt("web-large", 1, 6, 0.3, 0.4), opt("batch", 2, 4, 0.05, 0.05)];

  it("least-waste picks the least unused CPU and memory, and says how much", () => {
    expect(expand(["least-waste"], options)).toEqual({ option: options[2], why: ["least waste 5%"] });
  });

  it("priority picks the highest priority whose regex matches, and chains to least-waste among equals", () => {
    const priorities = [
      { priority: 10, patterns: ["^web-"] },
      { priority: 1, patterns: [".*"] },
    ];
    const e = expand(["priority", "least-waste"], options, { priorities });
    expect(e.option.group).toBe("web-small");
    expect(e.why).toEqual(["priority 10", "least waste 15%"]);
  });

  it("priority keeps every option when no regex matches any group", () => {
    expect(expand(["priority", "least-nodes"], options, { priorities: [{ priority: 5, patterns: ["^gpu"] }] }).why).toEqual(["no priority matches", "least nodes 1"]);
  });

  it("random draws from the injected generator", () => {
    expect(expand(["random"], options, { random: () => 0.99 }).option.group).toBe("web-small");
    expect(expand(["random"], options, { random: () => 0 }).option.group).toBe("batch");
  });

  it("breaks what the chain leaves tied by group name, and says so", () => {
    const tied = [opt("b", 1, 1, 0.1, 0.1), opt("a", 1, 1, 0.1, 0.1)];
    expect(expand(["least-waste"], tied)).toEqual({ option: tied[1], why: ["least waste 10%", "tie: first by name of a, b"] });
  });
});

describe("scale-up", () => {
  const web = { template: groupTemplate(testGroup("web", { vcpus: 2, memoryMiB: 4096 }), []), current: 1, max: 5, upcoming: 0 };
  const big = { template: groupTemplate(testGroup("big", { vcpus: 8, memoryMiB: 16384 }), []), current: 0, max: 2, upcoming: 0 };
  const gpu = { template: groupTemplate(testGroup("gpu", { vcpus: 4, memoryMiB: 8192, labels: { gpu: "true" }, taints: [{ key: "gpu", effect: "NoSchedule" }] }), []), current: 0, max: 3, upcoming: 0 };
  const fullNode = testNode("web-aaaa", "web");
  const filler = testPod("filler", 2000, 100, { nodeName: "web-aaaa" });

  it("adds nodes to the group the expander picks and names the pods and the numbers", () => {
    const pending = [pendingPod("w1", 1000, 512), pendingPod("w2", 1000, 512), pendingPod("w3", 1000, 512)];
    const r = computeScaleUp({ pending, nodes: [fullNode], bound: [filler], groups: [web, big], expander: ["least-waste"] });
    expect(r.adds).toHaveLength(1);
    expect(r.adds[0]).toMatchObject({ group: "web", add: 2 });
    expect(r.adds[0]!.reason).toBe("3 pods unschedulable (cpu): +2 on web, least waste 53% [default/w1, default/w2, default/w3]");
  });

  it("says which resource the scheduler found short, from its message", () => {
    const msg = (m: string) => testPod("p", 1, 1, { unschedulable: { message: m } });
    expect(unschedulableCauses([msg("0/3 nodes are available: 1 Insufficient cpu, 2 Insufficient memory. preemption: 0/3 nodes are available.")])).toEqual(["cpu", "memory"]);
    expect(unschedulableCauses([msg("0/2 nodes are available: 2 Too many pods.")])).toEqual(["pods"]);
    expect(unschedulableCauses([msg("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")])).toEqual(["constraints"]);
    expect(unschedulableCauses([msg("no nodes available to schedule pods")])).toEqual(["no nodes"]);
  });

  it("grows two groups in one decision when the pods need different templates", () => {
    const tol = [{ key: "gpu", operator: "Exists" as const }];
    const pending = [pendingPod("w1", 1500, 512), pendingPod("g1", 1000, 512, { nodeSelector: { gpu: "true" }, tolerations: tol }), pendingPod("g2", 3000, 512, { nodeSelector: { gpu: "true" }, tolerations: tol })];
    const r = computeScaleUp({ pending, nodes: [fullNode], bound: [filler], groups: [web, gpu], expander: ["least-waste"] });
    expect(r.adds.map((a) => [a.group, a.add, a.pods.map((p) => p.name).sort()])).toEqual([
      ["gpu", 1, ["g1", "g2"]],
      ["web", 1, ["w1"]],
    ]);
  });

  it("adds nothing for pods that fit an existing node now, or a node on its way", () => {
    const roomy = testNode("web-bbbb", "web");
    const r1 = computeScaleUp({ pending: [pendingPod("p", 500, 100)], nodes: [fullNode, roomy], bound: [filler], groups: [web], expander: ["least-waste"] });
    expect(r1.adds).toEqual([]);
    expect(r1.schedulable.map((p) => p.name)).toEqual(["p"]);
    const r2 = computeScaleUp({ pending: [pendingPod("p", 500, 100)], nodes: [fullNode], bound: [filler], groups: [{ ...web, current: 2, upcoming: 1 }], expander: ["least-waste"] });
    expect(r2.adds).toEqual([]);
    expect(r2.waiting).toEqual([{ group: "web", pods: [expect.objectContaining({ name: "p" })] }]);
  });

  it("reports a pod that fits no template, per group, and scales nothing for it", () => {
    const r = computeScaleUp({ pending: [pendingPod("huge", 64000, 100)], nodes: [], bound: [], groups: [web, big, gpu], expander: ["least-waste"] });
    expect(r.adds).toEqual([]);
    expect(r.unplaceable[0]!.groups).toEqual({ web: "cpu", big: "cpu", gpu: "taint" });
  });

  it("never takes a group past its max, and spills to the next group", () => {
    const pending = Array.from({ length: 6 }, (_, i) => pendingPod(`p${i}`, 1800, 100));
    const r = computeScaleUp({ pending, nodes: [], bound: [], groups: [{ ...web, current: 3 }, big], expander: ["least-waste"] });
    const byGroup = Object.fromEntries(r.adds.map((a) => [a.group, a.add]));
    expect(byGroup.web).toBe(2);
    expect(byGroup.big).toBe(1);
    expect(r.unplaceable).toEqual([]);
  });

  it("leaves a backed-off group out and says so for the pods only it could take", () => {
    const r = computeScaleUp({ pending: [pendingPod("p", 1000, 100)], nodes: [], bound: [], groups: [{ ...web, blocked: "backed off" }], expander: ["least-waste"] });
    expect(r.adds).toEqual([]);
    expect(r.unplaceable[0]!.groups).toEqual({ web: "blocked" });
  });
});
