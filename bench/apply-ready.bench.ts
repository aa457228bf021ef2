// How long from `premiscale apply` to N VMs that booted and checked in, against the guest's own boot time?
// The guest is test/guests' busybox guest (Debian kernel + busybox initramfs that phones home like cloud-init).
// Baseline, measured the same way with raw virsh (like test/guests/try-guest.sh): the same domain XML (domainXml),
// the same seed files (seedFiles, phone_home to a listener of this process), volumes made beforehand; timed from the
// first `virsh define` to the last POST, with the N defines+starts run in parallel (one virsh process each).
// premiscale: `apply --auto-approve` of a group of N with readiness.checkIn: true, timed from spawning the process to
// its exit (observe, plan, disks, seeds, define, start, wait for every check-in, git commit), and to the last
// check-in it received. Needs qemu:///system (providers/libvirt/setup-host.sh) and builds the guest if needed.
//
// Env: BENCH_N (VM counts, comma-separated, default 1,3), BENCH_ROUNDS (default 2; medians are printed).
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { domainXml, volumesOf } from "../providers/libvirt/domain-xml.js";
import { seedFiles } from "../providers/libvirt/seed.js";
import { freePort, guestConfigText, installGuest, readCheckIns, type InstalledGuest } from "../test/support/guests.js";
import { median, ms, ratioLine } from "./common.js";
import { rawGuestVm } from "./raw-vm.js";

const SIZES = (process.env.BENCH_N ?? "1,3").split(",").map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const URI = "qemu:///system";
const BIN = resolve(import.meta.dirname, "../dist/cli/main.js");
const TIMEOUT_MS = 180_000;

const virsh = async (...args: string[]) => {
  const r = await execa("virsh", ["-q", "-c", URI, ...args], { reject: false });
  if (r.exitCode !== 0) throw new Error(`virsh ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

/** Raw virsh: volumes and seeds first (untimed), then define + start all N at once; ms until every VM has POSTed. */
async function rawBoot(guest: InstalledGuest, N: number): Promise<number> {
  const arrived = new Map<string, number>();
  const server = createServer((req, res) => {
    const id = /^\/phone-home\/([0-9a-f-]{36})/.exec(req.url ?? "")?.[1];
    req.resume();
    req.on("end", () => {
      if (req.method === "POST" && id && !arrived.has(id)) arrived.set(id, performance.now());
      res.end("ok\n");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const tmp = await mkdtemp(join(tmpdir(), "bench-ready-"));
  const vms = Array.from({ length: N }, () => rawGuestVm(guest, "bnraw", port));
  try {
    for (const vm of vms) {
      const dir = join(tmp, vm.name);
      await mkdir(dir, { recursive: true });
      for (const [f, text] of Object.entries(seedFiles(vm))) await writeFile(join(dir, f), text);
      await execa("genisoimage", ["-quiet", "-output", "seed.iso", "-volid", "cidata", "-joliet", "-rock", "user-data", "meta-data", "network-config"], { cwd: dir });
      const vols = volumesOf(vm.name);
      await virsh("vol-create-as", vm.pool, vols.disk, `${vm.diskSizeGiB}G`, "--format", "qcow2", "--backing-vol", vm.baseImage, "--backing-vol-format", "qcow2");
      await virsh("vol-create-as", vm.pool, vols.seed, `${(await readFile(join(dir, "seed.iso"))).length}b`, "--format", "raw");
      await virsh("vol-upload", "--pool", vm.pool, vols.seed, join(dir, "seed.iso"));
      await writeFile(join(dir, "domain.xml"), domainXml(vm, "qemu"));
    }
    const t0 = performance.now();
    await Promise.all(vms.map(async (vm) => (await virsh("define", join(tmp, vm.name, "domain.xml")), await virsh("start", vm.name))));
    while (arrived.size < N) {
      if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`raw: only ${arrived.size} of ${N} guests phoned home within ${TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return Math.max(...arrived.values()) - t0;
  } finally {
    server.close();
    for (const vm of vms) {
      await virsh("destroy", vm.name).catch(() => undefined);
      await virsh("undefine", vm.name).catch(() => undefined);
      for (const v of Object.values(volumesOf(vm.name))) await virsh("vol-delete", "--pool", vm.pool, v).catch(() => undefined);
    }
    await rm(tmp, { recursive: true, force: true });
  }
}

/** premiscale: ms from spawning `apply` to its exit, and to the last check-in it received. */
async function premiscaleApply(guest: InstalledGuest, N: number): Promise<{ exit: number; lastCheckIn: number }> {
  const dir = await mkdtemp(join(tmpdir(), "bench-ready-"));
  const options = { group: "bnrdy", desired: N, max: N, guest, port: await freePort(), timeoutSeconds: 150, maxParallel: 10 };
  const run = (desired: number) =>
    execa("node", [BIN, "apply", "--auto-approve", "--shutdown-timeout", "20s"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, input: "", timeout: TIMEOUT_MS }).then(
      (r) => {
        if (r.exitCode !== 0) throw new Error(`premiscale apply (desired ${desired}) failed:\n${r.stdout}\n${r.stderr}`);
      },
    );
  try {
    await writeFile(join(dir, "premiscale.yaml"), guestConfigText(options));
    const startedAt = Date.now();
    const t0 = performance.now();
    await run(N);
    const exit = performance.now() - t0;
    const lastCheckIn = Math.max(...[...(await readCheckIns(join(dir, "state"))).values()].map((c) => Date.parse(c.receivedAt))) - startedAt;
    return { exit, lastCheckIn };
  } finally {
    await writeFile(join(dir, "premiscale.yaml"), guestConfigText({ ...options, desired: 0 }));
    await run(0).catch((e: unknown) => console.error((e as Error).message));
    await rm(dir, { recursive: true, force: true });
  }
}

const guest = await installGuest("busybox");
for (const N of SIZES) {
  console.log(`\n# ${N} busybox VM${N === 1 ? "" : "s"} (${guest.memoryMiB} MiB, plain QEMU) to checked in, median of ${ROUNDS} round${ROUNDS === 1 ? "" : "s"} each`);
  const raw: number[] = [];
  const exits: number[] = [];
  const last: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    raw.push(await rawBoot(guest, N));
    const p = await premiscaleApply(guest, N);
    exits.push(p.exit);
    last.push(p.lastCheckIn);
    console.log(`  round ${round + 1}: raw define+start → last POST ${ms(raw.at(-1)!)}; apply → last check-in ${ms(p.lastCheckIn)}, → exit ${ms(p.exit)}`);
  }
  ratioLine(`premiscale apply → all ${N} ready (process exit)`, median(exits), "raw virsh define+start → all POSTs", median(raw));
  ratioLine("premiscale apply → last check-in received", median(last), "raw virsh define+start → all POSTs", median(raw));
}
