/**
 * The libvirt kind's part of the config: on a host `uri`, `pool` and `accelerator`; in a group's template `disk`
 * (an overlay on a base image in the pool), `nic` and `boot`. Its rules (which URIs, `accelerator: auto` only on
 * this machine, a NIC source only for network and bridge NICs) and defaults live here, not in config/.
 */
import { closest } from "../../config/closest.js";
import type { ProviderConfigFragment, Schema } from "../../config/provider-kinds.js";
import { ABSOLUTE_PATH_PATTERN, obj, str } from "../../config/schema.js";
import { didYouMean, quote } from "../../config/schema-issues.js";
import type { HostConfig, VmTemplate } from "../../config/types.js";

/** How QEMU runs guests on a host: hardware virtualisation or plain emulation (TCG). */
export type Accelerator = "kvm" | "qemu";

/** A libvirt host's own settings. */
export interface LibvirtHostSettings {
  /** libvirt connection URI, e.g. `qemu:///system`, `qemu+ssh://admin@kvm1/system`, `test:///default`. */
  uri: string;
  /** Storage pool on that host for VM disks and seeds, and where base images live. @default "default" */
  pool: string;
  /**
   * `auto`: KVM where providers/libvirt/setup-host.sh proved it boots a kernel on this machine, else plain QEMU
   * (only for hosts on this machine). @default "kvm"
   */
  accelerator: Accelerator | "auto";
}

/** A guest NIC. `user` is QEMU user-mode networking (no host set-up; guest sees the host at 10.0.2.2). */
export type NicConfig = { type: "user" } | { type: "network"; source: string } | { type: "bridge"; source: string };

/** Direct kernel boot instead of booting the disk's bootloader; paths are on the host. */
export interface KernelBoot {
  kernel: string;
  initrd?: string;
  cmdline?: string;
}

/** A group template's libvirt settings. */
export interface LibvirtTemplateSettings {
  disk: {
    /** Name of a volume in the host's pool (qcow2) used as the copy-on-write backing image. */
    baseImage: string;
    /** Virtual size of each VM's overlay disk, in GiB. @default 4 */
    sizeGiB: number;
  };
  /** @default { type: "user" } */
  nic: NicConfig;
  boot?: KernelBoot;
}

const URI_SCHEMES = ["qemu", "qemu+ssh", "qemu+tls", "qemu+tcp", "qemu+unix", "qemu+libssh", "qemu+libssh2", "qemu+ext", "test"];

/** Why `uri` is not a libvirt URI premiscale can use, or undefined when it is fine. */
export function uriProblem(uri: string): { message: string; fix?: string } | undefined {
  const m = /^([A-Za-z0-9+]+):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(uri);
  const examples = "e.g. qemu:///system, qemu+ssh://admin@kvm1/system or test:///default";
  if (!m) return { message: `${quote(uri)} is not a libvirt URI (scheme://[user@host]/path)`, fix: examples };
  const [, scheme = "", authority = "", p = ""] = m;
  if (!URI_SCHEMES.includes(scheme)) {
    return { message: `unknown libvirt URI scheme ${quote(scheme)}`, fix: `${didYouMean(closest(scheme, URI_SCHEMES))}use one of ${URI_SCHEMES.join(", ")}` };
  }
  if (scheme === "test") {
    if (authority || p.length < 2) return { message: `test URIs must be test:///default or test:///absolute/path/to/driver.xml, got ${quote(uri)}` };
  } else if (p !== "/system" && p !== "/session") {
    return { message: `the path of a qemu URI must be /system or /session, got ${quote(p)}`, fix: examples };
  }
  return undefined;
}

const hostProperties: Record<string, Schema> = {
  uri: str("libvirt connection URI.", { examples: ["qemu:///system", "qemu+ssh://admin@kvm1/system", "test:///default"] }),
  pool: str("Storage pool on the host for VM disks and seeds; base images must be volumes in it. Default: default."),
  accelerator: {
    type: "string",
    enum: ["kvm", "qemu", "auto"],
    description:
      "kvm: hardware virtualisation; qemu: plain emulation (TCG), for hosts without working KVM; auto: kvm where providers/libvirt/setup-host.sh proved KVM boots a kernel on this machine, else qemu (hosts on this machine only). Default: kvm.",
  },
};

const templateProperties: Record<string, Schema> = {
  disk: obj(
    "Each VM gets a copy-on-write overlay on a base image.",
    {
      baseImage: str("Name of a qcow2 volume in the host's pool, used as the backing image."),
      sizeGiB: { type: "number", exclusiveMinimum: 0, default: 4, description: "Virtual size of each VM's disk, in GiB." },
    },
    { required: ["baseImage"] },
  ),
  nic: obj(
    "The guest's network interface. Default: {type: user}.",
    {
      type: {
        type: "string",
        enum: ["user", "network", "bridge"],
        default: "user",
        description: "user: QEMU user-mode networking (no host set-up); network: a libvirt network; bridge: a host bridge.",
      },
      source: str("Name of the libvirt network (type network) or host bridge (type bridge)."),
    },
    {
      if: { properties: { type: { enum: ["network", "bridge"] } }, required: ["type"] },
      then: { required: ["source"] },
    },
  ),
  boot: obj(
    "Direct kernel boot instead of the disk's bootloader; paths are on the host.",
    {
      kernel: str("Absolute path of the kernel image on the host.", { pattern: ABSOLUTE_PATH_PATTERN }),
      initrd: str("Absolute path of the initrd on the host.", { pattern: ABSOLUTE_PATH_PATTERN }),
      cmdline: { type: "string", description: "Kernel command line, e.g. console=ttyS0." },
    },
    { required: ["kernel"] },
  ),
};

/** The libvirt kind's config fragment. */
export const libvirtConfig: ProviderConfigFragment<LibvirtHostSettings, LibvirtTemplateSettings> = {
  kind: "libvirt",
  description: "a libvirt daemon (KVM or QEMU), reached through virsh over any libvirt URI (local, qemu+ssh, qemu+tls)",
  host: {
    properties: hostProperties,
    required: ["uri"],
    normalise(f, ctx) {
      const uri = String(f.uri);
      const accelerator = (f.accelerator as LibvirtHostSettings["accelerator"] | undefined) ?? "kvm";
      const bad = uriProblem(uri);
      if (bad) ctx.issue(["uri"], bad.message, bad.fix);
      else if (accelerator === "auto" && /^[a-z]+(\+[a-z0-9]+)?:\/\/[^/]/.test(uri)) {
        ctx.issue(["accelerator"], "accelerator auto is only for hosts on this machine (KVM is proven by booting a kernel here)", "set kvm or qemu for a remote host");
      }
      return { uri, pool: (f.pool as string | undefined) ?? "default", accelerator };
    },
  },
  template: {
    properties: templateProperties,
    required: ["disk"],
    normalise(f, ctx) {
      const disk = f.disk as LibvirtTemplateSettings["disk"];
      const rawNic = (f.nic as { type: NicConfig["type"]; source?: string } | undefined) ?? { type: "user" };
      if (rawNic.type === "user" && rawNic.source !== undefined) {
        ctx.issue(["nic", "source"], "source is only used with nic type network or bridge", "remove source, or set type: network or type: bridge", true);
      }
      const nic: NicConfig = rawNic.type === "user" ? { type: "user" } : { type: rawNic.type, source: rawNic.source ?? "" };
      const boot = f.boot as KernelBoot | undefined;
      return { disk: { baseImage: disk.baseImage, sizeGiB: disk.sizeGiB }, nic, ...(boot ? { boot: { ...boot } } : {}) };
    },
  },
};

/** A libvirt host's settings (the loader validated them). */
export function libvirtHost(host: HostConfig): LibvirtHostSettings {
  return host.settings as unknown as LibvirtHostSettings;
}

/** A template's libvirt settings, or undefined when the group has no libvirt host. */
export function libvirtTemplate(template: VmTemplate): LibvirtTemplateSettings | undefined {
  return template.settings.libvirt as unknown as LibvirtTemplateSettings | undefined;
}
