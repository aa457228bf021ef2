import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MetricsReport } from "../cli/metrics-command.js";
import { SqliteStore } from "../metrics/sqlite-store.js";
import { LibvirtProvider } from "../providers/libvirt/libvirt-provider.js";
import type { VmSpec } from "../providers/provider.js";
import { metricsProject } from "./support/metrics-fixture.js";
import { SYSTEM_URI, blankVmSpec, ensureBlankBase, leftovers, systemHost } from "./support/libvirt.js";
import { freePort, killLeftovers, spawnPremiscale } from "./support/serve.js";

// premiscale serve's collector on the real libvirtd: a running guest (a blank disk: it sits in the firmware and still
// burns CPU under TCG) that state records; serve samples it every second into the embedded store, and
// `premiscale metrics` reads the rates back.
const provider = new LibvirtProvider(systemHost());
let vm: VmSpec | null = null;

beforeAll(async () => {
  const base = await ensureBlankBase();
  const spec = blankVmSpec("stest", base, { group: "web", lineage: "lineage-metrics-test" });
  vm = spec;
  await provider.createVm(spec);
});

afterAll(async () => {
  await killLeftovers();
  if (vm) await provider.destroyVm(vm, { shutdownTimeoutMs: 1000 }).catch(() => undefined);
  await provider.close();
  expect(await leftovers("stest-")).toEqual([]);
});

describe("premiscale serve's collector on a real libvirtd", () => {
  it("stores the counters of the domains state records, which the store and `premiscale metrics` then return as rates", async () => {
    const port = await freePort();
    const dir = await metricsProject({ now: Date.now(), serverListen: `127.0.0.1:${port}`, intervalSeconds: 1, samples: false, uri: SYSTEM_URI, members: [vm!.name] });
    const serve = spawnPremiscale(dir, ["serve"]);
    try {
      await serve.waitForLog((l) => l.event === "serving");
      const deadline = Date.now() + 60_000;
      let stored = 0;
      while (stored < 4 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        stored = Number(/^premiscale_collector_samples_total\{host="local"\} (\d+)/m.exec(text)?.[1] ?? 0);
      }
      expect(stored).toBeGreaterThanOrEqual(4);
    } finally {
      expect((await serve.stop()).code).toBe(0);
    }
    expect(serve.logs().filter((l) => l.event === "collector_host_failed")).toEqual([]);

    const store = new SqliteStore({ path: join(dir, "state", ".premiscale", "metrics.db") });
    try {
      const got = await store.groupMetrics({ group: "web", members: [vm!.name], windowSeconds: 120, now: new Date(), metrics: ["cpu", "memory"] });
      const cpu = got.members[vm!.name]!.cpu!;
      expect(cpu.length).toBeGreaterThanOrEqual(3);
      // One vCPU spinning in the firmware under TCG: a sane percentage (cpu.time includes QEMU's own threads).
      for (const s of cpu) {
        expect(s.value).toBeGreaterThan(0);
        expect(s.value).toBeLessThan(150);
      }
      // The blank guest reports no balloon figures: memory is missing, never 0.
      expect(got.members[vm!.name]!.memory).toEqual([]);
    } finally {
      await store.close();
    }

    const metrics = spawnPremiscale(dir, ["metrics", "--json", "--window", "2m"]);
    expect((await metrics.exited).code).toBe(0);
    const cpu = (JSON.parse(metrics.stdout()) as MetricsReport).groups.find((g) => g.name === "web")!.metrics!.find((m) => m.metric === "cpu")!;
    expect(cpu.members[vm!.name]).toBeGreaterThan(0);
    expect(cpu.average).toBe(cpu.members[vm!.name]);
    expect(cpu.trend.some((v) => v !== null)).toBe(true);
  });
});
