/**
 * premiscale's own Kubernetes autoscaler (native mode, issue 12), running: `premiscale serve` with
 * `kubernetes.mode: native`. A loop scans the cluster (kubernetes/native/native-loop.ts), decides per node group
 * (decide-native.ts: pending pods up, under-used nodes down), and plans and applies like any other group, with the
 * node lifecycle hooks (join, Node deletion) and, before a VM is destroyed, an optional drain hook.
 *
 *   API ─pending pods (poll)─▶ batcher ─batch─┐
 *   API ─nodes, pods, DaemonSets─▶ scan ◀──────┴─ every scanInterval
 *        scan: lock → members from state → decideNative → plan (nativeSource) → apply (join / drain / delete Node)
 *              → commit (reason: the decisions) → remember (scale-up / scale-down / failure times, back-offs)
 */
import { applyPlan, type ApplyEvent } from "../applier/apply-plan.js";
import type { LifecycleHook } from "../applier/lifecycle.js";
import type { Config } from "../config/types.js";
import { openKubeApi, type KubeApi } from "../kubernetes/kube-api.js";
import { drainHook, releaseNode } from "../kubernetes/native/drain.js";
import { listUnschedulable, readCluster } from "../kubernetes/native/cluster-reader.js";
import { decideNative, type NativeGroupDecision, type NativeResult } from "../kubernetes/native/decide-native.js";
import { NativeLoop, type NativeScanInput, type NativeScanOutcome, type NativeTrigger } from "../kubernetes/native/native-loop.js";
import { nativeOptions, nativeSource } from "../kubernetes/native/native-source.js";
import { recordResults } from "../kubernetes/native/safety.js";
import { keptNotes } from "../kubernetes/native/scale-down.js";
import { podKey, withoutDrainMarks, withoutNodes } from "../kubernetes/native/cluster-model.js";
import type { Member } from "../policies/aggregate.js";
import { makeProvider } from "../providers/index.js";
import type { Provider } from "../providers/provider.js";
import type { ServerLogLine } from "../server/check-in-server.js";
import { GitStateStore } from "../state/git-state-store.js";
import type { StateEvent } from "../state/state-store.js";
import type { State } from "../state/types.js";
import { kubernetesHooks, nodeGroupNames } from "./kubernetes-sources.js";
import { makePlan } from "./make-plan.js";
import { prepareApply } from "./prepare-apply.js";

/** How one scan ended. */
export interface NativeScanResult {
  outcome: "no_changes" | "applied" | "partial" | "failed" | "locked" | "skipped";
  trigger: NativeTrigger;
  /** The groups whose size the scan changes (or would, for `partial`/`failed`), with the reason. */
  decisions: Pick<NativeGroupDecision, "group" | "current" | "add" | "remove" | "code" | "reason">[];
  added: number;
  destroyed: number;
  failed: { address: string; error: string }[];
  /** Pods no group can take: `namespace/name` and per group why. */
  unplaceable: { pod: string; groups: Record<string, string> }[];
  /** Nodes of a group that scale-down would take but a PodDisruptionBudget or the disruption budget keeps: "web-c kept: …". */
  kept: string[];
  halted?: string;
  /**
   * Nodes whose drain was cut short (an API outage, a crash) and that this scan does not remove again: their taint
   * (and the drain's cordon) taken off, or why that failed. A node the scan removes again resumes its drain instead.
   */
  released?: string[];
  commit: string | null;
  error?: string;
  durationMs: number;
}

/** Everything native mode reports (premiscale serve logs it). */
export type NativeEvent =
  | { type: "native_started"; groups: string[]; scanIntervalSeconds: number }
  | { type: "pods_batched"; pods: number }
  | { type: "scan_start"; trigger: NativeTrigger }
  | ({ type: "scan_done" } & NativeScanResult)
  | { type: "apply"; event: ApplyEvent }
  /** The state store's notes (a dead holder's or a previous leader's lock taken over, writes recovered). */
  | { type: "state"; event: StateEvent }
  | { type: "native_error"; error: string };

/** What a scan needs. */
export interface NativeScanDeps {
  config: Config;
  providers: ReadonlyMap<string, Provider>;
  env: Record<string, string | undefined>;
  /** @default 30000 */
  lockTimeoutMs?: number;
  onApplyEvent?: (e: ApplyEvent) => void;
  onStateEvent?: (e: StateEvent) => void;
  /** The Lease (`namespace/name`) this replica leads: recorded in the state lock, and a previous leader's lock taken over. */
  leaderOf?: string;
  serverLog?: (l: ServerLogLine) => void;
  /** The node lifecycle hooks (join, Node Ready, cordon, delete Node); default kubernetesHooks(config). Tests replace them. */
  hooks?: (group: string) => readonly LifecycleHook[];
  /**
   * A before-destroy hook that drains the VM's Node (evictions within PDBs; `abandon` keeps the VM). Replaces the node
   * hooks' cordon (the drain cordons itself; see withDrain), before the destroy. Absent: VMs are removed after the
   * cordon only.
   */
  drain?: LifecycleHook;
  /** Draws for the `random` expander. @default Math.random */
  random?: () => number;
  /** When the last plan ran (scans without a change plan only this often: kubernetes.resyncSeconds). */
  lastPlanAt?: { at: number };
  /** Takes a drain's marks off a node (drain.ts releaseNode with the API). Absent: nodes left by a cut drain keep them. */
  releaseNode?: (node: string) => Promise<void>;
}

/**
 * A group's lifecycle hooks with the drain as its last before-destroy hook. The node hooks' own cordon goes: the
 * drain cordons (and taints) itself, marking the cordon as its own, so a drain that gives up (an RBAC refusal, a PDB)
 * uncordons the node again. A cordon made before it by another hook would stay, and a cordoned node is never chosen
 * for scale-down again: the node would be lost to the cluster and the removal never retried.
 */
export function withDrain(hooks: readonly LifecycleHook[], drain: LifecycleHook | undefined): LifecycleHook[] {
  if (!drain) return [...hooks];
  return [...hooks.filter((h) => !(h.point === "before-destroy" && h.step === "node-cordon")), drain];
}

/** Names of the node groups' VMs an interrupted apply left "creating" (no apply runs while a scan holds the lock). */
function interruptedCreates(config: Config, state: State | null): Set<string> {
  const groups = new Set(nodeGroupNames(config));
  return new Set((state?.groups ?? []).filter((g) => groups.has(g.name)).flatMap((g) => g.instances.filter((i) => i.status === "creating").map((i) => i.name)));
}

/** The node groups' VMs in state, as the planner counts them (not those being deleted, nor those an interrupted apply left creating). */
export function nodeGroupMembers(config: Config, state: State | null): Map<string, Member[]> {
  const out = new Map<string, Member[]>();
  for (const name of nodeGroupNames(config)) {
    const g = state?.groups.find((x) => x.name === name);
    // Under the state lock no apply runs, so a VM still "creating" is an interrupted apply's (a leader killed while
    // its VMs waited for their Nodes): the plan removes it, so it is no node on its way for the pending pods either.
    out.set(name, (g?.instances ?? []).filter((i) => i.status !== "deleting" && i.status !== "creating").map((i) => ({ name: i.name, createdAt: i.created, ready: i.status === "running" })));
  }
  return out;
}

const changes = (r: NativeResult) => [...r.decisions.values()].filter((d) => d.add > 0 || d.remove.length > 0);

/**
 * WARNING: changes real hosts. One scan: take the state lock, decide from the cluster and the VMs in state, plan the
 * node groups with those decisions, apply (hooks: join, drain, delete Node), commit; then the memory for the next
 * scan (a failed create backs its group off after the first retry).
 */
export async function runNativeScan(deps: NativeScanDeps, input: NativeScanInput, signal: AbortSignal): Promise<{ result: NativeScanResult; next: NativeScanOutcome }> {
  const started = performance.now();
  const { config } = deps;
  const native = config.kubernetes?.native;
  if (!native) throw new Error("runNativeScan needs a config with kubernetes.mode: native");
  const groups = nodeGroupNames(config);
  const result: NativeScanResult = { outcome: "no_changes", trigger: input.trigger, decisions: [], added: 0, destroyed: 0, failed: [], unplaceable: [], kept: [], commit: null, durationMs: 0 };
  const done = (r: Partial<NativeScanResult>, next: NativeScanOutcome) => ({ result: Object.assign(result, r, { durationMs: performance.now() - started }), next });
  const stateStore = new GitStateStore(config.state.path);
  let lock;
  try {
    lock = await stateStore.lock("kubernetes native (premiscale serve)", deps.lockTimeoutMs ?? 30_000, deps.onStateEvent, deps.leaderOf ? { leaderOf: deps.leaderOf } : {});
  } catch (e) {
    return done({ outcome: "locked", error: (e as Error).message }, { memory: input.memory, again: true });
  }
  try {
    const state = await stateStore.read();
    // A drain cut short left its taint and cordon: decide as if they were gone, then resume or release it.
    const { cluster: unmarked, marked } = withoutDrainMarks(input.cluster, groups);
    // An interrupted apply's half-made VMs are removed by this scan's plan: if they joined, their pods need room.
    const cluster = withoutNodes(unmarked, interruptedCreates(config, state));
    const decided = decideNative({
      groups: config.groups.filter((g) => g.kubernetes),
      members: nodeGroupMembers(config, state),
      cluster,
      held: input.held,
      memory: input.memory,
      now: input.now,
      options: nativeOptions(native),
      random: deps.random ?? Math.random,
    });
    result.decisions = changes(decided).map(({ group, current, add, remove, code, reason }) => ({ group, current, add, remove, code, reason }));
    result.unplaceable = decided.unplaceable.map((u) => ({ pod: podKey(u.pod), groups: u.groups }));
    result.kept = keptNotes(decided.nodes, Object.keys(decided.nodes));
    if (decided.halted) result.halted = decided.halted;
    const removing = new Set(result.decisions.flatMap((d) => d.remove));
    const stale = marked.filter((n) => !removing.has(n));
    if (stale.length > 0 && deps.releaseNode) {
      const release = deps.releaseNode;
      result.released = await Promise.all(stale.map((n) => release(n).then(() => `${n}: drain cut short, node kept: taint removed`, (e: unknown) => `${n}: drain cut short, node kept, but its taint could not be removed: ${(e as Error).message}`)));
    }
    const due = !deps.lastPlanAt || input.now.getTime() - deps.lastPlanAt.at >= (config.kubernetes?.resyncSeconds ?? 60) * 1000;
    if (result.decisions.length === 0 && input.trigger !== "start" && input.trigger !== "retry" && !due) {
      return done({ outcome: "skipped" }, { memory: decided.memory, again: false });
    }
    if (deps.lastPlanAt) deps.lastPlanAt.at = input.now.getTime();
    const { plan } = await makePlan(config, deps.providers, state, { targets: groups, sources: [nativeSource(decided)], env: deps.env, now: input.now });
    if (plan.errors.length > 0) return done({ outcome: "failed", error: plan.errors.map((e) => `${e.group}: ${e.message}`).join("; ") }, { memory: decided.memory, again: true });
    if (plan.changes.length === 0) return done({ outcome: plan.shortfalls.length > 0 ? "partial" : "no_changes" }, { memory: decided.memory, again: false });

    const base = deps.hooks ?? kubernetesHooks(config);
    const hooks = (g: string) => withDrain(base(g), deps.drain);
    const prepared = await prepareApply(config, plan, { providers: deps.providers, lock, env: deps.env, hooks, ...(deps.serverLog ? { serverLog: deps.serverLog } : {}) });
    let applied;
    try {
      applied = await applyPlan(plan, prepared.deps, { signal, ...(deps.onApplyEvent ? { onEvent: deps.onApplyEvent } : {}) });
      await prepared.close(true);
    } catch (e) {
      await prepared.close(false);
      throw e;
    }
    const created = applied.succeeded.filter((c) => c.action === "create");
    const failedCreates = signal.aborted ? [] : applied.failed.filter((f) => f.change.action === "create");
    const memory = recordResults(decided.memory, input.now, {
      added: created.length,
      removed: applied.succeeded.filter((c) => c.action === "delete").length,
      failedGroups: failedCreates.map((f) => f.change.group),
      joinedGroups: [...new Set(created.map((c) => c.group))],
    });
    return done(
      {
        outcome: applied.failed.length > 0 ? "failed" : plan.shortfalls.length > 0 ? "partial" : "applied",
        added: created.length,
        destroyed: applied.succeeded.filter((c) => c.action === "delete").length,
        failed: applied.failed.map((f) => ({ address: f.change.address, error: f.error })),
        commit: applied.commit,
      },
      { memory, again: applied.failed.length > 0 },
    );
  } catch (e) {
    return done({ outcome: "failed", error: (e as Error).message }, { memory: input.memory, again: true });
  } finally {
    await lock.release();
  }
}

/** A running native mode. */
export interface RunningNativeProvider {
  readonly loop: NativeLoop;
  /** No externalgrpc listener in native mode. */
  readonly address: null;
  stop(): Promise<void>;
}

/** Options of startNativeProvider. */
export interface NativeProviderOptions {
  env: Record<string, string | undefined>;
  onEvent?: (e: NativeEvent) => void;
  serverLog?: (l: ServerLogLine) => void;
  hooks?: (group: string) => readonly LifecycleHook[];
  /** The before-destroy drain. @default kubernetes/native/drain.ts drainHook (evictions within PDBs); null: none */
  drain?: LifecycleHook | null;
  /** The API client (tests); default: the config's kubeconfig. */
  api?: KubeApi;
  /** The hosts' providers (tests); default: one per configured host. Closed by stop() either way. */
  providers?: ReadonlyMap<string, Provider>;
  /**
   * Aborts the scan in flight at once, before stop() is called (leadership lost: the apply starts no further change
   * and its hooks stop, so no host call follows).
   */
  signal?: AbortSignal;
  /** The Lease (`namespace/name`) this replica leads, with leader election (see NativeScanDeps.leaderOf). */
  leaderOf?: string;
}

/**
 * Starts native mode for `config` (`kubernetes.mode: native`): opens the API (a bad kubeconfig fails now), the
 * providers and the loop, whose first scan runs at once.
 */
export async function startNativeProvider(config: Config, o: NativeProviderOptions): Promise<RunningNativeProvider> {
  const k = config.kubernetes;
  if (!k?.native) throw new Error("startNativeProvider needs a config with kubernetes.mode: native");
  const native = k.native;
  const emit = (e: NativeEvent) => {
    try {
      o.onEvent?.(e);
    } catch {
      // a broken listener must not break the loop
    }
  };
  const api = o.api ?? openKubeApi(k);
  const providers = o.providers ?? new Map<string, Provider>(config.hosts.map((h) => [h.name, makeProvider(h)]));
  const deps: NativeScanDeps = {
    config,
    providers,
    env: o.env,
    lastPlanAt: { at: 0 },
    releaseNode: (node) => releaseNode(api, node),
    onApplyEvent: (event) => emit({ type: "apply", event }),
    onStateEvent: (event) => emit({ type: "state", event }),
    ...(o.leaderOf ? { leaderOf: o.leaderOf } : {}),
    ...(o.serverLog ? { serverLog: o.serverLog } : {}),
    ...(o.hooks ? { hooks: o.hooks } : {}),
  };
  const drain = o.drain === undefined ? drainHook({ api, callTimeoutSeconds: k.callTimeoutSeconds }) : o.drain;
  if (drain) deps.drain = drain;
  const loop = new NativeLoop({
    scanIntervalMs: native.scanIntervalSeconds * 1000,
    pollMs: native.pollMs,
    batchIdleMs: native.batchIdleMs,
    batchMaxMs: native.batchMaxMs,
    readCluster: () => readCluster(api),
    listPending: () => listUnschedulable(api),
    onBatch: (pods) => emit({ type: "pods_batched", pods: pods.length }),
    onError: (e) => emit({ type: "native_error", error: (e as Error).message }),
    scan: async (input, loopSignal) => {
      const signal = o.signal ? AbortSignal.any([loopSignal, o.signal]) : loopSignal;
      if (signal.aborted) return { memory: input.memory, again: false };
      emit({ type: "scan_start", trigger: input.trigger });
      const { result, next } = await runNativeScan(deps, input, signal);
      emit({ type: "scan_done", ...result });
      return next;
    },
  });
  emit({ type: "native_started", groups: nodeGroupNames(config), scanIntervalSeconds: native.scanIntervalSeconds });
  loop.start();
  let stopped: Promise<void> | null = null;
  return {
    loop,
    address: null,
    stop: () =>
      (stopped ??= (async () => {
        await loop.stop();
        await Promise.all([...providers.values()].map((p) => p.close()));
      })()),
  };
}
