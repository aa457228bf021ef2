import { describe, expect, it } from "vitest";
import type { MetricsReport } from "../cli/metrics-command.js";
import { MEMBERS, metricsProject } from "./support/metrics-fixture.js";
import { freePort, spawnPremiscale } from "./support/serve.js";

// `premiscale metrics` in its own process, as a user runs it (see support/serve.ts for which binary).

async function run(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnPremiscale(cwd, args);
  const { code } = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

const noStackTrace = (s: string) => expect(s).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

describe("premiscale metrics (process)", () => {
  it("reads the embedded store and prints the rates computed from the stored counters", async () => {
    const dir = await metricsProject({ now: Date.now() });
    const human = await run(dir, ["metrics", "--window", "5m"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`\n  ${MEMBERS.A}  80.0%  75.0%   1.0 KiB/s  —`);
    expect(human.stdout).toContain("\n  average       50.0%  75.0%   512 B/s");
    const json = await run(dir, ["metrics", "--json", "--group", "web"]);
    expect(json.code).toBe(0);
    const r = JSON.parse(json.stdout) as MetricsReport;
    const cpu = r.groups[0]!.metrics!.find((m) => m.metric === "cpu")!;
    expect(cpu.average).toBeCloseTo(50, 9);
    expect(cpu.members[MEMBERS.C]).toBeNull();
  });

  it("exits 1 naming the source and what to do when it is down, without a stack trace", async () => {
    const port = await freePort();
    const dir = await metricsProject({ now: Date.now(), store: `    type: prometheus\n    url: http://127.0.0.1:${port}\n    timeoutSeconds: 2` });
    const r = await run(dir, ["metrics", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: metrics source http://127.0.0.1:${port}: cannot connect (ECONNREFUSED)`);
    expect(r.stderr).toContain("check that the server runs");
    noStackTrace(r.stderr);
    const web = (JSON.parse(r.stdout) as MetricsReport).groups.find((g) => g.name === "web")!;
    expect(web).toMatchObject({ metrics: null, error: { hint: "check that the server runs and that the URL is right" } });
  });

  it("refuses a window that is not a duration", async () => {
    const dir = await metricsProject({ now: Date.now() });
    const r = await run(dir, ["metrics", "--window", "five"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/"five" is not a duration/);
    noStackTrace(r.stderr);
  });
});
