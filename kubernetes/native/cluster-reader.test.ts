import { describe, expect, it } from "vitest";
import type { KubeApi, KubeResponse } from "../kube-api.js";
import { listAll, listUnschedulable, readCluster } from "./cluster-reader.js";

/** An API that answers from a table of paths (query included) and records the calls. */
function fakeApi(answers: Record<string, KubeResponse>): KubeApi & { calls: string[] } {
  const calls: string[] = [];
  return {
    server: "https://127.0.0.1:6443",
    calls,
    request: async (method, path) => {
      calls.push(`${method} ${path}`);
      return answers[path] ?? { status: 404, body: { message: `no ${path}` } };
    },
  };
}

const pending = (name: string, scheduled?: { status: string; reason: string }) => ({
  metadata: { name, namespace: "default", uid: `uid-${name}` },
  spec: { containers: [{ resources: { requests: { cpu: "1" } } }] },
  status: { phase: "Pending", conditions: scheduled ? [{ type: "PodScheduled", message: "0/1 nodes are available: 1 Insufficient cpu.", ...scheduled }] : [] },
});

describe("the cluster reader", () => {
  it("reads every page of a list", async () => {
    const api = fakeApi({
      "/api/v1/nodes?limit=500": { status: 200, body: { items: [{ metadata: { name: "a" } }], metadata: { continue: "t1" } } },
      "/api/v1/nodes?limit=500&continue=t1": { status: 200, body: { items: [{ metadata: { name: "b" } }], metadata: {} } },
    });
    expect((await listAll(api, "/api/v1/nodes")).map((n) => n.metadata.name)).toEqual(["a", "b"]);
  });

  it("names the right to grant when RBAC refuses a list", async () => {
    const api = fakeApi({ "/api/v1/pods?fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed&limit=500": { status: 403, body: { message: 'pods is forbidden: User "premiscale" cannot list resource "pods"' } } });
    await expect(readCluster(api)).rejects.toThrow(/^listing \/api\/v1\/(nodes|pods|daemonsets)/);
    const pods = await listAll(api, "/api/v1/pods", { fieldSelector: "status.phase!=Succeeded,status.phase!=Failed" }).catch((x: unknown) => x as Error & { hint?: string });
    expect(pods).toMatchObject({ message: expect.stringMatching(/^listing \/api\/v1\/pods on \S+: RBAC: premiscale's credentials may not list pods cluster-wide: add verb list on pods \(apiGroups \[""\]\) to premiscale's ClusterRole \(HTTP 403: pods is forbidden/), hint: "premiscale's kubeconfig needs list on pods (all namespaces) for native mode (grant it in its ClusterRole)" });
  });

  it("reads the PodDisruptionBudgets of every namespace with the nodes, pods and DaemonSets, and names the right to grant when refused", async () => {
    const empty = { status: 200, body: { items: [], metadata: {} } };
    const pdb = { metadata: { name: "web-pdb", namespace: "shop", generation: 1 }, spec: { selector: { matchLabels: { app: "web" } } }, status: { observedGeneration: 1, disruptionsAllowed: 1, currentHealthy: 4, desiredHealthy: 3 } };
    const api = fakeApi({
      "/api/v1/nodes?limit=500": empty,
      "/api/v1/pods?fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed&limit=500": empty,
      "/apis/apps/v1/daemonsets?limit=500": empty,
      "/apis/policy/v1/poddisruptionbudgets?limit=500": { status: 200, body: { items: [pdb], metadata: {} } },
    });
    expect((await readCluster(api)).pdbs).toEqual([{ namespace: "shop", name: "web-pdb", selector: { matchLabels: { app: "web" } }, disruptionsAllowed: 1, currentHealthy: 4, desiredHealthy: 3, alwaysAllowUnhealthy: false, stale: false }]);
    const refused = fakeApi({ "/apis/policy/v1/poddisruptionbudgets?limit=500": { status: 403, body: { message: "forbidden" } } });
    await expect(listAll(refused, "/apis/policy/v1/poddisruptionbudgets")).rejects.toMatchObject({ hint: "premiscale's kubeconfig needs list on poddisruptionbudgets.policy (all namespaces) for native mode (grant it in its ClusterRole)" });
  });

  it("takes only pods the scheduler marked Unschedulable as pending, not every Pending pod", async () => {
    const api = fakeApi({
      "/api/v1/pods?fieldSelector=spec.nodeName%3D%2Cstatus.phase%3DPending&limit=500": {
        status: 200,
        body: { items: [pending("tried", { status: "False", reason: "Unschedulable" }), pending("not-yet"), pending("gated", { status: "False", reason: "SchedulingGated" })], metadata: {} },
      },
    });
    expect(await listUnschedulable(api)).toEqual(["uid-tried"]);
  });
});
