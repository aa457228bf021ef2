import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../cli/main.js";
import type { Output } from "../cli/output.js";
import { GitStateStore } from "../state/git-state-store.js";
import { git } from "../state/git.js";
import { configText, premiscale, projectDir } from "./support/cli.js";
import { ensureBlankBase, leftovers, virsh } from "./support/libvirt.js";

// End to end: the built CLI against this machine's real libvirtd, with state in real temporary git repositories.
// Each test uses its own group name so leftovers can be found and asserted absent.

const fast = ["--shutdown-timeout", "2s"];
const dirs: string[] = [];

async function project(group: string, desired: number, extra: Parameters<typeof configText>[0] = {}) {
  const dir = await projectDir(configText({ group, desired, ...extra }));
  dirs.push(dir);
  return dir;
}

async function setDesired(dir: string, group: string, desired: number) {
  await writeFile(join(dir, "premiscale.yaml"), configText({ group, desired }));
}

beforeAll(async () => {
  await ensureBlankBase();
});

afterAll(async () => {
  // Scale every test's group to zero so the suite leaves no VM behind, even after a failed assertion.
  for (const dir of dirs) {
    const text = await readFile(join(dir, "premiscale.yaml"), "utf8");
    await writeFile(join(dir, "premiscale.yaml"), text.replace(/desired: \d+/, "desired: 0"));
    await premiscale(dir, ["apply", "--auto-approve", ...fast]);
  }
});

describe("premiscale on a real libvirtd", () => {
  it("scales a group out and in: plan, apply, no changes after, one state commit per apply, nothing left", async () => {
    const g = "e2ea";
    const dir = await project(g, 2);

    const plan = await premiscale(dir, ["plan", "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("Plan: 2 to add, 0 to change, 0 to destroy.");
    const md = await premiscale(dir, ["plan", "--format", "markdown"]);
    expect(md.code).toBe(0);
    expect(md.stdout).toContain("**Plan: 2 to add, 0 to change, 0 to destroy.**");
    expect(md.stdout).toMatch(new RegExp(`\`\`\`diff\n# group ${g}: 0 -> 2 .*\n\\+ ${g}\\[${g}-[0-9a-f]{8}\\] on host local`));

    const apply = await premiscale(dir, ["apply", "--auto-approve"]);
    expect(apply.code).toBe(0);
    expect(apply.stdout).toContain("Apply complete! Resources: 2 added, 0 changed, 0 destroyed.");
    const running = (await virsh("list", "--name")).split("\n").filter((n) => n.startsWith(`${g}-`));
    expect(running).toHaveLength(2);

    const again = await premiscale(dir, ["plan", "--detailed-exitcode"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("No changes. Your infrastructure matches the configuration.");

    const list = await premiscale(dir, ["state", "list"]);
    for (const name of running) expect(list.stdout).toContain(name);

    await setDesired(dir, g, 1);
    const down = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
    expect(down.stdout).toContain("Apply complete! Resources: 0 added, 0 changed, 1 destroyed.");
    await setDesired(dir, g, 0);
    expect((await premiscale(dir, ["apply", "--auto-approve", ...fast])).code).toBe(0);

    const log = (await git(join(dir, "state"), ["log", "--format=%s"])).stdout.trim().split("\n");
    expect(log).toEqual([
      "premiscale apply: 0 added, 0 changed, 1 destroyed",
      "premiscale apply: 0 added, 0 changed, 1 destroyed",
      "premiscale apply: 2 added, 0 changed, 0 destroyed",
    ]);
    expect(await leftovers(`${g}-`)).toEqual([]);
  });

  it("applies a saved plan once, and refuses it once state has moved on", async () => {
    const g = "e2eb";
    const dir = await project(g, 1);
    expect((await premiscale(dir, ["plan", "--out", "p1.json"])).code).toBe(0);
    expect((await premiscale(dir, ["plan", "--out", "p2.json"])).code).toBe(0);
    const first = await premiscale(dir, ["apply", "p1.json"]);
    expect(first.code).toBe(0);
    const stale = await premiscale(dir, ["apply", "p2.json"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/stale/i);
    expect(stale.stderr).toMatch(/run premiscale plan again/);
    expect((await virsh("list", "--all", "--name")).split("\n").filter((n) => n.startsWith(`${g}-`))).toHaveLength(1);
  });

  it("refuses a saved plan once the config has changed, and reports an unwritable plan path clearly", async () => {
    const g = "e2eg";
    const dir = await project(g, 1);
    expect((await premiscale(dir, ["plan", "--out", "p.json"])).code).toBe(0);
    await writeFile(join(dir, "premiscale.yaml"), configText({ group: g, desired: 1, memoryMiB: 96 }));
    const r = await premiscale(dir, ["apply", "p.json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/config .*premiscale\.yaml changed since this plan was made/);
    expect(await leftovers(`${g}-`)).toEqual([]);

    const bad = await premiscale(dir, ["plan", "--out", "no/such/dir/p.json"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cannot write the plan to no\/such\/dir\/p\.json/);
    expect(bad.stderr).not.toMatch(/internal error/);
  });

  it("asks on a terminal: 'no' changes nothing, 'yes' applies", async () => {
    const g = "e2eh";
    const dir = await project(g, 1);
    const run = async (answer: string) => {
      const out: string[] = [];
      const err: string[] = [];
      const io: Output = { out: (t) => out.push(t), err: (t) => err.push(t), color: false, interactive: true, ask: async () => answer };
      const code = await main(["-c", join(dir, "premiscale.yaml"), "apply"], io);
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    const no = await run("no");
    expect(no.code).toBe(1);
    expect(no.err).toMatch(/Only 'yes' will be accepted/);
    expect(no.err).toMatch(/Apply cancelled/);
    expect(await leftovers(`${g}-`)).toEqual([]);
    const yes = await run("yes");
    expect(yes.code).toBe(0);
    expect(yes.out).toContain("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.");
  });

  it("shows a VM stopped outside premiscale as drift and replaces it", async () => {
    const g = "e2ec";
    const dir = await project(g, 1);
    expect((await premiscale(dir, ["apply", "--auto-approve"])).code).toBe(0);
    const [name] = (await virsh("list", "--name")).split("\n").filter((n) => n.startsWith(`${g}-`));
    await virsh("destroy", name!);

    const plan = await premiscale(dir, ["plan"]);
    expect(plan.stdout).toMatch(/Objects have changed outside of premiscale/);
    expect(plan.stdout).toContain(name!);
    expect(plan.stdout).toContain("Plan: 1 to add, 0 to change, 1 to destroy.");

    expect((await premiscale(dir, ["apply", "--auto-approve", ...fast])).code).toBe(0);
    const after = (await virsh("list", "--all", "--name")).split("\n").filter((n) => n.startsWith(`${g}-`));
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(name);
    expect((await premiscale(dir, ["plan", "--detailed-exitcode"])).code).toBe(0);
  });

  it("refuses a second apply while another holds the lock, naming the holder, and changes nothing", async () => {
    const g = "e2ed";
    const dir = await project(g, 1);
    const held = await new GitStateStore(join(dir, "state")).lock("apply", 1000);
    try {
      const r = await premiscale(dir, ["apply", "--auto-approve", "--lock-timeout", "1s"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/state is locked by .*@.* \(apply, since .*lock ID /);
      expect(r.stderr).toContain(`premiscale force-unlock ${held.info.ID}`);
      expect(await leftovers(`${g}-`)).toEqual([]);
    } finally {
      await held.release();
    }
  });

  it("makes nothing of a group whose base image is missing, says which group and why, and exits 3 (partial)", async () => {
    const g = "e2ee";
    const dir = await project(g, 1, { baseImage: "missing-base.qcow2" });
    const r = await premiscale(dir, ["apply", "--auto-approve"]);
    expect(r.code).toBe(3);
    expect(r.stdout + r.stderr).toMatch(/group e2ee: 1 of 1 new VM cannot be made yet: host local: base image "missing-base\.qcow2" not in pool "default"/);
    expect(await leftovers(`${g}-`)).toEqual([]);
  });

  it("plans a group that needs more memory than the host has as a shortfall, naming the free memory", async () => {
    const g = "e2ef";
    const dir = await project(g, 1, { memoryMiB: 4_000_000 });
    const r = await premiscale(dir, ["plan"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/group e2ef: 1 of 1 new VM cannot be made yet: host local: \d+ MiB free memory < 4000000 MiB needed/);
    expect(r.stdout).toContain("Plan: 0 to add, 0 to change, 0 to destroy.");
  });
});
