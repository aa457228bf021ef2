/**
 * A real apply against in-memory hosts, for the view tests and the terminal demo: a plan computed by the planner
 * (group `web` scaled up, group `batch` scaled to zero), FakeProviders that report every provider step with a
 * delay, and state in a temporary git repository.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyPlan, type ApplyEvent, type ApplyResult } from "../../../applier/apply-plan.js";
import { computePlan } from "../../../planner/compute-plan.js";
import type { Plan } from "../../../planner/plan.js";
import { makeConfig, makeDomain, makeInput, makeInstance, makeObservation, makeState } from "../../../planner/testing.js";
import { FakeProvider } from "../../../providers/fake-provider.js";
import { GitStateStore } from "../../../state/git-state-store.js";

/** The demo plan: `adds` new `web` VMs and `destroys` `batch` VMs removed, spread over `hosts`. */
export function demoPlan(opts: { adds: number; destroys: number; hosts?: string[] }): Plan {
  const hosts = opts.hosts ?? ["kvm1", "kvm2"];
  const batch = [...Array(opts.destroys).keys()].map((i) => makeInstance(`batch-${String(i).padStart(8, "0")}`, hosts[i % hosts.length]!));
  const config = makeConfig({
    hosts,
    groups: [
      { name: "web", desired: opts.adds, max: Math.max(10, opts.adds) },
      { name: "batch", desired: 0, max: Math.max(10, opts.destroys) },
    ],
  });
  return computePlan(
    makeInput({
      config,
      state: makeState({ batch }),
      observations: hosts.map((h) => makeObservation(h, { domains: batch.filter((i) => i.host === h).map((i) => makeDomain(i.name)) })),
    }),
  );
}

/**
 * Applies `plan` with FakeProviders (one per host, each `stepDelayMs` per step; creates of the VM names
 * in `failNames` fail) and state in a temporary git repository, which is removed afterwards.
 */
export async function runDemoApply(
  plan: Plan,
  opts: { stepDelayMs?: number; failNames?: string[]; parallelism?: number; hostLimit?: number; onEvent?: (e: ApplyEvent) => void } = {},
): Promise<ApplyResult> {
  const root = await mkdtemp(join(tmpdir(), "premiscale-tui-"));
  try {
    const store = new GitStateStore(join(root, "state"));
    const lock = await store.lock("apply", 1000);
    const hosts = [...new Set(plan.changes.map((c) => c.host))];
    const providers = new Map(
      hosts.map((h) => {
        const p = new FakeProvider(h);
        p.stepDelayMs = opts.stepDelayMs ?? 0;
        for (const n of opts.failNames ?? []) p.failCreate.add(n);
        for (const c of plan.changes) {
          if (c.action === "delete" && c.host === h) p.plant({ name: c.name, uuid: c.uuid, group: c.group, lineage: plan.lineage, createdAt: "2025-01-01T00:00:00.000Z", state: "running" });
        }
        return [h, p];
      }),
    );
    try {
      return await applyPlan(
        plan,
        { providers, lock, hostLimits: new Map(hosts.map((h) => [h, opts.hostLimit ?? 2])), env: {} },
        { parallelism: opts.parallelism ?? 4, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) },
      );
    } finally {
      await lock.release();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
