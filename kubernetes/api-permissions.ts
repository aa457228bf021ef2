/**
 * Every Kubernetes API call premiscale makes, as the RBAC rule the API server checks for it: the one list the Helm
 * chart's RBAC (deploy/helm/premiscale/templates/rbac.yaml) is held to. test/helm-chart.kubernetes.test.ts scans
 * this folder's code for API paths and fails for a call this table does not list, for a listed call the code no
 * longer makes, and for a chart rule that grants more (or less) than the table. Add a row when you add a call.
 */

/** Where a rule applies, which decides the chart's object: a ClusterRole, or a Role in that namespace. */
export type PermissionScope =
  /** Cluster-scoped objects, or namespaced ones in every namespace: the ClusterRole. */
  | "cluster"
  /** Bootstrap token Secrets live there: a Role in kube-system. */
  | "kube-system"
  /** The release's own namespace (the leader-election Lease, the leader's EndpointSlice): a Role there. */
  | "release";

/** One call and its rule. */
export interface KubeApiPermission {
  /** The RBAC verb the API server checks (GET of a collection is `list`, with `watch=true` it is `watch`). */
  verb: "get" | "list" | "watch" | "create" | "update" | "patch" | "delete";
  /** API group; "" is the core group. */
  apiGroup: string;
  /** Resource, with `/subresource` when there is one (`pods/eviction`). */
  resource: string;
  scope: PermissionScope;
  /**
   * The only object names the rule needs (RBAC `resourceNames`), when the call names a fixed object: `lease` is the
   * chart's `leaderElection.leaseName`, `leaderService` the chart's `<fullname>-leader` Service (its EndpointSlice
   * has the same name). Absent: any name (create and list can never be limited by name).
   */
  resourceNames?: "lease" | "leaderService";
  /** The code that makes the call, and why. */
  usedBy: string;
  /**
   * `code`: the call is in this folder's code (the test checks that it still is). `planned`: a call of issue 12's
   * native mode and leader election, being written: the chart grants it already; switch it to `code` when the call
   * lands (the test then finds it and says so).
   */
  status: "code" | "planned";
  /**
   * Only needed with this chart feature on: `leaderElection` (the Lease), `leaderEndpoint` (leader election with the
   * externalgrpc port exposed: the chart's `-leader` Service). Absent: whenever the config has a kubernetes block.
   */
  when?: "leaderElection" | "leaderEndpoint";
}

/** The table, by scope, then group and resource, as the chart lists its rules. */
export const KUBE_API_PERMISSIONS: readonly KubeApiPermission[] = [
  { verb: "get", apiGroup: "", resource: "nodes", scope: "cluster", usedBy: "native/drain.ts: re-reads the Node before tainting or untainting it (its resourceVersion guards the patch)", status: "code" },
  { verb: "list", apiGroup: "", resource: "nodes", scope: "cluster", usedBy: "node-hooks.ts NodeWatcher: one Node list per poll for every VM waiting for its Node to be Ready; before-destroy and after-destroy find the VM's Node by providerID; native/drain.ts drainHook finds the Node to drain the same way; native/cluster-reader.ts: every scan of native mode", status: "code" },
  { verb: "patch", apiGroup: "", resource: "nodes", scope: "cluster", usedBy: "node-hooks.ts before-destroy: cordon the VM's Node (spec.unschedulable); native/drain.ts: taint ToBeDeletedByClusterAutoscaler and cordon, and undo both when the drain gives up", status: "code" },
  { verb: "delete", apiGroup: "", resource: "nodes", scope: "cluster", usedBy: "node-hooks.ts after-destroy: delete the destroyed VM's Node; native/drain.ts: delete the drained Node", status: "code" },
  { verb: "get", apiGroup: "", resource: "pods", scope: "cluster", usedBy: "native/drain.ts: after an eviction's 409, whether the pod is gone or replaced", status: "code" },
  { verb: "list", apiGroup: "", resource: "pods", scope: "cluster", usedBy: "native/drain.ts: the pods of the node to drain (fieldSelector spec.nodeName), and whether the evicted ones are gone; native/cluster-reader.ts: every scan (bound and pending pods), and the Unschedulable pods polled every kubernetes.native.pollMs for batching", status: "code" },
  { verb: "create", apiGroup: "", resource: "pods/eviction", scope: "cluster", usedBy: "native/drain.ts: evict each pod through the Eviction API, PDBs respected", status: "code" },
  { verb: "list", apiGroup: "apps", resource: "daemonsets", scope: "cluster", usedBy: "native/cluster-reader.ts: every scan reads the DaemonSets whose pods would land on a group's new node (its overhead)", status: "code" },
  { verb: "list", apiGroup: "policy", resource: "poddisruptionbudgets", scope: "cluster", usedBy: "native/cluster-reader.ts: every scan reads the PodDisruptionBudgets, so scale-down never plans more evictions than they allow", status: "code" },
  { verb: "list", apiGroup: "", resource: "secrets", scope: "kube-system", usedBy: "node-hooks.ts deleteTokens: the VM's bootstrap token Secrets, by the premiscale.io/instance label", status: "code" },
  { verb: "create", apiGroup: "", resource: "secrets", scope: "kube-system", usedBy: "node-hooks.ts before-create: mint the VM's bootstrap token Secret", status: "code" },
  { verb: "delete", apiGroup: "", resource: "secrets", scope: "kube-system", usedBy: "node-hooks.ts deleteTokens: remove the VM's bootstrap token once its Node is Ready or it is destroyed", status: "code" },
  { verb: "get", apiGroup: "coordination.k8s.io", resource: "leases", scope: "release", resourceNames: "lease", usedBy: "native/leader-election.ts: read the Lease", status: "code", when: "leaderElection" },
  { verb: "create", apiGroup: "coordination.k8s.io", resource: "leases", scope: "release", usedBy: "native/leader-election.ts: make the Lease when there is none", status: "code", when: "leaderElection" },
  { verb: "update", apiGroup: "coordination.k8s.io", resource: "leases", scope: "release", resourceNames: "lease", usedBy: "native/leader-election.ts: take over, renew or release the Lease (conditional on its resourceVersion)", status: "code", when: "leaderElection" },
  { verb: "get", apiGroup: "discovery.k8s.io", resource: "endpointslices", scope: "release", resourceNames: "leaderService", usedBy: "native/leader-endpoint.ts: read the leader's EndpointSlice before writing it (its resourceVersion guards the write)", status: "code", when: "leaderEndpoint" },
  { verb: "create", apiGroup: "discovery.k8s.io", resource: "endpointslices", scope: "release", usedBy: "native/leader-endpoint.ts: make the leader's EndpointSlice when there is none", status: "code", when: "leaderEndpoint" },
  { verb: "update", apiGroup: "discovery.k8s.io", resource: "endpointslices", scope: "release", resourceNames: "leaderService", usedBy: "native/leader-endpoint.ts: point the slice at the new leader, or empty it when the leader stops (conditional on its resourceVersion)", status: "code", when: "leaderEndpoint" },
];

/** An API call as read from a path and a method: what the API server's authorizer is asked. */
export interface KubeApiCall {
  verb: string;
  apiGroup: string;
  resource: string;
  /** The namespace as written in the path: a literal, `*` when it is computed, absent for cluster-scoped paths. */
  namespace?: string;
}

/**
 * The RBAC attributes of `method` on `path`, as the API server's request-info resolver derives them:
 * `/api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]]` and `/apis/GROUP/VERSION/…`, `${…}` (a computed segment) standing
 * for any value. A collection GET is `list` (`watch` with `watch=true`/`watch=1`); a DELETE of one is
 * `deletecollection`. Null for a path that is not a resource path (`/version`, `/healthz`).
 */
export function kubeApiCall(method: string, path: string): KubeApiCall | null {
  const [bare, query = ""] = path.split("?", 2) as [string, string?];
  const parts = bare.split("/").filter((p) => p !== "");
  let apiGroup: string;
  let rest: string[];
  if (parts[0] === "api" && parts.length >= 2) {
    apiGroup = "";
    rest = parts.slice(2);
  } else if (parts[0] === "apis" && parts.length >= 3) {
    apiGroup = parts[1]!;
    rest = parts.slice(3);
  } else {
    return null;
  }
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1]!.includes("${") ? "*" : rest[1]!;
    rest = rest.slice(2);
  }
  if (rest.length === 0) return null;
  const [resource, name, sub] = rest as [string, string?, string?];
  const watch = /(^|&)watch=(true|1)(&|$)/.test(query);
  const verb = (() => {
    switch (method.toUpperCase()) {
      case "GET":
        return name === undefined ? (watch ? "watch" : "list") : "get";
      case "POST":
        return "create";
      case "PUT":
        return "update";
      case "PATCH":
        return "patch";
      case "DELETE":
        return name === undefined ? "deletecollection" : "delete";
      default:
        return method.toLowerCase();
    }
  })();
  return { verb, apiGroup, resource: sub ? `${resource}/${sub}` : resource, ...(namespace !== undefined ? { namespace } : {}) };
}

/**
 * Whether `permission` is the rule for `call`: a cluster-scoped path (or every namespace) needs the `cluster` scope, a
 * literal namespace that one (or `cluster`), a computed namespace any scope (the code decides it at run time).
 */
export function permissionCovers(permission: KubeApiPermission, call: KubeApiCall): boolean {
  if (permission.verb !== call.verb || permission.apiGroup !== call.apiGroup || permission.resource !== call.resource) return false;
  if (call.namespace === "*") return true;
  if (call.namespace === undefined) return permission.scope === "cluster";
  return permission.scope === "cluster" || permission.scope === call.namespace;
}
