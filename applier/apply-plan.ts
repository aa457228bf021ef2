import { substituteEnv } from "../config/user-data.js";
import { emptyHistory, recordDecision, recordEvent } from "../policies/history.js";
import type { Change, GroupPlan, Plan } from "../planner/plan.js";
import type { Provider, ProviderStep, VmSpec } from "../providers/provider.js";
import type { StateLock } from "../state/state-store.js";
import type { RolloutState } from "../state/types.js";
import { randomUUID } from "node:crypto";
import type { ApplyJournal, JournalEntry } from "./journal.js";
import { runHook, type HookContext, type HookPoint, type HookRun, type HookTarget, type LifecycleHook } from "./lifecycle.js";
import { Limiter } from "./limiter.js";

/** A step of a change: the provider's steps, `ready` (waiting for the new VM to check in) and `hook:<name>`. */
export type ApplyStep = ProviderStep | "ready" | `hook:${string}` | (string & {});

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Progress of an apply, one event per step (the CLI renders them; JSON mode prints them as lines). */
export type ApplyEvent =
  | { type: "apply_start"; address: string; action: Change["action"]; host: string }
  | { type: "apply_progress"; address: string; step: ApplyStep; elapsedMs: number }
  | { type: "apply_complete"; address: string; action: Change["action"]; elapsedMs: number }
  | { type: "apply_errored"; address: string; action: Change["action"]; error: string; elapsedMs: number }
  | { type: "cleanup_errored"; address: string; error: string }
  /** A hook went on and said something: e.g. that it timed out or could not be reached and its default result was continue. */
  | { type: "hook_message"; address: string; hook: string; message: string };

/** What an apply did. */
export interface ApplyResult {
  succeeded: Change[];
  failed: { change: Change; error: string }[];
  /** The state commit, or null when nothing was written. */
  commit: string | null;
  /** Why the commit failed, if it did (the state files are written; the next apply commits them). */
  commitError: string | null;
}

/** What apply needs from the outside. */
export interface ApplyDeps {
  /** A provider per host name in the plan. */
  providers: ReadonlyMap<string, Provider>;
  /** The held state lock; apply writes through it and commits once at the end. */
  lock: StateLock;
  /** Per-host limit of steps at once. */
  hostLimits: ReadonlyMap<string, number>;
  /** Secrets for `${env:NAME}` placeholders in user-data. */
  env: Record<string, string | undefined>;
  /** Monotonic clock in ms (injected so tests can control it). */
  clock?: () => number;
  /** Where each step is recorded before it starts; none in tests that do not need it. */
  journal?: ApplyJournal;
  /** Wall clock for journal entries. @default () => new Date() */
  now?: () => Date;
  /**
   * The lifecycle hooks of a group's VMs, in the order they run at each point (see lifecycle.ts): the check-in wait
   * (`readinessHooks`), users' hooks, the Kubernetes join and drain. A plan whose creates wait for a check-in is
   * refused without a hook named `check-in`.
   */
  hooks?: (group: string) => readonly LifecycleHook[];
  /** Called after a VM is destroyed, to drop what this machine keeps about it (its check-in records). */
  forget?: (uuid: string) => Promise<void>;
}

/**
 * How apply learns that a new VM is up: `prepare` adds the check-in to the VM's user-data (with its token: never
 * stored); `wait` resolves once the VM has checked in and rejects when `timeoutMs` passes or `signal` aborts.
 */
export interface Readiness {
  /** `bootBeacon`: also post a beacon on every boot, so a VM stopped and started again (warm pools) can be waited for. */
  prepare(spec: VmSpec, heartbeatSeconds: number, options?: { bootBeacon?: boolean }): VmSpec;
  /** `since`: wait for any sign of life (boot beacon, heartbeat, check-in) received after that time instead of the first check-in. */
  wait(vm: { uuid: string; name: string }, timeoutMs: number, signal?: AbortSignal, since?: Date): Promise<void>;
}

/** The name of the built-in check-in hooks (users' hooks may not take it): the only hooks a warm pool's VMs get. */
export const CHECK_IN_HOOK = "check-in";

/**
 * The check-in wait as two built-in lifecycle hooks, for the creates whose plan asks for it: before-create adds
 * phone_home (and heartbeats) to the user-data; until-ready (step `ready`) waits for the check-in, and a VM that
 * does not check in in time is given up.
 */
export function readinessHooks(readiness: Readiness): LifecycleHook[] {
  return [
    {
      name: CHECK_IN_HOOK,
      point: "before-create",
      step: null,
      defaultResult: "abandon",
      timeoutMs: () => 10_000,
      appliesTo: (ctx) => ctx.ready !== undefined,
      run: async (ctx) => ({
        result: "continue",
        spec: readiness.prepare(ctx.spec!, ctx.ready!.heartbeatSeconds ?? 0, ctx.ready!.bootBeacon ? { bootBeacon: true } : {}),
      }),
    },
    {
      name: CHECK_IN_HOOK,
      point: "until-ready",
      step: "ready",
      defaultResult: "abandon",
      // The wait ends itself at the plan's timeout with its own message; this bound only catches a wait that hangs.
      timeoutMs: (ctx) => ctx.ready!.timeoutSeconds * 1000 + 5000,
      appliesTo: (ctx) => ctx.ready !== undefined,
      run: async (ctx) => {
        const since = ctx.ready!.since ? new Date(ctx.ready!.since) : undefined;
        await readiness.wait({ uuid: ctx.vm.uuid, name: ctx.vm.name }, ctx.ready!.timeoutSeconds * 1000, ctx.signal, since);
        return { result: "continue" };
      },
    },
  ];
}

/** A hook gave up a VM being created. */
class HookAbandoned extends Error {
  constructor(run: HookRun) {
    super(run.message ?? `hook ${run.hook} said ${run.result}`);
  }
}

/** Apply options. */
export interface ApplyOptions {
  /** Changes in flight at once across all hosts. @default 10 */
  parallelism?: number;
  /** How long a VM gets to shut down before it is destroyed. @default 60000 */
  shutdownTimeoutMs?: number;
  onEvent?: (e: ApplyEvent) => void;
  /** Once aborted, changes not yet started are skipped (and reported failed); those in flight finish. */
  signal?: AbortSignal;
}

/**
 * WARNING: changes real hosts. Carries out a plan's changes (and only those): creates and destroys VMs in parallel,
 * bounded overall and per host, writes state after every finished change, and commits once at the end, also after
 * failures, so state tells the truth and running apply again converges. A create that fails is rolled back.
 */
export async function applyPlan(plan: Plan, deps: ApplyDeps, options: ApplyOptions = {}): Promise<ApplyResult> {
  const clock = deps.clock ?? (() => performance.now());
  const emit = options.onEvent ?? (() => undefined);
  const all = new Limiter(options.parallelism ?? 10);
  const perHost = new Map<string, Limiter>();
  const limiterFor = (host: string) => {
    let l = perHost.get(host);
    if (!l) perHost.set(host, (l = new Limiter(deps.hostLimits.get(host) ?? 4)));
    return l;
  };
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 60_000;
  if (plan.changes.some((c) => (c.action === "create" || c.action === "take") && c.ready && !deps.hooks?.(c.group).some((h) => h.name === CHECK_IN_HOOK && h.point === "until-ready"))) {
    throw new Error("this plan waits for VMs to check in, but apply was given no check-in server");
  }
  await deps.lock.init(plan.lineage);
  const now = deps.now ?? (() => new Date());
  const applyId = randomUUID();
  const journal = (entry: DistributiveOmit<JournalEntry, "apply" | "at">) =>
    deps.journal?.append({ ...entry, apply: applyId, at: now().toISOString() } as JournalEntry);
  journal({ type: "apply_begin", pid: process.pid, changes: plan.changes.length, based_on_serial: plan.based_on.serial });
  // A roll-out is in state, with the template a roll-back goes back to, before any of its changes runs: a crash at any
  // later point still knows where the group came from.
  for (const g of plan.groups) {
    if (g.rollout?.start && plan.changes.some((c) => c.group === g.name)) await deps.lock.putRollout(g.name, rolloutRecord(g.rollout, g.rollout.replaced));
  }

  const result: ApplyResult = { succeeded: [], failed: [], commit: null, commitError: null };
  // State writes are serialised (each rewrites a file and the serial); one that fails fails only its own change.
  let writes: Promise<void> = Promise.resolve();
  const record = (fn: () => Promise<void>): Promise<void> => {
    const next = writes.then(fn);
    writes = next.catch(() => undefined);
    return next;
  };

  /**
   * A roll-out's replacement was given up: the roll-out failed. Recorded at once (before the VM is destroyed), so the
   * next plan rolls back even if this apply dies now; a roll-back's replacement that is given up stops the roll-back.
   * Only the first failure of a group is kept.
   */
  const noteFailure = (change: Extract<Change, { action: "create" }>, error: unknown): Promise<void> =>
    record(async () => {
      const g = plan.groups.find((x) => x.name === change.group);
      const current = deps.lock.current().groups.find((x) => x.name === change.group)?.rollout;
      const at = now().toISOString();
      const what = `${change.address}: ${message(error)}`;
      if (change.reason === "replace_rollback" && g?.rollback) {
        if (!current?.rollback || current.rollback.failed) return;
        await deps.lock.putRollout(change.group, { ...current, rollback: { ...current.rollback, failed: { at, message: what } } });
      } else if ((change.reason === "replace_drift" || change.reason === "replace_lifetime") && change.replaces && g?.rollout?.previous) {
        const base = current?.template === g.rollout.template ? current : rolloutRecord(g.rollout, g.rollout.replaced);
        if (base.failed) return;
        await deps.lock.putRollout(change.group, { ...base, failed: { at, message: what }, rollback: { at, reason: `roll-out of template ${g.rollout.config} failed: ${what}` } });
      }
    });

  const run = async (change: Change) => {
    const provider = deps.providers.get(change.host);
    const started = clock();
    if (options.signal?.aborted) {
      result.failed.push({ change, error: "not started: apply was interrupted" });
      return;
    }
    emit({ type: "apply_start", address: change.address, action: change.action, host: change.host });
    journal({ type: "change_begin", address: change.address, action: change.action, host: change.host, name: change.name, uuid: change.uuid });
    const onStep = (step: ApplyStep) => {
      journal({ type: "step", address: change.address, step });
      emit({ type: "apply_progress", address: change.address, step, elapsedMs: clock() - started });
    };
    try {
      if (!provider) throw new Error(`no provider for host ${change.host}`);
      const target: HookTarget = {
        address: change.address,
        group: change.group,
        name: change.name,
        uuid: change.uuid,
        host: change.host,
        ...(change.action === "create" && change.address_v4 ? { addressV4: change.address_v4 } : {}),
      };
      // A warm pool's VM is not in the group: only the check-in runs for it (users' hooks run when it is taken, or returned).
      const inPool = (change.action === "create" || change.action === "delete") && Boolean(change.pool);
      const hooks = (deps.hooks?.(change.group) ?? []).filter((h) => !inPool || h.name === CHECK_IN_HOOK);
      /** Runs the hooks of one point in order; the first that does not continue ends the run and is returned. */
      const runPoint = async (point: HookPoint, extra: { spec?: VmSpec; ready?: HookContext["ready"] } = {}): Promise<HookRun | null> => {
        for (const hook of hooks.filter((h) => h.point === point)) {
          const base = { point, vm: target, ...extra };
          if (hook.appliesTo && !hook.appliesTo(base)) continue;
          const step = hook.step === undefined ? `hook:${hook.name}` : hook.step;
          if (step !== null) onStep(step);
          const r = await runHook(hook, base, options.signal);
          if (r.spec) extra.spec = r.spec;
          if (r.result !== "continue") return r;
          if (r.message) emit({ type: "hook_message", address: change.address, hook: hook.name, message: r.message });
        }
        return null;
      };
      /** The destroy side of hooks and the destroy, for a VM being given up (a failed or abandoned create or take). */
      const giveUp = async () => {
        await runPoint("before-destroy"); // told, but may not keep a VM that never came up
        await provider.destroyVm({ name: change.name, uuid: change.uuid }, { shutdownTimeoutMs: 0 });
        const after = await runPoint("after-destroy");
        if (after) throw new Error(`after-destroy hook ${after.hook} did not finish: ${after.message ?? after.result}`);
      };
      const known = deps.lock.current().groups.find((g) => g.name === change.group)?.instances.find((i) => i.name === change.name);
      /** Gives up a VM that did not come up (a create or a take) and rethrows why; the record goes with it. */
      const abandon = async (e: unknown): Promise<never> => {
        try {
          await giveUp();
          await record(() => deps.lock.removeInstance(change.group, change.name));
        } catch (cleanup) {
          // The `creating` record stays: the next plan removes what is left.
          emit({ type: "cleanup_errored", address: change.address, error: message(cleanup) });
        }
        throw e;
      };
      if (change.action === "create") {
        let spec = resolveSecrets(change, deps.env);
        const instance = {
          name: change.name,
          uuid: change.uuid,
          host: change.host,
          created: change.vm.createdAt,
          ...(change.address_v4 ? { address: change.address_v4 } : {}),
          vcpus: change.vm.vcpus,
          memoryMiB: change.vm.memoryMiB,
          ...(change.template ? { template: change.template } : {}),
          ...(change.ready?.bootBeacon ? { bootBeacon: true } : {}),
          ...(change.pool ? { pool: "warm" as const, poolState: change.pool.state } : {}),
        };
        const ready = change.ready;
        // Recorded before the first hook or host call, so a crash at any later point leaves a record to clean up.
        await record(() => deps.lock.putInstance(change.group, { ...instance, status: "creating" }));
        try {
          const prepared = { spec, ...(ready ? { ready } : {}) };
          const before = await runPoint("before-create", prepared);
          spec = prepared.spec;
          if (before) throw new HookAbandoned(before);
          await provider.createVm(spec, { onStep });
          const up = await runPoint("until-ready", { ...(ready ? { ready } : {}) });
          if (up) throw new HookAbandoned(up);
          // A stopped pool's VM waits shut off, its first boot (and cloud-init's once-per-instance work) done; a paused
          // pool's waits suspended in memory, checked in and ready to run on.
          if (change.pool?.state === "stopped") await provider.stopVm({ name: change.name, uuid: change.uuid }, { shutdownTimeoutMs, onStep });
          else if (change.pool?.state === "paused") await provider.pauseVm({ name: change.name, uuid: change.uuid }, { onStep });
        } catch (e) {
          if (options.signal?.aborted) throw e; // stopping: the `creating` record stays and the next apply replaces it
          await noteFailure(change, e).catch((w) => emit({ type: "cleanup_errored", address: change.address, error: `recording the roll-out's failure: ${message(w)}` }));
          await abandon(e);
        }
        await record(() => deps.lock.putInstance(change.group, { ...instance, status: "running" }));
      } else if (change.action === "take") {
        if (!known || known.pool !== "warm") throw new Error(`${change.address} is not in the warm pool any more: run premiscale plan again`);
        const { pool: _pool, poolState: _waited, ...rest } = known;
        // Heartbeats are judged from now on: a VM that waited paused last beat before its pause.
        const member = { ...rest, joined: now().toISOString() };
        // Recorded as a member being made before the first host call: after a crash the next plan removes and replaces it.
        await record(() => deps.lock.putInstance(change.group, { ...member, status: "creating" }));
        try {
          const since = now().toISOString();
          if (change.start) await provider.startVm({ name: change.name, uuid: change.uuid }, { onStep });
          const up = await runPoint("until-ready", change.ready ? { ready: { timeoutSeconds: change.ready.timeoutSeconds, since } } : {});
          if (up) throw new HookAbandoned(up);
        } catch (e) {
          if (options.signal?.aborted) throw e;
          await abandon(e);
        }
        await record(() => deps.lock.putInstance(change.group, { ...member, status: "running" }));
      } else if (change.action === "return") {
        if (!known || known.pool === "warm") throw new Error(`${change.address} is not a member any more: run premiscale plan again`);
        // Recorded as leaving before the first hook or host call: after a crash the next plan finishes removing it.
        await record(() => deps.lock.putInstance(change.group, { ...known, status: "deleting" }));
        const kept = await runPoint("before-destroy");
        if (kept) {
          await record(() => deps.lock.putInstance(change.group, known));
          throw new Error(`kept: hook ${kept.hook} did not let it go: ${kept.message ?? kept.result}`);
        }
        if (change.stop) await provider.stopVm({ name: change.name, uuid: change.uuid }, { shutdownTimeoutMs, onStep });
        else if (change.pause) await provider.pauseVm({ name: change.name, uuid: change.uuid }, { onStep });
        const after = await runPoint("after-destroy");
        if (after) throw new Error(`after-destroy hook ${after.hook} did not finish: ${after.message ?? after.result}; the next apply removes it`);
        const { joined: _joined, ...pooled } = known;
        const poolState = change.stop ? "stopped" : change.pause ? "paused" : "running";
        await record(() => deps.lock.putInstance(change.group, { ...pooled, status: "running", pool: "warm", poolState }));
      } else {
        // Recorded before the first hook or host call: a destroy cut short is finished by the next apply, not replaced.
        if (known && known.status !== "deleting") await record(() => deps.lock.putInstance(change.group, { ...known, status: "deleting" }));
        // A VM that is already gone has nothing to drain or deregister; the clean-up after it still runs.
        const kept = change.gone ? null : await runPoint("before-destroy");
        if (kept) {
          if (known) await record(() => deps.lock.putInstance(change.group, { ...known, status: known.status === "deleting" ? "running" : known.status }));
          throw new Error(`kept: hook ${kept.hook} did not let it go: ${kept.message ?? kept.result}`);
        }
        // A VM whose create never finished was never handed over: nothing on it deserves a graceful shutdown, and
        // a minute of one lets it boot far enough to start working (a Kubernetes node joins and gets pods).
        const graceMs = change.reason === "interrupted_create" ? 0 : shutdownTimeoutMs;
        await provider.destroyVm({ name: change.name, uuid: change.uuid }, { shutdownTimeoutMs: graceMs, onStep });
        const after = await runPoint("after-destroy");
        // The `deleting` record stays, so the next apply runs the clean-up again.
        if (after) throw new Error(`destroyed, but after-destroy hook ${after.hook} did not finish: ${after.message ?? after.result}; the next apply runs it again`);
        await record(() => deps.lock.removeInstance(change.group, change.name));
        await deps.forget?.(change.uuid).catch(() => undefined); // only housekeeping: never fails the change
      }
      result.succeeded.push(change);
      journal({ type: "change_end", address: change.address, ok: true });
      emit({ type: "apply_complete", address: change.address, action: change.action, elapsedMs: clock() - started });
    } catch (e) {
      result.failed.push({ change, error: message(e) });
      journal({ type: "change_end", address: change.address, ok: false, error: message(e) });
      emit({ type: "apply_errored", address: change.address, action: change.action, error: message(e), elapsedMs: clock() - started });
    }
  };

  // A create that counts on room (or a static address) that deletes of this plan free starts once they succeeded.
  // It waits before taking any slot, so waiting never holds a slot the delete it waits for needs.
  const finished = new Map(plan.changes.map((c) => [c.address, deferred<boolean>()] as const));
  const runAfter = async (change: Change) => {
    const waits = change.waits_for ?? [];
    const ok = await Promise.all(waits.map((a) => finished.get(a)?.promise ?? Promise.resolve(false)));
    const blocked = waits.filter((_, i) => !ok[i]);
    if (blocked.length > 0) {
      const why =
        change.action === "create" && change.replaces ? "the roll-out's batch before it did not finish" : change.action === "create" ? "its host has no room until then" : "the VM replacing it is not ready";
      const error = `not started: it waits for ${blocked.join(", ")}, which did not finish (${why}); the next apply tries again`;
      result.failed.push({ change, error });
      emit({ type: "apply_errored", address: change.address, action: change.action, error, elapsedMs: 0 });
      return;
    }
    // Host slot first, then a global one: a change queued behind a busy (or hung) host must not hold a global slot
    // that a change for another host could use.
    await limiterFor(change.host).run(() => all.run(() => run(change)));
  };
  await Promise.all(
    plan.changes.map((c) =>
      runAfter(c).finally(() => finished.get(c.address)!.resolve(result.succeeded.includes(c))),
    ),
  );
  await writes;
  await recordHistory(plan, deps.lock, result, now());
  await recordRollouts(plan, deps.lock, result, now());
  await recordTemplates(plan, deps.lock, result);
  journal({ type: "apply_end", succeeded: result.succeeded.length, failed: result.failed.length });
  try {
    result.commit = await deps.lock.commit(commitMessage(plan, result));
  } catch (e) {
    // The state files are written; the next apply under the lock commits them. Report, do not lose the result.
    result.commitError = message(e);
  }
  return result;
}

/**
 * Records, in each policy-driven group's history, the decision the plan carried out (its recommendation, and the
 * VMs added or deleted) and an `error` event when a change of the group failed, so that stabilisation windows,
 * cooldowns and the after-error delay hold across runs. `result` null: nothing was applied (a plan without
 * changes); only a recommendation that differs from the last one recorded is written then, so an idle group does
 * not make a commit every interval (windows need the points where the recommendation changed, not every sample).
 */
export async function recordHistory(plan: Plan, lock: StateLock, result: Pick<ApplyResult, "failed"> | null, now: Date): Promise<void> {
  for (const g of plan.groups) {
    const decision = g.decision;
    if (!decision?.details) continue;
    const old = lock.current().groups.find((x) => x.name === g.name)?.history ?? emptyHistory();
    if (result === null && old.recommendations.at(-1)?.desired === decision.details.recommendation) continue;
    let history = recordDecision(old, decision, now);
    const failed = result?.failed.filter((f) => f.change.group === g.name) ?? [];
    if (failed.length > 0) {
      history = recordEvent(history, { at: now.toISOString(), kind: "error", message: `${failed.length} change(s) failed: ${failed[0]!.error}` });
    }
    await lock.putHistory(g.name, history);
  }
}

/** A roll-out's record as the plan describes it, with `replaced` VMs replaced so far. */
function rolloutRecord(r: NonNullable<GroupPlan["rollout"]>, replaced: number): RolloutState {
  return { template: r.template, total: r.total, replaced, ...(r.config ? { config: r.config } : {}), ...(r.previous ? { previous: r.previous } : {}) };
}

/**
 * Records how far each group's template roll-out got (planner/compute-plan.ts `staleInstances` reads it back): the
 * VMs replaced, the checkpoint reached (the next batch waits out the pause from now), or that it stopped because a
 * replacement failed (the old VMs stay; it does not start again until the template changes or -replace asks). A
 * failure recorded as it happened (with its roll-back) is kept, with the count brought up to date.
 */
export async function recordRollouts(plan: Plan, lock: StateLock, result: Pick<ApplyResult, "succeeded" | "failed">, now: Date): Promise<void> {
  const replacing = new Set(["replace_drift", "replace_lifetime"]);
  for (const g of plan.groups) {
    const r = g.rollout;
    if (!r) continue;
    // A warm pool's VMs are replaced by the pool, not by the roll-out: they do not count for it.
    const member = (c: Change) => c.group === g.name && !((c.action === "create" || c.action === "delete") && c.pool) && replacing.has(c.reason);
    const failed = result.failed.filter((f) => member(f.change));
    const replaced = r.replaced + result.succeeded.filter((c) => c.action === "delete" && member(c)).length;
    const current = lock.current().groups.find((x) => x.name === g.name)?.rollout;
    if (current?.template === r.template && current.failed) {
      await lock.putRollout(g.name, { ...current, replaced });
    } else if (failed.length > 0) {
      await lock.putRollout(g.name, { ...rolloutRecord(r, replaced), failed: { at: now.toISOString(), message: `${failed[0]!.change.address}: ${failed[0]!.error}` } });
    } else if (replaced >= r.total) {
      await lock.putRollout(g.name, undefined);
    } else {
      await lock.putRollout(g.name, { ...rolloutRecord(r, replaced), ...(r.checkpoint !== undefined ? { checkpointAt: now.toISOString() } : {}) });
    }
  }
}

/**
 * Records the template a group settled on (`GroupPlan.template`: every member is made from it once the plan's changes
 * of the group succeeded), which a later failed roll-out goes back to, and ends the group's roll-out record: it is
 * finished, or was about a template the config no longer names. `result` null: a plan without changes.
 */
export async function recordTemplates(plan: Plan, lock: StateLock, result: Pick<ApplyResult, "failed"> | null): Promise<void> {
  for (const g of plan.groups) {
    if (!g.template || result?.failed.some((f) => f.change.group === g.name)) continue;
    await lock.putTemplate(g.name, g.template);
    await lock.putRollout(g.name, undefined);
  }
}

/**
 * For a plan with nothing to change: a policy-driven group's new recommendation is still worth remembering
 * (stabilisation windows read it), and so is the template a group settled on (what a later failed roll-out goes back
 * to; state written before roll-backs has none), so they are written to state and committed on their own, only when
 * they differ from what is recorded. Returns the commit, or null when nothing was written.
 */
export async function commitRecommendations(plan: Plan, lock: StateLock, now: Date): Promise<string | null> {
  if (!plan.based_on.lineage || !plan.groups.some((g) => g.decision?.details || g.template)) return null;
  await recordHistory(plan, lock, null, now);
  await recordTemplates(plan, lock, null);
  const lines = [
    ...plan.groups.filter((g) => g.decision).map((g) => `${g.name}: ${g.current} (${g.reason})`),
    ...plan.groups.filter((g) => g.template).map((g) => `${g.name}: runs template ${g.template!.digest}`),
  ];
  const what = plan.groups.some((g) => g.template) ? (plan.groups.some((g) => g.decision) ? "scaling recommendations and templates" : "templates") : "scaling recommendations";
  return lock.commit(`premiscale: record ${what}\n\n${lines.join("\n")}\n`);
}

/** Fills `${env:NAME}` placeholders; the filled text exists only in memory and in the VM's seed. */
export function resolveSecrets(change: Extract<Change, { action: "create" }>, env: Record<string, string | undefined>): VmSpec {
  // substituteEnv refuses a variable that is not set, naming it: a guest never boots with a blank secret.
  const userData = substituteEnv(change.vm.userData, env);
  const { secretEnv: _secretEnv, ...vm } = change.vm;
  return { ...vm, userData };
}

/** The state commit's message: what changed and why. */
export function commitMessage(plan: Plan, result: Pick<ApplyResult, "succeeded" | "failed">): string {
  const added = result.succeeded.filter((c) => c.action === "create").length;
  const destroyed = result.succeeded.filter((c) => c.action === "delete").length;
  const changed = result.succeeded.length - added - destroyed;
  const lines = [`premiscale apply: ${added} added, ${changed} changed, ${destroyed} destroyed${result.failed.length ? `, ${result.failed.length} failed` : ""}`, ""];
  for (const g of plan.groups) {
    const done = result.succeeded.filter((c) => c.group === g.name);
    if (done.length === 0 && !result.failed.some((f) => f.change.group === g.name)) continue;
    lines.push(`${g.name}: ${g.current} → ${g.desired} (${g.reason})`);
    for (const c of done) lines.push(`  ${c.action === "create" ? "+" : c.action === "delete" ? "-" : "~"} ${c.name} on ${c.host}${c.action === "take" ? " (from the warm pool)" : c.action === "return" ? " (back to the warm pool)" : (c.action === "create" || c.action === "delete") && c.pool ? " (warm pool)" : ""}: ${c.detail}`);
  }
  if (plan.shortfalls.length > 0) {
    lines.push("", "Short (no room yet; the next apply tries again):");
    for (const s of plan.shortfalls) lines.push(`  ${s.group}: ${s.missing} of ${s.wanted} new VMs: ${s.reason}`);
  }
  if (result.failed.length > 0) {
    lines.push("", "Failed:");
    for (const f of result.failed) lines.push(`  ${f.change.action} ${f.change.name} on ${f.change.host}: ${f.error}`);
  }
  lines.push("", `Plan-Created: ${plan.created_at}`, `Based-On: lineage ${plan.based_on.lineage ?? "(new)"}, serial ${plan.based_on.serial}`);
  if (plan.based_on.config_commit) lines.push(`Config-Commit: ${plan.based_on.config_commit}`);
  return lines.join("\n") + "\n";
}

/** A promise with its resolve function (Promise.withResolvers needs Node 22). */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
