/**
 * Lifecycle hooks: work that runs around one VM at four points of its life, as AWS lifecycle hooks and Kubernetes
 * node joins and drains need. Built-in hooks (waiting for the VM's check-in; later, a Kubernetes join and drain) and
 * users' hooks (a command, a signed HTTP call: hooks/) are the same kind of thing. Each hook run is journaled as a
 * step of its change and bounded by a timeout that a heartbeat restarts; when it runs out, the hook's default result
 * decides. State records the VM as `creating` or `deleting` while hooks run, so after a crash (even kill -9 in the
 * middle of a hook) the next apply removes a half-made VM or finishes a half-deleted one, running the hooks again:
 * hooks must be idempotent.
 *
 *   create:  record `creating` → before-create → create the VM → until-ready → record `running`
 *   delete:  record `deleting` → before-destroy → destroy the VM → after-destroy → forget it
 *
 * Results: `continue` goes on. `abandon` at before-create or until-ready gives up the VM (it is destroyed, with the
 * destroy-side hooks, and the change fails); at before-destroy it keeps the VM (recorded `running` again; the change
 * fails, e.g. a drain that may not evict); at after-destroy it leaves the record `deleting`, so the next apply finishes
 * the clean-up. A hook that throws abandons, with its error as the reason.
 */
import type { VmSpec } from "../providers/provider.js";

/** Where in a VM's life a hook runs. */
export type HookPoint = "before-create" | "until-ready" | "before-destroy" | "after-destroy";

/** What a hook says: go on, or do not (see the module comment for what each means at each point). */
export type HookResult = "continue" | "abandon";

/** The VM a hook runs for. */
export interface HookTarget {
  /** `group[name]`. */
  address: string;
  group: string;
  name: string;
  uuid: string;
  host: string;
  /** Its static IPv4 address, when the group has a static pool. */
  addressV4?: string;
}

/** What a hook is told when it runs. */
export interface HookContext {
  point: HookPoint;
  vm: HookTarget;
  /** The create's VM spec, secrets filled (before-create; a hook may answer a changed one, e.g. with a credential). */
  spec?: VmSpec;
  /**
   * What the plan says about waiting for the VM to come up (creates, and takes of a stopped warm pool VM).
   * `bootBeacon`: the VM's user-data also gets a beacon posted on every boot; `since` (a take, ISO time): the VM was
   * started again then, so any sign of life after it counts, not only a first check-in.
   */
  ready?: { timeoutSeconds: number; heartbeatSeconds?: number; bootBeacon?: boolean; since?: string };
  /** Aborted when the hook's time runs out or apply stops waiting: stop working and return. */
  signal: AbortSignal;
  /** The hook is alive and still working: restarts its timeout (AWS's RecordLifecycleActionHeartbeat). */
  heartbeat(): void;
}

/** A hook's answer. */
export interface HookOutcome {
  result: HookResult;
  /** Why, in words (shown when it abandons). */
  message?: string;
  /** before-create only: the spec the VM is created from instead. */
  spec?: VmSpec;
}

/** One hook. */
export interface LifecycleHook {
  /** Short name, unique per group: the journal and progress show the step `hook:<name>` (or `step`). */
  readonly name: string;
  readonly point: HookPoint;
  /** The step name it reports, if not `hook:<name>`; null: it reports none (quick preparations). */
  readonly step?: string | null;
  /** What happens when it runs out of time. */
  readonly defaultResult: HookResult;
  /** How long it may go without finishing or a heartbeat, ms. */
  timeoutMs(ctx: Omit<HookContext, "signal" | "heartbeat">): number;
  /** Whether it runs for this VM (e.g. the check-in wait only when the plan asks for it). @default always */
  appliesTo?(ctx: Omit<HookContext, "signal" | "heartbeat">): boolean;
  run(ctx: HookContext): Promise<HookOutcome>;
}

/** How one hook run ended. */
export interface HookRun extends HookOutcome {
  hook: string;
  timedOut: boolean;
}

/**
 * Runs one hook with its timeout (restarted by heartbeats) and returns its outcome; never rejects. On a timeout the
 * hook's signal is aborted and its default result taken; a hook that throws abandons with its error as the message.
 * `stop` (apply interrupted) aborts it too and ends the run as abandoned.
 */
export async function runHook(hook: LifecycleHook, base: Omit<HookContext, "signal" | "heartbeat">, stop?: AbortSignal): Promise<HookRun> {
  const controller = new AbortController();
  const ms = hook.timeoutMs(base);
  let timer: NodeJS.Timeout | undefined;
  let expire!: () => void;
  const expired = new Promise<"timeout">((resolve) => (expire = () => resolve("timeout")));
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(expire, ms);
  };
  const onStop = () => controller.abort(new Error("apply was interrupted"));
  stop?.addEventListener("abort", onStop, { once: true });
  arm();
  try {
    if (stop?.aborted) return { hook: hook.name, result: "abandon", message: "apply was interrupted", timedOut: false };
    const running = hook
      .run({ ...base, signal: controller.signal, heartbeat: () => !controller.signal.aborted && arm() })
      .then((o): HookOutcome => o, (e: unknown): HookOutcome => ({ result: "abandon", message: e instanceof Error ? e.message : String(e) }));
    const first = await Promise.race([running, expired]);
    if (first === "timeout") {
      controller.abort(new Error(`hook ${hook.name} timed out`));
      return {
        hook: hook.name,
        result: hook.defaultResult,
        message: `hook ${hook.name} did not finish within ${Math.round(ms / 1000)} s (no heartbeat either): its default result is ${hook.defaultResult}`,
        timedOut: true,
      };
    }
    // Whatever a hook answers once apply stopped waiting, it did not see its work through.
    if (stop?.aborted) return { hook: hook.name, result: "abandon", message: "apply was interrupted", timedOut: false };
    return { ...first, hook: hook.name, timedOut: false };
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener("abort", onStop);
  }
}
