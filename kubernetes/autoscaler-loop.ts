/**
 * The loop that turns cluster-autoscaler's intents into VMs: one pass (plan and apply of the node groups, injected)
 * at a time. An intent schedules a pass after `debounceMs` (cluster-autoscaler often makes several calls in one of
 * its loops: one pass carries them all); an intent during a pass schedules one more right after it. A pass also runs
 * at start (a restarted premiscale resumes from state and the recorded intents), every `resyncMs` (drift, retries),
 * and after `retryMs` when a pass asks for another (something failed or is left to do).
 *
 *   idle ──poke──▶ scheduled ──debounce──▶ running ──done──▶ idle (or scheduled: poked meanwhile / again)
 */

/** What a pass says about itself. */
export interface PassOutcome {
  /** Run another pass soon (after `retryMs`): something failed or is still to do. */
  again: boolean;
}

/** Timers, injectable for tests. */
export interface LoopTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of the loop. */
export interface AutoscalerLoopOptions {
  /** One pass; aborted when the loop stops (it should finish what is in flight and return). */
  pass(trigger: PassTrigger, signal: AbortSignal): Promise<PassOutcome>;
  debounceMs: number;
  resyncMs: number;
  /** @default 5000 */
  retryMs?: number;
  /** A pass that threw (it should not: passes report their failures). */
  onError?(e: unknown): void;
  timers?: LoopTimers;
}

/** Why a pass runs. */
export type PassTrigger = "start" | "intent" | "resync" | "retry";

/** The loop. `start()` once; `poke()` on every intent; `stop()` at shutdown. */
export class AutoscalerLoop {
  private readonly timers: LoopTimers;
  private timer: unknown = null;
  private next: PassTrigger | null = null;
  private running: Promise<void> | null = null;
  private dirty: PassTrigger | null = null;
  private stopped = false;
  private readonly abort = new AbortController();
  /** Passes run so far (for tests and metrics). */
  passes = 0;

  constructor(private readonly o: AutoscalerLoopOptions) {
    this.timers = o.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
  }

  /** Runs the first pass now (resuming whatever state and the intents say), then keeps to the schedule. */
  start(): void {
    this.schedule("start", 0);
  }

  /** An intent arrived. */
  poke(): void {
    if (this.stopped) return;
    if (this.running) this.dirty = "intent";
    else this.schedule("intent", this.o.debounceMs);
  }

  /** Whether a pass is running now. */
  get busy(): boolean {
    return this.running !== null;
  }

  /** Schedules a pass in `ms` unless one is due sooner; an intent's debounce never waits behind a resync. */
  private schedule(trigger: PassTrigger, ms: number): void {
    if (this.stopped) return;
    if (this.timer !== null) {
      if (trigger !== "intent" || this.next === "intent" || this.next === "start") return;
      this.timers.clearTimeout(this.timer);
    }
    this.next = trigger;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.next = null;
      this.run(trigger);
    }, ms);
  }

  private run(trigger: PassTrigger): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty ??= trigger;
      return;
    }
    this.passes++;
    this.running = (async () => {
      let again = false;
      try {
        again = (await this.o.pass(trigger, this.abort.signal)).again;
      } catch (e) {
        again = true;
        this.o.onError?.(e);
      }
      this.running = null;
      if (this.stopped) return;
      const dirty = this.dirty;
      this.dirty = null;
      if (dirty) this.schedule(dirty, this.o.debounceMs);
      else if (again) this.schedule("retry", this.o.retryMs ?? 5000);
      else this.schedule("resync", this.o.resyncMs);
    })();
  }

  /** Stops scheduling, aborts the pass in flight (its changes in flight finish) and waits for it. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    await this.running;
  }
}
