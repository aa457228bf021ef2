import { describe, expect, it } from "vitest";
import { CORDONED_BY_DRAIN, nodeFromApi, TO_BE_DELETED_TAINT, withoutDrainMarks, withoutNodes } from "./cluster-model.js";
import { pendingPod, testNode, testPod } from "./testing.js";

const apiNode = (name: string, o: { providerID?: string; unschedulable?: boolean; taints?: { key: string; value?: string; effect: string }[]; annotations?: Record<string, string> } = {}) => ({
  metadata: { name, ...(o.annotations ? { annotations: o.annotations } : {}) },
  spec: { ...(o.providerID ? { providerID: o.providerID } : {}), ...(o.unschedulable ? { unschedulable: true } : {}), ...(o.taints ? { taints: o.taints } : {}) },
  status: { allocatable: { cpu: "2", memory: "4Gi", pods: "110" }, conditions: [{ type: "Ready", status: "True" }] },
});
const TAINT = { key: TO_BE_DELETED_TAINT, value: "1764790000", effect: "NoSchedule" };

describe("the marks of a drain cut short", () => {
  it("are read from the Node: the ToBeDeleted taint and the drain's cordon annotation", () => {
    expect(nodeFromApi(apiNode("a")).drain).toBeUndefined();
    expect(nodeFromApi(apiNode("b", { unschedulable: true, taints: [TAINT], annotations: { [CORDONED_BY_DRAIN]: "true" } })).drain).toEqual({ tainted: true, cordoned: true });
    expect(nodeFromApi(apiNode("c", { unschedulable: true, taints: [TAINT] })).drain).toEqual({ tainted: true, cordoned: false });
  });

  it("are left out of the scan's view of a node group's nodes, keeping an operator's cordon and other taints, and listed to be resumed or released", () => {
    const nodes = [
      nodeFromApi(apiNode("web-1", { providerID: "premiscale://web/u1", unschedulable: true, taints: [TAINT, { key: "dedicated", value: "x", effect: "NoSchedule" }], annotations: { [CORDONED_BY_DRAIN]: "true" } })),
      nodeFromApi(apiNode("web-2", { providerID: "premiscale://web/u2", unschedulable: true, taints: [TAINT] })),
      nodeFromApi(apiNode("web-3", { providerID: "premiscale://web/u3" })),
      // Not a node group's: another autoscaler's taint is none of premiscale's business.
      nodeFromApi(apiNode("other", { providerID: "aws:///i-1", unschedulable: true, taints: [TAINT] })),
    ];
    const { cluster, marked } = withoutDrainMarks({ nodes, pods: [] }, ["web"]);
    expect(marked).toEqual(["web-1", "web-2"]);
    const [one, two, three, other] = cluster.nodes;
    expect(one).toMatchObject({ unschedulable: false, taints: [{ key: "dedicated", value: "x", effect: "NoSchedule" }] });
    expect(one!.drain).toBeUndefined();
    expect(two).toMatchObject({ unschedulable: true, taints: [] });
    expect(three).toBe(nodes[2]);
    expect(other).toBe(nodes[3]);
    expect(nodes[0]!.unschedulable).toBe(true);
  });
});

describe("the cluster without the nodes a plan removes", () => {
  it("leaves those nodes out, makes their pods pending again and drops their DaemonSet and mirror pods", () => {
    const nodes = [testNode("web-a", "web"), testNode("web-dead", "web")];
    const pods = [
      testPod("stays", 100, 10, { nodeName: "web-a" }),
      testPod("moves", 100, 10, { nodeName: "web-dead" }),
      testPod("ds", 10, 10, { nodeName: "web-dead", daemonSet: true }),
      testPod("static", 10, 10, { nodeName: "web-dead", mirror: true }),
      pendingPod("waiting", 100, 10),
    ];
    const r = withoutNodes({ nodes, pods, extra: 1 }, new Set(["web-dead"]));
    expect(r.nodes.map((n) => n.name)).toEqual(["web-a"]);
    expect(r.pods.map((p) => [p.name, p.nodeName ?? null, p.unschedulable?.message ?? null])).toEqual([
      ["stays", "web-a", null],
      ["moves", null, "its node web-dead is removed: an interrupted apply left its VM half-made"],
      ["waiting", null, "0/1 nodes are available: 1 Insufficient cpu."],
    ]);
    expect(r.extra).toBe(1);
    // Nothing to leave out: the same object.
    const same = { nodes, pods };
    expect(withoutNodes(same, new Set(["web-gone"]))).toBe(same);
  });
});
