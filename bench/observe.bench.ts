// Observing a host with 1,000 domains: premiscale's provider against raw `virsh` doing the same work
// (list the domains, then read premiscale's metadata of each). The host is libvirt's test driver loaded from a
// generated node file, so both sides see the same 1,000 domains. Also one libvirt operation both ways.
import { randomUUID } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import type { HostConfig } from "../config/types.js";
import { METADATA_NS } from "../providers/libvirt/domain-xml.js";
import { LibvirtProvider } from "../providers/libvirt/libvirt-provider.js";
import type { KnownInstance } from "../providers/provider.js";
import { median, ratioLine, timeRuns } from "./common.js";

const DOMAINS = Number(process.env.BENCH_DOMAINS ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

const dir = await mkdtemp(join(tmpdir(), "premiscale-bench-"));
const file = join(dir, "node.xml");
const known = new Map<string, KnownInstance>();
const doms: string[] = [];
for (let i = 0; i < DOMAINS; i++) {
  const u = randomUUID();
  const name = `web-${u.slice(0, 8)}`;
  known.set(name, { uuid: u, group: "web", lineage: "L", createdAt: "2026-01-01T00:00:00Z" });
  doms.push(
    `<domain type='test'><name>${name}</name><uuid>${u}</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>` +
      `<metadata><premiscale:instance xmlns:premiscale="${METADATA_NS}" instance="${u}" group="web" lineage="L" created="2026-01-01T00:00:00Z"/></metadata></domain>`,
  );
}
await writeFile(
  file,
  `<node>${doms.join("")}<pool type='dir'><name>default-pool</name><uuid>11111111-2222-3333-4444-555555555555</uuid>` +
    `<capacity>107374182400</capacity><allocation>0</allocation><available>107374182400</available><target><path>/default-pool</path></target></pool></node>`,
);
const uri = `test://${file}`;
const host: HostConfig = { name: "bench", kind: "libvirt", settings: { uri, pool: "default-pool", accelerator: "qemu" }, reservedMemoryMiB: 0, cpuOvercommit: 4, maxParallel: 1, callTimeoutSeconds: 120 };
const asked = (k: typeof known) => ({ known: k, templates: new Map() });
const names = [...known.keys()];

console.log(`# observe a host with ${DOMAINS} domains (test driver), median of ${RUNS}`);

// Baseline: the best raw virsh can do in one process: list, then every domain's metadata on one `;`-joined line.
const rawOneProcess = median(
  await timeRuns(RUNS, async () => {
    const list = await execa("virsh", ["-q", "-c", uri, "list", "--all", "--uuid", "--name"]);
    const script = names.map((n) => `metadata ${n} ${METADATA_NS}`).join(" ; ");
    await execa("virsh", ["-q", "-c", uri, script], { maxBuffer: 1 << 28 });
    return list;
  }),
);

// Cold: a new provider (new virsh session) that knows nothing, so it reads every domain's metadata.
const cold = median(
  await timeRuns(RUNS, async () => {
    const p = new LibvirtProvider(host);
    const obs = await p.observe(asked(new Map()));
    if (obs.status !== "ok" || obs.vms.length !== DOMAINS) throw new Error(`observed ${obs.status === "ok" ? obs.vms.length : obs.error}`);
    await p.close();
  }),
);

// Steady state: state accounts for every domain, so no metadata is read; the session is already open.
const steadyProvider = new LibvirtProvider(host);
await steadyProvider.observe(asked(known));
const steady = median(await timeRuns(RUNS, () => steadyProvider.observe(asked(known))));
await steadyProvider.close();

ratioLine("premiscale observe, cold (new session, reads all metadata)", cold, "raw virsh (2 processes, metadata batched)", rawOneProcess);
ratioLine("premiscale observe, steady state (state knows every domain)", steady, "raw virsh (2 processes, metadata batched)", rawOneProcess);

// A naive script: a virsh process per domain. Measured on a sample and scaled, since 1,000 processes take long.
const SAMPLE = 20;
const perDomain = median(await timeRuns(SAMPLE, () => execa("virsh", ["-q", "-c", uri, "metadata", names[0]!, METADATA_NS])));
ratioLine("premiscale observe, steady state", steady, `naive script (a virsh process per domain, ${DOMAINS} × median)`, perDomain * DOMAINS);

console.log(`\n# one libvirt operation (\`dominfo\`) on the same host, median of ${RUNS * 4}`);
const op = new LibvirtProvider(host);
await op.observe(asked(known));
const session = (op as unknown as { session(): { run(c: string): Promise<unknown> } }).session();
const viaPremiscale = median(await timeRuns(RUNS * 4, () => session.run(`dominfo ${names[0]}`)));
const viaVirsh = median(await timeRuns(RUNS * 4, () => execa("virsh", ["-q", "-c", uri, "dominfo", names[0]!])));
await op.close();
ratioLine("through premiscale's session", viaPremiscale, "raw `virsh dominfo` process", viaVirsh);
