import type { HostConfig } from "../../config/types.js";
import { HeldSession, libvirtHarness } from "../../test/support/libvirt-harness.js";
import { describeProviderContract } from "../provider.contract.js";

// libvirt's test driver keeps its world in one connection: every adapter the suite opens shares the harness's session,
// so they stand on one host while each has its own state (nothing cached between them).
describeProviderContract("libvirt on test:///default", async () => {
  const host: HostConfig = {
    name: "contract-test",
    kind: "libvirt",
    settings: { uri: "test:///default", pool: "default-pool", accelerator: "qemu" },
    reservedMemoryMiB: 0,
    cpuOvercommit: 4,
    maxParallel: 4,
    callTimeoutSeconds: 10,
  };
  const session = new HeldSession({ uri: "test:///default", timeoutMs: 10_000 });
  const base = await session.run("vol-create-as default-pool base.qcow2 1G --format qcow2");
  if (!base.ok) throw new Error(`cannot make the base image: ${base.errors.join("; ")}`);
  return libvirtHarness({ host, session, shareSession: true, baseImage: "base.qcow2", prefix: "contract", memoryMiB: 64, domainType: "test" });
});
