// premiscale as the cloud provider of the REAL cluster-autoscaler (built by test/kubernetes/build-components.sh from
// a kubernetes/autoscaler checkout named by PREMISCALE_AUTOSCALER_SRC; the Go module proxy does not serve it). When
// the binary is missing (CI), every test here is skipped with a message saying so; the same server is then covered
// by test/node-groups.kubernetes.test.ts with premiscale's own client, which is not cluster-autoscaler.
//
// Real parts: the control plane (kube-apiserver, -controller-manager, -scheduler, etcd), cluster-autoscaler 1.36
// calling premiscale serve's externalgrpc listener over mutual TLS, busybox VMs on the real libvirtd, git state.
// No VM can run a kubelet under plain QEMU here: a TEST STAND-IN FOR THE KUBELET (test/support/kubelet-agent.ts)
// registers each VM's Node when the VM checks in, with the bootstrap token premiscale put in that VM's seed, and
// KWOK (nodes labelled type=kwok) makes the Node Ready and runs its pods.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectDir } from "./support/cli.js";
import { freePort, installGuest, type InstalledGuest } from "./support/guests.js";
import { kubeBinDir, startKubeCluster, waitFor, type ClusterAutoscalerProcess, type KubeCluster } from "./support/kube-cluster.js";
import { makeKubePki, type KubePki } from "./support/kube-pki.js";
import { setUpLikeKubeadm, startKubeletAgent, type KubeletAgent } from "./support/kubelet-agent.js";
import { leftovers } from "./support/libvirt.js";
import { domainsOf, isReady, nodeGroupConfigText, nodesOf, cleanUp, oneNodePodDeployment, removeLeftovers, startServe, stateCommits, stateInstances, tokenSecretsOf } from "./support/node-groups.js";
import { killLeftovers, type ServeProcess } from "./support/serve.js";

const CA_BIN = join(kubeBinDir(), "cluster-autoscaler");
const HAVE_CA = existsSync(CA_BIN);
if (!HAVE_CA) {
  console.warn(
    `\n*** SKIPPED: the real cluster-autoscaler is not built (${CA_BIN} is missing). The Go module proxy does not serve ` +
      "k8s.io/autoscaler/cluster-autoscaler; build it with PREMISCALE_AUTOSCALER_SRC=<kubernetes/autoscaler git repository> " +
      "bash test/kubernetes/build-components.sh. test/node-groups.kubernetes.test.ts still covers the externalgrpc server " +
      "with premiscale's own client (not cluster-autoscaler). ***\n",
  );
}

const RUN = randomBytes(2).toString("hex");
const G = `ca${RUN}`;
const BIG = `cabig${RUN}`;
const NS = "default";
const MAX_PROVISION = 60;
const WAIT = 240_000;

let cluster: KubeCluster;
let guest: InstalledGuest;
let pki: KubePki;
let dir: string;
let serve: ServeProcess;
let agent: KubeletAgent;
let ca: ClusterAutoscalerProcess;
let refuse = false;

/** A Deployment of `replicas` pods that each need most of one node of `group` (1 vCPU): one pod per node. */
const deployment = (name: string, group: string, replicas: number) => oneNodePodDeployment({ name, namespace: NS, replicas, nodeSelector: { "premiscale.io/group": group } });

async function scale(name: string, replicas: number) {
  const r = await cluster.request("PATCH", `/apis/apps/v1/namespaces/${NS}/deployments/${name}`, { body: { spec: { replicas } } });
  expect(r.status, r.text).toBe(200);
}

type Pod = { metadata: { name: string; creationTimestamp: string }; spec: { nodeName?: string }; status: { phase: string } };
async function pods(app: string): Promise<Pod[]> {
  return (await cluster.request("GET", `/api/v1/namespaces/${NS}/pods?labelSelector=app%3D${app}`)).body.items;
}
const runningOn = async (app: string) => (await pods(app)).filter((p) => p.status.phase === "Running" && p.spec.nodeName).map((p) => p.spec.nodeName!);

const alive = () => (ca && !ca.logs().includes("Cleaned up, exiting") && serve.child.exitCode === null ? undefined : `cluster-autoscaler or premiscale serve stopped:\n${serve.stderr().slice(-2000)}`);
const intents = (op?: string) => serve.logs().filter((l) => l.event === "intent_recorded" && (!op || l.op === op));

/** n pods of `app` Running on n distinct Ready nodes of the group, and exactly n VMs. */
async function runningPods(app: string, n: number) {
  return waitFor(
    async () => {
      const [on, nodes, doms] = await Promise.all([runningOn(app), nodesOf(cluster, G), domainsOf(G)]);
      return on.length === n && new Set(on).size === n && nodes.filter(isReady).length === n && doms.length === n ? { on, nodes } : undefined;
    },
    { timeoutMs: WAIT, intervalMs: 1000, what: `${n} pods of ${app} running on ${n} Ready nodes of ${G}`, abortIf: alive },
  );
}

beforeAll(async () => {
  if (!HAVE_CA) return;
  guest = await installGuest("busybox");
  cluster = await startKubeCluster();
  await setUpLikeKubeadm(cluster);
  dir = await projectDir("");
  mkdirSync(join(dir, "tls"));
  // The server certificate names 127.0.0.1: cluster-autoscaler checks it against its cloud-config address.
  pki = await makeKubePki(join(dir, "tls"), [{ name: "cluster-autoscaler", user: "cluster-autoscaler" }]);
  const grpcPort = await freePort();
  await writeFile(
    join(dir, "premiscale.yaml"),
    nodeGroupConfigText({
      guest,
      checkInPort: await freePort(),
      grpcPort,
      kubeconfig: cluster.kubeconfigPath,
      tls: { cert: pki.apiserver.certPath, key: pki.apiserver.keyPath, clientCa: pki.ca.certPath, allowedClients: ["cluster-autoscaler"] },
      groups: [
        { name: G, max: 4, timeoutSeconds: MAX_PROVISION },
        { name: BIG, max: 2, memoryMiB: 4_000_000 },
      ],
    }),
  );
  serve = await startServe(dir);
  agent = startKubeletAgent({ cluster, stateDir: join(dir, "state"), refuse: () => refuse });
  const cloudConfig = join(dir, "cloud-config.yaml");
  await writeFile(cloudConfig, `address: 127.0.0.1:${grpcPort}\ncert: ${pki.clients["cluster-autoscaler"]!.certPath}\nkey: ${pki.clients["cluster-autoscaler"]!.keyPath}\ncacert: ${pki.ca.certPath}\ngrpc_timeout: 5s\n`);
  ca = await cluster.startClusterAutoscaler({
    cloudConfigPath: cloudConfig,
    flags: [
      "--scan-interval=2s",
      "--scale-down-unneeded-time=10s",
      "--scale-down-delay-after-add=5s",
      "--scale-down-delay-after-failure=5s",
      "--initial-node-group-backoff-duration=30s",
      "--max-node-group-backoff-duration=60s",
      "--max-graceful-termination-sec=5",
      "--v=4",
    ],
  });
  await waitFor(() => ca.logs().includes("Performing gRPC call NodeGroups") || /Refresh|NodeGroups/.test(serve.logs().map((l) => String(l.method)).join(" ")), { timeoutMs: 60_000, what: "cluster-autoscaler calling premiscale" });
}, 600_000);

afterAll(async () => {
  if (!HAVE_CA) return;
  await cleanUp([
    ["stop cluster-autoscaler", () => ca?.stop()],
    ["stop premiscale serve", () => serve?.stop("SIGTERM")],
    // Beside the components' logs, for PREMISCALE_KEEP_KUBE_DIR=1 runs.
    ["keep premiscale serve's log", () => cluster && serve && writeFile(join(cluster.dir, "logs", "premiscale-serve.log"), serve.stderr())],
    ["kill what is left", () => killLeftovers()],
    ["stop the kubelet stand-in", () => agent?.stop()],
    ["remove leftover VMs", () => removeLeftovers([G, BIG])],
    ["stop the cluster", () => cluster?.stop()],
    ["remove the project", () => dir && rm(dir, { recursive: true, force: true })],
  ]);
}, 240_000);

describe.skipIf(!HAVE_CA)("premiscale as the real cluster-autoscaler's externalgrpc cloud provider", () => {
  it(
    "scales a node group up from zero for pods that fit nowhere: cluster-autoscaler reads the template node, calls IncreaseSize, VMs boot and join, the pods run",
    async () => {
      expect((await nodesOf(cluster, G)).length).toBe(0);
      const created = Date.now();
      expect((await cluster.request("POST", `/apis/apps/v1/namespaces/${NS}/deployments`, { body: deployment("web", G, 2) })).status).toBe(201);
      // The scheduler finds no node for them; cluster-autoscaler simulates a new node from TemplateNodeInfo.
      const inc = await waitFor(() => intents("IncreaseSize")[0], { timeoutMs: 60_000, what: "cluster-autoscaler's IncreaseSize", abortIf: alive });
      const started = await waitFor(() => serve.logs().find((l) => l.event === "apply_start" && l.action === "create"), { timeoutMs: 30_000, what: "a VM create started" });
      const { nodes } = await runningPods("web", 2);
      const t = (l: Record<string, unknown>) => Date.parse(String(l.time));
      console.info(
        `pods created → IncreaseSize ${((t(inc) - created) / 1000).toFixed(1)} s (cluster-autoscaler) → create started ${t(started) - t(inc)} ms (premiscale) → 2 pods running ${((Date.now() - created) / 1000).toFixed(1)} s`,
      );
      expect(t(started) - t(inc)).toBeLessThan(1000); // premiscale's share of the scale-up SLO
      expect(ca.logs()).toMatch(new RegExp(`Scale-up: setting group ${G} size to 2`));
      expect(serve.logs().some((l) => l.method === "NodeGroupTemplateNodeInfo" && l.code === "OK")).toBe(true);
      for (const n of nodes) expect(n.spec!.providerID).toMatch(new RegExp(`^premiscale://${G}/[0-9a-f-]{36}$`));
      expect((await stateCommits(dir)).some((c) => c.includes(`${G}: 0 → 2 (cluster-autoscaler: IncreaseSize +2)`) || c.includes("cluster-autoscaler: IncreaseSize +1"))).toBe(true);
    },
    WAIT + 60_000,
  );

  it(
    "scales down: the node left empty is found unneeded, cluster-autoscaler calls DeleteNodes, and premiscale destroys exactly that VM and deletes its Node",
    async () => {
      const logFrom = ca.logs().length;
      const deletesBefore = intents("DeleteNodes").length;
      await scale("web", 1);
      const victim = await waitFor(() => /Scale-down: removing empty node "([^"]+)"/.exec(ca.logs().slice(logFrom))?.[1], { timeoutMs: WAIT, what: "cluster-autoscaler removing an empty node", abortIf: alive });
      const del = await waitFor(() => intents("DeleteNodes")[deletesBefore], { timeoutMs: 30_000, what: "DeleteNodes recorded" });
      expect(del.nodes).toEqual([victim]);
      await waitFor(async () => (await domainsOf(G)).length === 1 && (await nodesOf(cluster, G)).length === 1, { timeoutMs: WAIT, what: "one VM and one Node left" });
      expect(await leftovers(victim)).toEqual([]);
      const [left] = await domainsOf(G);
      expect(left).not.toBe(victim);
      expect(await runningOn("web")).toEqual([left]);
      expect((await stateCommits(dir))[0]).toContain(`cluster-autoscaler: DeleteNodes ${victim}`);
    },
    WAIT + 60_000,
  );

  it(
    "premiscale killed in the middle of a scale-up resumes from state after a restart, and cluster-autoscaler's pods run",
    async () => {
      const before = serve.logs().filter((l) => l.event === "apply_start").length;
      await scale("web", 2);
      await waitFor(() => serve.logs().filter((l) => l.event === "apply_start").length > before, { timeoutMs: 60_000, what: "a create started" });
      // Killed once state records the create (before its first host call): the restart must clean up after it.
      await waitFor(async () => (await stateInstances(dir, G)).some((i) => i.status === "creating"), { timeoutMs: 30_000, intervalMs: 50, what: "a create recorded in state" });
      await serve.stop("SIGKILL");
      serve = await startServe(dir);
      // The restarted premiscale removes what the killed one half-made (a VM whose create was cut short may still
      // have booted and joined meanwhile: its Node goes with it, and cluster-autoscaler evens the group out again).
      await runningPods("web", 2);
      await waitFor(async () => ((await leftovers(`${G}-`)).length === 2 * 3 && (await runningOn("web")).length === 2) || undefined, {
        timeoutMs: WAIT,
        what: "2 VMs (each a domain, a disk and a seed) and 2 running pods",
        abortIf: alive,
      });
      expect(serve.logs().some((l) => l.event === "apply_start" && l.action === "delete")).toBe(true); // the half-made VM went
    },
    WAIT + 60_000,
  );

  it(
    "a VM that never joins is given up after the max provision time and reported; cluster-autoscaler backs off and deletes it, and a replacement joins after the back-off",
    async () => {
      refuse = true;
      const failedBefore = serve.logs().filter((l) => l.event === "failed_instance_reported").length;
      await scale("web", 3);
      const reported = await waitFor(() => serve.logs().filter((l) => l.event === "failed_instance_reported")[failedBefore], { timeoutMs: WAIT, what: "the VM that never joined reported" });
      expect(reported).toMatchObject({ group: G, errorClass: "Other", errorCode: "premiscale.NodeNotReady" });
      // cluster-autoscaler sees the failed create, backs the group off and deletes the failed instance.
      await waitFor(() => new RegExp(`Disabling scale-up for node group ${G} until`).test(ca.logs()), { timeoutMs: 60_000, what: "cluster-autoscaler's back-off", abortIf: alive });
      await waitFor(() => intents("DeleteNodes").some((l) => (l.nodes as string[]).includes(`premiscale://${G}/${reported.uuid}`)), { timeoutMs: 60_000, what: "DeleteNodes of the failed instance" });
      // The kubelet works again; after the back-off cluster-autoscaler scales up again and the new VM joins.
      refuse = false;
      await runningPods("web", 3);
      expect(agent.refused.size).toBe(1);
    },
    WAIT * 2,
  );

  it(
    "a node group no host has room for reports OutOfResources; cluster-autoscaler backs it off, and no VM is made",
    async () => {
      expect((await cluster.request("POST", `/apis/apps/v1/namespaces/${NS}/deployments`, { body: deployment("big", BIG, 1) })).status).toBe(201);
      const r = await waitFor(() => serve.logs().find((l) => l.event === "failed_instance_reported" && l.group === BIG), { timeoutMs: WAIT, what: `${BIG}: OutOfResources reported`, abortIf: alive });
      expect(r).toMatchObject({ errorClass: "OutOfResources", errorCode: "premiscale.NoRoom" });
      await waitFor(() => new RegExp(`Disabling scale-up for node group ${BIG} until .*errorClass=OutOfResource`).test(ca.logs()), { timeoutMs: 60_000, what: "cluster-autoscaler backing the group off for OutOfResources", abortIf: alive });
      expect(await leftovers(`${BIG}-`)).toEqual([]);
      expect((await cluster.request("DELETE", `/apis/apps/v1/namespaces/${NS}/deployments/big`)).status).toBe(200);
    },
    WAIT,
  );

  it(
    "scales to zero when the pods go: every VM destroyed, every Node deleted, no token left, nothing leaked",
    async () => {
      expect((await cluster.request("DELETE", `/apis/apps/v1/namespaces/${NS}/deployments/web`)).status).toBe(200);
      await waitFor(async () => (await leftovers(`${G}-`)).length === 0 && (await nodesOf(cluster, G)).length === 0, { timeoutMs: WAIT, what: `every VM and Node of ${G} gone`, abortIf: alive });
      expect(await tokenSecretsOf(cluster, G)).toEqual([]);
      expect(await leftovers(`${BIG}-`)).toEqual([]);
      const journal = await readFile(join(dir, "state", ".premiscale", "journal.jsonl.last"), "utf8").catch(() => "");
      expect(journal).not.toMatch(/[a-z0-9]{6}\.[a-z0-9]{16}/); // no bootstrap token
    },
    WAIT + 60_000,
  );
});
