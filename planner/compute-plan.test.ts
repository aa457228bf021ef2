import { describe, expect, it } from "vitest";
import { computePlan } from "./compute-plan.js";
import type { Decision } from "../policies/decision.js";
import type { Change } from "./plan.js";
import {
  GiB,
  TEST_LINEAGE,
  TEST_NOW,
  makeConfig,
  makeDomain,
  makeInput,
  makeInstance,
  makeObservation,
  makeState,
} from "./testing.js";

const creates = (changes: Change[]) => changes.filter((c) => c.action === "create");
const deletes = (changes: Change[]) => changes.filter((c) => c.action === "delete");

describe("computePlan", () => {
  it("plans the first VMs of a group when there is no state yet, stamped with the new lineage", () => {
    const config = makeConfig({ groups: [{ desired: 2 }] });
    const plan = computePlan(makeInput({ config }));
    expect(plan.lineage).toBe("22222222-2222-4222-8222-222222222222");
    expect(plan.based_on).toEqual({ lineage: null, serial: 0, config_digest: "sha256:test", config_commit: null });
    expect(plan.summary).toEqual({ add: 2, change: 0, destroy: 0 });
    // Once made, every member runs the config's template: the plan proposes recording it (what a failed roll-out goes back to).
    expect(plan.groups).toEqual([{ name: "web", current: 0, desired: 2, reason: "desired: 2 in config", template: { ...config.groups[0]!.template, digest: expect.stringMatching(/^sha256:[0-9a-f]{12}$/) } }]);
    const [first] = creates(plan.changes);
    expect(first).toMatchObject({
      action: "create",
      name: "web-00000001",
      address: "web[web-00000001]",
      uuid: "00000001-0000-4000-8000-000000000001",
      host: "a",
      reason: "scale_out",
      detail: "desired 2 > current 0 (desired: 2 in config)",
      vm: {
        lineage: plan.lineage,
        createdAt: TEST_NOW.toISOString(),
        vcpus: 1,
        memoryMiB: 128,
        network: { mode: "dhcp" },
        settings: { test: { pool: "default", baseImage: "base.qcow2", diskSizeGiB: 1 } },
        userData: "#cloud-config\n",
      },
    });
  });

  it("stamps the plan with its creation time and an expiry ttl seconds later", () => {
    const plan = computePlan(makeInput({ config: makeConfig(), ttlSeconds: 60 }));
    expect(plan.created_at).toBe("2025-06-01T12:00:00.000Z");
    expect(plan.expires_at).toBe("2025-06-01T12:01:00.000Z");
    expect(computePlan(makeInput({ config: makeConfig() })).expires_at).toBe("2025-06-01T13:00:00.000Z");
  });

  it("keeps placeholders and secret names in the planned user-data and carries the adapter's settings for the chosen host", () => {
    const config = makeConfig({
      hosts: [{ name: "a" }],
      groups: [{ template: { userData: "token: ${env:TOKEN}\n", secretEnv: ["TOKEN"] } }],
    });
    const obs = makeObservation("a", { capacity: { pool: { name: "vms", capacityBytes: 10 * GiB, availableBytes: 10 * GiB } } });
    const [c] = creates(computePlan(makeInput({ config, observations: [obs] })).changes);
    expect(c?.action === "create" && c.vm).toMatchObject({
      userData: "token: ${env:TOKEN}\n",
      secretEnv: ["TOKEN"],
      network: { mode: "dhcp" },
      settings: { test: { pool: "vms", baseImage: "base.qcow2", diskSizeGiB: 1 } },
    });
  });

  it("reports no changes when every instance is running and the group is at its desired size", () => {
    const config = makeConfig({ groups: [{ desired: 1 }] });
    const state = makeState({ web: [makeInstance("web-1", "a")] });
    const plan = computePlan(makeInput({ config, state, observations: [makeObservation("a", { domains: [makeDomain("web-1")] })] }));
    expect(plan.changes).toEqual([]);
    expect(plan.drift).toEqual([]);
    expect(plan.based_on).toMatchObject({ lineage: TEST_LINEAGE, serial: 3 });
    expect(plan.lineage).toBe(TEST_LINEAGE);
  });

  it("counts paused domains as healthy", () => {
    const config = makeConfig({ groups: [{ desired: 1 }] });
    const state = makeState({ web: [makeInstance("web-1", "a")] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1", { state: "paused" })] });
    expect(computePlan(makeInput({ config, state, observations: [obs] })).changes).toEqual([]);
  });

  it("scales out by the difference between desired and current", () => {
    const config = makeConfig({ groups: [{ desired: 3 }] });
    const state = makeState({ web: [makeInstance("web-1", "a")] });
    const plan = computePlan(makeInput({ config, state, observations: [makeObservation("a", { domains: [makeDomain("web-1")] })] }));
    expect(plan.summary).toEqual({ add: 2, change: 0, destroy: 0 });
    expect(plan.groups[0]).toMatchObject({ current: 1, desired: 3 });
  });

  it("scales in from the host holding the most instances of the group, newest first", () => {
    const config = makeConfig({ hosts: ["a", "b"], groups: [{ desired: 3 }] });
    const state = makeState({
      web: [
        makeInstance("web-b2", "b", { created: "2025-01-01T00:00:00Z" }),
        makeInstance("web-a1", "a", { created: "2025-01-01T00:00:00Z" }),
        makeInstance("web-a2", "a", { created: "2025-03-01T00:00:00Z" }),
        makeInstance("web-a3", "a", { created: "2025-02-01T00:00:00Z" }),
        makeInstance("web-b1", "b", { created: "2025-05-01T00:00:00Z" }),
      ],
    });
    const observations = [
      makeObservation("a", { domains: ["web-a1", "web-a2", "web-a3"].map((n) => makeDomain(n)) }),
      makeObservation("b", { domains: [makeDomain("web-b1"), makeDomain("web-b2")] }),
    ];
    const plan = computePlan(makeInput({ config, state, observations }));
    // a has 3: take its newest (a2); then a and b hold 2 each: the newest of those four is b1.
    expect(deletes(plan.changes).map((c) => c.name)).toEqual(["web-a2", "web-b1"]);
    expect(deletes(plan.changes)[0]).toMatchObject({ reason: "scale_in", gone: false, detail: "desired 3 < current 5 (desired: 3 in config)" });
  });

  it("breaks ties between equally new victims by name", () => {
    const config = makeConfig({ groups: [{ desired: 1 }] });
    const state = makeState({ web: [makeInstance("web-b", "a"), makeInstance("web-a", "a")] });
    const obs = makeObservation("a", { domains: [makeDomain("web-a"), makeDomain("web-b")] });
    expect(deletes(computePlan(makeInput({ config, state, observations: [obs] })).changes).map((c) => c.name)).toEqual(["web-a"]);
  });

  it("replaces an instance whose domain is missing: drift, a delete of what is left, and a new VM", () => {
    const config = makeConfig({ groups: [{ desired: 1 }] });
    const state = makeState({ web: [makeInstance("web-1", "a")] });
    const plan = computePlan(makeInput({ config, state }));
    expect(plan.drift).toEqual([{ kind: "missing", group: "web", name: "web-1", host: "a", detail: "no longer exists on the host" }]);
    expect(plan.changes.map((c) => [c.action, c.name, c.reason])).toEqual([
      ["delete", "web-1", "replace_missing"],
      ["create", "web-00000001", "replace_missing"],
    ]);
    expect(deletes(plan.changes)[0]).toMatchObject({ gone: true });
    expect(plan.groups[0]).toMatchObject({ current: 0, desired: 1 });
  });

  it.each([
    ["whose domain exists", true],
    ["whose domain was never defined", false],
  ] as const)("removes and replaces a half-created instance %s", (_, defined) => {
    const config = makeConfig({ groups: [{ desired: 1 }] });
    const state = makeState({ web: [makeInstance("web-1", "a", { status: "creating" })] });
    const obs = makeObservation("a", { domains: defined ? [makeDomain("web-1")] : [] });
    const plan = computePlan(makeInput({ config, state, observations: [obs] }));
    expect(plan.drift).toEqual([]);
    expect(plan.warnings).toEqual([expect.stringMatching(/web\[web-1\] on host a was left half-created/)]);
    expect(plan.changes.map((c) => [c.action, c.name, c.reason])).toEqual([
      ["delete", "web-1", "interrupted_create"],
      ["create", "web-00000001", "interrupted_create"],
    ]);
    expect(deletes(plan.changes)[0]).toMatchObject({ gone: !defined });
  });

  it.each([
    ["whose domain still exists", true],
    ["whose domain is already undefined", false],
  ] as const)("finishes a half-deleted instance %s without replacing it", (_, defined) => {
    const config = makeConfig({ groups: [{ desired: 1 }] });
    const state = makeState({ web: [makeInstance("web-1", "a"), makeInstance("web-2", "a", { status: "deleting" })] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1"), ...(defined ? [makeDomain("web-2", { state: "stopped" })] : [])] });
    const plan = computePlan(makeInput({ config, state, observations: [obs] }));
    expect(plan.drift).toEqual([]);
    expect(plan.warnings).toEqual([expect.stringMatching(/web\[web-2\] on host a was left half-deleted/)]);
    expect(plan.changes.map((c) => [c.action, c.name, c.reason])).toEqual([["delete", "web-2", "interrupted_delete"]]);
    expect(deletes(plan.changes)[0]).toMatchObject({ gone: !defined });
    expect(plan.groups[0]).toMatchObject({ current: 1, desired: 1 });
  });

  describe("heartbeats", () => {
    const now = new Date("2025-01-01T01:00:00.000Z");
    const hb = { checkIn: true, timeoutSeconds: 900, heartbeatSeconds: 30, unhealthyAfterSeconds: 180 };
    const eight = Array.from({ length: 8 }, (_, k) => makeInstance(`web-${k}`, "a"));
    const observed = makeObservation("a", { domains: eight.map((i) => makeDomain(i.name)) });
    const plan = (lastSeen: [string, string | null][]) =>
      computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 8, readiness: hb }] }), state: makeState({ web: eight }), observations: [observed], now, lastSeen: new Map(lastSeen) }));

    it("replaces a VM not heard from for longer than unhealthyAfterSeconds, and says how long", () => {
      const p = plan(eight.map((i) => [i.name, i.name === "web-3" ? "2025-01-01T00:55:00.000Z" : "2025-01-01T00:59:50.000Z"]));
      expect(p.drift).toMatchObject([{ kind: "unhealthy", name: "web-3", detail: expect.stringMatching(/not heard from for 300s/) }]);
      expect(p.changes.map((c) => [c.action, c.reason, c.action === "delete" ? c.name : c.detail])).toEqual([
        ["delete", "replace_unhealthy", "web-3"],
        ["create", "replace_unhealthy", "replaces web-3"],
      ]);
    });

    it("replaces at most a quarter of the group per plan, the longest silent first", () => {
      const p = plan(eight.map((i, k) => [i.name, k < 5 ? `2025-01-01T00:5${k}:00.000Z` : "2025-01-01T00:59:50.000Z"]));
      expect(p.changes.filter((c) => c.action === "delete").map((c) => c.name)).toEqual(["web-0", "web-1"]);
      expect(p.warnings).toContain("group web: 5 VMs are unhealthy; replacing 2 now (a quarter of the group per plan)");
    });

    it("judges nothing when no member was ever heard from (the heartbeats do not reach premiscale)", () => {
      const p = plan(eight.map((i) => [i.name, null]));
      expect(p.changes).toEqual([]);
      expect(p.warnings).toEqual([expect.stringMatching(/no member has ever sent a heartbeat/)]);
    });
  });

  it("leaves a suspended group exactly as it is, leftovers included", () => {
    const config = makeConfig({ groups: [{ desired: 3, suspend: true }] });
    const state = makeState({ web: [makeInstance("web-1", "a"), makeInstance("web-2", "a", { status: "creating" })] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1", { state: "stopped" }), makeDomain("web-9")] });
    const plan = computePlan(makeInput({ config, state, observations: [obs] }));
    expect(plan.changes).toEqual([]);
    expect(plan.groups).toEqual([{ name: "web", current: 2, desired: 2, reason: "suspended" }]);
    expect(plan.warnings).toContain("group web is suspended (suspend: true): left as it is");
  });

  it("asks the group's decision source, passing the members it counts and their readiness", () => {
    const config = makeConfig({ groups: [{ scaling: { policies: [{ type: "target-tracking", metric: "cpu", target: 50 }] } }] });
    const state = makeState({ web: [makeInstance("web-1", "a"), makeInstance("web-2", "a"), makeInstance("web-3", "a")] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1"), makeDomain("web-2"), makeDomain("web-3", { state: "stopped" })] });
    const seen: unknown[] = [];
    const decision = { group: "web", desired: 4, code: "target_tracking" as const, reason: "avg cpu 90% > target 50% over 1m", details: { current: 2, recommendation: 4, stabilized: 4, limited: 4, min: 0, max: 10, policies: [], retainSeconds: 600 } };
    const plan = computePlan(makeInput({ config, state, observations: [obs], decide: (g, members) => (seen.push([g.name, members]), decision) }));
    expect(seen).toEqual([["web", [{ name: "web-1", createdAt: "2025-01-01T00:00:00.000Z", ready: true }, { name: "web-2", createdAt: "2025-01-01T00:00:00.000Z", ready: true }]]]);
    expect(plan.groups[0]).toEqual({ name: "web", current: 2, desired: 4, reason: decision.reason, decision });
    expect(plan.changes.filter((c) => c.action === "create").map((c) => c.detail)).toEqual(["replaces web-3", expect.stringMatching(/desired 4 > current 2/)]);
  });

  it.each(["stopped", "crashed"] as const)("replaces an instance whose domain is %s", (state) => {
    const config = makeConfig({ groups: [{ desired: 1 }] });
    const st = makeState({ web: [makeInstance("web-1", "a")] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1", { state })] });
    const plan = computePlan(makeInput({ config, state: st, observations: [obs] }));
    expect(plan.drift).toMatchObject([{ kind: "stopped", name: "web-1", detail: `is ${state}` }]);
    expect(plan.changes.map((c) => [c.action, c.reason])).toEqual([
      ["delete", "replace_stopped"],
      ["create", "replace_stopped"],
    ]);
    expect(deletes(plan.changes)[0]).toMatchObject({ gone: false });
  });

  it("deletes a domain of our lineage that state does not know as an orphan", () => {
    const config = makeConfig({ groups: [{ desired: 1 }] });
    const state = makeState({ web: [makeInstance("web-1", "a")] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1"), makeDomain("web-9", { uuid: "u9" })] });
    const plan = computePlan(makeInput({ config, state, observations: [obs] }));
    expect(plan.drift).toMatchObject([{ kind: "not_in_state", name: "web-9", host: "a" }]);
    expect(plan.changes).toMatchObject([{ action: "delete", name: "web-9", uuid: "u9", reason: "orphan", gone: false }]);
  });

  it("treats domains of the new lineage as orphans when there is no state yet", () => {
    const config = makeConfig({ groups: [{ desired: 0 }] });
    const obs = makeObservation("a", { domains: [makeDomain("web-9", { lineage: "22222222-2222-4222-8222-222222222222" })] });
    expect(computePlan(makeInput({ config, observations: [obs] })).changes).toMatchObject([{ name: "web-9", reason: "orphan" }]);
  });

  it("reports a domain of another lineage and never touches it", () => {
    const config = makeConfig({ groups: [{ desired: 0 }] });
    const obs = makeObservation("a", { domains: [makeDomain("web-x", { lineage: "other" })] });
    const plan = computePlan(makeInput({ config, state: makeState(), observations: [obs] }));
    expect(plan.changes).toEqual([]);
    expect(plan.drift).toMatchObject([{ kind: "foreign_lineage", name: "web-x" }]);
    expect(plan.warnings).toEqual([`domain web-x on host a belongs to state lineage other, not ${TEST_LINEAGE}: left untouched`]);
  });

  it("does not even mention another premiscale's VMs on a shared host when their group is not in this config", () => {
    const config = makeConfig({ groups: [{ desired: 0 }] });
    const obs = makeObservation("a", { domains: [makeDomain("db-x", { group: "db", lineage: "other" })] });
    const plan = computePlan(makeInput({ config, state: makeState(), observations: [obs] }));
    expect([plan.changes, plan.drift, plan.warnings]).toEqual([[], [], []]);
  });

  it("leaves an orphan of a group that is not in config alone, reporting it as drift", () => {
    const config = makeConfig({ groups: [{ desired: 0 }] });
    const obs = makeObservation("a", { domains: [makeDomain("old-1", { group: "old" })] });
    const plan = computePlan(makeInput({ config, state: makeState(), observations: [obs] }));
    expect(plan.changes).toEqual([]);
    expect(plan.drift).toMatchObject([{ kind: "not_in_state", group: "old", name: "old-1" }]);
  });

  it("warns about a group that is in state but no longer in config, and leaves it alone", () => {
    const config = makeConfig({ groups: [{ desired: 0 }] });
    const state = makeState({ old: [makeInstance("old-1", "a")] });
    const plan = computePlan(makeInput({ config, state, observations: [makeObservation("a", { domains: [makeDomain("old-1")] })] }));
    expect(plan.changes).toEqual([]);
    expect(plan.warnings).toEqual(['group "old" is in state (1 instance) but not in config: left untouched']);
  });

  it("counts instances on an unreachable host as present, warns, and never deletes or places there", () => {
    const config = makeConfig({ hosts: ["a", "b"], groups: [{ desired: 2 }] });
    const state = makeState({ web: [makeInstance("web-1", "a"), makeInstance("web-2", "a")] });
    const observations = [makeObservation("a", { unreachable: "connection refused" }), makeObservation("b")];
    const plan = computePlan(makeInput({ config, state, observations }));
    expect(plan.changes).toEqual([]);
    expect(plan.groups[0]).toMatchObject({ current: 2, desired: 2 });
    expect(plan.warnings).toEqual(["host a unreachable: 2 instances of group web not checked"]);

    const scaledIn = computePlan(makeInput({ config: makeConfig({ hosts: ["a", "b"], groups: [{ desired: 1 }] }), state, observations }));
    expect(scaledIn.changes).toEqual([]);
    expect(scaledIn.warnings).toContain("group web: 1 more instance should go, but the rest are on hosts that were not checked");

    const scaledOut = computePlan(makeInput({ config: makeConfig({ hosts: ["a", "b"], groups: [{ desired: 4 }] }), state, observations }));
    expect(creates(scaledOut.changes).map((c) => c.host)).toEqual(["b", "b"]);
  });

  it("places what fits, reports the rest of the group as its shortfall with each host's reason, and keeps its deletes", () => {
    const config = makeConfig({
      hosts: ["a", "b", "c"],
      groups: [{ desired: 3, template: { memoryMiB: 128, disk: { baseImage: "x.qcow2", sizeGiB: 1 } } }],
    });
    const state = makeState({ web: [makeInstance("web-1", "a")] });
    const observations = [
      makeObservation("a", { capacity: { freeMemoryMiB: 512 + 128 + 100, volumes: ["x.qcow2"] } }),
      makeObservation("b", { unreachable: "timeout" }),
      makeObservation("c"),
    ];
    const plan = computePlan(makeInput({ config, state, observations }));
    expect(plan.errors).toEqual([]);
    expect(plan.shortfalls).toEqual([
      {
        group: "web",
        wanted: 3,
        missing: 2,
        reason: 'host a: 100 MiB free memory < 128 MiB needed; host b: unreachable; host c: base image "x.qcow2" not in pool "default"',
      },
    ]);
    expect(plan.changes.map((c) => [c.action, c.reason, c.host])).toEqual([
      ["delete", "replace_missing", "a"],
      ["create", "replace_missing", "a"],
    ]);
    expect(plan.summary).toEqual({ add: 1, change: 0, destroy: 1 });
  });

  it("names missing vCPUs, disk and pool when a VM does not fit", () => {
    const config = makeConfig({ hosts: ["a", "b", "c"], groups: [{ desired: 1, template: { vcpus: 4, disk: { baseImage: "base.qcow2", sizeGiB: 20 } } }] });
    const observations = [
      makeObservation("a", { capacity: { cpus: 1, allocatedVcpus: 1 } }),
      makeObservation("b", { capacity: { pool: { name: "default", capacityBytes: 20 * GiB, availableBytes: 10.5 * GiB } } }),
      makeObservation("c", { capacity: { pool: null } }),
    ];
    expect(computePlan(makeInput({ config, observations })).shortfalls).toEqual([
      {
        group: "web",
        wanted: 1,
        missing: 1,
        reason: 'host a: 3 free vCPUs < 4 needed; host b: 10.5 GiB free in pool "default" < 20 GiB needed; host c: pool "default" not found',
      },
    ]);
  });

  it("counts no room freed by deleting a VM that is not running", () => {
    const config = makeConfig({ groups: [{ desired: 1, template: { memoryMiB: 1000 } }] });
    const state = makeState({ web: [makeInstance("web-1", "a", { memoryMiB: 1000, vcpus: 1 })] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1", { state: "stopped" })], capacity: { freeMemoryMiB: 512 + 999 } });
    const plan = computePlan(makeInput({ config, state, observations: [obs] }));
    expect(plan.shortfalls).toMatchObject([{ group: "web", missing: 1, reason: "host a: 999 MiB free memory < 1000 MiB needed" }]);
    expect(plan.changes.map((c) => c.action)).toEqual(["delete"]);
  });

  it("on a full host, finishes an interrupted delete first and lets the replacement wait for the room it frees", () => {
    const config = makeConfig({ groups: [{ desired: 2, template: { vcpus: 2, memoryMiB: 256 } }] });
    const state = makeState({
      web: [makeInstance("web-1", "a"), makeInstance("web-2", "a", { status: "creating" }), makeInstance("web-3", "a", { status: "deleting" })],
    });
    const obs = makeObservation("a", {
      domains: [makeDomain("web-1"), makeDomain("web-2"), makeDomain("web-3")],
      capacity: { cpus: 2, allocatedVcpus: 6, freeMemoryMiB: 512 + 100 },
    });
    const plan = computePlan(makeInput({ config, state, observations: [obs] }));
    expect(plan.errors).toEqual([]);
    expect(plan.shortfalls).toEqual([]);
    const made = creates(plan.changes);
    expect(made).toHaveLength(1);
    expect(made[0]?.action === "create" && made[0].waits_for).toEqual(["web[web-2]", "web[web-3]"]);
    expect(deletes(plan.changes).map((c) => c.reason)).toEqual(["interrupted_create", "interrupted_delete"]);
  });

  it("prefers a host with room now over one that has room only after this plan's deletes", () => {
    const config = makeConfig({ hosts: ["a", "b"], groups: [{ name: "web", desired: 0 }, { name: "db", desired: 1, placement: "fill-first", template: { memoryMiB: 256 } }] });
    const state = makeState({ web: [makeInstance("web-1", "a", { memoryMiB: 4096, vcpus: 4 })] });
    const observations = [
      makeObservation("a", { domains: [makeDomain("web-1")], capacity: { freeMemoryMiB: 512 } }),
      makeObservation("b", { capacity: { freeMemoryMiB: 512 + 256 } }),
    ];
    const plan = computePlan(makeInput({ config, state, observations }));
    const [db] = creates(plan.changes);
    expect(db?.host).toBe("b");
    expect(db?.action === "create" && db.waits_for).toBeUndefined();
  });

  it("lets a group use the room another group's scale-in frees, after that scale-in", () => {
    const config = makeConfig({ groups: [{ name: "web", desired: 3, template: { vcpus: 2, memoryMiB: 512 } }, { name: "db", desired: 0 }] });
    const state = makeState({ web: [makeInstance("web-1", "a")], db: [makeInstance("db-1", "a", { vcpus: 4, memoryMiB: 1024 })] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1"), makeDomain("db-1")], capacity: { cpus: 2, allocatedVcpus: 6, freeMemoryMiB: 512 + 100 } });
    const plan = computePlan(makeInput({ config, state, observations: [obs] }));
    // db-1 gives back 4 vCPUs and 1024 MiB: room for two 2-vCPU, 512 MiB VMs of web, both after db-1 is gone.
    expect(creates(plan.changes).map((c) => c.action === "create" && c.waits_for)).toEqual([["db[db-1]"], ["db[db-1]"]]);
    expect(plan.shortfalls).toEqual([]);
  });

  it("shares a host's room between groups in config order", () => {
    const config = makeConfig({
      groups: [
        { name: "web", desired: 2, template: { memoryMiB: 400 } },
        { name: "db", desired: 1, template: { memoryMiB: 400 } },
      ],
    });
    const plan = computePlan(makeInput({ config, observations: [makeObservation("a", { capacity: { freeMemoryMiB: 512 + 1000 } })] }));
    expect(creates(plan.changes).map((c) => c.group)).toEqual(["web", "web"]);
    expect(plan.shortfalls).toEqual([{ group: "db", wanted: 1, missing: 1, reason: "host a: 200 MiB free memory < 400 MiB needed" }]);
  });

  it("assigns the lowest free static addresses not used by state or by other creates", () => {
    const config = makeConfig({
      groups: [
        {
          desired: 3,
          networking: { mode: "static", addresses: ["10.0.0.12", "10.0.0.10", "10.0.0.9", "10.0.0.11"], prefix: 24, gateway: "10.0.0.1", dns: ["1.1.1.1", "9.9.9.9"] },
        },
      ],
    });
    const state = makeState({ web: [makeInstance("web-1", "a", { address: "10.0.0.9" })] });
    const plan = computePlan(makeInput({ config, state, observations: [makeObservation("a", { domains: [makeDomain("web-1")] })] }));
    const made = creates(plan.changes);
    expect(made.map((c) => c.action === "create" && c.address_v4)).toEqual(["10.0.0.10", "10.0.0.11"]);
    expect(made[0]?.action === "create" && made[0].vm.network).toEqual({ mode: "static", address: "10.0.0.10", prefix: 24, gateway: "10.0.0.1", dns: ["1.1.1.1", "9.9.9.9"] });
  });

  it("keeps the address of an instance being replaced in use", () => {
    const config = makeConfig({ groups: [{ desired: 1, networking: { mode: "static", addresses: ["10.0.0.2", "10.0.0.3"], prefix: 24, dns: [] } }] });
    const state = makeState({ web: [makeInstance("web-1", "a", { address: "10.0.0.2" })] });
    const [c] = creates(computePlan(makeInput({ config, state })).changes);
    expect(c?.action === "create" && c.address_v4).toBe("10.0.0.3");
  });

  it("gives a static group the addresses that are free and reports the rest as its shortfall", () => {
    const config = makeConfig({ groups: [{ desired: 3, networking: { mode: "static", addresses: ["10.0.0.2", "10.0.0.3"], prefix: 24, dns: [] } }] });
    const state = makeState({ web: [makeInstance("web-1", "a", { address: "10.0.0.2" })] });
    const plan = computePlan(makeInput({ config, state, observations: [makeObservation("a", { domains: [makeDomain("web-1")] })] }));
    expect(creates(plan.changes).map((c) => c.action === "create" && c.address_v4)).toEqual(["10.0.0.3"]);
    expect(plan.errors).toEqual([]);
    expect(plan.shortfalls).toEqual([
      { group: "web", wanted: 2, missing: 1, reason: "no free static address: all 2 addresses of the group's pool are in use" },
    ]);
  });

  it("replaces a stopped VM of a full static pool with its own address, once it is deleted", () => {
    const config = makeConfig({ groups: [{ desired: 2, networking: { mode: "static", addresses: ["10.0.0.2", "10.0.0.3"], prefix: 24, dns: [] } }] });
    const state = makeState({ web: [makeInstance("web-1", "a", { address: "10.0.0.2" }), makeInstance("web-2", "a", { address: "10.0.0.3" })] });
    const obs = makeObservation("a", { domains: [makeDomain("web-1"), makeDomain("web-2", { state: "stopped" })] });
    const [made, ...rest] = creates(computePlan(makeInput({ config, state, observations: [obs] })).changes);
    expect(rest).toEqual([]);
    expect(made?.action === "create" && [made.address_v4, made.waits_for]).toEqual(["10.0.0.3", ["web[web-2]"]]);
  });

  it("plans only targeted groups, warns that targeting is in effect, and leaves the others alone", () => {
    const config = makeConfig({ groups: [{ name: "web", desired: 1 }, { name: "db", desired: 1 }] });
    const observations = [makeObservation("a", { domains: [makeDomain("db-9", { group: "db", lineage: "22222222-2222-4222-8222-222222222222" })] })];
    const plan = computePlan(makeInput({ config, observations, targets: ["web"] }));
    expect(plan.targets).toEqual(["web"]);
    expect(plan.groups.map((g) => g.name)).toEqual(["web"]);
    expect(plan.changes.map((c) => c.group)).toEqual(["web"]);
    expect(plan.warnings[0]).toMatch(/--target is in effect/);
  });

  it("reports an unknown target group as a plan error", () => {
    const plan = computePlan(makeInput({ config: makeConfig(), targets: ["nope"] }));
    expect(plan.errors).toEqual([{ group: "nope", message: "--target names no group in config (groups: web)" }]);
    expect(plan.changes).toEqual([]);
  });

  it("reports a group without a decision as a plan error", () => {
    const plan = computePlan(makeInput({ config: makeConfig(), decide: () => undefined }));
    expect(plan.errors).toEqual([{ group: "web", message: "no desired size was decided for this group" }]);
  });

  it("keeps a decision inside the group's min and max, with a warning", () => {
    const config = makeConfig({ groups: [{ min: 1, max: 2 }] });
    const plan = computePlan(makeInput({ config, decide: () => ({ group: "web", desired: 5, code: "config", reason: "r" }) }));
    expect(plan.summary.add).toBe(2);
    expect(plan.warnings).toEqual(["group web: decided size 5 is outside min 1 / max 2: using 2"]);
  });

  describe("named victims and kept instances", () => {
    const config = makeConfig({ hosts: ["a", "b"], groups: [{ desired: 3 }] });
    const state = makeState({
      web: [
        makeInstance("web-1", "a", { created: "2025-01-01T00:00:00.000Z" }),
        makeInstance("web-2", "a", { created: "2025-01-02T00:00:00.000Z" }),
        makeInstance("web-3", "a", { created: "2025-01-03T00:00:00.000Z" }),
        makeInstance("web-4", "b", { created: "2025-01-04T00:00:00.000Z" }),
      ],
    });
    const observations = [makeObservation("a", { domains: [makeDomain("web-1"), makeDomain("web-2"), makeDomain("web-3")] }), makeObservation("b", { domains: [makeDomain("web-4")] })];
    const victims = (d: Partial<Decision>) =>
      computePlan(makeInput({ config, state, observations, decide: () => ({ group: "web", desired: 2, code: "cluster_autoscaler", reason: "r", source: "cluster-autoscaler", ...d }) })).changes
        .filter((c) => c.action === "delete")
        .map((c) => c.name);

    it("removes the instances the decision names first, in its order, before its own victim order", () => {
      expect(victims({})).toEqual(["web-2", "web-3"]); // own order: the host with most, newest first
      expect(victims({ remove: ["web-4", "web-1"] })).toEqual(["web-1", "web-4"]);
      expect(victims({ remove: ["web-4"] })).toEqual(["web-3", "web-4"]);
    });

    it("skips named instances that are not present, and never removes kept ones", () => {
      expect(victims({ remove: ["web-9"] })).toEqual(["web-2", "web-3"]);
      expect(victims({ keep: ["web-3", "web-2"] })).toEqual(["web-1", "web-4"]);
    });

    it("keeps an instance named both ways and says so, and warns when too many are kept to shrink", () => {
      const plan = computePlan(makeInput({ config, state, observations, decide: () => ({ group: "web", desired: 1, code: "c", reason: "r", source: "test", remove: ["web-1"], keep: ["web-1", "web-2", "web-3"] }) }));
      expect(plan.changes.map((c) => c.name)).toEqual(["web-4"]);
      expect(plan.warnings).toEqual([
        "group web: web-1 is both to be removed and kept by test: it is kept",
        "group web: 2 more instances should go, but the rest are kept, protected or on hosts that were not checked",
      ]);
    });

    it("removes the instances to remove now whatever the size, then scales the rest to the desired size", () => {
      // cluster-autoscaler drained web-4 (DeleteNodes: 4 → 3) while web-2's VM was lost: web-4 goes all the same,
      // and one new VM (replacing web-2) makes the three.
      const lost = [makeObservation("a", { domains: [makeDomain("web-1"), makeDomain("web-3")] }), makeObservation("b", { domains: [makeDomain("web-4")] })];
      const plan = computePlan(makeInput({ config, state, observations: lost, decide: () => ({ group: "web", desired: 3, code: "cluster_autoscaler", reason: "cluster-autoscaler: DeleteNodes web-4", source: "cluster-autoscaler", removeNow: ["web-4", "web-9"] }) }));
      expect(plan.changes.map((c) => `${c.action} ${c.name} ${c.reason}`)).toEqual(["delete web-2 replace_missing", "delete web-4 scale_in", expect.stringMatching(/^create web-[0-9a-f]{8} replace_missing$/)]);
      expect(plan.changes.find((c) => c.name === "web-4")?.detail).toBe("named by cluster-autoscaler (cluster-autoscaler: DeleteNodes web-4)");
      expect(plan.groups[0]).toMatchObject({ current: 3, desired: 3 });
    });

    it("says in each named victim's detail who named it", () => {
      const plan = computePlan(makeInput({ config, state, observations, decide: () => ({ group: "web", desired: 3, code: "c", reason: "cluster-autoscaler: DeleteNodes", source: "cluster-autoscaler", remove: ["web-4"] }) }));
      expect(plan.changes).toMatchObject([{ name: "web-4", reason: "scale_in", detail: "desired 3 < current 4 (cluster-autoscaler: DeleteNodes): named by cluster-autoscaler" }]);
    });
  });

  it("sorts changes by config group order, deletes before creates, then name", () => {
    const config = makeConfig({ groups: [{ name: "web", desired: 2 }, { name: "db", desired: 1 }] });
    const state = makeState({ web: [makeInstance("web-z", "a"), makeInstance("web-y", "a")], db: [makeInstance("db-1", "a")] });
    const plan = computePlan(makeInput({ config, state }));
    expect(plan.changes.map((c) => `${c.action} ${c.name}`)).toEqual([
      "delete web-y",
      "delete web-z",
      "create web-00000001",
      "create web-00000002",
      "delete db-1",
      "create db-00000003",
    ]);
  });

  it("draws another UUID when a new name would collide with an existing one", () => {
    const ids = ["00000001-aaaa-4000-8000-000000000001", "00000001-bbbb-4000-8000-000000000002", "00000003-0000-4000-8000-000000000003"];
    const config = makeConfig({ groups: [{ desired: 2 }] });
    const state = makeState({ web: [makeInstance("web-00000001", "a")] });
    const obs = makeObservation("a", { domains: [makeDomain("web-00000001")] });
    const plan = computePlan(makeInput({ config, state, observations: [obs], newUuid: () => ids.shift() ?? "" }));
    expect(creates(plan.changes).map((c) => c.name)).toEqual(["web-00000003"]);
  });

  it("gives the same plan for the same input", () => {
    const config = makeConfig({ hosts: ["a", "b", "c"], groups: [{ desired: 5, placement: "random" }] });
    expect(computePlan(makeInput({ config }))).toEqual(computePlan(makeInput({ config })));
  });
});

