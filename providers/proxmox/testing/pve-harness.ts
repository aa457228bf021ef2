/**
 * Test support for the proxmox adapter: a host config for a node of a test double cluster (a double that follows
 * the PVE API schema, not a real PVE), a port that accepts connections and never answers (a hung node), and the
 * Provider contract suite's harness.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HostConfig } from "../../../config/types.js";
import type { ProviderHarness } from "../../provider.contract.js";
import type { VmSpec } from "../../provider.js";
import type { ProxmoxHostSettings, ProxmoxTemplateSettings } from "../config.js";
import { ProxmoxProvider, type ProxmoxProviderOptions } from "../proxmox-provider.js";
import type { TestClusterCerts } from "./pve-certs.js";
import type { PveDouble } from "./pve-double.js";
import { TEST_SECRET, TEST_SECRET_ENV, TEST_TOKEN_ID } from "./pve-test-cluster.js";

/** The secret as the adapter reads it in tests: an environment object of its own, never process.env. */
export const TEST_ENV: Readonly<Record<string, string>> = { [TEST_SECRET_ENV]: TEST_SECRET };

/** Writes the test CA where a config's `caFile` can name it; returns the path (remove its directory when done). */
export function writeCaFile(certs: TestClusterCerts): string {
  const dir = mkdtempSync(join(tmpdir(), "premiscale-pve-ca-"));
  const file = join(dir, "pve-root-ca.pem");
  writeFileSync(file, certs.caPem);
  return file;
}

/** A proxmox host for node `node` of the double, every node its own endpoint, verified against `caFile`. */
export function doubleHost(
  double: PveDouble,
  o: { name?: string; node: string; nodes: string[]; caFile: string; callTimeoutSeconds?: number; taskTimeoutSeconds?: number; maxParallel?: number },
): HostConfig {
  const settings: ProxmoxHostSettings = {
    node: o.node,
    api: {
      cluster: "test",
      endpoints: o.nodes.map((n) => {
        const e = double.endpoint(n);
        return { node: n, url: `https://${e.host}:${e.port}`, host: e.host, port: e.port };
      }),
      tokenId: TEST_TOKEN_ID,
      tokenSecretEnv: TEST_SECRET_ENV,
      caFile: o.caFile,
    },
    isoStorage: "local",
    taskTimeoutSeconds: o.taskTimeoutSeconds ?? 60,
  };
  return {
    name: o.name ?? o.node,
    kind: "proxmox",
    reservedMemoryMiB: 0,
    cpuOvercommit: 4,
    maxParallel: o.maxParallel ?? 4,
    callTimeoutSeconds: o.callTimeoutSeconds ?? 5,
    settings: settings as unknown as Record<string, unknown>,
  };
}

/** A TCP port that accepts connections and never answers them: a node whose pveproxy hangs. */
export async function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The same host with its own node's endpoint replaced by a port that never answers (the only endpoint it has). */
export function hungHost(host: HostConfig, port: number): HostConfig {
  const s = host.settings as unknown as ProxmoxHostSettings;
  const node = s.node ?? host.name;
  const settings: ProxmoxHostSettings = {
    ...s,
    api: { ...s.api, endpoints: [{ node, url: `https://127.0.0.1:${port}`, host: "127.0.0.1", port }] },
  };
  return { ...host, settings: settings as unknown as Record<string, unknown> };
}

/** A small template that clones `template` linked, with premiscale's seed. */
export function seedTemplate(template = "tmpl-local", extra: Partial<ProxmoxTemplateSettings> = {}): ProxmoxTemplateSettings {
  return { template: { name: template }, clone: "linked", cloudInit: "seed", sshKeys: [], searchDomains: [], ...extra };
}

/** A spec for a new VM of a group, as apply hands it over. */
export function pveVmSpec(prefix: string, settings: VmSpec["settings"], overrides: Partial<VmSpec> = {}): VmSpec {
  const uuid = randomUUID();
  return {
    name: `${prefix}-${uuid.slice(0, 8)}`,
    uuid,
    group: prefix,
    lineage: `lineage-${prefix}`,
    createdAt: new Date().toISOString(),
    vcpus: 1,
    memoryMiB: 256,
    userData: "#cloud-config\n{}\n",
    network: { mode: "dhcp" },
    settings,
    ...overrides,
  };
}

/** Everything the double holds that belongs to a VM named `name`: the VM, its disks, its seed ISO. */
export function remainsOf(double: PveDouble, name: string, extraVmids: Iterable<number> = []): string[] {
  const vmids = new Set<number>(extraVmids);
  for (const r of double.requests) {
    if (r.route === "POST /nodes/{node}/qemu/{vmid}/clone" && r.params.name === name) vmids.add(Number(r.params.newid));
  }
  const out: string[] = [];
  const volumes = ["local-lvm", "ceph", "local"].flatMap((s) => double.volumeIds(s));
  for (const vmid of [...vmids].sort((a, b) => a - b)) {
    const vm = double.inspectVm(vmid);
    // An id another VM took after this one was deleted says nothing about this one.
    if (vm && vm.config.name !== undefined && vm.config.name !== name) continue;
    if (vm) out.push(`VM ${vmid} on ${vm.node}: ${vm.config.lock ? `locked (${vm.config.lock})` : vm.status}`);
    out.push(...volumes.filter((v) => new RegExp(`:(vm|base)-${vmid}-`).test(v)).map((v) => `volume ${v}`));
  }
  out.push(...volumes.filter((v) => v.endsWith(`:iso/${name}-seed.iso`)).map((v) => `volume ${v}`));
  return out;
}

/**
 * The contract suite's harness for node `node` of a double (which the harness owns: cleanup closes it, and every VM
 * with it). `openHung` gives an adapter whose node endpoint is a port that never answers.
 */
export async function proxmoxHarness(o: {
  double: PveDouble;
  certs: TestClusterCerts;
  node: string;
  nodes: string[];
  prefix: string;
  options?: ProxmoxProviderOptions;
}): Promise<ProviderHarness> {
  const caFile = writeCaFile(o.certs);
  const host = doubleHost(o.double, { node: o.node, nodes: o.nodes, caFile });
  const hole = await blackHole();
  const planted = new Map<string, number>();
  let nextPlanted = 5000;
  const options: ProxmoxProviderOptions = { env: TEST_ENV, ...o.options };
  return {
    open: () => new ProxmoxProvider(host, options),
    openHung: (callTimeoutMs) => new ProxmoxProvider(hungHost(host, hole.port), { ...options, callTimeoutMs }),
    template: { vcpus: 1, memoryMiB: 256, settings: seedTemplate() },
    vmSpec: (settings) => pveVmSpec(o.prefix, settings),
    plantForeign(name, uuid) {
      const vmid = nextPlanted++;
      planted.set(name, vmid);
      o.double.addVm({ node: o.node, vmid, name, running: true, uuid, disk: { storage: "local-lvm", sizeGiB: 1 } });
      return Promise.resolve();
    },
    remains: (name) => Promise.resolve(remainsOf(o.double, name, planted.has(name) ? [planted.get(name)!] : [])),
    async cleanup() {
      await hole.close();
      await o.double.close();
      rmSync(join(caFile, ".."), { recursive: true, force: true });
    },
  };
}
