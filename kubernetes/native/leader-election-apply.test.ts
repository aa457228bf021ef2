import { ManualTimers, settleIo } from "../testing/manual-timers.js";
import { describe, expect, it } from "vitest";
import { applyPlan } from "../../applier/apply-plan.js";
import type { LifecycleHook } from "../../applier/lifecycle.js";
import { PLAN_FORMAT_VERSION, type Change, type Plan } from "../../planner/plan.js";
import { FakeProvider } from "../../providers/fake-provider.js";
import type { StateLock } from "../../state/state-store.js";
import type { Instance, State } from "../../state/types.js";
import type { KubeApi, KubeResponse } from "../kube-api.js";
import { leaderElection } from "./leader-election.js";

// How the applier consults leadership: the signal handed to onStartedLeading is applyPlan's `signal` (serve passes
// it through startAutoscalerProvider into every pass). A leader that loses the Lease while a change is in a hook
// makes no host call afterwards: the change in flight stops before creating its VM and the others never start.
// Real applyPlan and lifecycle hooks; a fake host that records its calls; state in memory; the election's clock
// driven by hand (the provider's and hook's own timers are real, and short).


/** A Lease API that can be cut off; one holder at a time is all this test needs. */
function leaseApi() {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let lease: any = null;
  let rv = 1;
  const state = { down: false };
  const api: KubeApi = {
    server: "https://fake",
    request: async (method, _path, body): Promise<KubeResponse> => {
      await Promise.resolve();
      if (state.down) throw new Error("connect ECONNREFUSED");
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const b = body as any;
      if (method === "GET") return lease ? { status: 200, body: structuredClone(lease) } : { status: 404, body: {} };
      if (method === "POST" && lease) return { status: 409, body: {} };
      if (method === "PUT" && b.metadata.resourceVersion !== lease?.metadata.resourceVersion) return { status: 409, body: {} };
      lease = { ...b, metadata: { ...b.metadata, resourceVersion: String(++rv) } };
      return { status: method === "POST" ? 201 : 200, body: structuredClone(lease) };
    },
  };
  return { api, state };
}

/** State in memory behind the StateLock port. */
function memoryLock(): StateLock & { state: State } {
  const lock = {
    state: { version: 1, lineage: "lin", serial: 0, groups: [] } as unknown as State,
    info: { ID: "l", Operation: "test" } as unknown as StateLock["info"],
    current: () => lock.state,
    init: async () => lock.state,
    putInstance: async (group: string, i: Instance) => {
      let g = lock.state.groups.find((x) => x.name === group);
      if (!g) lock.state.groups.push((g = { name: group, instances: [] } as unknown as State["groups"][number]));
      g.instances = [...g.instances.filter((x) => x.name !== i.name), i];
    },
    removeInstance: async (group: string, name: string) => {
      const g = lock.state.groups.find((x) => x.name === group);
      if (g) g.instances = g.instances.filter((x) => x.name !== name);
    },
    putHistory: async () => undefined,
    putRollout: async () => undefined,
    putTemplate: async () => undefined,
    commit: async () => "c0ffee",
    release: async () => undefined,
  };
  return lock;
}

function create(name: string): Change {
  const uuid = `${name}-0000-0000-0000-000000000000`;
  return {
    action: "create",
    address: `web[${name}]`,
    group: "web",
    name,
    uuid,
    host: "a",
    reason: "scale_out",
    detail: "desired 3 > current 0",
    vm: { name, uuid, group: "web", lineage: "lin", createdAt: "2026-12-03T00:00:00.000Z", vcpus: 1, memoryMiB: 64, network: { mode: "dhcp" }, settings: { fake: {} }, userData: "#cloud-config\n", secretEnv: [] },
  } as Change;
}

const planOf = (changes: Change[]): Plan => ({
  format_version: PLAN_FORMAT_VERSION,
  based_on: { lineage: null, serial: 0, config_digest: "d", config_commit: null },
  lineage: "lin",
  created_at: "2026-12-03T00:00:00.000Z",
  expires_at: "2026-12-03T01:00:00.000Z",
  targets: null,
  drift: [],
  warnings: [],
  errors: [],
  shortfalls: [],
  groups: [{ name: "web", current: 0, desired: changes.length, reason: "test" }],
  changes,
  summary: { add: changes.length, change: 0, destroy: 0 },
});

describe("leadership and the applier", () => {
  it("a leader that loses the Lease while a change is in its before-create hook makes no host call afterwards", async () => {
    const timers = new ManualTimers(settleIo);
    const { api, state } = leaseApi();
    const host = new FakeProvider("a");
    const lock = memoryLock();
    let inHook = 0;
    // Like the Kubernetes join: work with the API before the VM is made, ending early when the signal aborts.
    const join: LifecycleHook = {
      name: "join",
      point: "before-create",
      defaultResult: "abandon",
      timeoutMs: () => 60_000,
      run: (ctx) =>
        new Promise((resolve) => {
          inHook++;
          ctx.signal.addEventListener("abort", () => resolve({ result: "continue" }));
        }),
    };
    let applied: ReturnType<typeof applyPlan> | null = null;
    const elector = leaderElection({
      api,
      namespace: "premiscale",
      name: "premiscale",
      identity: "a",
      now: () => timers.now,
      timers,
      random: () => 0,
      onStartedLeading: (signal) => {
        applied = applyPlan(planOf([create("web-1"), create("web-2"), create("web-3")]), { providers: new Map([["a", host]]), lock, hostLimits: new Map([["a", 1]]), env: {}, hooks: () => [join] }, { parallelism: 1, signal });
      },
    });
    await timers.advance(0);
    expect(elector.leading).toBe(true);
    while (inHook === 0) await new Promise<void>((r) => setImmediate(r));

    state.down = true;
    await timers.advance(12_000); // a retry period and the renew deadline: leadership is lost
    expect(elector.leading).toBe(false);
    const r = await applied!;
    expect(host.calls).toEqual([]);
    expect(r.succeeded).toEqual([]);
    expect(r.failed.map((f) => [f.change.name, f.error])).toEqual([
      ["web-1", "apply was interrupted"],
      ["web-2", "not started: apply was interrupted"],
      ["web-3", "not started: apply was interrupted"],
    ]);
    // The change cut short stays `creating` in state: the next leader's plan cleans it up (nothing was made).
    expect(lock.state.groups[0]!.instances.map((i) => [i.name, i.status])).toEqual([["web-1", "creating"]]);
    state.down = false;
    await elector.stop();
  });
});
