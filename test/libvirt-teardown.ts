import { execFileSync } from "node:child_process";
import { METADATA_NS as NS } from "../providers/libvirt/domain-xml.js";
import setup from "./global-setup.js";

const virsh = (...args: string[]) => execFileSync("virsh", ["-q", "-c", "qemu:///system", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** Builds dist/ first, and after the libvirt tests fails the run if any premiscale domain or VM volume is left. */
export default function libvirtSetup(): () => void {
  setup();
  return () => {
    const left: string[] = [];
    for (const name of virsh("list", "--all", "--name").split("\n").map((s) => s.trim()).filter(Boolean)) {
      try {
        if (virsh("metadata", name, NS).includes("instance")) left.push(`domain ${name}`);
      } catch {
        // no premiscale metadata: not ours
      }
    }
    for (const line of virsh("vol-list", "default").split("\n")) {
      const vol = line.trim().split(/\s+/)[0] ?? "";
      if (/-[0-9a-f]{8}(-seed\.iso|\.qcow2)$/.test(vol)) left.push(`volume ${vol}`);
    }
    if (left.length > 0) throw new Error(`the libvirt tests left premiscale objects behind: ${left.join(", ")}`);
  };
}
