// Native mode end to end: the built `premiscale serve` with kubernetes.mode: native (no cluster-autoscaler, no gRPC
// client) scales a node group of real busybox VMs on the real libvirtd from pods the real scheduler could not place,
// and scales it down when they go. As in test/node-groups.kubernetes.test.ts, no VM can run a kubelet here: the TEST
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
const NS = "default";
const APP = `app${RUN}`;
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
      groups: [{ name: G, max: 3, timeoutSeconds: 150 }],
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
    ["remove leftover VMs", () => removeLeftovers([G])],
    ["stop the cluster", () => cluster?.stop()],
    ["remove the project", () => dir && rm(dir, { recursive: true, force: true })],
  ]);
}, 240_000);

const deployment = (replicas: number) => oneNodePodDeployment({ name: APP, namespace: NS, replicas, nodeSelector: { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value } });
const runningPods = () => runningPodNames(cluster, NS, APP);

describe("native mode with real busybox VMs", () => {
  it(
    "two pods the scheduler cannot place become two VMs that join, and the pods run on them",
    async () => {
      const t = performance.now();
      const r = await cluster.request("POST", `/apis/apps/v1/namespaces/${NS}/deployments`, { body: deployment(2) });
      expect(r.status, r.text).toBe(201);
      await waitFor(async () => (await runningPods()).length === 2, { timeoutMs: WAIT, intervalMs: 1000, what: "2 pods Running on new nodes", abortIf });
      console.info(`Deployment created → 2 pods Running on 2 new VMs: ${((performance.now() - t) / 1000).toFixed(1)} s`);
      const nodes = await nodesOf(cluster, G);
      expect(nodes.filter(isReady)).toHaveLength(2);
      // The apply records them running once it saw their Nodes Ready (its poll may come after the pods run).
      await waitFor(async () => (await stateInstances(dir, G)).every((i) => i.status === "running"), { timeoutMs: 30_000, what: "both VMs recorded running", abortIf });
      expect(await stateInstances(dir, G)).toHaveLength(2);
      // One decision for both pods, its reason in the commit (made when the apply ends).
      const commits = await waitFor(async () => {
        const c = await stateCommits(dir);
        return c.some((x) => x.includes(`${G}: 0 →`)) ? c : undefined;
      }, { timeoutMs: 30_000, what: "the apply's commit", abortIf });
      expect(commits.filter((c) => c.includes(`${G}: 0 →`))).toHaveLength(1);
      expect(commits.join("\n")).toMatch(new RegExp(`${G}: 0 → 2 \\(2 pods unschedulable( \\([^)]*\\))?: \\+2 on ${G}, only ${G} can take them \\[default/${APP}-`));
      const scan = serve.logs().find((l) => l.event === "native_scan_done" && l.outcome === "applied");
      expect(scan).toBeDefined();
    },
    WAIT + 30_000,
  );

  it(
    "when the pods go, an empty node is removed (VM destroyed, Node deleted), and the cluster's last node stays",
    async () => {
      const r = await cluster.request("PATCH", `/apis/apps/v1/namespaces/${NS}/deployments/${APP}`, { body: { spec: { replicas: 0 } } });
      expect(r.status, r.text).toBe(200);
      await waitFor(async () => (await stateInstances(dir, G)).length === 1, { timeoutMs: WAIT, intervalMs: 1000, what: `${G} down to 1 VM`, abortIf });
      await waitFor(async () => (await nodesOf(cluster, G)).length === 1 && (await domainsOf(G)).length === 1, { timeoutMs: 60_000, intervalMs: 1000, what: "1 Node and 1 domain left", abortIf });
      const commits = await stateCommits(dir);
      expect(commits.join("\n")).toMatch(new RegExp(`${G}: 2 → 1 \\(1 node under 50% for 5s: -1 on ${G}: ${G}-[0-9a-f]{8} 0% \\(empty\\)\\)`));
      // The last one is kept: the cluster's last Ready node (and a scan later, still there).
      const done = serve.logs().filter((l) => l.event === "native_scan_done").length;
      await waitFor(() => serve.logs().filter((l) => l.event === "native_scan_done").length >= done + 3, { timeoutMs: 60_000, what: "three more scans", abortIf });
      expect(await stateInstances(dir, G)).toHaveLength(1);
    },
    WAIT + 90_000,
  );
});
