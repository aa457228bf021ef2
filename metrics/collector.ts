import type { CounterSource, DomainCounters } from "./types.js";

/** Where collected counters go (the embedded store implements it). */
export interface CounterSink {
  ingest(counters: readonly DomainCounters[]): void;
}

/** How one host's sample went in one round. */
export type HostReport =
  | { host: string; status: "ok"; domains: number; ms: number }
  /** `timeout`: no answer within the timeout; `error`: the host refused or the connection failed; `store`: the sink failed. */
  | { host: string; status: "failed"; kind: "timeout" | "error" | "store"; reason: string; ms: number }
  /** The previous sample of this host has not finished: none was started this round. */
  | { host: string; status: "busy"; reason: string };

/** Options of the collector. */
export interface CollectorOptions {
  sources: readonly CounterSource[];
  /** The domains premiscale owns, by host name; read at every round. Hosts without any are not asked. */
  owned: () => ReadonlyMap<string, readonly string[]>;
  sink: CounterSink;
  /** @default 15000 */
  intervalMs?: number;
  /** Each host's own timeout, ms. @default intervalMs */
  timeoutMs?: number;
  /** Called once per host and round, as soon as that host is done (a slow host does not delay the others' reports). */
  onReport?: (report: HostReport) => void;
}

/** @default interval of the collector, ms (the seeds' scan interval). */
export const DEFAULT_INTERVAL_MS = 15_000;

/**
 * Every interval, asks each host once for the counters of the domains premiscale owns there, and hands them to the
 * sink. Hosts are sampled in parallel, each bounded by its own timeout; a host that fails or hangs is reported and
 * skipped, never fatal, and a host whose previous sample is still running is not asked again until it ends.
 */
export class Collector {
  private readonly busy = new Map<string, Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private rounds = new Set<Promise<HostReport[]>>();
  readonly intervalMs: number;
  readonly timeoutMs: number;

  constructor(private readonly options: CollectorOptions) {
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.timeoutMs = options.timeoutMs ?? this.intervalMs;
    if (!(this.intervalMs > 0)) throw new RangeError(`intervalMs must be above 0, got ${this.intervalMs}`);
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be above 0, got ${this.timeoutMs}`);
  }

  /** Starts collecting: a round now, then one every interval. */
  start(): void {
    if (this.timer) return;
    const round = () => {
      const p = this.collect();
      this.rounds.add(p);
      void p.finally(() => this.rounds.delete(p));
    };
    this.timer = setInterval(round, this.intervalMs);
    round();
  }

  /** Stops the timer and waits for the rounds under way (each bounded by the timeout). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.rounds]);
  }

  /** One round over every host; resolves with every host's report when all are done or timed out. */
  async collect(): Promise<HostReport[]> {
    const owned = this.options.owned();
    const jobs = this.options.sources
      .filter((s) => (owned.get(s.host)?.length ?? 0) > 0)
      .map((s) => this.sampleHost(s, [...owned.get(s.host)!]));
    return Promise.all(jobs);
  }

  private async sampleHost(source: CounterSource, names: string[]): Promise<HostReport> {
    const report = (r: HostReport) => {
      this.options.onReport?.(r);
      return r;
    };
    if (this.busy.has(source.host)) {
      return report({ host: source.host, status: "busy", reason: "the previous sample has not finished" });
    }
    const started = performance.now();
    const ms = () => Math.round(performance.now() - started);
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => {
        abort.abort(new Error(`no answer within ${this.timeoutMs} ms`));
        resolve("timeout");
      }, this.timeoutMs);
    });
    // A source that ignores the signal still cannot hold this round: the race ends at the timeout, and the host stays
    // busy (is not asked again) until its call really ends.
    const call = source.sample(names, abort.signal);
    this.busy.set(source.host, call);
    void call.then(
      () => this.busy.delete(source.host),
      () => this.busy.delete(source.host),
    );
    let counters: DomainCounters[];
    try {
      const r = await Promise.race([call, timedOut]);
      if (r === "timeout") {
        return report({ host: source.host, status: "failed", kind: "timeout", reason: `no answer within ${this.timeoutMs / 1000} s`, ms: ms() });
      }
      counters = r;
    } catch (e) {
      return report({ host: source.host, status: "failed", kind: "error", reason: (e as Error).message, ms: ms() });
    } finally {
      clearTimeout(timer);
    }
    try {
      this.options.sink.ingest(counters);
    } catch (e) {
      return report({ host: source.host, status: "failed", kind: "store", reason: (e as Error).message, ms: ms() });
    }
    return report({ host: source.host, status: "ok", domains: counters.length, ms: ms() });
  }
}
