import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Change, Plan } from "../planner/plan.js";
import { FakeProvider } from "../providers/fake-provider.js";
import type { VmSpec } from "../providers/provider.js";
import { GitStateStore } from "../state/git-state-store.js";
import type { Instance } from "../state/types.js";
import { applyPlan, readinessHooks, type ApplyEvent, type Readiness } from "./apply-plan.js";
import type { LifecycleHook } from "./lifecycle.js";

// Warm pool moves in apply (issue 14): pool VMs are made, readied and stopped; taken (started, waited for by their
// boot beacon, launching hooks) and returned (terminating hooks, stopped); only the check-in runs for pool VMs.

const uuidOf = (name: string) => `${name}-0000-0000-0000-000000000000`;
const base = (name: string) => ({ address: `web[${name}]`, group: "web", name, uuid: uuidOf(name), host: "a", detail: "test" });

function fill(name: string, state: "stopped" | "running" = "stopped"): Change {
  return {
    ...base(name),
    action: "create",
    reason: "pool_fill",
    vm: { name, uuid: uuidOf(name), group: "web", lineage: "lin", createdAt: "2026-11-23T00:00:00.000Z", vcpus: 1, memoryMiB: 64, network: { mode: "dhcp" }, settings: { fake: {} }, userData: "#cloud-config\n", secretEnv: [] },
    ready: { timeoutSeconds: 30, bootBeacon: true },
    pool: { state },
  };
}

function planOf(changes: Change[]): Plan {
  return {
    format_version: "3.1",
    based_on: { lineage: "lin", serial: 1, config_digest: "d", config_commit: null },
    lineage: "lin",
    created_at: "2026-11-23T00:00:00.000Z",
    expires_at: "2026-11-23T01:00:00.000Z",
    targets: null,
    drift: [],
    warnings: [],
    errors: [],
    shortfalls: [],
    groups: [{ name: "web", current: 0, desired: 0, reason: "test" }],
    changes,
    summary: { add: 0, change: 0, destroy: 0 },
  };
}

/** A readiness double: records what it was asked, and says "up" unless told a VM never comes up. */
function fakeReadiness() {
  const asked: { name: string; since?: string; beacon?: boolean }[] = [];
  const silent = new Set<string>();
  const readiness: Readiness = {
    prepare: (spec: VmSpec, _hb: number, o = {}) => {
      asked.push({ name: spec.name, beacon: Boolean(o.bootBeacon) });
      return spec;
    },
    wait: async (vm, _t, _s, since) => {
      asked.push({ name: vm.name, ...(since ? { since: since.toISOString() } : {}) });
      if (silent.has(vm.name)) throw new Error(`${vm.name} did not say it was up`);
    },
  };
  return { readiness, asked, silent };
}

/** A user's hook that records each run at its point and answers `result`. */
function userHook(point: LifecycleHook["point"], runs: string[], result: "continue" | "abandon" = "continue"): LifecycleHook {
  return { name: `user-${point}`, point, defaultResult: "abandon", timeoutMs: () => 5000, run: async (ctx) => (runs.push(`${point} ${ctx.vm.name}`), { result }) };
}

async function setup(instances: Instance[] = []) {
  const dir = join(await mkdtemp(join(tmpdir(), "premiscale-pool-")), "state");
  const store = new GitStateStore(dir);
  const provider = new FakeProvider("a");
  const lock = await store.lock("apply", 1000);
  await lock.init("lin");
  for (const i of instances) {
    await lock.putInstance("web", i);
    provider.plant({ name: i.name, uuid: i.uuid, group: "web", lineage: "lin", createdAt: i.created, state: i.pool === "warm" ? "stopped" : "running" });
  }
  return { store, provider, lock, providers: new Map([["a", provider]]) };
}

const instance = (name: string, extra: Partial<Instance> = {}): Instance => ({ name, uuid: uuidOf(name), host: "a", created: "2026-11-23T00:00:00.000Z", status: "running", vcpus: 1, memoryMiB: 64, bootBeacon: true, ...extra });

describe("applyPlan: warm pools", () => {
  it("makes a pool VM with a boot beacon, waits for its first check-in, stops it, and records it in the pool; users' hooks do not run", async () => {
    const { store, provider, providers, lock } = await setup();
    const { readiness, asked } = fakeReadiness();
    const runs: string[] = [];
    const events: ApplyEvent[] = [];
    const r = await applyPlan(planOf([fill("web-p1")]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => [...readinessHooks(readiness), userHook("until-ready", runs)] }, { onEvent: (e) => void events.push(e) });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(asked).toEqual([{ name: "web-p1", beacon: true }, { name: "web-p1" }]);
    expect(runs).toEqual([]);
    expect(provider.domains.get("web-p1")?.state).toBe("stopped");
    expect(events.filter((e) => e.type === "apply_progress").map((e) => (e as { step: string }).step)).toEqual(["create-disk", "configure", "start", "ready", "stop"]);
    expect((await store.read())?.groups[0]?.instances).toEqual([expect.objectContaining({ name: "web-p1", status: "running", pool: "warm", bootBeacon: true })]);
  });

  it("records a pool VM as creating before its first host call, so a crash leaves a record the next plan removes", async () => {
    const { provider, providers, lock } = await setup();
    const { readiness } = fakeReadiness();
    let seen: Instance | undefined;
    const onEvent = (e: ApplyEvent) => {
      if (e.type === "apply_progress" && e.step === "create-disk") seen = lock.current().groups[0]?.instances[0];
    };
    await applyPlan(planOf([fill("web-p1", "running")]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => readinessHooks(readiness) }, { onEvent });
    await lock.release();
    expect(seen).toMatchObject({ name: "web-p1", status: "creating", pool: "warm" });
    expect(provider.domains.get("web-p1")?.state).toBe("running");
  });

  it("takes a stopped pool VM: starts it, waits for a sign of life after the start, runs the launching hooks, records a member", async () => {
    const { store, provider, providers, lock } = await setup([instance("web-p1", { pool: "warm" })]);
    const { readiness, asked } = fakeReadiness();
    const runs: string[] = [];
    const before = Date.now();
    const take: Change = { ...base("web-p1"), action: "take", reason: "scale_out", start: true, ready: { timeoutSeconds: 30 } };
    const r = await applyPlan(planOf([take]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => [...readinessHooks(readiness), userHook("until-ready", runs)] });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(provider.calls).toEqual(["start web-p1"]);
    expect(asked).toEqual([{ name: "web-p1", since: expect.any(String) }]);
    expect(Date.parse(asked[0]!.since!)).toBeGreaterThanOrEqual(before - 1);
    expect(runs).toEqual(["until-ready web-p1"]);
    const [rec] = (await store.read())!.groups[0]!.instances;
    expect(rec).toMatchObject({ name: "web-p1", status: "running" });
    expect(rec?.pool).toBeUndefined();
  });

  it("gives up a taken VM that never says it is up: destroyed, out of state, the change failed", async () => {
    const { store, provider, providers, lock } = await setup([instance("web-p1", { pool: "warm" })]);
    const { readiness, silent } = fakeReadiness();
    silent.add("web-p1");
    const take: Change = { ...base("web-p1"), action: "take", reason: "scale_out", start: true, ready: { timeoutSeconds: 30 } };
    const r = await applyPlan(planOf([take]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => readinessHooks(readiness) });
    await lock.release();
    expect(r.failed.map((f) => f.error)).toEqual(["web-p1 did not say it was up"]);
    expect(provider.domains.size).toBe(0);
    expect((await store.read())?.groups[0]?.instances ?? []).toEqual([]);
  });

  it("takes a running pool VM without starting it or waiting", async () => {
    const { provider, providers, lock } = await setup([instance("web-p1", { pool: "warm" })]);
    provider.setState("web-p1", "running");
    const { readiness, asked } = fakeReadiness();
    const take: Change = { ...base("web-p1"), action: "take", reason: "scale_out", start: false };
    const r = await applyPlan(planOf([take]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => readinessHooks(readiness) });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(provider.calls).toEqual([]);
    expect(asked).toEqual([]);
  });

  it("returns a member to the pool: terminating hooks, stopped, recorded in the pool, its disk kept", async () => {
    const { store, provider, providers, lock } = await setup([instance("web-1")]);
    const runs: string[] = [];
    const ret: Change = { ...base("web-1"), action: "return", reason: "scale_in", stop: true };
    const r = await applyPlan(planOf([ret]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => [userHook("before-destroy", runs), userHook("after-destroy", runs)] });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(runs).toEqual(["before-destroy web-1", "after-destroy web-1"]);
    expect(provider.calls).toEqual(["stop web-1"]);
    expect(provider.domains.get("web-1")?.state).toBe("stopped");
    expect((await store.read())?.groups[0]?.instances).toEqual([expect.objectContaining({ name: "web-1", status: "running", pool: "warm" })]);
    expect(r.commit).not.toBeNull();
  });

  it("keeps a member a terminating hook will not let go, instead of returning it", async () => {
    const { store, provider, providers, lock } = await setup([instance("web-1")]);
    const ret: Change = { ...base("web-1"), action: "return", reason: "scale_in", stop: true };
    const r = await applyPlan(planOf([ret]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => [userHook("before-destroy", [], "abandon")] });
    await lock.release();
    expect(r.failed.map((f) => f.error)).toEqual([expect.stringMatching(/^kept: hook user-before-destroy/)]);
    expect(provider.calls).toEqual([]);
    expect((await store.read())?.groups[0]?.instances).toEqual([instance("web-1")]);
  });

  it("destroys a pool VM without the group's hooks (it never joined the group)", async () => {
    const { provider, providers, lock } = await setup([instance("web-p1", { pool: "warm" })]);
    const runs: string[] = [];
    const del: Change = { ...base("web-p1"), action: "delete", reason: "pool_trim", gone: false, pool: true };
    const r = await applyPlan(planOf([del]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => [userHook("before-destroy", runs), userHook("after-destroy", runs)] });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(runs).toEqual([]);
    expect(provider.domains.size).toBe(0);
  });
});
