/**
 * One reconcile pass: lock → sync → validate → plan → apply (mode `auto`) or publish the plan for review (mode
 * `review`) → push state → unlock. Its edges (the config repository, the remote lock, the pipeline steps) are
 * injected, so the engine runs the same against libvirt or against fakes; it reports through events and never
 * prints.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ApplyEvent } from "../applier/apply-plan.js";
import { PremiscaleError } from "../config/errors.js";
import { isInside } from "../config/paths.js";
import type { Config, GroupConfig } from "../config/types.js";
import { checkPlanApplicable, parsePlan, serializePlan } from "../planner/plan-file.js";
import type { Plan } from "../planner/plan.js";
import { renderPlanMarkdown } from "../planner/render-markdown.js";
import { describeShortfall, summaryLine } from "../planner/render-text.js";
import type { StateLock } from "../state/state-store.js";
import type { State } from "../state/types.js";
import type { ConfigRepo } from "./config-repo.js";
import type { AcquireResult, HeldRemoteLock, LockHolder } from "./remote-lock.js";
import { configDigest } from "../pipeline/make-plan.js";
import type { ReconcileSteps } from "./steps.js";

/** `auto` applies plans; `review` publishes them on a branch and applies them once merged. */
export type ReconcileMode = "auto" | "review";

/** The parts of the config repository the engine uses (`ConfigRepo`). */
export type RepoPort = Pick<ConfigRepo, "dir" | "branch" | "ensureClone" | "sync" | "head" | "push" | "publishBranch" | "commitRemoval">;

/** The remote lock (`RemoteLock`). */
export interface LockPort {
  readonly ttlSeconds: number;
  acquire(): Promise<AcquireResult>;
}

/** What a pass needs from the outside. */
export interface ReconcileDeps {
  repo: RepoPort;
  /** The cross-machine lock; null runs without one (a single reconciler). */
  lock: LockPort | null;
  steps: ReconcileSteps;
  /** Wall clock (plan expiry). @default () => new Date() */
  now?: () => Date;
}

/** Options of a pass. */
export interface ReconcileOptions {
  mode: ReconcileMode;
  /** Why this pass runs (`start`, `interval`, `webhook`, `retry`), for events. @default "manual" */
  trigger?: string;
  /** Once aborted: no new change starts, the changes in flight finish, state is committed and pushed, the lock released. */
  signal?: AbortSignal;
  onEvent?: (e: ReconcileEvent) => void;
  /** Groups for which this returns true are left alone (not planned, not applied). */
  isSuspended?: (group: GroupConfig) => boolean;
  /** Where plan files go in the repository. @default ".premiscale" */
  planDir?: string;
  /** Tries when the remote keeps moving under the pass. @default 3 */
  maxAttempts?: number;
  /** Wait for the local state lock of the clone. @default 10000 */
  stateLockTimeoutMs?: number;
  /** How often the remote lock is renewed during a pass. @default a third of its TTL */
  lockRenewMs?: number;
  /**
   * A policy backtest for review mode, as markdown (null: none), given the clone and the commit planned. A throw
   * does not fail the pass: the plan says the backtest failed.
   */
  backtest?: (config: Config, plan: Plan, at: { repoDir: string; commit: string }) => Promise<string | null>;
}

/** How a pass ended. */
export type ReconcileOutcome =
  | "applied"
  | "partial"
  | "apply_failed"
  | "interrupted"
  | "no_changes"
  | "published"
  | "already_published"
  | "invalid_config"
  | "plan_failed"
  | "suspended"
  | "locked"
  | "failed";

/** An error as plain data. */
export interface ErrorInfo {
  message: string;
  code: string;
  hint?: string;
}

/** The result of a pass. */
export interface ReconcileResult {
  outcome: ReconcileOutcome;
  /** The clone's commit at the end (pushed unless the outcome says otherwise). */
  commit: string | null;
  planId?: string;
  /** The plan (or error report) branch, in review mode. */
  branch?: string;
  /** Who holds the lock, when `locked`. */
  holder?: LockHolder;
  error?: ErrorInfo;
  applied?: { added: number; destroyed: number; failed: number };
}

/** Everything a pass reports, in order. */
export type ReconcileEvent =
  | { type: "pass_start"; trigger: string; mode: ReconcileMode }
  | { type: "lock_held"; holder: LockHolder }
  | { type: "lock_acquired"; id: string; tookOverFrom: LockHolder | null }
  | { type: "lock_renew_failed"; error: ErrorInfo }
  | { type: "lock_release_failed"; error: ErrorInfo }
  | { type: "synced"; commit: string; previous: string | null; moved: boolean; unpushed: number }
  | { type: "config_invalid"; commit: string; error: ErrorInfo }
  | { type: "group_suspended"; group: string }
  | { type: "merged_plan_found"; planId: string }
  | { type: "plan_refused"; planId: string | null; error: ErrorInfo }
  | {
      type: "plan_ready";
      planId: string;
      summary: string;
      changes: number;
      drift: number;
      errors: { group: string; message: string }[];
      warnings: string[];
      unreachable: { host: string; error: string }[];
    }
  | { type: "apply"; event: ApplyEvent }
  | { type: "applied"; planId: string; added: number; destroyed: number; failed: { address: string; error: string }[]; stateCommit: string | null; commitError: string | null }
  | { type: "plan_published"; planId: string; branch: string; commit: string | null }
  | { type: "plan_already_published"; planId: string; branch: string }
  | { type: "remote_moved"; attempt: number; remote: string }
  | { type: "state_pushed"; commit: string }
  | { type: "recommendations_recorded"; commit: string }
  | { type: "pass_failed"; error: ErrorInfo }
  | { type: "pass_done"; outcome: ReconcileOutcome; durationMs: number };

/** Branch names of published plans. */
export const PLAN_BRANCH_PREFIX = "premiscale/plan/";

/**
 * WARNING: changes real hosts (mode `auto`, or a merged plan in mode `review`), and pushes to the config repository.
 * Runs one pass and returns how it ended; errors are returned as `failed`, never thrown.
 */
export async function reconcileOnce(deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileResult> {
  const started = Date.now();
  const emit = (e: ReconcileEvent) => {
    try {
      options.onEvent?.(e);
    } catch {
      // A broken listener must not break the pass.
    }
  };
  const finish = (r: ReconcileResult): ReconcileResult => {
    emit({ type: "pass_done", outcome: r.outcome, durationMs: Date.now() - started });
    return r;
  };
  emit({ type: "pass_start", trigger: options.trigger ?? "manual", mode: options.mode });

  // Aborted by the caller, or by losing the lock: either way no new change starts.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) stop.abort();
  let held: HeldRemoteLock | null = null;
  let renewer: NodeJS.Timeout | null = null;
  let renewing: Promise<void> = Promise.resolve();
  try {
    await deps.repo.ensureClone();
    if (deps.lock) {
      const r = await deps.lock.acquire();
      if (!r.acquired) {
        emit({ type: "lock_held", holder: r.holder });
        return finish({ outcome: "locked", commit: null, holder: r.holder });
      }
      held = r.lock;
      emit({ type: "lock_acquired", id: r.lock.holder.id, tookOverFrom: r.tookOverFrom });
      const every = options.lockRenewMs ?? (deps.lock.ttlSeconds * 1000) / 3;
      renewer = setInterval(() => {
        renewing = held!.renew().catch((e: unknown) => {
          emit({ type: "lock_renew_failed", error: errorInfo(e) });
          stop.abort();
        });
      }, every);
      renewer.unref();
    }
    return finish(await attempts(deps, options, emit, stop.signal));
  } catch (e) {
    const error = errorInfo(e);
    emit({ type: "pass_failed", error });
    return finish({ outcome: "failed", commit: null, error });
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    if (renewer) clearInterval(renewer);
    await renewing;
    if (held) await held.release().catch((e: unknown) => emit({ type: "lock_release_failed", error: errorInfo(e) }));
  }
}

type Emit = (e: ReconcileEvent) => void;

/** Work, then push; when the remote moved meanwhile, the local commits sit on top of it: work again and push again. */
async function attempts(deps: ReconcileDeps, options: ReconcileOptions, emit: Emit, signal: AbortSignal): Promise<ReconcileResult> {
  const max = options.maxAttempts ?? 3;
  let result: ReconcileResult | null = null;
  for (let attempt = 1; ; attempt++) {
    const sync = await deps.repo.sync();
    emit({ type: "synced", ...sync });
    // After an interrupt, only what was already done is pushed.
    if (!signal.aborted || result === null) result = await work(deps, options, emit, signal);
    const pushed = await deps.repo.push();
    if (pushed.status === "remote_moved") {
      emit({ type: "remote_moved", attempt, remote: pushed.remote });
      if (attempt >= max) {
        return {
          ...result,
          outcome: "failed",
          commit: pushed.commit,
          error: {
            message: `the branch ${deps.repo.branch} moved ${max} times while reconciling; the state commits are kept in the clone and pushed by the next pass`,
            code: "remote_kept_moving",
          },
        };
      }
      continue;
    }
    if (pushed.status === "pushed") emit({ type: "state_pushed", commit: pushed.commit });
    return { ...result, commit: pushed.commit };
  }
}

/** Validate → (merged plan) → plan → apply or publish, under the clone's state lock. */
async function work(deps: ReconcileDeps, options: ReconcileOptions, emit: Emit, signal: AbortSignal): Promise<ReconcileResult> {
  const { repo, steps } = deps;
  const now = deps.now ?? (() => new Date());
  const planDir = options.planDir ?? ".premiscale";
  const files = { json: `${planDir}/plan.json`, md: `${planDir}/plan.md` };
  const commit = await repo.head();

  let config: Config;
  try {
    config = await steps.loadConfig(repo.dir);
    if (!isInside(repo.dir, config.state.path)) {
      throw new PremiscaleError(
        `state.path ${config.state.path} is outside the config repository, so state commits could not be pushed`,
        "state_outside_repo",
        "set state.path to a directory inside the repository, e.g. ./premiscale-state",
      );
    }
  } catch (e) {
    if (!(e instanceof PremiscaleError)) throw e;
    const error = errorInfo(e);
    emit({ type: "config_invalid", commit, error });
    // The last good state stays as it is; in review mode the error goes where reviewers look.
    if (options.mode === "review") {
      const branch = `${PLAN_BRANCH_PREFIX}invalid-${commit.slice(0, 12)}`;
      const r = await repo.publishBranch(branch, { [files.md]: renderErrorMarkdown(commit, repo.branch, error) }, `premiscale: config at ${commit.slice(0, 12)} is invalid`);
      if (r.status === "pushed") emit({ type: "plan_published", planId: `invalid-${commit.slice(0, 12)}`, branch, commit: r.commit });
      return { outcome: "invalid_config", commit, error, branch };
    }
    return { outcome: "invalid_config", commit, error };
  }

  const suspended = config.groups.filter((g) => options.isSuspended?.(g) ?? false).map((g) => g.name);
  for (const group of suspended) emit({ type: "group_suspended", group });
  if (suspended.length === config.groups.length) return { outcome: "suspended", commit };
  const targets = suspended.length > 0 ? config.groups.filter((g) => !suspended.includes(g.name)).map((g) => g.name) : null;
  const digest = configDigest(config);

  const store = steps.openState(config);
  const stateLock = await store.lock("reconcile", options.stateLockTimeoutMs ?? 10_000);
  try {
    const state = await store.read();
    const notices: string[] = [];

    if (options.mode === "review") {
      const merged = await readMergedPlan(repo.dir, files);
      if (merged?.kind === "plan") {
        const refusal = whyRefused(merged.plan, state, now(), digest, config, suspended);
        if (!refusal) {
          emit({ type: "merged_plan_found", planId: merged.id });
          const result = await applyNow(steps, config, merged.plan, merged.id, stateLock, emit, signal);
          await repo.commitRemoval([files.json, files.md], `premiscale: applied plan ${merged.id}\n\n${summaryLine(merged.plan)}\n`);
          return { ...result, commit };
        }
        emit({ type: "plan_refused", planId: merged.id, error: refusal });
        notices.push(`the merged plan ${merged.id ?? "(unreadable)"} was refused: ${refusal.message}. This plan replaces it.`);
      }
      if (merged) await repo.commitRemoval([files.json, files.md], `premiscale: remove ${merged.kind === "plan" ? `refused plan ${merged.id}` : "merged report"}`);
    }

    const { plan, unreachable } = await steps.plan(config, state, { targets, now: now() });
    const id = planId(plan);
    emit({
      type: "plan_ready",
      planId: id,
      summary: summaryLine(plan),
      changes: plan.changes.length,
      drift: plan.drift.length,
      errors: plan.errors,
      warnings: plan.warnings,
      unreachable,
    });
    if (plan.errors.length > 0) {
      const message = plan.errors.map((e) => `group ${e.group}: ${e.message}`).join("; ");
      return { outcome: "plan_failed", commit, planId: id, error: { message, code: "plan_has_errors", hint: "fix the config or the hosts; the next pass plans again" } };
    }
    if (plan.changes.length === 0) {
      if (options.mode === "auto" && steps.recordRecommendations) {
        const recorded = await steps.recordRecommendations(plan, state, stateLock, now());
        if (recorded) emit({ type: "recommendations_recorded", commit: recorded });
      }
      if (plan.shortfalls.length > 0) return { outcome: "partial", commit, planId: id, error: shortfallError(plan) };
      return { outcome: "no_changes", commit, planId: id };
    }
    if (options.mode === "auto") return { ...(await applyNow(steps, config, plan, id, stateLock, emit, signal)), commit };

    const branch = `${PLAN_BRANCH_PREFIX}${id}`;
    let backtest: string | undefined;
    try {
      backtest = (await options.backtest?.(config, plan, { repoDir: repo.dir, commit })) ?? undefined;
    } catch (e) {
      backtest = `The backtest of the changed policies failed: ${errorInfo(e).message}`;
    }
    const md = renderPlanMarkdown(plan, {
      title: `premiscale plan \`${id}\` for \`${repo.branch}\``,
      next: `Merge branch \`${branch}\` into \`${repo.branch}\`: the next reconcile applies exactly this plan. It is refused and planned again if state moves on first, or after ${plan.expires_at}.`,
      notices,
      backtest,
    });
    const r = await repo.publishBranch(branch, { [files.json]: serializePlan(plan), [files.md]: md }, `premiscale plan ${id}: ${summaryLine(plan)}\n`);
    if (r.status === "exists") {
      emit({ type: "plan_already_published", planId: id, branch });
      return { outcome: "already_published", commit, planId: id, branch };
    }
    emit({ type: "plan_published", planId: id, branch, commit: r.commit });
    return { outcome: "published", commit, planId: id, branch };
  } finally {
    await stateLock.release();
  }
}

async function applyNow(
  steps: ReconcileSteps,
  config: Config,
  plan: Plan,
  id: string,
  lock: StateLock,
  emit: Emit,
  signal: AbortSignal,
): Promise<Omit<ReconcileResult, "commit">> {
  const r = await steps.apply(config, plan, lock, { signal, onEvent: (event) => emit({ type: "apply", event }) });
  const added = r.succeeded.filter((c) => c.action === "create").length;
  const destroyed = r.succeeded.filter((c) => c.action === "delete").length;
  emit({
    type: "applied",
    planId: id,
    added,
    destroyed,
    failed: r.failed.map((f) => ({ address: f.change.address, error: f.error })),
    stateCommit: r.commit,
    commitError: r.commitError,
  });
  const applied = { added, destroyed, failed: r.failed.length };
  if (signal.aborted) return { outcome: "interrupted", planId: id, applied };
  if (r.failed.length > 0 || r.commitError) {
    const message = r.commitError ?? r.failed.map((f) => `${f.change.address}: ${f.error}`).join("; ");
    return { outcome: "apply_failed", planId: id, applied, error: { message, code: r.commitError ? "state_commit_failed" : "apply_failed" } };
  }
  if (plan.shortfalls.length > 0) return { outcome: "partial", planId: id, applied, error: shortfallError(plan) };
  return { outcome: "applied", planId: id, applied };
}

/** A plan's shortfalls as the error of a `partial` pass. */
function shortfallError(plan: Plan): ErrorInfo {
  return { message: plan.shortfalls.map(describeShortfall).join("; "), code: "shortfall", hint: "the next pass tries again; add room or lower the groups' sizes" };
}

/** A plan's id: the same for the same base and the same intended changes, so a pass does not publish it twice. */
export function planId(plan: Plan): string {
  // Arrays in a fixed order, not objects: a plan read back from its file has its keys sorted.
  const b = plan.based_on;
  const key = JSON.stringify([
    [b.lineage, b.serial, b.config_digest, b.config_commit],
    plan.groups.map((g) => [g.name, g.current, g.desired, g.reason]),
    plan.changes.map((c) => [c.action, c.group, c.reason, c.host, c.action === "delete" ? c.name : ""]),
  ]);
  return createHash("sha256").update(key).digest("hex").slice(0, 12);
}

type Merged = { kind: "plan"; plan: Plan; id: string } | { kind: "report" };

/** A plan (or error report) merged into the tracked branch; a plan file that does not parse is refused later. */
async function readMergedPlan(dir: string, files: { json: string; md: string }): Promise<Merged | null> {
  const text = await readFile(join(dir, files.json), "utf8").catch(() => null);
  if (text === null) {
    const md = await readFile(join(dir, files.md), "utf8").catch(() => null);
    return md === null ? null : { kind: "report" };
  }
  try {
    const plan = parsePlan(text);
    return { kind: "plan", plan, id: planId(plan) };
  } catch (e) {
    // An unreadable plan is refused like a stale one: removed, reported, planned again.
    return { kind: "plan", plan: { errors: [{ group: "-", message: (e as Error).message }] } as unknown as Plan, id: "(unreadable)" };
  }
}

function whyRefused(plan: Plan, state: State | null, now: Date, digest: string, config: Config, suspended: string[]): ErrorInfo | null {
  try {
    checkPlanApplicable(plan, state ? { lineage: state.lineage, serial: state.serial } : null, now);
  } catch (e) {
    return errorInfo(e);
  }
  if (plan.based_on.config_digest !== digest) {
    return { message: "the config changed since this plan was made", code: "plan_config_changed", hint: "review the new plan" };
  }
  for (const c of plan.changes) {
    if (!config.hosts.some((h) => h.name === c.host)) return { message: `the plan uses host ${c.host}, which the config no longer has`, code: "plan_stale" };
    if (suspended.includes(c.group)) return { message: `group ${c.group} is suspended`, code: "group_suspended", hint: "resume the group, then merge a new plan" };
  }
  return null;
}

/** The report published on a branch in review mode when the config at `commit` is invalid. */
export function renderErrorMarkdown(commit: string, branch: string, error: ErrorInfo): string {
  const fence = "`".repeat(Math.max(3, ...(error.message.match(/`+/g) ?? []).map((m) => m.length + 1)));
  return [
    `### premiscale: the config at \`${commit.slice(0, 12)}\` on \`${branch}\` is invalid`,
    "",
    "Nothing was planned or applied; premiscale keeps the last good state until a valid config is pushed.",
    "",
    `${fence}text`,
    error.message,
    fence,
    "",
    ...(error.hint ? [`* :arrow_forward: ${error.hint}`, ""] : []),
  ].join("\n");
}

/** Any thrown value as plain data; a `PremiscaleError` keeps its code and hint. */
export function errorInfo(e: unknown): ErrorInfo {
  if (e instanceof PremiscaleError) return { message: e.message, code: e.code, ...(e.hint ? { hint: e.hint } : {}) };
  return { message: e instanceof Error ? e.message : String(e), code: "internal_error", hint: "this is a bug in premiscale: please report it" };
}
