import type { LibvirtVm } from "./domain-xml.js";

/** The files of a cloud-init NoCloud seed (volume label `cidata`). */
export interface SeedFiles {
  "meta-data": string;
  "user-data": string;
  "network-config": string;
}

/** Builds a VM's NoCloud seed files: meta-data names the instance, user-data and network-config come from the plan. */
export function seedFiles(spec: LibvirtVm): SeedFiles {
  return {
    "meta-data": `instance-id: ${spec.uuid}\nlocal-hostname: ${spec.name}\n`,
    "user-data": spec.userData.trim() ? ensureNewline(spec.userData) : "#cloud-config\n{}\n",
    "network-config": ensureNewline(spec.networkConfig),
  };
}

function ensureNewline(s: string): string {
  return s.endsWith("\n") ? s : s + "\n";
}
