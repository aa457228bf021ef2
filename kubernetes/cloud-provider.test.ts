import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CloudProvider, CloudProviderError, type IntentChange, type InstanceView, type ViewInstance } from "./cloud-provider.js";
import { IntentStore } from "./intent-store.js";
import { providerIdOf } from "./provider-id.js";
import { kubeTestConfig, type KubeTestConfigOptions } from "./testing/config.js";

const U = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const vm = (n: number, status: ViewInstance["status"] = "running"): ViewInstance => ({ uuid: U(n), name: `workers-${U(n).slice(0, 8)}${n}`, status });
const pid = (n: number) => providerIdOf("workers", U(n));

class FakeView implements InstanceView {
  constructor(public vms: ViewInstance[] = []) {}
  async instances(group: string): Promise<ViewInstance[]> {
    return group === "workers" ? this.vms.map((v) => ({ ...v })) : [];
  }
}

let dir: string;
let view: FakeView;
let changes: IntentChange[];
let store: IntentStore;

async function provider(o: KubeTestConfigOptions = {}): Promise<CloudProvider> {
  store = await IntentStore.open(dir);
  return new CloudProvider({ config: kubeTestConfig(o), store, view, onIntent: (c) => changes.push(c), now: () => new Date("2026-12-03T10:00:00Z") });
}

/** What the call was refused with. */
async function refused(p: Promise<unknown>): Promise<CloudProviderError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CloudProviderError);
  return e as CloudProviderError;
}

const intentFile = () => join(dir, "kubernetes", "workers.json");
const fileOrNull = () => {
  try {
    return readFileSync(intentFile(), "utf8");
  } catch {
    return null;
  }
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "premiscale-ca-"));
  view = new FakeView();
  changes = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("node groups", () => {
  it("lists only the groups with a kubernetes block, with their min, max and a debug line", async () => {
    const p = await provider({ min: 1, max: 4 });
    expect(p.nodeGroups()).toEqual([{ id: "workers", minSize: 1, maxSize: 4, debug: "premiscale group workers: 1-4 VMs of 2 vCPU / 2048 MiB on h1" }]);
  });

  it("starts a group's target at the VMs it has, within min and max, without writing anything", async () => {
    view.vms = [vm(1), vm(2), vm(3, "deleting")];
    const p = await provider({ min: 0, max: 5 });
    expect(await p.targetSize("workers")).toBe(2);
    expect(fileOrNull()).toBeNull();
  });

  it("answers NOT_FOUND naming the known groups for an unknown node group id", async () => {
    const p = await provider();
    const e = await refused(p.targetSize("nope"));
    expect(e.status).toBe("NOT_FOUND");
    expect(e.message).toBe('NodeGroupTargetSize: no node group "nope" (premiscale\'s node groups: workers); nothing changed');
  });
});

describe("IncreaseSize", () => {
  it("raises the target durably and tells the loop", async () => {
    const p = await provider();
    expect(await p.increaseSize("workers", 2)).toBe(2);
    expect(changes).toEqual([{ group: "workers", op: "IncreaseSize", before: 0, after: 2 }]);
    const written = JSON.parse(fileOrNull()!);
    expect(written).toMatchObject({ version: 1, group: "workers", target: 2, seq: 1, pending: [{ seq: 1, op: "IncreaseSize", delta: 2, target: 2 }] });
    // A restarted premiscale reads it back.
    const again = await provider();
    expect(await again.targetSize("workers")).toBe(2);
  });

  it("refuses a negative or zero delta and changes nothing", async () => {
    const p = await provider();
    for (const delta of [-1, 0]) {
      const e = await refused(p.increaseSize("workers", delta));
      expect(e.status).toBe("INVALID_ARGUMENT");
      expect(e.message).toContain(`delta must be a positive number of nodes, got ${delta}; nothing changed`);
    }
    expect(fileOrNull()).toBeNull();
    expect(changes).toEqual([]);
  });

  it("refuses to go above max, naming both numbers", async () => {
    const p = await provider({ max: 3 });
    await p.increaseSize("workers", 2);
    const e = await refused(p.increaseSize("workers", 2));
    expect(e.status).toBe("OUT_OF_RANGE");
    expect(e.message).toBe("NodeGroupIncreaseSize of node group workers: target 2 + 2 = 4 is above the group's max 3; nothing changed");
    expect(await p.targetSize("workers")).toBe(2);
  });
});

describe("DeleteNodes", () => {
  it("names the VMs to go, lowers the target by as many, and reports them as deleting", async () => {
    view.vms = [vm(1), vm(2), vm(3)];
    const p = await provider();
    expect(await p.deleteNodes("workers", [{ providerID: pid(2), name: "node-2" }])).toBe(2);
    expect(store.get("workers")!.remove).toEqual([{ uuid: U(2), name: vm(2).name }]);
    expect(changes.at(-1)).toEqual({ group: "workers", op: "DeleteNodes", before: 3, after: 2, nodes: [vm(2).name] });
    expect(await p.nodes("workers")).toEqual([
      { id: pid(1), state: "running" },
      { id: pid(2), state: "deleting" },
      { id: pid(3), state: "running" },
    ]);
  });

  it("accepts cluster-autoscaler's fake node of an instance that never registered (name and providerID = instance id)", async () => {
    view.vms = [vm(1), vm(2, "creating")];
    const p = await provider();
    expect(await p.deleteNodes("workers", [{ providerID: pid(2), name: pid(2) }])).toBe(1);
    expect(store.get("workers")!.remove.map((r) => r.uuid)).toEqual([U(2)]);
  });

  it("counts a VM already named or already being deleted once", async () => {
    view.vms = [vm(1), vm(2), vm(3, "deleting")];
    const p = await provider();
    await p.deleteNodes("workers", [{ providerID: pid(1), name: "a" }]);
    expect(await p.deleteNodes("workers", [{ providerID: pid(1), name: "a" }, { providerID: pid(3), name: "c" }])).toBe(1);
  });

  it("refuses a node of another group, a node that is not a premiscale VM and an unknown instance, changing nothing", async () => {
    view.vms = [vm(1), vm(2)];
    const p = await provider();
    const cases: [string, { providerID: string; name: string }, string, RegExp][] = [
      ["another group", { providerID: providerIdOf("db", U(1)), name: "db-1" }, "INVALID_ARGUMENT", /node db-1 \(providerID premiscale:\/\/db\/.*\) belongs to node group db, not workers; nothing changed$/],
      ["not ours", { providerID: "aws:///eu-west-1a/i-0abc", name: "ip-10-0-0-1" }, "INVALID_ARGUMENT", /node ip-10-0-0-1 \(providerID aws:\/\/\/eu-west-1a\/i-0abc\) is not a premiscale VM/],
      ["unknown instance", { providerID: pid(9), name: "ghost" }, "NOT_FOUND", /node ghost .* is not an instance of node group workers \(no VM with instance id 00000000-0000-4000-8000-000000000009\); nothing changed$/],
    ];
    for (const [what, node, status, message] of cases) {
      // The good node first: a batch with one bad node changes nothing at all.
      const e = await refused(p.deleteNodes("workers", [{ providerID: pid(1), name: "good" }, node]));
      expect(e.status, what).toBe(status);
      expect(e.message, what).toMatch(message);
    }
    expect(fileOrNull()).toBeNull();
    expect(await p.targetSize("workers")).toBe(2);
  });

  it("refuses to take the target below min", async () => {
    view.vms = [vm(1), vm(2)];
    const p = await provider({ min: 2 });
    const e = await refused(p.deleteNodes("workers", [{ providerID: pid(1), name: "a" }]));
    expect(e.status).toBe("FAILED_PRECONDITION");
    expect(e.message).toContain("would take the target from 2 to 1, below the group's min 2; nothing changed");
  });
});

describe("DecreaseTargetSize", () => {
  it("cancels VMs not made yet", async () => {
    view.vms = [vm(1)];
    const p = await provider();
    await p.increaseSize("workers", 3); // 1 → 4
    expect(await p.decreaseTargetSize("workers", -2)).toBe(2);
  });

  it("never goes below the VMs that exist or are being created, and says to use DeleteNodes", async () => {
    view.vms = [vm(1), vm(2, "creating")];
    const p = await provider();
    await p.increaseSize("workers", 1); // 2 → 3
    const e = await refused(p.decreaseTargetSize("workers", -2));
    expect(e.status).toBe("FAILED_PRECONDITION");
    expect(e.message).toBe(
      `NodeGroupDecreaseTargetSize of node group workers: target 3 -2 = 1 is below the 2 instance(s) that exist or are being created (${vm(1).name} (running), ${vm(2).name} (creating)); it only cancels VMs not made yet, and never deletes one (use DeleteNodes); nothing changed`,
    );
    expect(await p.targetSize("workers")).toBe(3);
  });

  it("refuses a delta that is not negative", async () => {
    const p = await provider();
    const e = await refused(p.decreaseTargetSize("workers", 1));
    expect(e.status).toBe("INVALID_ARGUMENT");
    expect(e.message).toContain("delta must be negative, got 1");
  });
});

describe("failed instances", () => {
  async function withFailed(p: CloudProvider, cls: "OutOfResources" | "Other", n = 9) {
    await p.increaseSize("workers", 1);
    await store.update("workers", () => { throw new Error("unused"); }, (i) => ({ ...i, failed: [{ uuid: U(n), errorClass: cls, errorCode: "premiscale.NoRoom", message: "host h1: 512 MiB free", at: "2026-12-03T10:00:00Z" }] }));
  }

  it("are listed as creating with their error, OutOfResources when no host had room", async () => {
    const p = await provider();
    await withFailed(p, "OutOfResources");
    expect(await p.nodes("workers")).toEqual([{ id: pid(9), state: "creating", error: { code: "premiscale.NoRoom", message: "host h1: 512 MiB free", class: "OutOfResources" } }]);
    expect(await p.nodeGroupForNode({ providerID: pid(9), name: pid(9) })).toMatchObject({ id: "workers" });
  });

  it("count towards the floor of DecreaseTargetSize, and DeleteNodes removes them with the target", async () => {
    const p = await provider();
    await withFailed(p, "Other");
    expect((await refused(p.decreaseTargetSize("workers", -1))).status).toBe("FAILED_PRECONDITION");
    expect(await p.deleteNodes("workers", [{ providerID: pid(9), name: pid(9) }])).toBe(0);
    expect(store.get("workers")!.failed).toEqual([]);
    expect(await p.nodes("workers")).toEqual([]);
  });

  it("deleting one at min keeps the target, so the slot is tried again", async () => {
    const p = await provider({ min: 1 });
    await withFailed(p, "Other");
    expect(await p.targetSize("workers")).toBe(2);
    await p.deleteNodes("workers", [{ providerID: pid(9), name: pid(9) }]);
    expect(await p.targetSize("workers")).toBe(1);
  });
});

describe("NodeGroupForNode", () => {
  it("finds the group of a known VM and answers null for every other node", async () => {
    view.vms = [vm(1)];
    const p = await provider();
    expect(await p.nodeGroupForNode({ providerID: pid(1), name: "n1" })).toMatchObject({ id: "workers", minSize: 0, maxSize: 5 });
    expect(await p.nodeGroupForNode({ providerID: pid(2), name: "n2" })).toBeNull(); // not a VM premiscale knows
    expect(await p.nodeGroupForNode({ providerID: providerIdOf("other", U(1)), name: "n3" })).toBeNull();
    expect(await p.nodeGroupForNode({ providerID: "kind://docker/kind/kind-worker", name: "kind-worker" })).toBeNull();
    expect(await p.nodeGroupForNode({ providerID: "", name: "control-plane" })).toBeNull();
  });
});

describe("GetOptions", () => {
  const defaults = {
    scaleDownUtilizationThreshold: 0.5,
    scaleDownGpuUtilizationThreshold: 0.5,
    scaleDownUnneededMs: 600_000,
    scaleDownUnreadyMs: 1_200_000,
    maxNodeProvisionMs: 900_000,
    zeroOrMaxNodeScaling: false,
    ignoreDaemonSetsUtilization: false,
  };

  it("echoes cluster-autoscaler's defaults and sets max-node-provision-time past premiscale's own wait", async () => {
    const p = await provider({ timeoutSeconds: 120 });
    expect(p.getOptions("workers", defaults)).toEqual({ ...defaults, maxNodeProvisionMs: 180_000 });
  });

  it("overrides what the group's kubernetes.autoscaling sets, and only that", async () => {
    const p = await provider({ groupKubernetes: "autoscaling: { scaleDownUnneededSeconds: 30, scaleDownUtilizationThreshold: 0.7, maxNodeProvisionSeconds: 300 }" });
    expect(p.getOptions("workers", defaults)).toEqual({ ...defaults, scaleDownUnneededMs: 30_000, scaleDownUtilizationThreshold: 0.7, maxNodeProvisionMs: 300_000 });
  });

  it("answers Unimplemented when the request has no defaults to echo", async () => {
    const p = await provider();
    let e: unknown;
    try {
      p.getOptions("workers", undefined);
    } catch (x) {
      e = x;
    }
    expect((e as CloudProviderError).status).toBe("UNIMPLEMENTED");
  });
});
