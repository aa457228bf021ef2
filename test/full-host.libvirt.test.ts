import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitStateStore } from "../state/git-state-store.js";
import { git } from "../state/git.js";
import { premiscale, projectDir } from "./support/cli.js";
import { ensureBlankBase, leftovers, virsh } from "./support/libvirt.js";

// Recovery on a full host, against the real libvirtd (issue 15): the host is made "full" by the config, with a
// vCPU overcommit that leaves room for exactly `room` 2-vCPU VMs beside whatever already runs here. A plan that must
// finish an interrupted delete and create a replacement makes both (the create waits for the delete); a group that
// cannot fully fit gets what fits, apply exits 3 naming the shortfall, and the next apply finishes once there is room.

const fast = ["--shutdown-timeout", "2s"];
const dirs: string[] = [];

/** vCPUs of this machine and of the domains running on it now. */
async function vcpuUse(): Promise<{ cpus: number; allocated: number }> {
  const cpus = Number(/CPU\(s\):\s+(\d+)/.exec(await virsh("nodeinfo"))?.[1]);
  const stats = await virsh("domstats", "--raw", "--state", "--vcpu", "--list-active");
  const allocated = [...stats.matchAll(/vcpu\.current=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  return { cpus, allocated };
}

/** A config whose only host has room for exactly `room` more 2-vCPU VMs beside what runs on it now. */
async function fullHostConfig(group: string, desired: number, room: number): Promise<string> {
  const { cpus, allocated } = await vcpuUse();
  const overcommit = (allocated + 2 * room) / cpus;
  return `version: v1alpha1
state:
  path: ./state
hosts:
  - name: local
    uri: qemu:///system
    pool: default
    accelerator: qemu
    cpuOvercommit: ${overcommit}
    reservedMemoryMiB: 0
    callTimeoutSeconds: 20
groups:
  - name: ${group}
    min: 0
    max: 4
    desired: ${desired}
    hosts: [local]
    readiness: { checkIn: false }
    template:
      vcpus: 2
      memoryMiB: 80
      disk: { baseImage: premiscale-blank.qcow2, sizeGiB: 1 }
`;
}

const domainsOf = async (group: string) =>
  (await virsh("list", "--name")).split("\n").map((s) => s.trim()).filter((n) => n.startsWith(`${group}-`)).sort();

beforeAll(async () => {
  await ensureBlankBase();
});

afterAll(async () => {
  for (const dir of dirs) {
    const text = await readFile(join(dir, "premiscale.yaml"), "utf8");
    await writeFile(join(dir, "premiscale.yaml"), text.replace(/desired: \d+/, "desired: 0").replace(/cpuOvercommit: [\d.]+/, "cpuOvercommit: 64"));
    await premiscale(dir, ["apply", "--auto-approve", ...fast]);
  }
}, 300_000);

describe("a full host (real libvirtd)", () => {
  it("finishes an interrupted delete and creates its replacement in one apply, the create waiting for the delete", async () => {
    const g = "fullh";
    const dir = await projectDir(await fullHostConfig(g, 2, 2));
    dirs.push(dir);
    expect((await premiscale(dir, ["apply", "--auto-approve", ...fast])).code).toBe(0);
    const [victim, survivor] = await domainsOf(g);

    // The host is now exactly full. Leave one VM as a killed apply leaves a delete it had begun: `deleting` in state,
    // written but not committed, the domain still running.
    await writeFile(join(dir, "premiscale.yaml"), await fullHostConfig(g, 2, 0));
    const file = join(dir, "state", "groups", `${g}.json`);
    const group = JSON.parse(await readFile(file, "utf8"));
    for (const i of group.instances) if (i.name === victim) i.status = "deleting";
    await writeFile(file, JSON.stringify(group, null, 2) + "\n");

    const plan = await premiscale(dir, ["plan"]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(new RegExp(`- ${g}\\[${victim}\\] on host local\\s+# interrupted delete`));
    expect(plan.stdout).toMatch(new RegExp(`\\+ ${g}\\[${g}-[0-9a-f]{8}\\] on host local \\(2 vCPUs, 80 MiB\\)\\s+# scale out, waits for ${g}\\[${victim}\\]`));
    expect(plan.stdout).not.toMatch(/Error|Short/);

    const applied = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
    expect(applied.stderr + applied.stdout).not.toMatch(/Error:/);
    expect(applied.code).toBe(0);
    const now = await domainsOf(g);
    expect(now).toHaveLength(2);
    expect(now).toContain(survivor);
    expect(now).not.toContain(victim);
    const state = await new GitStateStore(join(dir, "state")).read();
    expect(state?.groups[0]?.instances.map((i) => i.name).sort()).toEqual(now);
    expect(state?.groups[0]?.instances.every((i) => i.status === "running")).toBe(true);
    expect(await leftovers(`${victim}`)).toEqual([]);
    expect((await premiscale(dir, ["plan", "--detailed-exitcode"])).code).toBe(0);
  });

  it("makes what fits, exits 3 naming the shortfall, and finishes with the next apply once there is room", async () => {
    const g = "shrth";
    const dir = await projectDir(await fullHostConfig(g, 3, 2));
    dirs.push(dir);
    const plan = await premiscale(dir, ["plan", "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(`! group ${g}: 1 of 3 new VMs cannot be made yet: host local: 0 free vCPUs < 2 needed`);
    expect(plan.stdout).toContain("Plan: 2 to add, 0 to change, 0 to destroy.");

    const short = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
    expect(short.code).toBe(3);
    expect(short.stderr).toContain(`Short: 1 VM of ${g} cannot be made yet`);
    expect(await domainsOf(g)).toHaveLength(2);
    const message = (await git(join(dir, "state"), ["log", "-1", "--format=%b"])).stdout;
    expect(message).toContain(`${g}: 1 of 3 new VMs: host local: 0 free vCPUs < 2 needed`);

    // Nothing changes while the host stays full: the apply says so again, and changes nothing.
    const still = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
    expect(still.code).toBe(3);
    expect(await domainsOf(g)).toHaveLength(2);

    await writeFile(join(dir, "premiscale.yaml"), await fullHostConfig(g, 3, 1));
    const done = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
    expect(done.code).toBe(0);
    expect(await domainsOf(g)).toHaveLength(3);
  });
});
