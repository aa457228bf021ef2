/**
 * `premiscale reconcile`: the CLI shell around reconciler/. One pass prints what happened for a human; `--watch`
 * runs the loop (interval, webhook, retries) with JSON logs; `-d` detaches it. Everything about git, locks, plans
 * and applies lives in reconciler/; this file resolves the repository from the config, wires signals, logs and the
 * pid file, and turns events into lines.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { Command, Option } from "commander";
import { PremiscaleError } from "../config/errors.js";
import { isInside } from "../config/paths.js";
import { loadConfig } from "../pipeline/config.js";
import type { Config, HostConfig } from "../config/types.js";
import { makeProvider as makeLibvirtProvider } from "../providers/index.js";
import type { Provider } from "../providers/provider.js";
import { storedMetricsBacktest } from "../reconciler/backtest.js";
import { ConfigRepo, isUrl } from "../reconciler/config-repo.js";
import { git } from "../state/git.js";
import { createLogger, logSettings, type DaemonLogger } from "../reconciler/logger.js";
import { reconcileOnce, type ReconcileDeps, type ReconcileEvent, type ReconcileMode, type ReconcileResult } from "../reconciler/reconcile.js";
import { describeHolder, RemoteLock } from "../reconciler/remote-lock.js";
import { localSteps, type StepNotice } from "../reconciler/steps.js";
import { abortOnSignals, startWatch, type WatchEvent } from "../reconciler/watch.js";
import { createWebhookReceiver, type WebhookLogLine, type WebhookReceiver } from "../reconciler/webhook.js";
import { processAlive } from "../state/atomic-file.js";
import { configPath } from "./context.js";
import type { Output } from "./output.js";
import { parseDuration, parseWholeNumber } from "./parse.js";

const OK = 0;
const ERROR = 1;
const PARTIAL = 3;

/** Webhook events within this window make one pass (a push often sends several). */
export const WEBHOOK_DEBOUNCE_MS = 100;

/** Outcomes of a single pass that exit 0. */
const SUCCESS: readonly ReconcileResult["outcome"][] = ["applied", "no_changes", "published", "already_published", "suspended"];

/** The options of `premiscale reconcile`, as parsed by commander. */
export interface ReconcileCommandOptions {
  watch?: boolean;
  once?: boolean;
  mode?: ReconcileMode;
  daemon?: boolean;
  pidFile?: string;
  logLevel?: string;
  logFile?: string;
  logStdout?: boolean;
  parallelism?: number;
  shutdownTimeout?: string;
}

/** What tests inject instead of the real world. */
export interface ReconcileRuntime {
  /** @default libvirt providers (providers/index.ts) */
  makeProvider?: (host: HostConfig) => Provider;
  /** Stops `--watch` (and a single pass) like SIGTERM would. @default SIGTERM/SIGINT */
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** Called once the watch loop and its webhook receiver run, with the receiver's URL (or null). */
  onWatching?: (webhookUrl: string | null) => void;
}

/** Where the reconciler finds the config repository, resolved from the config file's `gitops` block. */
export interface GitopsTarget {
  /** Remote URL or absolute local path. */
  source: string;
  branch: string;
  /** premiscale's own clone. */
  workDir: string;
  /** The config file's path inside the repository. */
  configFile: string;
}

/**
 * Resolves the repository: `gitops.repo` (then the `-c` file only bootstraps, and the real config is
 * `gitops.path` in the clone), else the git repository holding the config file. Relative paths are relative to the
 * config file's directory.
 */
export async function gitopsTarget(config: Config): Promise<GitopsTarget> {
  const g = config.gitops;
  const dir = dirname(config.file);
  const workDir = resolve(dir, g.workDir);
  if (g.repo) return { source: isUrl(g.repo) ? g.repo : resolve(dir, g.repo), branch: g.branch, workDir, configFile: g.path };
  const top = await git(dir, ["rev-parse", "--show-toplevel"], { allowFail: true });
  if (top.exitCode !== 0) {
    throw new PremiscaleError(
      `${config.file} is not in a git repository, and gitops.repo is not set: reconcile has no repository to follow`,
      "gitops_no_repo",
      "commit the config to a git repository, or set gitops.repo to the config repository's URL",
    );
  }
  const root = top.stdout.trim();
  const configFile = relative(root, realpathSync(config.file));
  if (isInside(root, workDir)) {
    throw new PremiscaleError(
      `gitops.workDir ${workDir} is inside the repository ${root}: premiscale's clone must live elsewhere`,
      "usage",
      "set gitops.workDir to a directory outside the repository, e.g. /var/lib/premiscale/repo",
    );
  }
  return { source: root, branch: g.branch, workDir, configFile };
}

/** One line for a human per event, or null for events a human does not need. Pure. */
export function describeEvent(e: ReconcileEvent): { text: string; level: "info" | "warn" | "error" } | null {
  const info = (text: string) => ({ text, level: "info" as const });
  const warn = (text: string) => ({ text, level: "warn" as const });
  switch (e.type) {
    case "pass_start":
      return info(`Reconciling (mode ${e.mode}, trigger ${e.trigger})...`);
    case "lock_held":
      return warn(`The config repository is locked by ${describeHolder(e.holder)}; nothing was done. The next pass tries again.`);
    case "lock_acquired":
      return e.tookOverFrom ? warn(`Took over the expired lock of ${describeHolder(e.tookOverFrom)}.`) : null;
    case "lock_renew_failed":
      return { text: `Lost the repository lock: ${e.error.message}; no new change starts.`, level: "error" };
    case "lock_release_failed":
      return warn(`Could not release the repository lock: ${e.error.message}`);
    case "synced":
      return info(`At commit ${e.commit.slice(0, 12)}${e.unpushed > 0 ? ` (${e.unpushed} state commit(s) waiting to be pushed)` : ""}.`);
    case "config_invalid":
      return { text: `The config at ${e.commit.slice(0, 12)} is invalid; nothing was planned or applied, the last good state stays:\n${e.error.message}`, level: "error" };
    case "group_suspended":
      return info(`Group ${e.group} is suspended: left as it is.`);
    case "merged_plan_found":
      return info(`Applying the merged plan ${e.planId}.`);
    case "plan_refused":
      return warn(`The merged plan ${e.planId ?? "(unreadable)"} was refused: ${e.error.message}. Planning again.`);
    case "plan_ready": {
      const lines = [`Plan ${e.planId}: ${e.summary}`];
      for (const w of e.warnings) lines.push(`Warning: ${w}`);
      for (const u of e.unreachable) lines.push(`Warning: host ${u.host} could not be observed: ${u.error}`);
      for (const x of e.errors) lines.push(`Error: group ${x.group}: ${x.message}`);
      return { text: lines.join("\n"), level: e.errors.length > 0 ? "error" : e.warnings.length + e.unreachable.length > 0 ? "warn" : "info" };
    }
    case "apply": {
      const a = e.event;
      if (a.type === "apply_start") return info(`  ${a.action === "create" ? "+" : "-"} ${a.address} on ${a.host}: ${a.action === "create" ? "creating" : "destroying"}...`);
      if (a.type === "apply_complete") return info(`  ${a.action === "create" ? "+" : "-"} ${a.address}: ${a.action === "create" ? "created" : "destroyed"} after ${(a.elapsedMs / 1000).toFixed(1)} s`);
      if (a.type === "apply_errored") return { text: `  ! ${a.address}: ${a.action} failed: ${a.error}`, level: "error" };
      if (a.type === "cleanup_errored") return warn(`  ! ${a.address}: cleanup failed: ${a.error}`);
      if (a.type === "hook_message") return info(`  ${a.address}: ${a.message}`);
      return null;
    }
    case "applied": {
      const failed = e.failed.length > 0 ? `, ${e.failed.length} failed` : "";
      const commit = e.stateCommit ? ` State commit ${e.stateCommit.slice(0, 12)}.` : e.commitError ? ` The state commit failed: ${e.commitError}` : "";
      return { text: `Apply ${e.failed.length > 0 ? "finished with errors" : "complete"}! Resources: ${e.added} added, 0 changed, ${e.destroyed} destroyed${failed}.${commit}`, level: e.failed.length > 0 || e.commitError ? "error" : "info" };
    }
    case "plan_published":
      return info(`Published plan ${e.planId} on branch ${e.branch}: review it in a pull request; merging it lets the next pass apply it.`);
    case "plan_already_published":
      return info(`Plan ${e.planId} is already on branch ${e.branch}, waiting for review.`);
    case "remote_moved":
      return warn(`The branch moved on the remote while reconciling (now ${e.remote.slice(0, 12)}): replayed the state commits on top and planning again (attempt ${e.attempt + 1}).`);
    case "state_pushed":
      return info(`Pushed ${e.commit.slice(0, 12)} to the config repository.`);
    case "recommendations_recorded":
      return info(`Recorded the scaling recommendations (and templates) in state: ${e.commit.slice(0, 12)}.`);
    case "pass_failed":
      return { text: `Error: ${e.error.message}${e.error.hint ? `\n  ${e.error.hint}` : ""}`, level: "error" };
    case "pass_done":
      return info(`Pass ended: ${e.outcome} (${(e.durationMs / 1000).toFixed(1)} s).`);
  }
}

/** A reconcile event as one structured log record. */
export function logRecord(e: ReconcileEvent): Record<string, unknown> {
  if (e.type === "apply") {
    const { type, ...fields } = e.event;
    return { event: type, ...fields };
  }
  const { type, ...rest } = e;
  return { event: type, ...rest };
}

/** `premiscale reconcile`. */
export async function runReconcile(io: Output, file: string | undefined, opts: ReconcileCommandOptions, rt: ReconcileRuntime = {}): Promise<number> {
  const env = rt.env ?? process.env;
  if (opts.watch && opts.once) throw new PremiscaleError("--watch and --once cannot be used together", "usage", "--once runs one pass (the default); --watch keeps running");
  const settings = logSettings({ logLevel: opts.logLevel, logFile: opts.logFile, logStdout: opts.logStdout }, env);
  if (opts.pidFile) refuseLivePidFile(opts.pidFile);
  if (opts.daemon && settings.destination.kind !== "file") {
    throw new PremiscaleError("--daemon needs a log file: a detached process has no terminal to write to", "usage", "add --log-file FILE (or set PREMISCALE_LOG_FILE)");
  }

  // Checked before detaching, so a daemon that cannot start says so here rather than in its log.
  const bootstrap = await loadConfig(configPath(file, env), env, { checkEnv: false });
  const target = await gitopsTarget(bootstrap);
  const mode = opts.mode ?? bootstrap.gitops.mode;
  const watching = opts.watch === true || opts.daemon === true;
  const secret = bootstrap.gitops.webhook ? env[bootstrap.gitops.webhook.secretEnv] : undefined;
  if (watching && bootstrap.gitops.webhook && !secret) {
    throw new PremiscaleError(
      `the webhook's secret is missing: gitops.webhook.secretEnv names ${bootstrap.gitops.webhook.secretEnv}, which is not set`,
      "webhook_secret_missing",
      `export ${bootstrap.gitops.webhook.secretEnv}=… (the secret set in the repository's webhook settings), or remove gitops.webhook to poll only`,
    );
  }
  if (opts.daemon) return daemonize(io, opts, settings.destination.kind === "file" ? settings.destination.path : "");

  const log: DaemonLogger | null = watching || settings.destination.kind === "file" ? createLogger(settings, { base: { service: "premiscale-reconcile" } }) : null;
  const say = (e: ReconcileEvent) => {
    const d = describeEvent(e);
    if (log) log.logger[e.type === "apply" && e.event.type === "apply_progress" ? "debug" : (d?.level ?? "debug")](logRecord(e), d?.text ?? e.type);
    if (!watching && d && e.type !== "pass_start" && e.type !== "pass_done") (d.level === "info" ? io.out : io.err)(d.text);
  };
  const notice = (n: StepNotice) => {
    const text =
      n.type === "interrupted_apply"
        ? `An earlier apply (pid ${n.apply.pid}, started ${n.apply.startedAt}) stopped before it finished, with ${n.apply.inFlight.length} change(s) in flight; this plan finishes or undoes them.`
        : n.type === "readiness"
          ? `Waiting for new VMs to check in (${n.mode === "own" ? "serving check-ins for this apply" : "through premiscale serve"}).`
          : `check-in server: ${n.line.event}${n.line.reason ? `: ${n.line.reason}` : ""}`;
    const level = n.type === "checkin_server" ? n.line.level : n.type === "interrupted_apply" ? "warn" : "info";
    log?.logger[level === "info" ? "info" : level === "warn" ? "warn" : "error"]({ event: n.type, ...(n.type === "interrupted_apply" ? { apply: n.apply } : {}) }, text);
    if (!watching) (level === "info" ? io.out : io.err)(text);
  };

  const repo = new ConfigRepo({ source: target.source, branch: target.branch, workDir: target.workDir });
  const steps = localSteps({
    configFile: target.configFile,
    makeProvider: rt.makeProvider ?? makeLibvirtProvider,
    env,
    planTtlSeconds: bootstrap.gitops.planTtlSeconds,
    ...(opts.parallelism !== undefined ? { parallelism: opts.parallelism } : {}),
    ...(opts.shutdownTimeout !== undefined ? { shutdownTimeoutMs: parseDuration(opts.shutdownTimeout) } : {}),
    onNotice: notice,
  });
  const deps: ReconcileDeps = { repo, lock: new RemoteLock({ dir: repo.dir, ttlSeconds: bootstrap.gitops.lock.ttlSeconds }), steps };
  const pass = (trigger: string, signal: AbortSignal) =>
    reconcileOnce(deps, { mode, trigger, signal, onEvent: say, isSuspended: (g) => g.suspend, backtest: storedMetricsBacktest(target.configFile, env) });

  const signals = rt.signal ? null : abortOnSignals(["SIGTERM", "SIGINT"], (s, count) => {
    if (s === "SIGINT" && count > 1) process.exit(130);
    const text = `Received ${s}: finishing the changes in flight, then pushing state and releasing the lock.`;
    log?.logger.warn({ event: "signal", signal: s }, text);
    if (!watching) io.err(text);
  });
  const stop = rt.signal ?? signals!.signal;
  const onHup = () => log?.reopen();
  if (opts.pidFile) writePidFile(opts.pidFile, process.pid);
  try {
    if (!watching) {
      io.out(`Reconciling ${target.branch} of ${target.source} (mode ${mode}).`);
      const r = await pass("manual", stop);
      io.out(outcomeLine(r));
      return SUCCESS.includes(r.outcome) ? OK : r.outcome === "partial" ? PARTIAL : ERROR;
    }
    process.on("SIGHUP", onHup);
    return await watch(bootstrap, target, mode, pass, stop, log!, secret, rt);
  } finally {
    process.off("SIGHUP", onHup);
    signals?.dispose();
    await steps.close();
    if (opts.pidFile) removePidFile(opts.pidFile, process.pid);
    log?.flush();
  }
}

async function watch(
  config: Config,
  target: GitopsTarget,
  mode: ReconcileMode,
  pass: (trigger: string, signal: AbortSignal) => Promise<ReconcileResult>,
  stop: AbortSignal,
  log: DaemonLogger,
  secret: string | undefined,
  rt: ReconcileRuntime,
): Promise<number> {
  const { logger } = log;
  let trigger: ((reason: string) => void) | null = null;
  let hook: WebhookReceiver | null = null;
  const wh = config.gitops.webhook;
  if (wh && secret) {
    hook = createWebhookReceiver({
      host: wh.host,
      port: wh.port,
      ...(wh.provider === "gitlab" ? { gitlabToken: secret } : { githubSecret: secret }),
      branch: target.branch,
      debounceMs: WEBHOOK_DEBOUNCE_MS,
      onTrigger: () => trigger?.("webhook"),
      log: ({ level, ...fields }: WebhookLogLine) => logger[level](fields, fields.event),
    });
    await hook.listen();
  }
  logger.info({ event: "watch_start", repo: target.source, branch: target.branch, mode, intervalSeconds: config.gitops.intervalSeconds, webhook: hook?.url ?? null }, `watching ${target.branch} of ${target.source}`);
  const watcher = startWatch({
    pass,
    intervalMs: config.gitops.intervalSeconds * 1000,
    signal: stop,
    onEvent: ({ type, ...fields }: WatchEvent) => logger[type === "watch_pass_threw" ? "error" : "debug"]({ event: type, ...fields }, type),
  });
  trigger = (reason) => watcher.trigger(reason);
  rt.onWatching?.(hook?.url ?? null);
  try {
    await watcher.done;
  } finally {
    await hook?.close();
  }
  logger.info({ event: "watch_stopped" }, "stopped: the lock is released");
  return OK;
}

/** The last line of a single pass. */
function outcomeLine(r: ReconcileResult): string {
  switch (r.outcome) {
    case "applied":
      return `Reconciled: applied plan ${r.planId}${r.commit ? `; the config repository is at ${r.commit.slice(0, 12)}` : ""}.`;
    case "no_changes":
      return "Reconciled: no changes. The hosts match the configuration.";
    case "partial":
      return `Partly reconciled: every change that could be made was made, but ${r.error?.message ?? "a group is short"}. The next pass tries again.`;
    case "published":
    case "already_published":
      return `Plan ${r.planId} waits for review on branch ${r.branch}.`;
    case "suspended":
      return "Every group is suspended: nothing to do.";
    case "locked":
      return `Not reconciled: the lock is held${r.holder ? ` by ${describeHolder(r.holder)}` : ""}. If that reconciler died, run premiscale force-unlock --remote ${r.holder?.id ?? "ID"}.`;
    case "interrupted":
      return `Interrupted: ${r.applied?.added ?? 0} added and ${r.applied?.destroyed ?? 0} destroyed before stopping; state is pushed, the next pass finishes the rest.`;
    default:
      return `Not reconciled (${r.outcome})${r.error ? `: ${r.error.message}` : ""}.`;
  }
}

/**
 * `premiscale force-unlock --remote ID`: removes the remote lock (`refs/premiscale/lock`) of a reconciler that died,
 * after confirmation unless `force` (as the local `force-unlock`).
 */
export async function runRemoteForceUnlock(io: Output, file: string | undefined, id: string, opts: { force?: boolean } = {}): Promise<number> {
  const config = await loadConfig(configPath(file), process.env, { checkEnv: false });
  const target = await gitopsTarget(config);
  const repo = new ConfigRepo({ source: target.source, branch: target.branch, workDir: target.workDir });
  await repo.ensureClone();
  const lock = new RemoteLock({ dir: repo.dir });
  const current = await lock.read();
  if (current && !opts.force) {
    if (!io.interactive) throw new PremiscaleError("force-unlock needs confirmation, and there is no terminal to ask on", "approval_required", "add --force");
    io.err(`The lock of ${target.source} is held by ${describeHolder(current.holder)}.`);
    io.err("Removing a lock that is still in use lets two reconcilers change the same hosts. Only 'yes' will be accepted to confirm.");
    if ((await io.ask("  Enter a value: ")) !== "yes") {
      io.err("force-unlock cancelled.");
      return ERROR;
    }
  }
  const removed = await lock.forceUnlock(id);
  io.out(`The remote lock of ${target.source} has been removed (it was held by ${describeHolder(removed)}).`);
  return OK;
}

/** `-d`: starts this same command without `-d` (and with `--watch`) in the background, logging to the file. */
function daemonize(io: Output, opts: ReconcileCommandOptions, logFile: string): number {
  const script = process.argv[1];
  if (!script) throw new PremiscaleError("cannot tell how premiscale was started, so it cannot start itself in the background", "usage", "run it under a service manager instead (examples/premiscale.service)");
  const args = process.argv.slice(2).filter((a) => a !== "-d" && a !== "--daemon");
  if (!opts.watch) args.push("--watch");
  mkdirSync(dirname(resolve(logFile)), { recursive: true });
  const fd = openSync(logFile, "a", 0o640);
  try {
    const child = spawn(process.execPath, [...process.execArgv, script, ...args], { detached: true, stdio: ["ignore", fd, fd], env: process.env });
    child.unref();
    if (!child.pid) throw new PremiscaleError("could not start premiscale in the background", "daemon_failed", `look at ${logFile}`);
    if (opts.pidFile) writePidFile(opts.pidFile, child.pid);
    io.out(`premiscale reconcile --watch runs in the background as pid ${child.pid}; logs go to ${logFile}.`);
    return OK;
  } finally {
    closeSync(fd);
  }
}

/** Throws when `path` names a running process other than this one; a stale file is left to be overwritten. */
function refuseLivePidFile(path: string): void {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return;
  if (processAlive(pid)) {
    throw new PremiscaleError(`pid file ${path} names process ${pid}, which is running: premiscale reconcile already runs`, "already_running", `stop it first (kill ${pid}), or use another --pid-file`);
  }
}

function writePidFile(path: string, pid: number): void {
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true });
    writeFileSync(path, `${pid}\n`, { mode: 0o644 });
  } catch (e) {
    throw new PremiscaleError(`cannot write the pid file ${path}: ${(e as Error).message}`, "pid_file_failed", "check that its directory is writable");
  }
}

function removePidFile(path: string, pid: number): void {
  try {
    if (Number(readFileSync(path, "utf8").trim()) === pid) rmSync(path, { force: true });
  } catch {
    // Already gone.
  }
}

const HELP = `
The workflow (GitOps): the config lives in a git repository; people change it by commits (templates, policies,
limits); premiscale owns the VM counts and the state, which it commits and pushes to the same repository.

  premiscale reconcile                 one pass: lock, fetch, validate, plan, apply (mode auto) or publish the
                                       plan for review (mode review), push state, unlock; exit 0 or 1
  premiscale reconcile --watch         keep going: a pass at start, on every gitops.intervalSeconds (drift and
                                       metrics), at once on a signed webhook, and retries with backoff
  premiscale reconcile -d --log-file /var/log/premiscale.log --pid-file /run/premiscale.pid

Which repository: gitops.repo (a URL or path; the -c file then only bootstraps, the config is gitops.path in
premiscale's clone at gitops.workDir), else the git repository holding the -c file. Git uses your own
credentials (ssh key or agent, credential helper), never a prompt.

Review mode (gitops.mode: review or --mode review): each new plan is pushed to branch premiscale/plan/<id> with
.premiscale/plan.json and plan.md (with a policy backtest when scaling changed). Merge it: the next pass applies
exactly that plan, or refuses it (state moved on, expired, config changed) and publishes a new one.

Several machines may run it: one pass at a time holds the lock ref refs/premiscale/lock on the remote; the others
say who holds it. If a holder died: premiscale force-unlock --remote ID.

Signals (--watch): SIGTERM/SIGINT finish the changes in flight, push state, release the lock, exit 0;
SIGHUP reopens --log-file. Environment: PREMISCALE_CONFIG_PATH, PREMISCALE_LOG_LEVEL, PREMISCALE_LOG_FILE, and the
webhook secret in the variable gitops.webhook.secretEnv names. Details: cli/RECONCILE.md.`;

/** Adds `premiscale reconcile` to the program; `cfg` gives the `-c` value when the command runs. */
export function registerReconcileCommand(program: Command, io: Output, setExit: (code: number) => void, cfg: () => string | undefined, rt: ReconcileRuntime = {}): void {
  program
    .command("reconcile")
    .description(
      "Follow the config repository (GitOps): on each new commit, and on every interval, validate → plan → apply " +
        "(mode auto) or publish the plan on a branch for review (mode review); commit and push state. One pass, or --watch.",
    )
    .option("--watch", "keep running: interval, webhook, retries (JSON logs)")
    .option("--once", "run one pass and exit (the default)")
    .addOption(new Option("--mode <mode>", "override gitops.mode").choices(["auto", "review"]))
    .option("-d, --daemon", "run --watch in the background (needs --log-file); with --pid-file, writes the pid")
    .option("--pid-file <file>", "write the pid here; refuse to start while it names a running process")
    .addOption(new Option("--log-level <level>", "fatal, error, warn, info, debug, trace or silent (env PREMISCALE_LOG_LEVEL)"))
    .addOption(new Option("--log-file <file>", "JSON logs to this file (env PREMISCALE_LOG_FILE); SIGHUP reopens it").conflicts("logStdout"))
    .option("--log-stdout", "JSON logs to stdout even when PREMISCALE_LOG_FILE is set")
    .addOption(new Option("--parallelism <n>", "changes in flight at once (each host also has maxParallel)").argParser(parseWholeNumber("--parallelism", 1)))
    .addOption(new Option("--shutdown-timeout <duration>", "how long a VM gets to shut down before it is destroyed").default("60s"))
    .addHelpText("after", HELP)
    .action(async (opts: ReconcileCommandOptions) => setExit(await runReconcile(io, cfg(), opts, rt)));
}
