import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApplyReporter, type ApplyReporterOptions } from "./apply-reporter.js";
import { outputSink } from "./sink.js";
import { demoPlan, runDemoApply } from "./testing/demo-apply.js";

/** A stream that keeps what was written; `rows`/`columns` as a terminal would have them. */
function capture() {
  const stream = Object.assign(new PassThrough(), { columns: 100, rows: 30 });
  let text = "";
  stream.on("data", (b: Buffer) => (text += b.toString()));
  return { stream, text: () => text, lines: () => text.split("\n").filter((l) => l !== "") };
}

async function run(mode: ApplyReporterOptions["mode"], extra: Partial<ApplyReporterOptions> = {}, failNames = ["web-00000003"]) {
  const plan = demoPlan({ adds: 4, destroys: 2 });
  const progress = capture();
  const out = capture();
  const reporter = createApplyReporter({ mode, stream: progress.stream, out: out.stream, plan, statePath: "/srv/state", now: () => new Date("2026-01-02T03:04:05.000Z"), ...extra });
  const result = await runDemoApply(plan, { stepDelayMs: 5, failNames, onEvent: (e) => reporter.onEvent(e) });
  await reporter.finish(result);
  return { plan, result, progress, out, reporter };
}

describe("plain mode", () => {
  it("prints each change's start, steps and end in order, with host progress, then the summary on the result stream", async () => {
    const { plan, progress, out, result } = await run("plain", { stillEveryMs: 0 });
    const lines = progress.lines();
    for (const c of plan.changes) {
      const mine = lines.filter((l) => l.startsWith(`${c.address}: `)).map((l) => l.slice(c.address.length + 2));
      if (c.action === "delete") {
        expect(mine).toEqual([
          `destroying on ${c.host}...`,
          expect.stringMatching(/^stopping \(\d+s\)$/),
          expect.stringMatching(/^deleting \(\d+s\)$/),
          expect.stringMatching(new RegExp(`^destroyed \\(\\d+s\\) \\[${c.host}: [1-3]/3\\]$`)),
        ]);
      } else if (c.name === "web-00000003") {
        expect(mine[0]).toBe(`creating on ${c.host}...`);
        expect(mine.at(-1)).toMatch(/^create failed \(\d+s\): host kvm1: disk of web-00000003 failed \[kvm1: [1-3]\/3\]$/);
      } else {
        expect(mine).toEqual([
          `creating on ${c.host}...`,
          expect.stringMatching(/^creating disk \(\d+s\)$/),
          expect.stringMatching(/^configuring \(\d+s\)$/),
          expect.stringMatching(/^starting \(\d+s\)$/),
          expect.stringMatching(new RegExp(`^created \\(\\d+s\\) \\[${c.host}: [1-3]/3\\]$`)),
        ]);
      }
    }
    expect(lines.at(-1)).toBe(`State committed: ${result.commit!.slice(0, 12)} in /srv/state`);
    expect(lines.filter((l) => /\[kvm1: 3\/3\]$/.test(l))).toHaveLength(1);
    expect(out.lines()[0]).toBe("Apply failed: 1 of 6 changes failed. Resources: 3 added, 0 changed, 2 destroyed.");
    expect(out.lines()).toContain("  failed  create web[web-00000003] on kvm1: host kvm1: disk of web-00000003 failed");
    expect(out.text()).not.toContain("\u001b[");
  });

  it("says Apply complete! when everything succeeded", async () => {
    const { out } = await run("plain", { stillEveryMs: 0 }, []);
    expect(out.text()).toBe("\nApply complete! Resources: 4 added, 0 changed, 2 destroyed.\n");
  });

  it("reminds a slow change is still running", async () => {
    const plan = demoPlan({ adds: 1, destroys: 0 });
    const progress = capture();
    const reporter = createApplyReporter({ mode: "plain", stream: progress.stream, plan, stillEveryMs: 40 });
    const result = await runDemoApply(plan, { stepDelayMs: 60, onEvent: (e) => reporter.onEvent(e) });
    await reporter.finish(result);
    expect(progress.lines().some((l) => /^web\[web-00000001\]: still creating, (creating disk|configuring|starting) \(0s\)$/.test(l))).toBe(true);
  });
});

describe("with the CLI's line printers (io.out / io.err)", () => {
  it("hands them one line at a time, without the newline they add themselves", async () => {
    const plan = demoPlan({ adds: 1, destroys: 0 });
    const out: string[] = [];
    const err: string[] = [];
    const reporter = createApplyReporter({ mode: "plain", stream: outputSink((t) => err.push(t)), out: outputSink((t) => out.push(t)), plan, stillEveryMs: 0 });
    const result = await runDemoApply(plan, { onEvent: (e) => reporter.onEvent(e) });
    await reporter.finish(result);
    expect(err[0]).toBe("web[web-00000001]: creating on kvm1...");
    expect(err.every((l) => !l.endsWith("\n"))).toBe(true);
    expect(out).toEqual(["\nApply complete! Resources: 1 added, 0 changed, 0 destroyed."]);
  });

  it("refuses the live view on something that is not a terminal stream", () => {
    expect(() => createApplyReporter({ mode: "tui", stream: outputSink(() => undefined), plan: demoPlan({ adds: 1, destroys: 0 }) })).toThrow(/terminal stream/);
  });
});

describe("stop", () => {
  afterEach(() => void vi.useRealTimers());

  it("ends the live view without a summary, and finish after it prints nothing", async () => {
    // Faked timers: a spinner left running would draw frames while the clock moves on.
    vi.useFakeTimers();
    const plan = demoPlan({ adds: 2, destroys: 0 });
    const progress = capture();
    const out = capture();
    const reporter = createApplyReporter({ mode: "tui", stream: progress.stream, out: out.stream, plan, color: false });
    reporter.onEvent({ type: "apply_start", address: plan.changes[0]!.address, action: "create", host: "kvm1" });
    reporter.stop();
    await reporter.finish({ succeeded: [], failed: [], commit: null, commitError: null });
    await vi.advanceTimersByTimeAsync(5_000);
    const last = progress.text().slice(progress.text().lastIndexOf("Applying 2 changes"));
    expect(last).toMatch(/0\/2 finished · 1 running · 1 waiting/);
    expect(last).toMatch(/▸ web\[web-00000001\]/);
    expect(last).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
    expect(out.text()).toBe("");
  });
});

describe("json mode", () => {
  it("writes one JSON object per line: Terraform's event names, ours namespaced, a change_summary last", async () => {
    const { plan, progress, out } = await run("json");
    expect(out.text()).toBe("");
    const events = progress.lines().map((l) => JSON.parse(l) as Record<string, unknown> & { type: string });
    const names = new Set(events.map((e) => e.type));
    expect([...names].sort()).toEqual(["apply_complete", "apply_errored", "apply_progress", "apply_start", "change_summary"]);
    for (const e of events) expect(e).toMatchObject({ "@timestamp": "2026-01-02T03:04:05.000Z", "@message": expect.any(String) });
    for (const c of plan.changes) {
      const mine = events.filter((e) => e.address === c.address).map((e) => e.type);
      expect(mine[0]).toBe("apply_start");
      expect(mine.at(-1)).toBe(c.name === "web-00000003" ? "apply_errored" : "apply_complete");
      expect(mine.slice(1, -1).every((t) => t === "apply_progress")).toBe(true);
    }
    expect(events.find((e) => e.type === "apply_progress" && e.step === "configure")).toMatchObject({ address: expect.stringMatching(/^web\[/), elapsedMs: expect.any(Number) });
    expect(events.find((e) => e.type === "apply_errored")).toMatchObject({ "@level": "error", error: "host kvm1: disk of web-00000003 failed", action: "create" });
    expect(events.at(-1)).toMatchObject({
      type: "change_summary",
      "@level": "error",
      "@message": "Apply failed: 1 of 6 changes failed. Resources: 3 added, 0 changed, 2 destroyed.",
      changes: { add: 3, change: 0, remove: 2, operation: "apply" },
      failed: [{ address: "web[web-00000003]", action: "create", host: "kvm1", error: "host kvm1: disk of web-00000003 failed" }],
      commit: expect.stringMatching(/^[0-9a-f]{40}$/),
      commitError: null,
    });
  });

  it("namespaces events Terraform has no name for", () => {
    const progress = capture();
    const r = createApplyReporter({ mode: "json", stream: progress.stream, plan: demoPlan({ adds: 1, destroys: 0 }), now: () => new Date(0) });
    r.onEvent({ type: "cleanup_errored", address: "web[web-00000001]", error: "busy" });
    r.note("Interrupt received", "warn");
    const [cleanup, note] = progress.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(cleanup).toMatchObject({ type: "premiscale.cleanup_errored", "@level": "error", address: "web[web-00000001]", error: "busy" });
    expect(note).toMatchObject({ type: "premiscale.note", "@level": "warn", "@message": "Interrupt received" });
  });
});

describe("tui mode", () => {
  it("draws the live view on the progress stream and leaves the final frame, then the summary on the result stream", async () => {
    const plan = demoPlan({ adds: 4, destroys: 2 });
    const progress = capture();
    const out = capture();
    const reporter = createApplyReporter({ mode: "tui", stream: progress.stream, out: out.stream, plan, color: false, tickMs: 20 });
    reporter.note("Note: shown above the live view");
    const result = await runDemoApply(plan, { stepDelayMs: 10, failNames: ["web-00000003"], onEvent: (e) => reporter.onEvent(e) });
    await reporter.finish(result);
    reporter.onEvent({ type: "apply_start", address: "late[x]", action: "create", host: "kvm1" }); // ignored after finish
    const text = progress.text();
    expect(text).toContain("Note: shown above the live view");
    expect(text).toContain("Applying 6 changes: 4 to add, 2 to destroy");
    expect(text).toMatch(/6\/6 finished · 0 running · 0 waiting · 1 failed/);
    expect(text).toMatch(/✖ web\[web-00000003\]\s+\+ create on kvm1\s+\d+s\s+failed: host kvm1: disk of web-00000003 failed/);
    expect(text).not.toContain("late[x]");
    expect(text.lastIndexOf("6/6 finished")).toBeGreaterThan(text.lastIndexOf("Applying 6 changes"));
    expect(text).toMatch(/State committed: [0-9a-f]{12}\n$/);
    expect(out.lines()[0]).toBe("Apply failed: 1 of 6 changes failed. Resources: 3 added, 0 changed, 2 destroyed.");
  });
});
