import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../metrics/sqlite-store.js";
import { makeConfig } from "../planner/testing.js";
import type { ScalingSpec } from "../config/scaling.js";
import type { State } from "../state/types.js";
import { backtestScalingChanges, scalingChanges, traceFromGroupMetrics } from "./backtest.js";
import { git } from "../state/git.js";
import { tempDir } from "./testing.js";

const NOW = new Date("2026-11-23T12:00:00Z");
const scaling = (target: number): ScalingSpec => ({ policies: [{ type: "target-tracking", metric: "cpu", target }] });
const withScaling = (s: ScalingSpec | undefined) => makeConfig({ groups: [{ name: "rcweb", min: 1, max: 6, desired: 2, ...(s ? { scaling: s } : {}) }] });
const state: State = {
  version: 1,
  lineage: "l",
  serial: 3,
  groups: [{ name: "rcweb", instances: ["rcweb-a", "rcweb-b"].map((name) => ({ name, uuid: `${name}-uuid`, host: "a", status: "running" as const, created: "2026-11-23T00:00:00Z" })) }],
} as unknown as State;

describe("traceFromGroupMetrics", () => {
  it("averages each member in a bucket, then across members, and counts the members that reported as the size", () => {
    const t = traceFromGroupMetrics(
      {
        members: {
          a: { cpu: [{ at: 0, value: 10 }, { at: 30_000, value: 30 }, { at: 60_000, value: 50 }] },
          b: { cpu: [{ at: 10_000, value: 60 }] },
        },
      },
      { metrics: ["cpu"], bucketSeconds: 60, file: "x" },
    )!;
    expect(t.rows.map((r) => [r.at, r.size, r.values.cpu])).toEqual([
      [0, 2, 40],
      [60_000, 1, 50],
    ]);
    expect(t).toMatchObject({ shape: "group", hasSize: true, metrics: ["cpu"], start: 0, end: 60_000, intervalSeconds: 60 });
  });

  it("is null with fewer than two buckets of data", () => {
    expect(traceFromGroupMetrics({ members: { a: { cpu: [{ at: 5, value: 1 }] } } }, { metrics: ["cpu"], bucketSeconds: 60, file: "x" })).toBeNull();
  });
});

describe("backtestScalingChanges", () => {
  it("finds only groups whose scaling changed", () => {
    expect(scalingChanges(withScaling(scaling(60)), withScaling(scaling(60)))).toEqual([]);
    expect(scalingChanges(withScaling(scaling(60)), withScaling(scaling(90))).map((c) => [c.group.name, c.before])).toEqual([["rcweb", scaling(60)]]);
    expect(scalingChanges(withScaling(undefined), withScaling(scaling(90)))[0]?.before).toBeNull();
  });

  it("replays the members' stored metrics through the old and the new policies", async () => {
    const store = new SqliteStore({ path: join(await tempDir(), "metrics.db") });
    // Two 1-vCPU members at 80% cpu for the last 2 hours, a reading a minute.
    const start = NOW.getTime() - 2 * 3600_000;
    for (let t = start, k = 0; t <= NOW.getTime(); t += 60_000, k++) {
      store.ingest(["rcweb-a", "rcweb-b"].map((name) => ({ name, at: t, vcpus: 1, cpuTimeNs: k * 60e9 * 0.8 })));
    }
    const md = await backtestScalingChanges({
      previous: { config: withScaling(scaling(40)), commit: "aaaaaaaa" },
      current: { config: withScaling(scaling(90)), commit: "bbbbbbbb" },
      state,
      source: store,
      now: NOW,
    });
    await store.close();
    expect(md).toContain("### Simulation of group `rcweb`: before (aaaaaaa) vs after (bbbbbbb)");
    // Target 40% at 160% of load wants 4 VMs; target 90% keeps 2.
    expect(md).toContain("| size at the end | 4 | 2 | −2 |");
    expect(md).toContain("xychart-beta");
  });

  it("says why a group cannot be backtested instead of failing", async () => {
    const store = new SqliteStore({ path: ":memory:" });
    const md = await backtestScalingChanges({
      previous: { config: withScaling(scaling(40)), commit: "aaaaaaaa" },
      current: { config: withScaling(scaling(90)), commit: "bbbbbbbb" },
      state,
      source: store,
      now: NOW,
    });
    expect(md).toBe("Group `rcweb`: no backtest: fewer than two 60 s buckets of metrics in the last 6 h.");
    expect(await backtestScalingChanges({ previous: { config: withScaling(scaling(40)), commit: "a" }, current: { config: withScaling(scaling(40)), commit: "b" }, state, source: store, now: NOW })).toBeNull();
  });
});

describe("storedMetricsBacktest in a review pass", () => {
  it("adds the backtest of the old and the new policies to plan.md when a commit changes a group's scaling", async () => {
    const { ConfigRepo } = await import("./config-repo.js");
    const { FakeProvider } = await import("../providers/fake-provider.js");
    const { localSteps } = await import("./steps.js");
    const { reconcileOnce } = await import("./reconcile.js");
    const { storedMetricsBacktest } = await import("./backtest.js");
    const { makeRemote, pushUserCommit, remoteFile, userClone } = await import("./testing.js");
    const db = join(await tempDir(), "metrics.db");
    const yaml = (target: number) => `version: v1alpha1
state:
  path: ./premiscale-state
metrics:
  store: { type: sqlite, path: ${db} }
hosts:
  - name: kvm1
    uri: test:///default
groups:
  - name: rcweb
    min: 2
    max: 6
    hosts: [kvm1]
    readiness: { checkIn: false }
    template: { memoryMiB: 128, disk: { baseImage: base.qcow2 } }
    scaling:
      warmupSeconds: 0
      delays: { scaleUpCooldownSeconds: 0 }
      policies:
        - { type: target-tracking, metric: cpu, target: ${target} }
`;
    const remote = await makeRemote({ "premiscale.yaml": yaml(90) });
    const provider = new FakeProvider("kvm1");
    const repo = new ConfigRepo({ source: remote, workDir: join(await tempDir(), "work") });
    const deps = { repo, lock: null, steps: localSteps({ makeProvider: () => provider, env: {} }) };
    expect((await reconcileOnce(deps, { mode: "auto" })).outcome).toBe("applied");
    const members = [...provider.domains.keys()];
    expect(members).toHaveLength(2);
    // Two hours of 80% cpu on both members, a reading a minute, up to now.
    const store = new SqliteStore({ path: db });
    const end = Date.now();
    for (let t = end - 2 * 3600_000, k = 0; t <= end; t += 60_000, k++) store.ingest(members.map((name) => ({ name, at: t, vcpus: 1, cpuTimeNs: k * 60e9 * 0.8 })));
    await store.close();

    const before = (await git(remote, ["rev-parse", "main"])).stdout.trim();
    await pushUserCommit(await userClone(remote), { "premiscale.yaml": yaml(40) }, "rcweb: target 40");
    const r = await reconcileOnce(deps, { mode: "review", backtest: storedMetricsBacktest("premiscale.yaml", {}) });
    expect(r.outcome).toBe("published");
    const md = (await remoteFile(remote, r.branch!, ".premiscale/plan.md"))!;
    expect(md).toContain("**Plan: 2 to add, 0 to change, 0 to destroy.**");
    expect(md).toContain("#### Policy backtest");
    // "before" is the config as it was before the commit that changed it (here: the state commit under it).
    expect(md).toContain(`### Simulation of group \`rcweb\`: before (${before.slice(0, 7)}) vs after (${(await repo.head()).slice(0, 7)})`);
    expect(md).toContain("| size at the end | 2 | 4 | +2 |");
  });
});
