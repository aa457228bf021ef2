import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MEMBERS, metricsProject } from "../test/support/metrics-fixture.js";
import { freePort } from "../test/support/serve.js";
import { formatValue, runMetrics, sparkline, summarizeGroup, trendSteps, type MetricsReport } from "./metrics-command.js";
import type { Output } from "./output.js";

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => void stdout.push(t),
    err: (t) => void stderr.push(t),
    color: false,
    interactive: false,
    ask: () => Promise.reject(new Error("no terminal")),
  };
}

describe("sparkline", () => {
  it("draws the lowest value as ▁ and the highest as █, and a missing step as ·", () => {
    expect(sparkline([17.5, null, 27.5, 37.5, 47.5])).toBe("▁·▃▆█");
  });

  it("draws a flat series at ▄, or at ▁ when it is all zeros, and a series without data as dots only", () => {
    expect(sparkline([75, 75, null])).toBe("▄▄·");
    expect(sparkline([0, 0])).toBe("▁▁");
    expect(sparkline([null, null, null])).toBe("···");
  });
});

describe("trendSteps", () => {
  it("gives each step about two sample intervals, between 1 and 30 steps", () => {
    expect(trendSteps(300, 15)).toBe(10);
    expect(trendSteps(3600, 15)).toBe(30);
    expect(trendSteps(10, 15)).toBe(1);
  });
});

describe("formatValue", () => {
  it("prints percentages and byte rates, and a missing value as a dash, never as 0", () => {
    expect(formatValue("percent", 41.25)).toBe("41.3%");
    expect(formatValue("bytes_per_second", 512)).toBe("512 B/s");
    expect(formatValue("bytes_per_second", 1536)).toBe("1.5 KiB/s");
    expect(formatValue("bytes_per_second", 0)).toBe("0 B/s");
    expect(formatValue("percent", null)).toBe("—");
  });
});

describe("summarizeGroup", () => {
  it("takes each member's latest sample, averages the members that have one, and buckets the window per member first", () => {
    const [cpu] = summarizeGroup(
      {
        members: {
          a: { cpu: [{ at: 10, value: 10 }, { at: 20, value: 30 }, { at: 90, value: 50 }, { at: 200, value: 99 }] },
          b: { cpu: [{ at: 40, value: 60 }] },
          c: {},
        },
      },
      ["a", "b", "c"],
      { fromMs: 0, toMs: 100, steps: 2, metrics: ["cpu"] },
    );
    // a's sample at 200 is outside the window; a's first step is mean(10, 30) = 20, averaged with b's 60.
    expect(cpu).toEqual({ metric: "cpu", unit: "percent", members: { a: 50, b: 60, c: null }, average: 55, trend: [40, 50] });
  });
});

describe("premiscale metrics on the embedded store", () => {
  const now = Date.parse("2026-01-01T00:10:00Z");

  it("prints each member's current value, the group average and the trend, with missing values as missing", async () => {
    const dir = await metricsProject({ now });
    const io = capture();
    const code = await runMetrics(io, join(dir, "premiscale.yaml"), { window: "5m" }, new Date(now));
    expect(code).toBe(0);
    expect(io.stderr).toEqual([]);
    const text = io.stdout.join("\n");
    const row = (name: string) => text.split("\n").find((l) => l.trim().startsWith(name))!.trim().split(/\s{2,}/);
    // Columns: CPU, MEMORY, DISK READ, DISK WRITE, NET RX, NET TX.
    expect(row(MEMBERS.A)).toEqual([MEMBERS.A, "80.0%", "75.0%", "1.0 KiB/s", "—", "—", "—"]);
    expect(row(MEMBERS.B)).toEqual([MEMBERS.B, "20.0%", "—", "0 B/s", "—", "—", "—"]);
    expect(row(MEMBERS.C)).toEqual([MEMBERS.C, "—", "—", "—", "—", "—", "—"]);
    expect(row("average")).toEqual(["average", "50.0%", "75.0%", "512 B/s", "—", "—", "—"]);
    // Steps of 30 s: (−120, −90] holds A's 10 and 20 % and B's 20 % → (15 + 20) / 2 = 17.5; then 27.5, 37.5, 47.5.
    expect(row("cpu")).toEqual(["cpu", "······▁▃▆█", "17.5% … 47.5%"]);
    expect(row("memory")).toEqual(["memory", "·····▄▄▄▄▄", "steady at 75.0%"]);
    expect(row("net rx")).toEqual(["net rx", "··········", "no samples"]);
    expect(text).toMatch(/^idle: no members in state$/m);
  });

  it("prints the same as JSON with null for every missing value", async () => {
    const dir = await metricsProject({ now });
    const io = capture();
    expect(await runMetrics(io, join(dir, "premiscale.yaml"), { window: "5m", json: true, group: "web" }, new Date(now))).toBe(0);
    const r = JSON.parse(io.stdout.join("\n")) as MetricsReport;
    expect(r).toMatchObject({ format_version: 1, window_seconds: 300, trend_step_seconds: 30, source: { type: "sqlite", location: join(dir, "state", ".premiscale", "metrics.db") } });
    expect(r.groups.map((g) => g.name)).toEqual(["web"]);
    const cpu = r.groups[0]!.metrics!.find((m) => m.metric === "cpu")!;
    expect(cpu.members[MEMBERS.A]).toBeCloseTo(80, 9);
    expect(cpu.members[MEMBERS.B]).toBeCloseTo(20, 9);
    expect(cpu.members[MEMBERS.C]).toBeNull();
    expect(cpu.trend.slice(0, 6)).toEqual([null, null, null, null, null, null]);
    expect(cpu.trend.slice(6).map((v) => Math.round(v! * 1000) / 1000)).toEqual([17.5, 27.5, 37.5, 47.5]);
    const net = r.groups[0]!.metrics!.find((m) => m.metric === "net_rx_bytes")!;
    expect(net).toMatchObject({ unit: "bytes_per_second", average: null, members: { [MEMBERS.A]: null, [MEMBERS.B]: null, [MEMBERS.C]: null } });
    const disk = r.groups[0]!.metrics!.find((m) => m.metric === "disk_read_bytes")!;
    expect(disk.members[MEMBERS.B]).toBe(0);
  });

  it("shows only what is inside a shorter window", async () => {
    const dir = await metricsProject({ now });
    const io = capture();
    expect(await runMetrics(io, join(dir, "premiscale.yaml"), { window: "30s", json: true }, new Date(now))).toBe(0);
    const cpu = (JSON.parse(io.stdout.join("\n")) as MetricsReport).groups[0]!.metrics!.find((m) => m.metric === "cpu")!;
    // One step of 30 s: A's 70 and 80 % → 75, B's 20 → 47.5.
    expect(cpu.trend.map((v) => Math.round(v! * 1000) / 1000)).toEqual([47.5]);
  });

  it("says nothing was collected yet, rather than creating the database, and exits 1", async () => {
    const dir = await metricsProject({ now, store: "    type: sqlite\n    path: ./nowhere/metrics.db" });
    const io = capture();
    expect(await runMetrics(io, join(dir, "premiscale.yaml"), { window: "5m" }, new Date(now))).toBe(1);
    expect(io.stderr[0]).toMatch(/^Error: metrics source .*nowhere\/metrics\.db: no metrics were collected yet .*\(group web: values shown as missing\)$/);
    expect(io.stderr[1]).toMatch(/premiscale serve/);
    await expect(import("node:fs").then((fs) => fs.existsSync(join(dir, "nowhere")))).resolves.toBe(false);
  });

  it("names the group that does not exist and lists the others", async () => {
    const dir = await metricsProject({ now });
    await expect(runMetrics(capture(), join(dir, "premiscale.yaml"), { window: "5m", group: "nope" }, new Date(now))).rejects.toMatchObject({
      message: expect.stringMatching(/--group nope: no group of that name/),
      hint: "groups are: web, idle",
    });
  });
});

describe("premiscale metrics when the source is down", () => {
  it("shows every value as missing, prints the source's error and hint once, and exits 1", async () => {
    const port = await freePort();
    const dir = await metricsProject({ now: Date.now(), store: `    type: prometheus\n    url: http://127.0.0.1:${port}\n    timeoutSeconds: 2` });
    const io = capture();
    expect(await runMetrics(io, join(dir, "premiscale.yaml"), { window: "5m" }, new Date())).toBe(1);
    expect(io.stderr).toEqual([
      `Error: metrics source http://127.0.0.1:${port}: cannot connect (ECONNREFUSED) (group web: values shown as missing)`,
      "  check that the server runs and that the URL is right",
    ]);
    const text = io.stdout.join("\n");
    expect(text).toMatch(/^web: 3 members, metrics unavailable \(error below\)$/m);
    expect(text).toContain(`  ${MEMBERS.A}  —`);
    expect(text).not.toMatch(/\d%|B\/s/);
  });
});
