// premiscale as cluster-autoscaler's externalgrpc cloud provider (issue 11), measured with premiscale's OWN gRPC
// client making cluster-autoscaler's calls (not cluster-autoscaler; its figures are in test/README.md).
//
// 1. RPC latency over loopback, p50 and p99: NodeGroupNodes of a group with 1,000 instances (state unchanged, and
//    state just rewritten so it is read again), IncreaseSize and DecreaseTargetSize (each a synced write of the
//    intent), against an empty call (Refresh) on the same connection and against cluster-autoscaler's 5 s timeout.
// 2. premiscale's share of the scale-up SLO: IncreaseSize sent → the VM's create started (its first host step), through
//    the real loop (debounce, state lock, plan, the join hook minting a bootstrap token on the test cluster's real API
//    server when it is built, else no hooks, said so) on libvirt's test driver; against cluster-autoscaler's SLO of
//    20 s from an unschedulable pod to the scale-up request.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { CloudProvider } from "../kubernetes/cloud-provider.js";
import { startExternalGrpcServer } from "../kubernetes/grpc-server.js";
import { IntentStore } from "../kubernetes/intent-store.js";
import { StateInstanceView } from "../kubernetes/state-view.js";
import { externalGrpcClient } from "../kubernetes/testing/externalgrpc-client.js";
import { kubeTestConfig } from "../kubernetes/testing/config.js";
import { parseConfig } from "../config/load.js";
import { configFragments } from "../providers/index.js";
import { startAutoscalerProvider } from "../pipeline/autoscaler-provider.js";
import { serializeGroup } from "../state/git-state-store.js";
import { kubeBinDir, startKubeCluster } from "../test/support/kube-cluster.js";
import { ensureBlankBase, leftovers } from "../test/support/libvirt.js";
import { ms } from "./common.js";

const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 1000);
const CALLS = Number(process.env.BENCH_CALLS ?? 400);
const SCALE_UPS = Number(process.env.BENCH_SCALE_UPS ?? 5);
const CA_TIMEOUT_MS = 5000;
const CA_SLO_MS = 20_000;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const line = (what: string, xs: number[], base: number[]) =>
  console.log(
    `${what}: p50 ${ms(pct(xs, 50))}, p99 ${ms(pct(xs, 99))} vs an empty call p50 ${ms(pct(base, 50))}, p99 ${ms(pct(base, 99))} = ${(pct(xs, 50) / pct(base, 50)).toFixed(2)}× / ${(pct(xs, 99) / pct(base, 99)).toFixed(2)}×; p99 is ${(pct(xs, 99) / CA_TIMEOUT_MS).toFixed(4)}× of cluster-autoscaler's 5 s timeout`,
  );

// ---- 1. RPC latency ----
const root = await mkdtemp(join(tmpdir(), "premiscale-bench-grpc-"));
const stateDir = join(root, "state");
await mkdir(join(stateDir, "groups"), { recursive: true });
const instances = Array.from({ length: INSTANCES }, () => {
  const uuid = randomUUID();
  return { name: `workers-${uuid.slice(0, 8)}`, uuid, host: "h1", created: "2026-12-01T00:00:00.000Z", status: "running" as const, vcpus: 2, memoryMiB: 2048 };
});
let serial = 1;
const writeRoot = () => writeFile(join(stateDir, "state.json"), JSON.stringify({ version: 1, lineage: "11111111-1111-4111-8111-111111111111", serial: serial++ }) + "\n");
await writeFile(join(stateDir, "groups", "workers.json"), serializeGroup({ name: "workers", instances }));
await writeRoot();
const config = kubeTestConfig({ max: 100_000 });
const store = await IntentStore.open(join(stateDir, ".premiscale"));
const provider = new CloudProvider({ config, store, view: new StateInstanceView(stateDir) });
const server = await startExternalGrpcServer({ provider, host: "127.0.0.1", port: 0, tls: null });
const client = externalGrpcClient(server.address);
const time = async (n: number, fn: () => Promise<unknown>) => {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
};
await time(50, () => client.call("NodeGroupNodes", { id: "workers" })); // warm-up
console.log(`# externalgrpc over loopback, ${CALLS} calls each, one node group of ${INSTANCES} instances (premiscale's own client)`);
const empty = await time(CALLS, () => client.call("Refresh"));
const nodesWarm = await time(CALLS, async () => {
  const r = await client.call("NodeGroupNodes", { id: "workers" });
  if (r.instances.length !== INSTANCES) throw new Error(`NodeGroupNodes listed ${r.instances.length}`);
});
line(`NodeGroupNodes (${INSTANCES} instances, state unchanged)`, nodesWarm, empty);
const nodesCold = await time(Math.min(CALLS, 100), async () => {
  await writeRoot(); // as every apply step does: the next call reads state again
  await client.call("NodeGroupNodes", { id: "workers" });
});
line(`NodeGroupNodes (${INSTANCES} instances, state just rewritten)`, nodesCold, empty);
const increase = await time(CALLS / 2, () => client.call("NodeGroupIncreaseSize", { id: "workers", delta: 1 }));
line("IncreaseSize (intent written and synced)", increase, empty);
const decrease = await time(CALLS / 2, () => client.call("NodeGroupDecreaseTargetSize", { id: "workers", delta: -1 }));
line("DecreaseTargetSize (intent written and synced)", decrease, empty);
client.close();
await server.close();
await rm(root, { recursive: true, force: true });

// ---- 2. premiscale's share of the scale-up ----
// The real local libvirtd (a VM on an empty base image: it sits in firmware), as apply-20.bench.ts uses it.
const GROUP = `benchca${randomUUID().slice(0, 4)}`;
const haveCluster = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"].every((c) => existsSync(join(kubeBinDir(), c)));
const cluster = haveCluster ? await startKubeCluster() : null;
const dir = await mkdtemp(join(tmpdir(), "premiscale-bench-share-"));
const base = await ensureBlankBase();
const grpcPort = 20000 + Math.floor(Math.random() * 20000);
const text = `version: v1alpha1
state: { path: ./state }
metrics: { store: { type: prometheus, url: "http://127.0.0.1:9" } }
kubernetes:
  kubeconfig: ${JSON.stringify(cluster?.kubeconfigPath ?? "/nonexistent")}
  externalGrpc: { listen: 127.0.0.1:${grpcPort} }
  debounceMs: 200
hosts:
  - { name: local, kind: libvirt, uri: "qemu:///system", pool: default, accelerator: qemu, cpuOvercommit: 16 }
groups:
  - name: ${GROUP}
    max: 20
    hosts: [local]
    readiness: { checkIn: false, timeoutSeconds: 5 }
    template: { vcpus: 1, memoryMiB: 64, disk: { baseImage: ${base}, sizeGiB: 1 } }
    kubernetes: { labels: { type: kwok } }
`;
await writeFile(join(dir, "premiscale.yaml"), text);
const cfg = parseConfig(text, join(dir, "premiscale.yaml"), {}, () => "", { kinds: configFragments });
const firstStep = new Map<string, number>();
const running = await startAutoscalerProvider(cfg, {
  env: {},
  ...(cluster ? {} : { hooks: () => [] }),
  onEvent: (e) => {
    if (process.env.BENCH_DEBUG) console.error(JSON.stringify(e).slice(0, 400));
    if (e.type === "apply" && e.event.type === "apply_progress" && ["disk", "seed", "define", "start"].includes(String(e.event.step)) && !firstStep.has(e.event.address)) firstStep.set(e.event.address, performance.now());
  },
});
const c2 = externalGrpcClient(running.address);
const idle = async () => {
  await new Promise((r) => setTimeout(r, 300));
  while (running.loop.busy) await new Promise((r) => setTimeout(r, 20));
};
const shares: number[] = [];
await idle(); // the loop's start pass
for (let i = 0; i < SCALE_UPS; i++) {
  const seen = firstStep.size;
  const t = performance.now();
  await c2.call("NodeGroupIncreaseSize", { id: GROUP, delta: 1 });
  while (firstStep.size === seen) await new Promise((r) => setTimeout(r, 5));
  shares.push([...firstStep.values()].at(-1)! - t);
  await idle(); // each scale-up starts from an idle loop, as one from cluster-autoscaler usually does
}
// Clean up as cluster-autoscaler would: DeleteNodes of every instance (VMs, and the failed ones the hooks gave up).
const left = (await c2.call("NodeGroupNodes", { id: GROUP })).instances ?? [];
if (left.length > 0) await c2.call("NodeGroupDeleteNodes", { id: GROUP, nodes: left.map((x: { id: string }) => ({ providerID: x.id, name: x.id })) });
await idle();
c2.close();
await running.stop();
await cluster?.stop();
await rm(dir, { recursive: true, force: true });
const stray = await leftovers(`${GROUP}-`);
if (stray.length > 0) console.error(`left behind: ${stray.join(", ")}`);
console.log(
  `# IncreaseSize → the VM's first host step through the loop (debounce 200 ms, state lock, observe the real libvirtd, plan, ${cluster ? "a bootstrap token minted on the real API server" : "NO Kubernetes hooks: the test cluster is not built"}), ${SCALE_UPS} scale-ups`,
);
console.log(
  `premiscale's share of a scale-up: median ${ms(pct(shares, 50))}, max ${ms(Math.max(...shares))} vs cluster-autoscaler's SLO ${ms(CA_SLO_MS)} (unschedulable pod → scale-up request) = ${(pct(shares, 50) / CA_SLO_MS).toFixed(3)}×`,
);
