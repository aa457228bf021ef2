import { formatDuration, formatValue } from "../format.js";
import { axisLabel, buckets, evaluatedRange, withDate, meanOf, metricTitle, metricUnit, niceCeil, niceTimeStep, num, runsOf, formatTime, type Rendered } from "./series.js";
import type { SimulationResult } from "./simulate.js";

/** Line colours of the runs, in order (blue, red, green, purple). */
export const RUN_COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
/** Legend text is measured with a fixed width per character, so the output never depends on fonts. */
const CHAR_WIDTH = 6.2;

/**
 * A chart of a simulation or a comparison as a standalone SVG (no scripts, no fonts, no dependencies): the size of
 * each run as a step line (solid: members, dashed: ready), the primary metric per VM on the right axis, the target,
 * min and max as dashed lines, and each scaling event as a triangle whose tooltip gives the reason. The same input
 * always gives the same bytes.
 */
export function renderSvg(x: Rendered, opts: { width?: number; height?: number } = {}): string {
  const { trace, runs } = runsOf(x);
  const first = runs[0] as SimulationResult;
  const W = opts.width ?? 800;
  const H = opts.height ?? 360;
  const left = 52;
  const right = 72;
  const top = 40;
  const bottom = 72;
  const w = W - left - right;
  const h = H - top - bottom;
  const { start: t0, end: t1 } = evaluatedRange(trace, runs);
  const span = (t1 - t0) / 1000;
  const xAt = (ms: number): number => left + ((ms - t0) / (t1 - t0)) * w;

  const peak = Math.max(1, ...runs.map((r) => r.summary.peakSize));
  const bound = Math.max(...runs.map((r) => r.group.max));
  const yMax = bound <= Math.max(peak * 2, peak + 2) ? Math.max(bound, 1) : Math.max(peak + 1, niceCeil(peak * 1.25));
  const yAt = (size: number): number => top + h - (size / yMax) * h;

  const metric = first.primaryMetric;
  const rawMax = Math.max(0, ...runs.flatMap((r) => r.timeline.map((p) => p.values[metric] ?? 0)), ...runs.map((r) => r.target ?? 0));
  const unit = metricUnit(metric, rawMax);
  const mMax = unit.percent ? 100 : niceCeil(rawMax / unit.divisor);
  const mAt = (v: number): number => top + h - (v / unit.divisor / mMax) * h;

  const out: string[] = [];
  const title = `${first.group.name}: size and ${metricTitle(metric)}${runs.length > 1 ? ` (${runs.map((r) => r.label).join(" vs ")})` : ""}`;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11" fill="#374151">`,
    `<title>${esc(`${title}, ${trace.file}, ${formatTime(trace.start)} to ${formatTime(trace.end)} UTC`)}</title>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="13" font-weight="600" fill="#111827">${esc(title)}</text>`,
    `<text x="${left + w}" y="22" text-anchor="end" fill="#6b7280">${esc(`${trace.file} · every ${formatDuration(first.evalIntervalSeconds)} · boot ${formatDuration(first.bootSeconds)}`)}</text>`,
  );

  // Grid and axes.
  const grid: string[] = [];
  const step = niceTimeStep(span, Math.max(2, Math.floor(w / 90)));
  for (let t = Math.ceil(t0 / 1000 / step) * step * 1000; t <= t1; t += step * 1000) {
    const gx = num(xAt(t));
    grid.push(`<line x1="${gx}" y1="${top}" x2="${gx}" y2="${top + h}" stroke="#e5e7eb"/>`);
    grid.push(`<text x="${gx}" y="${top + h + 16}" text-anchor="middle">${esc(axisLabel(t, withDate(t0, t1)))}</text>`);
  }
  const sizeStep = Math.max(1, Math.ceil(niceCeil(yMax / 5)));
  for (let s = 0; s <= yMax; s += sizeStep) {
    grid.push(`<line x1="${left}" y1="${num(yAt(s))}" x2="${left + w}" y2="${num(yAt(s))}" stroke="#e5e7eb"/>`);
    grid.push(`<text x="${left - 6}" y="${num(yAt(s) + 4)}" text-anchor="end">${s}</text>`);
  }
  for (let k = 0; k <= 4; k++) {
    const v = (mMax * k) / 4;
    grid.push(`<text x="${left + w + 6}" y="${num(mAt(v * unit.divisor) + 4)}" fill="#6b7280">${num(v)}${unit.percent ? "%" : ""}</text>`);
  }
  out.push(`<g>`, ...grid, `</g>`);
  out.push(
    `<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#9ca3af"/>`,
    `<text transform="translate(14 ${num(top + h / 2)}) rotate(-90)" text-anchor="middle">VMs</text>`,
    `<text transform="translate(${W - 10} ${num(top + h / 2)}) rotate(90)" text-anchor="middle" fill="#6b7280">${esc(`${metricTitle(metric)} (${unit.label})`)}</text>`,
    `<text x="${left + w}" y="${top + h + 32}" text-anchor="end" fill="#6b7280">UTC</text>`,
  );

  // Bounds and targets, dashed.
  const dashed: string[] = [];
  const bounds = new Set<string>();
  for (const r of runs) {
    for (const [name, v] of [["max", r.group.max], ["min", r.group.min]] as const) {
      if (v <= 0 || v > yMax || bounds.has(`${name}${v}`)) continue;
      bounds.add(`${name}${v}`);
      dashed.push(`<line x1="${left}" y1="${num(yAt(v))}" x2="${left + w}" y2="${num(yAt(v))}" stroke="#6b7280" stroke-dasharray="2 3"/>`);
      // At the top of the plot the label goes under its line.
      dashed.push(`<text x="${left + 4}" y="${num(v === yMax ? yAt(v) + 12 : yAt(v) - 3)}" fill="#6b7280">${name} ${v}</text>`);
    }
  }
  runs.forEach((r, i) => {
    if (r.target === undefined) return;
    const color = RUN_COLORS[i % RUN_COLORS.length] ?? "#000";
    const y = num(mAt(r.target));
    dashed.push(`<line x1="${left}" y1="${y}" x2="${left + w}" y2="${y}" stroke="${color}" stroke-opacity="0.5" stroke-dasharray="6 4"/>`);
    dashed.push(`<text x="${left + w - 4}" y="${num(mAt(r.target) - 3)}" text-anchor="end" fill="${color}">target ${esc(formatValue(metric, r.target))}</text>`);
  });
  out.push(`<g>`, ...dashed, `</g>`);

  // The metric per VM, thin and faint, broken where there is no data.
  runs.forEach((r, i) => {
    const color = RUN_COLORS[i % RUN_COLORS.length] ?? "#000";
    let d = "";
    let pen = false;
    for (const b of buckets(r.timeline, Math.max(1, Math.floor(w / 2)))) {
      const v = meanOf(b.map((p) => p.values[metric]));
      const a = b[0];
      const z = b[b.length - 1];
      if (v === undefined || !a || !z) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${num(xAt((Date.parse(a.at) + Date.parse(z.at)) / 2))} ${num(mAt(v))}`;
      pen = true;
    }
    if (d) out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-opacity="0.5" stroke-width="1.2"/>`);
  });

  // Sizes as step lines: members (solid) and ready members (dashed), then the events.
  runs.forEach((r, i) => {
    const color = RUN_COLORS[i % RUN_COLORS.length] ?? "#000";
    out.push(`<path d="${stepPath(r, "ready", xAt, yAt, t1)}" fill="none" stroke="${color}" stroke-width="1" stroke-dasharray="3 2"/>`);
    out.push(`<path d="${stepPath(r, "desired", xAt, yAt, t1)}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const e of r.events) {
      const ex = xAt(Date.parse(e.at));
      const ey = yAt(e.to);
      const shape = e.to > e.from ? `${num(ex - 4)},${num(ey + 7)} ${num(ex + 4)},${num(ey + 7)} ${num(ex)},${num(ey + 1)}` : `${num(ex - 4)},${num(ey - 7)} ${num(ex + 4)},${num(ey - 7)} ${num(ex)},${num(ey - 1)}`;
      const tip = `${formatTime(e.at)} ${r.label}: ${e.from} → ${e.to} (${e.code}) ${e.reason}`;
      out.push(`<polygon points="${shape}" fill="${color}"><title>${esc(tip)}</title></polygon>`);
    }
  });

  // Legend.
  let lx = left;
  const ly = H - 16;
  const legend: string[] = [];
  const item = (swatch: string, label: string): void => {
    legend.push(swatch.replace(/X1/g, num(lx)).replace(/X2/g, num(lx + 18)), `<text x="${num(lx + 22)}" y="${ly + 4}">${esc(label)}</text>`);
    lx += 30 + label.length * CHAR_WIDTH;
  };
  runs.forEach((r, i) => {
    const color = RUN_COLORS[i % RUN_COLORS.length] ?? "#000";
    const suffix = runs.length > 1 ? ` (${r.label})` : "";
    item(`<line x1="X1" y1="${ly}" x2="X2" y2="${ly}" stroke="${color}" stroke-width="2"/>`, `VMs${suffix}`);
    item(`<line x1="X1" y1="${ly}" x2="X2" y2="${ly}" stroke="${color}" stroke-opacity="0.5" stroke-width="1.2"/>`, `${metricTitle(metric)}${suffix}`);
  });
  item(`<line x1="X1" y1="${ly}" x2="X2" y2="${ly}" stroke="#6b7280" stroke-dasharray="3 2"/>`, "ready VMs (dashed)");
  out.push(`<g>`, ...legend, `</g>`, `</svg>`);
  return out.join("\n") + "\n";
}

/** A step line of `desired` (the size decided) or `ready` over time, one segment per change. */
function stepPath(r: SimulationResult, key: "desired" | "ready", xAt: (ms: number) => number, yAt: (v: number) => number, endMs: number): string {
  const at = (i: number): number => Date.parse(r.timeline[i]?.at ?? "");
  // `desired` holds from its evaluation on; `ready` is drawn from the evaluation that first saw it.
  const value = (i: number): number => r.timeline[i]?.[key] ?? 0;
  let d = `M${num(xAt(at(0)))} ${num(yAt(value(0)))}`;
  let last = value(0);
  for (let i = 1; i < r.timeline.length; i++) {
    const v = value(i);
    if (v === last) continue;
    d += `H${num(xAt(at(i)))}V${num(yAt(v))}`;
    last = v;
  }
  return `${d}H${num(xAt(endMs))}`;
}
