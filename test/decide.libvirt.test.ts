import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../metrics/sqlite-store.js";
import { GitStateStore } from "../state/git-state-store.js";
import { premiscale, projectDir } from "./support/cli.js";
import { ensureBlankBase } from "./support/libvirt.js";

// Issue 4 end to end: a group's size comes from its scaling policy and the metrics in the embedded store, through
// the built CLI against the real libvirtd. The store is filled with known counters (what `premiscale serve`'s
// collector writes), so the expected decision can be computed by hand: 2 VMs at 90% CPU with target 50% → 4.

const G = "dcde";
const dirs: string[] = [];

function config(extra = ""): string {
  return `version: v1alpha1
state:
  path: ./state
hosts:
  - name: local
    uri: qemu:///system
    accelerator: qemu
groups:
  - name: ${G}
    min: 2
    max: 5
    hosts: [local]
    readiness: { checkIn: false }
    template:
      memoryMiB: 80
      disk: { baseImage: premiscale-blank.qcow2, sizeGiB: 1 }
    scaling:
      warmupSeconds: 0
      policies:
        - type: target-tracking
          metric: cpu
          target: 50
      delays:
        scaleUpCooldownSeconds: 0
${extra}`;
}

/** Writes a minute of counters at `percent` CPU for each VM, ending now. */
function fillCpu(dbPath: string, names: string[], percent: number): void {
  const store = new SqliteStore({ path: dbPath });
  const now = Date.now();
  const rows = [];
  for (const name of names) {
    for (let k = 5; k >= 0; k--) rows.push({ name, at: now - k * 15_000, vcpus: 1, cpuTimeNs: (5 - k) * 15e9 * (percent / 100) });
  }
  store.ingest(rows);
  void store.close();
}

beforeAll(async () => {
  await ensureBlankBase();
});

afterAll(async () => {
  for (const dir of dirs) {
    // Without policies and with desired 0, the group is emptied.
    const text = await readFile(join(dir, "premiscale.yaml"), "utf8");
    await writeFile(join(dir, "premiscale.yaml"), text.replace("min: 2", "min: 0\n    desired: 0").replace(/\n {4}scaling:[\s\S]*?(\n\S|$)/, "$1"));
    await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "1s"]);
  }
}, 120_000);

describe("scaling policies decide the plan", () => {
  it("scales out on high CPU with the numbers in the plan, records the decision in git state, and never scales in on missing data", async () => {
    const dir = await projectDir(config());
    dirs.push(dir);

    // No metrics yet: min holds (2), and the plan says why.
    const first = await premiscale(dir, ["apply", "--auto-approve"]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`group ${G}: 0 → 2 \\(.*min`));
    const names = (await new GitStateStore(join(dir, "state")).read())!.groups[0]!.instances.map((i) => i.name);
    expect(names).toHaveLength(2);

    fillCpu(join(dir, "state", ".premiscale", "metrics.db"), names, 90);
    const plan = await premiscale(dir, ["plan"]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(new RegExp(`group ${G}: 2 → 4 \\(.*cpu 90%.*target 50%`));
    expect(plan.stdout).toContain("Plan: 2 to add, 0 to change, 0 to destroy.");

    const apply = await premiscale(dir, ["apply", "--auto-approve"]);
    expect(apply.code).toBe(0);
    const state = (await new GitStateStore(join(dir, "state")).read())!;
    expect(state.groups[0]!.instances).toHaveLength(4);
    expect(state.groups[0]!.history?.recommendations.at(-1)?.desired).toBe(4);
    expect(state.groups[0]!.history?.events.map((e) => e.kind)).toEqual(["add", "add"]);

    // The metrics source goes away (a Prometheus that is not running): the plan keeps the size and says why.
    await writeFile(join(dir, "premiscale.yaml"), config("metrics:\n  store:\n    type: prometheus\n    url: http://127.0.0.1:9\n"));
    const down = await premiscale(dir, ["plan", "--detailed-exitcode"]);
    expect(down.stdout).toMatch(new RegExp(`group ${G}: metrics unavailable, keeping its size: .*127.0.0.1:9`));
    expect(down.stdout).toContain("No changes.");
    expect(down.code).toBe(0);
  });
});
