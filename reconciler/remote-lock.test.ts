import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { git } from "../state/git.js";
import { RemoteLock } from "./remote-lock.js";
import { makeRemote, remoteRef, tempDir, userClone } from "./testing.js";

const REF = "refs/premiscale/lock";

describe("RemoteLock", () => {
  it("lets exactly one of two machines racing for it win, every time", async () => {
    const remote = await makeRemote({ "README.md": "x\n" });
    const a = new RemoteLock({ dir: await userClone(remote), identity: { host: "machine-a", pid: 1 } });
    const b = new RemoteLock({ dir: await userClone(remote), identity: { host: "machine-b", pid: 2 } });
    const winners: string[] = [];
    for (let round = 0; round < 15; round++) {
      const [ra, rb] = await Promise.all([a.acquire(), b.acquire()]);
      const won = [ra, rb].filter((r) => r.acquired);
      expect(won).toHaveLength(1);
      const lost = [ra, rb].find((r) => !r.acquired)!;
      const held = won[0]!;
      if (!held.acquired || lost.acquired) throw new Error("unreachable");
      // The loser is told who holds it, and that is the winner's record on the remote.
      expect(lost.holder.id).toBe(held.lock.holder.id);
      expect(await remoteRef(remote, REF)).toBe(held.lock.sha);
      winners.push(held.lock.holder.host);
      await held.lock.release();
      expect(await remoteRef(remote, REF)).toBeNull();
    }
    expect(winners).toHaveLength(15);
  });

  it("records the holder's identity, when it was taken and until when", async () => {
    const remote = await makeRemote({ "README.md": "x\n" });
    const now = new Date("2030-01-01T00:00:00Z");
    const lock = new RemoteLock({ dir: await userClone(remote), ttlSeconds: 60, now: () => now, identity: { host: "kvm-ctl", pid: 42, user: "ops" } });
    const r = await lock.acquire();
    if (!r.acquired) throw new Error("not acquired");
    expect(r.tookOverFrom).toBeNull();
    const message = (await git(remote, ["log", "-1", "--format=%B", REF])).stdout;
    expect(message).toContain("premiscale lock: reconcile by ops@kvm-ctl (pid 42) until 2030-01-01T00:01:00.000Z");
    const other = new RemoteLock({ dir: await userClone(remote), now: () => now });
    const seen = await other.read();
    expect(seen?.holder).toEqual({ id: r.lock.holder.id, host: "kvm-ctl", pid: 42, user: "ops", operation: "reconcile", acquiredAt: "2030-01-01T00:00:00.000Z", expiresAt: "2030-01-01T00:01:00.000Z" });
  });

  it("takes over an expired lock, and refuses the old holder's release afterwards", async () => {
    const remote = await makeRemote({ "README.md": "x\n" });
    let now = new Date("2030-01-01T00:00:00Z");
    const clock = () => now;
    const dead = new RemoteLock({ dir: await userClone(remote), ttlSeconds: 30, now: clock, identity: { host: "dead" } });
    const alive = new RemoteLock({ dir: await userClone(remote), ttlSeconds: 30, now: clock, identity: { host: "alive" } });
    const first = await dead.acquire();
    if (!first.acquired) throw new Error("not acquired");
    const blocked = await alive.acquire();
    expect(blocked.acquired).toBe(false);
    if (!blocked.acquired) expect(blocked.holder.host).toBe("dead");

    now = new Date("2030-01-01T00:00:31Z");
    const second = await alive.acquire();
    if (!second.acquired) throw new Error("expired lock not taken over");
    expect(second.tookOverFrom?.host).toBe("dead");
    expect(await remoteRef(remote, REF)).toBe(second.lock.sha);

    await expect(first.lock.release()).rejects.toMatchObject({ code: "lock_not_held", message: expect.stringContaining("@alive (pid") });
    await expect(first.lock.renew()).rejects.toMatchObject({ code: "lock_not_held" });
    expect(await remoteRef(remote, REF)).toBe(second.lock.sha);
    await second.lock.release();
    expect(await remoteRef(remote, REF)).toBeNull();
  });

  it("renews: the expiry moves on, so a waiter cannot take it over", async () => {
    const remote = await makeRemote({ "README.md": "x\n" });
    let now = new Date("2030-01-01T00:00:00Z");
    const a = new RemoteLock({ dir: await userClone(remote), ttlSeconds: 30, now: () => now });
    const b = new RemoteLock({ dir: await userClone(remote), ttlSeconds: 30, now: () => now });
    const r = await a.acquire();
    if (!r.acquired) throw new Error("not acquired");
    now = new Date("2030-01-01T00:00:20Z");
    await r.lock.renew();
    expect(r.lock.holder.expiresAt).toBe("2030-01-01T00:00:50.000Z");
    expect(r.lock.holder.acquiredAt).toBe("2030-01-01T00:00:00.000Z");
    now = new Date("2030-01-01T00:00:40Z");
    const other = await b.acquire();
    expect(other.acquired).toBe(false);
    if (!other.acquired) expect(other.holder.expiresAt).toBe("2030-01-01T00:00:50.000Z");
    await r.lock.release();
  });

  it("waits with waitMs until the holder releases, saying once who holds it", async () => {
    const remote = await makeRemote({ "README.md": "x\n" });
    const a = new RemoteLock({ dir: await userClone(remote), identity: { host: "first" } });
    const b = new RemoteLock({ dir: await userClone(remote) });
    const held = await a.acquire();
    if (!held.acquired) throw new Error("not acquired");
    const waits: string[] = [];
    // The holder lets go once the waiter has seen the lock held, whatever the timing.
    let releasing: Promise<void> | null = null;
    const r = await b.acquire({
      waitMs: 10_000,
      onWait: (h) => {
        waits.push(h.host);
        releasing = held.lock.release();
      },
    });
    expect(releasing).not.toBeNull();
    await releasing;
    expect(r.acquired).toBe(true);
    expect(waits).toEqual(["first"]);
    if (r.acquired) await r.lock.release();
  });

  it("force-unlocks only with the holder's ID", async () => {
    const remote = await makeRemote({ "README.md": "x\n" });
    const a = new RemoteLock({ dir: await userClone(remote) });
    const r = await a.acquire();
    if (!r.acquired) throw new Error("not acquired");
    const b = new RemoteLock({ dir: await userClone(remote) });
    await expect(b.forceUnlock("not-the-id")).rejects.toMatchObject({ code: "lock_id_mismatch" });
    expect((await b.forceUnlock(r.lock.holder.id)).id).toBe(r.lock.holder.id);
    expect(await remoteRef(remote, REF)).toBeNull();
    await expect(b.forceUnlock(r.lock.holder.id)).rejects.toMatchObject({ code: "not_locked" });
  });

  it("reports an unreachable remote as a clear error naming it", async () => {
    const dir = await userClone(await makeRemote({ "README.md": "x\n" }));
    const gone = join(await tempDir(), "no-such-remote.git");
    const lock = new RemoteLock({ dir, remote: gone });
    await expect(lock.acquire()).rejects.toMatchObject({
      name: "RemoteUnreachableError",
      code: "remote_unreachable",
      message: expect.stringContaining(`git remote ${gone} cannot be reached`),
      hint: expect.stringContaining("git ls-remote"),
    });
    const http = new RemoteLock({ dir, remote: "http://user:s3cret@127.0.0.1:9/repo.git" });
    const err = await http.acquire().catch((e: Error) => e);
    expect(err).toMatchObject({ code: "remote_unreachable" });
    expect((err as Error).message).not.toContain("s3cret");
  });
});
