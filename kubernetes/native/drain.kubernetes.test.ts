import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HookContext, HookOutcome } from "../../applier/lifecycle.js";
import type { KubernetesConfig } from "../../config/kubernetes.js";
import { KWOK_NODE_LABEL, startKubeCluster, waitFor, type KubeCluster } from "../../test/support/kube-cluster.js";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.js";
import { openKubeApi, type KubeApi } from "../kube-api.js";
import { providerIdOf } from "../provider-id.js";
import { CORDONED_BY_DRAIN, drainHook, SAFE_TO_EVICT, TO_BE_DELETED_TAINT, type DrainHookDeps } from "./drain.js";

// The drain hook against the real test cluster (kube-apiserver, kube-controller-manager with its disruption
// controller computing PDB status, kube-scheduler, KWOK running the pods): every Node is a KWOK node with a premiscale
// providerID, every pod a real API object that the real eviction subresource evicts or refuses. One cluster for the
// file; each test has its own nodes and namespace. Waits are polls of real API state with deadlines.

const GROUP = "pool";
const WAIT = 60_000;
const IMAGE = "registry.invalid/premiscale/app:test";

let cluster: KubeCluster;
let api: KubeApi;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

const kubeConfig = (kubeconfig: string | undefined): KubernetesConfig =>
  ({ ...(kubeconfig ? { kubeconfig } : {}), callTimeoutSeconds: 5, externalGrpc: { host: "127.0.0.1", port: 0, tls: null }, debounceMs: 0, resyncSeconds: 60 }) as KubernetesConfig;

async function create(path: string, body: unknown): Promise<Obj> {
  const r = await cluster.request("POST", path, { body });
  expect(r.status, `POST ${path}: ${r.text}`).toBe(201);
  return r.body;
}

/** A KWOK node of group `pool` (Ready within a second), and the VM it stands for. */
async function node(name: string): Promise<{ uuid: string; name: string }> {
  const uuid = randomUUID();
  await create("/api/v1/nodes", {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value, "kubernetes.io/hostname": name } },
    spec: { providerID: providerIdOf(GROUP, uuid) },
    status: { capacity: { cpu: "8", memory: "16Gi", pods: "110" }, allocatable: { cpu: "8", memory: "16Gi", pods: "110" } },
  });
  await waitFor(async () => (await cluster.request("GET", `/api/v1/nodes/${name}`)).body.status?.conditions?.some((c: Obj) => c.type === "Ready" && c.status === "True"), {
    timeoutMs: WAIT,
    what: `node ${name} Ready`,
  });
  return { uuid, name };
}

async function namespace(name: string): Promise<string> {
  await create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name } });
  await waitFor(async () => (await cluster.request("GET", `/api/v1/namespaces/${name}/serviceaccounts/default`)).status === 200, { timeoutMs: WAIT, what: `default ServiceAccount in ${name}` });
  return name;
}

/** A Deployment pinned to `nodeName` (its replacements stay Pending once the node is tainted: nothing hides an eviction). */
async function deployment(ns: string, name: string, replicas: number, nodeName: string, annotations: Record<string, string> = {}): Promise<string[]> {
  await create(`/apis/apps/v1/namespaces/${ns}/deployments`, {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations },
        spec: { nodeSelector: { "kubernetes.io/hostname": nodeName }, terminationGracePeriodSeconds: 5, containers: [{ name: "app", image: IMAGE, resources: { requests: { cpu: "100m" } } }] },
      },
    },
  });
  return waitFor(async () => {
    const pods = await running(ns, `app=${name}`);
    return pods.length === replicas ? pods.map((p) => p.metadata.uid as string) : undefined;
  }, { timeoutMs: WAIT, what: `deployment ${ns}/${name}: ${replicas} running pods` });
}

async function running(ns: string, selector: string): Promise<Obj[]> {
  const r = await cluster.request("GET", `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`);
  return r.body.items.filter((p: Obj) => p.status?.phase === "Running" && !p.metadata.deletionTimestamp);
}

async function pdb(ns: string, name: string, app: string, minAvailable: number, expectAllowed: number): Promise<void> {
  await create(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, { apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: { name, namespace: ns }, spec: { minAvailable, selector: { matchLabels: { app } } } });
  await waitFor(async () => {
    const r = await cluster.request("GET", `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/${name}`);
    return r.body.status?.observedGeneration === r.body.metadata.generation && r.body.status.disruptionsAllowed === expectAllowed;
  }, { timeoutMs: WAIT, what: `PDB ${ns}/${name}: disruptionsAllowed ${expectAllowed}` });
}

const getNode = async (name: string) => cluster.request("GET", `/api/v1/nodes/${name}`);

/** Runs the hook as the applier would for the VM behind `vm`, with heartbeats counted. */
async function runDrain(vm: { uuid: string; name: string }, deps: Partial<DrainHookDeps> = {}, signal = new AbortController().signal): Promise<HookOutcome & { heartbeats: number }> {
  const hook = drainHook({ api, maxPodEvictionSeconds: 4, evictionRetryMs: 250, evictionRetryMaxMs: 1000, pollMs: 250, ...deps });
  let heartbeats = 0;
  const ctx: HookContext = { point: "before-destroy", vm: { address: `${GROUP}[${vm.name}]`, group: GROUP, name: vm.name, uuid: vm.uuid, host: "h1" }, signal, heartbeat: () => heartbeats++ };
  expect(hook.point).toBe("before-destroy");
  const out = await hook.run(ctx);
  return { ...out, heartbeats };
}

function expectUntainted(n: Obj) {
  expect((n.spec.taints ?? []).map((t: Obj) => t.key)).not.toContain(TO_BE_DELETED_TAINT);
  expect(n.spec.unschedulable ?? false).toBe(false);
  expect(n.metadata.annotations?.[CORDONED_BY_DRAIN]).toBeUndefined();
}

describe("draining a node before its VM goes (real API server, scheduler, controllers, KWOK)", () => {
  beforeAll(async () => {
    cluster = await startKubeCluster();
    api = openKubeApi(kubeConfig(cluster.kubeconfigPath));
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it("evicts the pods, leaves DaemonSet and mirror pods alone, waits for the evicted ones to go and deletes the Node", async () => {
    const ns = await namespace("clean");
    const vm = await node("drain-clean");
    const uids = await deployment(ns, "web", 3, vm.name);
    await create(`/apis/apps/v1/namespaces/${ns}/daemonsets`, {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: "agent", namespace: ns },
      spec: {
        selector: { matchLabels: { app: "agent" } },
        template: { metadata: { labels: { app: "agent" } }, spec: { nodeSelector: { "kubernetes.io/hostname": vm.name }, containers: [{ name: "agent", image: IMAGE }] } },
      },
    });
    await waitFor(async () => (await running(ns, "app=agent")).length === 1, { timeoutMs: WAIT, what: "the DaemonSet's pod running" });
    // A static pod's mirror, as a kubelet posts it: owned by no controller, yet never a blocker.
    await create(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `static-${vm.name}`, namespace: ns, annotations: { "kubernetes.io/config.mirror": "0123456789abcdef" } },
      spec: { nodeName: vm.name, containers: [{ name: "static", image: IMAGE }] },
    });
    const t0 = performance.now();
    const out = await runDrain(vm);
    const ms = Math.round(performance.now() - t0);
    console.info(`clean drain of 3 pods: ${ms} ms`);
    expect(out.result, out.message).toBe("continue");
    expect(out.message).toMatch(/^drained and deleted Node drain-clean: 3 pods evicted \(clean\/web-[^)]+\); 2 left alone \(/);
    expect(out.message).toMatch(/clean\/agent-\w+ \(DaemonSet pod\)/);
    expect(out.message).toContain("clean/static-drain-clean (mirror pod)");
    expect(out.heartbeats).toBeGreaterThan(3);
    expect((await getNode(vm.name)).status).toBe(404);
    // The original pods are gone (their replacements, pinned to the deleted node, never ran there).
    const left = (await cluster.request("GET", `/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dweb`)).body.items.map((p: Obj) => p.metadata.uid);
    expect(left.filter((u: string) => uids.includes(u))).toEqual([]);
  });

  it("keeps the node, untainted and uncordoned, when a PDB refuses the eviction for the max eviction time, naming the pod and the PDB", async () => {
    const ns = await namespace("guarded");
    const vm = await node("drain-pdb");
    const uids = await deployment(ns, "db", 2, vm.name);
    await pdb(ns, "db-budget", "db", 2, 0);
    const t0 = performance.now();
    const out = await runDrain(vm, { maxPodEvictionSeconds: 3 });
    const ms = performance.now() - t0;
    expect(out.result).toBe("abandon");
    expect(out.message).toMatch(/^Node drain-pdb kept \(untainted, uncordoned if the drain cordoned it\): 2 of 2 pods could not be evicted within 3 s \(the max pod eviction time\): pod guarded\/db-\S+: PDB db-budget: The disruption budget db-budget needs 2 healthy pods and has 2 currently; pod guarded\/db-/);
    // Retried until the max eviction time, not given up at the first 429, and not much longer.
    expect(ms).toBeGreaterThanOrEqual(3_000);
    expect(ms).toBeLessThan(3_000 + 5_000);
    const n = (await getNode(vm.name)).body;
    expectUntainted(n);
    expect((await running(ns, "app=db")).map((p) => p.metadata.uid).sort()).toEqual([...uids].sort());
  });

  it('keeps the node without evicting anything when a pod says safe-to-evict: "false"', async () => {
    const ns = await namespace("pinned");
    const vm = await node("drain-unsafe");
    const [safe] = await deployment(ns, "cache", 1, vm.name);
    const [unsafe] = await deployment(ns, "batch", 1, vm.name, { [SAFE_TO_EVICT]: "false" });
    const out = await runDrain(vm);
    expect(out.result).toBe("abandon");
    expect(out.message).toMatch(/^Node drain-unsafe kept \(untainted, uncordoned if the drain cordoned it\): pod pinned\/batch-\S+ is annotated cluster-autoscaler\.kubernetes\.io\/safe-to-evict: "false"$/);
    expectUntainted((await getNode(vm.name)).body);
    expect((await running(ns, "app in (cache,batch)")).map((p) => p.metadata.uid).sort()).toEqual([safe, unsafe].sort());
  });

  it("keeps the node when a pod no controller owns would be lost, unless it says safe-to-evict: \"true\"", async () => {
    const ns = await namespace("bare");
    const vm = await node("drain-bare");
    const bare = (name: string, annotations: Record<string, string> = {}) =>
      create(`/api/v1/namespaces/${ns}/pods`, { apiVersion: "v1", kind: "Pod", metadata: { name, namespace: ns, annotations }, spec: { nodeName: vm.name, terminationGracePeriodSeconds: 1, containers: [{ name: "app", image: IMAGE }] } });
    await bare("lonely");
    await bare("disposable", { [SAFE_TO_EVICT]: "true" });
    const out = await runDrain(vm);
    expect(out.result).toBe("abandon");
    expect(out.message).toMatch(/pod bare\/lonely is not managed by a controller \(evicting it would lose it; annotate it cluster-autoscaler\.kubernetes\.io\/safe-to-evict: "true" to allow\)$/);
    expectUntainted((await getNode(vm.name)).body);
    expect((await cluster.request("DELETE", `/api/v1/namespaces/${ns}/pods/lonely`)).status).toBe(200);
    await waitFor(async () => (await cluster.request("GET", `/api/v1/namespaces/${ns}/pods/lonely`)).status === 404, { timeoutMs: WAIT, what: "pod lonely deleted" });
    const again = await runDrain(vm);
    expect(again.result, again.message).toBe("continue");
    expect(again.message).toMatch(/^drained and deleted Node drain-bare: 1 pod evicted \(bare\/disposable\)$/);
  });

  it("leaves an operator's cordon in place when it gives up", async () => {
    const ns = await namespace("operator");
    const vm = await node("drain-cordoned");
    await deployment(ns, "job", 1, vm.name, { [SAFE_TO_EVICT]: "false" });
    expect((await cluster.request("PATCH", `/api/v1/nodes/${vm.name}`, { body: { spec: { unschedulable: true } } })).status).toBe(200);
    const out = await runDrain(vm);
    expect(out.result).toBe("abandon");
    const n = (await getNode(vm.name)).body;
    expect(n.spec.unschedulable).toBe(true);
    expect((n.spec.taints ?? []).map((t: Obj) => t.key)).not.toContain(TO_BE_DELETED_TAINT);
  });

  it("answers continue for a VM that has no Node (nothing to drain)", async () => {
    const out = await runDrain({ uuid: randomUUID(), name: "never-joined" });
    expect(out).toMatchObject({ result: "continue", message: expect.stringMatching(/^no Node has providerID premiscale:\/\/pool\/[0-9a-f-]{36}: nothing to drain$/) });
  });

  it("fails clearly when the API server stops answering mid-drain, leaves the taint, and a re-run resumes and finishes", async () => {
    const ns = await namespace("outage");
    const vm = await node("drain-outage");
    const uids = await deployment(ns, "api", 2, vm.name);
    await pdb(ns, "api-budget", "api", 2, 0);
    const proxy: TcpProxy = await startTcpProxy({ host: "127.0.0.1", port: Number(new URL(cluster.apiUrl).port) });
    try {
      const dir = join(cluster.dir, "outage");
      mkdirSync(dir, { recursive: true });
      const kubeconfig = join(dir, "kubeconfig");
      writeFileSync(kubeconfig, readFileSync(cluster.kubeconfigPath, "utf8").replace(cluster.apiUrl, proxy.url));
      const viaProxy = openKubeApi(kubeConfig(kubeconfig));
      // The PDB refuses, so the drain is retrying evictions when the API server goes away.
      const drain = runDrain(vm, { api: viaProxy, maxPodEvictionSeconds: 60 });
      await waitFor(async () => ((await getNode(vm.name)).body.spec.taints ?? []).some((t: Obj) => t.key === TO_BE_DELETED_TAINT), { timeoutMs: WAIT, what: "the drain's taint", intervalMs: 50 });
      await proxy.cut();
      const err = await drain.then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/^draining Node drain-outage: the API server did not answer \((GET|POST) \/api\/v1\/\S+ on https:\/\/127\.0\.0\.1:\d+: .*\); the Node stays tainted and the next run resumes the drain$/);
      const tainted = (await getNode(vm.name)).body;
      expect(tainted.spec.taints.map((t: Obj) => t.key)).toContain(TO_BE_DELETED_TAINT);
      expect(tainted.spec.unschedulable).toBe(true);
      const stamp = tainted.spec.taints.find((t: Obj) => t.key === TO_BE_DELETED_TAINT);
      expect(stamp).toMatchObject({ effect: "NoSchedule", value: expect.stringMatching(/^\d{10}$/) });

      // The API server is back and the budget now allows the evictions: the re-run takes it from there.
      await proxy.restore();
      expect((await cluster.request("PATCH", `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/api-budget`, { body: { spec: { minAvailable: 0 } } })).status).toBe(200);
      await waitFor(async () => (await cluster.request("GET", `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/api-budget`)).body.status?.disruptionsAllowed === 2, { timeoutMs: WAIT, what: "PDB api-budget allowing 2" });
      const again = await runDrain(vm, { api: viaProxy });
      expect(again.result, again.message).toBe("continue");
      expect(again.message).toMatch(/^drained and deleted Node drain-outage: 2 pods evicted/);
      expect((await getNode(vm.name)).status).toBe(404);
      const left = (await cluster.request("GET", `/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dapi`)).body.items.map((p: Obj) => p.metadata.uid);
      expect(left.filter((u: string) => uids.includes(u))).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it("stops without another call when apply is interrupted, leaving the taint for the next run", async () => {
    const ns = await namespace("interrupted");
    const vm = await node("drain-interrupted");
    await deployment(ns, "svc", 1, vm.name);
    await pdb(ns, "svc-budget", "svc", 1, 0);
    const stop = new AbortController();
    const drain = runDrain(vm, { maxPodEvictionSeconds: 60 }, stop.signal);
    await waitFor(async () => ((await getNode(vm.name)).body.spec.taints ?? []).some((t: Obj) => t.key === TO_BE_DELETED_TAINT), { timeoutMs: WAIT, what: "the drain's taint", intervalMs: 50 });
    stop.abort(new Error("leadership lost"));
    const out = await drain;
    expect(out).toMatchObject({ result: "abandon", message: "draining Node drain-interrupted was interrupted (leadership lost): the Node stays tainted; the next run resumes" });
    expect((await getNode(vm.name)).body.spec.taints.map((t: Obj) => t.key)).toContain(TO_BE_DELETED_TAINT);
  });

  it("names the missing verb and resource when RBAC refuses the eviction (in-cluster credentials of a service account), and untaints", async () => {
    const ns = await namespace("restricted");
    const vm = await node("drain-rbac");
    await deployment(ns, "app", 1, vm.name);
    // A service account allowed everything the drain does except creating evictions.
    await create("/api/v1/namespaces/restricted/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "premiscale", namespace: ns } });
    await create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "premiscale-drain-no-evict" },
      rules: [
        { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "patch", "delete"] },
        { apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] },
      ],
    });
    await create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "premiscale-drain-no-evict" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "premiscale-drain-no-evict" },
      subjects: [{ kind: "ServiceAccount", name: "premiscale", namespace: ns }],
    });
    const token = await create(`/api/v1/namespaces/${ns}/serviceaccounts/premiscale/token`, { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } });
    // The files a pod's service account mount has, under a prefix; the environment a pod has.
    const root = join(cluster.dir, "pod-root");
    const saDir = join(root, "var/run/secrets/kubernetes.io/serviceaccount");
    mkdirSync(saDir, { recursive: true });
    writeFileSync(join(saDir, "token"), token.status.token);
    writeFileSync(join(saDir, "ca.crt"), cluster.caCertPem);
    writeFileSync(join(saDir, "namespace"), ns);
    const inCluster = openKubeApi(kubeConfig(undefined), { env: { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: new URL(cluster.apiUrl).port }, serviceAccountRoot: root });
    expect(inCluster).toMatchObject({ source: "in-cluster", namespace: ns, server: cluster.apiUrl, caCertHash: cluster.caCertHash });
    await waitFor(async () => (await inCluster.request("GET", `/api/v1/nodes/${vm.name}`)).status === 200, { timeoutMs: WAIT, what: "the service account's RBAC in effect" });

    const out = await runDrain(vm, { api: inCluster });
    expect(out.result).toBe("abandon");
    expect(out.message).toMatch(
      /^Node drain-rbac kept \(untainted, uncordoned if the drain cordoned it\): RBAC: premiscale's credentials may not create pods\/eviction in namespace restricted: add verb create on pods\/eviction \(apiGroups \[""\]\) to premiscale's Role or ClusterRole \(HTTP 403: .*User "system:serviceaccount:restricted:premiscale" cannot create resource "pods\/eviction"/,
    );
    expectUntainted((await getNode(vm.name)).body);
  });
});
