// What a warm pool buys (issue 14): `premiscale apply` of a scale-out by one VM, until that VM is ready, on
// qemu:///system with a test guest (test/guests; plain QEMU). Three ways, in the same run:
// - cold (the baseline): no pool; the VM is created (overlay, seed, define, start) and readiness waits for its first
//   check-in (cloud-init's phone_home, or the busybox guest's);
// - from a stopped pool: the pool VM was created, booted once, checked in and shut off beforehand (untimed); the
//   scale-out starts it and waits for its boot beacon (premiscale's per-boot script; the busybox guest checks in on
//   every boot);
// - from a running pool: the pool VM is up and checked in already; the scale-out only takes it into the group.
// Each is timed from spawning `premiscale apply --json` to the `apply_complete` event of the new member (process start,
// observe, plan, the change, its readiness). The pools use `maxPrepared: 1`, so the timed apply takes the pool VM and
// refills nothing: no second VM boots beside the one measured (on two cores that would slow the take down, and the
// cold side has no such neighbour). The goal in issue 14: under 0.2× of cold (with the Debian guest).
//
// Env: BENCH_GUEST (busybox, the default, ~1 min a round; or debian: real cloud-init, ~5 min a round),
// BENCH_ROUNDS (default 2; medians are printed). Needs qemu:///system (providers/libvirt/setup-host.sh) and
// `npm run build` (the built CLI). VMs are named after the groups bwpc-, bwps-, bwpr- and removed by an apply to 0.
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

type Mode = "cold" | "stopped" | "running";
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

/** One scale-out from 0 to 1 member in `mode`; ms from apply to the member being ready. */
async function scaleOut(guest: InstalledGuest, mode: Mode): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "bench-pool-"));
  const pool = mode === "cold" ? "" : `warmPool: {maxPrepared: 1, state: ${mode}}`;
  const base: GuestConfigOptions = { group: `bwp${mode[0]}`, desired: 0, max: 2, guest, port: await freePort(), timeoutSeconds: guest.kind === "debian" ? 400 : 90 };
  const write = (desired: number, groupExtra: string) => writeFile(join(dir, "premiscale.yaml"), guestConfigText({ ...base, desired, groupExtra }));
  try {
    await write(0, pool);
    if (mode !== "cold") await cli(dir, ["apply", "--auto-approve"]); // the pool VM: first boot, check-in (and, stopped, shut off)
    await write(1, pool);
    return await cli(dir, ["apply", "--auto-approve", "--json"], (e) => e.type === "apply_complete" && e.action === (mode === "cold" ? "create" : "take"));
  } finally {
    await write(0, "");
    await cli(dir, ["apply", "--auto-approve", "--shutdown-timeout", "10s"]).catch((e: unknown) => console.error(String(e)));
    await rm(dir, { recursive: true, force: true });
  }
}

const guest = await installGuest(KIND);
console.log(`\n# scale-out by one ${KIND} VM (${guest.memoryMiB} MiB, plain QEMU): apply → member ready, median of ${ROUNDS} round${ROUNDS === 1 ? "" : "s"}`);
const runs: Record<Mode, number[]> = { cold: [], stopped: [], running: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of ["cold", "stopped", "running"] as const) runs[mode].push(await scaleOut(guest, mode));
  console.log(`  round ${round + 1}: cold ${ms(runs.cold.at(-1)!)}; from a stopped pool ${ms(runs.stopped.at(-1)!)}; from a running pool ${ms(runs.running.at(-1)!)}`);
}
const cold = `cold (create, first boot, check-in)`;
ratioLine("from a stopped warm pool (start, boot beacon)", median(runs.stopped), cold, median(runs.cold));
ratioLine("from a running warm pool (take only)", median(runs.running), cold, median(runs.cold));
