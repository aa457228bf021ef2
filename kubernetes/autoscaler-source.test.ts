import { describe, expect, it } from "vitest";
import { autoscalerSource, intentReason } from "./autoscaler-source.js";
import { initialIntent, type GroupIntent } from "./intent-store.js";
import { kubeTestConfig } from "./testing/config.js";

const config = kubeTestConfig({ min: 1, max: 5 });
const group = config.groups[0]!;
const members = (...names: string[]) => names.map((name) => ({ name, createdAt: "2026-12-03T10:00:00Z", ready: true }));
const at = "2026-12-03T10:00:00Z";

function intent(o: Partial<GroupIntent>): GroupIntent {
  return { ...initialIntent("workers", 0), ...o };
}

describe("the cluster-autoscaler decision source", () => {
  it("owns only Kubernetes node groups", () => {
    const source = autoscalerSource(new Map());
    expect(source.owns(group)).toBe(true);
    expect(source.owns({ ...group, kubernetes: undefined })).toBe(false);
  });

  it("keeps a group cluster-autoscaler never changed at its VMs, within min and max", () => {
    const d = autoscalerSource(new Map()).decide(group, members("a", "b"));
    expect(d).toEqual({ group: "workers", desired: 2, code: "cluster_autoscaler", reason: "cluster-autoscaler: target 2" });
    expect(autoscalerSource(new Map()).decide(group, []).desired).toBe(1);
  });

  it("decides the target less the failed instances, and names the VMs cluster-autoscaler deleted as to go now", () => {
    const i = intent({
      target: 3,
      remove: [{ uuid: "u-b", name: "b" }, { uuid: "u-gone", name: "gone" }],
      failed: [{ uuid: "u-f", errorClass: "OutOfResources", errorCode: "premiscale.NoRoom", message: "no room", at }],
      pending: [{ seq: 4, at, op: "DeleteNodes", delta: -1, nodes: ["b"], target: 3 }],
    });
    const d = autoscalerSource(new Map([["workers", i]])).decide(group, members("a", "b", "c"));
    expect(d).toEqual({
      group: "workers",
      desired: 2,
      code: "cluster_autoscaler",
      reason: "cluster-autoscaler: DeleteNodes b (1 failed instance(s) wait for cluster-autoscaler to delete them)",
      removeNow: ["b"],
    });
  });

  it("gives the calls not yet applied as the reason, runs of the same call summed", () => {
    const ops = (...o: [GroupIntent["pending"][number]["op"], number, string[]?][]) =>
      intent({ pending: o.map(([op, delta, nodes], n) => ({ seq: n + 1, at, op, delta, ...(nodes ? { nodes } : {}), target: 0 })) });
    expect(intentReason(ops(["IncreaseSize", 1], ["IncreaseSize", 1]))).toBe("cluster-autoscaler: IncreaseSize +2");
    expect(intentReason(ops(["IncreaseSize", 2], ["DecreaseTargetSize", -1], ["DeleteNodes", -2, ["w-1", "w-2"]], ["DeleteNodes", -1, ["w-3"]]))).toBe(
      "cluster-autoscaler: IncreaseSize +2, DecreaseTargetSize -1, DeleteNodes w-1, w-2, w-3",
    );
  });
});
