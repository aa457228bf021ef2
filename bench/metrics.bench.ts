// Metrics: collecting counters from a host with 500 domains (libvirt's test driver), storing 10,000 VMs' worth of
// samples in the embedded SQLite store, window queries, and policy evaluation for 1,000 groups from the store.
// Each figure is a ratio against a baseline measured in the same run.
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { execa } from "execa";
import { SqliteStore } from "../metrics/sqlite-store.js";
import type { DomainCounters } from "../metrics/types.js";
import { decideGroup } from "../policies/decide-group.js";
import { emptyHistory } from "../policies/history.js";
import { domstatsCommand, parseDomainCounters } from "../providers/libvirt/domain-stats.js";
import { LibvirtProvider } from "../providers/libvirt/libvirt-provider.js";
import { parseDomstats } from "../providers/libvirt/parse.js";
import type { VirshSession } from "../providers/libvirt/virsh-session.js";
import { median, ms, ratioLine, timeRuns } from "./common.js";

const DOMAINS = Number(process.env.BENCH_DOMAINS ?? 500);
const VMS = Number(process.env.BENCH_VMS ?? 10_000);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 20); // 5 minutes at 15 s
const GROUPS = Number(process.env.BENCH_GROUPS ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

const dir = await mkdtemp(join(tmpdir(), "premiscale-bench-metrics-"));

// ── 1. collection from one host with DOMAINS domains ─────────────────────────────────────────────────────────────
const file = join(dir, "node.xml");
const names = Array.from({ length: DOMAINS }, () => `web-${randomUUID().slice(0, 8)}`);
await writeFile(
  file,
  `<node>${names.map((n) => `<domain type='test'><name>${n}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`).join("")}</node>`,
);
const uri = `test://${file}`;
console.log(`# collect counters of ${DOMAINS} domains on one host (test driver), median of ${RUNS}`);
const provider = new LibvirtProvider({ name: "bench", kind: "libvirt", settings: { uri, pool: "default", accelerator: "qemu" }, reservedMemoryMiB: 0, cpuOvercommit: 4, maxParallel: 1, callTimeoutSeconds: 120 });
// Count the virsh commands the provider sends, through its one session.
const session = (provider as unknown as { session(): VirshSession }).session();
let calls = 0;
const runMany = session.runMany.bind(session);
session.runMany = (commands: string[], t?: number) => ((calls += commands.length), runMany(commands, t));
await provider.counters(names);
calls = 0;
const viaSource = median(await timeRuns(RUNS, () => provider.counters(names)));
console.log(`libvirt calls per collection: ${calls / RUNS} (for ${DOMAINS} domains)`);
const rawVirsh = median(await timeRuns(RUNS, () => execa("virsh", ["-q", "-c", uri, domstatsCommand(names)], { maxBuffer: 1 << 28 })));
ratioLine("collector sample (provider.counters, long-running session)", viaSource, "raw `virsh domstats` of the same domains (one process)", rawVirsh);
await provider.close();

// The test driver reports only states: parse a realistic answer (the fields libvirt 9.0 gives a QEMU guest).
const block = (n: string, i: number) =>
  `Domain: '${n}'\n  state.state=1\n  state.reason=1\n  cpu.time=${1e9 + i}\n  cpu.user=1\n  cpu.system=1\n  balloon.current=65536\n  balloon.maximum=65536\n` +
  `  balloon.rss=45300\n  vcpu.current=2\n  vcpu.maximum=2\n  vcpu.0.state=1\n  vcpu.0.time=1\n  vcpu.1.state=1\n  vcpu.1.time=1\n  net.count=1\n` +
  `  net.0.name=vnet0\n  net.0.rx.bytes=${i}\n  net.0.tx.bytes=${i}\n  block.count=2\n` +
  [0, 1].map((d) => `  block.${d}.name=vd${d}\n  block.${d}.rd.reqs=1\n  block.${d}.rd.bytes=${i}\n  block.${d}.wr.reqs=1\n  block.${d}.wr.bytes=${i}\n`).join("") +
  "\n";
const answer = names.map(block).join("");
const parseCounters = median(await timeRuns(RUNS * 4, () => parseDomainCounters(answer, 0)));
const parseGeneric = median(await timeRuns(RUNS * 4, () => parseDomstats(answer)));
ratioLine(`parse ${DOMAINS} domains' full stats into counters`, parseCounters, "the generic domstats key/value parse", parseGeneric);

// ── 2. the store at VMS VMs ────────────────────────────────────────────────────────────────────────────────────
console.log(`\n# embedded store: ${VMS} VMs × ${CYCLES} collections (15 s apart)`);
const T0 = Math.floor(Date.now() / 60_000) * 60_000 - CYCLES * 15_000;
const vmNames = Array.from({ length: VMS }, (_, i) => `g${Math.floor(i / (VMS / GROUPS))}-${i.toString(16).padStart(8, "0")}`);
const cycle = (k: number): DomainCounters[] =>
  vmNames.map((name, i) => ({
    name,
    at: T0 + k * 15_000,
    cpuTimeNs: k * 15e9 * ((i % 100) / 100),
    vcpus: 1,
    blockReadBytes: k * 1e6,
    blockWriteBytes: k * 2e6,
    blockReadReqs: k * 10,
    blockWriteReqs: k * 20,
    netRxBytes: k * 1e5,
    netTxBytes: k * 2e5,
    balloonCurrentKiB: 65536,
    balloonAvailableKiB: 60000,
    balloonUsableKiB: 30000,
    balloonRssKiB: 45000,
  }));
const cycles = Array.from({ length: CYCLES + 1 }, (_, k) => cycle(k));

const store = new SqliteStore({ path: join(dir, "store.db") });
const t1 = performance.now();
for (const c of cycles) store.ingest(c);
const storeMs = performance.now() - t1;

const raw = new Database(join(dir, "raw.db"));
raw.pragma("journal_mode = WAL");
raw.pragma("synchronous = NORMAL");
raw.exec("CREATE TABLE raw (name TEXT, at INTEGER, a REAL, b REAL, c REAL, d REAL, e REAL, f REAL, g REAL, h REAL, i REAL, j REAL, k REAL, l REAL, m REAL, PRIMARY KEY (name, at)) WITHOUT ROWID");
const ins = raw.prepare("INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
const insertAll = raw.transaction((rows: DomainCounters[]) => {
  for (const c of rows) ins.run(c.name, c.at, c.cpuTimeNs, c.vcpus, c.blockReadBytes, c.blockWriteBytes, c.blockReadReqs, c.blockWriteReqs, c.netRxBytes, c.netTxBytes, c.balloonCurrentKiB, null, null, null, c.balloonRssKiB);
});
const t2 = performance.now();
for (const c of cycles) insertAll(c);
const rawMs = performance.now() - t2;
const rows = VMS * (CYCLES + 1);
console.log(`store ingest: ${Math.round(rows / (storeMs / 1000)).toLocaleString("en")} rows/s (incl. roll-ups); raw insert loop: ${Math.round(rows / (rawMs / 1000)).toLocaleString("en")} rows/s`);
ratioLine(`ingest ${rows.toLocaleString("en")} rows`, storeMs, "a raw better-sqlite3 insert loop (one transaction per collection)", rawMs);

const now = new Date(T0 + CYCLES * 15_000);
const metrics = ["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"] as const;
const group = vmNames.slice(0, VMS / GROUPS);
const q = (members: string[]) => store.groupMetrics({ group: "g", members, windowSeconds: 300, now, metrics });
const sel = raw.prepare("SELECT * FROM raw WHERE name = ? AND at > ? AND at <= ?");
const rawSelect = (members: string[]) => members.map((m) => sel.all(m, now.getTime() - 600_000, now.getTime()));
ratioLine(`window query (5 min, ${group.length} members, all metrics)`, median(await timeRuns(RUNS * 4, () => q(group))), "raw SELECT of the same rows", median(await timeRuns(RUNS * 4, () => rawSelect(group))));
ratioLine(`window query (5 min, all ${VMS} VMs)`, median(await timeRuns(RUNS, () => q(vmNames))), "raw SELECT of the same rows", median(await timeRuns(RUNS, () => rawSelect(vmNames))));

// ── 3. policy evaluation for GROUPS groups ─────────────────────────────────────────────────────────────────────
console.log(`\n# decide ${GROUPS} groups of ${VMS / GROUPS} from the store (target tracking on cpu)`);
const groups = Array.from({ length: GROUPS }, (_, g) => vmNames.slice(g * (VMS / GROUPS), (g + 1) * (VMS / GROUPS)));
const createdAt = new Date(T0 - 3600_000).toISOString();
const queryOnly = async () => {
  for (const members of groups) await store.groupMetrics({ group: "g", members, windowSeconds: 60, now, metrics: ["cpu"] });
};
const queryAndDecide = async () => {
  for (const [g, members] of groups.entries()) {
    const m = await store.groupMetrics({ group: `g${g}`, members, windowSeconds: 60, now, metrics: ["cpu"] });
    decideGroup({
      group: { name: `g${g}`, min: 1, max: 100, current: members.length, members: members.map((name) => ({ name, createdAt, ready: true })) },
      scaling: { policies: [{ type: "target-tracking", metric: "cpu", target: 60 }] },
      metrics: m,
      history: emptyHistory(),
      now,
    });
  }
};
const qd = median(await timeRuns(RUNS, queryAndDecide));
const qo = median(await timeRuns(RUNS, queryOnly));
ratioLine(`query + decide, ${GROUPS} groups`, qd, "the queries alone", qo);
console.log(`(${ms(qd / GROUPS)} per group)`);

await store.close();
raw.close();
await rm(dir, { recursive: true, force: true });
