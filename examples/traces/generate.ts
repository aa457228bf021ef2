/**
 * Makes `web-day.csv`: a day of a web group's metrics at 1-minute resolution, as premiscale would record it from a
 * group of 6 members that did not scale (the day before autoscaling is turned on). Deterministic (seeded noise):
 * `npx tsx examples/traces/generate.ts > examples/traces/web-day.csv`.
 */
import { mulberry32 } from "../../planner/random.js";

/** Tuesday 3 June 2025, 00:00 UTC. */
const START = Date.parse("2025-06-03T00:00:00Z");

/** Relative traffic over the day (0–1): a quiet night, a morning climb, a lunch peak, an afternoon dip, an evening peak. */
function traffic(hour: number): number {
  const bump = (center: number, width: number, height: number): number => height * Math.exp(-(((hour - center) / width) ** 2));
  return Math.min(1, 0.08 + bump(12.5, 3.2, 0.85) + bump(20, 2.2, 0.7) + bump(9, 1.5, 0.25));
}

/** The trace as CSV text: time, size (6), cpu %, memory %, net_tx_bytes per second (per member). */
export function webDay(): string {
  const rnd = mulberry32(20250603);
  const rows = ["# web-day: one day of a 6-member web group every minute (made by examples/traces/generate.ts)", "time,size,cpu,memory,net_tx_bytes"];
  for (let i = 0; i <= 1440; i++) {
    const hour = i / 60;
    // A short burst at 15:10 (a newsletter going out), five minutes long.
    const burst = i >= 910 && i < 915 ? 0.35 : 0;
    const load = traffic(hour) + burst;
    const cpu = Math.min(100, 6 + 70 * load + (rnd() * 2 - 1) * 4);
    const memory = 38 + 10 * load + (rnd() * 2 - 1);
    const tx = Math.round((0.2 + 9.5 * load) * 1e6 * (1 + (rnd() * 2 - 1) * 0.05));
    rows.push(`${new Date(START + i * 60_000).toISOString().replace(".000Z", "Z")},6,${cpu.toFixed(1)},${memory.toFixed(1)},${tx}`);
  }
  return rows.join("\n") + "\n";
}

if (process.argv[1]?.endsWith("generate.ts")) process.stdout.write(webDay());
