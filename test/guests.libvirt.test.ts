import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitStateStore } from "../state/git-state-store.js";
import { premiscale, projectDir } from "./support/cli.js";
import { freePort, guestConfigText, installGuest, readCheckIns, type GuestConfigOptions, type InstalledGuest } from "./support/guests.js";
import { leftovers, virsh } from "./support/libvirt.js";
import { spawnPremiscale } from "./support/serve.js";

// Real guests boot and check in through the built `premiscale apply`: apply adds cloud-init phone_home to each VM's
// seed, serves check-ins on the config's server port while it runs, and succeeds only when every new VM checked in.
// The busybox guest does what phone_home does in ~4 s; the Debian guest runs Debian's own cloud-init (~1 min under
// TCG). Each test has its own group name and server port (guests reach the host's 127.0.0.1 as 10.0.2.2).

const projects: { dir: string; options: GuestConfigOptions }[] = [];
let busybox: InstalledGuest;
let debian: InstalledGuest;

async function project(options: GuestConfigOptions): Promise<string> {
  const dir = await projectDir(guestConfigText(options));
  projects.push({ dir, options });
  return dir;
}

const setDesired = (dir: string, options: GuestConfigOptions, desired: number) => writeFile(join(dir, "premiscale.yaml"), guestConfigText({ ...options, desired }));

async function instancesOf(dir: string, group: string) {
  const state = await new GitStateStore(join(dir, "state")).read();
  return state?.groups.find((g) => g.name === group)?.instances ?? [];
}

beforeAll(async () => {
  // Built once and cached (test/guests/README.md): ~2 s each when nothing changed, ~1-2 min for a new Debian image.
  [busybox, debian] = [await installGuest("busybox"), await installGuest("debian")];
}, 600_000);

afterAll(async () => {
  for (const { dir, options } of projects) {
    await setDesired(dir, options, 0);
    await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "5s"]);
  }
}, 300_000);

describe("guests check in through premiscale apply (real libvirtd, plain QEMU)", () => {
  it(
    "busybox VMs send heartbeats to premiscale serve; once they stop reaching it, the plan replaces them as unhealthy",
    async () => {
      const options: GuestConfigOptions = { group: "ghb", desired: 1, guest: busybox, port: await freePort(), timeoutSeconds: 90, heartbeat: { seconds: 2, unhealthyAfterSeconds: 10 } };
      const dir = await project(options);
      // serve takes the check-ins and heartbeats; apply sees the port taken by premiscale and reads serve's ledger.
      const serve = spawnPremiscale(dir, ["serve"]);
      try {
        await serve.waitForLog((l) => l.event === "listening", 20_000);
        const up = await premiscale(dir, ["apply", "--auto-approve"]);
        expect(up.code, `apply said:\n${up.stdout}\n${up.stderr}`).toBe(0);
        expect(up.stderr).toContain("check in with premiscale serve");
        const [vm] = await instancesOf(dir, "ghb");
        const seen = join(dir, "state", ".premiscale", "check-ins", `${vm!.uuid}.seen`);
        let first = "";
        for (let i = 0; i < 60 && !first; i++) {
          first = (await readFile(seen, "utf8").catch(() => "")).trim();
          if (!first) await new Promise((r) => setTimeout(r, 500));
        }
        expect(first, "a heartbeat reached serve").toMatch(/^\d{4}-/);
        await new Promise((r) => setTimeout(r, 5000));
        expect((await readFile(seen, "utf8")).trim() > first).toBe(true); // they keep coming
        const healthy = await premiscale(dir, ["plan", "--detailed-exitcode"]);
        expect(healthy.code).toBe(0);
      } finally {
        await serve.stop("SIGTERM");
      }
      // With serve gone the heartbeats reach nobody: after unhealthyAfterSeconds the VM is judged unhealthy.
      await new Promise((r) => setTimeout(r, 12_000));
      const plan = await premiscale(dir, ["plan", "--detailed-exitcode"]);
      expect(plan.stdout).toMatch(new RegExp(`ghb\\[ghb-[0-9a-f]{8}\\] on host local: not heard from for \\d+s`));
      expect(plan.stdout).toContain("Plan: 1 to add, 0 to change, 1 to destroy.");
      expect(plan.code).toBe(2);
    },
    300_000,
  );

  it(
    "apply waits for two busybox VMs to check in, records their check-ins, and scales them to zero",
    async () => {
      const options: GuestConfigOptions = { group: "gbb", desired: 2, guest: busybox, port: await freePort(), timeoutSeconds: 90 };
      const dir = await project(options);

      const t0 = Date.now();
      const up = await premiscale(dir, ["apply", "--auto-approve"]);
      const seconds = (Date.now() - t0) / 1000;
      expect(up.stderr + up.stdout).not.toMatch(/Error:/);
      expect(up.code, `apply said:\n${up.stdout}\n${up.stderr}`).toBe(0);
      expect(up.stderr).toContain(`check-ins on 127.0.0.1:${options.port}`);
      console.log(`gbb: apply of 2 busybox VMs, checked in: ${seconds.toFixed(1)} s`);

      const instances = await instancesOf(dir, "gbb");
      expect(instances.map((i) => i.status)).toEqual(["running", "running"]);
      const checkIns = await readCheckIns(join(dir, "state"));
      for (const i of instances) {
        const c = checkIns.get(i.uuid);
        expect(c, `check-in of ${i.name}`).toBeDefined();
        expect(c!.hostname).toBe(i.name);
        expect(c!.fqdn).toBe(i.name);
        expect(c!.userAgent).toMatch(/^premiscale-busybox-guest/);
        expect((await virsh("domstate", i.name)).trim()).toBe("running");
      }
      expect(checkIns.size).toBe(2);

      await setDesired(dir, options, 0);
      const down = await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "30s"]);
      expect(down.code, `apply said:\n${down.stdout}\n${down.stderr}`).toBe(0);
      expect(await instancesOf(dir, "gbb")).toEqual([]);
      expect(await leftovers("gbb-")).toEqual([]);
      // What this machine kept about them goes with them.
      expect((await readCheckIns(join(dir, "state"))).size).toBe(0);
    },
    300_000,
  );

  it(
    "a Debian VM with Debian's real cloud-init reads premiscale's seed and phones home",
    async () => {
      const options: GuestConfigOptions = {
        group: "gdeb",
        desired: 1,
        max: 1,
        guest: debian,
        port: await freePort(),
        timeoutSeconds: 300,
        diskGiB: 3,
        userData: "#cloud-config\nwrite_files:\n  - path: /etc/premiscale-test\n    content: \"gdeb\\n\"\n",
        // The bootcmd heartbeat loop starts early in boot, so beats arrive while apply still waits for the check-in.
        heartbeat: { seconds: 3, unhealthyAfterSeconds: 600 },
      };
      const dir = await project(options);

      const t0 = Date.now();
      const up = await premiscale(dir, ["apply", "--auto-approve"], {}, { timeoutMs: 400_000 });
      const seconds = (Date.now() - t0) / 1000;
      expect(up.stderr + up.stdout).not.toMatch(/Error:/);
      expect(up.code, `apply said:\n${up.stdout}\n${up.stderr}`).toBe(0);
      console.log(`gdeb: apply of 1 Debian cloud-init VM, checked in: ${seconds.toFixed(1)} s`);

      const [vm] = await instancesOf(dir, "gdeb");
      expect(vm?.status).toBe("running");
      const c = (await readCheckIns(join(dir, "state"))).get(vm!.uuid);
      expect(c).toBeDefined();
      expect(c!.userAgent).toMatch(/^Cloud-Init\/\d/);
      expect(c!.hostname).toBe(vm!.name);
      // The guest made its own host key at first boot (ssh_genkeytypes: [ed25519]) and reported it.
      expect(c!.pubKeys.ed25519).toMatch(/^ssh-ed25519 AAAA\S+ root@/);
      // Heartbeats from cloud-init's bootcmd loop (python3) reached apply's server too.
      expect((await readFile(join(dir, "state", ".premiscale", "check-ins", `${vm!.uuid}.seen`), "utf8")).trim()).toMatch(/^\d{4}-/);

      await setDesired(dir, options, 0);
      const down = await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "60s"]);
      expect(down.code, `apply said:\n${down.stdout}\n${down.stderr}`).toBe(0);
      expect(await leftovers("gdeb-")).toEqual([]);
    },
    600_000,
  );

  it(
    "a VM that never checks in fails its create with 'did not check in', exit 1, and leaves no domain or volume",
    async () => {
      const options: GuestConfigOptions = { group: "gnci", desired: 1, max: 1, guest: null, port: await freePort(), timeoutSeconds: 10 };
      const dir = await project(options);

      const t0 = Date.now();
      const r = await premiscale(dir, ["apply", "--auto-approve"]);
      const seconds = (Date.now() - t0) / 1000;
      expect(r.code, `apply said:\n${r.stdout}\n${r.stderr}`).toBe(1);
      expect(r.stderr + r.stdout).toMatch(/gnci-[0-9a-f]{8} did not check in within 10 s/);
      expect(seconds).toBeGreaterThanOrEqual(10);
      expect(await leftovers("gnci-")).toEqual([]);
      expect(await instancesOf(dir, "gnci")).toEqual([]);
      expect(await readCheckIns(join(dir, "state"))).toEqual(new Map());
      // Nothing counts as made: the next plan creates the VM again.
      const again = await premiscale(dir, ["plan", "--detailed-exitcode"]);
      expect(again.code, `apply said:\n${again.stdout}\n${again.stderr}`).toBe(2);
      expect(again.stdout).toMatch(/\+ gnci\[gnci-/);
    },
    120_000,
  );
});
