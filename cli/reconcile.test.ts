import { createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { FakeProvider } from "../providers/fake-provider.js";
import { git } from "../state/git.js";
import { RemoteLock } from "../reconciler/remote-lock.js";
import { makeRemote, pushUserCommit, remoteFile, remoteRef, tempDir, userClone } from "../reconciler/testing.js";
import { reportError } from "./main.js";
import type { Output } from "./output.js";
import { describeEvent, registerReconcileCommand, runRemoteForceUnlock, type ReconcileRuntime } from "./reconcile.js";

const config = (desired: number, gitops = "") => `version: v1alpha1
state:
  path: ./premiscale-state
hosts:
  - name: kvm1
    uri: test:///default
groups:
  - name: rcweb
    max: 4
    desired: ${desired}
    hosts: [kvm1]
    readiness: { checkIn: false }
    template: { memoryMiB: 128, disk: { baseImage: base.qcow2 } }
${gitops}`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Output = { out: (t) => out.push(t), err: (t) => err.push(t), color: false, interactive: false, ask: () => Promise.reject(new Error("never asks")) };
  return { io, out, err };
}

/** Runs `premiscale ARGS` in-process with the reconcile command registered, as cli/main.ts does. */
async function run(args: string[], rt: ReconcileRuntime): Promise<Run> {
  const { io, out, err } = capture();
  let code = 0;
  const program = new Command("premiscale")
    .option("-c, --config <file>")
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, "")), writeErr: (s) => io.err(s.replace(/\n$/, "")) })
    .exitOverride();
  registerReconcileCommand(program, io, (c) => (code = c), () => program.opts<{ config?: string }>().config, rt);
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    code = reportError(io, e);
  }
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

/** A bare remote, and a bootstrap config outside it that names it (gitops.repo). */
async function bootstrapped(desired: number, gitopsExtra = "") {
  const remote = await makeRemote({ "premiscale.yaml": config(desired) });
  const dir = await tempDir();
  const file = join(dir, "bootstrap.yaml");
  await writeFile(file, config(desired, `gitops:\n  repo: ${remote}\n  workDir: ./work\n${gitopsExtra}`));
  return { remote, file, dir };
}

describe("premiscale reconcile", () => {
  it("runs one pass on the repository gitops.repo names: applies, pushes state, says so; then finds nothing to do", async () => {
    const { remote, file } = await bootstrapped(2);
    const provider = new FakeProvider("kvm1");
    const first = await run(["-c", file, "reconcile", "--shutdown-timeout", "1s"], { makeProvider: () => provider });
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`Reconciling main of ${remote} (mode auto).`);
    expect(first.stdout).toContain("Plan: 2 to add, 0 to change, 0 to destroy.");
    expect(first.stdout).toMatch(/\+ rcweb\[rcweb-[0-9a-f]{8}\]: created/);
    expect(first.stdout).toContain("Apply complete! Resources: 2 added, 0 changed, 0 destroyed.");
    expect(first.stdout).toContain("Reconciled: applied plan");
    expect(provider.domains.size).toBe(2);
    expect(await remoteFile(remote, "main", "premiscale-state/groups/rcweb.json")).toContain("rcweb-");

    const again = await run(["-c", file, "reconcile", "--once"], { makeProvider: () => provider });
    expect(again).toMatchObject({ code: 0 });
    expect(again.stdout).toContain("Reconciled: no changes.");
  });

  it("follows the repository holding the config file when gitops.repo is unset, and publishes a plan in review mode", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(1, "gitops:\n  workDir: ../premiscale-work\n") });
    const user = await userClone(remote);
    const provider = new FakeProvider("kvm1");
    const r = await run(["-c", join(user, "premiscale.yaml"), "reconcile", "--mode", "review"], { makeProvider: () => provider });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Published plan ([0-9a-f]{12}) on branch premiscale\/plan\/\1/);
    expect(provider.calls).toEqual([]);
    const branch = /premiscale\/plan\/[0-9a-f]{12}/.exec(r.stdout)![0];
    // Published to the user's repository (its origin is not involved).
    expect((await git(user, ["branch", "--list", branch])).stdout).toContain(branch);
    expect(await remoteRef(remote, `refs/heads/${branch}`)).toBeNull();
    // premiscale's clone is gitops.workDir, relative to the config file.
    expect(existsSync(join(dirname(user), "premiscale-work", ".git"))).toBe(true);
  });

  it("refuses a work directory inside the repository it follows", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(1, "gitops:\n  workDir: ./work\n") });
    const user = await userClone(remote);
    const r = await run(["-c", join(user, "premiscale.yaml"), "reconcile"], { makeProvider: () => new FakeProvider("kvm1") });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("gitops.workDir");
    expect(r.stderr).toContain("is inside the repository");
  });

  it("refuses a work directory inside the repository whose name starts with two dots, such as ..cache", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(1, "gitops:\n  workDir: ./..cache/work\n") });
    const user = await userClone(remote);
    const provider = new FakeProvider("kvm1");
    const r = await run(["-c", join(user, "premiscale.yaml"), "reconcile"], { makeProvider: () => provider });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`gitops.workDir ${join(user, "..cache", "work")} is inside the repository`);
    expect(existsSync(join(user, "..cache"))).toBe(false);
    expect(provider.calls).toEqual([]);
  });

  it("exits 1 naming the holder when another reconciler holds the lock", async () => {
    const { remote, file } = await bootstrapped(1);
    const other = await userClone(remote);
    const held = await new RemoteLock({ dir: other, ttlSeconds: 600, identity: { host: "machine-b", pid: 4242 } }).acquire();
    expect(held.acquired).toBe(true);
    const provider = new FakeProvider("kvm1");
    const r = await run(["-c", file, "reconcile"], { makeProvider: () => provider });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/locked by .*@machine-b \(pid 4242/);
    expect(r.stdout).toContain("premiscale force-unlock --remote");
    expect(provider.calls).toEqual([]);

    const id = held.acquired ? held.lock.holder.id : "";
    await expect(runRemoteForceUnlock(capture().io, file, id)).rejects.toThrow("force-unlock needs confirmation");
    await expect(runRemoteForceUnlock(capture().io, file, "not-the-id", { force: true })).rejects.toThrow("lock ID not-the-id does not match");
    const { io, out } = capture();
    expect(await runRemoteForceUnlock(io, file, id, { force: true })).toBe(0);
    expect(out.join("\n")).toContain("machine-b");
    expect(await remoteRef(remote, "refs/premiscale/lock")).toBeNull();
    expect((await run(["-c", file, "reconcile"], { makeProvider: () => provider })).code).toBe(0);
  });

  it("refuses --watch when the webhook secret's variable is unset, and a pid file naming a live process", async () => {
    const { file, dir } = await bootstrapped(1, "  webhook:\n    listen: 127.0.0.1:8971\n    secretEnv: RC_TEST_SECRET\n");
    const w = await run(["-c", file, "reconcile", "--watch"], { makeProvider: () => new FakeProvider("kvm1"), env: {} });
    expect(w.code).toBe(1);
    expect(w.stderr).toContain("gitops.webhook.secretEnv names RC_TEST_SECRET, which is not set");
    const pidFile = join(dir, "premiscale.pid");
    // The parent of this test process is alive and not us.
    await writeFile(pidFile, `${process.ppid}\n`);
    const p = await run(["-c", file, "reconcile", "--pid-file", pidFile], { makeProvider: () => new FakeProvider("kvm1") });
    expect(p.code).toBe(1);
    expect(p.stderr).toContain(`names process ${process.ppid}, which is running`);
    const d = await run(["-c", file, "reconcile", "-d"], { env: {} });
    expect(d.code).toBe(1);
    expect(d.stderr).toContain("--daemon needs a log file");
  });

  it("--watch: a signed webhook starts a pass at once, a forged one gets 401; stopping releases the lock and exits 0", async () => {
    const { remote, file, dir } = await bootstrapped(1, "  intervalSeconds: 3600\n  webhook:\n    listen: 127.0.0.1:0\n    secretEnv: RC_TEST_SECRET\n");
    // Port 0 is refused by the config: pick a free one.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    await writeFile(file, readFileSync(file, "utf8").replace("127.0.0.1:0", `127.0.0.1:${port}`));
    const provider = new FakeProvider("kvm1");
    const stop = new AbortController();
    let url: string | null = null;
    const logFile = join(dir, "reconcile.log");
    const running = run(["-c", file, "reconcile", "--watch", "--log-file", logFile], {
      makeProvider: () => provider,
      signal: stop.signal,
      env: { RC_TEST_SECRET: "s3cret" },
      onWatching: (u) => (url = u),
    });
    const waitFor = async (ok: () => boolean, ms = 10_000) => {
      const t = Date.now();
      while (!ok() && Date.now() - t < ms) await new Promise((r) => setTimeout(r, 20));
      return ok();
    };
    const passesDone = () => (existsSync(logFile) ? readFileSync(logFile, "utf8").split('"event":"pass_done"').length - 1 : 0);
    expect(await waitFor(() => passesDone() === 1)).toBe(true);
    expect(provider.domains.size).toBe(1);
    await pushUserCommit(await userClone(remote), { "premiscale.yaml": config(2) }, "rcweb: 2");
    const body = JSON.stringify({ ref: "refs/heads/main" });
    const sign = (secret: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
    const post = (sig: string) => fetch(url!, { method: "POST", headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": sig }, body });
    expect((await post(sign("forged"))).status).toBe(401);
    const sent = Date.now();
    expect((await post(sign("s3cret"))).status).toBe(202);
    expect(await waitFor(() => passesDone() === 2)).toBe(true);
    expect(Date.now() - sent).toBeLessThan(5_000);
    expect(provider.domains.size).toBe(2);
    stop.abort();
    const r = await running;
    expect(r.code).toBe(0);
    expect(await remoteRef(remote, "refs/premiscale/lock")).toBeNull();
    const lines = readFileSync(logFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { event: string; trigger?: string; level: string });
    expect(lines.filter((l) => l.event === "pass_start").map((l) => l.trigger)).toEqual(["start", "webhook"]);
    expect(lines.some((l) => l.event === "webhook_rejected" && l.level === "warn")).toBe(true);
    expect(lines.filter((l) => l.event === "pass_done").map((l) => (l as { outcome?: string }).outcome)).toEqual(["applied", "applied"]);
    expect(lines.at(-1)?.event).toBe("watch_stopped");
  });
});

describe("describeEvent", () => {
  it("names the holder of a held lock, and shows plan errors as errors", () => {
    const holder = { id: "abc", host: "h", pid: 1, user: "u", operation: "reconcile", acquiredAt: "t0", expiresAt: "t1" };
    expect(describeEvent({ type: "lock_held", holder })).toEqual({ level: "warn", text: expect.stringContaining("locked by u@h (pid 1, reconcile, since t0) until t1, ID abc") });
    const d = describeEvent({ type: "plan_ready", planId: "p", summary: "S", changes: 0, drift: 0, errors: [{ group: "g", message: "no room" }], warnings: [], unreachable: [] });
    expect(d).toEqual({ level: "error", text: "Plan p: S\nError: group g: no room" });
  });
});
