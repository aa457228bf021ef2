import { describe, expect, it } from "vitest";
import type { StateStore } from "./state-store.js";
import type { Instance } from "./types.js";

/** An instance for tests. */
export function instance(name: string, host = "h1"): Instance {
  return { name, uuid: `${name}-uuid`, host, created: "2026-11-23T00:00:00.000Z", status: "running" };
}

/** The behaviour every StateStore must have; run it against each implementation. */
export function describeStateStoreContract(name: string, makeStore: () => Promise<StateStore>): void {
  describe(`StateStore contract: ${name}`, () => {
    it("reads null before any state exists", async () => {
      const store = await makeStore();
      expect(await store.read()).toBeNull();
    });

    it("creates state once with the given lineage and raises the serial on every write", async () => {
      const store = await makeStore();
      const lock = await store.lock("apply", 1000);
      const s = await lock.init("lineage-a");
      expect(s.lineage).toBe("lineage-a");
      await lock.init("lineage-b");
      await lock.putInstance("web", instance("web-2"));
      await lock.putInstance("web", instance("web-1"));
      await lock.putInstance("db", instance("db-1"));
      await lock.removeInstance("web", "web-2");
      await lock.release();

      const read = await store.read();
      expect(read?.lineage).toBe("lineage-a");
      expect(read?.serial).toBe(s.serial + 4);
      expect(read?.groups.map((g) => [g.name, g.instances.map((i) => i.name)])).toEqual([
        ["db", ["db-1"]],
        ["web", ["web-1"]],
      ]);
    });

    it("keeps a group's scaling history with its instances, also when the group has no instance left", async () => {
      const store = await makeStore();
      const lock = await store.lock("apply", 1000);
      await lock.init("l");
      await lock.putInstance("web", instance("web-1"));
      const history = { recommendations: [{ at: "2026-11-23T00:00:00.000Z", desired: 3 }], events: [{ at: "2026-11-23T00:00:00.000Z", kind: "add" as const, count: 1 }] };
      await lock.putHistory("web", history);
      await lock.removeInstance("web", "web-1");
      const serial = lock.current().serial;
      await lock.putHistory("web", history); // unchanged: no write
      expect(lock.current().serial).toBe(serial);
      await lock.release();
      expect((await store.read())?.groups).toEqual([{ name: "web", instances: [], history }]);
    });

    it("keeps a group's roll-out record and an instance's template, protection, warm pool (and how it waits), join time and accepted stop, and removes the record when asked", async () => {
      const store = await makeStore();
      const lock = await store.lock("apply", 1000);
      await lock.init("l");
      await lock.putInstance("web", { ...instance("web-1"), template: { memoryMiB: 128, "settings.libvirt.baseImage": "a.qcow2" }, protected: true });
      await lock.putInstance("web", { ...instance("web-p"), pool: "warm", poolState: "paused", bootBeacon: true });
      await lock.putInstance("web", { ...instance("web-t"), joined: "2026-11-23T01:00:00.000Z" });
      await lock.putInstance("web", { ...instance("web-s"), stopped: { at: "2026-11-23T00:00:00.000Z", state: "stopped" } });
      const rollout = { template: "sha256:abc", total: 4, replaced: 1, checkpointAt: "2026-11-23T00:00:00.000Z" };
      await lock.putRollout("web", rollout);
      await lock.release();
      const read = (await store.read())?.groups[0];
      expect(read?.rollout).toEqual(rollout);
      expect(read?.instances[0]).toMatchObject({ template: { memoryMiB: 128, "settings.libvirt.baseImage": "a.qcow2" }, protected: true });
      expect(read?.instances[1]).toMatchObject({ name: "web-p", pool: "warm", poolState: "paused", bootBeacon: true });
      expect(read?.instances[2]).toMatchObject({ name: "web-s", stopped: { at: "2026-11-23T00:00:00.000Z", state: "stopped" } });
      expect(read?.instances[3]).toMatchObject({ name: "web-t", joined: "2026-11-23T01:00:00.000Z" });
      const again = await store.lock("apply", 1000);
      await again.putRollout("web", undefined);
      await again.release();
      expect((await store.read())?.groups[0]?.rollout).toBeUndefined();
    });

    it("keeps a group's template record and a roll-out's pinned previous template and roll-back, and drops the record with the group's last member", async () => {
      const store = await makeStore();
      const lock = await store.lock("apply", 1000);
      await lock.init("l");
      const template = { digest: "sha256:aaa", vcpus: 1, memoryMiB: 128, userData: "#cloud-config\npassword: ${env:PW}\n", secretEnv: ["PW"], settings: { libvirt: { disk: { baseImage: "a.qcow2", sizeGiB: 2 } } } };
      await lock.putTemplate("web", template); // no group yet: nothing to keep it in
      expect(lock.current().groups).toEqual([]);
      await lock.putInstance("web", instance("web-1"));
      await lock.putTemplate("web", template);
      const rollout = { template: "sha256:bbb", config: "sha256:ccc", total: 2, replaced: 1, previous: template, failed: { at: "2026-11-23T00:00:00.000Z", message: "web[web-2]: did not check in" }, rollback: { at: "2026-11-23T00:00:00.000Z", reason: "roll-out of template sha256:ccc failed" } };
      await lock.putRollout("web", rollout);
      await lock.release();
      const read = (await store.read())?.groups[0];
      expect(read?.template).toEqual(template);
      expect(read?.rollout).toEqual(rollout);
      const again = await store.lock("apply", 1000);
      await again.putRollout("web", undefined);
      await again.removeInstance("web", "web-1");
      await again.release();
      expect((await store.read())?.groups).toEqual([]);
    });

    it("keeps instances sorted by name whatever the order they were written in", async () => {
      const store = await makeStore();
      const lock = await store.lock("apply", 1000);
      await lock.init("l");
      for (const n of ["web-c", "web-a", "web-b"]) await lock.putInstance("web", instance(n));
      await lock.release();
      expect((await store.read())?.groups[0]?.instances.map((i) => i.name)).toEqual(["web-a", "web-b", "web-c"]);
    });

    it("lets one holder have the lock and names the holder to a second one", async () => {
      const store = await makeStore();
      const first = await store.lock("apply", 1000);
      await expect(store.lock("apply", 300)).rejects.toThrow(/state is locked by .*apply.*lock ID/);
      await first.release();
      const second = await store.lock("apply", 300);
      await second.release();
    });

    it("force-unlock needs the holder's ID", async () => {
      const store = await makeStore();
      const held = await store.lock("apply", 1000);
      await expect(store.forceUnlock("wrong")).rejects.toThrow(/does not match/);
      await expect(store.forceUnlock(held.info.ID)).resolves.toMatchObject({ ID: held.info.ID });
      expect(await store.lockHolder()).toBeNull();
    });
  });
}
