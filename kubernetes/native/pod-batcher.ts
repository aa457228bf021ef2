/**
 * Batching of pending pods, as Karpenter does it: the first new unschedulable pod opens a batch; every new one
 * extends it; the batch closes when no new pod came for `idleMs` (1 s) or when it has been open `maxMs` (10 s),
 * whichever is first. While a batch is open its pods are held (scans leave them alone), so a burst of fifty pods
 * makes one decision, not fifty. Timers injected.
 *
 *   empty ──new pod──▶ open (idle timer, max timer) ──new pod──▶ open (idle timer restarted)
 *                         │ idle or max timer fires
 *                         ▼
 *                      flush: the held pods are released, onBatch(them) ──▶ empty
 */
import type { LoopTimers } from "../autoscaler-loop.js";

/** Options of the batcher. */
export interface PodBatcherOptions {
  /** @default 1000 */
  idleMs?: number;
  /** @default 10000 */
  maxMs?: number;
  /** A batch closed: its pods (uids), in the order they were first seen. */
  onBatch(pods: string[]): void;
  timers?: LoopTimers;
}

/** The batcher. `observe()` on every look at the pending pods; `stop()` at shutdown. */
export class PodBatcher {
  private readonly timers: LoopTimers;
  private readonly idleMs: number;
  private readonly maxMs: number;
  private heldPods: string[] = [];
  private readonly heldSet = new Set<string>();
  /** Pods already released in an earlier batch (still pending: not new). */
  private released = new Set<string>();
  private idle: unknown = null;
  private max: unknown = null;
  private stopped = false;
  /** Batches closed so far. */
  batches = 0;

  constructor(private readonly o: PodBatcherOptions) {
    this.timers = o.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
    this.idleMs = o.idleMs ?? 1000;
    this.maxMs = o.maxMs ?? 10_000;
  }

  /** The pods of the open batch (a scan leaves them for the batch's own decision). */
  get held(): ReadonlySet<string> {
    return this.heldSet;
  }

  /**
   * The pending pods now (uids). New ones join the open batch (or open one) and restart its idle timer; pods no
   * longer pending are forgotten.
   */
  observe(pending: Iterable<string>): void {
    if (this.stopped) return;
    const now = new Set(pending);
    this.released = new Set([...this.released].filter((u) => now.has(u)));
    let fresh = 0;
    for (const u of now) {
      if (this.released.has(u) || this.heldSet.has(u)) continue;
      this.heldSet.add(u);
      this.heldPods.push(u);
      fresh++;
    }
    if (fresh === 0) return;
    if (this.max === null) this.max = this.timers.setTimeout(() => this.flush(), this.maxMs);
    if (this.idle !== null) this.timers.clearTimeout(this.idle);
    this.idle = this.timers.setTimeout(() => this.flush(), this.idleMs);
  }

  private flush(): void {
    if (this.idle !== null) this.timers.clearTimeout(this.idle);
    if (this.max !== null) this.timers.clearTimeout(this.max);
    this.idle = this.max = null;
    const pods = this.heldPods;
    this.heldPods = [];
    this.heldSet.clear();
    for (const u of pods) this.released.add(u);
    if (pods.length === 0 || this.stopped) return;
    this.batches++;
    this.o.onBatch(pods);
  }

  /** Drops the open batch and its timers. */
  stop(): void {
    this.stopped = true;
    if (this.idle !== null) this.timers.clearTimeout(this.idle);
    if (this.max !== null) this.timers.clearTimeout(this.max);
    this.idle = this.max = null;
  }
}
