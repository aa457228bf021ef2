import { afterEach, describe, expect, it } from "vitest";
import type { HostConfig } from "../../config/types.js";
import type { VmSpec } from "../provider.js";
import { LibvirtProvider } from "./libvirt-provider.js";

// libvirt's built-in test driver: a fresh in-memory host per connection, with one foreign domain named "test".
const host: HostConfig = {
  name: "t",
  uri: "test:///default",
  pool: "default-pool",
  accelerator: "qemu",
  reservedMemoryMiB: 0,
  cpuOvercommit: 4,
  maxParallel: 4,
  callTimeoutSeconds: 10,
};

function spec(name: string, uuid: string): VmSpec {
  return {
    name,
    uuid,
    group: "web",
    lineage: "lin-1",
    createdAt: "2026-11-23T00:00:00.000Z",
    vcpus: 1,
    memoryMiB: 64,
    accelerator: "qemu",
    pool: "default-pool",
    baseImage: "base.qcow2",
    diskSizeGiB: 1,
    mac: "52:54:00:aa:bb:cc",
    nic: { type: "user" },
    userData: "#cloud-config\n{}\n",
    networkConfig: "version: 2\n",
  };
}

let provider: LibvirtProvider | null = null;
afterEach(async () => {
  await provider?.close();
  provider = null;
});

describe("LibvirtProvider on the test driver", () => {
  it("reports host capacity and lists no domain that lacks premiscale's metadata", async () => {
    provider = new LibvirtProvider(host);
    const obs = await provider.observe(new Map());
    expect(obs.status).toBe("ok");
    if (obs.status !== "ok") return;
    expect(obs.capacity.cpus).toBe(16);
    expect(obs.capacity.memoryMiB).toBe(3072);
    expect(obs.capacity.pool?.capacityBytes).toBeGreaterThan(0);
    expect(obs.domains).toEqual([]); // the driver's own "test" domain is not ours
  });

  it("creates a VM whose metadata makes it ours, then destroys it and its volumes", async () => {
    provider = new LibvirtProvider(host);
    const uuid = "0f2c6f1e-3d1a-4d6e-9a43-1c2b3d4e5f60";
    await (provider as unknown as { one(c: string): Promise<unknown> }).one(
      "vol-create-as default-pool base.qcow2 1G --format qcow2",
    );
    const steps: string[] = [];
    await provider.createVm(spec("web-0f2c6f1e", uuid), (s) => steps.push(s));
    expect(steps).toEqual(["disk", "seed", "define", "start"]);

    const obs = await provider.observe(new Map());
    expect(obs.status === "ok" && obs.domains).toEqual([
      expect.objectContaining({ name: "web-0f2c6f1e", uuid, group: "web", lineage: "lin-1", state: "running" }),
    ]);
    expect(obs.status === "ok" && obs.capacity.volumes).toEqual(
      expect.arrayContaining(["web-0f2c6f1e.qcow2", "web-0f2c6f1e-seed.iso"]),
    );

    await provider.destroyVm({ name: "web-0f2c6f1e", uuid }, { shutdownTimeoutMs: 1000 });
    const after = await provider.observe(new Map());
    expect(after.status === "ok" && after.domains).toEqual([]);
    expect(after.status === "ok" && after.capacity.volumes).toEqual(["base.qcow2"]);
  });

  it("creating the same VM twice converges instead of failing", async () => {
    provider = new LibvirtProvider(host);
    const uuid = "1f2c6f1e-3d1a-4d6e-9a43-1c2b3d4e5f60";
    await (provider as unknown as { one(c: string): Promise<unknown> }).one(
      "vol-create-as default-pool base.qcow2 1G --format qcow2",
    );
    await provider.createVm(spec("web-1f2c6f1e", uuid));
    await provider.createVm(spec("web-1f2c6f1e", uuid));
    const obs = await provider.observe(new Map());
    expect(obs.status === "ok" && obs.domains.map((d) => d.name)).toEqual(["web-1f2c6f1e"]);
  });

  it("refuses to destroy a domain that is not premiscale's", async () => {
    provider = new LibvirtProvider(host);
    const r = provider.destroyVm({ name: "test", uuid: "6695eb01-f6a4-8304-79aa-97f2502e193f" }, { shutdownTimeoutMs: 100 });
    await expect(r).rejects.toThrow(/not the one premiscale created/);
  });

  it("destroying a VM that is already gone is not an error", async () => {
    provider = new LibvirtProvider(host);
    await expect(
      provider.destroyVm({ name: "web-deadbeef", uuid: "deadbeef-0000-0000-0000-000000000000" }, { shutdownTimeoutMs: 100 }),
    ).resolves.toBeUndefined();
  });

  it("reports an unreachable host as such instead of throwing", async () => {
    provider = new LibvirtProvider({ ...host, name: "gone", uri: "qemu+tcp://127.0.0.1:1/system" });
    const obs = await provider.observe(new Map());
    expect(obs).toMatchObject({ host: "gone", status: "unreachable" });
    expect(obs.status === "unreachable" && obs.error).toMatch(/Connection refused/);
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
    provider = new LibvirtProvider({ ...host, accelerator: "auto" }, { acceleratorFile: file });
    const ok = await provider.observe(new Map());
    expect(ok.status === "ok" && ok.capacity.accelerator).toBe("qemu");
    await provider.close();

    provider = new LibvirtProvider({ ...host, accelerator: "auto" }, { acceleratorFile: join(dir, "missing") });
    const unknown = await provider.observe(new Map());
    expect(unknown).toMatchObject({ status: "unreachable", error: expect.stringMatching(/accelerator auto: KVM was never tested.*setup-host\.sh/) });
  });
});
