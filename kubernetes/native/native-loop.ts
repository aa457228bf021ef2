/**
 * Native mode's loop: when scans run, and what they remember. A scan runs every `scanIntervalMs` (cluster-autoscaler's
 * --scan-interval, 10 s), at start, soon after a scan that asks for another, and as soon as a batch of pending pods
 * closes (pod-batcher.ts; the pending pods are polled every `pollMs`). One scan at a time (AutoscalerLoop's
 * scheduling). The scan itself (read the cluster → decide → plan → apply) is injected; the loop keeps the memory
 * between scans (unneeded times, the last scale-up, scale-down and failure, back-offs), as cluster-autoscaler keeps
 * it in memory. Timers and clock injected.
 */
import { AutoscalerLoop, type LoopTimers, type PassTrigger } from "../autoscaler-loop.js";
import type { ClusterSnapshot } from "./decide-native.js";
import { PodBatcher } from "./pod-batcher.js";
import { emptyMemory, type NativeMemory } from "./safety.js";

/** Why a scan runs: at start, on schedule, because a batch of pending pods closed, or to retry. */
export type NativeTrigger = "start" | "scan" | "pods" | "retry";

/** What a scan gets. */
export interface NativeScanInput {
  trigger: NativeTrigger;
  cluster: ClusterSnapshot;
  /** Pods of the open batch: leave them for its own scan. */
  held: ReadonlySet<string>;
  memory: NativeMemory;
  now: Date;
}

/** What a scan gives back. */
export interface NativeScanOutcome {
  /** The memory for the next scan (recordResults of safety.ts). */
  memory: NativeMemory;
  /** Scan again soon (something failed or is left to do). */
  again: boolean;
}

/** Options of the loop. */
export interface NativeLoopOptions {
  readCluster(signal: AbortSignal): Promise<ClusterSnapshot>;
  /** The uids of the pods with PodScheduled=False/Unschedulable now (a cheap list, polled every `pollMs`). */
  listPending(signal: AbortSignal): Promise<string[]>;
  /** One scan: decide and apply (pipeline/native-provider.ts). */
  scan(input: NativeScanInput, signal: AbortSignal): Promise<NativeScanOutcome>;
  /** @default 10000 */
  scanIntervalMs?: number;
  /** @default 500 */
  pollMs?: number;
  /** The batcher's windows. @default 1000 / 10000 */
  batchIdleMs?: number;
  batchMaxMs?: number;
  /** @default 5000 */
  retryMs?: number;
  timers?: LoopTimers;
  now?: () => Date;
  /**
   * A scan that threw (reading the cluster failed: its every retry, `retryMs` apart), or the first poll of pending
   * pods to fail after one that did not (the polls run every `pollMs`: the same outage or refusal is said once, and the
   * scans' reports carry it on).
   */
  onError?(e: unknown): void;
  /** A batch of pending pods closed. */
  onBatch?(pods: string[]): void;
}

const TRIGGERS: Record<PassTrigger, NativeTrigger> = { start: "start", intent: "pods", resync: "scan", retry: "retry" };

/** The loop. `start()` once, `stop()` at shutdown. */
export class NativeLoop {
  private readonly timers: LoopTimers;
  private readonly loop: AutoscalerLoop;
  private readonly batcher: PodBatcher;
  private memory: NativeMemory = emptyMemory();
  private poll: unknown = null;
  private polling: Promise<void> | null = null;
  private pollFailing = false;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(private readonly o: NativeLoopOptions) {
    this.timers = o.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
    this.batcher = new PodBatcher({
      idleMs: o.batchIdleMs ?? 1000,
      maxMs: o.batchMaxMs ?? 10_000,
      timers: this.timers,
      onBatch: (pods) => {
        o.onBatch?.(pods);
        this.loop.poke();
      },
    });
    this.loop = new AutoscalerLoop({
      debounceMs: 0,
      resyncMs: o.scanIntervalMs ?? 10_000,
      retryMs: o.retryMs ?? 5000,
      timers: this.timers,
      ...(o.onError ? { onError: o.onError } : {}),
      pass: async (trigger, signal) => {
        const now = (o.now ?? (() => new Date()))();
        const cluster = await o.readCluster(signal);
        // A scan may be the first to see a pod: it joins (or opens) a batch like any other.
        this.batcher.observe(cluster.pods.filter((p) => !p.nodeName && p.unschedulable).map((p) => p.uid));
        const out = await o.scan({ trigger: TRIGGERS[trigger], cluster, held: new Set(this.batcher.held), memory: this.memory, now }, signal);
        this.memory = out.memory;
        return { again: out.again };
      },
    });
  }

  /** Scans run so far. */
  get scans(): number {
    return this.loop.passes;
  }

  /** Batches of pending pods closed so far. */
  get batches(): number {
    return this.batcher.batches;
  }

  /** What the loop remembers now. */
  get state(): NativeMemory {
    return this.memory;
  }

  /** Starts the first scan now and the polling of pending pods. */
  start(): void {
    this.loop.start();
    this.schedulePoll(0);
  }

  private schedulePoll(ms: number): void {
    if (this.stopped) return;
    this.poll = this.timers.setTimeout(() => {
      this.poll = null;
      this.polling = (async () => {
        try {
          this.batcher.observe(await this.o.listPending(this.abort.signal));
          this.pollFailing = false;
        } catch (e) {
          if (!this.stopped && !this.pollFailing) this.o.onError?.(e);
          this.pollFailing = true;
        }
        this.polling = null;
        this.schedulePoll(this.o.pollMs ?? 500);
      })();
    }, ms);
  }

  /** Stops polling and scanning; the scan in flight is aborted (its changes in flight finish) and awaited. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.batcher.stop();
    if (this.poll !== null) this.timers.clearTimeout(this.poll);
    this.abort.abort();
    await Promise.all([this.polling, this.loop.stop()]);
  }
}
