/**
 * `premiscale serve`'s Kubernetes mode (a top-level `kubernetes` block): cluster-autoscaler's externalgrpc cloud
 * provider and the loop that plans and applies the node groups (pipeline/autoscaler-provider.ts), logged as JSON
 * lines and measured on serve's `/metrics`. With `kubernetes.leaderElection.enabled`, both run only while this
 * replica holds the Lease (kubernetes/native/leader-election.ts): they start when it is acquired and stop when it
 * is lost, the pass in flight aborted at once so no further host call is made. With `leaderElection.endpoint`, the
 * leader also writes its address into the EndpointSlice of a selector-less Service once its listener is up, so
 * cluster-autoscaler dials only it (kubernetes/native/leader-endpoint.ts), and empties it before releasing the Lease.
 */
import { hostname } from "node:os";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Config } from "../config/types.js";
import { openKubeApi } from "../kubernetes/kube-api.js";
import { leaderElection, type LeaderElectionEvent } from "../kubernetes/native/leader-election.js";
import { leaderAddress, leaderEndpoint, type LeaderEndpoint, type LeaderEndpointEvent } from "../kubernetes/native/leader-endpoint.js";
import { startAutoscalerProvider, type AutoscalerEvent } from "../pipeline/autoscaler-provider.js";
import { startNativeProvider, type NativeEvent, type RunningNativeProvider } from "../pipeline/native-provider.js";

/** The Kubernetes mode as serve holds it. */
export interface RunningKubernetesMode {
  /** The externalgrpc address (listening only while leading, with leader election); null in native mode (no listener). */
  readonly address: string | null;
  /** The Lease (namespace/name) and this replica's identity, when electing. */
  readonly leaderElection: { lease: string; identity: string } | null;
  /** Stops the provider; with leader election, aborts the work, waits for it, then releases the Lease. */
  stop(): Promise<void>;
}

/** Calls that change a node group: logged at info; the others (cluster-autoscaler polls them) at debug. */
const CHANGING = new Set(["NodeGroupIncreaseSize", "NodeGroupDeleteNodes", "NodeGroupDecreaseTargetSize"]);

/**
 * Starts the Kubernetes mode for `config` (which has a `kubernetes` block); its events go to `log` and `registry`.
 * Without leader election the provider starts now (rejecting on a bad listener or kubeconfig); with it, the
 * credentials are checked now and the provider starts whenever this replica becomes the leader.
 */
export async function startKubernetesMode(config: Config, log: Logger, registry: Registry, o: { identity?: string; env?: Record<string, string | undefined> } = {}): Promise<RunningKubernetesMode> {
  const calls = new Histogram({
    name: "premiscale_externalgrpc_call_duration_seconds",
    help: "externalgrpc calls from cluster-autoscaler, by method and gRPC status: time from the request to the answer.",
    labelNames: ["method", "code"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  const passes = new Counter({
    name: "premiscale_autoscaler_passes_total",
    help: "Plan-and-apply passes over the node groups, by outcome (no_changes, applied, partial, failed, locked).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  for (const outcome of ["no_changes", "applied", "partial", "failed", "locked"]) passes.inc({ outcome }, 0);
  const onEvent = (e: AutoscalerEvent) => {
    switch (e.type) {
      case "externalgrpc_listening":
        if (e.secure) log.info({ event: "externalgrpc_listening", address: e.address, tls: "mutual", groups: e.groups });
        else log.warn({ event: "externalgrpc_listening", address: e.address, tls: "none", groups: e.groups, reason: "plaintext: allowed only on a loopback address (set kubernetes.externalGrpc.tls for anything else)" });
        return;
      case "externalgrpc_call": {
        const { type: _t, ...call } = e;
        calls.observe({ method: e.method, code: e.code }, e.durationMs / 1000);
        if (e.code !== "OK") log.warn({ event: "externalgrpc_refused", ...call });
        else log[CHANGING.has(e.method) ? "info" : "debug"]({ event: "externalgrpc_call", ...call });
        return;
      }
      case "intent": {
        const { type: _t, ...change } = e;
        log.info({ event: "intent_recorded", ...change });
        return;
      }
      case "pass_start":
        log.debug({ event: "autoscaler_pass_start", trigger: e.trigger });
        return;
      case "pass_done": {
        const { type: _t, ...r } = e;
        passes.inc({ outcome: e.outcome });
        for (const f of e.recorded) log.warn({ event: "failed_instance_reported", ...f });
        log[e.outcome === "failed" || e.outcome === "locked" ? "warn" : e.outcome === "no_changes" ? "debug" : "info"]({ event: "autoscaler_pass_done", ...r, durationMs: Math.round(e.durationMs) });
        return;
      }
      case "apply": {
        const a = e.event;
        if (a.type === "apply_progress") log.debug({ event: "apply_step", address: a.address, step: a.step, elapsedMs: Math.round(a.elapsedMs) });
        else if (a.type === "apply_errored" || a.type === "cleanup_errored") log.warn({ event: a.type, ...a, type: undefined });
        else log.info({ event: a.type, ...a, type: undefined });
        return;
      }
    }
  };
  const native = config.kubernetes?.native ? nativeMode(config, log, registry) : null;
  const start = (signal?: AbortSignal, leaderOf?: string): Promise<{ address: string | null; stop(): Promise<void> }> =>
    native ? native(signal, leaderOf) : startAutoscalerProvider(config, {
      env: process.env,
      onEvent,
      serverLog: (line) => {
        const { time: _time, level, ...fields } = line;
        log[level](fields);
      },
      ...(signal ? { signal } : {}),
      ...(leaderOf ? { leaderOf } : {}),
    });
  const k = config.kubernetes!;
  const le = k.leaderElection;
  if (!le?.enabled) {
    const p = await start();
    return { address: p.address, leaderElection: null, stop: () => p.stop() };
  }

  const api = openKubeApi(k);
  const identity = o.identity ?? `${hostname()}_${process.pid}`;
  const namespace = le.namespace ?? api.namespace ?? "default";
  const lease = `${namespace}/${le.leaseName}`;
  // Checked before electing: a replica that could lead but not say where would send cluster-autoscaler nowhere.
  const endpoint: LeaderEndpoint | null =
    le.endpoint && !native
      ? leaderEndpoint({
          api,
          namespace: le.endpoint.namespace ?? namespace,
          service: le.endpoint.service,
          identity,
          address: leaderAddress(o.env ?? process.env, le.endpoint.addressEnv),
          port: k.externalGrpc.port,
          portName: le.endpoint.portName,
          onEvent: (e: LeaderEndpointEvent) => logEndpoint(log, e),
        })
      : null;
  const leading = new Gauge({ name: "premiscale_leader", help: "1 while this replica holds the leader election Lease (and runs the node-group loops), else 0.", labelNames: ["lease"] as const, registers: [registry] });
  leading.set({ lease }, 0);
  let provider: Promise<{ stop(): Promise<void> } | null> | null = null;
  // The term whose listener is up: the slice is written (and retried at each renewal) only then.
  let listening: AbortSignal | null = null;
  const elector = leaderElection({
    api,
    namespace,
    name: le.leaseName,
    identity,
    leaseDurationSeconds: le.leaseDurationSeconds,
    renewDeadlineSeconds: le.renewDeadlineSeconds,
    retryPeriodSeconds: le.retryPeriodSeconds,
    onStartedLeading: (signal) => {
      leading.set({ lease }, 1);
      provider = start(signal, lease).then(
        (p) => {
          if (endpoint && !signal.aborted) {
            listening = signal;
            void endpoint.publish(signal);
          }
          return p;
        },
        (e: unknown) => {
          // Holding the Lease without running would block every other replica: give it up.
          log.error({ event: "kubernetes_mode_failed", lease, identity, reason: `${(e as Error).message}: leaving the election so another replica can lead` });
          void elector.stop();
          return null;
        },
      );
    },
    onRenewed: () => {
      if (endpoint && listening && !listening.aborted && !endpoint.published) void endpoint.publish(listening);
    },
    onStoppedLeading: async () => {
      leading.set({ lease }, 0);
      listening = null;
      // Both before the Lease is released: the slice stops naming this replica while its listener closes.
      await Promise.all([
        (async () => {
          const p = await provider;
          provider = null;
          await p?.stop();
        })(),
        endpoint?.clear(),
      ]);
    },
    onEvent: (e: LeaderElectionEvent) => logElection(log, e),
  });
  return { address: native ? null : `${k.externalGrpc.host}:${k.externalGrpc.port}`, leaderElection: { lease, identity }, stop: () => elector.stop() };
}

/** Leader election events as log lines: changes of leadership at info, trouble at warn. */
function logElection(log: Logger, e: LeaderElectionEvent): void {
  const { type, ...fields } = e;
  switch (type) {
    case "leader_acquired":
    case "leader_released":
    case "leader_observed":
      log.info({ event: type, ...fields });
      return;
    case "leader_callback_failed":
      log.error({ event: type, ...fields });
      return;
    default:
      log.warn({ event: type, ...fields });
  }
}

/** The leader's EndpointSlice events as log lines: writes at info, failures at warn (the next renewal retries). */
function logEndpoint(log: Logger, e: LeaderEndpointEvent): void {
  const { type, ...fields } = e;
  if (type === "leader_endpoint_failed") {
    const reason =
      e.action === "publish"
        ? "cluster-autoscaler may not reach the leader until the slice is written: retried at each renewal (said again only when the error changes)"
        : "the slice may name this replica, which no longer listens, until the next leader writes it";
    log.warn({ event: type, ...fields, reason });
  } else log.info({ event: type, ...fields });
}

/**
 * Native mode (`kubernetes.mode: native`): premiscale's own scans, logged as JSON lines (a scan that changes nothing at
 * debug; pods no group can take at warn, every scan, so they stay visible) and counted on `/metrics`. Returns how to
 * start it (once, or each time this replica becomes the leader: the metrics are registered once, here).
 */
function nativeMode(config: Config, log: Logger, registry: Registry): (signal?: AbortSignal, leaderOf?: string) => Promise<RunningNativeProvider> {
  const scans = new Counter({
    name: "premiscale_native_scans_total",
    help: "Native mode's scans of the cluster, by outcome (no_changes, skipped, applied, partial, failed, locked).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  for (const outcome of ["no_changes", "skipped", "applied", "partial", "failed", "locked"]) scans.inc({ outcome }, 0);
  const onEvent = (e: NativeEvent) => {
    switch (e.type) {
      case "native_started":
        log.info({ event: "native_started", groups: e.groups, scanIntervalSeconds: e.scanIntervalSeconds });
        return;
      case "pods_batched":
        log.info({ event: "pods_batched", pods: e.pods });
        return;
      case "scan_start":
        log.debug({ event: "native_scan_start", trigger: e.trigger });
        return;
      case "scan_done": {
        const { type: _t, ...r } = e;
        scans.inc({ outcome: e.outcome });
        for (const u of e.unplaceable) log.warn({ event: "pod_unplaceable", pod: u.pod, groups: u.groups, reason: "no node group can hold this pod: no scale-up for it" });
        const quiet = (e.outcome === "no_changes" || e.outcome === "skipped") && !e.halted && !e.released?.length;
        log[e.outcome === "failed" || e.outcome === "locked" || e.halted ? "warn" : quiet ? "debug" : "info"]({ event: "native_scan_done", ...r, durationMs: Math.round(e.durationMs) });
        return;
      }
      case "native_error":
        log.warn({ event: "native_error", error: e.error });
        return;
      case "state":
        if (e.event.type === "lock_stale_removed") log.warn({ event: "lock_stale_removed", holder: e.event.holder, reason: "its holder died or led the Lease before this replica: the lock is taken over" });
        else log.info({ event: e.event.type, ...e.event, type: undefined });
        return;
      case "apply": {
        const a = e.event;
        if (a.type === "apply_progress") log.debug({ event: "apply_step", address: a.address, step: a.step, elapsedMs: Math.round(a.elapsedMs) });
        else if (a.type === "apply_errored" || a.type === "cleanup_errored") log.warn({ event: a.type, ...a, type: undefined });
        else log.info({ event: a.type, ...a, type: undefined });
        return;
      }
    }
  };
  return (signal, leaderOf) =>
    startNativeProvider(config, {
      env: process.env,
      onEvent,
      serverLog: (line) => {
        const { time: _time, level, ...fields } = line;
        log[level](fields);
      },
      ...(signal ? { signal } : {}),
      ...(leaderOf ? { leaderOf } : {}),
    });
}
