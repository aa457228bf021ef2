/**
 * premiscale as cluster-autoscaler's externalgrpc cloud provider, running (premiscale serve with a top-level
 * `kubernetes` block): the externalgrpc server records intents, and a loop plans and applies the node groups
 * whenever one arrives.
 *
 *   cluster-autoscaler ─gRPC─▶ CloudProvider ─▶ IntentStore (synced file) ─poke─▶ AutoscalerLoop
 *                                  ▲                                                  │ pass: lock → plan (node groups,
 *                                  │ NodeGroupNodes: state + in-flight + failed        │ autoscalerSource) → record
 *                                  └───────────────────────────── state (git) ◀───────┘ shortfalls → apply (hooks) →
 *                                                                                         commit → record failures
 */
import { randomUUID } from "node:crypto";
import { applyPlan, type ApplyEvent } from "../applier/apply-plan.js";
import type { LifecycleHook } from "../applier/lifecycle.js";
import type { Config } from "../config/types.js";
import { AutoscalerLoop, type PassTrigger } from "../kubernetes/autoscaler-loop.js";
import { autoscalerSource } from "../kubernetes/autoscaler-source.js";
import { CloudProvider, type IntentChange, type ViewInstance } from "../kubernetes/cloud-provider.js";
import { startExternalGrpcServer, type ExternalGrpcCall } from "../kubernetes/grpc-server.js";
import { IntentStore, type FailedInstance, type GroupIntent } from "../kubernetes/intent-store.js";
import { StateInstanceView } from "../kubernetes/state-view.js";
import type { Change } from "../planner/plan.js";
import { makeProvider } from "../providers/index.js";
import type { Provider } from "../providers/provider.js";
import type { ServerLogLine } from "../server/check-in-server.js";
import { GitStateStore } from "../state/git-state-store.js";
import { kubernetesHooks, nodeGroupNames } from "./kubernetes-sources.js";
import { makePlan } from "./make-plan.js";
import { prepareApply, runtimeDir } from "./prepare-apply.js";

/** How one pass of the loop ended. */
export interface AutoscalerPassResult {
  outcome: "no_changes" | "applied" | "partial" | "failed" | "locked";
  trigger: PassTrigger;
  added: number;
  destroyed: number;
  failed: { address: string; error: string }[];
  /** Failed instances recorded for cluster-autoscaler (no room, never became a node, create failed). */
  recorded: { group: string; uuid: string; errorClass: FailedInstance["errorClass"]; errorCode: string; message: string }[];
  commit: string | null;
  error?: string;
  durationMs: number;
}

/** Everything the provider reports (premiscale serve logs it). */
export type AutoscalerEvent =
  | { type: "externalgrpc_listening"; address: string; secure: boolean; groups: string[] }
  | ({ type: "externalgrpc_call" } & ExternalGrpcCall)
  | ({ type: "intent" } & IntentChange)
  | { type: "pass_start"; trigger: PassTrigger }
  | ({ type: "pass_done" } & AutoscalerPassResult)
  | { type: "apply"; event: ApplyEvent };

/** What a pass needs. */
export interface PassDeps {
  config: Config;
  providers: ReadonlyMap<string, Provider>;
  store: IntentStore;
  /** Per node group, the creates of the apply in flight (the cloud provider lists them). */
  inFlight: Map<string, ViewInstance[]>;
  env: Record<string, string | undefined>;
  /** @default 30000 */
  lockTimeoutMs?: number;
  onApplyEvent?: (e: ApplyEvent) => void;
  /** The Lease (`namespace/name`) this replica leads: recorded in the state lock, and a previous leader's lock taken over. */
  leaderOf?: string;
  serverLog?: (l: ServerLogLine) => void;
  /** Hooks instead of the real ones (tests). */
  hooks?: (group: string) => readonly LifecycleHook[];
}

const failureCode = (error: string): { errorCode: string; skip: boolean } => {
  if (/^not started:/.test(error) || /apply was interrupted/.test(error)) return { errorCode: "", skip: true };
  if (/\(DeleteNodes\) before its node became Ready/.test(error)) return { errorCode: "", skip: true };
  if (/did not become Ready within/.test(error)) return { errorCode: "premiscale.NodeNotReady", skip: false };
  if (/did not check in within/.test(error)) return { errorCode: "premiscale.NoCheckIn", skip: false };
  return { errorCode: "premiscale.CreateFailed", skip: false };
};

/**
 * WARNING: changes real hosts. One pass over the node groups: take the state lock, plan them from the intents
 * (seq noted), record what no host has room for as OutOfResources failed instances, apply, record creates that
 * failed as failed instances (cluster-autoscaler backs the group off and deletes them: a VM that never joins is
 * not retried in a loop by premiscale), then drop the intent ops the apply recorded and the victims that are gone.
 */
export async function runAutoscalerPass(deps: PassDeps, trigger: PassTrigger, signal: AbortSignal): Promise<AutoscalerPassResult> {
  const started = performance.now();
  const { config, store } = deps;
  const groups = nodeGroupNames(config);
  const result: AutoscalerPassResult = { outcome: "no_changes", trigger, added: 0, destroyed: 0, failed: [], recorded: [], commit: null, durationMs: 0 };
  const done = (r: Partial<AutoscalerPassResult>) => Object.assign(result, r, { durationMs: performance.now() - started });
  const stateStore = new GitStateStore(config.state.path);
  let lock;
  try {
    lock = await stateStore.lock("kubernetes (premiscale serve)", deps.lockTimeoutMs ?? 30_000, undefined, deps.leaderOf ? { leaderOf: deps.leaderOf } : {});
  } catch (e) {
    return done({ outcome: "locked", error: (e as Error).message });
  }
  try {
    const intents = store.snapshot();
    const state = await stateStore.read();
    const { plan } = await makePlan(config, deps.providers, state, { targets: groups, sources: [autoscalerSource(intents)], env: deps.env });
    if (plan.errors.length > 0) return done({ outcome: "failed", error: plan.errors.map((e) => `${e.group}: ${e.message}`).join("; ") });

    const record = async (group: string, failed: FailedInstance[]) => {
      if (failed.length === 0) return;
      await store.update(group, () => intents.get(group) ?? { group, target: 0, remove: [], failed: [], pending: [], seq: 0, updatedAt: "" }, (i) => ({ ...i, failed: [...i.failed, ...failed] }));
      for (const f of failed) result.recorded.push({ group, uuid: f.uuid, errorClass: f.errorClass, errorCode: f.errorCode, message: f.message });
    };
    const at = new Date().toISOString();
    for (const s of plan.shortfalls) {
      await record(
        s.group,
        Array.from({ length: s.missing }, () => ({ uuid: randomUUID(), errorClass: "OutOfResources" as const, errorCode: "premiscale.NoRoom", message: `no host has room for a VM of group ${s.group}: ${s.reason}`, at })),
      );
    }

    const failedChanges: Change[] = [];
    if (plan.changes.length > 0) {
      for (const c of plan.changes) if (c.action === "create") deps.inFlight.set(c.group, [...(deps.inFlight.get(c.group) ?? []), { uuid: c.uuid, name: c.name, status: "creating" }]);
      const settle = (address: string) => {
        const c = plan.changes.find((x) => x.address === address);
        if (c?.action === "create") deps.inFlight.set(c.group, (deps.inFlight.get(c.group) ?? []).filter((i) => i.uuid !== c.uuid));
      };
      const prepared = await prepareApply(config, plan, { providers: deps.providers, lock, env: deps.env, ...(deps.serverLog ? { serverLog: deps.serverLog } : {}), ...(deps.hooks ? { hooks: deps.hooks } : {}) });
      let applied;
      try {
        applied = await applyPlan(plan, prepared.deps, {
          signal,
          onEvent: (e) => {
            if (e.type === "apply_complete" || e.type === "apply_errored") settle(e.address);
            deps.onApplyEvent?.(e);
          },
        });
        await prepared.close(true);
      } catch (e) {
        await prepared.close(false);
        throw e;
      } finally {
        for (const g of groups) deps.inFlight.delete(g);
      }
      result.added = applied.succeeded.filter((c) => c.action === "create").length;
      result.destroyed = applied.succeeded.filter((c) => c.action === "delete").length;
      result.failed = applied.failed.map((f) => ({ address: f.change.address, error: f.error }));
      failedChanges.push(...applied.failed.map((f) => f.change));
      result.commit = applied.commit;
      for (const g of groups) {
        const failedCreates = applied.failed.filter((f) => f.change.group === g && f.change.action === "create" && !signal.aborted);
        await record(
          g,
          failedCreates.flatMap((f) => {
            const { errorCode, skip } = failureCode(f.error);
            return skip ? [] : [{ uuid: f.change.uuid, errorClass: "Other" as const, errorCode, message: f.error, at: new Date().toISOString() }];
          }),
        );
      }
    }

    // What the apply carried out is in its commit: those ops are done. Victims that no longer exist are gone.
    const after = await stateStore.read();
    for (const g of groups) {
      const seen: GroupIntent | undefined = intents.get(g);
      if (!seen) continue;
      const present = new Set((after?.groups.find((x) => x.name === g)?.instances ?? []).map((i) => i.uuid));
      await store.update(g, () => seen, (i) => {
        const pending = i.pending.filter((op) => op.seq > seen.seq);
        const remove = i.remove.filter((r) => present.has(r.uuid));
        return pending.length === i.pending.length && remove.length === i.remove.length ? null : { ...i, pending, remove };
      });
    }
    // A failed create reported to cluster-autoscaler is its to handle now; any other failure is tried again soon.
    const reported = new Set(result.recorded.map((r) => r.uuid));
    const retry = failedChanges.filter((c) => !reported.has(c.uuid));
    return done({ outcome: retry.length > 0 ? "failed" : plan.shortfalls.length > 0 ? "partial" : plan.changes.length === 0 ? "no_changes" : "applied" });
  } catch (e) {
    return done({ outcome: "failed", error: (e as Error).message });
  } finally {
    await lock.release();
  }
}

/** A running provider: the externalgrpc server and the loop. */
export interface RunningAutoscalerProvider {
  readonly address: string;
  readonly loop: AutoscalerLoop;
  readonly provider: CloudProvider;
  stop(): Promise<void>;
}

/**
 * Starts premiscale as cluster-autoscaler's cloud provider for `config` (which must have a top-level `kubernetes`
 * block): opens the intents, the Kubernetes API (checked now, so a bad kubeconfig fails at start), the providers,
 * the externalgrpc listener, and the loop, whose first pass resumes what state and the intents say.
 */
export async function startAutoscalerProvider(
  config: Config,
  o: {
    env: Record<string, string | undefined>;
    onEvent?: (e: AutoscalerEvent) => void;
    serverLog?: (l: ServerLogLine) => void;
    hooks?: (group: string) => readonly LifecycleHook[];
    /**
     * Aborts the pass in flight at once, before stop() is called (leadership lost: the apply starts no further
     * change and its hooks stop, so no host call follows).
     */
    signal?: AbortSignal;
    /** The Lease (`namespace/name`) this replica leads, with leader election (see PassDeps.leaderOf). */
    leaderOf?: string;
  },
): Promise<RunningAutoscalerProvider> {
  const k = config.kubernetes;
  if (!k) throw new Error("startAutoscalerProvider needs a config with a kubernetes block");
  const emit = (e: AutoscalerEvent) => {
    try {
      o.onEvent?.(e);
    } catch {
      // a broken listener must not break the provider
    }
  };
  const hooks = o.hooks ?? kubernetesHooks(config);
  const store = await IntentStore.open(runtimeDir(config));
  const inFlight = new Map<string, ViewInstance[]>();
  const providers = new Map<string, Provider>(config.hosts.map((h) => [h.name, makeProvider(h)]));
  const passDeps: PassDeps = { config, providers, store, inFlight, env: o.env, hooks, onApplyEvent: (event) => emit({ type: "apply", event }), ...(o.leaderOf ? { leaderOf: o.leaderOf } : {}), ...(o.serverLog ? { serverLog: o.serverLog } : {}) };
  const loop = new AutoscalerLoop({
    debounceMs: k.debounceMs,
    resyncMs: k.resyncSeconds * 1000,
    pass: async (trigger, loopSignal) => {
      const signal = o.signal ? AbortSignal.any([loopSignal, o.signal]) : loopSignal;
      if (signal.aborted) return { again: false };
      emit({ type: "pass_start", trigger });
      const r = await runAutoscalerPass(passDeps, trigger, signal);
      emit({ type: "pass_done", ...r });
      return { again: r.outcome === "failed" || r.outcome === "locked" };
    },
  });
  const provider = new CloudProvider({
    config,
    store,
    view: new StateInstanceView(config.state.path, () => inFlight),
    onIntent: (change) => {
      emit({ type: "intent", ...change });
      loop.poke();
    },
  });
  let server;
  try {
    server = await startExternalGrpcServer({ provider, host: k.externalGrpc.host, port: k.externalGrpc.port, tls: k.externalGrpc.tls, onCall: (c) => emit({ type: "externalgrpc_call", ...c }) });
  } catch (e) {
    await Promise.all([...providers.values()].map((p) => p.close()));
    throw e;
  }
  emit({ type: "externalgrpc_listening", address: server.address, secure: server.secure, groups: nodeGroupNames(config) });
  loop.start();
  let stopped: Promise<void> | null = null;
  return {
    address: server.address,
    loop,
    provider,
    stop: () =>
      (stopped ??= (async () => {
        await server.close();
        await loop.stop();
        await Promise.all([...providers.values()].map((p) => p.close()));
      })()),
  };
}
