import { render } from "ink-testing-library";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ApplyEvent } from "../../applier/apply-plan.js";
import { applyEventToModel, finishApplyModel, initialApplyModel, type ApplyModel } from "./apply-model.js";
import { ApplyView } from "./apply-view.js";
import { demoPlan, runDemoApply } from "./testing/demo-apply.js";

/** Drives the view as the reporter does: fold each event into the model at a clock time, rerender. */
function harness(plan: ReturnType<typeof demoPlan>, opts: { maxRows?: number; spinner?: boolean } = {}) {
  let model: ApplyModel = initialApplyModel(plan);
  let now = 0;
  const view = () => <ApplyView model={model} nowMs={now} startedMs={0} color={false} spinner={opts.spinner ?? false} maxRows={opts.maxRows ?? 20} />;
  const ink = render(view());
  return {
    ink,
    at(ms: number) {
      now = ms;
      ink.rerender(view());
      return ink.lastFrame() ?? "";
    },
    event(e: ApplyEvent, ms = now) {
      now = ms;
      model = applyEventToModel(model, e, ms);
      ink.rerender(view());
      return ink.lastFrame() ?? "";
    },
    get model() {
      return model;
    },
    set model(m: ApplyModel) {
      model = m;
      ink.rerender(view());
    },
  };
}

const lineOf = (frame: string, text: string) => frame.split("\n").find((l) => l.includes(text)) ?? "";
const hostLine = (frame: string, host: string) => frame.split("\n").find((l) => l.startsWith(`  ${host} `)) ?? "";

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  vi.useRealTimers();
});

describe("ApplyView, scripted", () => {
  const plan = demoPlan({ adds: 2, destroys: 1 });
  const [w1, w2] = plan.changes.filter((c) => c.action === "create");
  const b1 = plan.changes.find((c) => c.action === "delete")!;

  it("shows a row per change with its action and host, the running step and a ticking elapsed time", () => {
    const h = harness(plan);
    cleanup = () => h.ink.unmount();
    let frame = h.at(0);
    expect(frame).toContain("Applying 3 changes: 2 to add, 1 to destroy");
    expect(lineOf(frame, w1!.address)).toMatch(/·\s+web\[web-00000001\]\s+\+ create on kvm1\s+waiting/);
    expect(lineOf(frame, b1.address)).toMatch(/- destroy on kvm1\s+waiting/);

    h.event({ type: "apply_start", address: w1!.address, action: "create", host: "kvm1" }, 1000);
    frame = h.event({ type: "apply_progress", address: w1!.address, step: "configure", elapsedMs: 2000 }, 3000);
    expect(lineOf(frame, w1!.address)).toMatch(/▸\s+web\[web-00000001\]\s+\+ create on kvm1\s+2s\s+configuring/);
    frame = h.at(15_500);
    expect(lineOf(frame, w1!.address)).toMatch(/14s\s+configuring/);
    frame = h.event({ type: "apply_progress", address: w1!.address, step: "ready", elapsedMs: 15_000 }, 16_000);
    expect(lineOf(frame, w1!.address)).toMatch(/15s\s+waiting for check-in/);
    frame = h.event({ type: "apply_progress", address: w1!.address, step: "journal_fsync" as never, elapsedMs: 15_100 });
    expect(lineOf(frame, w1!.address)).toContain("journal_fsync");
    expect(hostLine(frame, "kvm1")).toMatch(/kvm1 ░+ 0\/2 · 1 running$/);
    expect(lineOf(frame, "finished")).toMatch(/0\/3 finished · 1 running · 2 waiting · 0 failed\s+16s/);
  });

  it("marks finished rows, shows a failure in the row with its message and per-host progress", () => {
    const h = harness(plan);
    cleanup = () => h.ink.unmount();
    h.event({ type: "apply_start", address: w1!.address, action: "create", host: "kvm1" }, 0);
    h.event({ type: "apply_start", address: w2!.address, action: "create", host: "kvm2" }, 0);
    h.event({ type: "apply_complete", address: w1!.address, action: "create", elapsedMs: 12_300 }, 12_300);
    h.event({ type: "cleanup_errored", address: w2!.address, error: "volume busy" }, 13_000);
    const frame = h.event({ type: "apply_errored", address: w2!.address, action: "create", error: "pool full", elapsedMs: 13_000 }, 13_000);
    expect(lineOf(frame, w1!.address)).toMatch(/✔\s+web\[web-00000001\]\s+\+ create on kvm1\s+12s\s+created/);
    expect(lineOf(frame, w2!.address)).toMatch(/✖\s+web\[web-00000002\]\s+\+ create on kvm2\s+13s\s+failed: pool full; rollback failed too: volu/);
    expect(hostLine(frame, "kvm1")).toMatch(/kvm1 █{6}░{6} 1\/2$/);
    expect(hostLine(frame, "kvm2")).toMatch(/kvm2 █{12} 1\/1 · 1 failed$/);
    expect(lineOf(frame, "finished")).toMatch(/2\/3 finished · 0 running · 1 waiting · 1 failed/);
  });

  it("animates a spinner on running rows", async () => {
    vi.useFakeTimers();
    const h = harness(plan, { spinner: true });
    cleanup = () => h.ink.unmount();
    h.event({ type: "apply_start", address: w1!.address, action: "create", host: "kvm1" }, 0);
    const first = lineOf(h.ink.lastFrame() ?? "", w1!.address);
    expect(first).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\s+web\[web-00000001\]/);
    await vi.advanceTimersByTimeAsync(250);
    const later = lineOf(h.ink.lastFrame() ?? "", w1!.address);
    expect(later).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\s+web\[web-00000001\]/);
    expect(later).not.toBe(first);
  });

  it("collapses 60 changes to the active rows and counts, within the row budget", () => {
    const big = demoPlan({ adds: 50, destroys: 10 });
    const h = harness(big, { maxRows: 8 });
    cleanup = () => h.ink.unmount();
    big.changes.slice(0, 40).forEach((c, i) => {
      h.event({ type: "apply_start", address: c.address, action: c.action, host: c.host }, i);
      h.event({ type: "apply_complete", address: c.address, action: c.action, elapsedMs: 1000 }, i + 1);
    });
    for (const c of big.changes.slice(40, 43)) h.event({ type: "apply_start", address: c.address, action: c.action, host: c.host }, 50);
    const frame = h.event({ type: "apply_progress", address: big.changes[41]!.address, step: "configure", elapsedMs: 10 }, 60);
    const rows = frame.split("\n").filter((l) => /^\s+[·▸✔✖]\s/.test(l));
    expect(rows).toHaveLength(7);
    expect(rows.filter((l) => l.includes("▸"))).toHaveLength(3);
    expect(frame).toContain("… not shown: 13 waiting, 40 done");
    expect(lineOf(frame, "finished")).toMatch(/40\/60 finished · 3 running · 17 waiting · 0 failed/);
    expect(frame.split("\n").length).toBeLessThanOrEqual(1 + 8 + 1 + 2 + 1);
  });
});

describe("ApplyView, driven by applyPlan and FakeProviders", () => {
  it("ends with every change finished, the failure with its message and both hosts complete", async () => {
    const plan = demoPlan({ adds: 4, destroys: 2 });
    const h = harness(plan);
    cleanup = () => h.ink.unmount();
    const seen: string[] = [];
    const result = await runDemoApply(plan, {
      stepDelayMs: 5,
      failNames: ["web-00000003"],
      onEvent: (e) => seen.push(h.event(e)),
    });
    // while running, some frame showed a running row with a provider step in words
    expect(seen.some((f) => /▸\s+web\[web-\d+\]\s+\+ create on kvm\d\s+\d+s\s+(creating disk|configuring|starting)/.test(f))).toBe(true);
    expect(seen.some((f) => /▸\s+batch\[batch-\d+\]\s+- destroy on kvm\d\s+\d+s\s+(stopping|deleting)/.test(f))).toBe(true);
    h.model = finishApplyModel(h.model, result, 1e6);
    const frame = h.ink.lastFrame() ?? "";
    expect(result.failed.map((f) => f.change.name)).toEqual(["web-00000003"]);
    expect(lineOf(frame, "web[web-00000003]")).toMatch(/✖.*failed: host kvm1: disk of web-00000003 failed/);
    for (const c of plan.changes.filter((c) => c.name !== "web-00000003")) expect(lineOf(frame, c.address)).toMatch(c.action === "create" ? /✔.*created$/ : /✔.*destroyed$/);
    expect(hostLine(frame, "kvm1")).toMatch(/3\/3 · 1 failed$/);
    expect(hostLine(frame, "kvm2")).toMatch(/3\/3$/);
    expect(lineOf(frame, "finished")).toMatch(/6\/6 finished · 0 running · 0 waiting · 1 failed/);
  });
});
