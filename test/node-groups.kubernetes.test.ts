// Kubernetes node groups end to end WITHOUT cluster-autoscaler: premiscale's OWN gRPC client
// (kubernetes/testing/externalgrpc-client.ts) makes the calls cluster-autoscaler makes, on the externalgrpc listener
// of the built `premiscale serve`. This is what CI runs (it has no cluster-autoscaler binary); it is NOT the real
// cluster-autoscaler, which drives the same server in test/cluster-autoscaler.kubernetes.test.ts.
//
// Everything else is real: the control plane of test/support/kube-cluster.ts, busybox VMs on the real libvirtd under
// plain QEMU, the check-in server, git state. No VM can run a kubelet here, so a TEST STAND-IN FOR THE KUBELET
// (test/support/kubelet-agent.ts) registers each VM's Node when the VM checks in, using the bootstrap token premiscale
// minted for that VM and put in its seed (kubeadm's discovery and the kubelet's TLS bootstrap, from the host); KWOK
// then makes the Node Ready, as it would any node labelled type=kwok.
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { externalGrpcClient, type CallError, type ExternalGrpcClient } from "../kubernetes/testing/externalgrpc-client.js";
import { projectDir } from "./support/cli.js";
import { freePort, installGuest, type InstalledGuest } from "./support/guests.js";
import { startKubeCluster, waitFor, type KubeCluster } from "./support/kube-cluster.js";
import { KUBEADM_TOKEN_GROUP, setUpLikeKubeadm, startKubeletAgent, whoIs, type KubeletAgent } from "./support/kubelet-agent.js";
import { leftovers } from "./support/libvirt.js";
import { domainsOf, isReady, nodeGroupConfigText, nodesOf, cleanUp, removeLeftovers, startServe, stateCommits, stateHistory, stateInstances, tokenSecretsOf } from "./support/node-groups.js";
import { killLeftovers, type ServeProcess } from "./support/serve.js";

const RUN = randomBytes(2).toString("hex");
/** The node group the tests scale, and one whose VMs fit on no host. */
const G = `ng${RUN}`;
const BIG = `ngbig${RUN}`;
const MAX_PROVISION = 75;
const WAIT = 180_000;

let cluster: KubeCluster;
let guest: InstalledGuest;
let dir: string;
let serve: ServeProcess;
let agent: KubeletAgent;
let client: ExternalGrpcClient;
let refuse = false;
const tokensSeen = new Set<string>();

type Instance = { id: string; status: { instanceState?: number; errorInfo?: { errorCode: string; errorMessage: string; instanceErrorClass: number } } };
const instances = async (id = G): Promise<Instance[]> => (await client.call("NodeGroupNodes", { id })).instances ?? [];
const target = async (id = G): Promise<number> => (await client.call("NodeGroupTargetSize", { id })).targetSize ?? 0;
const running = async () => (await instances()).filter((i) => i.status.instanceState === 1);

async function refused(p: Promise<unknown>): Promise<CallError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, "the call should have been refused").toBeDefined();
  return e as CallError;
}

/** Waits until the group has `n` running VMs whose Nodes are Ready (and no other instance). */
async function settled(n: number) {
  return waitFor(
    async () => {
      const [inst, nodes, doms] = await Promise.all([instances(), nodesOf(cluster, G), domainsOf(G)]);
      const ready = nodes.filter(isReady);
      return inst.length === n && inst.every((i) => i.status.instanceState === 1) && ready.length === n && nodes.length === n && doms.length === n ? { inst, nodes } : undefined;
    },
    { timeoutMs: WAIT, intervalMs: 1000, what: `${n} running VMs of ${G} with Ready Nodes`, abortIf: () => (serve.child.exitCode !== null ? `premiscale serve exited:\n${serve.stderr().slice(-3000)}` : undefined) },
  );
}

async function writeConfig(grpcPort: number, checkInPort: number) {
  await writeFile(
    join(dir, "premiscale.yaml"),
    nodeGroupConfigText({
      guest,
      checkInPort,
      grpcPort,
      kubeconfig: cluster.kubeconfigPath,
      groups: [
        { name: G, max: 3, timeoutSeconds: MAX_PROVISION, tokenTtlSeconds: 60 },
        { name: BIG, max: 2, memoryMiB: 4_000_000 },
      ],
    }),
  );
}

beforeAll(async () => {
  guest = await installGuest("busybox");
  cluster = await startKubeCluster();
  await setUpLikeKubeadm(cluster);
  dir = await projectDir("");
  const grpcPort = await freePort();
  await writeConfig(grpcPort, await freePort());
  serve = await startServe(dir);
  agent = startKubeletAgent({ cluster, stateDir: join(dir, "state"), refuse: () => refuse });
  client = externalGrpcClient(`127.0.0.1:${grpcPort}`);
}, 600_000);

afterAll(async () => {
  await cleanUp([
    ["close the client", () => client?.close()],
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

describe("node groups driven by premiscale's own gRPC client (not cluster-autoscaler)", () => {
  it("lists the node groups and starts them at their VMs: none", async () => {
    const groups = (await client.call("NodeGroups")).nodeGroups;
    expect(groups.map((g: { id: string }) => g.id)).toEqual([G, BIG]);
    expect(await target()).toBe(0);
    expect(await instances()).toEqual([]);
  });

  it(
    "IncreaseSize +2 answers at once; two VMs boot, check in, join with their own bootstrap tokens, and their Nodes become Ready",
    async () => {
      const t = performance.now();
      await client.call("NodeGroupIncreaseSize", { id: G, delta: 2 });
      const answeredMs = performance.now() - t;
      expect(answeredMs).toBeLessThan(1000); // cluster-autoscaler gives each call 5 s
      expect(await target()).toBe(2);
      // The VMs are there as creating long before they are nodes.
      await waitFor(async () => (await instances()).length === 2, { timeoutMs: 30_000, what: "two instances listed" });
      const { inst, nodes } = await settled(2);
      console.info(`IncreaseSize answered in ${answeredMs.toFixed(0)} ms; 2 Nodes Ready after ${((performance.now() - t) / 1000).toFixed(1)} s`);

      // Each Node carries its VM's providerID, the group's labels, and premiscale finds its group.
      expect(nodes.map((n) => n.spec!.providerID).sort()).toEqual(inst.map((i) => i.id).sort());
      for (const n of nodes) {
        expect(n.metadata.labels).toMatchObject({ type: "kwok", "premiscale.io/group": G });
        expect((await client.call("NodeGroupForNode", { node: { providerID: n.spec!.providerID, name: n.metadata.name } })).nodeGroup.id).toBe(G);
      }
      // Each VM joined with its own token, and the API server authenticated it as a bootstrap token of kubeadm's group.
      const joins = [...agent.joins.values()];
      expect(joins).toHaveLength(2);
      expect(new Set(joins.map((j) => j.tokenId)).size).toBe(2);
      for (const j of joins) {
        tokensSeen.add(j.token);
        expect(j.token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
        expect(j.tokenUser.username).toBe(`system:bootstrap:${j.tokenId}`);
        expect(j.tokenUser.groups).toEqual(expect.arrayContaining(["system:bootstrappers", KUBEADM_TOKEN_GROUP, "system:authenticated"]));
      }
      // Once Ready, premiscale deleted the tokens: short-lived, and no longer accepted.
      await waitFor(async () => (await tokenSecretsOf(cluster, G)).length === 0, { timeoutMs: 30_000, what: "the joined VMs' tokens deleted" });
      // (The API server's token authenticator reads Secrets through an informer: it sees the deletion a moment later.)
      for (const j of joins) await waitFor(async () => (await whoIs(cluster.apiUrl, cluster.caCertPem, j.token)) === null, { timeoutMs: 30_000, what: `token ${j.tokenId} refused` });
      // One commit per apply, with cluster-autoscaler's call as the reason.
      const commits = await stateCommits(dir);
      expect(commits[0]).toContain(`${G}: 0 → 2 (cluster-autoscaler: IncreaseSize +2)`);
    },
    WAIT + 30_000,
  );

  it("refuses bad input with a gRPC status and a clear message, and changes nothing", async () => {
    const before = await stateCommits(dir);
    const unknown = await refused(client.call("NodeGroupIncreaseSize", { id: "no-such-group", delta: 1 }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toBe(`NodeGroupIncreaseSize: no node group "no-such-group" (premiscale's node groups: ${G}, ${BIG}); nothing changed`);
    const negative = await refused(client.call("NodeGroupIncreaseSize", { id: G, delta: -1 }));
    expect(negative.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(negative.details).toContain("delta must be a positive number of nodes, got -1; nothing changed");
    const foreign = await refused(client.call("NodeGroupDeleteNodes", { id: G, nodes: [{ providerID: "kind://docker/kind/kind-worker", name: "kind-worker" }] }));
    expect(foreign.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(foreign.details).toContain("node kind-worker (providerID kind://docker/kind/kind-worker) is not a premiscale VM");
    const [vm] = await running();
    const other = await refused(client.call("NodeGroupDeleteNodes", { id: BIG, nodes: [{ providerID: vm!.id, name: "n" }] }));
    expect(other.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(other.details).toContain(`belongs to node group ${G}, not ${BIG}`);
    const existing = await refused(client.call("NodeGroupDecreaseTargetSize", { id: G, delta: -1 }));
    expect(existing.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(existing.details).toContain("never deletes one (use DeleteNodes)");
    expect(await target()).toBe(2);
    expect(await running()).toHaveLength(2);
    expect(await stateCommits(dir)).toEqual(before);
    const refusedLines = serve.logs().filter((l) => l.event === "externalgrpc_refused");
    expect(refusedLines.map((l) => l.code)).toEqual(["NOT_FOUND", "INVALID_ARGUMENT", "INVALID_ARGUMENT", "INVALID_ARGUMENT", "FAILED_PRECONDITION"]);
  });

  it(
    "a node group no host has room for reports OutOfResources; DeleteNodes of the failed instance (cluster-autoscaler's clean-up) takes it back",
    async () => {
      await client.call("NodeGroupIncreaseSize", { id: BIG, delta: 1 });
      const [failed] = await waitFor(async () => {
        const i = await instances(BIG);
        return i.length === 1 && i[0]!.status.errorInfo ? i : undefined;
      }, { timeoutMs: 30_000, what: `${BIG}: a failed instance` });
      expect(failed!.status).toMatchObject({ instanceState: 2, errorInfo: { errorCode: "premiscale.NoRoom", instanceErrorClass: 1 } });
      expect(failed!.status.errorInfo!.errorMessage).toMatch(new RegExp(`no host has room for a VM of group ${BIG}: host local: .*memory`, "i"));
      expect(await leftovers(`${BIG}-`)).toEqual([]);
      // No VM is tried for it while it waits for cluster-autoscaler.
      expect(await domainsOf(BIG)).toEqual([]);
      await client.call("NodeGroupDeleteNodes", { id: BIG, nodes: [{ providerID: failed!.id, name: failed!.id }] });
      expect(await target(BIG)).toBe(0);
      expect(await instances(BIG)).toEqual([]);
    },
    60_000,
  );

  it(
    "DeleteNodes destroys exactly the VM named, deletes its Node, and records it; the other VM and Node stay",
    async () => {
      const nodes = await nodesOf(cluster, G);
      const [victim, keeper] = nodes;
      const t = performance.now();
      await client.call("NodeGroupDeleteNodes", { id: G, nodes: [{ providerID: victim!.spec!.providerID, name: victim!.metadata.name }] });
      expect(performance.now() - t).toBeLessThan(1000);
      expect(await target()).toBe(1);
      expect((await instances()).find((i) => i.id === victim!.spec!.providerID)?.status.instanceState).toBe(3); // deleting
      await waitFor(async () => (await nodesOf(cluster, G)).length === 1 && (await domainsOf(G)).length === 1, { timeoutMs: WAIT, what: "the victim's VM and Node gone" });
      const [left] = await nodesOf(cluster, G);
      expect(left!.metadata.name).toBe(keeper!.metadata.name);
      expect(isReady(left!)).toBe(true);
      expect(await domainsOf(G)).toEqual([keeper!.metadata.name]); // node name = VM name
      expect(await leftovers(victim!.metadata.name)).toEqual([]);
      expect((await stateCommits(dir))[0]).toContain(`cluster-autoscaler: DeleteNodes ${victim!.metadata.name}`);
      await waitFor(async () => (await instances()).length === 1, { timeoutMs: 30_000, what: "one instance listed" });
    },
    WAIT + 30_000,
  );

  it(
    "a VM whose node never joins is given up after the max provision time and reported as a failed create, not retried; its token worked until it expired",
    async () => {
      refuse = true; // the kubelet stand-in plays dead for new VMs
      const t0 = Date.now();
      await client.call("NodeGroupIncreaseSize", { id: G, delta: 1 });
      const [stray] = await waitFor(async () => (agent.refused.size > 0 ? [...agent.refused.values()] : undefined), { timeoutMs: 90_000, what: "the new VM checked in" });
      tokensSeen.add(stray!.token);
      // A real bootstrap token: authenticated as system:bootstrap:<id> while valid ...
      expect(stray!.tokenUser?.username).toBe(`system:bootstrap:${stray!.token.split(".")[0]}`);
      // ... and refused once its 60 s (tokenTtlSeconds) are over, while premiscale still waits for the node.
      await waitFor(async () => (await whoIs(cluster.apiUrl, cluster.caCertPem, stray!.token)) === null, { timeoutMs: 90_000, intervalMs: 2000, what: "the token expired" });
      expect(Date.now() - t0).toBeGreaterThan(55_000);
      // After MAX_PROVISION s without a Ready node the VM is destroyed and listed as failed (class Other).
      const failed = await waitFor(async () => (await instances()).find((i) => i.status.errorInfo), { timeoutMs: 120_000, what: "a failed instance" });
      expect(failed.status).toMatchObject({ instanceState: 2, errorInfo: { errorCode: "premiscale.NodeNotReady", instanceErrorClass: 99 } });
      expect(failed.status.errorInfo!.errorMessage).toContain(`did not become Ready within ${MAX_PROVISION} s`);
      expect(await domainsOf(G)).toHaveLength(1);
      expect(await tokenSecretsOf(cluster, G)).toEqual([]);
      // Not looped: two resyncs later (10 s each) still one VM, no new create.
      const applies = serve.logs().filter((l) => l.event === "apply_start").length;
      await new Promise((r) => setTimeout(r, 22_000));
      expect(serve.logs().filter((l) => l.event === "apply_start").length).toBe(applies);
      expect(await target()).toBe(2);
      // cluster-autoscaler's clean-up of a failed create: DeleteNodes of its fake node (name = providerID).
      await client.call("NodeGroupDeleteNodes", { id: G, nodes: [{ providerID: failed.id, name: failed.id }] });
      expect(await target()).toBe(1);
      expect(await instances()).toHaveLength(1);
      refuse = false;
    },
    360_000,
  );

  it(
    "premiscale killed in the middle of a scale-up resumes from state and the recorded intent after a restart",
    async () => {
      await client.call("NodeGroupIncreaseSize", { id: G, delta: 1 });
      await serve.waitForLog((l) => l.event === "apply_start" && String(l.address).startsWith(`${G}[`), 30_000);
      // Killed once state records the create (before its first host call): the restart must clean up after it.
      await waitFor(async () => (await stateInstances(dir, G)).some((i) => i.status === "creating"), { timeoutMs: 30_000, intervalMs: 50, what: "a create recorded in state" });
      await serve.stop("SIGKILL");
      serve = await startServe(dir);
      expect(await target()).toBe(2); // the intent survived
      await settled(2);
      expect(serve.logs().some((l) => l.event === "apply_start" && l.action === "delete")).toBe(true); // the half-made VM went
      expect(await leftovers(`${G}-`)).toHaveLength(2 * 3); // 2 domains, each with its disk and seed
    },
    WAIT + 60_000,
  );

  it(
    "scaling to zero deletes every VM and Node; nothing is left, and no token ever reached git state or a log",
    async () => {
      const nodes = await nodesOf(cluster, G);
      await client.call("NodeGroupDeleteNodes", { id: G, nodes: nodes.map((n) => ({ providerID: n.spec!.providerID, name: n.metadata.name })) });
      await waitFor(async () => (await leftovers(`${G}-`)).length === 0 && (await nodesOf(cluster, G)).length === 0, { timeoutMs: WAIT, what: `every VM and Node of ${G} gone` });
      expect(await instances()).toEqual([]);
      expect(await tokenSecretsOf(cluster, G)).toEqual([]);
      const history = await stateHistory(dir);
      const logs = serve.stderr() + serve.stdout() + (await readFile(join(dir, "state", ".premiscale", "journal.jsonl.last"), "utf8").catch(() => ""));
      expect(tokensSeen.size).toBeGreaterThanOrEqual(3);
      for (const token of tokensSeen) {
        const secret = token.split(".")[1]!;
        expect(history.includes(secret), "a token secret in git state").toBe(false);
        expect(logs.includes(secret), "a token secret in a log").toBe(false);
      }
    },
    WAIT + 30_000,
  );
});
