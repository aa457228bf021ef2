/**
 * Leader election on a `coordination.k8s.io/v1` Lease, after client-go's `tools/leaderelection`, so that of several
 * `premiscale serve` replicas only one runs the node-group loops. One small state machine:
 *
 *   candidate ──acquired──▶ leading ──renew deadline passed / lease taken──▶ candidate (again, unless stopped)
 *      ▲  retry every retryPeriod × (1 + 1.2 × random)       │ renew every retryPeriod
 *      └────────────────────────────── stop(): abort the work, wait for it, release the Lease ──▶ stopped
 *
 * The timing rules (client-go's, with its defaults 15 s / 10 s / 2 s):
 * - **Expiry is judged from this process's own clock**: a Lease held by another identity is taken only when its
 *   record (holder, times, duration, transitions) has not changed for `leaseDurationSeconds` *as observed here*, i.e.
 *   from the local time this process last saw the record change. The holder's `renewTime` is never compared with our
 *   clock, so clock offsets between machines do not matter (only clock *rates* do).
 * - **Every write is conditional**: create (409 when another created it first) or update with the resourceVersion
 *   read (409 when another wrote since): of two candidates that both see an expired Lease, exactly one wins.
 * - **The leader gives up before anyone may take over**: it renews every `retryPeriod`; when a renewal round has not
 *   succeeded within `renewDeadline` it stops leading (the signal handed to `onStartedLeading` aborts) even if a call
 *   is still in flight. Others wait `leaseDuration` (> renewDeadline) from their last observation, so the old leader
 *   has stopped before a new one starts, with `leaseDuration − renewDeadline − retryPeriod` to spare.
 * - **Release on graceful stop**: the work is aborted and awaited first, then the Lease is written with no holder
 *   and a 1 s duration, so another replica takes over at its next retry instead of after the lease duration.
 *
 * Like client-go this is not fencing: a leader whose process is frozen longer than the renew deadline (and whose
 * host calls are in flight) can overlap the next one. The applier's signal limits that to calls already started.
 */
import { KubeApiError, rbacError, statusMessage, type KubeApi, type KubeResponse } from "../kube-api.js";

/** client-go's defaults, in seconds. */
export const LEADER_ELECTION_DEFAULTS = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 } as const;

/** client-go's JitterFactor: candidates retry every retryPeriod × (1 + JITTER × random). */
export const JITTER = 1.2;

/** Timers, injectable for tests. */
export interface ElectionTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What an elector reports (serve logs them; nothing here prints). */
export type LeaderElectionEvent =
  | { type: "leader_acquired"; lease: string; identity: string; transitions: number }
  | { type: "leader_lost"; lease: string; identity: string; reason: string }
  | { type: "leader_renew_failed"; lease: string; identity: string; error: string; sinceRenewMs: number }
  | { type: "leader_observed"; lease: string; identity: string; holder: string }
  | { type: "leader_acquire_failed"; lease: string; identity: string; error: string }
  | { type: "leader_released"; lease: string; identity: string }
  | { type: "leader_release_failed"; lease: string; identity: string; error: string }
  | { type: "leader_callback_failed"; lease: string; identity: string; error: string };

/** Options of `leaderElection`. */
export interface LeaderElectionOptions {
  api: KubeApi;
  namespace: string;
  /** The Lease's name. */
  name: string;
  /** This replica's identity, unique among the candidates (serve: hostname_pid). */
  identity: string;
  /** @default 15 (an integer: the Lease's field is whole seconds) */
  leaseDurationSeconds?: number;
  /** @default 10 */
  renewDeadlineSeconds?: number;
  /** @default 2 */
  retryPeriodSeconds?: number;
  /** Milliseconds of a monotonic-enough local clock. @default Date.now */
  now?: () => number;
  /** Wall-clock time written into the Lease (acquireTime, renewTime). @default new Date(now()) */
  wallClock?: () => Date;
  timers?: ElectionTimers;
  /** [0, 1). @default Math.random */
  random?: () => number;
  /**
   * Called when this replica becomes the leader. `signal` aborts the moment leadership is lost or stop() is called:
   * stop working, before the next host call. Not awaited by the elector (the work runs while leading).
   */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called after the signal aborted; awaited before the Lease is released or acquiring starts again. */
  onStoppedLeading?(): void | Promise<void>;
  /**
   * Called after each successful renewal while leading (every retryPeriod): a chance to retry what the leader keeps
   * up beside the Lease (its EndpointSlice). Not awaited; its failure is reported, never ends the term.
   */
  onRenewed?(): void | Promise<void>;
  onEvent?(e: LeaderElectionEvent): void;
}

/** A running elector. */
export interface LeaderElector {
  /** Whether this replica leads now. */
  readonly leading: boolean;
  /** The holder last observed in the Lease ("" when none). */
  readonly observedHolder: string;
  /** Aborts the work (if leading), awaits onStoppedLeading, releases the Lease. Idempotent. */
  stop(): Promise<void>;
}

/** The Lease's spec fields the algorithm reads and writes. */
interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime: string | null;
  renewTime: string | null;
  leaseTransitions: number;
}

/** RFC 3339 with microseconds: the API server parses MicroTime with exactly six fractional digits. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** Checks the timing rules client-go enforces; returns what is wrong, or null. */
export function checkElectionTiming(t: { leaseDurationSeconds: number; renewDeadlineSeconds: number; retryPeriodSeconds: number }): string | null {
  if (!Number.isInteger(t.leaseDurationSeconds) || t.leaseDurationSeconds < 1) return `leaseDurationSeconds must be a whole number of seconds ≥ 1, got ${t.leaseDurationSeconds}`;
  if (!(t.retryPeriodSeconds > 0)) return `retryPeriodSeconds must be > 0, got ${t.retryPeriodSeconds}`;
  if (!(t.leaseDurationSeconds > t.renewDeadlineSeconds)) return `leaseDurationSeconds (${t.leaseDurationSeconds}) must be greater than renewDeadlineSeconds (${t.renewDeadlineSeconds}): the leader must give up before another replica may take over`;
  if (!(t.renewDeadlineSeconds > JITTER * t.retryPeriodSeconds)) return `renewDeadlineSeconds (${t.renewDeadlineSeconds}) must be greater than ${JITTER} × retryPeriodSeconds (${JITTER * t.retryPeriodSeconds}): a renewal needs room for a retry`;
  return null;
}

const recordOf = (spec: Partial<LeaseRecord> | undefined): LeaseRecord => ({
  holderIdentity: spec?.holderIdentity ?? "",
  leaseDurationSeconds: spec?.leaseDurationSeconds ?? 0,
  acquireTime: spec?.acquireTime ?? null,
  renewTime: spec?.renewTime ?? null,
  leaseTransitions: spec?.leaseTransitions ?? 0,
});
const sameRecord = (a: LeaseRecord | null, b: LeaseRecord) =>
  a !== null &&
  a.holderIdentity === b.holderIdentity &&
  a.leaseDurationSeconds === b.leaseDurationSeconds &&
  a.acquireTime === b.acquireTime &&
  a.renewTime === b.renewTime &&
  a.leaseTransitions === b.leaseTransitions;

/**
 * Starts electing at once (first attempt now) and returns the elector. Throws a `RangeError` naming the field when
 * the timing breaks client-go's rules (see `checkElectionTiming`).
 */
export function leaderElection(o: LeaderElectionOptions): LeaderElector {
  const timing = {
    leaseDurationSeconds: o.leaseDurationSeconds ?? LEADER_ELECTION_DEFAULTS.leaseDurationSeconds,
    renewDeadlineSeconds: o.renewDeadlineSeconds ?? LEADER_ELECTION_DEFAULTS.renewDeadlineSeconds,
    retryPeriodSeconds: o.retryPeriodSeconds ?? LEADER_ELECTION_DEFAULTS.retryPeriodSeconds,
  };
  const bad = checkElectionTiming(timing);
  if (bad) throw new RangeError(`leader election on Lease ${o.namespace}/${o.name}: ${bad}`);
  const now = o.now ?? Date.now;
  const wall = o.wallClock ?? (() => new Date(now()));
  const timers: ElectionTimers = o.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
  const random = o.random ?? Math.random;
  const lease = `${o.namespace}/${o.name}`;
  const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(o.namespace)}/leases`;
  const renewDeadlineMs = timing.renewDeadlineSeconds * 1000;
  const retryMs = timing.retryPeriodSeconds * 1000;
  const emit = (e: LeaderElectionEvent) => {
    try {
      o.onEvent?.(e);
    } catch {
      // a broken listener must not break the election
    }
  };

  // What this process last saw of the Lease, and when (its own clock): the whole basis of expiry.
  let observed: LeaseRecord | null = null;
  let observedAt = 0;
  let resourceVersion: string | null = null;
  let reportedHolder = "";
  let leading: AbortController | null = null;
  let stopped = false;
  // Ends every wait of the loop at once when stop() is called.
  const halt = new AbortController();
  let lastAcquireError = "";

  const observe = (r: LeaseRecord, rv: string | null) => {
    observed = r;
    observedAt = now();
    resourceVersion = rv;
  };
  const isLeader = () => observed?.holderIdentity === o.identity;
  const leaseValid = (at: number) => observed !== null && observedAt + observed.leaseDurationSeconds * 1000 > at;
  const reportHolder = () => {
    const h = observed?.holderIdentity ?? "";
    if (h === reportedHolder) return;
    reportedHolder = h;
    if (h && h !== o.identity) emit({ type: "leader_observed", lease, identity: o.identity, holder: h });
  };

  /** Resolves `p`, or `fallback` once `ms` passed or stop() was called (a call goes on; its answer is ignored). */
  const within = <T>(p: Promise<T>, ms: number, fallback: T): Promise<T> =>
    new Promise((resolve) => {
      if (halt.signal.aborted) return resolve(fallback);
      const done = (v: T) => {
        timers.clearTimeout(h);
        halt.signal.removeEventListener("abort", onHalt);
        resolve(v);
      };
      const onHalt = () => done(fallback);
      const h = timers.setTimeout(() => done(fallback), Math.max(0, ms));
      halt.signal.addEventListener("abort", onHalt, { once: true });
      void p.then(done);
    });
  const sleep = (ms: number) => within(new Promise<void>(() => undefined), ms, undefined);

  const failure = (verb: string, res: KubeResponse): Error =>
    res.status === 403 ? rbacError(res, { verb, resource: "leases", group: "coordination.k8s.io", namespace: o.namespace }) : new KubeApiError(`${verb} Lease ${lease}: ${statusMessage(res)}`, res.status);

  const body = (spec: LeaseRecord) => ({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: o.name, namespace: o.namespace, ...(resourceVersion ? { resourceVersion } : {}) },
    spec: { ...spec, acquireTime: spec.acquireTime ?? undefined, renewTime: spec.renewTime ?? undefined, holderIdentity: spec.holderIdentity || undefined },
  });

  /** PUT conditional on the resourceVersion last read: false on a conflict (someone else wrote first). */
  const update = async (spec: LeaseRecord): Promise<boolean> => {
    const r = await o.api.request("PUT", `${path}/${encodeURIComponent(o.name)}`, body(spec));
    if (r.status === 200) {
      observe(recordOf(r.body.spec), r.body.metadata?.resourceVersion ?? null);
      return true;
    }
    if (r.status === 409) return false;
    throw failure("update", r);
  };

  /** client-go's tryAcquireOrRenew: true when this replica holds the Lease afterwards. Rejects on API errors. */
  const tryAcquireOrRenew = async (): Promise<boolean> => {
    const t = now();
    const mine = (acquireTime: string | null, transitions: number): LeaseRecord => ({
      holderIdentity: o.identity,
      leaseDurationSeconds: timing.leaseDurationSeconds,
      acquireTime,
      renewTime: microTime(wall()),
      leaseTransitions: transitions,
    });
    // Fast path: the leader renews on the version it wrote last, without reading first.
    if (isLeader() && leaseValid(t) && (await update(mine(observed!.acquireTime, observed!.leaseTransitions)))) return true;
    const got = await o.api.request("GET", `${path}/${encodeURIComponent(o.name)}`);
    if (got.status === 404) {
      resourceVersion = null;
      const stamp = microTime(wall());
      const r = await o.api.request("POST", path, body({ ...mine(stamp, 0), acquireTime: stamp, renewTime: stamp }));
      if (r.status === 201) {
        observe(recordOf(r.body.spec), r.body.metadata?.resourceVersion ?? null);
        return true;
      }
      if (r.status === 409) return false;
      throw failure("create", r);
    }
    if (got.status !== 200) throw failure("get", got);
    const current = recordOf(got.body.spec);
    if (!sameRecord(observed, current)) observe(current, got.body.metadata?.resourceVersion ?? null);
    else resourceVersion = got.body.metadata?.resourceVersion ?? resourceVersion;
    reportHolder();
    if (current.holderIdentity !== "" && !isLeader() && leaseValid(t)) return false;
    const next = isLeader() ? mine(current.acquireTime, current.leaseTransitions) : mine(microTime(wall()), current.leaseTransitions + 1);
    return update(next);
  };

  // The attempt whose calls are out: stop() waits for it, so a write landing late cannot take the Lease after the
  // release decision (it is bounded by the API client's call timeout).
  let inFlight: Promise<unknown> = Promise.resolve();

  /** One attempt, its error reported as an event and counted as a failure. */
  const attempt = async (phase: "acquire" | "renew", since: number): Promise<boolean> => {
    try {
      const call = tryAcquireOrRenew();
      inFlight = call.catch(() => undefined);
      const ok = await call;
      reportHolder();
      if (phase === "acquire") lastAcquireError = "";
      return ok;
    } catch (e) {
      const error = (e as Error).message;
      if (phase === "renew") emit({ type: "leader_renew_failed", lease, identity: o.identity, error, sinceRenewMs: now() - since });
      else if (error !== lastAcquireError) {
        // Said once per distinct error, not every retry period.
        lastAcquireError = error;
        emit({ type: "leader_acquire_failed", lease, identity: o.identity, error });
      }
      return false;
    }
  };

  const lead = async (): Promise<string> => {
    let renewedAt = now();
    for (;;) {
      await sleep(retryMs);
      if (stopped) return "stopped";
      const deadline = now() + renewDeadlineMs;
      let ok = false;
      while (!stopped) {
        ok = await within(attempt("renew", renewedAt), deadline - now(), false);
        if (ok || stopped) break;
        if (!isLeader() && observed?.holderIdentity) return `${observed.holderIdentity} holds the Lease now`;
        if (now() >= deadline) break;
        await sleep(Math.min(retryMs, deadline - now()));
        if (now() >= deadline) break;
      }
      if (stopped) return "stopped";
      if (!ok) return `the Lease was not renewed within renewDeadlineSeconds (${timing.renewDeadlineSeconds} s)`;
      renewedAt = now();
      try {
        void Promise.resolve(o.onRenewed?.()).catch((e: unknown) => emit({ type: "leader_callback_failed", lease, identity: o.identity, error: (e as Error).message }));
      } catch (e) {
        emit({ type: "leader_callback_failed", lease, identity: o.identity, error: (e as Error).message });
      }
    }
  };

  const run = async () => {
    while (!stopped) {
      // Bounded like a renewal round: a call that hangs must not keep a candidate from trying again.
      if (!(await within(attempt("acquire", now()), renewDeadlineMs, false))) {
        await sleep(retryMs * (1 + JITTER * random()));
        continue;
      }
      if (stopped) break;
      const term = new AbortController();
      leading = term;
      emit({ type: "leader_acquired", lease, identity: o.identity, transitions: observed?.leaseTransitions ?? 0 });
      try {
        void Promise.resolve(o.onStartedLeading(term.signal)).catch((e: unknown) => emit({ type: "leader_callback_failed", lease, identity: o.identity, error: (e as Error).message }));
      } catch (e) {
        emit({ type: "leader_callback_failed", lease, identity: o.identity, error: (e as Error).message });
      }
      const reason = await lead();
      term.abort(new Error(`leadership of Lease ${lease} lost: ${reason}`));
      leading = null;
      emit({ type: "leader_lost", lease, identity: o.identity, reason });
      try {
        await o.onStoppedLeading?.();
      } catch (e) {
        emit({ type: "leader_callback_failed", lease, identity: o.identity, error: (e as Error).message });
      }
    }
  };

  const running = run();
  let stopping: Promise<void> | null = null;
  return {
    get leading() {
      return leading !== null;
    },
    get observedHolder() {
      return observed?.holderIdentity ?? "";
    },
    stop: () =>
      (stopping ??= (async () => {
        stopped = true;
        halt.abort();
        leading?.abort(new Error(`leadership of Lease ${lease} given up: premiscale is stopping`));
        await running;
        await inFlight;
        if (!isLeader()) return;
        // Written only after the work stopped (onStoppedLeading returned): the next leader never overlaps it.
        const t = microTime(wall());
        try {
          const ok = await update({ holderIdentity: "", leaseDurationSeconds: 1, acquireTime: t, renewTime: t, leaseTransitions: observed!.leaseTransitions });
          emit(ok ? { type: "leader_released", lease, identity: o.identity } : { type: "leader_release_failed", lease, identity: o.identity, error: "the Lease changed meanwhile (409)" });
        } catch (e) {
          emit({ type: "leader_release_failed", lease, identity: o.identity, error: (e as Error).message });
        }
      })()),
  };
}
