import { describe, expect, it } from "vitest";
import type { ApplyResult } from "../../applier/apply-plan.js";
import { applyFailureDetails, applySummaryLine, commitLines, formatElapsed, plainEventLine, stepLabel } from "./format.js";
import { demoPlan } from "./testing/demo-apply.js";

const plan = demoPlan({ adds: 2, destroys: 1 });
const [c1, c2] = plan.changes.filter((c) => c.action === "create");
const d1 = plan.changes.find((c) => c.action === "delete")!;

describe("formatElapsed", () => {
  it("writes whole seconds the way Go and Terraform do", () => {
    expect(formatElapsed(0)).toBe("0s");
    expect(formatElapsed(999)).toBe("0s");
    expect(formatElapsed(12_400)).toBe("12s");
    expect(formatElapsed(65_000)).toBe("1m5s");
    expect(formatElapsed(3_600_000 + 3000)).toBe("1h0m3s");
    expect(formatElapsed(-5)).toBe("0s");
  });
});

describe("stepLabel", () => {
  it("names the known steps in words and shows an unknown step by its name", () => {
    expect(stepLabel("ready")).toBe("waiting for check-in");
    expect(stepLabel("delete")).toBe("deleting");
    expect(stepLabel("hook:lb")).toBe("running hook lb");
    expect(stepLabel("journal_flush")).toBe("journal_flush");
    expect(stepLabel("toString")).toBe("toString");
  });
});

describe("plainEventLine", () => {
  it("gives one stable, timestamp-free line per event", () => {
    expect(plainEventLine({ type: "apply_start", address: "web[web-1a2b3c4d]", action: "create", host: "kvm1" })).toBe("web[web-1a2b3c4d]: creating on kvm1...");
    expect(plainEventLine({ type: "apply_progress", address: "web[web-1a2b3c4d]", step: "start", elapsedMs: 3200 })).toBe("web[web-1a2b3c4d]: starting (3s)");
    expect(
      plainEventLine({ type: "apply_complete", address: "web[web-1a2b3c4d]", action: "create", elapsedMs: 12_000 }, { host: "kvm1", counts: { total: 5, waiting: 1, running: 1, done: 2, failed: 1 } }),
    ).toBe("web[web-1a2b3c4d]: created (12s) [kvm1: 3/5]");
    expect(plainEventLine({ type: "apply_errored", address: "b[b-1]", action: "delete", error: "shutdown timed out", elapsedMs: 61_000 })).toBe(
      "b[b-1]: destroy failed (1m1s): shutdown timed out",
    );
    expect(plainEventLine({ type: "cleanup_errored", address: "w[w-1]", error: "busy" })).toMatch(/^w\[w-1\]: could not remove the half-created VM: busy/);
    expect(plainEventLine({ type: "hook_message", address: "w[w-1]", hook: "lb", message: "hook lb (launching): added to pool web" })).toBe("w[w-1]: hook lb (launching): added to pool web");
    expect(plainEventLine({ type: "journal_written" } as never)).toBeNull();
  });
});

describe("the closing summary", () => {
  const ok: ApplyResult = { succeeded: [c1!, c2!, d1], failed: [], commit: "0123456789abcdef0123", commitError: null };

  it("uses Terraform's wording when everything succeeded", () => {
    expect(applySummaryLine(ok)).toBe("Apply complete! Resources: 2 added, 0 changed, 1 destroyed.");
    expect(applyFailureDetails(ok)).toEqual([]);
    expect(commitLines(ok, "/srv/state")).toEqual(["State committed: 0123456789ab in /srv/state"]);
  });

  it("says how many changes failed, lists them and what to do", () => {
    const r: ApplyResult = { succeeded: [c1!, d1], failed: [{ change: c2!, error: "disk full" }], commit: "abc", commitError: null };
    expect(applySummaryLine(r)).toBe("Apply failed: 1 of 3 changes failed. Resources: 1 added, 0 changed, 1 destroyed.");
    expect(applyFailureDetails(r)).toEqual([
      `  ok      create ${c1!.address} on ${c1!.host}`,
      `  ok      delete ${d1.address} on ${d1.host}`,
      `  failed  create ${c2!.address} on ${c2!.host}: disk full`,
      "State records what succeeded. Fix the cause and run premiscale apply again: it converges.",
    ]);
    expect(applyFailureDetails(r, 1)[0]).toBe("  ok      2 changes (1 created, 1 destroyed; premiscale state list shows them)");
  });

  it("fails an apply whose state could not be committed, and says so", () => {
    const r: ApplyResult = { ...ok, commit: null, commitError: "index.lock exists" };
    expect(applySummaryLine(r)).toBe("Apply failed: the state could not be committed. Resources: 2 added, 0 changed, 1 destroyed.");
    expect(commitLines(r, "/srv/state")).toEqual([
      "Error: state was written to /srv/state but not committed: index.lock exists",
      "  the next apply commits it; fix the git repository first",
    ]);
  });
});
