// Native mode against the real test cluster (test/support/kube-cluster.ts: etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager, KWOK as the kubelets). The pods are real and the real scheduler marks them
// PodScheduled=False/Unschedulable; premiscale reads them through its own API client and decides. The VMs are a
// FakeProvider's (no guest boots here) and state is real git: the scan plans and applies like serve's loop does, with
// the node hooks replaced (no VM can join). Everything waits on real API state with a deadline.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubernetesConfig, NativeModeConfig } from "../../config/kubernetes.js";
import type { Config } from "../../config/types.js";
import type { LifecycleHook } from "../../applier/lifecycle.js";
import { nodeGroupMembers, runNativeScan, startNativeProvider, type NativeEvent, type NativeScanDeps } from "../../pipeline/native-provider.js";
import { makeConfig } from "../../planner/testing.js";
import type { Member } from "../../policies/aggregate.js";
import { FakeProvider } from "../../providers/fake-provider.js";
import { tempDir } from "../../reconciler/testing.js";
import { git } from "../../state/git.js";
import { GitStateStore } from "../../state/git-state-store.js";
import { KWOK_NODE_LABEL, startKubeCluster, waitFor, type KubeCluster } from "../../test/support/kube-cluster.js";
import { openKubeApi, type KubeApi } from "../kube-api.js";
import { providerIdOf } from "../provider-id.js";
import { GROUP_LABEL } from "../template-node.js";
import { testGroupKubernetes, testNativeMode } from "./testing.js";
import { listUnschedulable, readCluster } from "./cluster-reader.js";
import { drainHook } from "./drain.js";
import { decideNative, type NativeResult } from "./decide-native.js";
import { NativeLoop } from "./native-loop.js";
import { nativeOptions, nativeSource } from "./native-source.js";
import { emptyMemory } from "./safety.js";

const NS = "default";
const WAIT = 60_000;
const KWOK = { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value };
const BIG_TOLERATION = [{ key: "dedicated", operator: "Equal", value: "big", effect: "NoSchedule" }];

const NATIVE = testNativeMode();

const k8s = testGroupKubernetes;

let cluster: KubeCluster;
let api: KubeApi;
let dir: string;
let config: Config;

beforeAll(async () => {
  cluster = await startKubeCluster();
  dir = await tempDir("premiscale-native-");
  const kubernetes: KubernetesConfig = { kubeconfig: cluster.kubeconfigPath, callTimeoutSeconds: 10, externalGrpc: { host: "127.0.0.1", port: 0, tls: null }, debounceMs: 0, resyncSeconds: 60, native: NATIVE };
  const base = makeConfig({
    groups: [
      // Two templates: small general nodes, and big nodes tainted for the pods that ask for them.
      { name: "web", desired: undefined, min: 0, max: 20, template: { vcpus: 2, memoryMiB: 4096 }, kubernetes: k8s({ labels: { ...KWOK } }) },
      { name: "big", desired: undefined, min: 0, max: 3, template: { vcpus: 8, memoryMiB: 16384 }, kubernetes: k8s({ labels: { ...KWOK, size: "big" }, taints: [{ key: "dedicated", value: "big", effect: "NoSchedule" }] }) },
    ],
  });
  config = { ...base, file: join(dir, "premiscale.yaml"), state: { path: join(dir, "state") }, kubernetes };
  api = openKubeApi(kubernetes);
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function create(path: string, body: unknown): Promise<void> {
  const r = await cluster.request("POST", path, { body });
  expect(r.status, `POST ${path}: ${r.text}`).toBe(201);
}

function pod(name: string, cpu: string, memory: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, labels: { test: "native" } },
    spec: { nodeSelector: { ...KWOK }, containers: [{ name: "app", image: "registry.invalid/premiscale/app:test", resources: { requests: { cpu, memory } } }], ...spec },
  };
}

async function kwokNode(name: string, group: string, cpu: string, memory: string, o: { labels?: Record<string, string>; providerID?: string } = {}) {
  await create("/api/v1/nodes", {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { ...KWOK, [GROUP_LABEL]: group, "kubernetes.io/hostname": name, ...o.labels } },
    ...(o.providerID ? { spec: { providerID: o.providerID } } : {}),
    status: { capacity: { cpu, memory, pods: "110" }, allocatable: { cpu, memory, pods: "110" } },
  });
  await waitFor(
    async () => {
      const r = await cluster.request("GET", `/api/v1/nodes/${name}`);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      return r.body.status?.conditions?.some((c: any) => c.type === "Ready" && c.status === "True");
    },
    { timeoutMs: WAIT, what: `node ${name} Ready` },
  );
}

/** Waits until the named pods carry the scheduler's Unschedulable condition (read back through premiscale's reader). */
async function unschedulable(names: string[]): Promise<void> {
  await waitFor(
    async () => {
      const pods = (await readCluster(api)).pods;
      return names.every((n) => pods.some((p) => p.name === n && p.unschedulable));
    },
    { timeoutMs: WAIT, what: `pods ${names.join(", ")} marked Unschedulable by the scheduler` },
  );
}

async function deleteTestPods(): Promise<void> {
  const r = await cluster.request("DELETE", `/api/v1/namespaces/${NS}/pods?labelSelector=test%3Dnative&gracePeriodSeconds=0`);
  expect(r.status).toBe(200);
  await waitFor(async () => (await cluster.request("GET", `/api/v1/namespaces/${NS}/pods?labelSelector=test%3Dnative`)).body.items.length === 0, { timeoutMs: WAIT, what: "the test pods deleted" });
}

const members = (entries: Record<string, string[]>, createdAt = "2026-01-01T00:00:00Z"): Map<string, Member[]> =>
  new Map(Object.entries(entries).map(([g, names]) => [g, names.map((name) => ({ name, createdAt, ready: true }))]));

describe("native mode on the real test cluster", () => {
  it("reads the scheduler's Unschedulable pods and adds the right nodes across two groups with different templates", async () => {
    await kwokNode("web-0000aaaa", "web", "2", "4Gi");
    await create(`/api/v1/namespaces/${NS}/pods`, pod("filler", "1500m", "512Mi"));
    await waitFor(async () => (await cluster.request("GET", `/api/v1/namespaces/${NS}/pods/filler`)).body.status?.phase === "Running", { timeoutMs: WAIT, what: "filler Running on web-0000aaaa" });
    for (const n of ["w1", "w2", "w3"]) await create(`/api/v1/namespaces/${NS}/pods`, pod(n, "1", "256Mi"));
    for (const n of ["b1", "b2"]) await create(`/api/v1/namespaces/${NS}/pods`, pod(n, "3", "1Gi", { nodeSelector: { ...KWOK, size: "big" }, tolerations: BIG_TOLERATION }));
    await create(`/api/v1/namespaces/${NS}/pods`, pod("huge", "64", "1Gi"));
    await unschedulable(["w1", "w2", "w3", "b1", "b2", "huge"]);

    const snapshot = await readCluster(api);
    expect(snapshot.pods.find((p) => p.name === "filler")).toMatchObject({ nodeName: "web-0000aaaa", requests: { cpuMillis: 1500 } });
    const result = decideNative({ groups: config.groups, members: members({ web: ["web-0000aaaa"], big: [] }), cluster: snapshot, memory: emptyMemory(), now: new Date(), options: nativeOptions(NATIVE) });
    const web = result.decisions.get("web")!;
    const big = result.decisions.get("big")!;
    expect(web).toMatchObject({ add: 2, code: "pending_pods" });
    expect(web.reason).toMatch(/^3 pods unschedulable \(cpu\): \+2 on web, .*\[default\/w1, default\/w2, default\/w3\]$/);
    expect(big).toMatchObject({ add: 1, code: "pending_pods" });
    expect(big.reason).toMatch(/^2 pods unschedulable \(constraints\): \+1 on big, least waste \d+% \[default\/b1, default\/b2\]$/);
    // A pod no template can hold is reported, per group, and scaled for nowhere.
    expect(result.unplaceable.map((u) => [u.pod.name, u.groups])).toEqual([["huge", { web: "cpu", big: "taint" }]]);
    // The source turns the scan into sizes.
    const source = nativeSource(result);
    const [webGroup, bigGroup] = config.groups;
    expect(source.decide(webGroup!, members({ web: ["web-0000aaaa"] }).get("web")!)).toMatchObject({ desired: 3, code: "pending_pods" });
    expect(source.decide(bigGroup!, [])).toMatchObject({ desired: 1, code: "pending_pods" });
  });

  it("plans and applies one scan into VMs and a commit that says why, then waits for them instead of adding more", async () => {
    const host = new FakeProvider("a");
    const deps: NativeScanDeps = { config, providers: new Map([["a", host]]), env: {}, hooks: () => [], lastPlanAt: { at: 0 } };
    const scan = async (memory = emptyMemory()) =>
      runNativeScan(deps, { trigger: "pods", cluster: await readCluster(api), held: new Set(), memory, now: new Date() }, new AbortController().signal);
    // web-0000aaaa is not a VM of premiscale's state here: the web pods need two new nodes all the same.
    const first = await scan();
    expect(first.result).toMatchObject({ outcome: "applied", added: 3, destroyed: 0, failed: [] });
    expect(Object.fromEntries(first.result.decisions.map((d) => [d.group, d.add]))).toEqual({ web: 2, big: 1 });
    expect(first.next.memory.lastScaleUp).toBeDefined();
    const state = await new GitStateStore(config.state.path).read();
    expect(Object.fromEntries(state!.groups.map((g) => [g.name, g.instances.length]))).toEqual({ web: 2, big: 1 });
    const message = (await git(config.state.path, ["log", "-1", "--format=%B"])).stdout;
    expect(message).toMatch(/web: 0 → 2 \(3 pods unschedulable \(cpu\): \+2 on web/);
    expect(message).toMatch(/big: 0 → 1 \(2 pods unschedulable/);
    // The new VMs have no Ready Node yet: the next scan counts them as on their way and adds nothing.
    const second = await scan(first.next.memory);
    expect(second.result.decisions).toEqual([]);
    expect(host.calls.filter((c) => c.startsWith("create"))).toHaveLength(3);
    await deleteTestPods();
  });

  it("after an apply died mid-create, one scan removes its half-made VMs and adds what the pending pods need", async () => {
    // What a leader killed while its new VMs waited for their Nodes leaves in the shared state: two VMs "creating".
    // No apply runs while a scan holds the lock, so they are an interrupted apply's and this scan's plan removes them;
    // counting them as nodes on their way would leave the pods waiting for nodes that never come, one more scan.
    const crashed: Config = { ...config, state: { path: join(dir, "state-crashed") } };
    const store = new GitStateStore(crashed.state.path);
    const lock = await store.lock("test", 5000);
    await lock.init("crashed-lineage");
    for (const name of ["big-dead0001", "big-dead0002"]) await lock.putInstance("big", { name, uuid: `${name}-uuid`, host: "a", created: new Date().toISOString(), status: "creating" });
    await lock.commit("test: an apply died mid-create");
    await lock.release();
    // The first one's Node joined and the scheduler put b1 and b2 on it; the second one's never registered.
    await kwokNode("big-dead0001", "big", "8", "16Gi", { labels: { size: "big" } });
    for (const n of ["b1", "b2"]) await create(`/api/v1/namespaces/${NS}/pods`, pod(n, "3", "1Gi", { nodeSelector: { ...KWOK, size: "big" }, tolerations: BIG_TOLERATION }));
    await waitFor(async () => (await readCluster(api)).pods.filter((p) => p.nodeName === "big-dead0001").length === 2, { timeoutMs: WAIT, what: "b1 and b2 on big-dead0001" });
    const host = new FakeProvider("a");
    const deps: NativeScanDeps = { config: crashed, providers: new Map([["a", host]]), env: {}, hooks: () => [] };
    const { result } = await runNativeScan(deps, { trigger: "pods", cluster: await readCluster(api), held: new Set(), memory: emptyMemory(), now: new Date() }, new AbortController().signal);
    // Their node goes with its half-made VM, so b1 and b2 (3 CPUs each) need one new 8-vCPU big node: +1, and the two
    // half-made VMs go, in the same plan.
    expect(result).toMatchObject({ outcome: "applied", added: 1, destroyed: 2, failed: [] });
    expect(result.decisions).toMatchObject([{ group: "big", add: 1 }]);
    const after = await store.read();
    expect(after!.groups.find((g) => g.name === "big")!.instances.map((i) => [i.name.startsWith("big-dead"), i.status])).toEqual([[false, "running"]]);
    await deleteTestPods();
    // (No node hook ran here: the test removes the Node the plan's delete hook would have.)
    expect((await cluster.request("DELETE", "/api/v1/nodes/big-dead0001")).status).toBe(200);
  });

  it("turns a burst of 50 pending pods into one decision", async () => {
    const groupMembers = members({ web: ["web-0000aaaa"], big: [] });
    const decisions: NativeResult[] = [];
    const seen: number[] = [];
    const loop = new NativeLoop({
      scanIntervalMs: 3000,
      pollMs: NATIVE.pollMs,
      batchIdleMs: NATIVE.batchIdleMs,
      batchMaxMs: NATIVE.batchMaxMs,
      readCluster: () => readCluster(api),
      listPending: () => listUnschedulable(api),
      scan: async (input) => {
        const r = decideNative({ groups: config.groups, members: groupMembers, cluster: input.cluster, held: input.held, memory: input.memory, now: input.now, options: nativeOptions(NATIVE) });
        seen.push(input.cluster.pods.filter((p) => p.unschedulable && !input.held.has(p.uid)).length);
        const adds = [...r.decisions.values()].filter((d) => d.add > 0);
        if (adds.length > 0) {
          decisions.push(r);
          // "Apply": the new VMs exist, their Nodes not yet (they are on their way for the scans that follow).
          for (const d of adds) groupMembers.set(d.group, [...groupMembers.get(d.group)!, ...Array.from({ length: d.add }, (_, i) => ({ name: `${d.group}-new${decisions.length}-${i}`, createdAt: input.now.toISOString(), ready: false }))]);
        }
        return { memory: r.memory, again: false };
      },
    });
    loop.start();
    try {
      // 50 replicas created as fast as the API takes them; the scheduler marks each Unschedulable as it comes.
      for (let i = 0; i < 50; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => create(`/api/v1/namespaces/${NS}/pods`, pod(`burst-${i + j}`, "500m", "128Mi"))));
      await waitFor(() => decisions.length > 0, { timeoutMs: WAIT, what: "a scale-up decision for the burst" });
      // Two more scheduled scans see all 50 pending and add nothing.
      const after = loop.scans;
      await waitFor(() => loop.scans >= after + 2, { timeoutMs: WAIT, what: "two more scans" });
    } finally {
      await loop.stop();
    }
    expect(decisions).toHaveLength(1);
    const web = decisions[0]!.decisions.get("web")!;
    // The scheduler binds what fits on the (now empty) web-0000aaaa; the decision covers every other pod of the burst:
    // 500m each on 2-CPU nodes, 4 per node.
    const bound = (await readCluster(api)).pods.filter((p) => p.nodeName && p.name.startsWith("burst-")).length;
    const pending = 50 - bound;
    expect(bound).toBeLessThanOrEqual(4);
    expect(web, `${web.reason}; scans saw ${seen.join(", ")} pending`).toMatchObject({ add: Math.ceil(pending / 4), code: "pending_pods" });
    expect(web.reason).toMatch(new RegExp(`^${pending} pods unschedulable \\(cpu\\): \\+${Math.ceil(pending / 4)} on web`));
    expect(Math.max(...seen)).toBe(pending);
    expect(loop.batches).toBe(1);
    await deleteTestPods();
  });

  it("runs as serve's native mode: a pending pod becomes a VM, and the VM's empty node goes through the drain hook", async () => {
    const host = new FakeProvider("a");
    const events: NativeEvent[] = [];
    const drained: string[] = [];
    // No waiting in this test: a node is unneeded at once, and scale-down may follow a scale-up at once.
    const native = { ...NATIVE, scaleDown: { ...NATIVE.scaleDown, unneededSeconds: 0, delayAfterAddSeconds: 0 } };
    const statePath = join(dir, "serve-state");
    const running = await startNativeProvider(
      { ...config, state: { path: statePath }, kubernetes: { ...config.kubernetes!, native } },
      {
        env: {},
        api,
        providers: new Map([["a", host]]),
        hooks: () => [],
        drain: { name: "drain", point: "before-destroy", defaultResult: "abandon", timeoutMs: () => 10_000, run: async (ctx) => (drained.push(ctx.vm.name), { result: "continue" }) },
        onEvent: (e) => events.push(e),
      },
    );
    try {
      await create(`/api/v1/namespaces/${NS}/pods`, pod("serve-1", "3", "1Gi", { nodeSelector: { ...KWOK, size: "big" }, tolerations: BIG_TOLERATION }));
      const done = await waitFor(() => events.find((e): e is Extract<NativeEvent, { type: "scan_done" }> => e.type === "scan_done" && e.outcome === "applied"), { timeoutMs: WAIT, what: "a scan that applied" });
      expect(done).toMatchObject({ added: 1, decisions: [{ group: "big", add: 1, code: "pending_pods" }] });
      expect(events.some((e) => e.type === "pods_batched")).toBe(true);
      const state = await new GitStateStore(statePath).read();
      const [vm] = state!.groups.find((g) => g.name === "big")!.instances;
      // The pod goes, then the VM's Node joins (KWOK stands in for its kubelet): the node is empty, and scale-down takes it.
      await deleteTestPods();
      await kwokNode(vm!.name, "big", "8", "16Gi");
      await waitFor(() => drained.length > 0, { timeoutMs: WAIT, what: `the drain hook called for ${vm!.name}` });
      expect(drained).toEqual([vm!.name]);
      const removed = await waitFor(() => events.find((e): e is Extract<NativeEvent, { type: "scan_done" }> => e.type === "scan_done" && e.destroyed > 0), { timeoutMs: WAIT, what: "a scan that removed the VM" });
      expect(removed.decisions).toMatchObject([{ group: "big", remove: [vm!.name], code: "unneeded_nodes" }]);
      expect(removed.decisions[0]!.reason).toMatch(new RegExp(`^1 node under 50% for 0s: -1 on big: ${vm!.name} 0% \\(empty\\)`));
      expect((await new GitStateStore(statePath).read())!.groups.find((g) => g.name === "big")?.instances ?? []).toEqual([]);
    } finally {
      await running.stop();
      await deleteTestPods();
    }
  });

  it("consolidates four half-empty nodes into two under a PDB allowing one disruption, never breaking it, and not while a scheduled budget of 0 is in force", async () => {
    // One group of its own (nodes labelled pool=cons, so no other test's pods or nodes mix in), every node of it
    // allowed to go at once (disruptionBudget 100%): only the PDB and the scheduled budget hold the plan back.
    // Scale-down with no waiting (unneeded time and delays 0); a budget of 0 every day 09:00-17:00 UTC.
    const POOL = { pool: "cons" };
    const native: NativeModeConfig = {
      ...NATIVE,
      scanIntervalSeconds: 1,
      scaleDown: { ...NATIVE.scaleDown, unneededSeconds: 0, delayAfterAddSeconds: 0, budgets: [{ nodes: "0", schedule: "0 9 * * *", timezone: "UTC", duration: "8h", durationSeconds: 8 * 3600 }] },
    };
    const base = makeConfig({ groups: [{ name: "cons", desired: undefined, min: 0, max: 10, template: { vcpus: 2, memoryMiB: 4096 }, kubernetes: k8s({ labels: { ...KWOK, ...POOL }, autoscaling: { maxNodeProvisionSeconds: 900, disruptionBudget: "100%" } }) }] });
    const consConfig: Config = { ...base, file: join(dir, "premiscale.yaml"), state: { path: join(dir, "cons-state") }, kubernetes: { ...config.kubernetes!, native } };
    const ns = "consolidate";
    const host = new FakeProvider("a");
    // Every eviction the drains ask for, with the API server's answer (a 429 would be a PDB refusing it).
    const evictions: { pod: string; status: number }[] = [];
    const recording: KubeApi = {
      server: api.server,
      request: async (method, path, body) => {
        const r = await api.request(method, path, body);
        if (method === "POST" && path.endsWith("/eviction")) evictions.push({ pod: path.split("/")[5]!, status: r.status });
        return r;
      },
    };
    const drained: string[] = [];
    const inner = drainHook({ api: recording, callTimeoutSeconds: 10, pollMs: 200 });
    const drain: LifecycleHook = { ...inner, run: async (ctx) => { const out = await inner.run(ctx); drained.push(`${out.result}: ${out.message ?? ""}`); return out; } };
    const deps: NativeScanDeps = { config: consConfig, providers: new Map([["a", host]]), env: {}, hooks: () => [], drain, lastPlanAt: { at: 0 } };
    const scan = async (now: Date, memory = emptyMemory()) => runNativeScan(deps, { trigger: "scan", cluster: await readCluster(api), held: new Set(), memory, now }, new AbortController().signal);
    const members = async () => nodeGroupMembers(consConfig, await new GitStateStore(consConfig.state.path).read());
    const running = async () => {
      const r = await cluster.request("GET", `/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dweb`);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      return (r.body.items as any[]).filter((p) => !p.metadata.deletionTimestamp && p.status?.phase === "Running" && p.status.conditions?.some((c: any) => c.type === "Ready" && c.status === "True"));
    };
    const pdbAllows = (n: number) =>
      waitFor(async () => {
        const r = await cluster.request("GET", `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/web-pdb`);
        return r.body.status?.observedGeneration === r.body.metadata.generation && r.body.status.disruptionsAllowed === n && (await running()).length === 4;
      }, { timeoutMs: WAIT, what: `4 web pods Ready and PDB web-pdb allowing ${n}` });

    // Four VMs the real way: four pending pods that need a node each (1.2 CPU of 2), one scan, four KWOK Nodes.
    for (let i = 0; i < 4; i++) await create(`/api/v1/namespaces/${NS}/pods`, pod(`boot-${i}`, "1200m", "256Mi", { nodeSelector: { ...KWOK, ...POOL } }));
    await unschedulable(["boot-0", "boot-1", "boot-2", "boot-3"]);
    expect((await scan(new Date())).result).toMatchObject({ outcome: "applied", added: 4 });
    const vms = (await new GitStateStore(consConfig.state.path).read())!.groups.find((g) => g.name === "cons")!.instances;
    for (const vm of vms) await kwokNode(vm.name, "cons", "2", "4Gi", { labels: POOL, providerID: providerIdOf("cons", vm.uuid) });
    await deleteTestPods();
    // A new Node carries node.kubernetes.io/not-ready:NoSchedule until the node lifecycle controller sees it Ready:
    // the scheduler would pack the replicas onto the nodes already free of it.
    await waitFor(async () => {
      const items = (await cluster.request("GET", "/api/v1/nodes?labelSelector=pool%3Dcons")).body.items as { spec?: { taints?: unknown[] } }[];
      return items.length === 4 && items.every((n) => (n.spec?.taints ?? []).length === 0);
    }, { timeoutMs: WAIT, what: "the 4 cons nodes without taints" });

    // The workload: 4 replicas of 0.8 CPU, spread one per node by the scheduler (40% each), under a PDB that keeps 3.
    expect((await cluster.request("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } } })).status).toBe(201);
    await create(`/apis/apps/v1/namespaces/${ns}/replicasets`, {
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      metadata: { name: "web", namespace: ns },
      spec: {
        replicas: 4,
        selector: { matchLabels: { app: "web" } },
        template: { metadata: { labels: { app: "web" } }, spec: { nodeSelector: { ...KWOK, ...POOL }, terminationGracePeriodSeconds: 0, containers: [{ name: "app", image: "registry.invalid/premiscale/app:test", resources: { requests: { cpu: "800m", memory: "256Mi" } } }] } },
      },
    });
    await create(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, { apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: { name: "web-pdb", namespace: ns }, spec: { minAvailable: 3, selector: { matchLabels: { app: "web" } } } });
    await pdbAllows(1);
    const spread = (await running()).map((p) => `${p.metadata.name}@${p.spec.nodeName}`);
    expect(new Set(spread.map((x) => x.split("@")[1])).size, `the scheduler spread the 4 replicas over the 4 nodes: ${spread.join(", ")}`).toBe(4);
    // The PDB's status through the whole consolidation: never fewer healthy pods than it wants.
    const samples: { allowed: number; healthy: number; desired: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await cluster.request("GET", `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/web-pdb`);
        samples.push({ allowed: r.body.status.disruptionsAllowed, healthy: r.body.status.currentHealthy, desired: r.body.status.desiredHealthy });
        await new Promise((res) => setTimeout(res, 100));
      }
    })();

    try {
      // 12:00 UTC: the scheduled budget of 0 is in force. The nodes are unneeded, but nothing goes and nothing is evicted.
      const noon = new Date("2026-12-03T12:00:00Z");
      const held = await scan(noon);
      expect(held.result).toMatchObject({ destroyed: 0, decisions: [] });
      // The one node the PDB would let go is held by the budget; the others by the PDB.
      expect(held.result.kept).toHaveLength(3);
      expect(held.result.kept[0]).toMatch(/^cons-[0-9a-f]{8} kept: scheduled disruption budget 0 \("0 9 \* \* \*" UTC for 8h, until 2026-12-03T17:00Z\) of 4 nodes \(0 now\) is used$/);
      expect(held.result.kept.slice(1).every((k) => / kept: pod consolidate\/web-\S+ is covered by PDB web-pdb, 1 disruption allowed \(0 left once cons-[0-9a-f]{8} goes\)$/.test(k))).toBe(true);
      const heldWhy = decideNative({ groups: consConfig.groups, members: await members(), cluster: await readCluster(api), memory: emptyMemory(), now: noon, options: nativeOptions(native) }).decisions.get("cons")!.reason;
      expect(heldWhy).toMatch(/kept: scheduled disruption budget 0 \("0 9 \* \* \*" UTC for 8h, until 2026-12-03T17:00Z\) of 4 nodes \(0 now\) is used/);
      expect(evictions).toEqual([]);

      // 18:00: the window is over. Without the PDB the simulation would take two nodes at once (two evictions); the
      // PDB allows one, so one node goes and the reason names the PDB that keeps the other.
      const evening = new Date("2026-12-03T18:00:00Z");
      const snapshot = await readCluster(api);
      const blind = decideNative({ groups: consConfig.groups, members: await members(), cluster: { ...snapshot, pdbs: [] }, memory: held.next.memory, now: evening, options: nativeOptions(native) });
      expect(blind.decisions.get("cons")!.remove).toHaveLength(2);
      const first = await scan(evening, held.next.memory);
      expect(first.result, JSON.stringify(first.result)).toMatchObject({ outcome: "applied", destroyed: 1, failed: [] });
      expect(first.result.decisions).toHaveLength(1);
      expect(first.result.decisions[0]!.remove).toHaveLength(1);
      expect(first.result.decisions[0]!.reason).toMatch(/kept: pod consolidate\/web-\S+ is covered by PDB web-pdb, 1 disruption allowed \(0 left once cons-[0-9a-f]{8} goes\)/);
      expect(first.result.kept.join("\n")).toMatch(/cons-[0-9a-f]{8} kept: pod consolidate\/web-\S+ is covered by PDB web-pdb, 1 disruption allowed \(0 left once/);
      expect(evictions).toHaveLength(1);
      await pdbAllows(1);

      // The evicted replica runs again elsewhere and the PDB allows one again: the next scan takes one more node.
      const second = await scan(new Date(evening.getTime() + 10_000), first.next.memory);
      expect(second.result, JSON.stringify(second.result)).toMatchObject({ outcome: "applied", destroyed: 1, failed: [] });
      await pdbAllows(1);
      // Two nodes at 80% are left: nothing more to consolidate.
      const third = await scan(new Date(evening.getTime() + 20_000), second.next.memory);
      expect(third.result).toMatchObject({ destroyed: 0, decisions: [] });
    } finally {
      sampling = false;
      await sampler;
    }

    expect(evictions.map((e) => e.status), "every eviction was accepted at once: none was refused by the PDB (429)").toEqual([201, 201]);
    expect(drained.every((d) => d.startsWith("continue: drained and deleted Node")), drained.join("\n")).toBe(true);
    expect(samples.length).toBeGreaterThan(3);
    expect(samples.every((x) => x.allowed >= 0 && x.healthy >= x.desired && x.desired === 3), JSON.stringify(samples.filter((x) => x.healthy < x.desired))).toBe(true);
    const left = (await members()).get("cons")!.map((m) => m.name).sort();
    expect(left).toHaveLength(2);
    const nodes = ((await cluster.request("GET", "/api/v1/nodes?labelSelector=pool%3Dcons")).body.items as { metadata: { name: string } }[]).map((n) => n.metadata.name).sort();
    expect(nodes).toEqual(left);
    expect(new Set((await running()).map((p) => p.spec.nodeName))).toEqual(new Set(left));
    expect(host.calls.filter((c) => c.startsWith("destroy"))).toHaveLength(2);
    await cluster.request("DELETE", `/apis/apps/v1/namespaces/${ns}/replicasets/web`);
  }, 240_000);
});
