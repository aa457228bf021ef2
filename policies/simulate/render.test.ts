import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { ScalingSpec } from "../../config/scaling.js";
import { webDay } from "../../examples/traces/generate.js";
import { renderSimulation } from "./index.js";
import { renderJson } from "./render-json.js";
import { MAX_CHART_POINTS, renderMarkdown } from "./render-markdown.js";
import { renderSvg } from "./render-svg.js";
import { renderText } from "./render-text.js";
import { compare, simulate, type Comparison, type SimulationResult } from "./simulate.js";
import { TRACES } from "./testdata/generate.js";
import { parseTrace } from "./trace.js";

const read = (path: string): string => readFileSync(new URL(path, import.meta.url), "utf8");
const cpu60: ScalingSpec = { policies: [{ type: "target-tracking", metric: "cpu", target: 60 }] };
const group = (initial: number): { name: string; min: number; max: number; initial: number } => ({ name: "web", min: 2, max: 8, initial });

/** The committed traces with the group each golden file uses. */
const CASES = [
  { name: "steady", initial: 3 },
  { name: "noisy", initial: 4 },
  { name: "ramp", initial: 3 },
  { name: "spike", initial: 3 },
] as const;

function run(name: string, initial: number): SimulationResult {
  const file = TRACES[name]?.file ?? "";
  return simulate({ trace: parseTrace(read(`testdata/${file}`), { file }), group: group(initial), scaling: cpu60 });
}

function rampComparison(): Comparison {
  return compare({
    trace: parseTrace(read("testdata/ramp.csv"), { file: "ramp.csv" }),
    runs: [
      { label: "current", group: group(3), scaling: cpu60 },
      { label: "proposed", group: group(3), scaling: { policies: [{ type: "target-tracking", metric: "cpu", target: 75 }], behavior: { scaleDown: { stabilizationWindowSeconds: 600 } } } },
    ],
  });
}

/** The mermaid blocks of a markdown text, checked against xychart-beta's grammar as far as we use it. */
function mermaidBlocks(md: string): string[][] {
  const blocks = [...md.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => (m[1] ?? "").trimEnd().split("\n"));
  const number = /^[+-]?(?:\d+(?:\.\d+)?|\.\d+)$/;
  for (const lines of blocks) {
    expect(lines[0]).toMatch(/^%%\{init: \{"themeVariables": \{"xyChart": \{"plotColorPalette": "(#[0-9a-f]{6}(, )?)+"\}\}\}\}%%$/);
    expect(lines[1]).toBe("xychart-beta");
    const counts = new Set<number>();
    for (const l of lines.slice(2)) {
      const [kw = "", ...rest] = l.trim().split(" ");
      expect(["title", "x-axis", "y-axis", "line", "bar"]).toContain(kw);
      if (kw === "title") expect(rest.join(" ")).toMatch(/^"[^"]*"$/);
      if (kw === "x-axis" || kw === "y-axis") expect(rest.join(" ")).toMatch(/^"[^"]*" \d+(\.\d+)? --> \d+(\.\d+)?$/);
      if (kw === "line" || kw === "bar") {
        const values = rest.join(" ").replace(/^\[|\]$/g, "").split(", ");
        values.forEach((v) => expect(v).toMatch(number));
        counts.add(values.length);
      }
    }
    expect(counts.size).toBe(1);
    expect([...counts][0]).toBeLessThanOrEqual(MAX_CHART_POINTS);
  }
  return blocks;
}

/** Every tag closed, nothing undefined or not a number. */
function checkSvg(svg: string): void {
  expect(svg.startsWith("<svg ")).toBe(true);
  expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
    if (m[3]) continue;
    if (m[1]) expect(stack.pop()).toBe(m[2]);
    else stack.push(m[2] ?? "");
  }
  expect(stack).toEqual([]);
}

describe("golden files", () => {
  for (const c of CASES) {
    it(`renders ${c.name} as text, markdown and SVG`, async () => {
      const r = run(c.name, c.initial);
      await expect(renderText(r)).toMatchFileSnapshot(`testdata/golden/${c.name}.txt`);
      await expect(renderMarkdown(r)).toMatchFileSnapshot(`testdata/golden/${c.name}.md`);
      await expect(renderSvg(r)).toMatchFileSnapshot(`testdata/golden/${c.name}.svg`);
    });
  }

  it("renders a comparison of two policies over the ramp", async () => {
    const c = rampComparison();
    await expect(renderText(c)).toMatchFileSnapshot("testdata/golden/ramp-compare.txt");
    await expect(renderMarkdown(c)).toMatchFileSnapshot("testdata/golden/ramp-compare.md");
    await expect(renderSvg(c)).toMatchFileSnapshot("testdata/golden/ramp-compare.svg");
  });

  it("renders the example day (examples/traces) as a comparison", async () => {
    const trace = parseTrace(read("../../examples/traces/web-day.csv"), { file: "examples/traces/web-day.csv" });
    const g = { name: "web", min: 2, max: 12, initial: 6 };
    const c = compare({
      trace,
      runs: [
        { label: "current", group: g, scaling: cpu60 },
        { label: "proposed", group: g, scaling: { policies: [{ type: "target-tracking", metric: "cpu", target: 75 }], behavior: { scaleDown: { stabilizationWindowSeconds: 600 } } } },
      ],
    });
    mermaidBlocks(renderMarkdown(c));
    await expect(renderMarkdown(c)).toMatchFileSnapshot("../../examples/traces/web-day.md");
    await expect(renderSvg(c)).toMatchFileSnapshot("../../examples/traces/web-day.svg");
  });
});

describe("renderers", () => {
  it("text lists every event in an aligned table and draws one sparkline character per span", () => {
    const r = run("ramp", 3);
    const text = renderText(r, { width: 40 });
    const table = text.slice(text.indexOf("Scaling events"));
    expect(table.split("\n").filter((l) => /^ {2}2025-/.test(l))).toHaveLength(r.events.length);
    const starts = table.split("\n").filter((l) => /^ {2}2025-/.test(l)).map((l) => l.indexOf("→"));
    expect(new Set(starts).size).toBe(1);
    const spark = text.split("\n").find((l) => /^ {2}size +[▁▂▃▄▅▆▇█]/.test(l))?.match(/[▁▂▃▄▅▆▇█]+/)?.[0];
    expect([...(spark ?? "")]).toHaveLength(40);
    expect(text).toContain(`scale-outs / scale-ins   ${r.summary.scaleOuts} / ${r.summary.scaleIns}`);
  });

  it("markdown has two valid xychart-beta blocks with at most 100 points, the runs as lines, and the events", () => {
    const c = rampComparison();
    const md = renderMarkdown(c);
    const [sizes, metric] = mermaidBlocks(md);
    expect(sizes?.filter((l) => l.trim().startsWith("line"))).toHaveLength(2);
    expect(sizes?.filter((l) => l.trim().startsWith("bar"))).toHaveLength(1);
    expect(metric?.filter((l) => l.trim().startsWith("line"))).toHaveLength(4); // two runs and their two targets
    expect(md).toContain("light blue: current's target, 60%, light red: proposed's target, 75%");
    expect(md).toContain("| VM-hours |");
    const rows = md.split("\n").filter((l) => /^\| 2025-/.test(l));
    expect(rows).toHaveLength(c.runs.reduce((n, r) => n + r.events.length, 0));
    expect(md).toContain("_Blue: current, red: proposed.");
  });

  it("markdown downsamples a day to at most 100 points per series", () => {
    const trace = parseTrace(webDay(), { file: "web-day.csv" });
    const md = renderMarkdown(simulate({ trace, group: { name: "web", min: 2, max: 12, initial: 6 }, scaling: cpu60 }));
    const blocks = mermaidBlocks(md);
    expect(blocks).toHaveLength(2);
    expect(blocks[0]?.find((l) => l.includes("x-axis"))).toContain('"hours from 2025-06-03 00:01 UTC" 0 --> 23.75');
  });

  it("markdown escapes table cells", () => {
    const r = run("ramp", 3);
    const odd = { ...r, label: "a|b", events: [{ ...(r.events[0] as SimulationResult["events"][number]), reason: 'schedule "0 8 * * *" <x> | y' }] };
    const md = renderMarkdown(odd);
    expect(md).toContain('schedule "0 8 \\* \\* \\*" \\<x\\> \\| y');
    expect(md).toContain("**a\\|b**");
  });

  it("SVG is well formed, marks each event with its reason, and is the same bytes every time", () => {
    const r = run("spike", 3);
    const svg = renderSvg(r);
    checkSvg(svg);
    checkSvg(renderSvg(rampComparison()));
    expect(svg.match(/<polygon /g)).toHaveLength(r.events.length);
    expect(svg).toContain(r.events[0]?.reason.replace(/>/g, "&gt;").replace(/</g, "&lt;"));
    expect(renderSvg(run("spike", 3))).toBe(svg);
  });

  it("JSON carries a format version and the whole result", () => {
    const r = run("steady", 3);
    const back = JSON.parse(renderJson(r));
    expect(back).toMatchObject({ format_version: "1", kind: "simulation", label: "web", summary: r.summary });
    expect(back.timeline).toHaveLength(r.timeline.length);
    expect(JSON.parse(renderSimulation(rampComparison(), "json")).kind).toBe("comparison");
    expect(renderSimulation(r, "text")).toBe(renderText(r));
  });
});

describe("committed traces", () => {
  it("match their generators", () => {
    for (const t of Object.values(TRACES)) expect(read(`testdata/${t.file}`)).toBe(t.make());
    expect(read("../../examples/traces/web-day.csv")).toBe(webDay());
  });
});
