import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { HostConfig } from "../../config/types.js";
import { libvirtHost, type LibvirtTemplateSettings } from "../../providers/libvirt/config.js";
import { LibvirtProvider } from "../../providers/libvirt/libvirt-provider.js";
import { VirshSession, quoteArg as q, type VirshResult } from "../../providers/libvirt/virsh-session.js";
import type { ProviderHarness } from "../../providers/provider.contract.js";
import { blankVmSpec } from "./libvirt.js";

/** A virsh that never answers (a frozen host): see frozen-virsh.mjs. */
export const FROZEN_VIRSH = resolve(import.meta.dirname, "frozen-virsh.mjs");

/**
 * A session the test holds itself: adapters handed it cannot close it. The test driver keeps its world in one
 * connection, so several adapters stand on one test host only by sharing one.
 */
export class HeldSession extends VirshSession {
  override async close(): Promise<void> {}

  /** Closes it for real. */
  release(): Promise<void> {
    return super.close();
  }
}

/** What the libvirt harness needs to know of its host. */
export interface LibvirtHarnessOptions {
  host: HostConfig;
  /** The harness's own connection to the host, for planting, inspecting and cleaning up. */
  session: HeldSession;
  /** Adapters use `session` instead of opening their own (the test driver, whose world lives in it). */
  shareSession: boolean;
  /** A volume in the host's pool that VM disks are overlays on. */
  baseImage: string;
  /** Every VM and volume the harness makes starts with it; cleanup removes exactly those. */
  prefix: string;
  memoryMiB: number;
  /** `type` of a planted domain: `test` on the test driver, `qemu` on a real host. */
  domainType: "test" | "qemu";
}

/** The Provider contract harness for a libvirt host (test driver or real): see `ProviderHarness`. */
export function libvirtHarness(o: LibvirtHarnessOptions): ProviderHarness {
  const pool = libvirtHost(o.host).pool;
  const run = async (commands: string[]): Promise<VirshResult[]> => {
    const results = await o.session.runMany(commands);
    const failed = results.find((r) => !r.ok);
    if (failed) throw new Error(`harness: \`${failed.command}\` failed: ${failed.errors.join("; ")}`);
    return results;
  };
  const listNames = async () => {
    const [domains, vols] = await run(["list --all --name", `vol-list ${q(pool)}`]);
    return {
      domains: domains!.stdout.split("\n").map((l) => l.trim()).filter(Boolean),
      // `NAME PATH` lines; sessions run virsh with -q, which leaves out the header and its rule (kept out here anyway).
      volumes: vols!.stdout
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !/^Name\s+Path$/.test(l) && !/^-+$/.test(l))
        .map((l) => l.split(/\s+/)[0]!),
    };
  };
  const ofVm = (name: string) => (n: string) => n === name || (n.startsWith(name) && /^[.-]/.test(n.slice(name.length)));

  return {
    open: () => new LibvirtProvider(o.host, o.shareSession ? { openSession: () => o.session } : {}),
    openHung: (callTimeoutMs) => new LibvirtProvider(o.host, { virshPath: FROZEN_VIRSH, callTimeoutMs }),
    template: {
      vcpus: 1,
      memoryMiB: o.memoryMiB,
      settings: { disk: { baseImage: o.baseImage, sizeGiB: 1 }, nic: { type: "user" } } satisfies LibvirtTemplateSettings,
    },
    vmSpec: (settings) => blankVmSpec(o.prefix, o.baseImage, { memoryMiB: o.memoryMiB, settings }),

    async plantForeign(name, uuid) {
      // A bare domain as someone would define by hand: no disk, no NIC, no premiscale metadata.
      const tcg = o.domainType === "qemu" ? "<tcg><tb-cache unit='MiB'>32</tb-cache></tcg>" : "";
      const xml = `<domain type='${o.domainType}'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/>${tcg}</features></domain>\n`;
      const dir = await mkdtemp(join(tmpdir(), "premiscale-foreign-"));
      try {
        await writeFile(join(dir, "domain.xml"), xml);
        await run([`define ${q(join(dir, "domain.xml"))}`, `start ${q(name)}`]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },

    async remains(name) {
      const { domains, volumes } = await listNames();
      const mine = domains.filter((d) => d === name);
      const states = mine.length > 0 ? await run(mine.map((d) => `domstate ${q(d)}`)) : [];
      return [...mine.map((d, i) => `domain ${d}: ${states[i]!.stdout.trim()}`), ...volumes.filter(ofVm(name)).map((v) => `volume ${v}`)];
    },

    async cleanup() {
      try {
        const { domains, volumes } = await listNames();
        for (const d of domains.filter((n) => n.startsWith(o.prefix))) {
          await o.session.run(`destroy ${q(d)}`);
          const [u] = await o.session.runMany([`undefine ${q(d)} --nvram --managed-save`]);
          if (!u!.ok) await run([`undefine ${q(d)}`]);
        }
        for (const v of volumes.filter((n) => n.startsWith(o.prefix))) await run([`vol-delete --pool ${q(pool)} ${q(v)}`]);
        const left = await listNames();
        const still = [...left.domains, ...left.volumes].filter((n) => n.startsWith(o.prefix));
        if (still.length > 0) throw new Error(`harness: cleanup left ${still.join(", ")} behind`);
      } finally {
        await o.session.release();
      }
    },
  };
}
