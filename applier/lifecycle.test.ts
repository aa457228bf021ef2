import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Change, Plan } from "../planner/plan.js";
import { FakeProvider } from "../providers/fake-provider.js";
import { GitStateStore } from "../state/git-state-store.js";
import { applyPlan, type ApplyEvent } from "./apply-plan.js";
import { runHook, type HookContext, type HookOutcome, type HookPoint, type LifecycleHook } from "./lifecycle.js";

const target = { address: "web[web-1]", group: "web", name: "web-1", uuid: "u-1", host: "a" };

function hook(name: string, point: HookPoint, run: (ctx: HookContext) => Promise<HookOutcome>, o: Partial<LifecycleHook> = {}): LifecycleHook {
  return { name, point, defaultResult: "abandon", timeoutMs: () => 1000, run, ...o };
}

describe("runHook", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("returns what the hook answers", async () => {
    const r = await runHook(hook("lb", "until-ready", async () => ({ result: "continue", message: "registered" })), { point: "until-ready", vm: target });
    expect(r).toEqual({ hook: "lb", result: "continue", message: "registered", timedOut: false });
  });

  it("takes the default result when the hook outlives its timeout, and aborts its signal", async () => {
    vi.useFakeTimers();
    let aborted = false;
    const h = hook("slow", "before-destroy", (ctx) => new Promise(() => ctx.signal.addEventListener("abort", () => (aborted = true))), { defaultResult: "continue" });
    const running = runHook(h, { point: "before-destroy", vm: target });
    await vi.advanceTimersByTimeAsync(999);
    expect(aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await running).toMatchObject({ result: "continue", timedOut: true, message: "hook slow did not finish within 1 s (no heartbeat either): its default result is continue" });
    expect(aborted).toBe(true);
  });

  it("restarts the timeout on each heartbeat", async () => {
    vi.useFakeTimers();
    let finish!: () => void;
    const h = hook("beating", "until-ready", (ctx) => {
      const beat = setInterval(() => ctx.heartbeat(), 800);
      return new Promise((resolve) => (finish = () => (clearInterval(beat), resolve({ result: "continue" }))));
    });
    const running = runHook(h, { point: "until-ready", vm: target });
    await vi.advanceTimersByTimeAsync(5000); // five times its timeout, alive all along
    finish();
    expect(await running).toMatchObject({ result: "continue", timedOut: false });
  });

  it("turns a hook that throws into abandon, with its error as the reason", async () => {
    const r = await runHook(hook("broken", "before-create", async () => { throw new Error("ECONNREFUSED 127.0.0.1:9"); }), { point: "before-create", vm: target });
    expect(r).toEqual({ hook: "broken", result: "abandon", message: "ECONNREFUSED 127.0.0.1:9", timedOut: false });
  });

  it("abandons at once when apply is interrupted", async () => {
    const stop = new AbortController();
    const h = hook("waits", "until-ready", (ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve({ result: "continue" }))));
    const running = runHook(h, { point: "until-ready", vm: target }, stop.signal);
    stop.abort();
    expect(await running).toMatchObject({ result: "abandon", message: "apply was interrupted", timedOut: false });
    expect(await runHook(h, { point: "until-ready", vm: target }, stop.signal)).toMatchObject({ result: "abandon", message: "apply was interrupted" });
  });
});

describe("applyPlan with lifecycle hooks", () => {
  const vm = (name: string): Extract<Change, { action: "create" }>["vm"] => ({
    name, uuid: `${name}-uuid`, group: "web", lineage: "lin", createdAt: "2026-11-23T00:00:00.000Z", vcpus: 1, memoryMiB: 64,
    network: { mode: "dhcp" }, settings: { fake: {} }, userData: "#cloud-config\n", secretEnv: [],
  });
  const create = (name: string): Change => ({ action: "create", address: `web[${name}]`, group: "web", name, uuid: `${name}-uuid`, host: "a", reason: "scale_out", detail: "d", vm: vm(name) });
  const del = (name: string): Change => ({ action: "delete", address: `web[${name}]`, group: "web", name, uuid: `${name}-uuid`, host: "a", reason: "scale_in", detail: "d", gone: false });
  const plan = (changes: Change[]): Plan => ({
    format_version: "3.1", based_on: { lineage: null, serial: 0, config_digest: "d", config_commit: null }, lineage: "lin", created_at: "t", expires_at: "t",
    targets: null, drift: [], warnings: [], errors: [], shortfalls: [], groups: [{ name: "web", current: 0, desired: 1, reason: "r" }], changes, summary: { add: 0, change: 0, destroy: 0 },
  });

  async function setup() {
    const store = new GitStateStore(join(await mkdtemp(join(tmpdir(), "premiscale-hooks-")), "state"));
    const provider = new FakeProvider("a");
    const lock = await store.lock("apply", 1000);
    return { store, provider, lock, providers: new Map([["a", provider]]) };
  }

  it("runs the hooks of a create around it in order, journals each as a step, and gives a before-create hook the spec to change", async () => {
    const { store, provider, lock, providers } = await setup();
    const seen: string[] = [];
    let userData = "";
    const createVm = provider.createVm.bind(provider);
    provider.createVm = (spec, o) => ((userData = spec.userData), seen.push("createVm"), createVm(spec, o));
    const hooks = [
      hook("token", "before-create", async (ctx) => (seen.push("before-create"), { result: "continue", spec: { ...ctx.spec!, userData: ctx.spec!.userData + "token: t\n" } })),
      hook("node", "until-ready", async () => (seen.push("until-ready"), { result: "continue" })),
    ];
    const steps: string[] = [];
    const r = await applyPlan(plan([create("web-1")]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => hooks }, {
      onEvent: (e: ApplyEvent) => void (e.type === "apply_progress" && steps.push(e.step)),
    });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(seen).toEqual(["before-create", "createVm", "until-ready"]);
    expect(userData).toBe("#cloud-config\ntoken: t\n");
    expect(steps).toEqual(["hook:token", "create-disk", "configure", "start", "hook:node"]);
    expect((await store.read())?.groups[0]?.instances).toMatchObject([{ name: "web-1", status: "running" }]);
  });

  it("gives up a VM whose until-ready hook abandons: the destroy-side hooks run, the VM is destroyed, the change fails", async () => {
    const { store, provider, lock, providers } = await setup();
    const seen: string[] = [];
    const hooks = [
      hook("lb", "until-ready", async () => ({ result: "abandon", message: "the load balancer refused it" })),
      hook("lb-out", "before-destroy", async () => (seen.push("before-destroy"), { result: "abandon" })),
      hook("cleanup", "after-destroy", async () => (seen.push("after-destroy"), { result: "continue" })),
    ];
    const r = await applyPlan(plan([create("web-1")]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => hooks });
    await lock.release();
    expect(r.failed.map((f) => f.error)).toEqual(["the load balancer refused it"]);
    expect(seen).toEqual(["before-destroy", "after-destroy"]);
    expect(provider.domains.size).toBe(0);
    expect((await store.read())?.groups[0]?.instances ?? []).toEqual([]);
  });

  it("keeps a VM whose before-destroy hook abandons, recorded as running again", async () => {
    const { store, provider, lock, providers } = await setup();
    provider.plant({ name: "web-1", uuid: "web-1-uuid", group: "web", lineage: "lin", createdAt: "t", state: "running" });
    await lock.init("lin");
    await lock.putInstance("web", { name: "web-1", uuid: "web-1-uuid", host: "a", created: "t", status: "running" });
    const hooks = [hook("drain", "before-destroy", async () => ({ result: "abandon", message: "a PodDisruptionBudget allows no eviction" }))];
    const r = await applyPlan(plan([del("web-1")]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => hooks });
    await lock.release();
    expect(r.failed.map((f) => f.error)).toEqual(["kept: hook drain did not let it go: a PodDisruptionBudget allows no eviction"]);
    expect(provider.domains.has("web-1")).toBe(true);
    expect((await store.read())?.groups[0]?.instances).toMatchObject([{ name: "web-1", status: "running" }]);
  });

  it("leaves a destroyed VM recorded as deleting when its after-destroy hook does not finish, so the next apply runs it again", async () => {
    const { store, provider, lock, providers } = await setup();
    provider.plant({ name: "web-1", uuid: "web-1-uuid", group: "web", lineage: "lin", createdAt: "t", state: "running" });
    await lock.init("lin");
    await lock.putInstance("web", { name: "web-1", uuid: "web-1-uuid", host: "a", created: "t", status: "running" });
    const hooks = [hook("node", "after-destroy", async () => ({ result: "abandon", message: "the API server is down" }))];
    const r = await applyPlan(plan([del("web-1")]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => hooks });
    await lock.release();
    expect(r.failed.map((f) => f.error)).toEqual(["destroyed, but after-destroy hook node did not finish: the API server is down; the next apply runs it again"]);
    expect(provider.domains.has("web-1")).toBe(false);
    expect((await store.read())?.groups[0]?.instances).toMatchObject([{ name: "web-1", status: "deleting" }]);
  });

  it("skips before-destroy for a VM that is already gone, and still cleans up after it", async () => {
    const { lock, providers } = await setup();
    await lock.init("lin");
    await lock.putInstance("web", { name: "web-1", uuid: "web-1-uuid", host: "a", created: "t", status: "running" });
    const seen: string[] = [];
    const hooks = [
      hook("drain", "before-destroy", async () => (seen.push("before-destroy"), { result: "continue" })),
      hook("node", "after-destroy", async () => (seen.push("after-destroy"), { result: "continue" })),
    ];
    const r = await applyPlan(plan([{ ...del("web-1"), gone: true } as Change]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => hooks });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(seen).toEqual(["after-destroy"]);
  });

  it("reports what a hook that went on said (e.g. its default result taken after a failure) as a hook_message event", async () => {
    const { lock, providers } = await setup();
    const hooks = [
      hook("lb", "until-ready", async () => ({ result: "continue", message: "hook lb (launching): POST … failed; took its default result, continue" })),
      hook("quiet", "until-ready", async () => ({ result: "continue" })),
    ];
    const events: ApplyEvent[] = [];
    const r = await applyPlan(plan([create("web-1")]), { providers, lock, hostLimits: new Map(), env: {}, hooks: () => hooks }, { onEvent: (e) => void events.push(e) });
    await lock.release();
    expect(r.failed).toEqual([]);
    expect(events.filter((e) => e.type === "hook_message")).toEqual([
      { type: "hook_message", address: "web[web-1]", hook: "lb", message: "hook lb (launching): POST … failed; took its default result, continue" },
    ]);
  });
});

