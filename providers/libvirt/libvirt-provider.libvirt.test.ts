import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blankVmSpec, ensureBlankBase, leftovers, systemHost, virsh } from "../../test/support/libvirt.js";
import type { VmSpec } from "../provider.js";
import { LibvirtProvider, libvirtVm } from "./libvirt-provider.js";

const observe = (p: LibvirtProvider, known = new Map()) => p.observe({ known, templates: new Map() });

// Real libvirtd (qemu:///system) and real QEMU guests under TCG.
const provider = new LibvirtProvider(systemHost());
let base = "";
const prefix = `ptest${randomUUID().slice(0, 4)}`;

function spec(): VmSpec {
  return blankVmSpec(prefix, base, { lineage: "lineage-test" });
}

beforeAll(async () => {
  base = await ensureBlankBase();
});
afterAll(async () => {
  await provider.close();
});

describe("LibvirtProvider on a real libvirtd", () => {
  it("creates a running VM on a copy-on-write overlay with a cidata seed, and removes every trace of it", async () => {
    const s = spec();
    await provider.createVm(s);

    const obs = await observe(provider);
    expect(obs.status).toBe("ok");
    if (obs.status !== "ok") return;
    expect(obs.vms).toContainEqual(expect.objectContaining({ name: s.name, uuid: s.uuid, state: "running", group: prefix }));
    expect(obs.capacity.cpus).toBeGreaterThan(0);
    expect(obs.capacity.freeMemoryMiB).toBeGreaterThan(0);

    const disk = await virsh("vol-dumpxml", "--pool", "default", `${s.name}.qcow2`);
    expect(disk).toMatch(/<backingStore>[\s\S]*premiscale-blank\.qcow2/);
    expect(disk).toMatch(/<format type='qcow2'\/>/);
    const xml = await virsh("dumpxml", s.name);
    expect(xml).toContain(`<mac address='${libvirtVm(s).mac}'/>`);
    expect(xml).toContain("https://premiscale.dev/xmlns/instance/v1");
    // The seed really is a cidata ISO holding the instance id.
    const seedPath = (await virsh("vol-path", "--pool", "default", `${s.name}-seed.iso`)).trim();
    const { readFile } = await import("node:fs/promises");
    const iso = await readFile(seedPath);
    expect(iso.subarray(0x8000 + 40, 0x8000 + 46).toString()).toBe("cidata");
    expect(iso.includes(Buffer.from(`instance-id: ${s.uuid}`))).toBe(true);

    await provider.destroyVm(s, { shutdownTimeoutMs: 2000 });
    expect(await leftovers(s.name)).toEqual([]);
  });

  it("observes known domains without reading their metadata, and stays correct", async () => {
    const s = spec();
    await provider.createVm(s);
    try {
      const known = new Map([[s.name, { uuid: s.uuid, group: prefix, lineage: "lineage-test", createdAt: s.createdAt }]]);
      const obs = await observe(provider, known);
      expect(obs.status === "ok" && obs.vms.find((d) => d.name === s.name)).toMatchObject({ state: "running" });
    } finally {
      await provider.destroyVm(s, { shutdownTimeoutMs: 2000 });
    }
  });

  it("notices a domain stopped outside premiscale", async () => {
    const s = spec();
    await provider.createVm(s);
    try {
      await virsh("destroy", s.name);
      const obs = await observe(provider);
      expect(obs.status === "ok" && obs.vms.find((d) => d.name === s.name)?.state).toBe("stopped");
    } finally {
      await provider.destroyVm(s, { shutdownTimeoutMs: 2000 });
    }
    expect(await leftovers(prefix)).toEqual([]);
  });

  it("fails with the host named when the base image does not exist, and leaves nothing", async () => {
    const good = spec();
    const s = { ...good, settings: { libvirt: { ...(good.settings.libvirt as object), baseImage: "no-such-base.qcow2" } } };
    await expect(provider.createVm(s)).rejects.toThrow(/host local: .*vol-create-as/);
    await provider.destroyVm(s, { shutdownTimeoutMs: 1000 });
    expect(await leftovers(s.name)).toEqual([]);
  });
});
