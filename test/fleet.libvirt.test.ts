import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitStateStore } from "../state/git-state-store.js";
import type { GroupState, Instance } from "../state/types.js";
import { premiscale, projectDir } from "./support/cli.js";
import { freePort, guestConfigText, installGuest, readCheckIns, type GuestConfigOptions, type InstalledGuest } from "./support/guests.js";
import { virsh } from "./support/libvirt.js";
import { killLeftovers, spawnPremiscale } from "./support/serve.js";
import { startTcpProxy } from "./support/tcp-proxy.js";

// Living with a fleet (issue 14) on the real libvirtd with busybox guests, through the built CLI: template
// roll-outs (surge, a failed roll-out and its roll-back, kill -9 in the middle), a warm pool, and protection against scale-in and
// lifetime. Each test has its own group name and check-in port; timings are printed.

const BIN = resolve(import.meta.dirname, "../dist/cli/main.js");
const RUN = randomBytes(3).toString("hex").replace(/\d/g, (d) => "ghijklmnop"[Number(d)]!); // letters only: never mistaken for an instance volume
const SECOND_BASE = `premiscale-fleet-${RUN}.qcow2`;
const projects: { dir: string; options: GuestConfigOptions }[] = [];
let busybox: InstalledGuest;

async function project(options: GuestConfigOptions): Promise<string> {
  const dir = await projectDir(guestConfigText(options));
  projects.push({ dir, options });
  return dir;
}

const configure = (dir: string, options: GuestConfigOptions) => writeFile(join(dir, "premiscale.yaml"), guestConfigText(options));
const groupState = async (dir: string, group: string): Promise<GroupState | undefined> => (await new GitStateStore(join(dir, "state")).read())?.groups.find((g) => g.name === group);
const instancesOf = async (dir: string, group: string): Promise<Instance[]> => (await groupState(dir, group))?.instances ?? [];
const domainsOf = async (group: string, flag: "--all" | "--state-running" = "--all") =>
  (await virsh("list", flag, "--name")).split("\n").map((s) => s.trim()).filter((n) => n.startsWith(`${group}-`)).sort();

/** A JSON event line of `apply --json`. */
type JsonEvent = { type: string; address?: string; action?: string; step?: string; change?: { address: string; action: string; replaces?: string; reason: string } };
/**
 * How many of the group's VMs run and have checked in, right now: a VM counts from its first check-in seen (kept in
 * `seen`) until it stops running. The check-in folder alone is not that: premiscale forgets an old VM's check-in when
 * it starts deleting it (the domain still runs through its shutdown), and apply acts on a new VM's check-in in memory
 * while its file's fsync may land a moment later. The running domains are listed first and the check-ins read last,
 * so a replacement that was up when the list was taken is not missed.
 */
async function readyNow(dir: string, group: string, seen: Set<string>): Promise<number> {
  const up = await domainsOf(group, "--state-running");
  const uuids = new Map(await Promise.all(up.map(async (n) => [n, (await virsh("domuuid", n).catch(() => "")).trim()] as const)));
  for (const id of (await readCheckIns(join(dir, "state"))).keys()) seen.add(id);
  return up.filter((n) => seen.has(uuids.get(n)!)).length;
}

/**
 * Starts `apply`, kills it with SIGKILL once its journal shows a VM waiting for its check-in (step "ready"; or after
 * 2 min, or when apply ended by itself), and returns the signal that ended it.
 */
async function killApplyWhileWaitingForReady(dir: string): Promise<string | undefined> {
  const journal = join(dir, "state", ".premiscale", "journal.jsonl");
  const child = execa("node", [BIN, "apply", "--auto-approve"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, input: "" });
  let done = false;
  void child.finally(() => (done = true));
  const waiting = () => readFile(journal, "utf8").then((t) => /"step":"ready"/.test(t), () => false);
  const deadline = Date.now() + 120_000;
  while (!done && !(await waiting()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  child.kill("SIGKILL");
  return (await child).signal;
}

const events = (stdout: string): JsonEvent[] => stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as JsonEvent);

beforeAll(async () => {
  busybox = await installGuest("busybox");
  await virsh("vol-create-as", "default", SECOND_BASE, "64M", "--format", "qcow2");
}, 600_000);

afterAll(async () => {
  await killLeftovers();
  for (const { dir, options } of projects) {
    // Protected VMs are never scaled in: unprotect them first.
    const protectedOnes = (await instancesOf(dir, options.group)).filter((i) => i.protected).map((i) => `${options.group}[${i.name}]`);
    if (protectedOnes.length > 0) await premiscale(dir, ["unprotect", ...protectedOnes]);
    await configure(dir, { ...options, desired: 0, groupExtra: "" });
    await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "5s"]);
  }
  await virsh("vol-delete", "--pool", "default", SECOND_BASE).catch(() => undefined);
}, 300_000);

const options = async (group: string, desired: number, extra: Partial<GuestConfigOptions> = {}): Promise<GuestConfigOptions> => ({
  group,
  desired,
  max: 8,
  guest: busybox,
  port: await freePort(),
  timeoutSeconds: 90,
  cpuOvercommit: 32, // other tests' VMs share this host's vCPUs; these tests are about order, not room
  ...extra,
});

describe("template roll-outs on real VMs", () => {
  it(
    "rolls a base-image change across 4 busybox VMs with surge 1, unavailable 0: every old VM goes only after its replacement checked in",
    async () => {
      const o = await options("flro", 4);
      const dir = await project(o);
      const t0 = Date.now();
      expect((await premiscale(dir, ["apply", "--auto-approve"])).code).toBe(0);
      const created = (Date.now() - t0) / 1000;
      const old = (await instancesOf(dir, "flro")).map((i) => i.name);
      expect(old).toHaveLength(4);

      await configure(dir, { ...o, baseImage: SECOND_BASE });
      const plan = await premiscale(dir, ["plan"]);
      for (const name of old) expect(plan.stdout).toContain(`~ flro[${name}] on host local: made from an older template: settings.libvirt.baseImage "premiscale-blank.qcow2" → "${SECOND_BASE}"`);
      expect(plan.stdout).toContain("Plan: 4 to add, 0 to change, 4 to destroy.");

      // While the roll-out runs, sample the VMs that are both running and checked in.
      const child = execa("node", [BIN, "apply", "--auto-approve", "--json", "--shutdown-timeout", "10s"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, input: "" });
      let running = true;
      void child.finally(() => (running = false));
      const samples: number[] = [];
      const seen = new Set<string>();
      const t1 = Date.now();
      while (running) {
        samples.push(await readyNow(dir, "flro", seen));
        await new Promise((r) => setTimeout(r, 300));
      }
      const r = await child;
      const rolled = (Date.now() - t1) / 1000;
      expect(r.stderr).not.toMatch(/Error:/);
      expect(r.exitCode).toBe(0);
      console.log(`flro: 4 busybox VMs created in ${created.toFixed(1)} s, rolled to a new base image in ${rolled.toFixed(1)} s; ${samples.length} samples, fewest ready ${Math.min(...samples)}`);
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(4);

      // The order in apply's own events: each old VM's delete starts only after its replacement is complete (checked in).
      const ev = events(r.stdout);
      const at = (type: string, address: string) => ev.findIndex((e) => e.type === type && e.address === address);
      const replacements = ev.filter((e) => e.type === "planned_change" && e.change?.action === "create").map((e) => e.change!);
      expect(replacements.map((c) => c.replaces).sort()).toEqual(old.map((n) => `flro[${n}]`).sort());
      for (const c of replacements) {
        expect(at("apply_complete", c.address), `${c.address} completed`).toBeGreaterThan(-1);
        expect(at("apply_start", c.replaces!), `${c.replaces} deleted after ${c.address} was ready`).toBeGreaterThan(at("apply_complete", c.address));
      }
      // Surge 1: never two replacements in flight at once.
      let inFlight = 0;
      for (const e of ev) {
        if (e.action !== "create") continue;
        if (e.type === "apply_start") inFlight++;
        if (e.type === "apply_complete" || e.type === "apply_errored") inFlight--;
        expect(inFlight).toBeLessThanOrEqual(1);
      }

      const now = await instancesOf(dir, "flro");
      expect(now.map((i) => i.name).filter((n) => old.includes(n))).toEqual([]);
      expect(now.map((i) => i.template?.["settings.libvirt.baseImage"])).toEqual(Array(4).fill(SECOND_BASE));
      expect(await domainsOf("flro")).toEqual(now.map((i) => i.name).sort());
      expect((await groupState(dir, "flro"))?.rollout).toBeUndefined();
      expect((await premiscale(dir, ["plan", "--detailed-exitcode"])).code).toBe(0);
    },
    600_000,
  );

  it(
    "a roll-out whose first new VM never checks in: the new VM is destroyed, the old ones are untouched, and the group stays on its template, refusing the new one",
    async () => {
      const o = await options("flrb", 2);
      const dir = await project(o);
      expect((await premiscale(dir, ["apply", "--auto-approve"])).code).toBe(0);
      const before = await instancesOf(dir, "flrb");
      // No kernel to boot: new VMs sit in firmware and never check in (the wait is not part of the template).
      await configure(dir, { ...o, guest: null, memoryMiB: busybox.memoryMiB, timeoutSeconds: 10 });
      const t0 = Date.now();
      const r = await premiscale(dir, ["apply", "--auto-approve"]);
      console.log(`flrb: failed roll-out rolled back in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      expect(r.code).toBe(1);
      expect(r.stderr + r.stdout).toMatch(/flrb-[0-9a-f]{8} did not check in within 10 s/);
      expect(r.stderr + r.stdout).toMatch(/not started: it waits for flrb\[flrb-[0-9a-f]{8}\], which did not finish \(the VM replacing it is not ready\)/);

      const after = await instancesOf(dir, "flrb");
      expect(after).toEqual(before);
      expect(await domainsOf("flrb", "--state-running")).toEqual(before.map((i) => i.name).sort());
      expect(await domainsOf("flrb")).toEqual(before.map((i) => i.name).sort());
      const record = (await groupState(dir, "flrb"))?.rollout;
      expect(record).toMatchObject({ total: 2, replaced: 0, failed: { message: expect.stringMatching(/did not check in/) }, rollback: { reason: expect.stringMatching(/^roll-out of template sha256:\w+ failed: flrb\[flrb-[0-9a-f]{8}\]: .*did not check in within 10 s/) } });
      // Nothing was replaced, so there is nothing to go back: the plan only says what the group runs and why.
      const plan = await premiscale(dir, ["plan", "--detailed-exitcode"]);
      expect(plan.code).toBe(0);
      expect(plan.stdout).toMatch(/group flrb runs its previous template sha256:\w+, not the config's sha256:\w+, since \S+: roll-out of template .* failed: .*did not check in within 10 s/);
      const list = await premiscale(dir, ["state", "list"]);
      expect(list.stdout).toMatch(/group flrb: roll-out 0 of 2 replaced, stopped at .*; rolled back to template sha256:\w+ at /);
    },
    300_000,
  );

  it(
    "rolls back a roll-out whose second replacement never checks in: the VM it replaced goes back to the previous template, the group never below 3, nothing leaked",
    async () => {
      // Check-ins reach apply through a proxy the test cuts once the first replacement is up: from then on new VMs
      // never check in, as if the new template broke them; the proxy is restored for the roll-back.
      const port = await freePort();
      const proxy = await startTcpProxy({ host: "127.0.0.1", port }, "http");
      try {
        const o = await options("flbk", 3, { port, advertiseUrl: `http://10.0.2.2:${proxy.port}`, timeoutSeconds: 45 });
        const dir = await project(o);
        expect((await premiscale(dir, ["apply", "--auto-approve"])).code).toBe(0);
        const first = await instancesOf(dir, "flbk");
        expect(first.map((i) => i.memoryMiB)).toEqual([busybox.memoryMiB, busybox.memoryMiB, busybox.memoryMiB]);
        expect((await groupState(dir, "flbk"))?.template?.memoryMiB).toBe(busybox.memoryMiB);

        /** Runs `apply --json` while sampling how many of the group's VMs are running and checked in; `onEvent` sees each event. */
        const watched = async (onEvent: (e: JsonEvent) => void = () => undefined) => {
          const child = execa("node", [BIN, "apply", "--auto-approve", "--json", "--shutdown-timeout", "10s"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, input: "" });
          let running = true;
          void child.finally(() => (running = false));
          const samples: number[] = [];
          const seen = new Set<string>();
          const t = Date.now();
          let out = "";
          child.stdout!.on("data", (chunk: Buffer) => {
            out += String(chunk);
            const lines = out.split("\n");
            out = lines.pop()!;
            for (const l of lines) if (l.startsWith("{")) onEvent(JSON.parse(l) as JsonEvent);
          });
          while (running) {
            samples.push(await readyNow(dir, "flbk", seen));
            await new Promise((r) => setTimeout(r, 300));
          }
          const r = await child;
          return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr, samples, seconds: (Date.now() - t) / 1000 };
        };

        await configure(dir, { ...o, memoryMiB: busybox.memoryMiB + 16 });
        let cut = false;
        const rollOut = await watched((e) => {
          if (!cut && e.type === "apply_complete" && e.action === "create") {
            cut = true;
            void proxy.cut();
          }
        });
        expect(cut).toBe(true);
        expect(rollOut.code).toBe(1);
        expect(rollOut.stdout).toMatch(/flbk-[0-9a-f]{8} did not check in within 45 s/);
        const mixed = await instancesOf(dir, "flbk");
        const replaced = mixed.filter((i) => i.memoryMiB === busybox.memoryMiB + 16);
        expect(replaced).toHaveLength(1);
        expect(mixed.filter((i) => first.some((f) => f.name === i.name)).map((i) => i.name)).toHaveLength(2);
        expect((await groupState(dir, "flbk"))?.rollout).toMatchObject({ replaced: 1, total: 3, rollback: { reason: expect.stringMatching(/^roll-out of template sha256:\w+ failed: flbk\[flbk-[0-9a-f]{8}\]: flbk-[0-9a-f]{8} did not check in within 45 s/) } });

        // The next plan shows the roll-back: the replaced VM, back to the previous template, create before destroy.
        const plan = await premiscale(dir, ["plan", "--detailed-exitcode"]);
        expect(plan.code).toBe(2);
        expect(plan.stdout).toContain(`~ flbk[${replaced[0]!.name}] on host local: not made from the previous template, which the group goes back to: memoryMiB ${busybox.memoryMiB + 16} → ${busybox.memoryMiB}`);
        expect(plan.stdout).toMatch(new RegExp(`\\+/- flbk\\[flbk-[0-9a-f]{8}\\] on host local \\(1 vCPU, ${busybox.memoryMiB} MiB\\) replaces flbk\\[${replaced[0]!.name}\\] {3}# replace rollback`));
        expect(plan.stdout).toMatch(/group flbk runs its previous template sha256:\w+, not the config's sha256:\w+, since \S+: roll-out of template sha256:\w+ failed: .*did not check in within 45 s/);
        expect(plan.stdout).toContain("Plan: 1 to add, 0 to change, 1 to destroy.");

        await proxy.restore();
        const back = await watched();
        expect(back.code).toBe(0);
        console.log(
          `flbk: roll-out of 3 failed at its second VM in ${rollOut.seconds.toFixed(1)} s (fewest ready ${Math.min(...rollOut.samples)} of ${rollOut.samples.length} samples); ` +
            `rolled back in ${back.seconds.toFixed(1)} s (fewest ready ${Math.min(...back.samples)} of ${back.samples.length} samples)`,
        );
        expect(Math.min(...rollOut.samples)).toBeGreaterThanOrEqual(3);
        expect(Math.min(...back.samples)).toBeGreaterThanOrEqual(3);

        const now = await instancesOf(dir, "flbk");
        expect(now.map((i) => [i.status, i.memoryMiB])).toEqual(Array(3).fill(["running", busybox.memoryMiB]));
        expect(now.map((i) => i.name)).not.toContain(replaced[0]!.name);
        expect(await domainsOf("flbk")).toEqual(now.map((i) => i.name).sort());
        const volumes = (await virsh("vol-list", "default")).split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "").filter((v) => v.startsWith("flbk-"));
        expect(volumes.sort()).toEqual(now.flatMap((i) => [`${i.name}-seed.iso`, `${i.name}.qcow2`]).sort());
        const idle = await premiscale(dir, ["plan", "--detailed-exitcode"]);
        expect(idle.code).toBe(0);
        expect(idle.stdout).toMatch(/group flbk runs its previous template/);
        expect((await premiscale(dir, ["state", "list"])).stdout).toMatch(/group flbk: roll-out 1 of 3 replaced, stopped at .*; rolled back to template sha256:\w+ at /);
      } finally {
        await proxy.close();
      }
    },
    600_000,
  );

  it(
    "converges after apply is killed with SIGKILL in the middle of a roll-out: no leaked VM, every VM on the new template",
    async () => {
      const o = await options("flkl", 2);
      const dir = await project(o);
      expect((await premiscale(dir, ["apply", "--auto-approve"])).code).toBe(0);
      const old = (await instancesOf(dir, "flkl")).map((i) => i.name);
      await configure(dir, { ...o, baseImage: SECOND_BASE });

      // Killed while the first replacement is waiting for its check-in (its create recorded, its VM started).
      expect(await killApplyWhileWaitingForReady(dir)).toBe("SIGKILL");
      const half = await instancesOf(dir, "flkl");
      expect(half.filter((i) => i.status === "creating")).toHaveLength(1);

      const t0 = Date.now();
      const again = await premiscale(dir, ["apply", "--auto-approve"]);
      console.log(`flkl: converged after kill -9 in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      expect(again.code).toBe(0);
      expect(again.stderr).toMatch(/An earlier apply .* stopped before it finished/);
      expect(again.stdout).toMatch(/flkl\[flkl-[0-9a-f]{8}\] on host local {3}# interrupted create/);

      const now = await instancesOf(dir, "flkl");
      expect(now.map((i) => [i.status, i.template?.["settings.libvirt.baseImage"]])).toEqual(Array(2).fill(["running", SECOND_BASE]));
      expect(now.some((i) => old.includes(i.name))).toBe(false);
      expect(await domainsOf("flkl")).toEqual(now.map((i) => i.name).sort());
      expect((await premiscale(dir, ["plan", "--detailed-exitcode"])).code).toBe(0);
    },
    600_000,
  );
});

describe("a warm pool on real VMs", () => {
  it(
    "keeps 2 busybox VMs stopped in the pool, takes one on scale-out, refills, returns one on scale-in, and replaces pool VMs on a template change",
    async () => {
      const pool = (size: number) => `warmPool: {size: ${size}, state: stopped, reuseOnScaleIn: true}\nrollout: {strategy: manual}`;
      const o = await options("flwp", 1, { groupExtra: pool(2) });
      const dir = await project(o);
      const t0 = Date.now();
      const up = await premiscale(dir, ["apply", "--auto-approve"]);
      expect(up.code).toBe(0);
      console.log(`flwp: 1 member and a pool of 2 made in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const first = await instancesOf(dir, "flwp");
      const pooled = first.filter((i) => i.pool === "warm").map((i) => i.name).sort();
      expect(pooled).toHaveLength(2);
      expect(first.every((i) => i.bootBeacon && i.status === "running")).toBe(true);
      for (const n of pooled) expect((await virsh("domstate", n)).trim()).toBe("shut off");
      const list = await premiscale(dir, ["state", "list"]);
      expect(list.stdout).toContain("group flwp: 2 VMs waiting in the warm pool (not members)");
      const idle = await premiscale(dir, ["plan", "--detailed-exitcode"]);
      expect(idle.code).toBe(0);
      expect(idle.stdout).toContain("# group flwp: 2 waiting of 2 (stopped)");

      // Scale-out: one pool VM is started and joins (the guest checks in again on boot); the pool is refilled.
      await configure(dir, { ...o, desired: 2 });
      const out = await premiscale(dir, ["apply", "--auto-approve", "--json"]);
      expect(out.code).toBe(0);
      const ev = events(out.stdout);
      const take = ev.find((e) => e.type === "apply_complete" && e.action === "take") as JsonEvent & { elapsedMs: number };
      expect(take).toBeDefined();
      console.log(`flwp: a pool VM taken (started, up again) in ${(take.elapsedMs / 1000).toFixed(1)} s`);
      const taken = take.address!.replace(/^flwp\[|\]$/g, "");
      expect(pooled).toContain(taken);
      const second = await instancesOf(dir, "flwp");
      expect(second.filter((i) => i.pool !== "warm").map((i) => i.name)).toContain(taken);
      expect((await virsh("domstate", taken)).trim()).toBe("running");
      const pool2 = second.filter((i) => i.pool === "warm");
      expect(pool2).toHaveLength(2);
      for (const p of pool2) expect((await virsh("domstate", p.name)).trim()).toBe("shut off");

      // Scale-in with reuseOnScaleIn and room in the pool: the member is stopped and kept, not destroyed.
      await configure(dir, { ...o, desired: 1, groupExtra: pool(3) });
      const down = await premiscale(dir, ["apply", "--auto-approve"]);
      expect(down.code).toBe(0);
      expect(down.stdout).toMatch(/~ flwp\[flwp-[0-9a-f]{8}\] on host local: return to the warm pool and stop it {3}# scale in/);
      const third = await instancesOf(dir, "flwp");
      expect(third.filter((i) => i.pool === "warm")).toHaveLength(3);
      expect(third.map((i) => i.name).sort()).toEqual(second.map((i) => i.name).sort());

      // A template change replaces the pool's VMs at once; the manual group's member is only shown.
      await configure(dir, { ...o, desired: 1, groupExtra: pool(3), memoryMiB: busybox.memoryMiB + 16 });
      const t1 = Date.now();
      const changed = await premiscale(dir, ["apply", "--auto-approve"]);
      console.log(`flwp: pool of 3 replaced for a new template in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      expect(changed.code).toBe(0);
      const fourth = await instancesOf(dir, "flwp");
      const members = fourth.filter((i) => i.pool !== "warm");
      const newPool = fourth.filter((i) => i.pool === "warm");
      expect(members.map((i) => i.name)).toEqual(third.filter((i) => i.pool !== "warm").map((i) => i.name));
      expect(newPool).toHaveLength(3);
      expect(newPool.some((p) => third.some((t) => t.name === p.name))).toBe(false);
      expect(newPool.every((p) => p.memoryMiB === busybox.memoryMiB + 16)).toBe(true);
      expect(await domainsOf("flwp")).toEqual(fourth.map((i) => i.name).sort());
    },
    600_000,
  );
});

describe("a paused warm pool on real VMs", () => {
  /** When the instance was last heard from, per serve's ledger (`<state>/.premiscale/check-ins/<uuid>.seen`), or "". */
  const seenAt = (dir: string, uuid: string) => readFile(join(dir, "state", ".premiscale", "check-ins", `${uuid}.seen`), "utf8").then((t) => t.trim(), () => "");
  /** Polls (a real guest, a real process) until `seen` says the instance was heard from after `after`, or the deadline. */
  const heardAfter = async (dir: string, uuid: string, after: string, ms = 60_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const seen = await seenAt(dir, uuid);
      if (seen > after || Date.now() > deadline) return seen;
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const cpuTimeNs = async (name: string) => Number(/cpu\.time=(\d+)/.exec(await virsh("domstats", "--cpu-total", name))?.[1] ?? NaN);

  it(
    "keeps a busybox VM paused in the pool (no heartbeats while it waits), resumes it on scale-out (running, heartbeating to serve again), refills the pool paused, and returns a member paused on scale-in",
    async () => {
      const pool = (size: number) => `warmPool: {size: ${size}, state: paused, reuseOnScaleIn: true}`;
      const o = await options("pzwp", 0, { groupExtra: pool(1), heartbeat: { seconds: 2, unhealthyAfterSeconds: 20 } });
      const dir = await project(o);
      // serve takes the check-ins and heartbeats for the whole test; apply reads its ledger.
      const serve = spawnPremiscale(dir, ["serve"], {}, { dieWithParent: true });
      try {
        await serve.waitForLog((l) => l.event === "listening", 20_000);
        const t0 = Date.now();
        const up = await premiscale(dir, ["apply", "--auto-approve"]);
        expect(up.code, up.stderr).toBe(0);
        console.log(`pzwp: a pool of 1 made, checked in and paused in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        const [p1] = await instancesOf(dir, "pzwp");
        expect(p1).toMatchObject({ status: "running", pool: "warm", poolState: "paused" });
        expect((await virsh("domstate", p1!.name)).trim()).toBe("paused");
        const list = await premiscale(dir, ["state", "list"]);
        expect(list.stdout).toMatch(new RegExp(`pzwp +${p1!.name} +local +running +warm \\(paused\\)`));
        expect(list.stdout).toContain("group pzwp: 1 VM waiting in the warm pool (not members): 1 paused");
        const idle = await premiscale(dir, ["plan", "--detailed-exitcode"]);
        expect(idle.code).toBe(0);
        expect(idle.stdout).toContain(`# group pzwp: 1 waiting of 1 (paused): ${p1!.name} paused`);

        // Paused, the guest does not run: no heartbeat reaches serve, and QEMU spends (next to) no CPU on it.
        const before = await seenAt(dir, p1!.uuid);
        const cpu0 = await cpuTimeNs(p1!.name);
        await new Promise((r) => setTimeout(r, 6000)); // three heartbeat periods of a guest that does not run
        expect(await seenAt(dir, p1!.uuid)).toBe(before);
        console.log(`pzwp: the paused pool VM used ${((await cpuTimeNs(p1!.name)) - cpu0) / 1e6} ms of host CPU in 6 s`);

        // Scale-out: the pool VM is resumed and joins at once; it runs on where it stopped and beats again.
        await configure(dir, { ...o, desired: 1 });
        const takenAt = new Date().toISOString();
        const out = await premiscale(dir, ["apply", "--auto-approve", "--json"]);
        expect(out.code, out.stderr).toBe(0);
        const ev = events(out.stdout);
        const take = ev.find((e) => e.type === "apply_complete" && e.action === "take") as JsonEvent & { elapsedMs: number };
        expect(take?.address).toBe(`pzwp[${p1!.name}]`);
        expect(ev.filter((e) => e.type === "apply_progress" && e.address === take.address).map((e) => e.step)).toEqual(["start"]);
        console.log(`pzwp: the paused pool VM taken (resumed) in ${(take.elapsedMs / 1000).toFixed(2)} s`);
        expect((await virsh("domstate", p1!.name)).trim()).toBe("running");
        const member = (await instancesOf(dir, "pzwp")).find((i) => i.name === p1!.name);
        expect(member?.pool).toBeUndefined();
        expect((member?.joined ?? "") >= takenAt).toBe(true);
        expect(await heardAfter(dir, p1!.uuid, takenAt), "a heartbeat after the resume").toMatch(/^\d{4}-/);
        // The refill: a new pool VM, booted, checked in and paused in the same apply.
        const second = await instancesOf(dir, "pzwp");
        const [p2] = second.filter((i) => i.pool === "warm");
        expect(p2).toMatchObject({ status: "running", poolState: "paused" });
        expect((await virsh("domstate", p2!.name)).trim()).toBe("paused");
        expect((await readCheckIns(join(dir, "state"))).has(p2!.uuid)).toBe(true);
        // Its heartbeats keep it healthy, judged from when it joined: nothing to do.
        const after = await premiscale(dir, ["plan", "--detailed-exitcode"]);
        expect(after.code, after.stdout).toBe(0);

        // Scale-in with room in the pool: the member goes back paused (terminating hooks, then suspended), not destroyed.
        await configure(dir, { ...o, desired: 0, groupExtra: pool(2) });
        const down = await premiscale(dir, ["apply", "--auto-approve"]);
        expect(down.code, down.stderr).toBe(0);
        expect(down.stdout).toContain(`~ pzwp[${p1!.name}] on host local: return to the warm pool and pause it   # scale in`);
        expect((await virsh("domstate", p1!.name)).trim()).toBe("paused");
        const third = await instancesOf(dir, "pzwp");
        expect(third.map((i) => [i.name, i.pool, i.poolState, i.joined]).sort()).toEqual(
          [
            [p1!.name, "warm", "paused", undefined],
            [p2!.name, "warm", "paused", undefined],
          ].sort(),
        );
        expect(await domainsOf("pzwp")).toEqual(third.map((i) => i.name).sort());
      } finally {
        await serve.stop("SIGTERM");
      }
      // Emptying the pool destroys paused VMs at once (no ACPI shutdown a paused guest cannot run).
      await configure(dir, { ...o, desired: 0, groupExtra: "" });
      const t1 = Date.now();
      const gone = await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "60s"]);
      expect(gone.code, gone.stderr).toBe(0);
      const emptied = (Date.now() - t1) / 1000;
      console.log(`pzwp: 2 paused pool VMs destroyed in ${emptied.toFixed(1)} s (shutdown timeout 60 s)`);
      expect(emptied).toBeLessThan(50);
      expect(await domainsOf("pzwp")).toEqual([]);
      expect(await instancesOf(dir, "pzwp")).toEqual([]);
    },
    600_000,
  );

  it(
    "converges after apply is killed with SIGKILL while a paused pool VM is being made: the half-made one is removed and a new one waits paused",
    async () => {
      const o = await options("pzkl", 0, { groupExtra: "warmPool: {size: 1, state: paused}" });
      const dir = await project(o);
      // Killed once the pool VM was started and waits for its check-in: recorded, not yet paused.
      expect(await killApplyWhileWaitingForReady(dir)).toBe("SIGKILL");
      const half = await instancesOf(dir, "pzkl");
      expect(half).toEqual([expect.objectContaining({ status: "creating", pool: "warm", poolState: "paused" })]);

      const t0 = Date.now();
      const again = await premiscale(dir, ["apply", "--auto-approve"]);
      console.log(`pzkl: converged after kill -9 in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(new RegExp(`- pzkl\\[${half[0]!.name}\\] on host local \\(warm pool\\) {3}# interrupted create`));
      const now = await instancesOf(dir, "pzkl");
      expect(now).toEqual([expect.objectContaining({ status: "running", pool: "warm", poolState: "paused" })]);
      expect(now[0]!.name).not.toBe(half[0]!.name);
      expect((await virsh("domstate", now[0]!.name)).trim()).toBe("paused");
      expect(await domainsOf("pzkl")).toEqual([now[0]!.name]);
      expect((await premiscale(dir, ["plan", "--detailed-exitcode"])).code).toBe(0);
    },
    600_000,
  );
});

describe("protection on real VMs", () => {
  it(
    "keeps a protected VM through scale-in and through replacement for its age",
    async () => {
      const o = await options("flpr", 3, { guest: null, checkIn: false });
      const dir = await project(o);
      expect((await premiscale(dir, ["apply", "--auto-approve"])).code).toBe(0);
      const names = (await instancesOf(dir, "flpr")).map((i) => i.name).sort();
      // Scale-in takes the newest first, then by name: the first name is the one it would take.
      const keep = names[0]!;
      expect((await premiscale(dir, ["protect", `flpr[${keep}]`])).code).toBe(0);
      await configure(dir, { ...o, desired: 2 });
      const down = await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "1s"]);
      expect(down.code).toBe(0);
      const left = (await instancesOf(dir, "flpr")).map((i) => i.name).sort();
      expect(left).toContain(keep);
      expect(left).toEqual(names.filter((n) => n !== names[1]));

      // Both are now older than the lifetime (state as if they were made two hours ago): only the unprotected one goes.
      const lock = await new GitStateStore(join(dir, "state")).lock("test", 1000);
      for (const i of lock.current().groups[0]!.instances) await lock.putInstance("flpr", { ...i, created: new Date(Date.now() - 7200_000).toISOString() });
      await lock.commit("test: made two hours ago\n");
      await lock.release();
      await configure(dir, { ...o, desired: 2, groupExtra: "maxInstanceLifetimeSeconds: 3600" });
      const aged = await premiscale(dir, ["apply", "--auto-approve", "--shutdown-timeout", "1s"]);
      expect(aged.code).toBe(0);
      expect(aged.stdout).toContain(`~ flpr[${keep}] on host local: older than maxInstanceLifetimeSeconds (3600s) (protected)`);
      const now = await instancesOf(dir, "flpr");
      expect(now.map((i) => i.name)).toContain(keep);
      expect(now.find((i) => i.name === keep)?.protected).toBe(true);
      expect(now.map((i) => i.name)).not.toContain(left.find((n) => n !== keep));
      expect(now).toHaveLength(2);
      expect(await domainsOf("flpr")).toEqual(now.map((i) => i.name).sort());
    },
    300_000,
  );
});
