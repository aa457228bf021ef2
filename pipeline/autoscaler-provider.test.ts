// One pass of the node groups' loop over a FakeProvider and real git state: what it records for cluster-autoscaler
// (failed instances), what it commits, and what it clears. The Kubernetes side (tokens, Nodes) is the hooks'
// business, replaced here by hooks the tests control; test/node-groups.kubernetes.test.ts runs the real ones.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { LifecycleHook } from "../applier/lifecycle.js";
import type { WarmPoolConfig } from "../config/types.js";
import { CloudProvider, type ViewInstance } from "../kubernetes/cloud-provider.js";
import { IntentStore } from "../kubernetes/intent-store.js";
import { StateInstanceView } from "../kubernetes/state-view.js";
import { makeConfig } from "../planner/testing.js";
import { FakeProvider } from "../providers/fake-provider.js";
import { tempDir } from "../reconciler/testing.js";
import { git } from "../state/git.js";
import { GitStateStore } from "../state/git-state-store.js";
import { runAutoscalerPass, type PassDeps } from "./autoscaler-provider.js";

async function setup(o: { memoryMiB?: number; hooks?: (group: string) => LifecycleHook[]; warmPool?: WarmPoolConfig } = {}) {
  const dir = await tempDir();
  const base = makeConfig({
    groups: [{ name: "workers", desired: 0, template: { memoryMiB: o.memoryMiB ?? 128 }, kubernetes: { join: "kubeadm", labels: {}, taints: [], maxPods: 110, reservedCpuMillis: 0, reservedMemoryMiB: 0, tokenGroups: ["system:bootstrappers:kubeadm:default-node-token"], tokenTtlSeconds: 900, autoscaling: { maxNodeProvisionSeconds: 960 } }, ...(o.warmPool ? { warmPool: o.warmPool } : {}) }],
  });
  const config = {
    ...base,
    file: join(dir, "premiscale.yaml"),
    state: { path: join(dir, "state") },
    kubernetes: { kubeconfig: join(dir, "kubeconfig"), callTimeoutSeconds: 10, externalGrpc: { host: "127.0.0.1", port: 0, tls: null }, debounceMs: 0, resyncSeconds: 60 },
  };
  const store = await IntentStore.open(join(config.state.path, ".premiscale"));
  const inFlight = new Map<string, ViewInstance[]>();
  const host = new FakeProvider("a");
  const provider = new CloudProvider({ config, store, view: new StateInstanceView(config.state.path, () => inFlight) });
  const deps: PassDeps = { config, providers: new Map([["a", host]]), store, inFlight, env: {}, hooks: o.hooks ?? (() => []) };
  const pass = () => runAutoscalerPass(deps, "intent", new AbortController().signal);
  const state = async () => (await new GitStateStore(config.state.path).read())?.groups.find((g) => g.name === "workers")?.instances ?? [];
  const lastCommit = async () => (await git(config.state.path, ["log", "-1", "--format=%B"])).stdout;
  return { dir, config, store, provider, host, pass, state, lastCommit };
}

describe("a pass of the node groups' loop", () => {
  it("makes the VMs cluster-autoscaler asked for, commits with its calls as the reason, and clears them", async () => {
    const s = await setup();
    await s.provider.increaseSize("workers", 1);
    await s.provider.increaseSize("workers", 1);
    const r = await s.pass();
    expect(r).toMatchObject({ outcome: "applied", added: 2, destroyed: 0, failed: [], recorded: [] });
    expect((await s.state()).map((i) => i.status)).toEqual(["running", "running"]);
    expect(await s.lastCommit()).toContain("workers: 0 → 2 (cluster-autoscaler: IncreaseSize +2)");
    expect(s.store.get("workers")).toMatchObject({ target: 2, pending: [] });
    expect(await s.pass()).toMatchObject({ outcome: "no_changes", added: 0 });
  });

  it("destroys exactly the VM DeleteNodes named and forgets it once gone", async () => {
    const s = await setup();
    await s.provider.increaseSize("workers", 3);
    await s.pass();
    const [, victim] = await s.state();
    await s.provider.deleteNodes("workers", [{ providerID: `premiscale://workers/${victim!.uuid}`, name: victim!.name }]);
    const r = await s.pass();
    expect(r).toMatchObject({ outcome: "applied", destroyed: 1 });
    expect(s.host.calls.filter((c) => c.startsWith("destroy"))).toEqual([`destroy ${victim!.name}`]);
    expect((await s.state()).map((i) => i.name)).not.toContain(victim!.name);
    expect(await s.lastCommit()).toContain(`workers: 3 → 2 (cluster-autoscaler: DeleteNodes ${victim!.name})`);
    expect(s.store.get("workers")).toMatchObject({ target: 2, remove: [], pending: [] });
  });

  it("never shows cluster-autoscaler a warm pool's VMs, and destroys the node DeleteNodes named even with reuseOnScaleIn", async () => {
    const s = await setup({ warmPool: { maxPrepared: 3, state: "running", reuseOnScaleIn: true } });
    await s.provider.increaseSize("workers", 2);
    expect(await s.pass()).toMatchObject({ outcome: "applied", failed: [] });
    const members = (await s.state()).filter((i) => i.pool !== "warm");
    expect([members.length, (await s.state()).filter((i) => i.pool === "warm").length]).toEqual([2, 1]);
    expect((await s.provider.nodes("workers")).map((n) => n.id).sort()).toEqual(members.map((i) => `premiscale://workers/${i.uuid}`).sort());
    expect(await s.provider.targetSize("workers")).toBe(2);

    // cluster-autoscaler drained and deleted that Node: the VM goes, it does not wait in the pool to join again.
    const [victim, kept] = members as [(typeof members)[0], (typeof members)[0]];
    await s.provider.deleteNodes("workers", [{ providerID: `premiscale://workers/${victim.uuid}`, name: victim.name }]);
    expect(await s.pass()).toMatchObject({ outcome: "applied" });
    expect(s.host.calls).toContain(`destroy ${victim.name}`);
    expect((await s.provider.nodes("workers")).map((n) => n.id)).toEqual([`premiscale://workers/${kept.uuid}`]);
    expect(s.store.get("workers")).toMatchObject({ target: 1, remove: [], pending: [] });
  });

  it("records what no host has room for as OutOfResources failed instances, and makes no VM for them", async () => {
    const s = await setup({ memoryMiB: 4_000_000 });
    await s.provider.increaseSize("workers", 2);
    const r = await s.pass();
    expect(r.outcome).toBe("partial");
    expect(r.recorded.map((x) => [x.errorClass, x.errorCode])).toEqual([
      ["OutOfResources", "premiscale.NoRoom"],
      ["OutOfResources", "premiscale.NoRoom"],
    ]);
    expect(r.recorded[0]!.message).toMatch(/^no host has room for a VM of group workers: host a: .* MiB free memory < 4000000 MiB needed/);
    expect((await s.provider.nodes("workers")).map((i) => i.error?.class)).toEqual(["OutOfResources", "OutOfResources"]);
    expect(s.host.calls).toEqual([]);
    // The next pass does not try again: those slots are cluster-autoscaler's to delete.
    expect(await s.pass()).toMatchObject({ outcome: "no_changes", recorded: [] });
  });

  it("records a VM given up at until-ready as a failed create (Other), and does not make another for it", async () => {
    const never: LifecycleHook = {
      name: "kubernetes-node",
      point: "until-ready",
      defaultResult: "abandon",
      timeoutMs: () => 10_000,
      run: async (ctx) => ({ result: "abandon", message: `the node of ${ctx.vm.address} did not become Ready within 5 s (readiness.timeoutSeconds)` }),
    };
    const s = await setup({ hooks: () => [never] });
    await s.provider.increaseSize("workers", 1);
    const r = await s.pass();
    expect(r.outcome).toBe("applied"); // the failure is reported to cluster-autoscaler, not retried here
    expect(r.recorded).toMatchObject([{ errorClass: "Other", errorCode: "premiscale.NodeNotReady" }]);
    expect(await s.state()).toEqual([]);
    const [failed] = await s.provider.nodes("workers");
    expect(failed).toMatchObject({ state: "creating", error: { class: "Other", code: "premiscale.NodeNotReady" } });
    expect(await s.pass()).toMatchObject({ outcome: "no_changes" });
    // cluster-autoscaler's clean-up takes the slot back.
    await s.provider.deleteNodes("workers", [{ providerID: failed!.id, name: failed!.id }]);
    expect(await s.provider.targetSize("workers")).toBe(0);
  });

  it("says the state is locked instead of waiting forever, and asks for another pass", async () => {
    const s = await setup();
    const held = await new GitStateStore(s.config.state.path).lock("someone else", 0);
    try {
      const r = await runAutoscalerPass({ ...(await setup()), config: s.config, providers: new Map([["a", s.host]]), store: s.store, inFlight: new Map(), env: {}, lockTimeoutMs: 100, hooks: () => [] }, "intent", new AbortController().signal);
      expect(r.outcome).toBe("locked");
      expect(r.error).toMatch(/state is locked by .* \(someone else/);
    } finally {
      await held.release();
    }
  });
});
