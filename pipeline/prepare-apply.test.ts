import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { computePlan } from "../planner/compute-plan.js";
import { makeConfig, makeInput, simulateApply } from "../planner/testing.js";
import { FakeProvider } from "../providers/fake-provider.js";
import { GitStateStore } from "../state/git-state-store.js";
import { journalPath, prepareApply } from "./prepare-apply.js";
import { tempDir } from "../reconciler/testing.js";

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function setup(checkIn: boolean) {
  const dir = await tempDir();
  const base = makeConfig({ groups: [{ desired: 1, readiness: { ...makeConfig().groups[0]!.readiness, checkIn, timeoutSeconds: 60 } }] });
  const port = await freePort();
  const config = { ...base, file: join(dir, "premiscale.yaml"), state: { path: join(dir, "state") }, server: { host: "127.0.0.1", port, advertiseUrl: `http://10.0.2.2:${port}` } };
  const plan = computePlan(makeInput({ config }));
  const store = new GitStateStore(config.state.path);
  const lock = await store.lock("test", 0);
  return { config, plan, lock, port, providers: new Map([["a", new FakeProvider("a")]]) };
}

describe("prepareApply", () => {
  it("serves check-ins for the apply when a create waits for its VM, and stops after", async () => {
    const s = await setup(true);
    expect(s.plan.changes[0]).toMatchObject({ action: "create", ready: { timeoutSeconds: 60 } });
    const p = await prepareApply(s.config, s.plan, { providers: s.providers, lock: s.lock, env: {} });
    try {
      expect(p.readiness).toBe("own");
      expect(p.deps.hooks?.("web").map((h) => `${h.point}:${h.name}`)).toEqual(["before-create:check-in", "until-ready:check-in"]);
      expect((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status).toBe(200);
      expect(p.deps.hostLimits.get("a")).toBe(s.config.hosts[0]!.maxParallel);
    } finally {
      await p.close(true);
      await s.lock.release();
    }
    await expect(fetch(`http://127.0.0.1:${s.port}/healthz`)).rejects.toThrow();
  });

  it("serves check-ins when the plan's only change takes a stopped VM from a warm pool (maxPrepared: nothing to refill)", async () => {
    const s = await setup(true);
    const [g] = s.config.groups;
    const warmPool = { state: "stopped" as const, reuseOnScaleIn: false, maxPrepared: 2 };
    const sized = (desired: number) => ({ ...s.config, groups: [{ ...g!, desired, warmPool }] });
    const filled = simulateApply(computePlan(makeInput({ config: sized(0) })), null, makeInput({ config: sized(0) }).observations);
    const plan = computePlan(makeInput({ config: sized(1), state: filled.state, observations: filled.observations }));
    expect(plan.changes).toMatchObject([{ action: "take", start: true, ready: { timeoutSeconds: 60 } }]);
    const p = await prepareApply(sized(1), plan, { providers: s.providers, lock: s.lock, env: {} });
    try {
      expect(p.readiness).toBe("own");
      expect((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status).toBe(200);
    } finally {
      await p.close(true);
      await s.lock.release();
    }
  });

  it("starts no server when no create waits, journals every entry, rotates the journal only after an apply that ended", async () => {
    const s = await setup(false);
    const p = await prepareApply(s.config, s.plan, { providers: s.providers, lock: s.lock, env: {} });
    expect(p.readiness).toBeNull();
    expect(p.deps.hooks?.("web") ?? []).toEqual([]);
    p.deps.journal!.append({ type: "apply_begin", apply: "x", at: "2025-01-01T00:00:00Z", pid: 1, changes: 1, based_on_serial: 0 });
    await p.close(false);
    expect(readFileSync(journalPath(s.config), "utf8")).toContain('"apply_begin"');
    expect(journalPath(s.config)).toBe(join(s.config.state.path, ".premiscale", "journal.jsonl"));

    const q = await prepareApply(s.config, s.plan, { providers: s.providers, lock: s.lock, env: {} });
    await q.close(true);
    await s.lock.release();
    expect(existsSync(journalPath(s.config))).toBe(false);
    expect(readFileSync(`${journalPath(s.config)}.last`, "utf8")).toContain('"apply_begin"');
  });

  it("adds each group's own hooks after the check-in wait, and refuses an HTTP hook whose secret is not set before anything starts", async () => {
    const s = await setup(true);
    const [g] = s.config.groups;
    const config = {
      ...s.config,
      groups: [{
        ...g!,
        lifecycleHooks: [
          { name: "lb", on: "launching" as const, command: ["/bin/true"], timeoutSeconds: 30, defaultResult: "abandon" as const },
          { name: "registry", on: "terminating" as const, http: { url: "http://127.0.0.1:9/", secretEnv: "REGISTRY_SECRET" }, timeoutSeconds: 30, defaultResult: "continue" as const },
        ],
      }],
    };
    try {
      await expect(prepareApply(config, s.plan, { providers: s.providers, lock: s.lock, env: {} })).rejects.toThrow(
        /groups\[0\]\.lifecycleHooks\[1\]\.http\.secretEnv: lifecycle hook registry of group web signs its calls with the secret in REGISTRY_SECRET, which is not set/,
      );
      // Nothing was started: the check-in port is still free, and no journal was opened.
      await expect(fetch(`http://127.0.0.1:${s.port}/healthz`)).rejects.toThrow();
      expect(existsSync(journalPath(config))).toBe(false);

      const p = await prepareApply(config, s.plan, { providers: s.providers, lock: s.lock, env: { REGISTRY_SECRET: "x" } });
      try {
        expect(p.deps.hooks?.("web").map((h) => `${h.point}:${h.name}`)).toEqual(["before-create:check-in", "until-ready:check-in", "until-ready:lb", "before-destroy:registry"]);
        expect(p.deps.hooks?.("other")).toEqual(["before-create:check-in", "until-ready:check-in"].map((n) => expect.objectContaining({ name: n.split(":")[1] })));
      } finally {
        await p.close(true);
      }
    } finally {
      await s.lock.release();
    }
  });
});
