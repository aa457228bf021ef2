import { randomUUID } from "node:crypto";
import { HeldSession, libvirtHarness } from "../../test/support/libvirt-harness.js";
import { SYSTEM_URI, ensureBlankBase, systemHost } from "../../test/support/libvirt.js";
import { describeProviderContract } from "../provider.contract.js";

// The real local libvirtd: blank 80 MiB VMs on an empty base image (they sit in firmware; no readiness), all named
// with this run's prefix, which the harness's cleanup removes after the last test, failed or not.
describeProviderContract("libvirt on qemu:///system", async () => {
  const baseImage = await ensureBlankBase();
  const session = new HeldSession({ uri: SYSTEM_URI, timeoutMs: 60_000 });
  return libvirtHarness({
    host: systemHost({ name: "contract-local" }),
    session,
    shareSession: false,
    baseImage,
    prefix: `pctr${randomUUID().slice(0, 4)}`,
    memoryMiB: 80,
    domainType: "qemu",
  });
});
