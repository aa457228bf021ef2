import { afterEach, describe, expect, it } from "vitest";
import type { HostConfig } from "../../config/types.js";
import type { TemplateQuery, VmSpec } from "../provider.js";
import type { LibvirtTemplateSettings } from "./config.js";
import { LibvirtProvider, libvirtVm, type LibvirtVmSettings } from "./libvirt-provider.js";
import { macFromUuid, renderNetworkConfig } from "./network.js";

// libvirt's built-in test driver: a fresh in-memory host per connection, with one foreign domain named "test".
// What every adapter must do is in provider.contract.ts; this file holds what only the libvirt adapter does.
const host: HostConfig = {
  name: "t",
  kind: "libvirt",
  settings: { uri: "test:///default", pool: "default-pool", accelerator: "qemu" },
  reservedMemoryMiB: 0,
  cpuOvercommit: 4,
  maxParallel: 4,
  callTimeoutSeconds: 10,
};

const template: TemplateQuery = {
  vcpus: 1,
  memoryMiB: 64,
  settings: { disk: { baseImage: "base.qcow2", sizeGiB: 1 }, nic: { type: "user" } } satisfies LibvirtTemplateSettings,
};
const observeWith = (p: LibvirtProvider, templates = new Map([["web", template]])) => p.observe({ known: new Map(), templates });

function spec(name: string, uuid: string): VmSpec {
  return {
    name,
    uuid,
    group: "web",
    lineage: "lin-1",
    createdAt: "2026-11-23T00:00:00.000Z",
    vcpus: 1,
    memoryMiB: 64,
    userData: "#cloud-config\n{}\n",
    network: { mode: "dhcp" },
    settings: { libvirt: { pool: "default-pool", baseImage: "base.qcow2", diskSizeGiB: 1, nic: { type: "user" }, accelerator: "qemu" } satisfies LibvirtVmSettings },
  };
}

/** Runs one virsh command on the provider's own connection (the test driver's world is per connection). */
const run = (p: LibvirtProvider, command: string) => (p as unknown as { one(c: string): Promise<{ stdout: string }> }).one(command);

let provider: LibvirtProvider | null = null;
afterEach(async () => {
  await provider?.close();
  provider = null;
});

describe("LibvirtProvider on the test driver", () => {
  it("reports the host's CPUs, memory and pool, and answers whether a template fits", async () => {
    provider = new LibvirtProvider(host);
    const before = await observeWith(provider);
    expect(before.status === "ok" && before.fits.web).toEqual({ ok: false, reason: 'base image "base.qcow2" not in pool "default-pool"' });
    await run(provider, "vol-create-as default-pool base.qcow2 1G --format qcow2");
    const obs = await observeWith(provider);
    if (obs.status !== "ok") throw new Error(obs.error);
    expect(obs.capacity).toMatchObject({ cpus: 16, memoryMiB: 3072 });
    expect(obs.capacity.resources["pool:default-pool"]).toMatchObject({ label: 'pool "default-pool"', unit: "bytes", available: expect.any(Number), capacity: expect.any(Number) });
    expect(obs.fits.web).toEqual({
      ok: true,
      demand: { "pool:default-pool": 1024 ** 3 },
      settings: { libvirt: { pool: "default-pool", baseImage: "base.qcow2", diskSizeGiB: 1, nic: { type: "user" }, accelerator: "qemu" } },
    });
    expect(obs.vms).toEqual([]); // the driver's own "test" domain is not ours
  });

  it("says a pool that does not exist is why nothing fits", async () => {
    provider = new LibvirtProvider({ ...host, settings: { ...host.settings, pool: "nope" } });
    const obs = await observeWith(provider);
    expect(obs.status === "ok" && obs.fits.web).toEqual({ ok: false, reason: 'pool "nope" not found' });
  });

  it("reports its steps in the neutral words and names each VM's volumes after it", async () => {
    provider = new LibvirtProvider(host);
    const uuid = "0f2c6f1e-3d1a-4d6e-9a43-1c2b3d4e5f60";
    await run(provider, "vol-create-as default-pool base.qcow2 1G --format qcow2");
    const steps: string[] = [];
    await provider.createVm(spec("web-0f2c6f1e", uuid), { onStep: (s) => steps.push(s) });
    expect(steps).toEqual(["create-disk", "configure", "start"]);
    expect((await run(provider, "vol-list default-pool")).stdout).toMatch(/web-0f2c6f1e\.qcow2[\s\S]*web-0f2c6f1e-seed\.iso|web-0f2c6f1e-seed\.iso[\s\S]*web-0f2c6f1e\.qcow2/);
    const destroyed: string[] = [];
    await provider.destroyVm({ name: "web-0f2c6f1e", uuid }, { shutdownTimeoutMs: 1000, onStep: (s) => destroyed.push(s) });
    expect(destroyed).toEqual(["stop", "delete"]);
    expect((await run(provider, "vol-list default-pool")).stdout).not.toMatch(/web-0f2c6f1e/);
  });

  it("asks for counters by name and does not fail when one of them is gone", async () => {
    // The test driver reports only state stats, so no VM has counters here; real ones: metrics/collector.libvirt.test.ts.
    provider = new LibvirtProvider(host);
    const uuid = "2f2c6f1e-3d1a-4d6e-9a43-1c2b3d4e5f60";
    await run(provider, "vol-create-as default-pool base.qcow2 1G --format qcow2");
    await provider.createVm(spec("web-2f2c6f1e", uuid));
    await expect(provider.counters(["web-2f2c6f1e", "web-gone0000"])).resolves.toEqual([]);
    await expect(provider.counters([])).resolves.toEqual([]);
  });
});

describe("accelerator auto", () => {
  it("resolves to what setup-host.sh proved on this machine, and refuses to guess when it never ran", async () => {
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "premiscale-accel-"));
    const file = join(dir, "accelerator");
    await writeFile(file, "qemu\nkey\nKVM did not boot the kernel\n");
    const auto = { ...host, settings: { ...host.settings, accelerator: "auto" } };
    provider = new LibvirtProvider(auto, { acceleratorFile: file });
    await run(provider, "vol-create-as default-pool base.qcow2 1G --format qcow2");
    const ok = await observeWith(provider);
    expect(ok.status === "ok" && ok.fits.web?.ok && ok.fits.web.settings).toMatchObject({ libvirt: { accelerator: "qemu" } });
    await provider.close();

    provider = new LibvirtProvider(auto, { acceleratorFile: join(dir, "missing") });
    const unknown = await observeWith(provider);
    expect(unknown).toMatchObject({ status: "unreachable", error: expect.stringMatching(/accelerator auto: KVM was never tested.*setup-host\.sh/) });
  });
});

describe("a VM's NIC and network-config", () => {
  it("makes a locally administered unicast MAC from the UUID's first six bytes", () => {
    expect(macFromUuid("ff2c6f1e-3d1a-4d6e-9a43-1c2b3d4e5f60")).toBe("fe:2c:6f:1e:3d:1a");
    expect(macFromUuid("00000001-0000-4000-8000-000000000001")).toBe("02:00:00:01:00:00");
  });

  it("renders DHCP and static network-config matched by that MAC", () => {
    const dhcp = libvirtVm(spec("web-00000001", "00000001-0000-4000-8000-000000000001"));
    expect(dhcp.networkConfig).toBe('version: 2\nethernets:\n  eth0:\n    match: {macaddress: "02:00:00:01:00:00"}\n    set-name: eth0\n    dhcp4: true\n');
    expect(renderNetworkConfig("02:00:00:01:00:00", { mode: "static", address: "10.0.0.10", prefix: 24, gateway: "10.0.0.1", dns: ["1.1.1.1", "9.9.9.9"] })).toBe(
      [
        "version: 2",
        "ethernets:",
        "  eth0:",
        '    match: {macaddress: "02:00:00:01:00:00"}',
        "    set-name: eth0",
        "    dhcp4: false",
        "    addresses: [10.0.0.10/24]",
        "    routes:",
        "      - to: default",
        "        via: 10.0.0.1",
        "    nameservers:",
        "      addresses: [1.1.1.1, 9.9.9.9]",
        "",
      ].join("\n"),
    );
  });
});
