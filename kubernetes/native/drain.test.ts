import { describe, expect, it } from "vitest";
import type { KubeApi, KubeResponse } from "../kube-api.js";
import { classifyPod, drainNode, MIRROR_POD, SAFE_TO_EVICT, TO_BE_DELETED_TAINT } from "./drain.js";

// The timing of the eviction retries, with the clock injected (the behaviour against the real API server, PDBs
// and KWOK is drain.kubernetes.test.ts). The API here answers the calls of one drain from a script.

const pod = (name: string, o: { owner?: string; annotations?: Record<string, string>; phase?: string } = {}) => ({
  metadata: { name, namespace: "ns", uid: `uid-${name}`, annotations: o.annotations ?? {}, ...(o.owner ? { ownerReferences: [{ kind: o.owner, name: "x", controller: true }] } : {}) },
  spec: { nodeName: "n1", terminationGracePeriodSeconds: 5 },
  status: { phase: o.phase ?? "Running" },
});

/** A node `n1` with one pod whose eviction a PDB refuses until `allowAfterMs` on the injected clock. */
function scripted(allowAfterMs: number) {
  let t = 0;
  const evictions: number[] = [];
  const sleeps: number[] = [];
  let node = { metadata: { name: "n1", resourceVersion: "1", annotations: {} as Record<string, string | null> }, spec: { taints: [] as { key: string }[], unschedulable: false } };
  let pods = [pod("web", { owner: "ReplicaSet" })];
  const api: KubeApi = {
    server: "https://fake",
    request: async (method, path, body): Promise<KubeResponse> => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const b = body as any;
      if (path === "/api/v1/nodes/n1" && method === "GET") return { status: 200, body: structuredClone(node) };
      if (path === "/api/v1/nodes/n1" && method === "PATCH") {
        const annotations = { ...node.metadata.annotations, ...(b.metadata?.annotations ?? {}) };
        for (const k of Object.keys(annotations)) if (annotations[k] === null) delete annotations[k];
        node = { metadata: { ...node.metadata, annotations, resourceVersion: String(Number(node.metadata.resourceVersion) + 1) }, spec: { ...node.spec, ...b.spec } };
        return { status: 200, body: node };
      }
      if (path === "/api/v1/nodes/n1" && method === "DELETE") return { status: 200, body: {} };
      if (path.startsWith("/api/v1/pods?")) return { status: 200, body: { items: pods } };
      if (path.endsWith("/eviction")) {
        evictions.push(t);
        if (t < allowAfterMs) return { status: 429, body: { message: "Cannot evict pod as it would violate the pod's disruption budget.", details: { causes: [{ reason: "DisruptionBudget", message: "The disruption budget web-pdb needs 1 healthy pods and has 1 currently" }] } } };
        pods = [];
        return { status: 201, body: {} };
      }
      return { status: 500, body: { message: `unexpected ${method} ${path}` } };
    },
  };
  const deps = {
    api,
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
  };
  return { deps, evictions, sleeps, node: () => node };
}

describe("the drain's eviction retries", () => {
  it("backs off 1, 2, 4, 8, then every 10 s, and gives up at the max pod eviction time (CA's 2 min), untainting", async () => {
    const s = scripted(Infinity);
    const out = await drainNode("n1", s.deps, { signal: new AbortController().signal });
    expect(out.result).toBe("abandon");
    expect(out.message).toBe(
      "Node n1 kept (untainted, uncordoned if the drain cordoned it): 1 of 1 pods could not be evicted within 120 s (the max pod eviction time): pod ns/web: PDB web-pdb: The disruption budget web-pdb needs 1 healthy pods and has 1 currently",
    );
    expect(s.sleeps.slice(0, 6)).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(s.sleeps.reduce((a, b) => a + b, 0)).toBe(120_000);
    // The last attempt is at the deadline itself, not one backoff short of it.
    expect(s.evictions.at(-1)).toBe(120_000);
    expect(s.node().spec.taints.map((t) => t.key)).not.toContain(TO_BE_DELETED_TAINT);
    expect(s.node().spec.unschedulable).toBe(false);
  });

  it("goes on as soon as the budget allows, and deletes the Node", async () => {
    const s = scripted(14_000);
    const out = await drainNode("n1", s.deps, { signal: new AbortController().signal });
    expect(out).toMatchObject({ result: "continue", message: "drained and deleted Node n1: 1 pod evicted (ns/web)", evicted: ["ns/web"] });
    expect(s.evictions).toEqual([0, 1000, 3000, 7000, 15_000]);
  });
});

describe("which pods a drain evicts", () => {
  it("skips mirror, DaemonSet and finished pods; blocks on safe-to-evict false and on pods no controller owns", () => {
    expect(classifyPod(pod("m", { annotations: { [MIRROR_POD]: "x" } }))).toEqual({ skip: "mirror pod" });
    expect(classifyPod(pod("d", { owner: "DaemonSet" }))).toEqual({ skip: "DaemonSet pod" });
    expect(classifyPod(pod("j", { owner: "Job", phase: "Succeeded" }))).toEqual({ skip: "finished (Succeeded)" });
    expect(classifyPod(pod("r", { owner: "ReplicaSet" }))).toBeNull();
    expect(classifyPod(pod("u", { owner: "ReplicaSet", annotations: { [SAFE_TO_EVICT]: "false" } }))).toEqual({ block: 'pod ns/u is annotated cluster-autoscaler.kubernetes.io/safe-to-evict: "false"' });
    expect(classifyPod(pod("b"))).toMatchObject({ block: expect.stringMatching(/^pod ns\/b is not managed by a controller/) });
    expect(classifyPod(pod("b", { annotations: { [SAFE_TO_EVICT]: "true" } }))).toBeNull();
    // A DaemonSet pod is left alone even when it says "false": it does not block the node's removal.
    expect(classifyPod(pod("d", { owner: "DaemonSet", annotations: { [SAFE_TO_EVICT]: "false" } }))).toEqual({ skip: "DaemonSet pod" });
  });
});
