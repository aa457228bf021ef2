import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { reportError } from "./main.js";
import type { Output } from "./output.js";
import { registerSimulateCommand } from "./simulate.js";

const ROOT = resolve(import.meta.dirname, "..");
const WEB_DAY = "examples/traces/web-day.csv";
const testdata = (name: string): string => join(ROOT, "policies/simulate/testdata", name);

/** What one in-process run printed and returned. */
interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `premiscale ARGS` in-process with the simulate command registered, as cli/main.ts does. */
async function run(args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Output = {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    color: false,
    interactive: false,
    ask: () => Promise.reject(new Error("simulate never asks")),
  };
  let code = 0;
  const program = new Command("premiscale")
    .option("-c, --config <file>")
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, "")), writeErr: (s) => io.err(s.replace(/\n$/, "")) })
    .exitOverride();
  registerSimulateCommand(program, io, (c) => (code = c), () => program.opts<{ config?: string }>().config);
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    code = reportError(io, e);
  }
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

/** A group block; `scaling` is YAML indented under `scaling:` (none: a group without policies). */
function group(name: string, o: { min?: number; max?: number; scaling?: string } = {}): string {
  return `  - name: ${name}
    min: ${o.min ?? 2}
    max: ${o.max ?? 12}
    hosts: [local]
    template:
      memoryMiB: 128
      disk: { baseImage: base.qcow2 }
${o.scaling === undefined ? "" : `    scaling:\n${o.scaling}`}`;
}

const CPU60 = "      policies:\n        - {type: target-tracking, metric: cpu, target: 60}\n";
const CPU75 = "      policies:\n        - {type: target-tracking, metric: cpu, target: 75}\n      behavior:\n        scaleDown: {stabilizationWindowSeconds: 600}\n";

function config(...groups: string[]): string {
  return `version: v1alpha1\nhosts:\n  - name: local\n    uri: qemu:///system\ngroups:\n${groups.join("")}`;
}

/** A fresh directory with these files; returns its path. */
async function dir(files: Record<string, string>): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "premiscale-simulate-"));
  for (const [name, text] of Object.entries(files)) await writeFile(join(d, name), text);
  return d;
}

const noStackTrace = (s: string): void => expect(s).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

describe("premiscale simulate: output", () => {
  it("prints the text rendering of the only group with scaling: set-up, summary, sparklines and every event", async () => {
    const d = await dir({ "premiscale.yaml": config(group("db"), group("web", { scaling: CPU60 })) });
    const r = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", WEB_DAY, "--start-size", "6"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Simulation of group web\n {2}trace examples\/traces\/web-day\.csv: 1441 rows/);
    expect(r.stdout).toMatch(/group {2,}min 2, max 12, start 6\n/);
    expect(r.stdout).toMatch(/Scaling events \(\d+\)\n {2}TIME \(UTC\) +SIZE +CODE +REASON\n {2}2025-06-03 00:11:00 +6 → 2 +stabilized +stabilised: highest recommendation in the last 300s is 2\n {2}2025-06-03 \S+ +2 → 3 +target_tracking +avg cpu \S+% > target 60% over 1m\n/);
  });

  it("starts from the group's min unless --start-size, and passes --interval and --boot to the engine", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 })) });
    const base = ["-c", join(d, "premiscale.yaml"), "simulate", "--trace", testdata("ramp.csv")];
    expect((await run(base)).stdout).toMatch(/min 2, max 12, start 2\n/);
    const r = await run([...base, "--interval", "1m", "--boot", "2m", "--format", "json"]);
    const json = JSON.parse(r.stdout);
    expect(json).toMatchObject({ format_version: "1", kind: "simulation", label: "web", evalIntervalSeconds: 60, bootSeconds: 120, group: { min: 2, max: 12, initial: 2 } });
    expect(new Date(json.timeline[1].at).getTime() - new Date(json.timeline[0].at).getTime()).toBe(60_000);
  });

  it("writes markdown with a mermaid xychart and the events table to --out, chosen by the .md extension", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 })) });
    const out = join(d, "sim.md");
    const r = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", testdata("ramp.csv"), "--start-size", "3", "--out", out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^web: 3 → \d+ VMs \(range \d+–\d+\), \d+ scale-out\(s\), \d+ scale-in\(s\), [\d.]+ VM-hours\nWrote the simulation \(markdown\) to .*sim\.md\.$/);
    const md = await readFile(out, "utf8");
    expect(md).toMatch(/^### Simulation of group `web`/);
    expect(md).toMatch(/```mermaid\n%%\{init: .*\}%%\nxychart-beta\n {4}title "web: VMs"/);
    expect(md).toMatch(/<details open><summary>6 scaling events<\/summary>\n\n\| time \(UTC\) \| size \| code \| reason \|\n\|---\|---\|---\|---\|\n\| 2025-06-02 [\d:]+ \| 3 → 2 \| `target_tracking` \| avg cpu 40% \\< target 60% over 1m \|\n/);
    expect(await readdir(d)).toEqual(["premiscale.yaml", "sim.md"]);
  });

  it("writes a standalone SVG to --out (.svg), and --format wins over the extension", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 })) });
    const svg = join(d, "chart.svg");
    const args = ["-c", join(d, "premiscale.yaml"), "simulate", "--trace", testdata("steady.csv"), "--start-size", "3"];
    expect((await run([...args, "--out", svg])).code).toBe(0);
    const text = await readFile(svg, "utf8");
    expect(text.startsWith("<svg ")).toBe(true);
    expect(text.trimEnd().endsWith("</svg>")).toBe(true);
    const txt = join(d, "chart.svg.txt");
    expect((await run([...args, "--out", txt, "--format", "svg"])).code).toBe(0);
    expect(await readFile(txt, "utf8")).toBe(text);
  });

  it("reads a JSON lines member trace by its extension, and a trace without one with --trace-format", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 })), trace: readFileSync(testdata("spike.jsonl"), "utf8") });
    const args = ["-c", join(d, "premiscale.yaml"), "simulate", "--start-size", "3"];
    const byExt = await run([...args, "--trace", testdata("spike.jsonl")]);
    expect(byExt.code).toBe(0);
    expect(byExt.stdout).toMatch(/spike\.jsonl: 619 rows \(a row per member\) of cpu/);
    const r = await run([...args, "--trace", join(d, "trace"), "--trace-format", "jsonl"]);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/^.*trace.*: 619/m, "")).toBe(byExt.stdout.replace(/^.*trace.*: 619/m, ""));
  });
});

describe("premiscale simulate --compare-config", () => {
  it("reproduces examples/traces/web-day.md with the two configs' file names as the runs' labels (baseline first)", async () => {
    const d = await dir({ "current.yaml": config(group("web", { scaling: CPU60 })), "proposed.yaml": config(group("web", { scaling: CPU75 })) });
    const out = join(d, "web-day.md");
    const r = await run(["-c", join(d, "proposed.yaml"), "simulate", "--trace", WEB_DAY, "--compare-config", join(d, "current.yaml"), "--start-size", "6", "--out", out]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toMatch(/^current\.yaml: 6 → 2 VMs/);
    expect(r.stdout.split("\n")[1]).toMatch(/^proposed\.yaml: 6 → 2 VMs/);
    const expected = readFileSync(join(ROOT, "examples/traces/web-day.md"), "utf8").replace(/\bcurrent\b/g, "current.yaml").replace(/\bproposed\b/g, "proposed.yaml");
    expect(await readFile(out, "utf8")).toBe(expected);
  });

  it("labels two configs of the same name by their paths, and names both in the text", async () => {
    const d = await dir({});
    await mkdir(join(d, "main"));
    await mkdir(join(d, "pr"));
    await writeFile(join(d, "main/premiscale.yaml"), config(group("web", { scaling: CPU60 })));
    await writeFile(join(d, "pr/premiscale.yaml"), config(group("web", { scaling: CPU75 })));
    const r = await run(["-c", join(d, "pr/premiscale.yaml"), "simulate", "--trace", testdata("ramp.csv"), "--compare-config", join(d, "main/premiscale.yaml")]);
    expect(r.code).toBe(0);
    const [first, second] = r.stdout.match(/^Simulation of group web: (\S+) vs (\S+)$/m)!.slice(1);
    expect(first).toMatch(/main\/premiscale\.yaml$/);
    expect(second).toMatch(/pr\/premiscale\.yaml$/);
    expect(r.stdout).toMatch(/ Δ\n/);
  });

  it("refuses a baseline without the group, and a baseline whose group has no scaling", async () => {
    const d = await dir({
      "premiscale.yaml": config(group("web", { scaling: CPU60 })),
      "other.yaml": config(group("api", { scaling: CPU60 })),
      "plain.yaml": config(group("web")),
    });
    const args = ["-c", join(d, "premiscale.yaml"), "simulate", "--trace", testdata("ramp.csv"), "--compare-config"];
    const missing = await run([...args, join(d, "other.yaml")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^Error: .*other\.yaml has no group named web to compare with\n {2}its groups are: api/);
    const plain = await run([...args, join(d, "plain.yaml")]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^Error: group web in .*plain\.yaml has no scaling policies.*\n {2}add scaling\.policies to group web/);
  });

  it("refuses comparing the config with itself", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 })) });
    const r = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", testdata("ramp.csv"), "--compare-config", join(d, "premiscale.yaml")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: --compare-config .* is the config itself/);
  });
});

describe("premiscale simulate: a trace without a size column", () => {
  const flat = ["time,cpu", ...Array.from({ length: 30 }, (_, i) => `2025-06-02T12:${String(i).padStart(2, "0")}:00Z,90`)].join("\n") + "\n";

  it("takes it as recorded at the start size, says so, and --recorded-size scales the load", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { min: 1, scaling: CPU60 })), "flat.csv": flat });
    const args = ["-c", join(d, "premiscale.yaml"), "simulate", "--trace", join(d, "flat.csv"), "--format", "json"];
    const r = await run(args);
    expect(r.stderr).toMatch(/^Note: .*flat\.csv has no size column: taking it as recorded with 1 member\(s\) \(the start size\); say otherwise with --recorded-size N\.$/);
    expect(JSON.parse(r.stdout).summary.endSize).toBe(2);
    const four = await run([...args, "--recorded-size", "4"]);
    expect(four.stderr).toBe("");
    expect(JSON.parse(four.stdout).summary.endSize).toBe(6);
    expect((await run([...args, "--recorded-size", "0"])).stderr).toMatch(/^Error: --recorded-size must be a whole number ≥ 1, got "0"/);
  });

  it("gives both runs of a comparison the same load, though their groups start at different sizes", async () => {
    const d = await dir({ "base.yaml": config(group("web", { min: 1, scaling: CPU60 })), "new.yaml": config(group("web", { min: 2, scaling: CPU60 })), "flat.csv": flat });
    const r = await run(["-c", join(d, "new.yaml"), "simulate", "--trace", join(d, "flat.csv"), "--compare-config", join(d, "base.yaml"), "--format", "json"]);
    const runs = JSON.parse(r.stdout).runs as { label: string; group: { initial: number }; summary: { endSize: number } }[];
    expect(runs.map((x) => [x.label, x.group.initial, x.summary.endSize])).toEqual([
      ["base.yaml", 1, 3],
      ["new.yaml", 2, 3],
    ]);
  });
});

describe("premiscale simulate: bad input changes nothing", () => {
  it("names each bad row and column of a trace, exits 1 without a stack trace, and leaves --out as it was", async () => {
    const bad = "# a comment\ntime,size,cpu\n2025-06-02T12:00:00Z,3,41\n2025-06-02T12:01:00Z,3,abc\n2025-06-02T12:02:00Z,3,140\n";
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 })), "bad.csv": bad, "old.md": "old\n" });
    const r = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", join(d, "bad.csv"), "--out", join(d, "new.md")]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^Error: .*bad\.csv:4 \(row 2\): cpu: not a number: "abc"/);
    expect(r.stderr).toMatch(/bad\.csv:5 \(row 3\): cpu: .*100/);
    expect(r.stderr).toMatch(/trace format/);
    noStackTrace(r.stderr);
    expect(existsSync(join(d, "new.md"))).toBe(false);
    const again = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", join(d, "bad.csv"), "--out", join(d, "old.md")]);
    expect(again.code).toBe(1);
    expect(await readFile(join(d, "old.md"), "utf8")).toBe("old\n");
    expect((await readdir(d)).sort()).toEqual(["bad.csv", "old.md", "premiscale.yaml"]);
  });

  it("says which column the policies need when the trace lacks it", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: "      policies:\n        - {type: target-tracking, metric: net_rx_bytes, target: 1000000}\n" })) });
    const r = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", testdata("ramp.csv"), "--out", join(d, "x.svg")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ramp\.csv: net_rx_bytes: group web scales on net_rx_bytes \(policies\[0\]\.metric\), but the trace has no net_rx_bytes column/);
    expect(existsSync(join(d, "x.svg"))).toBe(false);
  });

  it("refuses an unknown group, listing the groups", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 }), group("db")) });
    const r = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", WEB_DAY, "--group", "api"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`Error: no group named api in ${join(d, "premiscale.yaml")}\n  groups are: web, db`);
  });

  it("refuses a group without scaling, saying to add scaling.policies", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 }), group("db")) });
    const r = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", WEB_DAY, "--group", "db"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: group db in .* has no scaling policies: there is nothing to simulate\n {2}add scaling\.policies to group db/);
  });

  it("asks for --group when several groups have scaling, and for policies when none has", async () => {
    const two = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 }), group("api", { scaling: CPU75 })) });
    const several = await run(["-c", join(two, "premiscale.yaml"), "simulate", "--trace", WEB_DAY]);
    expect(several.code).toBe(1);
    expect(several.stderr).toMatch(/^Error: 2 groups in .* have scaling policies: web, api\n {2}choose one with --group NAME$/);
    expect((await run(["-c", join(two, "premiscale.yaml"), "simulate", "--trace", WEB_DAY, "--group", "api"])).code).toBe(0);
    const none = await dir({ "premiscale.yaml": config(group("web")) });
    const r = await run(["-c", join(none, "premiscale.yaml"), "simulate", "--trace", WEB_DAY]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: no group in .* has scaling policies.*\n {2}add scaling\.policies to a group \(groups: web\)$/);
  });

  it("reports a config error with its line and column, needing no secrets", async () => {
    const secret = config(group("web", { scaling: CPU60 })).replace("      disk:", '      userData: "#cloud-config\\n# ${env:WEB_PASSWORD}"\n      disk:');
    const d = await dir({ "premiscale.yaml": secret, "broken.yaml": config(group("web", { scaling: "      policies:\n        - {type: target-tracking, metric: cpux, target: 60}\n" })) });
    expect((await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", testdata("ramp.csv")])).code).toBe(0);
    const r = await run(["-c", join(d, "broken.yaml"), "simulate", "--trace", testdata("ramp.csv")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: .*broken\.yaml:\d+:\d+: groups\[0\]\.scaling\.policies\[0\]\.metric/);
  });

  it("refuses a missing trace file, a start size outside min/max, and a zero interval, naming the option", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { scaling: CPU60 })) });
    const args = ["-c", join(d, "premiscale.yaml"), "simulate"];
    expect((await run([...args, "--trace", join(d, "nope.csv")])).stderr).toMatch(/^Error: trace file .*nope\.csv does not exist\n {2}check the path given to --trace$/);
    expect((await run([...args, "--trace", WEB_DAY, "--start-size", "20"])).stderr).toBe("Error: --start-size 20 is outside group web's min 2 / max 12\n  give a size from 2 to 12");
    expect((await run([...args, "--trace", WEB_DAY, "--start-size", "two"])).stderr).toMatch(/^Error: --start-size must be a whole number ≥ 0, got "two"/);
    expect((await run([...args, "--trace", WEB_DAY, "--interval", "0s"])).stderr).toMatch(/^Error: --interval 0s: must be more than 0/);
    const png = await run([...args, "--trace", WEB_DAY, "--format", "png"]);
    expect(png.code).toBe(1);
    expect(png.stderr).toMatch(/'png' is invalid\. Allowed choices are text, markdown, svg, json/);
  });

  it("warns that a group starting at 0 VMs cannot scale on metrics", async () => {
    const d = await dir({ "premiscale.yaml": config(group("web", { min: 0, scaling: CPU60 })) });
    const r = await run(["-c", join(d, "premiscale.yaml"), "simulate", "--trace", testdata("ramp.csv")]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^Note: group web starts with 0 VMs, .*--start-size N/);
  });
});
