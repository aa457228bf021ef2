import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrometheusSource } from "./prometheus-source.js";
import { freePort, startHttp, startPrometheus, startVictoriaMetrics, type TestServer } from "./testing.js";
import { MetricsError, type GroupMetricsQuery } from "./types.js";

// Real Prometheus (data backfilled with promtool) and real VictoriaMetrics (data imported), both on 127.0.0.1.
const STEP = 15_000;
const END = Math.floor(Date.now() / STEP) * STEP - 60_000;
const POINTS = 80; // 20 minutes
const times = Array.from({ length: POINTS + 1 }, (_, i) => END - (POINTS - i) * STEP);

/** Series in the names of prometheus-libvirt-exporter: value at time t (ms). */
const SERIES: { name: string; labels: string; value: (t: number) => number }[] = [];
const since = (t: number) => (t - times[0]!) / 1000;
for (const [domain, cpuPerS] of [["web-1", 0.6], ["web-2", 1.4], ["webx1", 2], ["other", 1]] as const) {
  SERIES.push({ name: "libvirt_domain_info_cpu_time_seconds_total", labels: `domain="${domain}"`, value: (t) => 100 + since(t) * cpuPerS });
  SERIES.push({ name: "libvirt_domain_info_virtual_cpus", labels: `domain="${domain}"`, value: () => 2 });
  SERIES.push({ name: "libvirt_domain_block_stats_read_bytes_total", labels: `domain="${domain}",target_device="vda"`, value: (t) => since(t) * 600 });
  SERIES.push({ name: "libvirt_domain_block_stats_read_bytes_total", labels: `domain="${domain}",target_device="vdb"`, value: (t) => since(t) * 400 });
  SERIES.push({ name: "libvirt_domain_block_stats_write_bytes_total", labels: `domain="${domain}",target_device="vda"`, value: () => 4096 });
  SERIES.push({ name: "libvirt_domain_interface_stats_receive_bytes_total", labels: `domain="${domain}",target_device="vnet0"`, value: (t) => since(t) * 10 });
  SERIES.push({ name: "libvirt_domain_interface_stats_transmit_bytes_total", labels: `domain="${domain}",target_device="vnet0"`, value: (t) => since(t) * 5 });
  SERIES.push({ name: "premiscale_test_gauge", labels: `domain="${domain}",group="web"`, value: (t) => (t - times[0]!) / STEP });
}

function openMetrics(): string {
  const lines: string[] = [];
  for (const family of new Set(SERIES.map((s) => s.name))) {
    for (const s of SERIES.filter((x) => x.name === family)) for (const t of times) lines.push(`${s.name}{${s.labels}} ${s.value(t)} ${t / 1000}`);
  }
  return lines.join("\n") + "\n# EOF\n";
}
const prometheusText = () => SERIES.flatMap((s) => times.map((t) => `${s.name}{${s.labels}} ${s.value(t)} ${t}`)).join("\n") + "\n";

const query = (over: Partial<GroupMetricsQuery> = {}): GroupMetricsQuery => ({
  group: "web",
  members: ["web-1", "web-2"],
  windowSeconds: 300,
  now: new Date(END),
  metrics: ["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"],
  ...over,
});

let prom: TestServer;
let vm: TestServer;
beforeAll(async () => {
  [prom, vm] = await Promise.all([startPrometheus(openMetrics()), startVictoriaMetrics(prometheusText())]);
});
afterAll(async () => {
  await Promise.all([prom?.stop(), vm?.stop()]);
});

describe.each([
  ["Prometheus", () => prom],
  ["VictoriaMetrics", () => vm],
])("PrometheusSource against a real %s", (_name, server) => {
  it("returns each member's rates from the default prometheus-libvirt-exporter queries", async () => {
    const src = new PrometheusSource({ url: server().url });
    const m = await src.groupMetrics(query());
    expect(Object.keys(m.members).sort()).toEqual(["web-1", "web-2"]);
    const from = END - 300_000;
    for (const [member, cpu] of [["web-1", 30], ["web-2", 70]] as const) {
      const s = m.members[member]!;
      expect(s.cpu!.length).toBeGreaterThanOrEqual(19);
      for (const x of s.cpu!) {
        expect(x.at).toBeGreaterThan(from);
        expect(x.at).toBeLessThanOrEqual(END);
        expect(x.value).toBeCloseTo(cpu, 6);
      }
      for (const x of s.disk_read_bytes!) expect(x.value).toBeCloseTo(1000, 6);
      for (const x of s.disk_write_bytes!) expect(x.value).toBe(0);
      for (const x of s.net_rx_bytes!) expect(x.value).toBeCloseTo(10, 6);
      for (const x of s.net_tx_bytes!) expect(x.value).toBeCloseTo(5, 6);
      expect(s.disk_read_bytes!.length).toBe(s.cpu!.length);
      // The exporter has no guest-reported memory: missing, never 0.
      expect(s.memory).toEqual([]);
    }
  });

  it("substitutes the group and the members (a regex-escaped exact match) into a custom template", async () => {
    const src = new PrometheusSource({ url: server().url, queries: { cpu: 'premiscale_test_gauge{domain=~"{{members}}", group="{{group}}"}' } });
    const m = await src.groupMetrics(query({ members: ["web-1", "web.1"], metrics: ["cpu"] }));
    // "web.1" must not match "webx1".
    expect(m.members["web.1"]!.cpu).toEqual([]);
    const got = m.members["web-1"]!.cpu!;
    expect(got.length).toBeGreaterThanOrEqual(19);
    // The gauge's value is its sample's index: at a step time t, the newest sample at or before t.
    for (const x of got) expect(x.value).toBe(Math.floor((x.at - times[0]!) / STEP));
    if (_name === "Prometheus") {
      expect(got).toEqual(Array.from({ length: 20 }, (_, i) => ({ at: END - 300_000 + (i + 1) * STEP, value: POINTS - 19 + i })));
    }
  });

  it("fails with a MetricsError naming the source and the metric when the server refuses the query", async () => {
    const src = new PrometheusSource({ url: server().url, queries: { cpu: "sum(" } });
    const err = await src.groupMetrics(query({ metrics: ["cpu"] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MetricsError);
    expect((err as Error).message).toMatch(new RegExp(`^metrics source ${server().url.replace(/[.]/g, "\\.")}: .*(HTTP 4\\d\\d|query failed)`));
  });
});

describe("PrometheusSource when the source misbehaves", () => {
  it("throws a MetricsError when nothing listens", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await expect(new PrometheusSource({ url }).groupMetrics(query())).rejects.toThrow(new RegExp(`metrics source ${url.replace(/[.]/g, "\\.")}: cannot connect \\(ECONNREFUSED\\)`));
  });

  it("throws a MetricsError when the answer is not JSON, or JSON of another shape", async () => {
    const html = await startHttp((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<html>hello</html>"));
    const other = await startHttp((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"status":"success","data":{"resultType":"vector","result":[]}}'));
    try {
      await expect(new PrometheusSource({ url: html.url }).groupMetrics(query())).rejects.toThrow(/not JSON \(text\/html\): <html>hello/);
      const e = await new PrometheusSource({ url: other.url }).groupMetrics(query()).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(MetricsError);
      expect((e as MetricsError).message).toMatch(/not a Prometheus range result/);
    } finally {
      await Promise.all([html.stop(), other.stop()]);
    }
  });

  it("throws a MetricsError when the server does not answer in time", async () => {
    const hung = await startHttp(() => undefined);
    try {
      await expect(new PrometheusSource({ url: hung.url, timeoutMs: 200 }).groupMetrics(query({ metrics: ["cpu"] }))).rejects.toThrow(/no answer within 0\.2 s/);
    } finally {
      await hung.stop();
    }
  });

  it("refuses a template with an unknown variable, naming it", () => {
    expect(() => new PrometheusSource({ url: "http://127.0.0.1:1", queries: { cpu: "x{domain=~\"{{member}}\"}" } })).toThrow(/queries\.cpu uses the unknown variable \{\{member\}\}/);
  });

  it("does not show credentials in errors", async () => {
    const url = `http://user:secret@127.0.0.1:${await freePort()}`;
    const e = (await new PrometheusSource({ url }).groupMetrics(query({ metrics: ["cpu"] })).catch((x: unknown) => x)) as Error;
    expect(e.message).not.toContain("secret");
  });
});
