import { spawn } from "node:child_process";
import { access, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { GitStateStore } from "./git-state-store.js";
import { git } from "./git.js";
import { describeStateStoreContract, instance } from "./state-store.contract.js";

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "premiscale-state-"));
}

describeStateStoreContract("GitStateStore", async () => new GitStateStore(join(await tempDir(), "state")));

describe("GitStateStore", () => {
  it("creates a git repository and records one commit per apply with the given message", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    const lock = await store.lock("apply", 1000);
    await lock.init("lin");
    await lock.putInstance("web", instance("web-1"));
    await lock.putInstance("web", instance("web-2"));
    expect(await lock.commit("apply: web 0 → 2")).toMatch(/^[0-9a-f]{40}$/);
    expect(await lock.commit("nothing new")).toBeNull();
    await lock.release();
    const log = (await git(dir, ["log", "--format=%s"])).stdout.trim().split("\n");
    expect(log).toEqual(["apply: web 0 → 2"]);
    const files = (await git(dir, ["ls-files"])).stdout.trim().split("\n").sort();
    expect(files).toEqual([".gitignore", "groups/web.json", "state.json"]);
  });

  it("changes only the changed group's file in a commit", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    let lock = await store.lock("apply", 1000);
    await lock.init("lin");
    for (const g of ["a", "b", "c"]) await lock.putInstance(g, instance(`${g}-1`));
    await lock.commit("first");
    await lock.release();
    lock = await store.lock("apply", 1000);
    await lock.putInstance("b", instance("b-2"));
    await lock.commit("second");
    await lock.release();
    const changed = (await git(dir, ["show", "--name-only", "--format=", "HEAD"])).stdout.trim().split("\n").sort();
    expect(changed).toEqual(["groups/b.json", "state.json"]);
  });

  it("commits only the state directory when it lives inside another repository", async () => {
    const repo = await tempDir();
    await git(repo, ["init", "--quiet", "--initial-branch=main"]);
    await git(repo, ["config", "user.email", "u@example.invalid"]);
    await git(repo, ["config", "user.name", "user"]);
    await writeFile(join(repo, "premiscale.yaml"), "version: v1alpha1\n");
    await git(repo, ["add", "premiscale.yaml"]);
    const store = new GitStateStore(join(repo, "state"));
    const lock = await store.lock("apply", 1000);
    await lock.init("lin");
    await lock.commit("state only");
    await lock.release();
    const committed = (await git(repo, ["show", "--name-only", "--format=", "HEAD"])).stdout.trim().split("\n").sort();
    expect(committed).toEqual(["state/.gitignore", "state/state.json"]);
    expect((await git(repo, ["diff", "--cached", "--name-only"])).stdout.trim().split("\n")).toEqual(["premiscale.yaml"]);
  });

  it("removes a lock left by a process of this machine that no longer exists", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    const lock = await store.lock("apply", 1000);
    const info = JSON.parse(await readFile(join(dir, ".premiscale.lock"), "utf8"));
    await writeFile(join(dir, ".premiscale.lock"), JSON.stringify({ ...info, Pid: 2 ** 22 + 12345 }));
    const events: string[] = [];
    const next = await store.lock("apply", 1000, (e) => events.push(e.type));
    expect(events).toContain("lock_stale_removed");
    await next.release();
    await lock.release();
  });

  it("takes over a lock a previous leader of the same Lease left in another pod (another host, pid 1), and no other", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    const lockFile = join(dir, ".premiscale.lock");
    await (await store.lock("setup", 1000)).release();
    // What a replica in another pod leaves when it is killed mid-apply: its hostname, pid 1 of its own namespace.
    const dead = { ID: "0f4f1ad2-dead-4ead-8ead-00000000beef", Operation: "kubernetes native (premiscale serve)", Who: "root@premiscale-7c9-a", Version: "0.0.0", Created: new Date().toISOString(), Pid: 1, Host: "premiscale-7c9-a" };
    // Without a Lease (a manual apply in another pod) or under another Lease it is someone else's: waited on.
    for (const holder of [dead, { ...dead, Leader: "default/other" }]) {
      await writeFile(lockFile, JSON.stringify(holder));
      await expect(store.lock("kubernetes", 300, undefined, { leaderOf: "default/premiscale" })).rejects.toThrow(/state is locked by root@premiscale-7c9-a/);
    }
    // Recorded under the Lease this process now leads: the previous leader's, taken over at once.
    await writeFile(lockFile, JSON.stringify({ ...dead, Leader: "default/premiscale" }));
    const events: { type: string; holder?: unknown }[] = [];
    const t = performance.now();
    const lock = await store.lock("kubernetes", 10_000, (e) => events.push(e), { leaderOf: "default/premiscale" });
    expect(performance.now() - t).toBeLessThan(2000);
    expect(events).toContainEqual({ type: "lock_stale_removed", holder: { ...dead, Leader: "default/premiscale" } });
    expect(JSON.parse(await readFile(lockFile, "utf8"))).toMatchObject({ ID: lock.info.ID, Leader: "default/premiscale", Pid: process.pid });
    // The leader's own lock, held by this process, is never taken over by itself (e.g. a second store on the same dir).
    await expect(new GitStateStore(dir).lock("kubernetes", 300, undefined, { leaderOf: "default/premiscale" })).rejects.toThrow(/state is locked/);
    await lock.release();
    const again = await store.lock("kubernetes", 1000, undefined, { leaderOf: "default/premiscale" });
    await again.release();
  });

  it("removes temporary files that killed writers left behind when the lock is taken, and only those", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    const first = await store.lock("apply", 1000);
    await first.init("lin");
    await first.putInstance("web", instance("web-1"));
    await first.commit("one");
    await first.release();
    // A real process killed with SIGKILL (its pid now runs nothing), and one that is still alive.
    const killed = spawn("sleep", ["60"]);
    const alive = spawn("sleep", ["60"]);
    try {
      const gone = new Promise((r) => killed.once("exit", r));
      killed.kill("SIGKILL");
      await gone;
      const [d, a] = [killed.pid!, alive.pid!];
      await mkdir(join(dir, ".premiscale", "check-ins"), { recursive: true });
      const leftovers = [`state.json.${d}.tmp`, `groups/web.json.${d}.tmp`, `groups/web.json.${a}.tmp`, `.premiscale.lock.${d}.1b2c-3d.tmp`, `.premiscale.lock.${d}.stale.tmp`, `.premiscale/server.secret.${d}.tmp`, `.premiscale/check-ins/x.json.${d}.tmp`];
      const inFlight = [`.premiscale.lock.${a}.4e5f.tmp`, `.premiscale/check-ins/y.json.${a}.tmp`, `notes.tmp`];
      for (const f of [...leftovers, ...inFlight]) await writeFile(join(dir, f), "half");
      const events: { type: string; files?: string[] }[] = [];
      const lock = await store.lock("apply", 1000, (e) => events.push(e as never));
      expect(events.find((e) => e.type === "leftovers_removed")?.files).toEqual([...leftovers].sort());
      const exists = (f: string) => access(join(dir, f)).then(() => true, () => false);
      for (const f of leftovers) expect(await exists(f), f).toBe(false);
      for (const f of inFlight) expect(await exists(f), f).toBe(true);
      // Nothing the sweep removed was state: the group file is intact and nothing was recovered as uncommitted.
      expect(lock.current().groups[0]?.instances.map((i) => i.name)).toEqual(["web-1"]);
      expect(events.map((e) => e.type)).not.toContain("recovered_uncommitted");
      await lock.release();
    } finally {
      alive.kill("SIGKILL");
    }
  });

  it("reports a corrupt state file instead of guessing", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    const lock = await store.lock("apply", 1000);
    await lock.init("lin");
    await lock.release();
    await writeFile(join(dir, "state.json"), "{ not json");
    await expect(store.read()).rejects.toThrow(/state\.json is not valid JSON/);
  });

  it("carries writes left uncommitted by an interrupted apply into the next commit", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    const crashed = await store.lock("apply", 1000);
    await crashed.init("lin");
    await crashed.putInstance("web", instance("web-1"));
    await crashed.release(); // no commit: as if the process died after the write
    const events: string[] = [];
    const lock = await store.lock("apply", 1000, (e) => events.push(e.type));
    expect(events).toContain("recovered_uncommitted");
    expect(await lock.commit("recovered")).not.toBeNull();
    await lock.release();
  });

  it("finds uncommitted writes file by file when the new state directory is untracked inside another repository", async () => {
    const repo = await tempDir();
    await git(repo, ["init", "--quiet", "--initial-branch=main"]);
    const store = new GitStateStore(join(repo, "state"));
    const crashed = await store.lock("apply", 1000);
    await crashed.init("lin");
    await crashed.putInstance("web", instance("web-1"));
    await crashed.release();
    const recovered: string[][] = [];
    const lock = await store.lock("apply", 1000, (e) => void (e.type === "recovered_uncommitted" && recovered.push(e.files)));
    expect(recovered).toEqual([["state/groups/web.json", "state/state.json"]]);
    await lock.release();
  });

  it("commits as premiscale@<host> where git has no identity, and as the user where it has one", async () => {
    // No global or system git config: a fresh machine or a service account.
    vi.stubEnv("GIT_CONFIG_GLOBAL", "/dev/null");
    vi.stubEnv("GIT_CONFIG_NOSYSTEM", "1");
    try {
      const dir = join(await tempDir(), "state");
      const store = new GitStateStore(dir);
      let lock = await store.lock("apply", 1000);
      await lock.init("lin");
      await lock.commit("first");
      await lock.release();
      expect((await git(dir, ["log", "-1", "--format=%an <%ae>"])).stdout.trim()).toBe(`premiscale <premiscale@${hostname()}>`);
      await git(dir, ["config", "user.name", "Ops"]);
      await git(dir, ["config", "user.email", "ops@example.invalid"]);
      lock = await store.lock("apply", 1000);
      await lock.putInstance("web", instance("web-1"));
      await lock.commit("second");
      await lock.release();
      expect((await git(dir, ["log", "-1", "--format=%an <%ae>"])).stdout.trim()).toBe("Ops <ops@example.invalid>");
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe("GitStateStore locks under contention", () => {
  it("gives the lock to exactly one of many concurrent takers", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    await (await store.lock("init", 1000)).release(); // create the repository first
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => store.lock("apply", 0)));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(String(r.reason)).toMatch(/state is locked by/);
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof store.lock>>>).value.release();
  });

  it("lets exactly one of several waiters take over a dead holder's lock", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    const held = await store.lock("apply", 1000);
    const info = JSON.parse(await readFile(join(dir, ".premiscale.lock"), "utf8"));
    await writeFile(join(dir, ".premiscale.lock"), JSON.stringify({ ...info, Pid: 2 ** 22 + 4321 }));
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => store.lock("apply", 200)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    await held.release();
  });

  it("says what to do about a lock file it cannot read", async () => {
    const dir = join(await tempDir(), "state");
    const store = new GitStateStore(dir);
    await (await store.lock("init", 1000)).release();
    await writeFile(join(dir, ".premiscale.lock"), "");
    await expect(store.lock("apply", 0)).rejects.toThrow(/cannot be read/);
  });
});
