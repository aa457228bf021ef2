// Native mode end to end: the built `premiscale serve` with kubernetes.mode: native (no cluster-autoscaler, no gRPC
// client) scales two node groups of real busybox VMs (two templates) on the real libvirtd from pods the real scheduler could not place,
// and scales them down when they go. As in test/node-groups.kubernetes.test.ts, no VM can run a kubelet here: the TEST
// STAND-IN FOR THE KUBELET (test/support/kubelet-agent.ts) registers each VM's Node with the bootstrap token premiscale
// put in its seed, and KWOK makes it Ready and runs the pods bound to it.
import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectDir } from "./support/cli.js";
import { freePort, installGuest, type InstalledGuest } from "./support/guests.js";
import { KWOK_NODE_LABEL, startKubeCluster, waitFor, type KubeCluster } from "./support/kube-cluster.js";
import { setUpLikeKubeadm, startKubeletAgent, type KubeletAgent } from "./support/kubelet-agent.js";
import { cleanUp, domainsOf, isReady, nodeGroupConfigText, nodesOf, oneNodePodDeployment, removeLeftovers, runningPodNames, startServe, stateCommits, stateInstances } from "./support/node-groups.js";
import { killLeftovers, type ServeProcess } from "./support/serve.js";

const RUN = randomBytes(2).toString("hex");
const G = `nat${RUN}`;
// A second template: 2 vCPUs, labelled and tainted for the pods that ask for it. Its name sorts before G's, so when
// every node is empty, scale-down tries it first and G's last node is the cluster's last one, kept.
const B = `nab${RUN}`;
const NS = "default";
const APP = `app${RUN}`;
const BIG_APP = `big${RUN}`;
const BIG_TAINT = { key: "dedicated", value: "big", effect: "NoSchedule" };
const WAIT = 240_000;

let cluster: KubeCluster;
let guest: InstalledGuest;
let dir: string;
let serve: ServeProcess;
let agent: KubeletAgent;

const abortIf = () => (serve?.child.exitCode !== null ? `premiscale serve exited:\n${serve.stderr().slice(-3000)}` : undefined);

beforeAll(async () => {
  guest = await installGuest("busybox");
  cluster = await startKubeCluster();
  await setUpLikeKubeadm(cluster);
  dir = await projectDir("");
  await writeFile(
    join(dir, "premiscale.yaml"),
    nodeGroupConfigText({
      guest,
      checkInPort: await freePort(),
      grpcPort: await freePort(),
      kubeconfig: cluster.kubeconfigPath,
      // Short waits so the test sees a scale-down: unneeded for 5 s, no delay after the scale-up.
      kubernetes: "mode: native\nnative:\n  scanIntervalSeconds: 2\n  scaleDown: { unneededSeconds: 5, delayAfterAddSeconds: 0 }",
      groups: [
        { name: G, max: 3, timeoutSeconds: 150 },
        { name: B, max: 2, vcpus: 2, timeoutSeconds: 150, labels: { size: "big" }, kubernetes: `taints: [${JSON.stringify(BIG_TAINT)}]` },
      ],
    }),
  );
  serve = await startServe(dir);
  agent = startKubeletAgent({ cluster, stateDir: join(dir, "state"), refuse: () => false });
}, 600_000);

afterAll(async () => {
  await cleanUp([
    ["stop premiscale serve", () => serve?.stop("SIGTERM")],
    ["keep premiscale serve's log", () => cluster && serve && writeFile(join(cluster.dir, "logs", "premiscale-serve.log"), serve.stderr())],
    ["kill what is left", () => killLeftovers()],
    ["stop the kubelet stand-in", () => agent?.stop()],
    ["remove leftover VMs", () => removeLeftovers([G, B])],
    ["stop the cluster", () => cluster?.stop()],
    ["remove the project", () => dir && rm(dir, { recursive: true, force: true })],
  ]);
}, 240_000);

const KWOK = { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value };
const deployment = (replicas: number) => oneNodePodDeployment({ name: APP, namespace: NS, replicas, nodeSelector: KWOK });
// 1500m: more than a node of G has; only B's nodes (2 vCPUs) can hold it, and only its pods tolerate B's taint.
const bigDeployment = (replicas: number) =>
  oneNodePodDeployment({ name: BIG_APP, namespace: NS, replicas, cpu: "1500m", nodeSelector: { ...KWOK, size: "big" }, tolerations: [{ ...BIG_TAINT, operator: "Equal" }] });
const runningPods = () => runningPodNames(cluster, NS, APP);
const scale = async (name: string, replicas: number) => {
  const r = await cluster.request("PATCH", `/apis/apps/v1/namespaces/${NS}/deployments/${name}`, { body: { spec: { replicas } } });
  expect(r.status, r.text).toBe(200);
};

describe("native mode with real busybox VMs", () => {
  it(
    "pods the scheduler cannot place become exactly the right VMs in two groups with different templates, which join, and the pods run on them",
    async () => {
      const t = performance.now();
      for (const body of [deployment(2), bigDeployment(1)]) {
        const r = await cluster.request("POST", `/apis/apps/v1/namespaces/${NS}/deployments`, { body });
        expect(r.status, r.text).toBe(201);
      }
      await waitFor(async () => (await runningPods()).length === 2 && (await runningPodNames(cluster, NS, BIG_APP)).length === 1, { timeoutMs: WAIT, intervalMs: 1000, what: "3 pods Running on new nodes", abortIf });
      console.info(`Deployments created → 3 pods Running on 3 new VMs in two groups: ${((performance.now() - t) / 1000).toFixed(1)} s`);
      expect((await nodesOf(cluster, G)).filter(isReady)).toHaveLength(2);
      expect((await nodesOf(cluster, B)).filter(isReady)).toHaveLength(1);
      // The apply records them running once it saw their Nodes Ready (its poll may come after the pods run).
      await waitFor(async () => [...(await stateInstances(dir, G)), ...(await stateInstances(dir, B))].every((i) => i.status === "running"), { timeoutMs: 30_000, what: "the VMs recorded running", abortIf });
      expect(await stateInstances(dir, G)).toHaveLength(2);
      expect(await stateInstances(dir, B)).toHaveLength(1);
      expect(await domainsOf(B)).toHaveLength(1);
      // One decision per group, its reason in the commit (made when the apply ends): the expander's words are "least
      // waste" when both groups were options in the same round (each for its own pods), else "only … can take them".
      const commits = await waitFor(async () => {
        const c = await stateCommits(dir);
        return c.some((x) => x.includes(`${G}: 0 →`)) && c.some((x) => x.includes(`${B}: 0 →`)) ? c : undefined;
      }, { timeoutMs: 30_000, what: "the apply's commit", abortIf });
      expect(commits.filter((c) => c.includes(`${G}: 0 →`))).toHaveLength(1);
      expect(commits.join("\n")).toMatch(new RegExp(`${G}: 0 → 2 \\(2 pods unschedulable( \\([^)]*\\))?: \\+2 on ${G}, (least waste \\d+%|only ${G} can take them) \\[default/${APP}-`));
      expect(commits.join("\n")).toMatch(new RegExp(`${B}: 0 → 1 \\(1 pod unschedulable( \\([^)]*\\))?: \\+1 on ${B}, (least waste \\d+%|only ${B} can take them) \\[default/${BIG_APP}-`));
      const scan = serve.logs().find((l) => l.event === "native_scan_done" && l.outcome === "applied");
      expect(scan).toBeDefined();
    },
    WAIT + 30_000,
  );

  it(
    "when the pods go, empty nodes are removed (VMs destroyed, Nodes deleted), and the cluster's last node stays",
    async () => {
      await scale(APP, 0);
      await scale(BIG_APP, 0);
      await waitFor(async () => (await stateInstances(dir, G)).length === 1 && (await stateInstances(dir, B)).length === 0, { timeoutMs: WAIT, intervalMs: 1000, what: `${G} down to 1 VM and ${B} to none`, abortIf });
      await waitFor(async () => (await nodesOf(cluster, G)).length === 1 && (await domainsOf(G)).length === 1 && (await nodesOf(cluster, B)).length === 0 && (await domainsOf(B)).length === 0, { timeoutMs: 60_000, intervalMs: 1000, what: "1 Node and 1 domain left", abortIf });
      const commits = await stateCommits(dir);
      expect(commits.join("\n")).toMatch(new RegExp(`${G}: 2 → 1 \\(1 node under 50% for 5s: -1 on ${G}: ${G}-[0-9a-f]{8} 0% \\(empty\\)\\)`));
      expect(commits.join("\n")).toMatch(new RegExp(`${B}: 1 → 0 \\(1 node under 50% for 5s: -1 on ${B}: ${B}-[0-9a-f]{8} 0% \\(empty\\)\\)`));
      // The last one is kept: the cluster's last Ready node (and a scan later, still there).
      const done = serve.logs().filter((l) => l.event === "native_scan_done").length;
      await waitFor(() => serve.logs().filter((l) => l.event === "native_scan_done").length >= done + 3, { timeoutMs: 60_000, what: "three more scans", abortIf });
      expect(await stateInstances(dir, G)).toHaveLength(1);
    },
    WAIT + 90_000,
  );
});
