import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../metrics/sqlite-store.js";
import type { DomainCounters } from "../../metrics/types.js";
import { GitStateStore } from "../../state/git-state-store.js";

/**
 * A project for `premiscale metrics`: one host on libvirt's test driver, group `web` with members A, B and C in
 * state (git), and, unless `store` says otherwise, the embedded store at its default path filled with known counters
 * read every 15 s from `now − 120 s` to `now` (`samples: false`: no store file):
 *
 * - A (2 vCPUs): cpu 10, 20, … 80 % in its eight intervals; memory 75 % used at every reading; disk read 1 KiB/s.
 * - B (1 vCPU): cpu 20 %; no guest memory figures (missing); disk read 0 B/s (a real zero).
 * - C: no readings at all. Nobody has network counters.
 */
export const MEMBERS = { A: "web-aaaaaaaa", B: "web-bbbbbbbb", C: "web-cccccccc" } as const;

/** Makes the project above in a new temporary directory and returns the directory. */
export async function metricsProject(o: {
  now: number;
  /** The `metrics.store` block's lines (indented by four spaces); default: the embedded store at its default path. */
  store?: string;
  /** `server.listen`. */
  serverListen?: string;
  intervalSeconds?: number;
  /** false: no store file. @default true */
  samples?: boolean;
  /** The host's libvirt URI. @default "test:///default" */
  uri?: string;
  /** Group web's members in state. @default A, B and C */
  members?: string[];
}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "premiscale-metrics-"));
  await writeFile(
    join(dir, "premiscale.yaml"),
    `version: v1alpha1
state:
  path: ./state
${o.serverListen ? `server:\n  listen: ${o.serverListen}\n` : ""}metrics:
  intervalSeconds: ${o.intervalSeconds ?? 15}
${o.store ? `  store:\n${o.store}\n` : ""}hosts:
  - name: local
    uri: ${o.uri ?? "test:///default"}
    accelerator: qemu
    pool: default
groups:
  - name: web
    min: 0
    max: 4
    desired: 3
    hosts: [local]
    template:
      vcpus: 1
      memoryMiB: 80
      disk:
        baseImage: blank.qcow2
        sizeGiB: 1
  - name: idle
    min: 0
    max: 2
    desired: 0
    hosts: [local]
    template:
      vcpus: 1
      memoryMiB: 80
      disk:
        baseImage: blank.qcow2
        sizeGiB: 1
`,
  );
  const lock = await new GitStateStore(join(dir, "state")).lock("test", 0);
  await lock.init("lineage-metrics-test");
  for (const [i, name] of (o.members ?? Object.values(MEMBERS)).entries()) {
    await lock.putInstance("web", { name, uuid: `00000000-0000-4000-8000-00000000000${i}`, host: "local", created: new Date(o.now - 3_600_000).toISOString(), status: "running" });
  }
  await lock.commit("test state");
  await lock.release();
  if (!o.store && o.samples !== false) {
    await mkdir(join(dir, "state", ".premiscale"), { recursive: true });
    const store = new SqliteStore({ path: join(dir, "state", ".premiscale", "metrics.db") });
    const rows: DomainCounters[] = [];
    for (let k = 0; k <= 8; k++) {
      const at = o.now - 120_000 + k * 15_000;
      // A's interval j (1-based) runs at 10·j % of 2 vCPUs for 15 s: 10·j/100 × 15e9 ns × 2 = 3e9·j ns.
      const aCpu = (3e9 * (k * (k + 1))) / 2;
      rows.push({ name: MEMBERS.A, at, vcpus: 2, cpuTimeNs: 1e12 + aCpu, blockReadBytes: 5e6 + k * 15 * 1024, balloonAvailableKiB: 1_000_000, balloonUsableKiB: 250_000 });
      rows.push({ name: MEMBERS.B, at, vcpus: 1, cpuTimeNs: 2e12 + k * 3e9, blockReadBytes: 7e6 });
    }
    store.ingest(rows);
    await store.close();
  }
  return dir;
}
