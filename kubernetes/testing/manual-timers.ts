/**
 * A test clock for the loops of kubernetes/: timers run only when a test advances them, in time order. One class for
 * the native loop, the autoscaler loop and leader election (each had its own copy).
 */

/** Lets pending promise callbacks run: 20 microtask turns. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Lets pending I/O callbacks run too (a real fs, git or a child process under the code being tested). */
export const settleIo = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/** Timers that run only when the test advances them; `now` is the clock of whatever is given these timers. */
export class ManualTimers {
  now = 0;
  private queue: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  /** `settle` runs before the first timer, after each, and at the end: `settle` (microtasks) or `settleIo`. */
  constructor(private readonly settleStep: () => Promise<void> = settle) {}
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.ids;
    this.queue.push({ at: this.now + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.queue = this.queue.filter((t) => t.id !== handle);
  }
  /** The delays of the timers pending now. */
  pending(): number[] {
    return this.queue.map((t) => t.at - this.now);
  }
  /** Runs every timer due within `ms`, in time order (then in the order they were set), settling around each. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    await this.settleStep();
    for (;;) {
      const next = [...this.queue].sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next || next.at > until) break;
      this.queue = this.queue.filter((t) => t !== next);
      this.now = next.at;
      next.fn();
      await this.settleStep();
    }
    this.now = until;
    await this.settleStep();
  }
  /** Advances in steps of `step` ms until `cond` holds (returns the time) or `limit` ms passed (returns null). */
  async until(cond: () => boolean, limit: number, step = 10): Promise<number | null> {
    const end = this.now + limit;
    while (this.now < end) {
      if (cond()) return this.now;
      await this.advance(step);
    }
    return cond() ? this.now : null;
  }
}
