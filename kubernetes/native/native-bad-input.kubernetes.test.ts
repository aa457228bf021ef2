// Bad input inside native mode's loop, as `premiscale serve` wires it (pipeline/native-provider.ts startNativeProvider:
// the real node hooks from the config's kubeconfig, the real drain hook, the loop's own timers), on the real test
// cluster (kube-apiserver, scheduler, controllers, KWOK as the kubelets). The VMs are a FakeProvider's: no guest
// boots, the test registers each VM's Node (with its providerID) as the kubelet would. Two cases:
//  - RBAC lacking one verb the drain needs (create pods/eviction): a clear error naming it, once per scan, the node
//    left untainted and uncordoned, the VM kept, and the scale-down done on its own once the verb is granted.
//  - The API server cut off (a TCP proxy in front of it) right after the drain's first eviction: the VM is kept while
//    the cluster cannot be read, and once the API answers again the drain resumes and the removal completes.
// Waits are on the loop's events and real API state, with deadlines.
import { readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubernetesConfig } from "../../config/kubernetes.js";
import type { Config } from "../../config/types.js";
import { startNativeProvider, type NativeEvent, type RunningNativeProvider } from "../../pipeline/native-provider.js";
import { makeConfig } from "../../planner/testing.js";
import { FakeProvider } from "../../providers/fake-provider.js";
import { tempDir } from "../../reconciler/testing.js";
import { GitStateStore } from "../../state/git-state-store.js";
import { KWOK_NODE_LABEL, startKubeCluster, waitFor, type KubeCluster } from "../../test/support/kube-cluster.js";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.js";
import { KUBE_API_PERMISSIONS } from "../api-permissions.js";
import { openKubeApi, type KubeApi } from "../kube-api.js";
import { providerIdOf } from "../provider-id.js";
import { GROUP_LABEL } from "../template-node.js";
import { testGroupKubernetes, testNativeMode } from "./testing.js";
import { CORDONED_BY_DRAIN, TO_BE_DELETED_TAINT } from "./drain.js";

const WAIT = 60_000;
const KWOK = { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value };
const IMAGE = "registry.invalid/premiscale/app:test";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;
type ScanDone = Extract<NativeEvent, { type: "scan_done" }>;

// Scans every second; a node goes as soon as it is unneeded, even right after a scale-up; every node of a group may go.
const NATIVE = testNativeMode({ scanIntervalSeconds: 1, batchIdleMs: 300, batchMaxMs: 2000, scaleDown: { unneededSeconds: 0, delayAfterAddSeconds: 0, budget: "100%" } });

let cluster: KubeCluster;
let dir: string;

beforeAll(async () => {
  cluster = await startKubeCluster();
  dir = await tempDir("premiscale-native-bad-");
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function create(path: string, body: unknown): Promise<Obj> {
  const r = await cluster.request("POST", path, { body });
  expect(r.status, `POST ${path}: ${r.text}`).toBe(201);
  return r.body;
}

/** A config of one node group `group` (2 vCPU nodes labelled pool=<group>) whose kubeconfig is `kubeconfig`. */
function configFor(group: string, kubeconfig: string): Config {
  const k8s = testGroupKubernetes({ labels: { ...KWOK, pool: group } });
  const kubernetes: KubernetesConfig = { kubeconfig, callTimeoutSeconds: 5, externalGrpc: { host: "127.0.0.1", port: 0, tls: null }, debounceMs: 0, resyncSeconds: 60, native: NATIVE };
  const base = makeConfig({ groups: [{ name: group, desired: undefined, min: 0, max: 3, template: { vcpus: 2, memoryMiB: 4096 }, kubernetes: k8s }] });
  return { ...base, file: join(dir, `${group}.yaml`), state: { path: join(dir, `${group}-state`) }, kubernetes };
}

/** A KWOK Node (Ready within a second, running the pods bound to it), waited for until no startup taint is left. */
async function kwokNode(name: string, labels: Record<string, string>, providerID?: string): Promise<void> {
  await create("/api/v1/nodes", {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { ...KWOK, "kubernetes.io/hostname": name, ...labels } },
    ...(providerID ? { spec: { providerID } } : {}),
    status: { capacity: { cpu: "2", memory: "4Gi", pods: "110" }, allocatable: { cpu: "2", memory: "4Gi", pods: "110" } },
  });
  // A new Node carries node.kubernetes.io/not-ready until the node lifecycle controller sees it Ready.
  await waitFor(
    async () => {
      const n = (await cluster.request("GET", `/api/v1/nodes/${name}`)).body;
      return n.status?.conditions?.some((c: Obj) => c.type === "Ready" && c.status === "True") && (n.spec?.taints ?? []).length === 0;
    },
    { timeoutMs: WAIT, what: `node ${name} Ready without taints` },
  );
}

async function runningPods(ns: string): Promise<Obj[]> {
  const r = await cluster.request("GET", `/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dapp`);
  return r.body.items.filter((p: Obj) => p.status?.phase === "Running" && !p.metadata.deletionTimestamp);
}

const getNode = async (name: string) => cluster.request("GET", `/api/v1/nodes/${name}`);

/**
 * The scene both tests start from: native mode running for `group` on `host`, a one-replica ReplicaSet whose pod
 * the scheduler could not place became a VM, whose Node the test registered (the kubelet's part) and the pod runs on.
 * Then a spare node (not the group's) joins: the group's node is unneeded (25% used, its pod fits on the spare), and
 * the loop removes it through the drain.
 */
async function scene(group: string, ns: string, config: Config, host: FakeProvider, events: NativeEvent[], api?: KubeApi): Promise<{ running: RunningNativeProvider; vm: string; uuid: string }> {
  await create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  await waitFor(async () => (await cluster.request("GET", `/api/v1/namespaces/${ns}/serviceaccounts/default`)).status === 200, { timeoutMs: WAIT, what: `default ServiceAccount in ${ns}` });
  const running = await startNativeProvider(config, { env: {}, providers: new Map([["a", host]]), onEvent: (e) => events.push(e), ...(api ? { api } : {}) });
  await create(`/apis/apps/v1/namespaces/${ns}/replicasets`, {
    apiVersion: "apps/v1",
    kind: "ReplicaSet",
    metadata: { name: "app", namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: "app" } },
      template: {
        metadata: { labels: { app: "app" } },
        spec: { nodeSelector: { ...KWOK, pool: group }, terminationGracePeriodSeconds: 0, containers: [{ name: "app", image: IMAGE, resources: { requests: { cpu: "500m", memory: "64Mi" } } }] },
      },
    },
  });
  const [vm, owned] = await waitFor(() => [...host.domains][0], { timeoutMs: WAIT, what: `a VM of ${group} made for the pending pod` });
  await kwokNode(vm, { pool: group, [GROUP_LABEL]: group }, providerIdOf(group, owned.uuid));
  await waitFor(async () => (await runningPods(ns)).some((p) => p.spec.nodeName === vm), { timeoutMs: WAIT, what: `the pod running on ${vm}` });
  await waitFor(() => events.some((e) => e.type === "scan_done" && e.added === 1), { timeoutMs: WAIT, what: "the scan that added the VM done (its Node Ready)" });
  await kwokNode(`spare-${group}`, { pool: group });
  return { running, vm, uuid: owned.uuid };
}

const scans = (events: NativeEvent[]) => events.filter((e): e is ScanDone => e.type === "scan_done");

/** The end both tests expect: the VM destroyed, its Node and token gone, the pod on the spare, no taint left. */
async function expectRemoved(group: string, ns: string, vm: string, uuid: string, config: Config, host: FakeProvider): Promise<void> {
  expect([...host.domains.keys()]).toEqual([]);
  expect(host.calls.filter((c) => c.startsWith("destroy"))).toEqual([`destroy ${vm}`]);
  expect((await getNode(vm)).status).toBe(404);
  expect(((await new GitStateStore(config.state.path).read())?.groups.find((g) => g.name === group)?.instances ?? []).map((i) => i.name)).toEqual([]);
  await waitFor(async () => (await runningPods(ns)).some((p) => p.spec.nodeName === `spare-${group}`), { timeoutMs: WAIT, what: "the pod running on the spare node" });
  const spare = (await getNode(`spare-${group}`)).body;
  expect((spare.spec.taints ?? []).map((t: Obj) => t.key)).not.toContain(TO_BE_DELETED_TAINT);
  expect(spare.spec.unschedulable ?? false).toBe(false);
  const tokens = await cluster.request("GET", `/api/v1/namespaces/kube-system/secrets?labelSelector=${encodeURIComponent(`premiscale.io/instance=${uuid}`)}`);
  expect(tokens.body.items).toEqual([]);
}

const noStack = (s: string) => !/\n\s+at /.test(s);

/**
 * A config of group `group` whose kubeconfig goes through a TCP proxy to the API server, and the loop's own client
 * through it, which cuts the proxy as soon as the drain's first eviction is accepted: the drain is then between its
 * evictions and its wait for the pods to go. `cut()`: whether it happened.
 */
async function cuttable(group: string): Promise<{ proxy: TcpProxy; config: Config; api: KubeApi; cut(): boolean }> {
  const proxy = await startTcpProxy({ host: "127.0.0.1", port: Number(new URL(cluster.apiUrl).port) });
  const kubeconfig = join(dir, `${group}.kubeconfig`);
  writeFileSync(kubeconfig, readFileSync(cluster.kubeconfigPath, "utf8").replace(cluster.apiUrl, proxy.url));
  const config = configFor(group, kubeconfig);
  const inner = openKubeApi(config.kubernetes!);
  let cut = false;
  const api: KubeApi = {
    server: inner.server,
    request: async (method, path, body) => {
      const r = await inner.request(method, path, body);
      if (!cut && method === "POST" && path.endsWith("/eviction") && r.status === 201) {
        cut = true;
        await proxy.cut();
      }
      return r;
    },
  };
  return { proxy, config, api, cut: () => cut };
}

/**
 * A scene (see scene()) whose loop talks through a proxy cut right after the drain's first eviction: waits for the
 * scan whose drain that cut short and runs `body` with it; then the loop stops and the proxy closes, whatever happens.
 */
async function afterCutShortDrain(
  group: string,
  ns: string,
  body: (s: { proxy: TcpProxy; config: Config; host: FakeProvider; events: NativeEvent[]; vm: string; uuid: string; cutShort: ScanDone }) => Promise<void>,
): Promise<void> {
  const { proxy, config, api, cut } = await cuttable(group);
  try {
    const host = new FakeProvider("a");
    const events: NativeEvent[] = [];
    const { running, vm, uuid } = await scene(group, ns, config, host, events, api);
    try {
      const cutShort = await waitFor(() => scans(events).find((e) => e.outcome === "failed" && e.decisions.some((d) => d.remove.includes(vm))), { timeoutMs: WAIT, what: "the scan whose drain was cut short" });
      expect(cut()).toBe(true);
      await body({ proxy, config, host, events, vm, uuid, cutShort });
    } finally {
      await running.stop();
    }
  } finally {
    await proxy.close();
  }
}

type Permission = (typeof KUBE_API_PERMISSIONS)[number];

/**
 * A ServiceAccount in `default` granted every rule api-permissions.ts lists for native mode (the chart's RBAC) except
 * those `missing` picks: a kubeconfig with its token, and `grant()` that adds them to its ClusterRole.
 */
async function serviceAccount(name: string, missing: (p: Permission) => boolean): Promise<{ kubeconfig: string; grant(): Promise<void> }> {
  await create("/api/v1/namespaces/default/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name } });
  const rule = (p: Permission) => ({ apiGroups: [p.apiGroup], resources: [p.resource], verbs: [p.verb] });
  const clusterRules = KUBE_API_PERMISSIONS.filter((p) => p.scope === "cluster");
  const withheld = clusterRules.filter(missing);
  expect(withheld).toHaveLength(1);
  const rbac = "/apis/rbac.authorization.k8s.io/v1";
  await create(`${rbac}/clusterroles`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name }, rules: clusterRules.filter((p) => !missing(p)).map(rule) });
  await create(`${rbac}/namespaces/kube-system/roles`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name, namespace: "kube-system" }, rules: KUBE_API_PERMISSIONS.filter((p) => p.scope === "kube-system").map(rule) });
  const subjects = [{ kind: "ServiceAccount", name, namespace: "default" }];
  await create(`${rbac}/clusterrolebindings`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name }, subjects });
  await create(`${rbac}/namespaces/kube-system/rolebindings`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", metadata: { name, namespace: "kube-system" }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name }, subjects });
  const token = (await create(`/api/v1/namespaces/default/serviceaccounts/${name}/token`, { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } })).status.token as string;
  const kubeconfig = join(dir, `${name}.kubeconfig`);
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      `- name: test\n  cluster:\n    server: ${cluster.apiUrl}\n    certificate-authority-data: ${Buffer.from(cluster.caCertPem).toString("base64")}`,
      "users:",
      `- name: premiscale\n  user:\n    token: ${token}`,
      "contexts:",
      "- name: test\n  context:\n    cluster: test\n    user: premiscale",
      "current-context: test",
      "",
    ].join("\n"),
  );
  // The authorizer's cache: wait until a call the account may make is allowed.
  const api = openKubeApi({ kubeconfig, callTimeoutSeconds: 5 } as KubernetesConfig);
  await waitFor(async () => (await api.request("GET", "/api/v1/nodes?limit=1")).status === 200, { timeoutMs: WAIT, what: `the RBAC of ${name} in effect` });
  return {
    kubeconfig,
    grant: async () => {
      const r = await cluster.request("PATCH", `${rbac}/clusterroles/${name}`, { body: { rules: clusterRules.map(rule) } });
      expect(r.status, r.text).toBe(200);
    },
  };
}

describe("native mode's loop on bad input (real API server, serve's wiring, a FakeProvider's VMs)", () => {
  it("names the verb, resource and fix when RBAC refuses the drain's evictions, once per scan, keeps the node untainted and the VM, and proceeds once the verb is granted", async () => {
    const group = "rbac";
    const ns = "rbac-app";
    // A service account granted everything api-permissions.ts lists for native mode except create on pods/eviction.
    const { kubeconfig, grant } = await serviceAccount("premiscale-rbac", (p) => p.verb === "create" && p.resource === "pods/eviction");
    const config = configFor(group, kubeconfig);

    const host = new FakeProvider("a");
    const events: NativeEvent[] = [];
    const { running, vm, uuid } = await scene(group, ns, config, host, events);
    try {
      const refused = (e: ScanDone) => e.outcome === "failed" && e.failed.some((f) => f.error.includes("pods/eviction"));
      await waitFor(() => scans(events).filter(refused).length >= 2, { timeoutMs: WAIT, what: "two scans refused the eviction" });
      const first = scans(events).find(refused)!;
      expect(first.decisions).toMatchObject([{ group, remove: [vm], code: "unneeded_nodes" }]);
      expect(first.failed).toHaveLength(1);
      const error = first.failed[0]!.error;
      expect(error).toMatch(
        new RegExp(
          `^kept: hook kubernetes-drain did not let it go: Node ${vm} kept \\(untainted, uncordoned if the drain cordoned it\\): RBAC: premiscale's credentials may not create pods/eviction in namespace ${ns}: add verb create on pods/eviction \\(apiGroups \\[""\\]\\) to premiscale's Role or ClusterRole \\(HTTP 403: .*User "system:serviceaccount:default:premiscale-rbac" cannot create resource "pods/eviction"`,
        ),
      );
      expect(noStack(error)).toBe(true);
      // Nothing half-done between scans: the node is as it was (no taint, not cordoned), the VM and its pod are there.
      const node = (await getNode(vm)).body;
      expect((node.spec.taints ?? []).map((t: Obj) => t.key)).not.toContain(TO_BE_DELETED_TAINT);
      expect(node.spec.unschedulable ?? false).toBe(false);
      expect(node.metadata.annotations?.[CORDONED_BY_DRAIN]).toBeUndefined();
      expect([...host.domains.keys()]).toEqual([vm]);
      expect(host.calls.filter((c) => c.startsWith("destroy"))).toEqual([]);
      expect((await runningPods(ns)).map((p) => p.spec.nodeName)).toEqual([vm]);
      // Reported once per scan (each refused scan is a retry, 5 s apart), and the loop itself raised nothing.
      const times = events.map((e, i) => [e, i] as const).filter(([e]) => e.type === "scan_done" && refused(e as ScanDone));
      expect(times.length).toBeLessThanOrEqual(scans(events).length);
      expect(events.filter((e) => e.type === "native_error")).toEqual([]);
      const applyErrors = events.filter((e) => e.type === "apply" && e.event.type === "apply_errored");
      expect(applyErrors.length).toBe(scans(events).filter(refused).length);

      // The verb is granted: the next scan drains the node and the VM goes, with nothing more from the test.
      await grant();
      const removed = await waitFor(() => scans(events).find((e) => e.destroyed === 1), { timeoutMs: WAIT, what: "a scan that removed the VM" });
      expect(removed).toMatchObject({ outcome: "applied", failed: [], decisions: [{ group, remove: [vm] }] });
      await expectRemoved(group, ns, vm, uuid, config, host);
    } finally {
      await running.stop();
    }
  }, 180_000);

  it("names the verb, resource and fix when RBAC refuses the scans' list of pods, once per scan and once for the polls, and scans on its own once it is granted", async () => {
    const { kubeconfig, grant } = await serviceAccount("premiscale-no-pods", (p) => p.verb === "list" && p.resource === "pods");
    const events: NativeEvent[] = [];
    const running = await startNativeProvider(configFor("nopods", kubeconfig), { env: {}, providers: new Map([["a", new FakeProvider("a")]]), onEvent: (e) => events.push(e) });
    try {
      const errors = () => events.filter((e): e is Extract<NativeEvent, { type: "native_error" }> => e.type === "native_error");
      const started = performance.now();
      // The start scan and its retry 5 s later, and the polls of pending pods every 200 ms (about 25 of them).
      await waitFor(() => errors().length >= 3, { timeoutMs: WAIT, what: "the refusal reported by the polls and two scans" });
      const seconds = (performance.now() - started) / 1000;
      const said = errors();
      expect(said.length, `${said.length} reports in ${seconds.toFixed(1)} s`).toBeLessThanOrEqual(2 + Math.ceil(seconds / 5));
      for (const e of said) {
        expect(e.error).toMatch(
          /^listing \/api\/v1\/pods on https:\/\/127\.0\.0\.1:\d+: RBAC: premiscale's credentials may not list pods cluster-wide: add verb list on pods \(apiGroups \[""\]\) to premiscale's ClusterRole \(HTTP 403: .*User "system:serviceaccount:default:premiscale-no-pods" cannot list resource "pods"/,
        );
        expect(noStack(e.error)).toBe(true);
      }
      expect(events.some((e) => e.type === "scan_start")).toBe(false);
      console.info(`RBAC without list on pods: ${said.length} reports in ${seconds.toFixed(1)} s`);

      await grant();
      await waitFor(() => events.some((e) => e.type === "scan_done"), { timeoutMs: WAIT, what: "a scan once list on pods is granted" });
      expect(scans(events)[0]).toMatchObject({ outcome: "no_changes", failed: [] });
    } finally {
      await running.stop();
    }
  });

  it("keeps the VM while the API server is cut off mid-drain, says so, and resumes and completes the removal when it answers again", async () => {
    const group = "outage";
    const ns = "outage-app";
    await afterCutShortDrain(group, ns, async ({ proxy, config, host, events, vm, uuid, cutShort }) => {
      expect(cutShort.failed).toHaveLength(1);
      expect(cutShort.failed[0]!.error).toMatch(
        new RegExp(`^kept: hook kubernetes-drain did not let it go: draining Node ${vm}: the API server did not answer \\(GET /api/v1/pods on https://127\\.0\\.0\\.1:\\d+: .*\\); the Node stays tainted and the next run resumes the drain$`),
      );
      expect(noStack(cutShort.failed[0]!.error)).toBe(true);
      // While the API is away (a retry of the scan 5 s after the cut-short one, and the polls of pending pods every 200 ms):
      // reported once by the polls and once per scan, the VM kept, the Node left tainted.
      const outage = performance.now();
      const outageErrors = () => events.filter((e): e is Extract<NativeEvent, { type: "native_error" }> => e.type === "native_error");
      await waitFor(() => outageErrors().length >= 2, { timeoutMs: WAIT, what: "the outage reported by the polls and a scan" });
      const errors = outageErrors();
      const seconds = (performance.now() - outage) / 1000;
      expect(errors.length, `${errors.length} reports in ${seconds.toFixed(1)} s: ${errors.map((e) => e.error).join("\n")}`).toBeLessThanOrEqual(2 + Math.ceil(seconds / 5));
      expect(errors.every((e) => /^GET \/api\/v1\/(pods|nodes) on https:\/\/127\.0\.0\.1:\d+: .*(ECONNREFUSED|ECONNRESET|socket hang up)/.test(e.error)), errors.map((e) => e.error).join("\n")).toBe(true);
      expect(errors.every((e) => noStack(e.error))).toBe(true);
      console.info(`API server cut off: ${errors.length} reports in ${seconds.toFixed(1)} s`);
      expect([...host.domains.keys()]).toEqual([vm]);
      expect(host.calls.filter((c) => c.startsWith("destroy"))).toEqual([]);
      const tainted = (await getNode(vm)).body;
      expect(tainted.spec.taints.map((t: Obj) => t.key)).toContain(TO_BE_DELETED_TAINT);
      expect(tainted.spec.unschedulable).toBe(true);
      expect(((await new GitStateStore(config.state.path).read())?.groups.find((g) => g.name === group)?.instances ?? []).map((i) => [i.name, i.status])).toEqual([[vm, "running"]]);

      // Back: the next scan finds the drain cut short and finishes it; the VM goes.
      await proxy.restore();
      const removed = await waitFor(() => scans(events).find((e) => e.destroyed === 1), { timeoutMs: WAIT, what: "a scan that removed the VM" });
      expect(removed).toMatchObject({ outcome: "applied", failed: [], decisions: [{ group, remove: [vm] }] });
      await expectRemoved(group, ns, vm, uuid, config, host);
    });
  }, 180_000);

  it("releases a node whose drain was cut short when the next scan keeps it: untainted and uncordoned, its VM kept", async () => {
    await afterCutShortDrain("kept", "kept-app", async ({ proxy, host, events, vm }) => {
      // While the API is away an operator marks the node to stay; when it is back, the scan keeps it.
      const r = await cluster.request("PATCH", `/api/v1/nodes/${vm}`, { body: { metadata: { annotations: { "cluster-autoscaler.kubernetes.io/scale-down-disabled": "true" } } } });
      expect(r.status, r.text).toBe(200);
      expect((await getNode(vm)).body.spec.unschedulable).toBe(true);
      await proxy.restore();
      const released = await waitFor(() => scans(events).find((e) => (e.released ?? []).length > 0), { timeoutMs: WAIT, what: "a scan that released the node" });
      expect(released.released).toEqual([`${vm}: drain cut short, node kept: taint removed`]);
      expect(released.decisions).toEqual([]);
      const node = (await getNode(vm)).body;
      expect((node.spec.taints ?? []).map((t: Obj) => t.key)).not.toContain(TO_BE_DELETED_TAINT);
      expect(node.spec.unschedulable ?? false).toBe(false);
      expect(node.metadata.annotations?.[CORDONED_BY_DRAIN]).toBeUndefined();
      expect([...host.domains.keys()]).toEqual([vm]);
      expect(host.calls.filter((c) => c.startsWith("destroy"))).toEqual([]);
      // Released once: the scans after it find nothing to release.
      const after = scans(events).length;
      await waitFor(() => scans(events).length >= after + 2, { timeoutMs: WAIT, what: "two more scans" });
      expect(scans(events).filter((e) => (e.released ?? []).length > 0)).toHaveLength(1);
    });
  }, 180_000);
});
