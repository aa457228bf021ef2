// `premiscale apply` of 20 tiny VMs, against a serial and a parallel raw-virsh script doing the same steps per VM:
// a qcow2 overlay on the base image (vol-create-as --backing-vol), the NoCloud seed (genisoimage, vol-create-as,
// vol-upload), define, start. The domain XML and seed files are premiscale's own (domainXml, seedFiles), written
// before the clock starts; the scripts run one `virsh` process per command, as a hand-written script does.
// Readiness is OFF (readiness.checkIn: false: a VM is done once started) and the VMs boot the empty base image
// (premiscale-blank.qcow2, they sit in firmware), so this measures premiscale's own work, not guests booting
// (bench/apply-ready.bench.ts does that). The parallel script runs BENCH_PARALLEL VMs at once (xargs -P); premiscale
// gets the same limit (--parallelism and the host's maxParallel). premiscale's time is its whole process: node
// start, observe, plan, the creates, and the git commit of state. Then each side removes its 20 VMs (destroy,
// undefine, delete both volumes; premiscale: scale to 0 with --shutdown-timeout 0s), timed the same way.
//
// Env: BENCH_VMS (default 20), BENCH_PARALLEL (default 10), BENCH_ROUNDS (default 1; medians are printed).
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { execa } from "execa";
import { macFromUuid, renderNetworkConfig } from "../providers/libvirt/network.js";
import { domainXml } from "../providers/libvirt/domain-xml.js";
import { seedFiles } from "../providers/libvirt/seed.js";
import { freePort, guestConfigText } from "../test/support/guests.js";
import { ensureBlankBase } from "../test/support/libvirt.js";
import { median, ms, ratioLine } from "./common.js";

const VMS = Number(process.env.BENCH_VMS ?? 20);
const P = Number(process.env.BENCH_PARALLEL ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const URI = "qemu:///system";
const BIN = resolve(import.meta.dirname, "../dist/cli/main.js");
const BASE = "premiscale-blank.qcow2";

const CREATE_ONE = `set -euo pipefail
n=$1 d=$2
v() { virsh -q -c ${URI} "$@" >/dev/null; }
v vol-create-as default "$n.qcow2" 1G --format qcow2 --backing-vol ${BASE} --backing-vol-format qcow2
(cd "$d" && genisoimage -quiet -output seed.iso -volid cidata -joliet -rock user-data meta-data network-config)
v vol-create-as default "$n-seed.iso" "$(stat -c %s "$d/seed.iso")b" --format raw
v vol-upload --pool default "$n-seed.iso" "$d/seed.iso"
v define "$d/domain.xml"
v start "$n"
`;
const DESTROY_ONE = `set -uo pipefail
n=$1
v() { virsh -q -c ${URI} "$@" >/dev/null; }
v destroy "$n"
v undefine "$n" --nvram
v vol-delete --pool default "$n.qcow2"
v vol-delete --pool default "$n-seed.iso"
`;

/** Writes each VM's seed files and domain XML (untimed); returns the VM names. */
async function prepare(tmp: string, prefix: string): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < VMS; i++) {
    const uuid = randomUUID();
    const mac = macFromUuid(uuid);
    const vm = {
      name: `${prefix}-${uuid.slice(0, 8)}`,
      uuid,
      group: prefix,
      lineage: "bench-raw",
      createdAt: new Date().toISOString(),
      vcpus: 1,
      memoryMiB: 96,
      accelerator: "qemu" as const,
      pool: "default",
      baseImage: BASE,
      diskSizeGiB: 1,
      mac,
      nic: { type: "user" as const },
      userData: "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: \"managed by premiscale\\n\"\n",
      networkConfig: renderNetworkConfig(mac, { mode: "dhcp" }),
    };
    const dir = join(tmp, vm.name);
    await mkdir(dir);
    for (const [f, text] of Object.entries(seedFiles(vm))) await writeFile(join(dir, f), text);
    await writeFile(join(dir, "domain.xml"), domainXml(vm, "qemu"));
    names.push(vm.name);
  }
  return names;
}

/** Runs the script FILE once per name (arguments: the name, its directory), serially or P at once; returns ms. */
async function runScript(tmp: string, file: string, names: string[], parallel: boolean): Promise<number> {
  const driver = parallel
    ? `printf '%s\\n' ${names.join(" ")} | xargs -P ${P} -I{} bash ${file} {} ${tmp}/{}`
    : `for n in ${names.join(" ")}; do bash ${file} "$n" "${tmp}/$n" || exit 1; done`;
  const t0 = performance.now();
  const r = await execa("bash", ["-c", driver], { reject: false });
  const took = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${file} failed: ${r.stderr}`);
  return took;
}

async function raw(parallel: boolean): Promise<{ create: number; destroy: number }> {
  const tmp = await mkdtemp(join(tmpdir(), "bench-20-"));
  const names = await prepare(tmp, parallel ? "bnp" : "bns");
  const createOne = join(tmp, "create-one.sh");
  const destroyOne = join(tmp, "destroy-one.sh");
  await writeFile(createOne, CREATE_ONE);
  await writeFile(destroyOne, DESTROY_ONE);
  try {
    const create = await runScript(tmp, createOne, names, parallel);
    const destroy = await runScript(tmp, destroyOne, names, parallel);
    return { create, destroy };
  } finally {
    // Whatever a failed run left (the destroy script goes on past "not found").
    await execa("bash", ["-c", names.map((n) => `bash ${destroyOne} ${n} 2>/dev/null`).join("; ")], { reject: false });
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Peak resident memory (VmHWM, KiB) of each premiscale process the bench ran. */
const peakKiB: number[] = [];

/** Polls a process's high-water RSS (/proc/PID/status VmHWM) until stopped; the last value read is its peak. */
function watchPeakRss(pid: number): { stop(): number } {
  let hwm = 0;
  const read = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) hwm = Math.max(hwm, Number(m[1]));
    } catch {
      // exited
    }
  };
  const timer = setInterval(read, 50);
  read();
  return { stop: () => (clearInterval(timer), hwm) };
}

/** premiscale's create and destroy of VMS, and a `plan` with nothing to do in between (its fixed cost). */
async function premiscale(): Promise<{ create: number; destroy: number; plan: number }> {
  const dir = await mkdtemp(join(tmpdir(), "bench-20-"));
  const options = { group: "bn20", desired: VMS, max: VMS, guest: null, port: await freePort(), checkIn: false, maxParallel: P, memoryMiB: 96, cpuOvercommit: 16 };
  const cli = async (args: string[], desired: number) => {
    await writeFile(join(dir, "premiscale.yaml"), guestConfigText({ ...options, desired }));
    const t0 = performance.now();
    const child = execa("node", [BIN, ...args], {
      cwd: dir,
      reject: false,
      env: { CI: "true", NO_COLOR: "1" },
      input: "",
    });
    const peak = watchPeakRss(child.pid!);
    const r = await child;
    const took = performance.now() - t0;
    peakKiB.push(peak.stop());
    if (r.exitCode !== 0) throw new Error(`premiscale ${args[0]} (desired ${desired}) failed:\n${r.stdout}\n${r.stderr}`);
    return took;
  };
  const apply = (desired: number) => cli(["apply", "--auto-approve", "--parallelism", String(P), "--shutdown-timeout", "0s"], desired);
  try {
    const create = await apply(VMS);
    const plan = await cli(["plan"], VMS);
    const destroy = await apply(0);
    return { create, destroy, plan };
  } finally {
    await apply(0).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

await ensureBlankBase(BASE);
console.log(`\n# ${VMS} tiny VMs (blank disk, 96 MiB, plain QEMU, readiness off), parallel ${P}, median of ${ROUNDS} round${ROUNDS === 1 ? "" : "s"}`);
const runs = { serial: [] as { create: number; destroy: number }[], parallel: [] as { create: number; destroy: number }[], premiscale: [] as { create: number; destroy: number; plan: number }[] };
for (let round = 0; round < ROUNDS; round++) {
  runs.serial.push(await raw(false));
  runs.parallel.push(await raw(true));
  runs.premiscale.push(await premiscale());
  const f = (x: { create: number; destroy: number }) => `create ${ms(x.create)}, destroy ${ms(x.destroy)}`;
  console.log(`  round ${round + 1}: serial ${f(runs.serial.at(-1)!)}; parallel ${f(runs.parallel.at(-1)!)}; premiscale ${f(runs.premiscale.at(-1)!)} (plan with no changes: ${ms(runs.premiscale.at(-1)!.plan)})`);
}
// Memory: premiscale's own process while applying, against a bare node process measured the same way.
const bare = execa("node", ["-e", "setTimeout(() => {}, 500)"]);
const bareWatch = watchPeakRss(bare.pid!);
await bare;
const bareKiB = bareWatch.stop();
console.log(
  `premiscale peak RSS while applying ${VMS} VMs: ${(Math.max(...peakKiB) / 1024).toFixed(1)} MiB vs a bare node process ${(bareKiB / 1024).toFixed(1)} MiB = ${(Math.max(...peakKiB) / bareKiB).toFixed(2)}×`,
);
const med = (xs: { create: number; destroy: number }[], k: "create" | "destroy") => median(xs.map((x) => x[k]));
for (const k of ["create", "destroy"] as const) {
  const what = k === "create" ? `apply of ${VMS} (create)` : `scale ${VMS} → 0 (destroy)`;
  ratioLine(`premiscale ${what}`, med(runs.premiscale, k), "serial raw-virsh script", med(runs.serial, k));
  ratioLine(`premiscale ${what}`, med(runs.premiscale, k), `parallel raw-virsh script (-P ${P})`, med(runs.parallel, k));
}
