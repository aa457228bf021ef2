/**
 * The long-running loop of `premiscale reconcile --watch`: a pass at start, then one per interval (drift is
 * corrected on every one), one at once when `trigger()` is called (the webhook), and, after a failed pass, retries
 * with exponential backoff. On abort (SIGTERM) it starts nothing new, lets the pass in flight finish (that pass
 * stops starting changes, commits and pushes state, and releases the lock) and resolves `done`.
 */

/** The outcomes after which the next pass comes sooner, with backoff. */
export const RETRY_OUTCOMES: readonly string[] = ["failed", "apply_failed", "plan_failed", "partial", "locked"];

/** What the loop reports. */
export type WatchEvent =
  | { type: "watch_waiting"; ms: number; next: "interval" | "retry"; failures: number }
  | { type: "watch_pass_threw"; error: string }
  | { type: "watch_stopped" };

/** Options of `startWatch`. */
export interface WatchOptions<R extends { outcome: string }> {
  /** One pass (e.g. `reconcileOnce`); `trigger` says why it runs: `start`, `interval`, `retry` or the caller's reason. */
  pass: (trigger: string, signal: AbortSignal) => Promise<R>;
  intervalMs: number;
  signal: AbortSignal;
  /** @default RETRY_OUTCOMES contains the outcome */
  isFailure?: (result: R) => boolean;
  /** Backoff after failures: initial × factor^(failures-1), at most max (never above the interval). */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  /** 0..1; each wait is scaled by 0.5 + random/2 so racing reconcilers spread out. @default Math.random */
  random?: () => number;
  onEvent?: (e: WatchEvent) => void;
}

/** A running loop. */
export interface Watcher {
  /** Runs a pass as soon as possible (the one in flight finishes first; several triggers make one pass). */
  trigger(reason: string): void;
  /** Resolves once the loop stopped after an abort. */
  readonly done: Promise<void>;
}

/** The delay before the next pass after `failures` failed passes in a row (0 = the interval). */
export function nextDelay(failures: number, intervalMs: number, backoff: WatchOptions<{ outcome: string }>["backoff"] = {}): number {
  if (failures === 0) return intervalMs;
  const initial = backoff.initialMs ?? 5_000;
  const max = Math.min(backoff.maxMs ?? 300_000, intervalMs);
  return Math.min(max, initial * (backoff.factor ?? 2) ** (failures - 1));
}

/** Starts the loop. */
export function startWatch<R extends { outcome: string }>(opts: WatchOptions<R>): Watcher {
  const emit = (e: WatchEvent) => {
    try {
      opts.onEvent?.(e);
    } catch {
      // A broken listener must not stop the loop.
    }
  };
  const isFailure = opts.isFailure ?? ((r: R) => RETRY_OUTCOMES.includes(r.outcome));
  const random = opts.random ?? Math.random;
  let pending: string | null = "start";
  let wake: (() => void) | null = null;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        opts.signal.removeEventListener("abort", finish);
        wake = null;
        resolve();
      };
      const timer = setTimeout(finish, ms);
      opts.signal.addEventListener("abort", finish, { once: true });
      wake = finish;
    });

  const loop = async () => {
    let failures = 0;
    while (!opts.signal.aborted) {
      const reason = pending ?? (failures > 0 ? "retry" : "interval");
      pending = null;
      let failed: boolean;
      try {
        failed = isFailure(await opts.pass(reason, opts.signal));
      } catch (e) {
        emit({ type: "watch_pass_threw", error: e instanceof Error ? e.message : String(e) });
        failed = true;
      }
      failures = failed ? failures + 1 : 0;
      if (opts.signal.aborted) break;
      if (pending !== null) continue;
      const ms = Math.round(nextDelay(failures, opts.intervalMs, opts.backoff) * (0.5 + random() / 2));
      emit({ type: "watch_waiting", ms, next: failures > 0 ? "retry" : "interval", failures });
      await sleep(ms);
    }
    emit({ type: "watch_stopped" });
  };

  return {
    trigger(reason: string) {
      pending ??= reason;
      wake?.();
    },
    done: loop(),
  };
}

/**
 * An AbortSignal that fires on the first of `signals` (SIGTERM, SIGINT). `onSignal` hears each one (e.g. to exit at
 * once on a second SIGINT). `dispose` removes the handlers.
 */
export function abortOnSignals(
  signals: NodeJS.Signals[] = ["SIGTERM", "SIGINT"],
  onSignal?: (signal: NodeJS.Signals, count: number) => void,
): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  let count = 0;
  const handler = (s: NodeJS.Signals) => {
    count++;
    onSignal?.(s, count);
    controller.abort(new Error(`received ${s}`));
  };
  for (const s of signals) process.on(s, handler);
  return { signal: controller.signal, dispose: () => signals.forEach((s) => process.off(s, handler)) };
}
