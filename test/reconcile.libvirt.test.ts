import { createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git } from "../state/git.js";
import { makeRemote, pushUserCommit, remoteFile, remoteRef, tempDir, userClone } from "../reconciler/testing.js";
import { configText, premiscale, type CliRun } from "./support/cli.js";
import { ensureBlankBase, leftovers, virsh } from "./support/libvirt.js";

// End to end: `premiscale reconcile` as its own process, real git (a bare "remote", clones acting as the user), the
// real libvirtd. Each test has its own group (names start with `rc`) so leftovers can be found and asserted absent.

const DIST = resolve(import.meta.dirname, "../dist/cli");
const SECRET = "rc-webhook-secret";
const fast = ["--shutdown-timeout", "2s"];
/** Every remote and group made here, scaled to 0 in afterAll even after a failed assertion. */
const made: { remote: string; group: string }[] = [];

const entry = [join(DIST, "main.js")];
beforeAll(async () => {
  await ensureBlankBase();
});

/** Runs the CLI to its end. */
function cli(cwd: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return premiscale(cwd, args, env);
}

/** Starts the CLI and returns the running process (stdout/stderr as text lines). */
function start(cwd: string, args: string[], env: Record<string, string> = {}) {
  return execa("node", [...entry, ...args], { cwd, reject: false, lines: true, env: { CI: "true", NO_COLOR: "1", ...env }, stdin: "ignore" });
}

/** The config a user commits: one host (this machine), group `group` of `desired` blank VMs. */
const userConfig = (group: string, desired: number) => configText({ group, desired, max: 2 });

/** A bare remote holding the user's config, and a bootstrap config outside it naming it (`gitops.repo`). */
async function setup(group: string, desired: number, gitops = "") {
  const remote = await makeRemote({ "premiscale.yaml": userConfig(group, desired) });
  made.push({ remote, group });
  const dir = await tempDir("premiscale-rc-");
  const bootstrap = join(dir, "premiscale.yaml");
  await writeFile(bootstrap, `${configText({ group, desired, max: 2 })}gitops:\n  repo: ${remote}\n  workDir: ./work\n${gitops}`);
  return { remote, dir, bootstrap, user: await userClone(remote) };
}

/** The names of the group's VMs in state on the remote's main. */
async function stateNames(remote: string, group: string): Promise<string[]> {
  const text = await remoteFile(remote, "main", `state/groups/${group}.json`);
  return text ? (JSON.parse(text) as { instances: { name: string }[] }).instances.map((i) => i.name).sort() : [];
}

async function domainsOf(group: string): Promise<string[]> {
  return (await virsh("list", "--all", "--name")).split("\n").map((s) => s.trim()).filter((n) => n.startsWith(`${group}-`)).sort();
}

/** Every domain and volume of the group belongs to a VM in state, and every VM in state runs: nothing leaked. */
async function expectStateMatchesHost(remote: string, group: string): Promise<void> {
  const names = await stateNames(remote, group);
  expect(await domainsOf(group)).toEqual(names);
  const vols = (await leftovers(`${group}-`)).filter((n) => !names.includes(n));
  expect(vols.sort()).toEqual(names.flatMap((n) => [`${n}-seed.iso`, `${n}.qcow2`]).sort());
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
  const t = Date.now();
  while (!(await ok())) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type LogLine = { event: string; trigger?: string; outcome?: string; time: string; level: string };
const readLog = (file: string): LogLine[] =>
  existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine) : [];

afterAll(async () => {
  for (const { remote, group } of made) {
    const user = await userClone(remote);
    await pushUserCommit(user, { "premiscale.yaml": userConfig(group, 0) }, `${group}: 0`);
    const dir = await tempDir("premiscale-rc-");
    await writeFile(join(dir, "premiscale.yaml"), `${userConfig(group, 0)}gitops:\n  repo: ${remote}\n  workDir: ./work\n`);
    const r = await cli(dir, ["reconcile", "--mode", "auto", ...fast]);
    expect(await leftovers(`${group}-`), `cleanup of ${group}: ${JSON.stringify(r)}`).toEqual([]);
  }
});

describe("premiscale reconcile on a real libvirtd", () => {
  it("applies the user's commit and pushes one state commit; the user's next commit is applied by the next pass", async () => {
    const g = "rcna";
    const { remote, dir, user } = await setup(g, 1);
    const first = await cli(dir, ["reconcile", ...fast]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.");
    expect(await domainsOf(g)).toHaveLength(1);
    expect(await stateNames(remote, g)).toEqual(await domainsOf(g));
    expect((await git(remote, ["log", "-1", "--format=%s", "main"])).stdout.trim()).toBe("premiscale apply: 1 added, 0 changed, 0 destroyed");
    expect(await remoteRef(remote, "refs/premiscale/lock")).toBeNull();

    await pushUserCommit(user, { "premiscale.yaml": userConfig(g, 2) }, `${g}: 2`);
    const second = await cli(dir, ["reconcile", ...fast]);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.");
    expect(await domainsOf(g)).toHaveLength(2);
    await expectStateMatchesHost(remote, g);
    expect((await cli(dir, ["reconcile"])).stdout).toContain("Reconciled: no changes.");
    // Two state commits on top of the user's two.
    expect(Number((await git(remote, ["rev-list", "--count", "main"])).stdout.trim())).toBe(4);
  });

  it("--watch: a signed webhook starts a pass within a second or two, a forged one gets 401; SIGTERM mid-apply exits 0, and a restart converges", async () => {
    const g = "rcnw";
    const port = await freePort();
    const { remote, dir, user } = await setup(g, 0, `  intervalSeconds: 3600\n  webhook:\n    listen: 127.0.0.1:${port}\n    secretEnv: RC_WEBHOOK_SECRET\n`);
    const logFile = join(dir, "reconcile.log");
    const child = start(dir, ["reconcile", "--watch", "--parallelism", "1", "--log-file", logFile, ...fast], { RC_WEBHOOK_SECRET: SECRET });
    try {
      await waitFor("the first pass", () => readLog(logFile).some((l) => l.event === "pass_done"));
      await pushUserCommit(user, { "premiscale.yaml": userConfig(g, 2) }, `${g}: 2`);
      const body = JSON.stringify({ ref: "refs/heads/main" });
      const post = (secret: string) =>
        fetch(`http://127.0.0.1:${port}/webhook`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}` },
          body,
        });
      expect((await post("forged")).status).toBe(401);
      const sent = Date.now();
      expect((await post(SECRET)).status).toBe(202);
      await waitFor("the webhook's pass", () => readLog(logFile).some((l) => l.event === "pass_start" && l.trigger === "webhook"), 10_000);
      const started = Date.parse(readLog(logFile).find((l) => l.event === "pass_start" && l.trigger === "webhook")!.time);
      expect(started - sent).toBeLessThan(2_000);

      // SIGTERM once the first of the two creates is under way (parallelism 1: the second has not started).
      await waitFor("the first create", () => readLog(logFile).some((l) => l.event === "apply_start"));
      child.kill("SIGTERM");
      const ended = await child;
      expect(ended.exitCode).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    const log = readLog(logFile);
    expect(log.filter((l) => l.event === "pass_done").map((l) => l.outcome)).toEqual(["no_changes", "interrupted"]);
    expect(log.at(-1)?.event).toBe("watch_stopped");
    expect(await remoteRef(remote, "refs/premiscale/lock")).toBeNull();
    // The create in flight finished and is in state; the other never started.
    expect(await stateNames(remote, g)).toHaveLength(1);
    await expectStateMatchesHost(remote, g);

    const restart = await cli(dir, ["reconcile", ...fast]);
    expect(restart.code).toBe(0);
    expect(restart.stdout).toContain("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.");
    expect(await stateNames(remote, g)).toHaveLength(2);
    await expectStateMatchesHost(remote, g);
  });

  it("of two reconcilers racing on one remote exactly one applies, the other names the holder; a remote that moved during the apply is re-planned, never forced", async () => {
    const g = "rcnr";
    const { remote, dir, user } = await setup(g, 1);
    const other = await tempDir("premiscale-rc-");
    await writeFile(join(other, "premiscale.yaml"), readFileSync(join(dir, "premiscale.yaml"), "utf8"));
    const [a, b] = await Promise.all([cli(dir, ["reconcile", ...fast]), cli(other, ["reconcile", ...fast])]);
    const applied = [a, b].filter((r) => r.code === 0);
    const locked = [a, b].filter((r) => r.code === 1);
    expect(applied).toHaveLength(1);
    expect(locked).toHaveLength(1);
    expect(applied[0]!.stdout).toContain("Apply complete! Resources: 1 added");
    expect(locked[0]!.stderr).toMatch(/The config repository is locked by \S+@\S+ \(pid \d+, reconcile/);
    expect(await domainsOf(g)).toHaveLength(1);

    // The user pushes an unrelated commit while the reconciler creates the second VM.
    await pushUserCommit(user, { "premiscale.yaml": userConfig(g, 2) }, `${g}: 2`);
    const child = start(dir, ["reconcile", ...fast]);
    let pushed: string | null = null;
    for await (const line of child) {
      if (pushed === null && line.includes(": creating...")) pushed = await pushUserCommit(user, { "NOTES.md": "a note pushed during the apply\n" }, "notes");
    }
    const r = await child;
    expect(r.exitCode).toBe(0);
    expect(pushed).not.toBeNull();
    expect(r.stderr.join("\n")).toContain("The branch moved on the remote while reconciling");
    // The user's commit is kept (the remote refuses non-fast-forward pushes: nothing was forced) under the state commit.
    expect((await git(remote, ["merge-base", "--is-ancestor", pushed!, "main"], { allowFail: true })).exitCode).toBe(0);
    expect((await git(remote, ["log", "-1", "--format=%s", "main"])).stdout.trim()).toBe("premiscale apply: 1 added, 0 changed, 0 destroyed");
    expect(await stateNames(remote, g)).toHaveLength(2);
    await expectStateMatchesHost(remote, g);
  });

  it("review mode: a pass pushes premiscale/plan/<id> with plan.json and plan.md; merging it lets the next pass apply it", async () => {
    const g = "rcnv";
    const { remote, dir, user } = await setup(g, 1, "  mode: review\n");
    const published = await cli(dir, ["reconcile"]);
    expect(published.code).toBe(0);
    const branch = /premiscale\/plan\/[0-9a-f]{12}/.exec(published.stdout)?.[0];
    expect(branch).toBeDefined();
    expect(await remoteFile(remote, branch!, ".premiscale/plan.json")).toContain(`"group": "${g}"`);
    expect(await remoteFile(remote, branch!, ".premiscale/plan.md")).toContain("**Plan: 1 to add, 0 to change, 0 to destroy.**");
    expect(await domainsOf(g)).toEqual([]);

    await git(user, ["pull", "--quiet", "--rebase", "origin", "main"]);
    await git(user, ["fetch", "--quiet", "origin", branch!]);
    await git(user, ["-c", "user.name=Reviewer", "-c", "user.email=r@example.invalid", "merge", "--quiet", "--no-ff", "--no-edit", "FETCH_HEAD"]);
    await git(user, ["push", "--quiet", "origin", "HEAD:main"]);
    const applied = await cli(dir, ["reconcile", ...fast]);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain(`Applying the merged plan ${branch!.slice(-12)}.`);
    expect(applied.stdout).toContain("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.");
    expect(await remoteFile(remote, "main", ".premiscale/plan.json")).toBeNull();
    await expectStateMatchesHost(remote, g);
    expect(await stateNames(remote, g)).toHaveLength(1);
  });
});
