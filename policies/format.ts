import type { MetricName } from "../config/scaling.js";
import type { Decision } from "./decision.js";

const round1 = (v: number): string => String(Math.round(v * 10) / 10);

/** A metric value with its unit: `82%`, `12.5 MB/s`. */
export function formatValue(metric: MetricName, value: number): string {
  if (metric === "cpu" || metric === "memory") return `${round1(value)}%`;
  const units = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"];
  const i = value === 0 ? 0 : Math.min(units.length - 1, Math.max(0, Math.floor(Math.log10(Math.abs(value)) / 3)));
  return `${round1(value / 1000 ** i)} ${units[i]}`;
}

/** A duration in seconds as `45s`, `5m`, `1m30s`, `2h`. */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [h ? `${h}h` : "", m ? `${m}m` : "", s % 60 ? `${s % 60}s` : ""].join("");
  return parts || "0s";
}

/** A policy engine decision as one line: `web: 3 → 5 (avg cpu 82% > target 60% over 5m)`, or `web: 3 (cooldown: …)`. */
export function describeDecision(d: Decision): string {
  const current = d.details?.current;
  const sizes = current === undefined || current === d.desired ? `${d.desired}` : `${current} → ${d.desired}`;
  return `${d.group}: ${sizes} (${d.reason})`;
}
