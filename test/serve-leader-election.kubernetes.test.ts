import { mkdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startKubeCluster, waitFor, type KubeCluster } from "./support/kube-cluster.js";
import { makeKubePki, type KubePki } from "./support/kube-pki.js";
import { freePort, killLeftovers, spawnPremiscale, type ServeProcess } from "./support/serve.js";

// Two `premiscale serve` replicas (the built CLI, each its own process and directory) with leader election on one
// Lease of the real test API server, short timings (lease 4 s, renew deadline 3 s, retry 1 s). Exactly one acts:
// listens for cluster-autoscaler and runs the node-group loop (on libvirt's test driver: its passes change
// nothing), and writes its address into the EndpointSlice of a selector-less Service (kubernetes.leaderElection
// .endpoint; each replica's "pod IP" is a made-up address in its environment: nothing dials it). Killing it with
// SIGKILL (no release) hands over within the lease duration, and the new leader overwrites the slice; SIGTERM empties
// the slice, then releases the Lease.

const LEASE = "serve-replicas";
const SERVICE = "serve-replicas-leader";
let cluster: KubeCluster;
let pki: KubePki;
const replicas: { name: string; dir: string; grpcPort: number; podIp: string; serve: ServeProcess }[] = [];

async function config(name: string): Promise<{ dir: string; grpcPort: number }> {
  const dir = join(cluster.dir, name);
  mkdirSync(dir, { recursive: true });
  const grpcPort = await freePort();
  writeFileSync(
    join(dir, "premiscale.yaml"),
    `version: v1alpha1
state:
  path: ./state
server:
  listen: 127.0.0.1:${await freePort()}
metrics:
  store: { type: prometheus, url: "http://127.0.0.1:9" }
kubernetes:
  kubeconfig: ${JSON.stringify(cluster.kubeconfigPath)}
  externalGrpc:
    listen: 0.0.0.0:${grpcPort}
    tls: { cert: ${JSON.stringify(pki.apiserver.certPath)}, key: ${JSON.stringify(pki.apiserver.keyPath)}, clientCa: ${JSON.stringify(pki.ca.certPath)} }
  resyncSeconds: 5
  leaderElection:
    { enabled: true, namespace: default, leaseName: ${LEASE}, leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 1, endpoint: { service: ${SERVICE}, addressEnv: TEST_POD_IP } }
hosts:
  - name: h1
    kind: libvirt
    uri: test:///default
groups:
  - name: workers
    min: 0
    max: 3
    hosts: [h1]
    readiness: { checkIn: false, timeoutSeconds: 120 }
    template: { vcpus: 1, memoryMiB: 512, disk: { baseImage: base.qcow2 } }
    kubernetes:
      labels: { type: kwok }
`,
  );
  return { dir, grpcPort };
}

async function replica(name: string) {
  const { dir, grpcPort } = await config(name);
  const podIp = `10.244.7.${replicas.length + 11}`;
  const serve = spawnPremiscale(dir, ["serve", "--log-level", "debug"], { TEST_POD_IP: podIp }, { dieWithParent: true });
  const r = { name, dir, grpcPort, podIp, serve };
  replicas.push(r);
  return r;
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
const has = (r: { serve: ServeProcess }, event: string) => r.serve.logs().some((l) => l.event === event);
const leaseSpec = async () => (await cluster.request("GET", `/apis/coordination.k8s.io/v1/namespaces/default/leases/${LEASE}`)).body.spec;
/** What the Service's EndpointSlice points at: "address:port" of each endpoint. */
const sliceNames = async (): Promise<string[]> => {
  const r = await cluster.request("GET", `/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/${SERVICE}`);
  if (r.status === 404) return [];
  return (r.body.endpoints ?? []).flatMap((e: { addresses: string[] }) => e.addresses.map((a) => `${a}:${r.body.ports[0].port}`));
};

describe("premiscale serve replicas with leader election (real API server)", () => {
  beforeAll(async () => {
    cluster = await startKubeCluster();
    const tls = join(cluster.dir, "serve-tls");
    mkdirSync(tls, { recursive: true });
    pki = await makeKubePki(tls, []);
    const svc = await cluster.request("POST", "/api/v1/namespaces/default/services", {
      body: { apiVersion: "v1", kind: "Service", metadata: { name: SERVICE }, spec: { ports: [{ name: "externalgrpc", port: 8972, protocol: "TCP" }] } },
    });
    expect(svc.status, svc.text).toBe(201);
  }, 240_000);

  afterAll(async () => {
    await killLeftovers();
    await cluster?.stop();
  });

  it("exactly one replica acts: it holds the Lease, listens for cluster-autoscaler and runs the node-group loop", async () => {
    const a = await replica("replica-a");
    const b = await replica("replica-b");
    for (const r of [a, b]) {
      const serving = await r.serve.waitForLog((l) => l.event === "serving", 60_000);
      expect(serving.leaderElection).toEqual({ lease: `default/${LEASE}`, identity: expect.stringMatching(/_\d+$/) });
    }
    const leader = await waitFor(() => [a, b].find((r) => has(r, "leader_acquired")), { timeoutMs: 20_000, what: "a leader" });
    const other = leader === a ? b : a;
    await leader.serve.waitForLog((l) => l.event === "autoscaler_pass_done", 30_000);
    await other.serve.waitForLog((l) => l.event === "leader_observed", 10_000);
    expect(await listening(leader.grpcPort)).toBe(true);
    expect(await listening(other.grpcPort)).toBe(false);
    for (const e of ["leader_acquired", "externalgrpc_listening", "autoscaler_pass_start", "autoscaler_pass_done"]) expect(has(other, e), e).toBe(false);
    const spec = await leaseSpec();
    expect(spec.holderIdentity).toBe(leader.serve.logs().find((l) => l.event === "leader_acquired")!.identity);
    // The Service cluster-autoscaler dials names the leader only.
    await waitFor(async () => (await sliceNames()).length > 0, { timeoutMs: 10_000, what: "the leader's EndpointSlice" });
    expect(await sliceNames()).toEqual([`${leader.podIp}:${leader.grpcPort}`]);
    expect(has(other, "leader_endpoint_published")).toBe(false);
  });

  it("a replica killed with SIGKILL is replaced within the lease duration, and the new leader runs the loop", async () => {
    const leader = replicas.find((r) => has(r, "leader_acquired"))!;
    const other = replicas.find((r) => r !== leader)!;
    const killedAt = performance.now();
    await leader.serve.stop("SIGKILL");
    await other.serve.waitForLog((l) => l.event === "leader_acquired", 20_000);
    const ms = performance.now() - killedAt;
    console.info(`takeover after SIGKILL: ${Math.round(ms)} ms`);
    // The lease duration (4 s) from the last renewal the other saw, plus at most one jittered retry (2.2 s).
    expect(ms).toBeLessThan((4 + 2.2) * 1000 + 1500);
    await other.serve.waitForLog((l) => l.event === "autoscaler_pass_done", 30_000);
    await waitFor(() => listening(other.grpcPort), { timeoutMs: 10_000, what: "the new leader's externalgrpc listener" });
    expect((await leaseSpec()).leaseTransitions).toBe(1);
    await waitFor(async () => (await sliceNames()).join() === `${other.podIp}:${other.grpcPort}`, { timeoutMs: 10_000, what: "the slice naming the new leader" });
  });

  it("SIGTERM stops the loop, then releases the Lease, and exits 0", async () => {
    const leader = replicas.find((r) => r.serve.child.exitCode === null && r.serve.child.signalCode === null && has(r, "leader_acquired"))!;
    const exit = await leader.serve.stop("SIGTERM");
    expect(exit.code).toBe(0);
    const logs = leader.serve.logs().map((l) => l.event);
    expect(logs.indexOf("leader_lost")).toBeLessThan(logs.indexOf("leader_endpoint_cleared"));
    expect(logs.indexOf("leader_endpoint_cleared")).toBeLessThan(logs.indexOf("leader_released"));
    expect(await sliceNames()).toEqual([]);
    const spec = await leaseSpec();
    expect(spec.holderIdentity).toBeUndefined();
    expect(spec.leaseDurationSeconds).toBe(1);
  });

  it("a replica without its address variable refuses to start, naming the variable and the fix, and never touches the Lease", async () => {
    const { dir } = await config("no-address");
    const before = await leaseSpec();
    const serve = spawnPremiscale(dir, ["serve"], {}, { dieWithParent: true });
    const exit = await serve.exited;
    expect(exit.code).not.toBe(0);
    expect(serve.stderr()).toContain("the environment variable TEST_POD_IP is not set");
    expect(serve.stderr()).toContain("fieldRef status.podIP");
    expect(serve.stderr()).not.toMatch(/\n\s+at /); // no stack trace
    expect(await leaseSpec()).toEqual(before);
  });
});
