import { describe, expect, it } from "vitest";
import type { ApplyEvent } from "../../applier/apply-plan.js";
import { applyEventToModel, countRows, finishApplyModel, hostProgress, initialApplyModel, rowElapsedMs, visibleRows, type ApplyModel } from "./apply-model.js";
import { demoPlan } from "./testing/demo-apply.js";

const fold = (model: ApplyModel, events: [ApplyEvent, number][]) => events.reduce((m, [e, t]) => applyEventToModel(m, e, t), model);

describe("the apply model", () => {
  const plan = demoPlan({ adds: 3, destroys: 1 });
  const [a, b, c] = plan.changes.filter((x) => x.action === "create");
  const d = plan.changes.find((x) => x.action === "delete")!;

  it("starts with every change of the plan waiting, in plan order", () => {
    const m = initialApplyModel(plan);
    expect(m.rows.map((r) => [r.address, r.status])).toEqual(plan.changes.map((x) => [x.address, "waiting"]));
  });

  it("follows a change through start, steps and completion, timing it with the reporter's clock", () => {
    const m = fold(initialApplyModel(plan), [
      [{ type: "apply_start", address: a!.address, action: "create", host: a!.host }, 1000],
      [{ type: "apply_progress", address: a!.address, step: "configure", elapsedMs: 200 }, 1200],
    ]);
    const row = m.rows.find((r) => r.address === a!.address)!;
    expect(row).toMatchObject({ status: "running", step: "configure", startedAt: 1000 });
    expect(rowElapsedMs(row, 4500)).toBe(3500);
    const after = applyEventToModel(m, { type: "apply_complete", address: a!.address, action: "create", elapsedMs: 4200 }, 5200);
    const finished = after.rows.find((r) => r.address === a!.address)!;
    expect(finished).toMatchObject({ status: "done", finishedAt: 5200 });
    expect(rowElapsedMs(finished, 99_999)).toBe(4200);
  });

  it("keeps a failure's message and its failed rollback, and counts per host", () => {
    const m = fold(initialApplyModel(plan), [
      [{ type: "apply_start", address: b!.address, action: "create", host: b!.host }, 0],
      [{ type: "cleanup_errored", address: b!.address, error: "undefine refused" }, 5],
      [{ type: "apply_errored", address: b!.address, action: "create", error: "disk full", elapsedMs: 9 }, 9],
      [{ type: "apply_start", address: d.address, action: "delete", host: d.host }, 10],
    ]);
    expect(m.rows.find((r) => r.address === b!.address)).toMatchObject({ status: "failed", error: "disk full", cleanupError: "undefine refused" });
    const hosts = hostProgress(m);
    expect(hosts.map((h) => h.host)).toEqual([...new Set(plan.changes.map((x) => x.host))]);
    const total = countRows(m.rows);
    expect(total).toEqual({ total: 4, waiting: 2, running: 1, done: 0, failed: 1 });
    expect(hosts.reduce((n, h) => n + h.counts.failed, 0)).toBe(1);
  });

  it("keeps unknown steps by name and adds rows for addresses the plan does not have", () => {
    const m = fold(initialApplyModel(plan), [
      [{ type: "apply_progress", address: c!.address, step: "journal_sync" as never, elapsedMs: 0 }, 0],
      [{ type: "apply_start", address: "extra[x]", action: "create", host: "kvm9" }, 0],
    ]);
    expect(m.rows.find((r) => r.address === c!.address)?.step).toBe("journal_sync");
    expect(m.rows.at(-1)).toMatchObject({ address: "extra[x]", host: "kvm9", status: "running" });
  });

  it("marks changes an interrupted apply never started as failed with the result's reason", () => {
    const m = finishApplyModel(initialApplyModel(plan), { succeeded: [], failed: [{ change: c!, error: "not started: apply was interrupted" }], commit: null, commitError: null }, 50);
    expect(m.rows.find((r) => r.address === c!.address)).toMatchObject({ status: "failed", error: "not started: apply was interrupted", elapsedMs: 0 });
    expect(countRows(m.rows).waiting).toBe(3);
  });
});

describe("visibleRows", () => {
  const plan = demoPlan({ adds: 50, destroys: 10 });
  const creates = plan.changes.filter((x) => x.action === "create");

  it("shows every row when they fit", () => {
    const small = initialApplyModel(demoPlan({ adds: 3, destroys: 1 }));
    expect(visibleRows(small, 4).rows).toHaveLength(4);
    expect(visibleRows(small, 4).hidden.total).toBe(0);
  });

  it("with 60 changes keeps running and failed rows, and counts what it hides", () => {
    let m = initialApplyModel(plan);
    let t = 0;
    for (const x of creates.slice(0, 30)) {
      m = applyEventToModel(m, { type: "apply_start", address: x.address, action: x.action, host: x.host }, t++);
      m = applyEventToModel(m, { type: "apply_complete", address: x.address, action: x.action, elapsedMs: 1 }, t++);
    }
    m = applyEventToModel(m, { type: "apply_start", address: creates[30]!.address, action: "create", host: creates[30]!.host }, t++);
    m = applyEventToModel(m, { type: "apply_errored", address: creates[30]!.address, action: "create", error: "boom", elapsedMs: 1 }, t++);
    for (const x of creates.slice(31, 35)) m = applyEventToModel(m, { type: "apply_start", address: x.address, action: x.action, host: x.host }, t++);

    const { rows, hidden } = visibleRows(m, 10);
    expect(rows).toHaveLength(9);
    expect(rows.filter((r) => r.status === "running").map((r) => r.address)).toEqual(creates.slice(31, 35).map((x) => x.address));
    expect(rows.filter((r) => r.status === "failed").map((r) => r.error)).toEqual(["boom"]);
    expect(rows.filter((r) => r.status === "waiting")).toHaveLength(4);
    expect(hidden).toEqual({ total: 51, waiting: 21, running: 0, done: 30, failed: 0 });
    // shown in plan order, so rows do not jump around
    const order = rows.map((r) => plan.changes.findIndex((x) => x.address === r.address));
    expect(order).toEqual([...order].sort((p, q) => p - q));
  });

  it("once everything finished, shows the failed and the most recently finished rows", () => {
    let m = initialApplyModel(plan);
    plan.changes.forEach((x, i) => {
      m = applyEventToModel(m, { type: "apply_start", address: x.address, action: x.action, host: x.host }, i);
      m = applyEventToModel(
        m,
        i === 5 ? { type: "apply_errored", address: x.address, action: x.action, error: "e", elapsedMs: 1 } : { type: "apply_complete", address: x.address, action: x.action, elapsedMs: 1 },
        100 + i,
      );
    });
    const { rows, hidden } = visibleRows(m, 5);
    expect(rows.map((r) => r.address)).toEqual([plan.changes[5]!.address, ...plan.changes.slice(-3).map((x) => x.address)]);
    expect(hidden).toMatchObject({ total: 56, done: 56 });
  });
});
