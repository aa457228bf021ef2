import { describe, expect, it } from "vitest";
import type { KubeApi, KubeResponse } from "../kube-api.js";
import { ManualTimers, settleIo } from "../testing/manual-timers.js";
import { leaderElection, type LeaderElectionEvent } from "./leader-election.js";
import { LEADER_ANNOTATION, leaderAddress, leaderEndpoint, type LeaderEndpoint, type LeaderEndpointEvent } from "./leader-endpoint.js";

// The leader's EndpointSlice against an in-memory API server that behaves like the real one where it matters (404,
// 409 on a create race or a stale resourceVersion, resourceVersion bumped on every write), for the Lease and the
// slice alike, driven by one manual clock with the real elector, wired as serve wires them: publish when the term
// starts and at each renewal until it succeeded, clear when the term ends. The real API server:
// native/leader-election.kubernetes.test.ts.

const NS = "premiscale";
const SLICE_PATH = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;

/** Objects by path, API-server-like. */
class ObjectStore {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  objects = new Map<string, any>();
  private rv = 100;
  writes: { by: string; method: string; path: string }[] = [];
  /** Runs before a write is judged: a test's way to sneak in another writer. */
  beforeWrite: ((path: string) => void) | null = null;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  put(path: string, obj: any) {
    this.objects.set(path, { ...structuredClone(obj), metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } });
  }

  handle(who: string, method: string, path: string, body: unknown): KubeResponse {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const b = body as any;
    if (method === "GET") {
      const o = this.objects.get(path);
      return o ? { status: 200, body: structuredClone(o) } : { status: 404, body: { reason: "NotFound" } };
    }
    const target = method === "POST" ? `${path}/${b.metadata.name}` : path;
    this.beforeWrite?.(target);
    if (method === "POST") {
      if (this.objects.has(target)) return { status: 409, body: { reason: "AlreadyExists" } };
      this.put(target, b);
      this.writes.push({ by: who, method, path: target });
      return { status: 201, body: structuredClone(this.objects.get(target)) };
    }
    if (method === "PUT") {
      const cur = this.objects.get(target);
      if (!cur) return { status: 404, body: { reason: "NotFound" } };
      if (b.metadata.resourceVersion !== cur.metadata.resourceVersion) return { status: 409, body: { reason: "Conflict", message: "the object has been modified" } };
      if (b.addressType !== undefined && b.addressType !== cur.addressType) return { status: 422, body: { message: "addressType: Invalid value: field is immutable" } };
      this.put(target, b);
      this.writes.push({ by: who, method, path: target });
      return { status: 200, body: structuredClone(this.objects.get(target)) };
    }
    return { status: 405, body: {} };
  }

  slice(name = "premiscale-leader") {
    return this.objects.get(`${SLICE_PATH}/${name}`);
  }
  sliceWrites(by?: string) {
    return this.writes.filter((w) => w.path.startsWith(SLICE_PATH) && (by === undefined || w.by === by));
  }
}

/** One replica's view of the API; the slice's calls can fail on their own (the Lease's still work). */
function apiFor(store: ObjectStore, who: string) {
  const state = { down: false, slicesDown: false, slicesForbidden: false, sliceCalls: 0 };
  const api: KubeApi = {
    server: "https://fake",
    request: async (method, path, body) => {
      await Promise.resolve();
      const slice = path.startsWith(SLICE_PATH);
      if (slice) state.sliceCalls++;
      if (state.down || (slice && state.slicesDown)) throw new Error(`${method} ${path}: connect ECONNREFUSED`);
      if (slice && state.slicesForbidden) return { status: 403, body: { message: `endpointslices.discovery.k8s.io is forbidden: User "${who}" cannot get resource "endpointslices"` } };
      return store.handle(who, method, path, body);
    },
  };
  return { api, state };
}

/** A replica wired like serve: publish at the term's start and each renewal, clear when it ends. */
function replica(store: ObjectStore, timers: ManualTimers, identity: string, address: string, o: { random?: () => number } = {}) {
  const { api, state } = apiFor(store, identity);
  const events: ((LeaderElectionEvent | LeaderEndpointEvent) & { t: number })[] = [];
  const onEvent = (e: LeaderElectionEvent | LeaderEndpointEvent) => events.push({ ...e, t: timers.now });
  const endpoint: LeaderEndpoint = leaderEndpoint({ api, namespace: NS, service: "premiscale-leader", identity, address, port: 8972, portName: "externalgrpc", onEvent });
  let term: AbortSignal | null = null;
  const elector = leaderElection({
    api,
    namespace: NS,
    name: "premiscale",
    identity,
    now: () => timers.now,
    wallClock: () => new Date(Date.UTC(2026, 11, 3) + timers.now),
    timers,
    random: o.random ?? (() => 0.5),
    onStartedLeading: (signal) => {
      term = signal;
      void endpoint.publish(signal);
    },
    onRenewed: () => {
      if (term && !endpoint.published) void endpoint.publish(term);
    },
    onStoppedLeading: () => endpoint.clear(),
    onEvent,
  });
  return { elector, endpoint, state, events, identity, types: () => events.map((e) => e.type) };
}

const addresses = (store: ObjectStore) => (store.slice()?.endpoints ?? []).flatMap((e: { addresses: string[] }) => e.addresses);

describe("the leader's EndpointSlice", () => {
  it("names the leader's address and port once its term starts, labelled for its Service and managed by premiscale", async () => {
    const store = new ObjectStore();
    const timers = new ManualTimers(settleIo);
    const a = replica(store, timers, "a", "10.0.0.11");
    await timers.advance(0);
    expect(a.elector.leading).toBe(true);
    expect(store.slice()).toMatchObject({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: "premiscale-leader", namespace: NS, labels: { "kubernetes.io/service-name": "premiscale-leader", "endpointslice.kubernetes.io/managed-by": "premiscale" }, annotations: { [LEADER_ANNOTATION]: "a" } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["10.0.0.11"], conditions: { ready: true, serving: true, terminating: false } }],
      ports: [{ name: "externalgrpc", port: 8972, protocol: "TCP" }],
    });
    expect(a.types()).toEqual(["leader_acquired", "leader_endpoint_published"]);
    // Renewals do not touch it again once written.
    const calls = a.state.sliceCalls;
    await timers.advance(20_000);
    expect(a.state.sliceCalls).toBe(calls);
    await a.elector.stop();
  });

  it("a slice write that fails does not stop leading: it is reported and written at the next renewal", async () => {
    const store = new ObjectStore();
    const timers = new ManualTimers(settleIo);
    const a = replica(store, timers, "a", "10.0.0.11");
    a.state.slicesDown = true;
    await timers.advance(0);
    expect(a.elector.leading).toBe(true);
    expect(a.events.find((e) => e.type === "leader_endpoint_failed")).toMatchObject({ slice: `${NS}/premiscale-leader`, action: "publish", error: expect.stringMatching(/ECONNREFUSED/) });
    const calls = a.state.sliceCalls;
    await timers.advance(6_000);
    // Three renewals, three retries (said once: the same error), still leading.
    expect(a.state.sliceCalls - calls).toBe(3);
    expect(a.events.filter((e) => e.type === "leader_endpoint_failed")).toHaveLength(1);
    expect(a.elector.leading).toBe(true);
    expect(store.slice()).toBeUndefined();
    a.state.slicesDown = false;
    const fixedAt = timers.now;
    const at = await timers.until(() => addresses(store).includes("10.0.0.11"), 10_000);
    expect(at! - fixedAt).toBeLessThanOrEqual(2_000);
    expect(a.events.filter((e) => e.type === "leader_lost")).toEqual([]);
    await a.elector.stop();
  });

  it("after a takeover it names the new leader, and the old leader's late clear leaves it alone", async () => {
    const store = new ObjectStore();
    const timers = new ManualTimers(settleIo);
    const a = replica(store, timers, "a", "10.0.0.11");
    await timers.advance(0);
    const b = replica(store, timers, "b", "10.0.0.12", { random: () => 0 });
    await timers.advance(3_000);
    expect(addresses(store)).toEqual(["10.0.0.11"]);
    a.state.down = true; // a cannot reach the API server: it can neither renew nor clear
    const took = await timers.until(() => b.elector.leading && addresses(store).includes("10.0.0.12"), 40_000);
    expect(took).not.toBeNull();
    expect(store.slice().metadata.annotations[LEADER_ANNOTATION]).toBe("b");
    expect(addresses(store)).toEqual(["10.0.0.12"]);
    // a's clear, when it lost the term, could not reach the API server: reported.
    expect(a.events.find((e) => e.type === "leader_endpoint_failed" && e.action === "clear")).toBeDefined();
    // Back on the network, a clear from a (a stop, say) finds b's slice and leaves it.
    a.state.down = false;
    await a.endpoint.clear();
    expect(a.events.at(-1)).toMatchObject({ type: "leader_endpoint_left", holder: "b" });
    expect(addresses(store)).toEqual(["10.0.0.12"]);
    await Promise.all([a.elector.stop(), b.elector.stop()]);
  });

  it("a graceful stop empties the slice before the Lease is released, and the next leader fills it", async () => {
    const store = new ObjectStore();
    const timers = new ManualTimers(settleIo);
    const a = replica(store, timers, "a", "10.0.0.11");
    await timers.advance(0);
    const b = replica(store, timers, "b", "10.0.0.12", { random: () => 0 });
    await timers.advance(1_000);
    await a.elector.stop();
    expect(store.slice().endpoints).toEqual([]);
    expect(store.slice().metadata.annotations?.[LEADER_ANNOTATION]).toBeUndefined();
    expect(store.slice().metadata.labels["kubernetes.io/service-name"]).toBe("premiscale-leader");
    expect(a.types()).toEqual(["leader_acquired", "leader_endpoint_published", "leader_lost", "leader_endpoint_cleared", "leader_released"]);
    await timers.until(() => addresses(store).includes("10.0.0.12"), 10_000);
    expect(addresses(store)).toEqual(["10.0.0.12"]);
    await b.elector.stop();
    expect(store.slice().endpoints).toEqual([]);
  });

  it("writes conditionally: a write that lost a race reads again and writes over the newer version", async () => {
    const store = new ObjectStore();
    const { api } = apiFor(store, "a");
    const events: LeaderEndpointEvent[] = [];
    store.put(`${SLICE_PATH}/premiscale-leader`, { metadata: { name: "premiscale-leader", namespace: NS, labels: { team: "ops" }, annotations: { [LEADER_ANNOTATION]: "old" } }, addressType: "IPv4", endpoints: [{ addresses: ["10.0.0.9"] }], ports: [] });
    let sneaked = false;
    store.beforeWrite = (path) => {
      if (!sneaked && path.endsWith("/premiscale-leader")) {
        sneaked = true;
        const cur = store.slice();
        store.put(path, { ...cur, endpoints: [{ addresses: ["10.0.0.99"] }] });
      }
    };
    const ep = leaderEndpoint({ api, namespace: NS, service: "premiscale-leader", identity: "a", address: "10.0.0.11", port: 8972, portName: "externalgrpc", onEvent: (e) => events.push(e) });
    expect(await ep.publish(new AbortController().signal)).toBe(true);
    expect(addresses(store)).toEqual(["10.0.0.11"]);
    // Someone else's label stays; the writes: one refused (stale), one done.
    expect(store.slice().metadata.labels).toMatchObject({ team: "ops", "kubernetes.io/service-name": "premiscale-leader" });
    expect(store.sliceWrites("a")).toHaveLength(1);
    expect(events.map((e) => e.type)).toEqual(["leader_endpoint_published"]);
  });

  it("writes nothing once the term's signal aborted", async () => {
    const store = new ObjectStore();
    const { api, state } = apiFor(store, "a");
    const ep = leaderEndpoint({ api, namespace: NS, service: "premiscale-leader", identity: "a", address: "10.0.0.11", port: 8972, portName: "externalgrpc" });
    const term = new AbortController();
    term.abort();
    expect(await ep.publish(term.signal)).toBe(false);
    expect(state.sliceCalls).toBe(0);
    expect(store.slice()).toBeUndefined();
  });

  it("says what is wrong and how to fix it: RBAC, an address family the slice cannot change to, an address variable unset", async () => {
    const store = new ObjectStore();
    const { api, state } = apiFor(store, "a");
    const events: LeaderEndpointEvent[] = [];
    const ep = (address: string) => leaderEndpoint({ api, namespace: NS, service: "premiscale-leader", identity: "a", address, port: 8972, portName: "", onEvent: (e) => events.push(e) });
    state.slicesForbidden = true;
    expect(await ep("10.0.0.11").publish(new AbortController().signal)).toBe(false);
    expect(events.at(-1)).toMatchObject({
      type: "leader_endpoint_failed",
      error: expect.stringMatching(/^RBAC: premiscale's credentials may not get endpointslices in namespace premiscale: add verb get on endpointslices \(apiGroups \["discovery\.k8s\.io"\]\)/),
    });
    state.slicesForbidden = false;
    expect(await ep("10.0.0.11").publish(new AbortController().signal)).toBe(true);
    // An unnamed port for a Service with one unnamed port.
    expect(store.slice().ports).toEqual([{ port: 8972, protocol: "TCP" }]);
    expect(await ep("fd00::11").publish(new AbortController().signal)).toBe(false);
    expect(events.at(-1)).toMatchObject({ type: "leader_endpoint_failed", error: expect.stringContaining("has addressType IPv4, but this replica's address fd00::11 is IPv6") });
    expect(() => leaderAddress({}, "POD_IP")).toThrow(/the environment variable POD_IP is not set/);
    expect(() => leaderAddress({ POD_IP: "my-pod" }, "POD_IP")).toThrow(/POD_IP is "my-pod", not an IP address/);
    expect(leaderAddress({ POD_IP: " 10.1.2.3\n" }, "POD_IP")).toBe("10.1.2.3");
  });
});
