// What a warm pool buys (issue 14): `premiscale apply` of a scale-out by one VM, until that VM is ready, on
// qemu:///system with a test guest (test/guests; plain QEMU). Three ways, in the same run:
// - cold (the baseline): no pool; the VM is created (overlay, seed, define, start) and readiness waits for its first
//   check-in (cloud-init's phone_home, or the busybox guest's);
// - from a stopped pool: the pool VM was created, booted once, checked in and shut off beforehand (untimed); the
//   scale-out starts it and waits for its boot beacon (premiscale's per-boot script; the busybox guest checks in on
//   every boot);
// - from a running pool: the pool VM is up and checked in already; the scale-out only takes it into the group;
// - from a paused pool: the pool VM was booted, checked in and suspended in memory (virsh suspend); the scale-out
//   resumes it (virsh resume) and takes it, with nothing to wait for.
// For the running and paused pools it also measures what the waiting costs: the host CPU time the pool VM's QEMU
// process uses over BENCH_IDLE_SECONDS while nothing happens (libvirt's cpu.time), as ms of CPU per minute.
// Each is timed from spawning `premiscale apply --json` to the `apply_complete` event of the new member (process start,
// observe, plan, the change, its readiness). The pools use `maxPrepared: 1`, so the timed apply takes the pool VM and
// refills nothing: no second VM boots beside the one measured (on two cores that would slow the take down, and the
// cold side has no such neighbour). The goal in issue 14: under 0.2× of cold (with the Debian guest).
//
// Env: BENCH_GUEST (busybox, the default, ~1.5 min a round; or debian: real cloud-init, ~10 min a round),
// BENCH_ROUNDS (default 2; medians are printed), BENCH_MODES (default cold,stopped,running,paused; cold is always
// measured: it is the baseline), BENCH_IDLE_SECONDS (default 20). Needs qemu:///system
// (providers/libvirt/setup-host.sh) and `npm run build` (the built CLI). VMs are named after the groups bwpc-, bwps-,
// bwpr-, bwpp- and removed by an apply to 0.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { freePort, guestConfigText, installGuest, type GuestConfigOptions, type GuestKind, type InstalledGuest } from "../test/support/guests.js";
import { median, ms, ratioLine } from "./common.js";

const KIND = (process.env.BENCH_GUEST ?? "busybox") as GuestKind;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const BIN = resolve(import.meta.dirname, "../dist/cli/main.js");
const TIMEOUT_MS = 600_000;
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 20);

type Mode = "cold" | "stopped" | "running" | "paused";
const MODES: Mode[] = ["cold", ...((process.env.BENCH_MODES ?? "stopped,running,paused").split(",").map((m) => m.trim()).filter((m) => m && m !== "cold") as Mode[])];
type Event = { type: string; action?: string };

/** Runs the CLI; with `until`, resolves the ms from spawning it to the first JSON event `until` accepts (after its exit). */
async function cli(dir: string, args: string[], until?: (e: Event) => boolean): Promise<number> {
  const t0 = performance.now();
  const child = execa("node", [BIN, ...args], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, input: "", timeout: TIMEOUT_MS });
  let at = -1;
  let pending = "";
  child.stdout!.on("data", (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const l of lines) if (at < 0 && until && l.startsWith("{") && until(JSON.parse(l) as Event)) at = performance.now() - t0;
  });
  const r = await child;
  if (r.exitCode !== 0) throw new Error(`premiscale ${args.join(" ")} failed (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  if (until && at < 0) throw new Error(`premiscale ${args.join(" ")}: the awaited event never came`);
  return at;
}

/** Host CPU time of a domain's QEMU process so far, ns (libvirt's cpu.time). */
async function cpuTimeNs(name: string): Promise<number> {
  const r = await execa("virsh", ["-c", "qemu:///system", "domstats", "--cpu-total", name], { timeout: 30_000 });
  return Number(/cpu\.time=(\d+)/.exec(r.stdout)?.[1] ?? NaN);
}

/** The domains of a group (`GROUP-xxxxxxxx`) on qemu:///system. */
async function domainsOf(group: string): Promise<string[]> {
  const r = await execa("virsh", ["-c", "qemu:///system", "list", "--all", "--name"], { timeout: 30_000 });
  return r.stdout.split("\n").map((s) => s.trim()).filter((n) => n.startsWith(`${group}-`));
}

/** What a waiting pool VM costs: ms of host CPU per minute, over IDLE_SECONDS of nothing happening. */
async function idleCost(group: string): Promise<number> {
  const [vm] = await domainsOf(group);
  // A pool that could not be filled is only a warning in the plan (other VMs on a shared host may hold the room;
  // cpuOvercommit 32 leaves the vCPUs to them: this measures time, not room).
  if (!vm) throw new Error(`the apply made no pool VM of group ${group}: was there room on the host? (virsh list --all)`);
  const t0 = performance.now();
  const c0 = await cpuTimeNs(vm);
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
  const c1 = await cpuTimeNs(vm);
  return (c1 - c0) / 1e6 / ((performance.now() - t0) / 60_000);
}

/** One scale-out from 0 to 1 member in `mode`: ms from apply to the member being ready, and the pool VM's idle cost. */
async function scaleOut(guest: InstalledGuest, mode: Mode): Promise<{ ms: number; idle?: number }> {
  const dir = await mkdtemp(join(tmpdir(), "bench-pool-"));
  const pool = mode === "cold" ? "" : `warmPool: {maxPrepared: 1, state: ${mode}}`;
  const base: GuestConfigOptions = { group: `bwp${mode[0]}`, desired: 0, max: 2, guest, port: await freePort(), timeoutSeconds: guest.kind === "debian" ? 400 : 90, cpuOvercommit: 32 };
  const write = (desired: number, groupExtra: string) => writeFile(join(dir, "premiscale.yaml"), guestConfigText({ ...base, desired, groupExtra }));
  try {
    await write(0, pool);
    if (mode !== "cold") await cli(dir, ["apply", "--auto-approve"]); // the pool VM: first boot, check-in (and shut off, or paused)
    const idle = mode === "running" || mode === "paused" ? await idleCost(base.group) : undefined;
    await write(1, pool);
    const took = await cli(dir, ["apply", "--auto-approve", "--json"], (e) => e.type === "apply_complete" && e.action === (mode === "cold" ? "create" : "take"));
    return { ms: took, ...(idle !== undefined ? { idle } : {}) };
  } finally {
    await write(0, "");
    await cli(dir, ["apply", "--auto-approve", "--shutdown-timeout", "10s"]).catch((e: unknown) => console.error(String(e)));
    await rm(dir, { recursive: true, force: true });
  }
}

const guest = await installGuest(KIND);
console.log(`\n# scale-out by one ${KIND} VM (${guest.memoryMiB} MiB, plain QEMU): apply → member ready, median of ${ROUNDS} round${ROUNDS === 1 ? "" : "s"}`);
const runs: Record<Mode, number[]> = { cold: [], stopped: [], running: [], paused: [] };
const idle: Record<Mode, number[]> = { cold: [], stopped: [], running: [], paused: [] };
const WORDS: Record<Mode, string> = { cold: "cold", stopped: "from a stopped pool", running: "from a running pool", paused: "from a paused pool" };
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of MODES) {
    const r = await scaleOut(guest, mode);
    runs[mode].push(r.ms);
    if (r.idle !== undefined) idle[mode].push(r.idle);
  }
  console.log(`  round ${round + 1}: ${MODES.map((m) => `${WORDS[m]} ${ms(runs[m].at(-1)!)}${idle[m].length > round ? ` (waiting: ${idle[m].at(-1)!.toFixed(0)} ms CPU/min)` : ""}`).join("; ")}`);
}
const cold = `cold (create, first boot, check-in)`;
if (MODES.includes("stopped")) ratioLine("from a stopped warm pool (start, boot beacon)", median(runs.stopped), cold, median(runs.cold));
if (MODES.includes("running")) ratioLine("from a running warm pool (take only)", median(runs.running), cold, median(runs.cold));
if (MODES.includes("paused")) ratioLine("from a paused warm pool (resume, take)", median(runs.paused), cold, median(runs.cold));
// What waiting costs, per pool VM: the host CPU its QEMU process uses while nothing happens.
for (const m of ["running", "paused"] as const) {
  if (idle[m].length > 0) console.log(`a ${m} pool VM waiting: ${median(idle[m]).toFixed(0)} ms of host CPU per minute (${((median(idle[m]) / 60_000) * 100).toFixed(2)}% of a core), median over ${IDLE_SECONDS} s windows`);
}
