/** Small helpers shared by the benchmarks: timing, medians and the ratio lines they print. */

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `fn` `n` times and returns each duration in ms. */
export async function timeRuns(n: number, fn: () => Promise<unknown> | unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

/** Formats ms for humans. */
export function ms(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : x >= 10 ? `${x.toFixed(0)} ms` : `${x.toFixed(2)} ms`;
}

/** Prints one result line: the figure, the baseline, and their ratio. */
export function ratioLine(what: string, value: number, baselineName: string, baseline: number): void {
  const ratio = value / baseline;
  console.log(`${what}: ${ms(value)} vs ${baselineName} ${ms(baseline)} = ${ratio.toFixed(ratio < 0.1 ? 3 : 2)}×`);
}
