import { ManualTimers, settleIo } from "../testing/manual-timers.js";
import { describe, expect, it } from "vitest";
import type { KubeApi, KubeResponse } from "../kube-api.js";
import { checkElectionTiming, leaderElection, microTime, type LeaderElectionEvent, type LeaderElector } from "./leader-election.js";

// The algorithm against an in-memory Lease store that behaves like the API server where it matters (404 before
// create, 409 on a create race or a stale resourceVersion), driven by one manual clock: every wait is a timer the
// test advances, so the timing rules are checked to the millisecond. The real API server is in
// test/native-drain-election.kubernetes.test.ts.


/** One Lease in memory, API-server-like: resourceVersion bumps on every write, conditional PUT. */
class LeaseStore {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  lease: any = null;
  private rv = 100;
  writes: { by: string; spec: Record<string, unknown> }[] = [];

  handle(who: string, method: string, body: unknown): KubeResponse {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const b = body as any;
    if (method === "GET") return this.lease ? { status: 200, body: structuredClone(this.lease) } : { status: 404, body: { reason: "NotFound" } };
    if (method === "POST") {
      if (this.lease) return { status: 409, body: { reason: "AlreadyExists" } };
      this.lease = { ...b, metadata: { ...b.metadata, resourceVersion: String(++this.rv) } };
      this.writes.push({ by: who, spec: b.spec });
      return { status: 201, body: structuredClone(this.lease) };
    }
    if (method === "PUT") {
      if (!this.lease) return { status: 404, body: { reason: "NotFound" } };
      if (b.metadata.resourceVersion !== this.lease.metadata.resourceVersion) return { status: 409, body: { reason: "Conflict", message: "the object has been modified" } };
      this.lease = { ...b, metadata: { ...b.metadata, resourceVersion: String(++this.rv) } };
      this.writes.push({ by: who, spec: b.spec });
      return { status: 200, body: structuredClone(this.lease) };
    }
    return { status: 405, body: {} };
  }
}

/**
 * One replica's view of the API: it can be cut off (rejects, as a refused connection) or made to hang (until the
 * client's own call timeout, 10 s, as kube-api.ts has one).
 */
function apiFor(store: LeaseStore, who: string, timers: ManualTimers) {
  const state = { down: false, hang: false, forbidden: false, calls: 0 };
  const api: KubeApi = {
    server: "https://fake",
    request: async (method, _path, body) => {
      state.calls++;
      await Promise.resolve();
      if (state.hang) return new Promise<KubeResponse>((_, reject) => timers.setTimeout(() => reject(new Error(`${method} lease: no answer within 10 s`)), 10_000));
      if (state.down) throw new Error(`${method} lease: connect ECONNREFUSED`);
      if (state.forbidden) return { status: 403, body: { message: `leases.coordination.k8s.io "premiscale" is forbidden: User "${who}" cannot ${method === "GET" ? "get" : "update"} resource "leases"` } };
      return store.handle(who, method, body);
    },
  };
  return { api, state };
}

function candidate(store: LeaseStore, timers: ManualTimers, identity: string, o: { wall?: () => Date; random?: () => number; stopHold?: Promise<void> } = {}) {
  const { api, state } = apiFor(store, identity, timers);
  const events: (LeaderElectionEvent & { t: number })[] = [];
  const terms: { startedAt: number; signal: AbortSignal; abortedAt: number | null }[] = [];
  const elector: LeaderElector = leaderElection({
    api,
    namespace: "premiscale",
    name: "premiscale",
    identity,
    now: () => timers.now,
    wallClock: o.wall ?? (() => new Date(Date.UTC(2026, 11, 3) + timers.now)),
    timers,
    random: o.random ?? (() => 0.5),
    onStartedLeading: (signal) => {
      const term = { startedAt: timers.now, signal, abortedAt: null as number | null };
      terms.push(term);
      signal.addEventListener("abort", () => (term.abortedAt = timers.now));
    },
    onStoppedLeading: () => o.stopHold,
    onEvent: (e) => events.push({ ...e, t: timers.now }),
  });
  return { elector, state, events, terms, identity };
}

describe("leader election on a Lease", () => {
  it("a lone candidate creates the Lease at once and leads, with client-go's defaults written in it", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    const a = candidate(store, timers, "a");
    await timers.advance(0);
    expect(a.elector.leading).toBe(true);
    expect(a.terms).toHaveLength(1);
    expect(store.lease.spec).toMatchObject({ holderIdentity: "a", leaseDurationSeconds: 15, leaseTransitions: 0 });
    // MicroTime: six fractional digits, or the API server refuses the object.
    expect(store.lease.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(a.events.map((e) => e.type)).toEqual(["leader_acquired"]);
    await a.elector.stop();
  });

  it("the leader renews every retry period, conditional on the version it wrote (no read in between)", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    const a = candidate(store, timers, "a");
    await timers.advance(0);
    const calls = a.state.calls;
    await timers.advance(10_000);
    expect(store.writes.filter((w) => w.by === "a")).toHaveLength(1 + 5);
    expect(a.state.calls - calls).toBe(5); // one PUT per renewal: the fast path
    expect(a.elector.leading).toBe(true);
    await a.elector.stop();
  });

  it("a second candidate waits while the holder renews, however far off the holder's clock is", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    // The holder's renewTime says 2001: a candidate comparing it with its own clock would take over at once.
    const a = candidate(store, timers, "a", { wall: () => new Date(Date.UTC(2001, 0, 1) + timers.now) });
    await timers.advance(0);
    const b = candidate(store, timers, "b");
    await timers.advance(120_000);
    expect(a.elector.leading).toBe(true);
    expect(b.elector.leading).toBe(false);
    expect(b.terms).toHaveLength(0);
    expect(b.elector.observedHolder).toBe("a");
    expect(b.events.map((e) => e.type)).toEqual(["leader_observed"]);
    await Promise.all([a.elector.stop(), b.elector.stop()]);
  });

  it("takes over an abandoned Lease only once it has not changed for the lease duration as observed locally", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    // A holder that died: its Lease says it renewed "now" by a clock one hour ahead of ours.
    store.lease = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "premiscale", namespace: "premiscale", resourceVersion: "7" },
      spec: { holderIdentity: "dead", leaseDurationSeconds: 15, renewTime: microTime(new Date(Date.UTC(2026, 11, 3, 1))), acquireTime: microTime(new Date(Date.UTC(2026, 11, 3, 1))), leaseTransitions: 4 },
    };
    await timers.advance(5_000);
    const b = candidate(store, timers, "b", { random: () => 0 });
    const firstSeen = timers.now;
    const took = await timers.until(() => b.elector.leading, 60_000);
    expect(took).not.toBeNull();
    // Not before 15 s after b first saw the record; no later than one retry period after that.
    expect(took! - firstSeen).toBeGreaterThanOrEqual(15_000);
    expect(took! - firstSeen).toBeLessThanOrEqual(15_000 + 2_000);
    expect(store.lease.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 5 });
    await b.elector.stop();
  });

  it("a leader that cannot renew stops leading at the renew deadline, before the other candidate may take over", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    const a = candidate(store, timers, "a");
    await timers.advance(0);
    const b = candidate(store, timers, "b", { random: () => 0 });
    await timers.advance(3_000);
    const lastRenew = store.writes.filter((w) => w.by === "a").length;
    a.state.down = true; // the API server is unreachable from a only
    const cutAt = timers.now;
    const lostAt = await timers.until(() => a.terms[0]!.abortedAt !== null, 30_000);
    expect(lostAt).not.toBeNull();
    // Its last renewal was at most one retry period before the cut; it gives up within renewDeadline (10 s) of the
    // next round's start, i.e. at most 2 + 10 s after the last renewal.
    expect(lostAt! - cutAt).toBeLessThanOrEqual(12_000);
    expect(a.events.filter((e) => e.type === "leader_renew_failed").length).toBeGreaterThanOrEqual(2);
    expect(a.events.find((e) => e.type === "leader_lost")).toMatchObject({ reason: expect.stringMatching(/not renewed within renewDeadlineSeconds \(10 s\)/) });
    const took = await timers.until(() => b.elector.leading, 30_000);
    expect(took).not.toBeNull();
    // Exactly one at a time: a had stopped before b started, and b waited the full lease duration since a's last write.
    expect(b.terms[0]!.startedAt).toBeGreaterThan(a.terms[0]!.abortedAt!);
    expect(store.writes.filter((w) => w.by === "a").length).toBe(lastRenew);
    expect(store.lease.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    await Promise.all([a.elector.stop(), b.elector.stop()]);
  });

  it("a renewal call that hangs counts as failed at the renew deadline: the signal aborts while the call is still out", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    const a = candidate(store, timers, "a");
    await timers.advance(0);
    a.state.hang = true;
    const at = timers.now;
    const lostAt = await timers.until(() => a.terms[0]!.signal.aborted, 30_000);
    expect(lostAt! - at).toBe(2_000 + 10_000);
    expect(String(a.terms[0]!.signal.reason)).toMatch(/leadership of Lease premiscale\/premiscale lost/);
    a.state.hang = false;
    // stop() waits for the call still out (its timeout) before deciding whether to release.
    const stopping = a.elector.stop();
    await timers.advance(10_000);
    await stopping;
  });

  it("on stop, aborts the work, waits for it, then releases the Lease so the other takes over at its next retry", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    let finishWork!: () => void;
    const work = new Promise<void>((r) => (finishWork = r));
    const a = candidate(store, timers, "a", { stopHold: work });
    await timers.advance(0);
    const b = candidate(store, timers, "b", { random: () => 0 });
    await timers.advance(1_000);
    const stopping = a.elector.stop();
    await timers.advance(0);
    expect(a.terms[0]!.signal.aborted).toBe(true);
    // The work has not returned: the Lease still names a, and b does not lead.
    await timers.advance(5_000);
    expect(store.lease.spec.holderIdentity).toBe("a");
    expect(b.elector.leading).toBe(false);
    finishWork();
    await stopping;
    expect(store.lease.spec.holderIdentity).toBeUndefined();
    expect(store.lease.spec.leaseDurationSeconds).toBe(1);
    expect(a.events.map((e) => e.type)).toEqual(["leader_acquired", "leader_lost", "leader_released"]);
    const released = timers.now;
    const took = await timers.until(() => b.elector.leading, 10_000);
    expect(took! - released).toBeLessThanOrEqual(2_000);
    expect(store.lease.spec).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    await b.elector.stop();
  });

  it("never has two leaders: five candidates, leaders cut off and restored at random, for ten simulated minutes", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const cs = ["a", "b", "c", "d", "e"].map((id) => candidate(store, timers, id, { random: rand }));
    let overlaps = 0;
    let leaderless = 0;
    for (let step = 0; step < 600; step++) {
      if (rand() < 0.05) {
        const c = cs[Math.floor(rand() * cs.length)]!;
        c.state.down = !c.state.down;
      }
      await timers.advance(1_000);
      const leaders = cs.filter((c) => c.elector.leading);
      if (leaders.length > 1) overlaps++;
      if (leaders.length === 0) leaderless++;
    }
    expect(overlaps).toBe(0);
    // Leadership moved (the cuts did something) and was not absent most of the time.
    expect(store.lease.spec.leaseTransitions).toBeGreaterThan(1);
    expect(leaderless).toBeLessThan(300);
    for (const c of cs) c.state.down = false;
    await Promise.all(cs.map((c) => c.elector.stop()));
  });

  it("reports a 403 once, naming the verb, the resource and the namespace, however often it retries", async () => {
    const store = new LeaseStore();
    const timers = new ManualTimers(settleIo);
    const a = candidate(store, timers, "a");
    a.state.forbidden = true;
    await timers.advance(30_000);
    const failed = a.events.filter((e) => e.type === "leader_acquire_failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      error: expect.stringMatching(/^RBAC: premiscale's credentials may not get leases in namespace premiscale: add verb get on leases \(apiGroups \["coordination.k8s.io"\]\)/),
    });
    expect(a.elector.leading).toBe(false);
    a.state.forbidden = false;
    await timers.advance(5_000);
    expect(a.elector.leading).toBe(true);
    await a.elector.stop();
  });

  it("refuses timing that breaks client-go's rules, naming the rule", () => {
    expect(checkElectionTiming({ leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 })).toBeNull();
    expect(checkElectionTiming({ leaseDurationSeconds: 10, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 })).toMatch(/must be greater than renewDeadlineSeconds/);
    expect(checkElectionTiming({ leaseDurationSeconds: 15, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 })).toMatch(/greater than 1.2 × retryPeriodSeconds/);
    expect(checkElectionTiming({ leaseDurationSeconds: 1.5, renewDeadlineSeconds: 1, retryPeriodSeconds: 0.5 })).toMatch(/whole number/);
    expect(() => leaderElection({ api: { server: "x", request: async () => ({ status: 500, body: {} }) }, namespace: "n", name: "l", identity: "i", leaseDurationSeconds: 5, renewDeadlineSeconds: 6, onStartedLeading: () => undefined })).toThrow(
      /Lease n\/l: leaseDurationSeconds \(5\) must be greater than renewDeadlineSeconds \(6\)/,
    );
  });
});
