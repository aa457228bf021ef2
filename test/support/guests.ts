import { readFile, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa } from "execa";
import type { CheckIn } from "../../server/check-in-server.js";

const INSTALL = resolve(import.meta.dirname, "../guests/install-guest.sh");

/** The test guests (test/guests/README.md): `busybox` checks in ~4 s after start, `debian` runs real cloud-init. */
export type GuestKind = "busybox" | "debian";

/** What a group template needs to boot a test guest, as `test/guests/install-guest.sh KIND --json` prints it. */
export interface InstalledGuest {
  kind: GuestKind;
  /** The build directory in the guest cache. */
  dir: string;
  /** Absolute host paths for `template.boot`. */
  kernel: string;
  initrd: string;
  cmdline: string;
  pool: string;
  /** The base image volume in `pool`, for `template.disk.baseImage`. */
  baseImage: string;
  /** The smallest `disk.sizeGiB`: the base image's virtual size. */
  minDiskGiB: number;
  /** The memory the guest was tried with. */
  memoryMiB: number;
}

/**
 * Builds the guest if its recipe changed (busybox ~8 s, debian ~60-70 s; ~2 s when cached) and installs its base
 * image into the `default` pool of qemu:///system. Safe to call from several processes at once.
 */
export async function installGuest(kind: GuestKind): Promise<InstalledGuest> {
  // test/run.sh runs VM tests in their own lane, one file at a time (VMs share the host's vCPU budget): a test file
  // that boots VMs from another project would run beside them and make their applies short of room.
  if (process.env.VITEST && process.env.PREMISCALE_TEST_VMS !== "1") {
    throw new Error("this test file boots real VMs: name it *.libvirt.test.ts, or list it in vitest.config.ts's KUBERNETES_WITH_VMS");
  }
  const r = await execa("bash", [INSTALL, kind, "--json"], { reject: false, timeout: 600_000 });
  if (r.exitCode !== 0) throw new Error(`install-guest.sh ${kind} failed (exit ${r.exitCode}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as InstalledGuest;
}

/** A free TCP port on 127.0.0.1 (guests reach the host's loopback as 10.0.2.2 through QEMU user-mode networking). */
export { freePort } from "./serve.js";

/** Options of {@link guestConfigText}. */
export interface GuestConfigOptions {
  group: string;
  desired: number;
  /** @default 3 */
  max?: number;
  /** The guest to boot; `null`: the empty base image and no kernel, so the VM sits in firmware and never checks in. */
  guest: InstalledGuest | null;
  /** The check-in server's port on 127.0.0.1 (config `server.listen`). */
  port: number;
  /** @default true */
  checkIn?: boolean;
  /** @default 90 */
  timeoutSeconds?: number;
  /** readiness.heartbeatSeconds / unhealthyAfterSeconds. @default off */
  heartbeat?: { seconds: number; unhealthyAfterSeconds: number };
  /** @default the guest's memoryMiB, or 96 */
  memoryMiB?: number;
  /** @default the guest's minDiskGiB, or 1 */
  diskGiB?: number;
  /** @default 4 */
  maxParallel?: number;
  /** vCPUs per host CPU. @default the config's default (4) */
  cpuOvercommit?: number;
  /** #cloud-config user-data of the template. @default a write_files of /etc/motd */
  userData?: string;
  /** The base image volume. @default the guest's, or the blank one */
  baseImage?: string;
  /** More fields of the group, as YAML at the group's indentation (e.g. `warmPool: {size: 2}`). */
  groupExtra?: string;
  /** `server.advertiseUrl`: where guests post check-ins (e.g. a proxy a test can cut). @default the server itself */
  advertiseUrl?: string;
}

/** A one-host (qemu:///system, plain QEMU), one-group config whose VMs boot a test guest; state in `./state`. */
export function guestConfigText(o: GuestConfigOptions): string {
  const boot = o.guest
    ? `
      boot:
        kernel: ${JSON.stringify(o.guest.kernel)}
        initrd: ${JSON.stringify(o.guest.initrd)}
        cmdline: ${JSON.stringify(o.guest.cmdline)}`
    : "";
  const userData = (o.userData ?? '#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: "managed by premiscale\\n"\n')
    .trimEnd()
    .split("\n")
    .map((l) => `        ${l}`)
    .join("\n");
  return `version: v1alpha1
state:
  path: ./state
server:
  listen: 127.0.0.1:${o.port}${o.advertiseUrl ? `\n  advertiseUrl: ${o.advertiseUrl}` : ""}
hosts:
  - name: local
    uri: qemu:///system
    pool: ${o.guest?.pool ?? "default"}
    accelerator: qemu
    maxParallel: ${o.maxParallel ?? 4}${o.cpuOvercommit ? `\n    cpuOvercommit: ${o.cpuOvercommit}` : ""}
    callTimeoutSeconds: 60
groups:
  - name: ${o.group}
    min: 0
    max: ${o.max ?? 3}
    desired: ${o.desired}
    hosts: [local]${o.groupExtra ? `\n${o.groupExtra.trimEnd().split("\n").map((l) => `    ${l}`).join("\n")}` : ""}
    readiness:
      checkIn: ${o.checkIn ?? true}
      timeoutSeconds: ${o.timeoutSeconds ?? 90}${o.heartbeat ? `\n      heartbeatSeconds: ${o.heartbeat.seconds}\n      unhealthyAfterSeconds: ${o.heartbeat.unhealthyAfterSeconds}` : ""}
    template:
      vcpus: 1
      memoryMiB: ${o.memoryMiB ?? o.guest?.memoryMiB ?? 96}
      disk:
        baseImage: ${o.baseImage ?? o.guest?.baseImage ?? "premiscale-blank.qcow2"}
        sizeGiB: ${o.diskGiB ?? o.guest?.minDiskGiB ?? 1}${boot}
      userData: |
${userData}
`;
}

/** The check-ins recorded in a state directory (`<state>/.premiscale/check-ins/<instance id>.json`), by instance id. */
export async function readCheckIns(stateDir: string): Promise<Map<string, CheckIn>> {
  const dir = join(stateDir, ".premiscale", "check-ins");
  const files = await readdir(dir).catch(() => [] as string[]);
  const out = new Map<string, CheckIn>();
  for (const f of files.filter((f) => f.endsWith(".json"))) {
    // A file can go between readdir and readFile (premiscale forgets a VM's check-in when it starts deleting it).
    const text = await readFile(join(dir, f), "utf8").catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : Promise.reject(e)));
    if (text === undefined) continue;
    const c = JSON.parse(text) as CheckIn;
    out.set(c.instanceId, c);
  }
  return out;
}
