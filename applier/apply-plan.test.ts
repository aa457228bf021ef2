import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { git } from "../state/git.js";
import { describe, expect, it } from "vitest";
import type { Change, Plan } from "../planner/plan.js";
import { FakeProvider } from "../providers/fake-provider.js";
import { GitStateStore } from "../state/git-state-store.js";
import type { VmSpec } from "../providers/provider.js";
import { applyPlan, readinessHooks, type ApplyEvent } from "./apply-plan.js";
import { interruptedApplies, summarizeApply, type JournalEntry } from "./journal.js";

function create(name: string, host: string, userData = "#cloud-config\n", secretEnv: string[] = []): Change {
  const uuid = `${name}-0000-0000-0000-000000000000`;
  return {
    action: "create",
    address: `web[${name}]`,
    group: "web",
    name,
    uuid,
    host,
    reason: "scale_out",
    detail: "desired 2 > current 0",
    vm: {
      name, uuid, group: "web", lineage: "lin", createdAt: "2026-11-23T00:00:00.000Z", vcpus: 1, memoryMiB: 64,
      network: { mode: "dhcp" }, settings: { fake: {} }, userData, secretEnv,
    },
  };
}

function planOf(changes: Change[]): Plan {
  return {
    format_version: "3.1",
    based_on: { lineage: null, serial: 0, config_digest: "d", config_commit: null },
    lineage: "lin",
    created_at: "2026-11-23T00:00:00.000Z",
    expires_at: "2026-11-23T01:00:00.000Z",
    targets: null,
    drift: [],
    warnings: [],
    errors: [],
    shortfalls: [],
    groups: [{ name: "web", current: 0, desired: changes.length, reason: "desired in config" }],
    changes,
    summary: { add: changes.length, change: 0, destroy: 0 },
  };
}

async function setup(hosts: string[]) {
  const dir = join(await mkdtemp(join(tmpdir(), "premiscale-apply-")), "state");
  const store = new GitStateStore(dir);
  const providers = new Map(hosts.map((h) => [h, new FakeProvider(h)]));
  const lock = await store.lock("apply", 1000);
  return { dir, store, providers, lock };
}

describe("applyPlan", () => {
  it("creates every VM, records each in state and commits once", async () => {
    const { dir, store, providers, lock } = await setup(["a"]);
    const r = await applyPlan(planOf([create("web-1", "a"), create("web-2", "a")]), { providers, lock, hostLimits: new Map(), env: {} });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(r.commit).toMatch(/^[0-9a-f]{40}$/);
    expect((await store.read())?.groups[0]?.instances.map((i) => i.name)).toEqual(["web-1", "web-2"]);
    expect((await git(dir, ["rev-list", "--count", "HEAD"])).stdout.trim()).toBe("1");
  });

  it("never runs more changes on a host than its limit", async () => {
    const { providers, lock } = await setup(["a", "b"]);
    // Host calls must outlast the (serialised, fsynced) state writes for changes to overlap at all.
    for (const p of providers.values()) p.delayMs = 150;
    const changes = [...Array(12).keys()].map((i) => create(`web-${i}`, i % 2 ? "a" : "b"));
    await applyPlan(planOf(changes), { providers, lock, hostLimits: new Map([["a", 2], ["b", 3]]), env: {} }, { parallelism: 10 });
    await lock.release();
    expect(providers.get("a")!.maxInFlight).toBe(2);
    expect(providers.get("b")!.maxInFlight).toBe(3);
  });

  it("never runs more changes at once than the parallelism", async () => {
    const { providers, lock } = await setup(["a"]);
    providers.get("a")!.delayMs = 150;
    const changes = [...Array(8).keys()].map((i) => create(`web-${i}`, "a"));
    await applyPlan(planOf(changes), { providers, lock, hostLimits: new Map([["a", 8]]), env: {} }, { parallelism: 3 });
    await lock.release();
    expect(providers.get("a")!.maxInFlight).toBe(3);
  });

  it("keeps a slow host's queue from holding the slots other hosts need", async () => {
    const { providers, lock } = await setup(["slow", "fast"]);
    providers.get("slow")!.delayMs = 300;
    const changes = [
      ...[...Array(6).keys()].map((i) => create(`s-${i}`, "slow")),
      ...[...Array(4).keys()].map((i) => create(`f-${i}`, "fast")),
    ];
    const done: string[] = [];
    await applyPlan(planOf(changes), { providers, lock, hostLimits: new Map([["slow", 1], ["fast", 4]]), env: {} }, {
      parallelism: 2,
      onEvent: (e) => e.type === "apply_complete" && done.push(e.address),
    });
    await lock.release();
    // All fast-host changes finish while the slow host is still on its first ones.
    expect(done.slice(0, 4).every((a) => a.startsWith("web[f-"))).toBe(true);
  });

  it("on partial failure records only what succeeded, rolls back the failed create, and still commits", async () => {
    const { store, providers, lock } = await setup(["a"]);
    providers.get("a")!.failCreate.add("web-2");
    const events: ApplyEvent[] = [];
    const r = await applyPlan(planOf([create("web-1", "a"), create("web-2", "a")]), { providers, lock, hostLimits: new Map(), env: {} }, { onEvent: (e) => events.push(e) });
    await lock.release();
    expect(r.succeeded.map((c) => c.name)).toEqual(["web-1"]);
    expect(r.failed).toEqual([{ change: expect.objectContaining({ name: "web-2" }), error: "host a: disk of web-2 failed" }]);
    expect(providers.get("a")!.calls).toContain("destroy web-2");
    expect((await store.read())?.groups[0]?.instances.map((i) => i.name)).toEqual(["web-1"]);
    expect(r.commit).not.toBeNull();
    expect(events.some((e) => e.type === "apply_errored" && e.address === "web[web-2]")).toBe(true);
  });

  it("fills ${env:NAME} secrets at apply, and fails only the change whose secret is missing", async () => {
    const { providers, lock } = await setup(["a"]);
    const seen: string[] = [];
    const p = providers.get("a")!;
    const orig = p.createVm.bind(p);
    p.createVm = async (spec, onStep) => {
      seen.push(spec.userData);
      return orig(spec, onStep);
    };
    const r = await applyPlan(
      planOf([create("web-1", "a", "pw: ${env:PW}\n", ["PW"]), create("web-2", "a", "pw: ${env:NOPE}\n", ["NOPE"])]),
      { providers, lock, hostLimits: new Map(), env: { PW: "s3cret" } },
    );
    await lock.release();
    expect(seen).toEqual(["pw: s3cret\n"]);
    expect(r.failed[0]?.error).toMatch(/NOPE/);
  });

  it("after an interrupt starts nothing new and reports what it skipped", async () => {
    const { providers, lock } = await setup(["a"]);
    const abort = new AbortController();
    abort.abort();
    const r = await applyPlan(planOf([create("web-1", "a")]), { providers, lock, hostLimits: new Map(), env: {} }, { signal: abort.signal });
    await lock.release();
    expect(r.succeeded).toEqual([]);
    expect(r.failed[0]?.error).toMatch(/interrupted/);
    expect(providers.get("a")!.calls).toEqual([]);
  });

  it("keeps a 'creating' record when a failed create cannot be rolled back, so the next plan cleans it up", async () => {
    const { store, providers, lock } = await setup(["a"]);
    providers.get("a")!.failCreate.add("web-1");
    providers.get("a")!.failDestroy.add("web-1");
    const events: ApplyEvent[] = [];
    const r = await applyPlan(planOf([create("web-1", "a")]), { providers, lock, hostLimits: new Map(), env: {} }, { onEvent: (e) => events.push(e) });
    await lock.release();
    expect(r.failed).toHaveLength(1);
    expect(events.some((e) => e.type === "cleanup_errored")).toBe(true);
    expect((await store.read())?.groups[0]?.instances).toEqual([expect.objectContaining({ name: "web-1", status: "creating" })]);
  });

  it("removes the record of a failed create that was rolled back", async () => {
    const { store, providers, lock } = await setup(["a"]);
    providers.get("a")!.failCreate.add("web-1");
    await applyPlan(planOf([create("web-1", "a")]), { providers, lock, hostLimits: new Map(), env: {} });
    await lock.release();
    expect((await store.read())?.groups ?? []).toEqual([]);
  });

  it("a state write that fails fails only its own change, and the rest is still recorded and reported", async () => {
    const { store, providers, lock } = await setup(["a"]);
    const put = lock.putInstance.bind(lock);
    lock.putInstance = async (group, instance) => {
      if (instance.name === "web-1" && instance.status === "running") throw new Error("disk full");
      return put(group, instance);
    };
    const r = await applyPlan(planOf([create("web-1", "a"), create("web-2", "a")]), { providers, lock, hostLimits: new Map(), env: {} });
    await lock.release();
    expect(r.failed).toEqual([{ change: expect.objectContaining({ name: "web-1" }), error: "disk full" }]);
    expect(r.succeeded.map((c) => c.name)).toEqual(["web-2"]);
    expect(r.commit).not.toBeNull();
    const names = (await store.read())?.groups[0]?.instances.map((i) => `${i.name}:${i.status}`);
    expect(names).toEqual(["web-1:creating", "web-2:running"]);
  });

  it("lets the changes already in flight finish after an interrupt, and starts no new ones", async () => {
    const { providers, lock } = await setup(["a"]);
    const abort = new AbortController();
    providers.get("a")!.delayMs = 100;
    const r = await applyPlan(
      planOf([create("web-1", "a"), create("web-2", "a"), create("web-3", "a")]),
      { providers, lock, hostLimits: new Map([["a", 1]]), env: {} },
      { onEvent: (e) => e.type === "apply_start" && abort.abort(), signal: abort.signal },
    );
    await lock.release();
    expect(r.succeeded.map((c) => c.name)).toEqual(["web-1"]);
    expect(r.failed.map((f) => f.error)).toEqual(["not started: apply was interrupted", "not started: apply was interrupted"]);
  });
});

describe("applyPlan: creates that wait for deletes", () => {
  const del = (name: string, host: string): Change => ({
    action: "delete", address: `web[${name}]`, group: "web", name, uuid: `${name}-0000-0000-0000-000000000000`, host,
    reason: "interrupted_delete", detail: "d", gone: false,
  });
  const after = (change: Change, waits: string[]): Change => ({ ...change, ...(change.action === "create" ? { waits_for: waits } : {}) });

  it("starts a create that waits for deletes only after they finished, even with one slot per host", async () => {
    const { providers, lock } = await setup(["a"]);
    const a = providers.get("a")!;
    for (const n of ["old-1", "old-2"]) a.plant({ name: n, uuid: `${n}-0000-0000-0000-000000000000`, group: "web", lineage: "lin", createdAt: "t", state: "running" });
    const order: string[] = [];
    // The waiting create comes first in the plan and the host has one slot: it must not hold it while it waits.
    const plan = planOf([after(create("new-1", "a"), ["web[old-1]", "web[old-2]"]), del("old-1", "a"), del("old-2", "a")]);
    const r = await applyPlan(plan, { providers, lock, hostLimits: new Map([["a", 1]]), env: {} }, {
      onEvent: (e) => (e.type === "apply_start" || e.type === "apply_complete") && order.push(`${e.type} ${e.address}`),
    });
    await lock.release();
    expect(r.failed).toEqual([]);
    const startNew = order.indexOf("apply_start web[new-1]");
    expect(startNew).toBeGreaterThan(order.indexOf("apply_complete web[old-1]"));
    expect(startNew).toBeGreaterThan(order.indexOf("apply_complete web[old-2]"));
  });

  it("does not start a create whose delete failed, says why, and still makes the other changes", async () => {
    const { store, providers, lock } = await setup(["a"]);
    const a = providers.get("a")!;
    a.plant({ name: "old-1", uuid: "old-1-0000-0000-0000-000000000000", group: "web", lineage: "lin", createdAt: "t", state: "running" });
    a.failDestroy.add("old-1");
    const r = await applyPlan(planOf([after(create("new-1", "a"), ["web[old-1]"]), create("new-2", "a"), del("old-1", "a")]), { providers, lock, hostLimits: new Map(), env: {} });
    await lock.release();
    expect(r.succeeded.map((c) => c.name)).toEqual(["new-2"]);
    expect(r.failed.map((f) => [f.change.name, f.error])).toEqual([
      ["old-1", "host a: destroy of old-1 failed"],
      ["new-1", "not started: it waits for web[old-1], which did not finish (its host has no room until then); the next apply tries again"],
    ]);
    expect(a.calls).not.toContain("create new-1");
    expect((await store.read())?.groups[0]?.instances.map((i) => i.name)).toEqual(["new-2"]);
  });
});

describe("applyPlan: journal, interrupted destroys and readiness", () => {
  const del = (name: string, host: string): Change => ({
    action: "delete", address: `web[${name}]`, group: "web", name, uuid: `${name}-0000-0000-0000-000000000000`, host,
    reason: "scale_in", detail: "desired 0 < current 1", gone: false,
  });

  it("journals every change's steps before they run and ends the apply in the journal", async () => {
    const { providers, lock } = await setup(["a"]);
    const entries: JournalEntry[] = [];
    const r = await applyPlan(planOf([create("web-1", "a")]), { providers, lock, hostLimits: new Map(), env: {}, journal: { append: (e) => void entries.push(e) } });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(entries.map((e) => e.type)).toEqual(["apply_begin", "change_begin", "step", "step", "step", "change_end", "apply_end"]);
    expect(entries[2]).toMatchObject({ address: "web[web-1]", step: "create-disk" });
    expect(new Set(entries.map((e) => e.apply)).size).toBe(1);
    expect(interruptedApplies(entries.map((e) => JSON.stringify(e)).join("\n"))).toEqual([]);
  });

  it("marks a VM `deleting` in state before its first host call, so a destroy cut short is finished later", async () => {
    const { store, providers, lock } = await setup(["a"]);
    await applyPlan(planOf([create("web-1", "a")]), { providers, lock, hostLimits: new Map(), env: {} });
    const seen: string[] = [];
    const p = providers.get("a")!;
    const destroy = p.destroyVm.bind(p);
    p.destroyVm = async (vm) => {
      seen.push(lock.current().groups[0]!.instances.find((i) => i.name === vm.name)!.status);
      throw new Error("host went away");
    };
    const r = await applyPlan(planOf([del("web-1", "a")]), { providers, lock, hostLimits: new Map(), env: {} });
    p.destroyVm = destroy;
    await lock.release();
    expect(seen).toEqual(["deleting"]);
    expect(r.failed).toHaveLength(1);
    expect((await store.read())?.groups[0]?.instances).toMatchObject([{ name: "web-1", status: "deleting" }]);
  });

  it("waits for the check-in of VMs whose plan asks for it, with their token in the seed", async () => {
    const { store, providers, lock } = await setup(["a"]);
    const seeds: string[] = [];
    const p = providers.get("a")!;
    const createVm = p.createVm.bind(p);
    p.createVm = (spec, options) => (seeds.push(spec.userData), createVm(spec, options));
    const events: ApplyEvent[] = [];
    const waited: [string, number][] = [];
    const readiness = {
      prepare: (s: VmSpec) => ({ ...s, userData: s.userData + `phone_home: {url: "http://x/${s.uuid}/token"}\n` }),
      wait: async (vm: { name: string }, timeoutMs: number) => void waited.push([vm.name, timeoutMs]),
    };
    const change = { ...create("web-1", "a"), ready: { timeoutSeconds: 30 } } as Change;
    const r = await applyPlan(planOf([change]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => readinessHooks(readiness) }, { onEvent: (e) => void events.push(e) });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(waited).toEqual([["web-1", 30_000]]);
    expect(seeds[0]).toContain("/token");
    expect(events.filter((e) => e.type === "apply_progress").map((e) => (e as { step: string }).step)).toEqual(["create-disk", "configure", "start", "ready"]);
    expect((await store.read())?.groups[0]?.instances).toMatchObject([{ name: "web-1", status: "running" }]);
    // The plan (and so state and git) never saw the token.
    expect(JSON.stringify(change)).not.toContain("/token");
  });

  it("destroys a VM that never checks in and reports it failed", async () => {
    const { store, providers, lock } = await setup(["a"]);
    const readiness = { prepare: (s: VmSpec) => s, wait: async (vm: { name: string }) => { throw new Error(`${vm.name} did not check in within 1 s`); } };
    const r = await applyPlan(planOf([{ ...create("web-1", "a"), ready: { timeoutSeconds: 1 } } as Change]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => readinessHooks(readiness) });
    await lock.release();
    expect(r.failed.map((f) => f.error)).toEqual(["web-1 did not check in within 1 s"]);
    expect(providers.get("a")!.domains.size).toBe(0);
    expect((await store.read())?.groups[0]?.instances ?? []).toEqual([]);
  });

  it("refuses a plan that waits for check-ins when no check-in server was given", async () => {
    const { providers, lock } = await setup(["a"]);
    await expect(applyPlan(planOf([{ ...create("web-1", "a"), ready: { timeoutSeconds: 1 } } as Change]), { providers, lock, hostLimits: new Map(), env: {} })).rejects.toThrow(/no check-in server/);
    await lock.release();
    expect(providers.get("a")!.calls).toEqual([]);
  });
});

describe("applyPlan: forgetting destroyed VMs", () => {
  it("calls forget for each VM it destroyed, and a failing forget does not fail the change", async () => {
    const { providers, lock } = await setup(["a"]);
    await applyPlan(planOf([create("web-1", "a"), create("web-2", "a")]), { providers, lock, hostLimits: new Map(), env: {} });
    const forgotten: string[] = [];
    const del = (name: string): Change => ({ action: "delete", address: `web[${name}]`, group: "web", name, uuid: `${name}-0000-0000-0000-000000000000`, host: "a", reason: "scale_in", detail: "d", gone: false });
    const forget = async (uuid: string) => {
      forgotten.push(uuid);
      if (uuid.startsWith("web-2")) throw new Error("disk full");
    };
    const r = await applyPlan(planOf([del("web-1"), del("web-2")]), { providers, lock, hostLimits: new Map(), env: {}, forget });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(forgotten.sort()).toEqual(["web-1-0000-0000-0000-000000000000", "web-2-0000-0000-0000-000000000000"]);
  });
});

describe("applyPlan: shutting VMs down", () => {
  it("gives a VM it removes its graceful shutdown, but powers off one whose create never finished", async () => {
    const { providers, lock } = await setup(["a"]);
    await applyPlan(planOf([create("web-1", "a"), create("web-2", "a")]), { providers, lock, hostLimits: new Map(), env: {} });
    const graces = new Map<string, number>();
    const host = providers.get("a")!;
    const destroy = host.destroyVm.bind(host);
    host.destroyVm = (vm, options) => (graces.set(vm.name, options.shutdownTimeoutMs), destroy(vm, options));
    const del = (name: string, reason: Change["reason"]): Change => ({ action: "delete", address: `web[${name}]`, group: "web", name, uuid: `${name}-0000-0000-0000-000000000000`, host: "a", reason, detail: "d", gone: false });
    const r = await applyPlan(planOf([del("web-1", "scale_in"), del("web-2", "interrupted_create")]), { providers, lock, hostLimits: new Map(), env: {} }, { shutdownTimeoutMs: 30_000 });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(Object.fromEntries(graces)).toEqual({ "web-1": 30_000, "web-2": 0 });
  });
});

describe("interruptedApplies", () => {
  it("reports the changes an apply had in flight when it died, and ignores a torn last line", () => {
    const lines = [
      { type: "apply_begin", apply: "A", at: "t0", pid: 42, changes: 3, based_on_serial: 1 },
      { type: "change_begin", apply: "A", at: "t1", address: "web[web-1]", action: "create", host: "a", name: "web-1", uuid: "u1" },
      { type: "change_begin", apply: "A", at: "t1", address: "web[web-2]", action: "delete", host: "a", name: "web-2", uuid: "u2" },
      { type: "step", apply: "A", at: "t2", address: "web[web-1]", step: "disk" },
      { type: "step", apply: "A", at: "t3", address: "web[web-1]", step: "seed" },
      { type: "change_end", apply: "A", at: "t4", address: "web[web-2]", ok: true },
      { type: "change_begin", apply: "A", at: "t1", address: "web[web-3]", action: "delete", host: "b", name: "web-3", uuid: "u3" },
    ].map((e) => JSON.stringify(e));
    expect(interruptedApplies(lines.join("\n") + '\n{"type":"step","apply":"A","at')).toEqual([
      {
        apply: "A", pid: 42, startedAt: "t0", finished: 1,
        inFlight: [
          { address: "web[web-1]", action: "create", host: "a", lastStep: "seed" },
          { address: "web[web-3]", action: "delete", host: "b", lastStep: null },
        ],
      },
    ]);
  });
});

describe("summarizeApply", () => {
  it("sums each step's duration until the next step or the change's end, for the last apply that ended", () => {
    const e = (o: Record<string, unknown>) => JSON.stringify({ apply: "B", ...o });
    const text = [
      JSON.stringify({ type: "apply_begin", apply: "A", at: "2026-01-01T00:00:00.000Z", pid: 1, changes: 1, based_on_serial: 0 }),
      e({ type: "apply_begin", at: "2026-01-01T00:01:00.000Z", pid: 2, changes: 2, based_on_serial: 1 }),
      e({ type: "step", at: "2026-01-01T00:01:00.000Z", address: "w[1]", step: "disk" }),
      e({ type: "step", at: "2026-01-01T00:01:00.000Z", address: "w[2]", step: "disk" }),
      e({ type: "step", at: "2026-01-01T00:01:01.000Z", address: "w[1]", step: "start" }),
      e({ type: "step", at: "2026-01-01T00:01:03.000Z", address: "w[2]", step: "start" }),
      e({ type: "change_end", at: "2026-01-01T00:01:02.000Z", address: "w[1]", ok: true }),
      e({ type: "change_end", at: "2026-01-01T00:01:03.500Z", address: "w[2]", ok: false, error: "x" }),
      e({ type: "apply_end", at: "2026-01-01T00:01:04.000Z", succeeded: 1, failed: 1 }),
    ].join("\n");
    const s = summarizeApply(text)!;
    expect(s).toMatchObject({ apply: "B", startedAt: "2026-01-01T00:01:00.000Z", succeeded: 1, failed: 1 });
    expect(Object.fromEntries(s.steps)).toEqual({ disk: { count: 2, totalSeconds: 4, maxSeconds: 3 }, start: { count: 2, totalSeconds: 1.5, maxSeconds: 1 } });
    expect(summarizeApply(text.split("\n").slice(0, 3).join("\n"))).toBeNull();
  });
});
