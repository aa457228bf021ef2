/**
 * Reads the cluster for native mode through the API (kube-api.ts: the configured kubeconfig, a timeout per call):
 * Nodes, the pods that hold or want resources, DaemonSets and PodDisruptionBudgets; and, polled often, the pods the scheduler marked
 * `PodScheduled=False` with reason `Unschedulable` (read from the condition, never guessed from Pending). Lists are
 * paged (500 a page).
 */
import type { KubeApi } from "../kube-api.js";
import { KubeApiError, rbacError, statusMessage } from "../kube-api.js";
import { daemonSetPod, isActive, nodeFromApi, podFromApi } from "./cluster-model.js";
import { pdbFromApi } from "./pdb-tracker.js";
import type { ClusterSnapshot } from "./decide-native.js";

// The API's objects; cluster-model.ts reads the fields it needs.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ApiObject = any;

/** What each list needs, for the error when RBAC refuses it. */
const RIGHTS: Record<string, { text: string; resource: string; group?: string }> = {
  "/api/v1/nodes": { text: "list on nodes", resource: "nodes" },
  "/api/v1/pods": { text: "list on pods (all namespaces)", resource: "pods" },
  "/apis/apps/v1/daemonsets": { text: "list on daemonsets.apps (all namespaces)", resource: "daemonsets", group: "apps" },
  "/apis/policy/v1/poddisruptionbudgets": { text: "list on poddisruptionbudgets.policy (all namespaces)", resource: "poddisruptionbudgets", group: "policy" },
};

/** Every item of a list, page by page. */
export async function listAll(api: KubeApi, path: string, query: Record<string, string> = {}): Promise<ApiObject[]> {
  const items: ApiObject[] = [];
  let token: string | undefined;
  do {
    const q = new URLSearchParams({ ...query, limit: "500", ...(token ? { continue: token } : {}) });
    const res = await api.request("GET", `${path}?${q}`);
    if (res.status !== 200) {
      const right = RIGHTS[path];
      if (res.status === 403 && right) {
        // The message itself names the rule to add: the loop reports messages, not hints.
        const rbac = rbacError(res, { verb: "list", resource: right.resource, ...(right.group ? { group: right.group } : {}) });
        throw new KubeApiError(`listing ${path} on ${api.server}: ${rbac.message}`, 403, `premiscale's kubeconfig needs ${right.text} for native mode (grant it in its ClusterRole)`);
      }
      throw new KubeApiError(`listing ${path} on ${api.server}: ${statusMessage(res)}`, res.status, "check the API server and kubernetes.kubeconfig");
    }
    items.push(...(res.body?.items ?? []));
    token = res.body?.metadata?.continue || undefined;
  } while (token);
  return items;
}

/** Nodes, active pods (bound, and pending with their condition), DaemonSets' pods and PDBs, read in parallel. */
export async function readCluster(api: KubeApi): Promise<ClusterSnapshot> {
  const [nodes, pods, daemonSets, pdbs] = await Promise.all([
    listAll(api, "/api/v1/nodes"),
    listAll(api, "/api/v1/pods", { fieldSelector: "status.phase!=Succeeded,status.phase!=Failed" }),
    listAll(api, "/apis/apps/v1/daemonsets"),
    listAll(api, "/apis/policy/v1/poddisruptionbudgets"),
  ]);
  return { nodes: nodes.map(nodeFromApi), pods: pods.filter(isActive).map(podFromApi), daemonSets: daemonSets.map(daemonSetPod), pdbs: pdbs.map(pdbFromApi) };
}

/** The uids of the pods the scheduler could not place now (unbound, Pending, PodScheduled=False/Unschedulable). */
export async function listUnschedulable(api: KubeApi): Promise<string[]> {
  const pods = await listAll(api, "/api/v1/pods", { fieldSelector: "spec.nodeName=,status.phase=Pending" });
  return pods.filter((p) => isActive(p) && podFromApi(p).unschedulable).map((p) => String(p.metadata?.uid));
}
