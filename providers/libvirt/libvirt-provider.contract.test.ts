import { describe, expect, it } from "vitest";
import type { HostConfig } from "../../config/types.js";
import { HeldSession, libvirtHarness } from "../../test/support/libvirt-harness.js";
import { describeProviderContract, type ProviderHarness } from "../provider.contract.js";

const host: HostConfig = {
  name: "contract-test",
  kind: "libvirt",
  settings: { uri: "test:///default", pool: "default-pool", accelerator: "qemu" },
  reservedMemoryMiB: 0,
  cpuOvercommit: 4,
  maxParallel: 4,
  callTimeoutSeconds: 10,
};

/**
 * libvirt's test driver keeps its world in one connection: every adapter the harness opens shares the harness's
 * session, so they stand on one host while each has its own state (nothing cached between them).
 */
async function testDriverHarness(): Promise<ProviderHarness> {
  const session = new HeldSession({ uri: "test:///default", timeoutMs: 10_000 });
  const base = await session.run("vol-create-as default-pool base.qcow2 1G --format qcow2");
  if (!base.ok) throw new Error(`cannot make the base image: ${base.errors.join("; ")}`);
  return libvirtHarness({ host, session, shareSession: true, baseImage: "base.qcow2", prefix: "contract", memoryMiB: 64, domainType: "test" });
}

describeProviderContract("libvirt on test:///default", testDriverHarness);

describe("the libvirt contract harness", () => {
  it("sees a VM's domain and each of its volumes, wherever they fall in the pool's list", async () => {
    // The suite's "nothing left" checks are only as good as what `remains` sees.
    const h = await testDriverHarness();
    try {
      const p = h.open();
      const obs = await p.observe({ known: new Map(), templates: new Map([["g", h.template]]) });
      const fit = obs.status === "ok" ? obs.fits.g : undefined;
      if (!fit?.ok) throw new Error("the template does not fit");
      const spec = h.vmSpec(fit.settings);
      await p.createVm(spec);
      expect((await h.remains(spec.name)).sort()).toEqual([`domain ${spec.name}: running`, `volume ${spec.name}-seed.iso`, `volume ${spec.name}.qcow2`]);
      await p.close();
    } finally {
      await h.cleanup();
    }
  });
});
