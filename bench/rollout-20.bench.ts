// A template roll-out across 20 VMs (issue 14), against doing the same replacement by hand with raw virsh.
// Both sides run busybox guests (test/guests; plain QEMU) with readiness on: a roll-out's point is create-before-
// destroy, each new VM checked in before its old one goes, so the guests' boots and check-ins are part of what is
// timed. Each side first makes a fleet of BENCH_VMS VMs (untimed, all checked in), then changes the template's
// memoryMiB twice: once rolled with surge 1, once with BENCH_SURGE (default 25%, i.e. 5 of 20), unavailable 0 both
// times.
// - premiscale: `premiscale apply --auto-approve` after editing `template.memoryMiB` and `rollout: {maxSurge,
//   maxUnavailable: 0}`, timed from spawning the process to its exit (node start, observe, plan, every replacement's
//   overlay, seed, define, start and check-in, each old VM's delete, the git commit of state). The old VMs go with
//   `--shutdown-timeout 0s` (destroyed at once, as the script does). premiscale replaces in batches of the surge:
//   a batch's new VMs, their check-ins, its old VMs' deletes, then the next batch.
// - raw virsh: a bash script per VM, one `virsh` process per command as a hand-written script does: overlay
//   (vol-create-as --backing-vol), the NoCloud seed (genisoimage, vol-create-as, vol-upload), define, start, wait for
//   the new VM's phone_home POST (a listener of this process drops a file; the script polls for it every 0.2 s),
//   then destroy, undefine and vol-delete both volumes of the old VM. Run serially, and in batches of the surge (the
//   batch's scripts at once, `wait`, the next batch), as premiscale does. The domain XML and seed files are
//   premiscale's own (domainXml, seedFiles), written before the clock starts.
// While each roll-out runs, the VMs that are running and have checked in are counted every BENCH_SAMPLE_MS (one
// `virsh list` each, and premiscale's check-in folder or the script's listener): the fewest and the most seen are
// printed (unavailable 0 means never fewer than the size). A sample is a snapshot, so a dip shorter than
// BENCH_SAMPLE_MS may be missed.
//
// Env: BENCH_VMS (default 20), BENCH_SURGE (the wider surge: a count or a percentage of BENCH_VMS, default 25%),
// BENCH_SAMPLE_MS (default 500). One round (~10-15 min on 2 cores). Needs qemu:///system
// (providers/libvirt/setup-host.sh) and `npm run build` (the built CLI). Every domain and volume it makes is named
// `br<letters>-…` after this run; they are removed at the end, on failure, and on Ctrl-C.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { domainXml } from "../providers/libvirt/domain-xml.js";
import { seedFiles } from "../providers/libvirt/seed.js";
import { freePort, guestConfigText, installGuest, type GuestConfigOptions, type InstalledGuest } from "../test/support/guests.js";
import { ms, ratioLine } from "./common.js";
import { rawGuestVm } from "./raw-vm.js";

const VMS = Number(process.env.BENCH_VMS ?? 20);
const SURGE_TEXT = process.env.BENCH_SURGE ?? "25%";
const SURGE = SURGE_TEXT.endsWith("%") ? Math.ceil((VMS * Number(SURGE_TEXT.slice(0, -1))) / 100) : Number(SURGE_TEXT);
const SAMPLE_MS = Number(process.env.BENCH_SAMPLE_MS ?? 500);
const URI = "qemu:///system";
const BIN = resolve(import.meta.dirname, "../dist/cli/main.js");
const READY_TIMEOUT_S = 300;
const TIMEOUT_MS = 1_800_000;
// Letters only: never mistaken for an instance volume's uuid part, and unique to this run.
const RUN = randomBytes(3).toString("hex").replace(/\d/g, (d) => "ghijklmnop"[Number(d)]!);
const RAW = `brr${RUN}`;
const GROUP = `brp${RUN}`;

if (!Number.isInteger(VMS) || VMS < 1) throw new Error(`BENCH_VMS=${process.env.BENCH_VMS}: give a whole number of VMs, 1 or more`);
if (!Number.isInteger(SURGE) || SURGE < 1 || SURGE > VMS) throw new Error(`BENCH_SURGE=${SURGE_TEXT}: give a count from 1 to ${VMS} or a percentage such as 25%`);

const REPLACE_ONE = `set -euo pipefail
new=$1 d=$2 uuid=$3 old=$4 ready=$5
v() { virsh -q -c ${URI} "$@" >/dev/null; }
v vol-create-as default "$new.qcow2" "$(cat "$d/disk-size")" --format qcow2 --backing-vol "$(cat "$d/base")" --backing-vol-format qcow2
(cd "$d" && genisoimage -quiet -output seed.iso -volid cidata -joliet -rock user-data meta-data network-config)
v vol-create-as default "$new-seed.iso" "$(stat -c %s "$d/seed.iso")b" --format raw
v vol-upload --pool default "$new-seed.iso" "$d/seed.iso"
v define "$d/domain.xml"
v start "$new"
deadline=$((SECONDS + ${READY_TIMEOUT_S}))
until [ -e "$ready/$uuid" ]; do
  if ((SECONDS > deadline)); then echo "$new did not phone home within ${READY_TIMEOUT_S} s" >&2; exit 1; fi
  sleep 0.2
done
[ -z "$old" ] && exit 0
v destroy "$old"
v undefine "$old" --nvram
v vol-delete --pool default "$old.qcow2"
v vol-delete --pool default "$old-seed.iso"
`;

/** The domains on qemu:///system whose names start with `prefix-`; with `running`, only the running ones. */
async function domainsOf(prefix: string, running = false): Promise<string[]> {
  const r = await execa("virsh", ["-c", URI, "list", running ? "--state-running" : "--all", "--name"], { timeout: 30_000 });
  return r.stdout.split("\n").map((s) => s.trim()).filter((n) => n.startsWith(`${prefix}-`));
}

/** Removes every domain and volume this run made (both sides), whatever state they are in. */
async function sweep(): Promise<void> {
  const v = (...args: string[]) => execa("virsh", ["-q", "-c", URI, ...args], { reject: false, timeout: 60_000 });
  const vols = await v("vol-list", "--pool", "default");
  const mine = (n: string) => n.startsWith(`${RAW}-`) || n.startsWith(`${GROUP}-`);
  for (const d of [...(await domainsOf(RAW)), ...(await domainsOf(GROUP))]) {
    await v("destroy", d);
    await v("undefine", d, "--nvram");
  }
  for (const vol of vols.stdout.split("\n").map((s) => s.trim().split(/\s+/)[0]!).filter(mine)) await v("vol-delete", "--pool", "default", vol);
}

/**
 * Counts, every SAMPLE_MS until stopped, the running VMs of `prefix` whose uuid (the name's last 8 hex digits) has
 * checked in; returns the fewest and the most seen.
 */
function watchReady(prefix: string, checkedIn: () => Promise<Set<string>>): { stop(): Promise<{ min: number; max: number; samples: number; failedSamples: number }> } {
  const seen: number[] = [];
  let failed = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      // The check-ins are read after the list, not beside it: read first, they could miss a new VM's check-in that
      // came just before the list showed its old VM gone.
      try {
        const up = await domainsOf(prefix, true);
        const ready = await checkedIn();
        seen.push(up.filter((n) => ready.has(n.slice(prefix.length + 1))).length);
      } catch (e) {
        // A failed sample is not a figure, and must not end the bench with its VMs left behind: the roll-out itself
        // fails (and is cleaned up) if libvirt is really gone.
        failed++;
        if (failed === 1) console.error(`a sample of the ready VMs failed: ${(e as Error).message.split("\n")[0]}`);
      }
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return { min: Math.min(...seen), max: Math.max(...seen), samples: seen.length, failedSamples: failed };
    },
  };
}

/** One roll-out's figures. */
interface Rolled {
  ms: number;
  min: number;
  max: number;
  samples: number;
  /** Samples that failed (virsh could not list the domains). */
  failedSamples: number;
  /** premiscale: old VMs deleted before their replacement was complete, by apply's events (0 is right). */
  earlyDeletes?: number;
}

/** A JSON event line of `apply --json` (the fields read here). */
type JsonEvent = { type: string; address?: string; change?: { address: string; action: string; replaces?: string } };

/** Raw virsh: a fleet of VMS made by the script (untimed), then rolled by hand serially and in batches of SURGE. */
async function raw(guest: InstalledGuest): Promise<{ serial: Rolled; batched: Rolled }> {
  const tmp = await mkdtemp(join(tmpdir(), "bench-rollout-"));
  const readyDir = join(tmp, "ready");
  await mkdir(readyDir);
  const arrived = new Set<string>(); // uuid prefixes (8 hex digits) that phoned home
  const server = createServer((req, res) => {
    const id = /^\/phone-home\/([0-9a-f-]{36})/.exec(req.url ?? "")?.[1];
    req.resume();
    req.on("end", () => {
      if (req.method === "POST" && id && !arrived.has(id.slice(0, 8))) {
        arrived.add(id.slice(0, 8));
        void writeFile(join(readyDir, id), "").finally(() => res.end("ok\n"));
      } else res.end("ok\n");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const script = join(tmp, "replace-one.sh");
  await writeFile(script, REPLACE_ONE);

  /** Writes a new VM's seed files, domain XML and volume parameters (untimed); returns its name and uuid. */
  const prepare = async (memoryMiB: number) => {
    const vm = rawGuestVm(guest, RAW, port, memoryMiB);
    const dir = join(tmp, vm.name);
    await mkdir(dir);
    for (const [f, text] of Object.entries(seedFiles(vm))) await writeFile(join(dir, f), text);
    await writeFile(join(dir, "domain.xml"), domainXml(vm, "qemu"));
    await writeFile(join(dir, "disk-size"), `${vm.diskSizeGiB}G`);
    await writeFile(join(dir, "base"), vm.baseImage);
    return { name: vm.name, uuid: vm.uuid };
  };
  /** Replaces `old[i]` by `next[i]` (or only creates, where old is empty) in batches of `batch`; returns ms. */
  const run = async (next: { name: string; uuid: string }[], old: string[], batch: number): Promise<number> => {
    const lines: string[] = ["set -u"];
    for (let k = 0; k < next.length; k += batch) {
      lines.push("pids=()");
      for (let i = k; i < Math.min(k + batch, next.length); i++) {
        const n = next[i]!;
        lines.push(`bash ${script} ${n.name} ${join(tmp, n.name)} ${n.uuid} "${old[i] ?? ""}" ${readyDir} & pids+=($!)`);
      }
      lines.push(`for p in "\${pids[@]}"; do wait "$p" || exit 1; done`);
    }
    const t0 = performance.now();
    const r = await execa("bash", ["-c", lines.join("\n")], { reject: false, timeout: TIMEOUT_MS });
    const took = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`the raw-virsh roll-out failed (exit ${r.exitCode}):\n${r.stderr}`);
    return took;
  };
  const rolled = async (next: { name: string; uuid: string }[], old: string[], batch: number): Promise<Rolled> => {
    const watch = watchReady(RAW, async () => arrived);
    try {
      const took = await run(next, old, batch);
      return { ms: took, ...(await watch.stop()) };
    } finally {
      await watch.stop();
    }
  };
  try {
    const fleet: { name: string; uuid: string }[] = [];
    for (let i = 0; i < VMS; i++) fleet.push(await prepare(guest.memoryMiB));
    await run(fleet, [], 5);
    const v1: { name: string; uuid: string }[] = [];
    for (let i = 0; i < VMS; i++) v1.push(await prepare(guest.memoryMiB + 16));
    const serial = await rolled(v1, fleet.map((f) => f.name), 1);
    const v2: { name: string; uuid: string }[] = [];
    for (let i = 0; i < VMS; i++) v2.push(await prepare(guest.memoryMiB + 32));
    const batched = await rolled(v2, v1.map((f) => f.name), SURGE);
    return { serial, batched };
  } finally {
    server.close();
    await sweep();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** premiscale: a group of VMS (untimed apply), then two template changes rolled out with surge 1 and SURGE_TEXT. */
async function premiscale(guest: InstalledGuest): Promise<{ one: Rolled; wide: Rolled; plan: number }> {
  const dir = await mkdtemp(join(tmpdir(), "bench-rollout-"));
  const base: GuestConfigOptions = { group: GROUP, desired: VMS, max: VMS, guest, port: await freePort(), timeoutSeconds: READY_TIMEOUT_S, maxParallel: 10, cpuOvercommit: 32 };
  const configure = (memoryMiB: number, surge: string, desired = VMS) =>
    writeFile(join(dir, "premiscale.yaml"), guestConfigText({ ...base, desired, memoryMiB, groupExtra: `rollout: {maxSurge: ${surge}, maxUnavailable: 0}` }));
  let stdout = "";
  const apply = async (): Promise<number> => {
    const t0 = performance.now();
    const r = await execa("node", [BIN, "apply", "--auto-approve", "--json", "--shutdown-timeout", "0s"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, input: "", timeout: TIMEOUT_MS });
    const took = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`premiscale apply failed (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
    stdout = r.stdout;
    return took;
  };
  /** Old VMs whose delete started before their replacement was complete (checked in), from apply's own events. */
  const earlyDeletes = (): number => {
    const ev = stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as JsonEvent);
    const at = (type: string, address: string) => ev.findIndex((e) => e.type === type && e.address === address);
    const replacements = ev.filter((e) => e.type === "planned_change" && e.change?.action === "create" && e.change.replaces).map((e) => e.change!);
    if (replacements.length !== VMS) throw new Error(`the roll-out planned ${replacements.length} replacements, not ${VMS}`);
    return replacements.filter((c) => !(at("apply_complete", c.address) > -1 && at("apply_start", c.replaces!) > at("apply_complete", c.address))).length;
  };
  const checkIns = join(dir, "state", ".premiscale", "check-ins");
  // Once seen, a check-in counts until its VM stops running: premiscale forgets an old VM's check-in (removes its
  // file) when it starts deleting it, before `virsh destroy` returns, and writes a new VM's file with an fsync that
  // can land after apply already acted on the check-in (it waits on its in-memory copy), so reading the folder as it
  // is would count VMs as unready that are up and did check in.
  const everCheckedIn = new Set<string>();
  const checkedIn = async () => {
    for (const f of await readdir(checkIns).catch(() => [] as string[])) if (f.endsWith(".json")) everCheckedIn.add(f.slice(0, 8));
    return everCheckedIn;
  };
  const rolled = async (): Promise<Rolled> => {
    const before = await domainsOf(GROUP);
    const watch = watchReady(GROUP, checkedIn);
    try {
      const took = await apply();
      const figures = await watch.stop();
      // The roll-out must have replaced every VM, and left the group at its size.
      const after = await domainsOf(GROUP);
      const kept = after.filter((n) => before.includes(n));
      if (after.length !== VMS || kept.length > 0) throw new Error(`after the roll-out the group has ${after.length} VMs (${kept.length} not replaced: ${kept.join(", ")}), expected ${VMS} new ones`);
      return { ms: took, ...figures, earlyDeletes: earlyDeletes() };
    } finally {
      await watch.stop();
    }
  };
  try {
    await configure(guest.memoryMiB, "1");
    await apply();
    await configure(guest.memoryMiB + 16, "1");
    const one = await rolled();
    await configure(guest.memoryMiB + 32, SURGE_TEXT);
    const wide = await rolled();
    const t0 = performance.now();
    const r = await execa("node", [BIN, "plan", "--detailed-exitcode"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, input: "", timeout: TIMEOUT_MS });
    const plan = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`premiscale plan after the roll-outs is not empty (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
    return { one, wide, plan };
  } finally {
    await configure(guest.memoryMiB, "1", 0);
    await apply().catch((e: unknown) => console.error(String(e)));
    await sweep();
    await rm(dir, { recursive: true, force: true });
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: removing this run's VMs (${RAW}-…, ${GROUP}-…)`);
    void sweep().finally(() => process.exit(130));
  });
}

const guest = await installGuest("busybox");
console.log(
  `\n# roll-out of a memoryMiB change across ${VMS} busybox VMs (${guest.memoryMiB} → ${guest.memoryMiB + 16} → ${guest.memoryMiB + 32} MiB, plain QEMU, readiness on), unavailable 0, one round`,
);
try {
  const f = (x: Rolled) =>
    `${ms(x.ms)} (ready VMs: fewest ${x.min}, most ${x.max}, ${x.samples} samples${x.failedSamples ? `, ${x.failedSamples} failed` : ""}${x.earlyDeletes !== undefined ? `; old VMs deleted before their replacement was ready, by apply's events: ${x.earlyDeletes}` : ""})`;
  const r = await raw(guest);
  console.log(`  raw virsh, serial: ${f(r.serial)}`);
  console.log(`  raw virsh, batches of ${SURGE}: ${f(r.batched)}`);
  const p = await premiscale(guest);
  console.log(`  premiscale, maxSurge 1: ${f(p.one)}`);
  console.log(`  premiscale, maxSurge ${SURGE_TEXT}${SURGE_TEXT.endsWith("%") ? ` (${SURGE})` : ""}: ${f(p.wide)}`);
  console.log(`  premiscale plan with nothing to do afterwards (its fixed cost per run: node start, observe, plan): ${ms(p.plan)}`);
  ratioLine("premiscale roll-out, maxSurge 1", p.one.ms, "serial raw-virsh script", r.serial.ms);
  ratioLine(`premiscale roll-out, maxSurge ${SURGE_TEXT}`, p.wide.ms, `raw-virsh script in batches of ${SURGE}`, r.batched.ms);
  console.log(`fewest ready VMs during the roll-out (of ${VMS}): premiscale ${p.one.min} / ${p.wide.min}; raw virsh ${r.serial.min} / ${r.batched.min}`);
} finally {
  await sweep();
}
