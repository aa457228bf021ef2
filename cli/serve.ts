/**
 * `premiscale serve`: the long-running server. It answers guests' check-ins and heartbeats (recorded in the check-in
 * ledger that a concurrently running apply reads), `/healthz`, `/ready` and Prometheus `/metrics` about premiscale itself, and,
 * when the metrics store is the embedded SQLite one, runs the collector: every `metrics.intervalSeconds`, the
 * counters of every domain state records, one bulk call per host on a virsh session of its own.
 */
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { Option, type Command } from "commander";
import { pino, type Logger } from "pino";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { summarizeApply, type ApplySummary } from "../applier/journal.js";
import { PremiscaleError } from "../config/errors.js";
import { loadConfig } from "../pipeline/config.js";
import type { Config } from "../config/types.js";
import { VERSION } from "../config/version.js";
import { Collector, type HostReport } from "../metrics/collector.js";
import { openConfiguredSource } from "../metrics/from-config.js";
import type { SqliteStore } from "../metrics/sqlite-store.js";
import { makeProvider } from "../providers/index.js";
import { logSettings, type LogLevel } from "../reconciler/logger.js";
import { createCheckInServer, hmacTokenVerifier, type ServerLogLine } from "../server/check-in-server.js";
import { CheckInLedger, ledgerRecorder, loadServerSecret } from "../server/check-in-ledger.js";
import { GitStateStore } from "../state/git-state-store.js";
import { membersOf, type State } from "../state/types.js";
import { startKubernetesMode, type RunningKubernetesMode } from "./serve-kubernetes.js";
import { configPath, journalPath, runtimeDir } from "./context.js";
import type { Output } from "./output.js";

/** The options of `premiscale serve`, as parsed by commander. */
export interface ServeCommandOptions {
  /** debug | info | warn | error; default `PREMISCALE_LOG_LEVEL`, else info. */
  logLevel?: string;
}

/** A running `premiscale serve`, made by `startServe`. */
export interface RunningServe {
  /** `http://host:port` it listens on. */
  readonly url: string;
  /** The registry `/metrics` serves (the check-in server's, with the collector's metrics added). */
  readonly metrics: Registry;
  /**
   * Stops accepting requests, lets those in flight and the collection cycle in flight finish, then closes the
   * metrics database and the providers' connections. Idempotent.
   */
  stop(): Promise<void>;
}

/** The members state records (warm pool VMs left out), by host: what the collector samples. Hosts not in `hosts` are left out. Pure. */
export function ownedByHost(state: State | null, hosts: ReadonlySet<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const g of state?.groups ?? []) {
    // A warm pool's VMs are not members: their counters would only skew the group's metrics.
    for (const i of membersOf(g)) {
      if (!hosts.has(i.host)) continue;
      const names = out.get(i.host) ?? [];
      names.push(i.name);
      out.set(i.host, names);
    }
  }
  return out;
}

/**
 * Starts serving for `config`: the check-in server on `config.server` with the server secret and check-in ledger in
 * the state directory's `.premiscale/` (the same ones apply uses; heartbeats are recorded there too), and the
 * collector when `metrics.store.type` is `sqlite`. Rejects with a `PremiscaleError` when the address cannot be bound
 * (nothing is left running then).
 */
export async function startServe(config: Config, log: Logger): Promise<RunningServe> {
  const dir = runtimeDir(config);
  const secret = await loadServerSecret(dir);
  const recorder = ledgerRecorder(new CheckInLedger(dir), (id, what, e) =>
    log.error({ event: "internal_error", instanceId: id, reason: `recording the ${what} in ${join(dir, "check-ins")} failed: ${e.message}` }),
  );
  let stopping = false;
  let collection: Collection | null = null;
  const server = createCheckInServer({
    host: config.server.host,
    port: config.server.port,
    tokens: hmacTokenVerifier(secret),
    logger: (line) => logServerLine(log, line),
    ready: () => !stopping && (collection?.stateReadable ?? true),
    onHeartbeat: recorder.onHeartbeat,
    onCheckIn: recorder.onCheckIn,
  });
  try {
    await server.listen();
  } catch (e) {
    const busy = (e as { cause?: NodeJS.ErrnoException }).cause?.code === "EADDRINUSE";
    throw new PremiscaleError(
      `cannot serve on ${config.server.host}:${config.server.port} (server.listen in ${config.file}): ${busy ? "the port is already in use" : ((e as { cause?: Error }).cause?.message ?? (e as Error).message)}`,
      busy ? "serve_port_in_use" : "serve_listen_failed",
      busy
        ? "stop what listens there (another premiscale serve, or an apply that is waiting for check-ins), or set server.listen to a free address and server.advertiseUrl to match"
        : "check server.listen: the address must belong to this machine",
      { cause: e },
    );
  }
  applyMetrics(server.metrics, `${journalPath(config)}.last`);
  try {
    if (config.metrics.store.type === "sqlite") {
      collection = await startCollection(config, server.metrics, log);
    } else {
      log.info({ event: "collector_off", reason: `metrics.store.type is ${config.metrics.store.type}: premiscale only reads that source, it does not collect into it` });
    }
  } catch (e) {
    await server.close();
    throw e;
  }
  let kubernetes: RunningKubernetesMode | null = null;
  if (config.kubernetes) {
    try {
      kubernetes = await startKubernetesMode(config, log, server.metrics);
    } catch (e) {
      await Promise.all([server.close(), collection?.stop()]);
      throw e;
    }
  }
  log.info({
    event: "serving",
    version: VERSION,
    url: server.url,
    advertiseUrl: config.server.advertiseUrl,
    ledger: join(dir, "check-ins"),
    collector: collection ? { store: collection.storePath, intervalSeconds: config.metrics.intervalSeconds, hosts: config.hosts.length } : null,
    externalGrpc: kubernetes ? kubernetes.address : null,
    ...(kubernetes?.leaderElection ? { leaderElection: kubernetes.leaderElection } : {}),
  });
  let stopped: Promise<void> | null = null;
  return {
    url: server.url,
    metrics: server.metrics,
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        // The node groups' apply in flight may wait for check-ins: it ends before the check-in server does.
        await kubernetes?.stop();
        await Promise.all([server.close(), collection?.stop()]);
        await recorder.flush();
      })()),
  };
}

/** The collector as serve runs it: state read every cycle, one provider per host, metrics and log lines per report. */
interface Collection {
  readonly storePath: string;
  /** Whether the last cycle could read state (undefined before the first one ended). */
  readonly stateReadable: boolean | undefined;
  stop(): Promise<void>;
}

async function startCollection(config: Config, registry: Registry, log: Logger): Promise<Collection> {
  const storeConfig = config.metrics.store;
  if (storeConfig.type !== "sqlite") throw new Error("startCollection needs the sqlite store");
  try {
    await mkdir(dirname(storeConfig.path), { recursive: true });
  } catch (e) {
    throw new PremiscaleError(`cannot create the directory of the metrics store ${storeConfig.path}: ${(e as Error).message}`, "metrics_store_failed", "check metrics.store.path");
  }
  const store = openConfiguredSource(storeConfig) as SqliteStore;
  const intervalMs = config.metrics.intervalSeconds * 1000;
  const hostNames = config.hosts.map((h) => h.name);
  // Providers of their own: a sample never waits behind an apply's calls, nor an apply behind a sample. A call is cut
  // off after one interval at most: a later answer is of no use (the collector has given up on it by then), and a
  // hung host then holds neither the next cycles nor shutdown for longer than that.
  const providers = config.hosts.map((h) => makeProvider(h, { callTimeoutMs: Math.min(h.callTimeoutSeconds * 1000, intervalMs) }));
  const m = collectorMetrics(registry, hostNames);
  const stateStore = new GitStateStore(config.state.path);
  let owned = new Map<string, string[]>();
  let stateReadable: boolean | undefined;
  const collector = new Collector({
    sources: providers.map((p) => ({ host: p.host, sample: (names, signal) => p.counters(names, signal ? { signal } : {}) })),
    owned: () => owned,
    sink: store,
    intervalMs,
    onReport: (r) => report(r),
  });

  function report(r: HostReport): void {
    if (r.status === "ok") {
      m.samples.inc({ host: r.host }, r.domains);
      m.lastOk.set({ host: r.host }, Date.now() / 1000);
      log.debug({ event: "collector_host_sampled", host: r.host, domains: r.domains, durationMs: r.ms });
    } else if (r.status === "failed") {
      m.failures.inc({ host: r.host, kind: r.kind });
      log.warn({ event: "collector_host_failed", host: r.host, kind: r.kind, reason: r.reason, durationMs: r.ms });
    } else {
      m.skipped.inc({ host: r.host });
      log.warn({ event: "collector_host_skipped", host: r.host, reason: r.reason });
    }
  }

  async function cycle(): Promise<void> {
    const started = performance.now();
    let state: State | null;
    try {
      state = await stateStore.read();
      stateReadable = true;
    } catch (e) {
      stateReadable = false;
      m.cycles.inc({ result: "state_unreadable" });
      const err = e as Error & { hint?: string };
      log.error({ event: "collector_state_unreadable", reason: err.message, ...(err.hint ? { hint: err.hint } : {}) });
      return;
    }
    // Set right before collect(), which reads it synchronously: overlapping cycles each sample their own state.
    owned = ownedByHost(state, new Set(hostNames));
    const reports = await collector.collect();
    const seconds = (performance.now() - started) / 1000;
    const failed = reports.filter((r) => r.status !== "ok").length;
    m.cycles.inc({ result: failed > 0 ? "partial" : "ok" });
    m.duration.observe(seconds);
    log.debug({
      event: "collector_cycle",
      hosts: reports.length,
      failedHosts: failed,
      domains: reports.reduce((n, r) => n + (r.status === "ok" ? r.domains : 0), 0),
      durationMs: Math.round(seconds * 1000),
    });
  }

  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  const tick = () => {
    if (stopping) return;
    const p = cycle().catch((e: unknown) => log.error({ event: "internal_error", reason: `collector cycle failed: ${(e as Error).message}` }));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  const timer = setInterval(tick, intervalMs);
  tick();
  log.info({ event: "collector_started", store: storeConfig.path, intervalSeconds: config.metrics.intervalSeconds, hosts: hostNames });

  let stopped: Promise<void> | null = null;
  return {
    storePath: storeConfig.path,
    get stateReadable() {
      return stateReadable;
    },
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        clearInterval(timer);
        // Each cycle is bounded by the collector's timeout (one interval), so this wait is too.
        await Promise.all([...inFlight]);
        await store.close();
        await Promise.all(providers.map((p) => p.close()));
        log.info({ event: "collector_stopped" });
      })()),
  };
}

/**
 * premiscale's own metrics about applies, read at scrape time from the journal the latest finished apply left
 * (`journal.jsonl.last`): applies run in their own processes (`premiscale apply`, the reconciler), and this is what
 * they leave behind on this machine. `premiscale_applies_total` counts the applies serve has seen finish.
 */
function applyMetrics(registry: Registry, lastJournal: string): void {
  let seen: string | null = null;
  let summary: ApplySummary | null = null;
  const refresh = (): ApplySummary | null => {
    try {
      summary = summarizeApply(readFileSync(lastJournal, "utf8"));
    } catch {
      summary = null;
    }
    if (summary && summary.apply !== seen) {
      applies.inc({ result: summary.failed > 0 ? "failed" : "ok" });
      seen = summary.apply;
    }
    return summary;
  };
  const applies: Counter<"result"> = new Counter({
    name: "premiscale_applies_total",
    help: "Applies seen to finish on this machine since serve started (the one before it included), by result.",
    labelNames: ["result"],
    registers: [registry],
    collect: () => void refresh(),
  });
  applies.inc({ result: "ok" }, 0);
  applies.inc({ result: "failed" }, 0);
  new Gauge({
    name: "premiscale_last_apply_changes",
    help: "Changes of the latest finished apply, by result.",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      const s = refresh();
      this.reset();
      if (s) {
        this.set({ result: "succeeded" }, s.succeeded);
        this.set({ result: "failed" }, s.failed);
      }
    },
  });
  new Gauge({
    name: "premiscale_last_apply_timestamp_seconds",
    help: "When the latest finished apply ended (0: none yet).",
    registers: [registry],
    collect() {
      const s = refresh();
      this.set(s ? Date.parse(s.endedAt) / 1000 : 0);
    },
  });
  new Gauge({
    name: "premiscale_last_apply_step_duration_seconds",
    help: "Step durations in the latest finished apply (disk, seed, define, start, ready, shutdown, destroy, undefine, volumes): mean and max.",
    labelNames: ["step", "stat"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [step, v] of refresh()?.steps ?? []) {
        this.set({ step, stat: "mean" }, v.totalSeconds / v.count);
        this.set({ step, stat: "max" }, v.maxSeconds);
      }
    },
  });
}

/** premiscale's own metrics about the collector, on the server's registry; every series starts at zero. */
function collectorMetrics(registry: Registry, hosts: string[]) {
  const cycles = new Counter({
    name: "premiscale_collector_cycles_total",
    help: "Collector cycles by how they ended (ok: every host sampled; partial: some host failed or was busy; state_unreadable: nothing sampled).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  for (const result of ["ok", "partial", "state_unreadable"] as const) cycles.inc({ result }, 0);
  const duration = new Histogram({
    name: "premiscale_collector_cycle_duration_seconds",
    help: "Time from a cycle's start (reading state) until every host answered or timed out.",
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
    registers: [registry],
  });
  const samples = new Counter({
    name: "premiscale_collector_samples_total",
    help: "Domain counter readings stored in the metrics store, by host.",
    labelNames: ["host"] as const,
    registers: [registry],
  });
  const failures = new Counter({
    name: "premiscale_collector_host_failures_total",
    help: "Host samples that failed, by host and kind (timeout: no answer in time; error: the host refused or the connection failed; store: the database refused the readings).",
    labelNames: ["host", "kind"] as const,
    registers: [registry],
  });
  const skipped = new Counter({
    name: "premiscale_collector_host_skipped_total",
    help: "Host samples not started because the host's previous sample had not ended.",
    labelNames: ["host"] as const,
    registers: [registry],
  });
  const lastOk = new Gauge({
    name: "premiscale_collector_host_last_success_timestamp_seconds",
    help: "When each host was last sampled successfully (Unix time; 0: not yet).",
    labelNames: ["host"] as const,
    registers: [registry],
  });
  for (const host of hosts) {
    samples.inc({ host }, 0);
    skipped.inc({ host }, 0);
    lastOk.set({ host }, 0);
    for (const kind of ["timeout", "error", "store"] as const) failures.inc({ host, kind }, 0);
  }
  return { cycles, duration, samples, failures, skipped, lastOk };
}

/** The check-in server's log lines, through pino (which adds its own time). */
function logServerLine(log: Logger, line: ServerLogLine): void {
  const { time: _time, level, ...fields } = line;
  log[level](fields);
}

/** JSON lines on stderr: `{"level":"info","time":"…","pid":…,"event":…}` (the same shape as reconciler/logger.ts). */
export function serveLogger(level: LogLevel): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: "msg",
    },
    // Synchronous: a handful of lines a minute, and none may be lost when the process exits after a signal.
    pino.destination({ dest: 2, sync: true }),
  );
}

/** Resolves with the first SIGTERM or SIGINT; a second one while stopping exits at once (130). */
function nextStopSignal(log: Logger): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let received = false;
  let resolveSignal: (s: NodeJS.Signals) => void = () => undefined;
  const signal = new Promise<NodeJS.Signals>((resolve) => (resolveSignal = resolve));
  const handler = (s: NodeJS.Signals) => {
    if (received) {
      log.warn({ event: "stopped_at_once", signal: s, reason: "a second signal while stopping" });
      process.exit(130);
    }
    received = true;
    resolveSignal(s);
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
  return {
    signal,
    dispose: () => {
      process.off("SIGTERM", handler);
      process.off("SIGINT", handler);
    },
  };
}

/** `premiscale serve`: serves until SIGTERM or SIGINT, then stops cleanly; resolves to the exit code. */
export async function runServe(_io: Output, file: string | undefined, opts: ServeCommandOptions): Promise<number> {
  // Flags are checked before the config is read, so a typo is reported as such.
  const { level } = logSettings({ logLevel: opts.logLevel, logStdout: true });
  const config = await loadConfig(configPath(file), process.env, { checkEnv: false });
  const log = serveLogger(level);
  // Handlers first: a signal during start-up must stop the server, not kill the process half-way.
  const stop = nextStopSignal(log);
  try {
    const running = await startServe(config, log);
    const signal = await stop.signal;
    log.info({ event: "stopping", signal });
    await running.stop();
    log.info({ event: "stopped", signal });
    return 0;
  } finally {
    stop.dispose();
  }
}

const HELP = `
What it serves, on server.listen (default 127.0.0.1:8970):
  POST /phone-home/<instance id>/<token>   check-ins of new VMs (cloud-init phone_home), each checked against
                                           the VM's token and recorded in <state.path>/.premiscale/check-ins/,
                                           where an apply running at the same time reads them
  POST /heartbeat/<instance id>/<token>    "still alive" from running VMs (readiness.heartbeatSeconds), recorded
                                           in the same place; apply replaces VMs that go silent
  GET  /healthz                            200 while serving
  GET  /ready                              200 while serving and (with the collector) state can be read
  GET  /metrics                            Prometheus metrics about premiscale itself: check-ins, HTTP
                                           requests, collector cycles, samples stored, per-host failures

Guests must reach it at server.advertiseUrl (default http://10.0.2.2:<port>: the host's loopback as guests on
QEMU user-mode networking see it). With bridged or routed networking, set server.listen to an address of this
machine that guests can reach, and server.advertiseUrl to match. The token secret is
<state.path>/.premiscale/server.secret, shared with apply: run serve where apply runs, on the same state.

With metrics.store.type sqlite (the default), it also collects VM metrics: every metrics.intervalSeconds, one
bulk call per host for the domains state records, into the store plan and \`premiscale metrics\` read.

With a top-level kubernetes block, it is also cluster-autoscaler's externalgrpc cloud provider for the groups
that have a kubernetes block (node groups): it listens on kubernetes.externalGrpc.listen (default
127.0.0.1:8972; mutual TLS with kubernetes.externalGrpc.tls, plaintext only on loopback), records what
cluster-autoscaler asks (IncreaseSize, DeleteNodes, DecreaseTargetSize) in <state.path>/.premiscale/kubernetes/
and answers at once, and plans and applies the node groups whenever it asked (one git commit per apply, the
calls as its reason). New VMs get a bootstrap token and a kubeadm (or k3s, rke2) join in their user-data; apply
waits for their Node to be Ready and deletes a destroyed VM's Node. Point cluster-autoscaler at it with
--cloud-provider=externalgrpc --cloud-config=FILE, FILE holding address, cert, key, cacert (see README.md).
With kubernetes.mode: native there is no listener and no cluster-autoscaler: premiscale scans the cluster every
kubernetes.native.scanIntervalSeconds (10), adds nodes for pods the scheduler marked Unschedulable (bin-packed
onto each group's template, the expander chain choosing the group; pods arriving together make one decision) and
removes under-used nodes whose pods fit elsewhere (see kubernetes/README.md, native mode).

With kubernetes.leaderElection.enabled, several replicas can run: only the holder of the Lease
(kubernetes.leaderElection.namespace/leaseName, identity hostname_pid) listens for cluster-autoscaler and runs the
node groups; the others take over within the lease duration (15 s) when it stops renewing, or at once when it
stops gracefully (it releases the Lease after its apply in flight ended). Without kubernetes.kubeconfig, serve
uses the service account of the pod it runs in.

Logs: one JSON object per line on stderr. SIGTERM or SIGINT stops it: requests, the node groups' apply and the
collection in flight finish, the database is closed, exit code 0.`;

/** Adds `premiscale serve` to the command line. */
export function registerServeCommand(program: Command, io: Output, setExit: (code: number) => void, cfg: () => string | undefined): void {
  program
    .command("serve")
    .description(
      "Run the server guests check in to (so apply knows new VMs booted), with /healthz, /ready and Prometheus /metrics, " +
        "and collect VM metrics for the scaling policies; with a kubernetes block, also serve cluster-autoscaler (externalgrpc) " +
        "and scale the node groups it drives. Runs until SIGTERM or SIGINT.",
    )
    .addOption(new Option("--log-level <level>", "debug, info, warn or error (env PREMISCALE_LOG_LEVEL; default info)"))
    .addHelpText("after", HELP)
    .action(async (opts: ServeCommandOptions) => setExit(await runServe(io, cfg(), opts)));
}
