import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubernetesConfig } from "../../config/kubernetes.js";
import { startKubeCluster, waitFor, type KubeCluster } from "../../test/support/kube-cluster.js";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.js";
import { openKubeApi, type KubeApi } from "../kube-api.js";
import { leaderElection, type LeaderElectionEvent, type LeaderElector } from "./leader-election.js";
import { leaderEndpoint, type LeaderEndpointEvent } from "./leader-endpoint.js";

// Two electors against the real API server, on the real clock, with short timings (lease 4 s, renew deadline 3 s,
// retry 1 s: client-go's rules hold) so a takeover takes seconds. The Lease objects are the API server's own; a
// replica whose renewals stop is one whose connection to the API server is cut (a loopback proxy in between).

const TIMING = { leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 1 };
const NS = "default";

let cluster: KubeCluster;
let admin: KubeApi;
const proxies: TcpProxy[] = [];
const electors: LeaderElector[] = [];

const kubeConfig = (kubeconfig: string): KubernetesConfig =>
  ({ kubeconfig, callTimeoutSeconds: 2, externalGrpc: { host: "127.0.0.1", port: 0, tls: null }, debounceMs: 0, resyncSeconds: 60 }) as KubernetesConfig;

/** An API client whose connection to the API server the test can cut. */
async function cuttableApi(name: string): Promise<{ api: KubeApi; proxy: TcpProxy }> {
  const proxy = await startTcpProxy({ host: "127.0.0.1", port: Number(new URL(cluster.apiUrl).port) });
  proxies.push(proxy);
  const dir = join(cluster.dir, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "kubeconfig"), readFileSync(cluster.kubeconfigPath, "utf8").replace(cluster.apiUrl, proxy.url));
  return { api: openKubeApi(kubeConfig(join(dir, "kubeconfig"))), proxy };
}

/**
 * A candidate that records when its terms start and end (performance.now()); with `address`, wired as serve wires
 * the leader's EndpointSlice of Service `lease`: published when a term starts and retried at each renewal, cleared
 * when it ends.
 */
function candidate(api: KubeApi, lease: string, identity: string, address?: string) {
  const terms: { startedAt: number; endedAt: number | null; signal: AbortSignal }[] = [];
  const events: ((LeaderElectionEvent | LeaderEndpointEvent) & { t: number })[] = [];
  const onEvent = (e: LeaderElectionEvent | LeaderEndpointEvent) => events.push({ ...e, t: performance.now() });
  const endpoint = address ? leaderEndpoint({ api, namespace: NS, service: lease, identity, address, port: 8972, portName: "externalgrpc", onEvent }) : null;
  const elector = leaderElection({
    api,
    namespace: NS,
    name: lease,
    identity,
    ...TIMING,
    onStartedLeading: (signal) => {
      const term = { startedAt: performance.now(), endedAt: null as number | null, signal };
      terms.push(term);
      signal.addEventListener("abort", () => (term.endedAt = performance.now()));
      void endpoint?.publish(signal);
    },
    onRenewed: () => {
      const term = terms.at(-1);
      if (endpoint && term && !term.signal.aborted && !endpoint.published) void endpoint.publish(term.signal);
    },
    onStoppedLeading: () => endpoint?.clear(),
    onEvent,
  });
  electors.push(elector);
  return { elector, terms, events, identity, endpoint };
}

const leaseSpec = async (name: string) => (await admin.request("GET", `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${name}`)).body.spec;

describe("leader election against the real API server", () => {
  beforeAll(async () => {
    cluster = await startKubeCluster();
    admin = openKubeApi(kubeConfig(cluster.kubeconfigPath));
  }, 240_000);

  afterAll(async () => {
    for (const p of proxies) await p.restore();
    await Promise.all(electors.map((e) => e.stop()));
    for (const p of proxies) await p.close();
    await cluster?.stop();
  });

  it("of two replicas exactly one leads, and the Lease the API server keeps names it", async () => {
    const a = candidate(admin, "one-leader", "replica-a");
    const b = candidate(admin, "one-leader", "replica-b");
    await waitFor(() => a.elector.leading || b.elector.leading, { timeoutMs: 10_000, what: "a leader" });
    // Sampled over three lease durations: never both, never neither, always the Lease's holder.
    const until = performance.now() + 3 * TIMING.leaseDurationSeconds * 1000;
    let samples = 0;
    while (performance.now() < until) {
      const leaders = [a, b].filter((c) => c.elector.leading);
      expect(leaders).toHaveLength(1);
      const spec = await leaseSpec("one-leader");
      // The holder may have just renewed; it is the same replica throughout.
      expect(spec.holderIdentity).toBe(leaders[0]!.identity);
      samples++;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(samples).toBeGreaterThan(20);
    const spec = await leaseSpec("one-leader");
    expect(spec).toMatchObject({ leaseDurationSeconds: 4, leaseTransitions: 0 });
    expect(spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(a.terms.length + b.terms.length).toBe(1);
  });

  it("when the leader's renewals stop, it stops leading first and the other takes over within the lease duration", async () => {
    const { api, proxy } = await cuttableApi("takeover");
    const a = candidate(api, "takeover", "replica-a");
    await waitFor(() => a.elector.leading, { timeoutMs: 10_000, what: "replica-a leading" });
    const b = candidate(admin, "takeover", "replica-b");
    await waitFor(() => b.events.some((e) => e.type === "leader_observed"), { timeoutMs: 10_000, what: "replica-b seeing replica-a hold the Lease" });
    const renewedBefore = (await leaseSpec("takeover")).renewTime;
    await proxy.cut();
    const cutAt = performance.now();
    await waitFor(() => b.elector.leading, { timeoutMs: 20_000, what: "replica-b taking over", intervalMs: 20 });
    const tookAt = b.terms[0]!.startedAt;
    const lostAt = a.terms[0]!.endedAt;
    console.info(`takeover: a stopped ${Math.round(lostAt! - cutAt)} ms after the cut, b led ${Math.round(tookAt - cutAt)} ms after it`);
    // a gave up at its renew deadline (≤ retry + renew deadline after its last renewal), before b started.
    expect(lostAt).not.toBeNull();
    expect(lostAt! - cutAt).toBeLessThanOrEqual((TIMING.retryPeriodSeconds + TIMING.renewDeadlineSeconds) * 1000 + 500);
    expect(tookAt).toBeGreaterThan(lostAt!);
    // b waited for the lease to expire as it observed it, and not much longer: within the lease duration of a's
    // last renewal plus one jittered retry period.
    expect(tookAt - cutAt).toBeGreaterThanOrEqual(TIMING.leaseDurationSeconds * 1000 - TIMING.retryPeriodSeconds * 1000);
    expect(tookAt - cutAt).toBeLessThanOrEqual((TIMING.leaseDurationSeconds + TIMING.retryPeriodSeconds * 2.2) * 1000 + 500);
    const spec = await leaseSpec("takeover");
    expect(spec).toMatchObject({ holderIdentity: "replica-b", leaseTransitions: 1 });
    expect(spec.renewTime).not.toBe(renewedBefore);
    expect(a.events.find((e) => e.type === "leader_lost")).toMatchObject({ reason: "the Lease was not renewed within renewDeadlineSeconds (3 s)" });
    expect(a.events.some((e) => e.type === "leader_renew_failed" && /ECONNREFUSED|ECONNRESET|no answer/.test(e.error))).toBe(true);

    // Back on the network, a sees b's lease and stays a candidate.
    await proxy.restore();
    await waitFor(() => a.elector.observedHolder === "replica-b", { timeoutMs: 10_000, what: "replica-a observing replica-b" });
    expect(a.elector.leading).toBe(false);
    expect(b.elector.leading).toBe(true);
  });

  it("a leader that stops gracefully releases the Lease, and the other takes over at its next retry", async () => {
    const a = candidate(admin, "release", "replica-a");
    await waitFor(() => a.elector.leading, { timeoutMs: 10_000, what: "replica-a leading" });
    const b = candidate(admin, "release", "replica-b");
    await waitFor(() => b.elector.observedHolder === "replica-a", { timeoutMs: 10_000, what: "replica-b observing replica-a" });
    const t0 = performance.now();
    await a.elector.stop();
    expect(a.terms[0]!.signal.aborted).toBe(true);
    expect(a.events.at(-1)).toMatchObject({ type: "leader_released" });
    await waitFor(() => b.elector.leading, { timeoutMs: 10_000, what: "replica-b taking over", intervalMs: 20 });
    const ms = b.terms[0]!.startedAt - t0;
    console.info(`takeover after a release: ${Math.round(ms)} ms`);
    expect(ms).toBeLessThan(TIMING.retryPeriodSeconds * (1 + 1.2) * 1000 + 500);
    expect(await leaseSpec("release")).toMatchObject({ holderIdentity: "replica-b", leaseDurationSeconds: 4, leaseTransitions: 1 });
  });

  it("the leader's EndpointSlice names its address and port for a selector-less Service, the new leader after a takeover, and no one after a graceful stop", async () => {
    const svc = "leader-endpoint";
    const created = await admin.request("POST", `/api/v1/namespaces/${NS}/services`, {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: svc, namespace: NS },
      spec: { ports: [{ name: "externalgrpc", port: 8972, targetPort: 8972, protocol: "TCP" }] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const slice = async () => (await admin.request("GET", `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/${svc}`)).body;
    const named = async () => ((await slice()).endpoints ?? []).flatMap((e: { addresses: string[] }) => e.addresses);
    // What kube-proxy and DNS read: the slices labelled with the Service's name.
    const ofService = async () => (await admin.request("GET", `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${svc}`)}`)).body.items;

    const { api, proxy } = await cuttableApi("endpoint-a");
    const a = candidate(api, svc, "replica-a", "10.244.1.11");
    await waitFor(async () => (await named()).includes("10.244.1.11"), { timeoutMs: 10_000, what: "the slice naming replica-a" });
    const first = await slice();
    expect(first).toMatchObject({
      addressType: "IPv4",
      metadata: { labels: { "kubernetes.io/service-name": svc, "endpointslice.kubernetes.io/managed-by": "premiscale" }, annotations: { "premiscale.io/leader": "replica-a" } },
      endpoints: [{ addresses: ["10.244.1.11"], conditions: { ready: true, serving: true } }],
      ports: [{ name: "externalgrpc", port: 8972, protocol: "TCP" }],
    });
    expect((await ofService()).map((x: { metadata: { name: string } }) => x.metadata.name)).toEqual([svc]);

    // Takeover: a is cut off (it can neither renew nor clear); b takes the Lease and overwrites a's slice.
    const b = candidate(admin, svc, "replica-b", "10.244.2.12");
    await waitFor(() => b.elector.observedHolder === "replica-a", { timeoutMs: 10_000, what: "replica-b observing replica-a" });
    await proxy.cut();
    const cutAt = performance.now();
    await waitFor(async () => b.elector.leading && (await named()).includes("10.244.2.12"), { timeoutMs: 20_000, what: "the slice naming replica-b", intervalMs: 50 });
    console.info(`slice names the new leader ${Math.round(performance.now() - cutAt)} ms after the old one was cut off`);
    expect(await named()).toEqual(["10.244.2.12"]);
    expect((await slice()).metadata.annotations["premiscale.io/leader"]).toBe("replica-b");
    expect(a.events.some((e) => e.type === "leader_endpoint_failed" && e.action === "clear")).toBe(true);
    // a back on the network: stopping leaves b's slice alone, and so does a clear of a's that comes late.
    await proxy.restore();
    await a.elector.stop();
    await a.endpoint!.clear();
    expect(a.events.at(-1)).toMatchObject({ type: "leader_endpoint_left", holder: "replica-b" });
    expect(await named()).toEqual(["10.244.2.12"]);

    // Graceful stop: b empties the slice before it releases the Lease.
    await b.elector.stop();
    const cleared = await slice();
    expect(cleared.endpoints ?? []).toEqual([]);
    expect(cleared.metadata.annotations?.["premiscale.io/leader"]).toBeUndefined();
    expect(b.events.map((e) => e.type).slice(-3)).toEqual(["leader_lost", "leader_endpoint_cleared", "leader_released"]);
    expect((await ofService()).map((x: { metadata: { name: string } }) => x.metadata.name)).toEqual([svc]);
  });

  it("reports RBAC refusing the Lease once, naming the verb, the resource and the namespace", async () => {
    await admin.request("POST", "/api/v1/namespaces/default/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "no-leases", namespace: NS } });
    const tr = await admin.request("POST", `/api/v1/namespaces/${NS}/serviceaccounts/no-leases/token`, { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } });
    expect(tr.status).toBe(201);
    const root = join(cluster.dir, "no-leases-pod");
    const sa = join(root, "var/run/secrets/kubernetes.io/serviceaccount");
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, "token"), tr.body.status.token);
    writeFileSync(join(sa, "ca.crt"), cluster.caCertPem);
    const api = openKubeApi({ callTimeoutSeconds: 2, externalGrpc: { host: "127.0.0.1", port: 0, tls: null }, debounceMs: 0, resyncSeconds: 60 }, {
      env: { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: new URL(cluster.apiUrl).port },
      serviceAccountRoot: root,
    });
    let calls = 0;
    const c = candidate({ server: api.server, request: (...a) => (calls++, api.request(...a)) }, "forbidden", "replica-x");
    // Four attempts refused: still said once.
    await waitFor(() => calls >= 4, { timeoutMs: 20_000, what: "four attempts at the Lease" });
    const failed = c.events.filter((e) => e.type === "leader_acquire_failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      error: expect.stringMatching(
        /^RBAC: premiscale's credentials may not get leases in namespace default: add verb get on leases \(apiGroups \["coordination\.k8s\.io"\]\) to premiscale's Role or ClusterRole \(HTTP 403: .*User "system:serviceaccount:default:no-leases" cannot get resource "leases"/,
      ),
    });
    expect(c.elector.leading).toBe(false);
  });
});
