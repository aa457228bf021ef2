/**
 * Draining a node before its VM is destroyed, as cluster-autoscaler does (CA/core/scaledown/actuation), as a
 * before-destroy lifecycle hook (applier/lifecycle.ts): journaled as the step `node-drain`, kept alive by heartbeats,
 * and idempotent, so a re-run after a crash or an API outage resumes where the last one stopped.
 *
 *   taint ToBeDeletedByClusterAutoscaler=<unix time>:NoSchedule + cordon   (no new pods; kept if already there)
 *   → list the node's pods: skip mirror pods, DaemonSet pods, finished pods; blockers → untaint, abandon
 *   → evict each pod (policy/v1 Eviction; grace min(pod's, maxGracefulTerminationSeconds)); a 429 (a PDB allows no
 *     disruption now) is retried with backoff until maxPodEvictionSeconds → then untaint, abandon (node kept)
 *   → wait until the evicted pods are gone (their grace + headroom) → delete the Node → continue (destroy the VM)
 *
 * Blockers (the node is kept and untainted): a pod annotated `cluster-autoscaler.kubernetes.io/safe-to-evict:
 * "false"`, and a pod no controller owns (evicting it would lose it; `safe-to-evict: "true"` allows it).
 * Results: `continue` (drained, Node deleted, or no Node at all), `abandon` with a reason naming the pods, PDBs and
 * numbers (the VM is kept, its change fails). An API server that does not answer makes the hook throw (abandon with
 * the error) and leaves the taint: the next run finds it and goes on. A 403 names the verb and resource to grant.
 * Cordoning is undone only when this drain did it (an annotation remembers it across crashes): a node an operator
 * cordoned stays cordoned.
 */
import { Limiter } from "../../applier/limiter.js";
import type { HookContext, LifecycleHook } from "../../applier/lifecycle.js";
import { KubeApiError, rbacError, statusMessage, type KubeApi, type KubeResponse } from "../kube-api.js";
import { providerIdOf } from "../provider-id.js";
import { CORDONED_BY_DRAIN, TO_BE_DELETED_TAINT } from "./cluster-model.js";

// The marks live beside the SimNode that reads them; the drain, which sets them, exports them as before.
export { CORDONED_BY_DRAIN, TO_BE_DELETED_TAINT };
/** A pod annotated "false" blocks the drain; "true" lets a pod no controller owns be evicted. */
export const SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/** The kubelet's mark on a static pod's API mirror (it cannot be evicted; it goes with the node). */
export const MIRROR_POD = "kubernetes.io/config.mirror";

/** Drain settings; the defaults are cluster-autoscaler's. */
export interface DrainSettings {
  /** How long a pod's eviction is retried while a PDB refuses it (CA --max-pod-eviction-time). @default 120 */
  maxPodEvictionSeconds?: number;
  /** Cap on a pod's termination grace (CA --max-graceful-termination-sec). @default 600 */
  maxGracefulTerminationSeconds?: number;
  /** Beyond its grace, how long an evicted pod may take to be gone (CA's PodEvictionHeadroom). @default 30 */
  podGoneHeadroomSeconds?: number;
  /** First wait before an eviction is retried; doubles up to `evictionRetryMaxMs`. @default 1000 */
  evictionRetryMs?: number;
  /** @default 10000 (CA retries every 10 s) */
  evictionRetryMaxMs?: number;
  /** How often the evicted pods are looked for. @default 1000 */
  pollMs?: number;
  /** Evictions in flight at once. @default 10 */
  parallelism?: number;
}

/** What a drain needs besides the settings. */
export interface DrainDeps extends DrainSettings {
  api: KubeApi;
  /** Wall clock, ms since the epoch (the taint's value, deadlines). @default Date.now */
  now?: () => number;
  /** Resolves after `ms`, or early when `signal` aborts. @default a timer */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** How a drain ended. */
export interface DrainOutcome {
  result: "continue" | "abandon";
  message: string;
  /** Pods evicted (namespace/name). */
  evicted: string[];
  /** Pods left alone: DaemonSet, mirror, finished. */
  skipped: string[];
}

// The parts of Node and Pod objects the drain reads.
interface Taint {
  key: string;
  value?: string;
  effect: string;
}
interface NodeObj {
  metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec?: { providerID?: string; unschedulable?: boolean; taints?: Taint[] };
}
interface PodObj {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string>; ownerReferences?: { kind: string; name: string; controller?: boolean }[]; deletionTimestamp?: string };
  spec?: { nodeName?: string; terminationGracePeriodSeconds?: number };
  status?: { phase?: string };
}

const defaultSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => (clearTimeout(t), signal.removeEventListener("abort", done), resolve());
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });

/** The drain was interrupted (apply stopped, leadership lost): nothing more is called, the taint stays for the next run. */
class DrainInterrupted extends Error {}

const podName = (p: PodObj) => `${p.metadata.namespace}/${p.metadata.name}`;
const controllerOf = (p: PodObj) => p.metadata.ownerReferences?.find((r) => r.controller);

/** Why a pod is left alone (skipped), blocks the drain, or null: it is evicted. */
export function classifyPod(p: PodObj): { skip: string } | { block: string } | null {
  const a = p.metadata.annotations ?? {};
  if (a[MIRROR_POD] !== undefined) return { skip: "mirror pod" };
  if (controllerOf(p)?.kind === "DaemonSet") return { skip: "DaemonSet pod" };
  if (p.status?.phase === "Succeeded" || p.status?.phase === "Failed") return { skip: `finished (${p.status.phase})` };
  if (a[SAFE_TO_EVICT] === "false") return { block: `pod ${podName(p)} is annotated ${SAFE_TO_EVICT}: "false"` };
  if (!controllerOf(p) && a[SAFE_TO_EVICT] !== "true") return { block: `pod ${podName(p)} is not managed by a controller (evicting it would lose it; annotate it ${SAFE_TO_EVICT}: "true" to allow)` };
  return null;
}

/** The PDB a 429 names ("The disruption budget web needs 2 healthy pods…"), with the API server's words. */
function pdbRefusal(res: KubeResponse): string {
  const causes: { reason?: string; message?: string }[] = res.body?.details?.causes ?? [];
  const cause = causes.find((c) => c.reason === "DisruptionBudget") ?? causes[0];
  const name = cause?.message?.match(/disruption budget (\S+)/)?.[1];
  return name ? `PDB ${name}: ${cause!.message}` : statusMessage(res);
}

/** A Node, or null when there is none; a 403 names the verb. */
async function readNode(api: KubeApi, nodeName: string): Promise<NodeObj | null> {
  const r = await api.request("GET", `/api/v1/nodes/${encodeURIComponent(nodeName)}`);
  if (r.status === 404) return null;
  if (r.status === 403) throw rbacError(r, { verb: "get", resource: "nodes" });
  if (r.status !== 200) throw new KubeApiError(`reading Node ${nodeName}: ${statusMessage(r)}`, r.status);
  return r.body as NodeObj;
}

/** Read-modify-write of a Node, conditional on its resourceVersion, retried on conflicts. */
async function patchNodeWith(api: KubeApi, nodeName: string, change: (n: NodeObj) => Record<string, unknown> | null): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const n = await readNode(api, nodeName);
    if (!n) return;
    const patch = change(n);
    if (!patch) return;
    const r = await api.request("PATCH", `/api/v1/nodes/${encodeURIComponent(nodeName)}`, { ...patch, metadata: { ...((patch.metadata as object) ?? {}), resourceVersion: n.metadata.resourceVersion } });
    if (r.status === 200 || r.status === 404) return;
    if (r.status === 403) throw rbacError(r, { verb: "patch", resource: "nodes" });
    if (r.status !== 409 || attempt >= 5) throw new KubeApiError(`updating Node ${nodeName}: ${statusMessage(r)}`, r.status);
  }
}

/**
 * WARNING: changes the Node. Takes a drain's marks off Node `nodeName`: the `ToBeDeletedByClusterAutoscaler` taint,
 * and the cordon when the drain made it (its annotation says so; an operator's cordon stays). What a drain that
 * gives up does, and what a scan does for a node whose drain was cut short and that it no longer removes. Rejects
 * with KubeApiError (a 403 names the verb).
 */
export function releaseNode(api: KubeApi, nodeName: string): Promise<void> {
  return patchNodeWith(api, nodeName, (n) => {
    const taints = n.spec?.taints ?? [];
    const ours = n.metadata.annotations?.[CORDONED_BY_DRAIN] !== undefined;
    if (!taints.some((t) => t.key === TO_BE_DELETED_TAINT) && !ours) return null;
    return {
      ...(ours ? { metadata: { annotations: { [CORDONED_BY_DRAIN]: null } } } : {}),
      spec: { taints: taints.filter((t) => t.key !== TO_BE_DELETED_TAINT), ...(ours ? { unschedulable: false } : {}) },
    };
  });
}

/**
 * WARNING: evicts pods and deletes the Node. Drains Node `nodeName` (see the module comment) and resolves how it
 * ended; rejects only when the API server does not answer (the taint stays; a re-run resumes) or `signal` aborts
 * before the end (then nothing more is called).
 */
export async function drainNode(nodeName: string, deps: DrainDeps, ctx: { signal: AbortSignal; heartbeat?: () => void }): Promise<DrainOutcome> {
  const api = deps.api;
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? defaultSleep;
  const maxEvictionMs = (deps.maxPodEvictionSeconds ?? 120) * 1000;
  const maxGraceS = deps.maxGracefulTerminationSeconds ?? 600;
  const headroomMs = (deps.podGoneHeadroomSeconds ?? 30) * 1000;
  const pollMs = deps.pollMs ?? 1000;
  const beat = () => ctx.heartbeat?.();
  const check = () => {
    if (ctx.signal.aborted) throw new DrainInterrupted(`draining Node ${nodeName} was interrupted (${(ctx.signal.reason as Error | undefined)?.message ?? "apply stopped"}): the Node stays tainted; the next run resumes`);
  };
  const nodePath = `/api/v1/nodes/${encodeURIComponent(nodeName)}`;
  const evicted: string[] = [];
  const skipped: string[] = [];
  const outcome = (result: DrainOutcome["result"], message: string): DrainOutcome => ({ result, message, evicted, skipped });

  const getNode = () => readNode(api, nodeName);
  const patchNode = (change: (n: NodeObj) => Record<string, unknown> | null) => patchNodeWith(api, nodeName, change);
  const taint = () =>
    patchNode((n) => {
      const taints = n.spec?.taints ?? [];
      const has = taints.some((t) => t.key === TO_BE_DELETED_TAINT);
      if (has && n.spec?.unschedulable) return null;
      return {
        ...(n.spec?.unschedulable ? {} : { metadata: { annotations: { [CORDONED_BY_DRAIN]: "true" } } }),
        spec: { unschedulable: true, ...(has ? {} : { taints: [...taints, { key: TO_BE_DELETED_TAINT, value: String(Math.floor(now() / 1000)), effect: "NoSchedule" }] }) },
      };
    });
  const untaint = () => releaseNode(api, nodeName);
  const listPods = async (): Promise<PodObj[]> => {
    const r = await api.request("GET", `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${nodeName}`)}`);
    if (r.status === 403) throw rbacError(r, { verb: "list", resource: "pods" });
    if (r.status !== 200) throw new KubeApiError(`listing the pods of Node ${nodeName}: ${statusMessage(r)}`, r.status);
    return (r.body.items ?? []) as PodObj[];
  };
  /** Keeps the node: the taint and our cordon go, and the drain answers abandon with `why`. */
  const keep = async (why: string): Promise<DrainOutcome> => {
    await untaint();
    return outcome("abandon", `Node ${nodeName} kept (untainted, uncordoned if the drain cordoned it): ${why}`);
  };

  try {
    check();
    if (!(await getNode())) return outcome("continue", `Node ${nodeName} does not exist: nothing to drain`);
    await taint();
    beat();
    check();
    const pods = await listPods();
    const toEvict: PodObj[] = [];
    const terminating: PodObj[] = [];
    const blockers: string[] = [];
    for (const p of pods) {
      const c = classifyPod(p);
      if (c && "skip" in c) skipped.push(`${podName(p)} (${c.skip})`);
      else if (p.metadata.deletionTimestamp) terminating.push(p);
      else if (c) blockers.push(c.block);
      else toEvict.push(p);
    }
    if (blockers.length > 0) return await keep(blockers.join("; "));

    // Evictions, each retried on refusal until the max eviction time counted from the first.
    const deadline = now() + maxEvictionMs;
    const refused = new Map<string, string>();
    const limiter = new Limiter(deps.parallelism ?? 10);
    const graceOf = (p: PodObj) => Math.min(p.spec?.terminationGracePeriodSeconds ?? 30, maxGraceS);
    const evict = (p: PodObj) =>
      limiter.run(async () => {
        let wait = deps.evictionRetryMs ?? 1000;
        for (;;) {
          check();
          const r = await api.request("POST", `/api/v1/namespaces/${encodeURIComponent(p.metadata.namespace)}/pods/${encodeURIComponent(p.metadata.name)}/eviction`, {
            apiVersion: "policy/v1",
            kind: "Eviction",
            metadata: { name: p.metadata.name, namespace: p.metadata.namespace },
            deleteOptions: { gracePeriodSeconds: graceOf(p), preconditions: { uid: p.metadata.uid } },
          });
          beat();
          if (r.status === 200 || r.status === 201) {
            evicted.push(podName(p));
            refused.delete(podName(p));
            return;
          }
          // Gone already: nothing to evict.
          if (r.status === 404) return;
          if (r.status === 409) {
            // The uid precondition failed (a new pod under the same name: not this node's), or a write conflict
            // inside the API server (the pod is still there: try again like a refusal).
            const now409 = await api.request("GET", `/api/v1/namespaces/${encodeURIComponent(p.metadata.namespace)}/pods/${encodeURIComponent(p.metadata.name)}`);
            if (now409.status === 404 || (now409.status === 200 && now409.body.metadata?.uid !== p.metadata.uid)) return;
          }
          if (r.status === 403) throw rbacError(r, { verb: "create", resource: "pods/eviction", namespace: p.metadata.namespace });
          refused.set(podName(p), r.status === 429 ? pdbRefusal(r) : statusMessage(r));
          const left = deadline - now();
          if (left <= 0) return;
          await sleep(Math.min(wait, left), ctx.signal);
          wait = Math.min(wait * 2, deps.evictionRetryMaxMs ?? 10_000);
        }
      });
    const results = await Promise.allSettled(toEvict.map(evict));
    const thrown = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (thrown) throw thrown.reason;
    check();
    if (refused.size > 0) {
      const list = [...refused].map(([pod, why]) => `pod ${pod}: ${why}`).join("; ");
      return await keep(`${refused.size} of ${toEvict.length} pods could not be evicted within ${maxEvictionMs / 1000} s (the max pod eviction time): ${list}`);
    }

    // Wait for what was evicted or already terminating to be gone (a new pod of the same name has another uid).
    const waitFor = new Map([...toEvict, ...terminating].map((p) => [p.metadata.uid, p]));
    const goneBy = now() + Math.max(0, ...[...waitFor.values()].map((p) => graceOf(p) * 1000)) + headroomMs;
    while (waitFor.size > 0) {
      check();
      const present = new Set((await listPods()).map((p) => p.metadata.uid));
      for (const uid of [...waitFor.keys()]) if (!present.has(uid)) waitFor.delete(uid);
      beat();
      if (waitFor.size === 0) break;
      if (now() >= goneBy) {
        return await keep(`evicted pods still on the node after their grace period plus ${headroomMs / 1000} s: ${[...waitFor.values()].map(podName).join(", ")}`);
      }
      await sleep(Math.min(pollMs, goneBy - now()), ctx.signal);
    }

    check();
    const d = await api.request("DELETE", nodePath);
    if (d.status === 403) throw rbacError(d, { verb: "delete", resource: "nodes" });
    if (d.status !== 200 && d.status !== 404) throw new KubeApiError(`deleting Node ${nodeName}: ${statusMessage(d)}`, d.status);
    const parts = [`${evicted.length} pod${evicted.length === 1 ? "" : "s"} evicted${evicted.length ? ` (${evicted.join(", ")})` : ""}`];
    if (skipped.length) parts.push(`${skipped.length} left alone (${skipped.join(", ")})`);
    return outcome("continue", `drained and deleted Node ${nodeName}: ${parts.join("; ")}`);
  } catch (e) {
    if (e instanceof DrainInterrupted) return outcome("abandon", e.message);
    // The API server answered, but not as needed (a 403, an unexpected status): keep the node usable.
    if (e instanceof KubeApiError && e.status !== null) {
      try {
        return await keep(e.message);
      } catch {
        return outcome("abandon", `${e.message}; the taint could not be removed either: the next drain or cleanup removes it`);
      }
    }
    // No answer at all: nothing can be undone now; the next run finds the taint and resumes.
    throw new KubeApiError(`draining Node ${nodeName}: the API server did not answer (${(e as Error).message}); the Node stays tainted and the next run resumes the drain`, null, (e as KubeApiError).hint);
  }
}

/** Settings of the drain hook. */
export interface DrainHookDeps extends DrainDeps {
  /** Timeout of one API call, in seconds (kubernetes.callTimeoutSeconds): bounds the gap between heartbeats. @default 10 */
  callTimeoutSeconds?: number;
}

/**
 * The before-destroy hook `kubernetes-drain` (step `node-drain`) of a node group: drains the Node whose
 * `spec.providerID` is the VM's (`premiscale://<group>/<uuid>`); no such Node: nothing to drain. Its default
 * result is `abandon` (a drain that hangs keeps the VM); its timeout restarts at every heartbeat (each eviction
 * attempt and each poll), so only a single call that hangs can run it out.
 */
export function drainHook(deps: DrainHookDeps): LifecycleHook {
  const callMs = (deps.callTimeoutSeconds ?? 10) * 1000;
  const pollMs = deps.pollMs ?? 1000;
  const retryMaxMs = deps.evictionRetryMaxMs ?? 10_000;
  return {
    name: "kubernetes-drain",
    point: "before-destroy",
    step: "node-drain",
    defaultResult: "abandon",
    // The longest gap between heartbeats: a few calls plus one wait.
    timeoutMs: () => 6 * callMs + Math.max(pollMs, retryMaxMs) + 5000,
    async run(ctx: HookContext) {
      const providerId = providerIdOf(ctx.vm.group, ctx.vm.uuid);
      const r = await deps.api.request("GET", "/api/v1/nodes");
      if (r.status === 403) throw rbacError(r, { verb: "list", resource: "nodes" });
      if (r.status !== 200) throw new KubeApiError(`listing Nodes: ${statusMessage(r)}`, r.status);
      const node = ((r.body.items ?? []) as NodeObj[]).find((n) => n.spec?.providerID === providerId);
      if (!node) return { result: "continue", message: `no Node has providerID ${providerId}: nothing to drain` };
      const out = await drainNode(node.metadata.name, deps, { signal: ctx.signal, heartbeat: ctx.heartbeat });
      return { result: out.result, message: out.message };
    },
  };
}
