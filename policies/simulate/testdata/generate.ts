/**
 * Makes the committed test traces, so they can be read, changed and made again:
 * `npx tsx policies/simulate/testdata/generate.ts ramp > policies/simulate/testdata/ramp.csv` (also steady, noisy,
 * spike). Deterministic: the noise comes from the planner's seeded PRNG. A test checks the files match.
 */
import { mulberry32 } from "../../../planner/random.js";

/** Monday 2 June 2025, 12:00 UTC. */
const START = Date.parse("2025-06-02T12:00:00Z");
const iso = (ms: number): string => new Date(ms).toISOString().replace(".000Z", "Z");
const r1 = (x: number): string => String(Math.round(x * 10) / 10);

/** One hour at 1-minute rows, 3 members at 55% cpu: inside the 10% tolerance of a 60% target, so nothing scales. */
export function steady(): string {
  const rows = ["# steady: 3 members at 55% cpu for an hour (made by testdata/generate.ts)", "time,size,cpu"];
  for (let i = 0; i <= 60; i++) rows.push(`${iso(START + i * 60_000)},3,55`);
  return rows.join("\n") + "\n";
}

/** Two hours at 15-second rows, 4 members at 57% cpu ± 12 of uniform noise: the 1-minute window and the delays must hold the size. */
export function noisy(): string {
  const rnd = mulberry32(4);
  const rows = ["# noisy: 4 members at 57% cpu ± 12 (uniform) every 15s for two hours (made by testdata/generate.ts)", "time,size,cpu"];
  for (let i = 0; i <= 480; i++) rows.push(`${iso(START + i * 15_000)},4,${r1(57 + (rnd() * 2 - 1) * 12)}`);
  return rows.join("\n") + "\n";
}

/** Three hours at 1-minute rows from 3 members: 40% cpu, a ramp to 90%, a plateau, a fall to 30% and a long tail. */
export function ramp(): string {
  const rows = ["# ramp: 3 members, cpu 40% → 90% (12:30–13:00) → plateau → 30% (13:40–14:00), every minute (made by testdata/generate.ts)", "time,size,cpu,memory"];
  for (let i = 0; i <= 180; i++) {
    const cpu = i < 30 ? 40 : i < 60 ? 40 + ((i - 30) * 50) / 30 : i < 100 ? 90 : i < 120 ? 90 - ((i - 100) * 60) / 20 : 30;
    rows.push(`${iso(START + i * 60_000)},3,${r1(cpu)},${r1(45 + cpu / 10)}`);
  }
  return rows.join("\n") + "\n";
}

/**
 * One hour of per-member JSON lines (epoch seconds, a second or two of jitter) from web-1…web-3 every 15 s: 35% cpu,
 * a spike to 95% at 12:20 for three minutes, no data at all 12:35–12:42, web-3 silent 12:45–12:50, a few nulls.
 */
export function spike(): string {
  const rnd = mulberry32(7);
  const lines = ["# spike: per-member samples, a cpu spike at 12:20, no data 12:35-12:42, web-3 silent 12:45-12:50 (made by testdata/generate.ts)"];
  for (let i = 0; i <= 240; i++) {
    const t = START + i * 15_000;
    const min = i / 4;
    if (min >= 35 && min < 42) continue;
    for (const m of ["web-1", "web-2", "web-3"]) {
      if (m === "web-3" && min >= 45 && min < 50) continue;
      const cpu = (min >= 20 && min < 23 ? 95 : 35) + (rnd() * 2 - 1) * 3;
      const value = i % 37 === 5 && m === "web-2" ? null : Math.min(100, Math.round(cpu * 10) / 10);
      lines.push(JSON.stringify({ time: Math.round(t / 1000) + Math.floor(rnd() * 3), member: m, cpu: value }));
    }
  }
  return lines.join("\n") + "\n";
}

/** The traces by name. */
export const TRACES: Record<string, { file: string; make: () => string }> = {
  steady: { file: "steady.csv", make: steady },
  noisy: { file: "noisy.csv", make: noisy },
  ramp: { file: "ramp.csv", make: ramp },
  spike: { file: "spike.jsonl", make: spike },
};

const name = process.argv[2];
if (name !== undefined && process.argv[1]?.endsWith("generate.ts")) {
  const t = TRACES[name];
  if (!t) throw new Error(`unknown trace ${name}; known: ${Object.keys(TRACES).join(", ")}`);
  process.stdout.write(t.make());
}
