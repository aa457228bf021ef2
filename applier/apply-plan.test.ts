import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { simpleGit } from "simple-git";
import { describe, expect, it } from "vitest";
import type { Change, Plan } from "../planner/plan.js";
import { FakeProvider } from "../providers/fake-provider.js";
import { GitStateStore } from "../state/git-state-store.js";
import { applyPlan, type ApplyEvent } from "./apply-plan.js";

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
      accelerator: "qemu", pool: "p", baseImage: "base.qcow2", diskSizeGiB: 1, mac: "52:54:00:00:00:01",
      nic: { type: "user" }, networkConfig: "version: 2\n", userData, secretEnv,
    },
  };
}

function planOf(changes: Change[]): Plan {
  return {
    format_version: "1.0",
    based_on: { lineage: null, serial: 0, config_digest: "d", config_commit: null },
    lineage: "lin",
    created_at: "2026-11-23T00:00:00.000Z",
    expires_at: "2026-11-23T01:00:00.000Z",
    targets: null,
    drift: [],
    warnings: [],
    errors: [],
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
    expect((await simpleGit(dir).log()).total).toBe(1);
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
    expect(r.failed).toEqual([{ change: expect.objectContaining({ name: "web-2" }), error: "disk of web-2 failed" }]);
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
