// Two `premiscale serve` replicas in native mode, shaped as the Helm chart deploys them: each "pod" its own hostname
// and PID namespace (so each replica is pid 1, as in a container), one state directory shared by both (the chart's
// ReadWriteMany volume), leader election on one Lease with short timings. Real busybox VMs on the real libvirtd; the
// TEST STAND-IN FOR THE KUBELET (test/support/kubelet-agent.ts) registers each VM's Node from its check-in, as in
// test/native-mode.kubernetes.test.ts. Exactly one replica acts; the leader is killed with SIGKILL while its apply
// waits for a new VM, and the other takes over within the lease duration, takes the dead leader's state lock (held
// by another host's pid 1: a pid check cannot tell it is dead), undoes its half-made VMs and converges.
import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readInterrupted } from "../applier/journal.js";
import { projectDir } from "./support/cli.js";
import { freePort, installGuest, type InstalledGuest } from "./support/guests.js";
import { KWOK_NODE_LABEL, startKubeCluster, waitFor, type KubeCluster } from "./support/kube-cluster.js";
import { setUpLikeKubeadm, startKubeletAgent, type KubeletAgent } from "./support/kubelet-agent.js";
import { leftovers } from "./support/libvirt.js";
import { cleanUp, domainsOf, isReady, nodeGroupConfigText, nodesOf, oneNodePodDeployment, removeLeftovers, runningPodNames, stateInstances } from "./support/node-groups.js";
import { killLeftovers, spawnPremiscale, type ServeProcess } from "./support/serve.js";

const RUN = randomBytes(2).toString("hex");
const G = `rep${RUN}`;
const NS = "default";
const APP = `app${RUN}`;
const LEASE = `native-replicas-${RUN}`;
const PODS = 2;
const T = { lease: 4, renew: 3, retry: 1 };
const WAIT = 180_000;

let cluster: KubeCluster;
let guest: InstalledGuest;
let root: string;
let agent: KubeletAgent;
const replicas: { host: string; serve: ServeProcess }[] = [];

/** The shared state directory: `stateInstances(root, …)` reads it. */
const shared = () => join(root, "state");
const has = (r: { serve: ServeProcess }, event: string) => r.serve.logs().some((l) => l.event === event);
const alive = (r: { serve: ServeProcess }) => r.serve.child.exitCode === null && r.serve.child.signalCode === null;
const abortIf = () => {
  const live = replicas.filter(alive);
  return live.length === 0 ? `no premiscale serve replica is running:\n${replicas.map((r) => r.serve.stderr().slice(-2000)).join("\n---\n")}` : undefined;
};

async function startReplica(host: string): Promise<{ host: string; serve: ServeProcess }> {
  const dir = join(root, host);
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, "premiscale.yaml"),
    nodeGroupConfigText({
      guest,
      statePath: shared(),
      checkInPort: await freePort(),
      grpcPort: await freePort(),
      kubeconfig: cluster.kubeconfigPath,
      kubernetes: `mode: native
native:
  scanIntervalSeconds: 2
leaderElection: { enabled: true, namespace: ${NS}, leaseName: ${LEASE}, leaseDurationSeconds: ${T.lease}, renewDeadlineSeconds: ${T.renew}, retryPeriodSeconds: ${T.retry} }`,
      groups: [{ name: G, max: 3, timeoutSeconds: 120 }],
    }),
  );
  const serve = spawnPremiscale(dir, ["serve", "--log-level", "debug"], {}, { dieWithParent: true, podHostname: host });
  const r = { host, serve };
  replicas.push(r);
  return r;
}

beforeAll(async () => {
  guest = await installGuest("busybox");
  cluster = await startKubeCluster();
  await setUpLikeKubeadm(cluster);
  root = await projectDir("");
  await rm(join(root, "premiscale.yaml"));
  agent = startKubeletAgent({ cluster, stateDir: join(root, "state"), refuse: () => false });
}, 600_000);

afterAll(async () => {
  await cleanUp([
    ["keep the replicas' logs", () => cluster && Promise.all(replicas.map((r) => writeFile(join(cluster.dir, "logs", `premiscale-serve-${r.host}.log`), r.serve.stderr())))],
    // pid 1 of its namespace, a replica ignores signals it has no handler for: SIGKILL, as the kubelet would in the end.
    ["kill the replicas", () => killLeftovers()],
    ["stop the kubelet stand-in", () => agent?.stop()],
    ["remove leftover VMs", () => removeLeftovers([G])],
    ["stop the cluster", () => cluster?.stop()],
    ["remove the project", () => root && rm(root, { recursive: true, force: true })],
  ]);
}, 240_000);

const deployment = (replicas: number) => oneNodePodDeployment({ name: APP, namespace: NS, replicas, nodeSelector: { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value } });
const runningPods = () => runningPodNames(cluster, NS, APP);

/** Events only a replica that acts logs: the loop, its scans and applies. */
const ACTING = /^(leader_acquired|native_|pods_batched|pod_unplaceable|apply_|lock_)/;

describe("two native-mode replicas sharing one state volume (real API server, real busybox VMs)", () => {
  it("exactly one replica leads and scans; the other only observes the Lease", async () => {
    const [a, b] = [await startReplica(`premiscale-${RUN}-a`), await startReplica(`premiscale-${RUN}-b`)];
    for (const r of [a, b]) {
      const serving = await r.serve.waitForLog((l) => l.event === "serving", 60_000);
      // Each in its own PID namespace, as in a pod: both are pid 1, told apart by hostname only.
      expect(serving.leaderElection).toEqual({ lease: `${NS}/${LEASE}`, identity: `${r.host}_1` });
    }
    const leader = await waitFor(() => [a, b].find((r) => has(r, "leader_acquired")), { timeoutMs: 20_000, what: "a leader", abortIf });
    const other = leader === a ? b : a;
    await leader.serve.waitForLog((l) => l.event === "native_scan_done", 30_000);
    await other.serve.waitForLog((l) => l.event === "leader_observed", 10_000);
    // A few more of the leader's scans, during which the other stays idle.
    const scans = leader.serve.logs().filter((l) => l.event === "native_scan_done").length;
    await waitFor(() => leader.serve.logs().filter((l) => l.event === "native_scan_done").length >= scans + 2, { timeoutMs: 30_000, what: "two more scans", abortIf });
    expect(other.serve.logs().map((l) => String(l.event)).filter((e) => ACTING.test(e))).toEqual([]);
    const lease = (await cluster.request("GET", `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${LEASE}`)).body.spec;
    expect(lease.holderIdentity).toBe(`${leader.host}_1`);
  }, 120_000);

  it(
    "the leader killed while its VMs boot: the other takes over within the lease duration and converges on the shared state",
    async () => {
      const leader = replicas.find((r) => has(r, "leader_acquired"))!;
      const other = replicas.find((r) => r !== leader)!;
      const t0 = performance.now();
      const r = await cluster.request("POST", `/apis/apps/v1/namespaces/${NS}/deployments`, { body: deployment(PODS) });
      expect(r.status, r.text).toBe(201);

      // Its apply in flight: a VM created and started, waiting for its check-in (so before any Node of the group).
      await leader.serve.waitForLog((l) => l.event === "apply_step" && l.step === "ready", 120_000);
      const killedAt = performance.now();
      await leader.serve.stop("SIGKILL");
      const half = await stateInstances(root, G);
      expect(half.length).toBeGreaterThan(0);
      expect(half.every((i) => i.status === "creating"), JSON.stringify(half)).toBe(true);
      expect((await nodesOf(cluster, G)).filter(isReady)).toEqual([]);
      // The dead leader's apply, on the shared volume's journal: begun, never ended, a VM at its check-in wait.
      const interrupted = readInterrupted(join(shared(), ".premiscale", "journal.jsonl"));
      expect(interrupted).toHaveLength(1);
      expect(interrupted[0]!.inFlight.map((f) => f.lastStep)).toContain("ready");
      expect(other.serve.logs().map((l) => String(l.event)).filter((e) => ACTING.test(e))).toEqual([]);

      const acquired = await other.serve.waitForLog((l) => l.event === "leader_acquired", 20_000);
      const takeoverMs = performance.now() - killedAt;
      console.info(`takeover after SIGKILL: ${Math.round(takeoverMs)} ms`);
      expect(acquired.identity).toBe(`${other.host}_1`);
      // The leader renewed at most one retry period before the kill; the other saw that renewal at its next jittered
      // poll (≤ 2.2 × retry later), counts the lease duration from then, and acquires at its first poll after
      // (≤ 2.2 × retry more); never before the lease ran out since the last renewal it could have seen.
      expect(takeoverMs).toBeGreaterThan((T.lease - T.retry) * 1000 - 500);
      expect(takeoverMs).toBeLessThan((2.2 * T.retry + T.lease + 2.2 * T.retry) * 1000 + 1500);

      // The dead leader's lock (pid 1 of another host) is taken over as a previous leader's, not waited on.
      const taken = await other.serve.waitForLog((l) => l.event === "lock_stale_removed", 30_000);
      expect(taken.holder).toMatchObject({ Host: leader.host, Pid: 1, Leader: `${NS}/${LEASE}` });

      await waitFor(async () => (await runningPods()).length === PODS, { timeoutMs: WAIT, intervalMs: 1000, what: `${PODS} pods Running`, abortIf });
      await waitFor(
        async () => {
          const s = await stateInstances(root, G);
          return s.length === PODS && s.every((i) => i.status === "running") && (await domainsOf(G)).length === PODS;
        },
        { timeoutMs: 60_000, intervalMs: 1000, what: `${PODS} VMs recorded running, ${PODS} domains`, abortIf },
      );
      const convergedS = (performance.now() - killedAt) / 1000;
      console.info(`SIGKILL → converged (${PODS} pods Running, ${PODS} VMs): ${convergedS.toFixed(1)} s; Deployment → converged: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

      const vms = await stateInstances(root, G);
      // The dead leader's half-made VMs were removed (destroyed, their volumes gone), not adopted twice.
      for (const h of half) expect(vms.map((v) => v.name)).not.toContain(h.name);
      // Exactly the VMs state records, each with its disk and seed: nothing leaked, nothing twice.
      const expected = vms.flatMap((v) => [v.name, `${v.name}.qcow2`, `${v.name}-seed.iso`]).sort();
      expect((await leftovers(`${G}-`)).sort()).toEqual(expected);
      const nodes = await nodesOf(cluster, G);
      expect(nodes.filter(isReady)).toHaveLength(PODS);
      expect(nodes.map((n) => n.spec!.providerID).sort()).toEqual(vms.map((v) => `premiscale://${G}/${v.uuid}`).sort());
      const applied = other.serve.logs().filter((l) => l.event === "native_scan_done" && l.outcome !== "no_changes" && l.outcome !== "skipped");
      console.info(`new leader's scans: ${applied.map((l) => `${String(l.outcome)} +${String(l.added)} -${String(l.destroyed)} in ${String(l.durationMs)} ms`).join("; ")}`);
      expect(applied.some((l) => l.outcome === "applied")).toBe(true);
      expect((await cluster.request("GET", `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${LEASE}`)).body.spec.leaseTransitions).toBe(1);
      expect(readInterrupted(join(shared(), ".premiscale", "journal.jsonl"))).toEqual([]);
    },
    WAIT + 120_000,
  );
});
