import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibvirtProvider } from "../providers/libvirt/libvirt-provider.js";
import type { Provider, VmSpec } from "../providers/provider.js";
import { blankVmSpec, ensureBlankBase, leftovers, systemHost } from "../test/support/libvirt.js";
import { Collector, type HostReport } from "./collector.js";
import { SqliteStore } from "./sqlite-store.js";
import type { DomainCounters } from "./types.js";

// The collector against the real libvirtd (qemu:///system): two running guests booting a blank disk (they sit in
// SeaBIOS and still burn CPU under TCG), sampled through the same bulk call premiscale makes.
const provider = new LibvirtProvider(systemHost());
const specs: VmSpec[] = [];
let dir = "";
let base = "";

function spec(): VmSpec {
  return blankVmSpec("mtest", base);
}

beforeAll(async () => {
  base = await ensureBlankBase();
  dir = await mkdtemp(join(tmpdir(), "premiscale-mtest-"));
  for (let i = 0; i < 2; i++) {
    const s = spec();
    specs.push(s);
    await provider.createVm(s);
  }
});
afterAll(async () => {
  for (const s of specs) await provider.destroyVm(s, { shutdownTimeoutMs: 1000 }).catch(() => undefined);
  await provider.close();
  await rm(dir, { recursive: true, force: true });
  expect(await leftovers("mtest-")).toEqual([]);
});

describe("the collector on a real libvirtd", () => {
  it("samples owned domains in one bulk call per host (two when an owned domain is gone), counters grow, and the rates are sane", async () => {
    // Providers of their own, as serve gives the collector.
    const local = new LibvirtProvider(systemHost(), { callTimeoutMs: 30_000 });
    const broken = new LibvirtProvider(systemHost({ name: "broken", uri: "qemu:///nonexistent" }), { callTimeoutMs: 10_000 });
    const source = (p: Provider) => ({ host: p.host, sample: (n: string[], signal?: AbortSignal) => p.counters(n, signal ? { signal } : {}) });
    const store = new SqliteStore({ path: join(dir, "metrics.db") });
    const got: DomainCounters[][] = [];
    const reports: HostReport[][] = [];
    const names = specs.map((s) => s.name);
    const collector = new Collector({
      sources: [source(local), source(broken)],
      // A domain destroyed since state was read must not fail the host's sample.
      owned: () => new Map([["local", [...names, "mtest-gone0000"]], ["broken", ["x"]]]),
      sink: { ingest: (c) => (got.push([...c]), store.ingest(c)) },
      timeoutMs: 30_000,
    });
    try {
      for (let i = 0; i < 3; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 2000));
        reports.push(await collector.collect());
      }
      for (const round of reports) {
        expect(round[0]).toMatchObject({ host: "local", status: "ok", domains: 2 });
        // The host that does not answer is marked, with why, and skipped.
        expect(round[1]).toMatchObject({ host: "broken", status: "failed", kind: "error" });
        expect((round[1] as { reason: string }).reason).toMatch(/\S/);
      }
      for (const name of names) {
        const seen = got.map((round) => round.find((c) => c.name === name)!);
        expect(seen.every((c) => c.vcpus === 1 && c.cpuTimeNs! > 0 && c.blockReadBytes !== undefined)).toBe(true);
        expect(seen[2]!.cpuTimeNs!).toBeGreaterThan(seen[0]!.cpuTimeNs!);
        expect(seen[2]!.at).toBeGreaterThan(seen[0]!.at);
        // The domain has no balloon driver talking: no guest figures, so memory is missing (the RSS is still kept).
        expect(seen[0]!.balloonAvailableKiB).toBeUndefined();
      }
      const m = await store.groupMetrics({ group: "mtest", members: names, windowSeconds: 60, now: new Date(), metrics: ["cpu", "memory", "disk_read_bytes", "net_rx_bytes"] });
      for (const name of names) {
        const s = m.members[name]!;
        expect(s.cpu!.length).toBe(2);
        for (const x of s.cpu!) {
          expect(x.value).toBeGreaterThan(0);
          expect(x.value).toBeLessThanOrEqual(110);
        }
        for (const x of s.disk_read_bytes!) expect(x.value).toBeGreaterThanOrEqual(0);
        expect(s.memory).toEqual([]);
      }
    } finally {
      await store.close();
      await local.close();
      await broken.close();
    }
  });
});
