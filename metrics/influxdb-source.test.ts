import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InfluxSource } from "./influxdb-source.js";
import { freePort, startHttp, startInfluxd, type TestServer } from "./testing.js";
import { MetricsError, type GroupMetricsQuery } from "./types.js";

// Real InfluxDB 1.x on 127.0.0.1, loaded with points in the shape of Telegraf's libvirt input (the vCPU `time` field
// renamed `time_ns`: InfluxDB 1.x refuses a field named `time`), every 15 s on the 15 s grid, so each
// GROUP BY time(15s) bucket holds exactly one point.
const STEP = 15_000;
const END = Math.floor(Date.now() / STEP) * STEP - 60_000;
const times = Array.from({ length: 41 }, (_, i) => END - (40 - i) * STEP);

function lines(): string {
  const out: string[] = [];
  for (const [domain, k] of [["web-1", 1], ["web-2", 2], ["webx1", 3]] as const) {
    for (const t of times) {
      const s = (t - times[0]!) / 1000;
      const ns = `${t}000000`;
      // vCPU 0 busy 20% × k, vCPU 1 40% × k (ns of CPU time per second).
      out.push(`libvirt_vcpu,domain_name=${domain},vcpu_id=0 time_ns=${Math.round(s * 0.2e9 * k)}i,state=1i ${ns}`);
      out.push(`libvirt_vcpu,domain_name=${domain},vcpu_id=1 time_ns=${Math.round(s * 0.4e9 * k)}i,state=1i ${ns}`);
      out.push(`libvirt_balloon,domain_name=${domain} current=1048576i,available=1000i,usable=${1000 - 200 * k}i,rss=50000i ${ns}`);
      out.push(`libvirt_block,domain_name=${domain},block_id=0 rd_bytes=${s * 600 * k}i,wr_bytes=0i ${ns}`);
      out.push(`libvirt_block,domain_name=${domain},block_id=1 rd_bytes=${s * 400 * k}i,wr_bytes=${s * 50}i ${ns}`);
      out.push(`libvirt_net,domain_name=${domain},interface_id=0 rx_bytes=${s * 10 * k}i,tx_bytes=${s * 5}i ${ns}`);
    }
  }
  return out.join("\n") + "\n";
}

const query = (over: Partial<GroupMetricsQuery> = {}): GroupMetricsQuery => ({
  group: "web",
  members: ["web-1", "web-2"],
  windowSeconds: 300,
  now: new Date(END),
  metrics: ["cpu", "memory", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"],
  ...over,
});

let influx: TestServer;
beforeAll(async () => {
  influx = await startInfluxd("telegraf", lines());
});
afterAll(() => influx?.stop());

describe("InfluxSource against a real InfluxDB 1.x", () => {
  it("returns each member's exact rates and memory use from the default Telegraf libvirt queries", async () => {
    const m = await new InfluxSource({ url: influx.url, database: "telegraf" }).groupMetrics(query());
    expect(Object.keys(m.members).sort()).toEqual(["web-1", "web-2"]);
    const at = Array.from({ length: 20 }, (_, i) => END - 300_000 + (i + 1) * STEP);
    const series = (v: number) => at.map((t) => ({ at: t, value: v }));
    const w1 = m.members["web-1"]!;
    expect(w1.cpu).toEqual(series(30));
    expect(w1.memory).toEqual(series(20));
    expect(w1.disk_read_bytes).toEqual(series(1000));
    expect(w1.disk_write_bytes).toEqual(series(50));
    expect(w1.net_rx_bytes).toEqual(series(10));
    expect(w1.net_tx_bytes).toEqual(series(5));
    const w2 = m.members["web-2"]!;
    expect(w2.cpu).toEqual(series(60));
    expect(w2.memory).toEqual(series(40));
    expect(w2.disk_read_bytes).toEqual(series(2000));
  });

  it("matches member names exactly (a dot is not a wildcard)", async () => {
    const m = await new InfluxSource({ url: influx.url, database: "telegraf" }).groupMetrics(query({ members: ["web.1"], metrics: ["cpu"] }));
    expect(m.members).toEqual({ "web.1": { cpu: [] } });
  });

  it("substitutes the variables into a custom template", async () => {
    const src = new InfluxSource({
      url: influx.url,
      database: "telegraf",
      intervalSeconds: 60,
      queries: { memory: `SELECT max("usable") FROM "libvirt_balloon" WHERE "domain_name" =~ /^({{members}})$/ AND {{timeFilter}} GROUP BY time({{interval}}), "domain_name" fill(none)` },
    });
    const m = await src.groupMetrics(query({ members: ["web-2"], metrics: ["memory"], windowSeconds: 120 }));
    const minute = Math.floor((END - 120_000) / 60_000) * 60_000;
    expect(m.members["web-2"]!.memory!.every((s) => s.value === 600 && s.at % 60_000 === 0 && s.at > minute)).toBe(true);
    expect(m.members["web-2"]!.memory!.length).toBeGreaterThanOrEqual(1);
  });

  it("fails with a MetricsError naming the source when the database does not exist", async () => {
    const e = await new InfluxSource({ url: influx.url, database: "nope" }).groupMetrics(query({ metrics: ["cpu"] })).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MetricsError);
    expect((e as Error).message).toBe(`metrics source ${influx.url}: the cpu query failed: database not found: nope`);
  });

  it("fails with a MetricsError when a query is not valid InfluxQL", async () => {
    const src = new InfluxSource({ url: influx.url, database: "telegraf", queries: { cpu: "SELEKT nothing" } });
    await expect(src.groupMetrics(query({ metrics: ["cpu"] }))).rejects.toThrow(/metrics source .*: .*(HTTP 400|query failed).*SELEKT|error parsing query/);
  });
});

describe("InfluxSource when the source misbehaves", () => {
  it("throws a MetricsError when nothing listens", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await expect(new InfluxSource({ url, database: "x" }).groupMetrics(query())).rejects.toThrow(/cannot connect \(ECONNREFUSED\)/);
  });

  it("throws a MetricsError on garbage: not JSON, or JSON that is not a result", async () => {
    const text = await startHttp((_req, res) => res.writeHead(200).end("garbage"));
    const json = await startHttp((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"results":[{"series":[{"name":"x","values":"no"}]}]}'));
    try {
      await expect(new InfluxSource({ url: text.url, database: "x" }).groupMetrics(query())).rejects.toThrow(/not JSON.*garbage/);
      await expect(new InfluxSource({ url: json.url, database: "x" }).groupMetrics(query())).rejects.toThrow(/not an InfluxDB 1\.x result/);
    } finally {
      await Promise.all([text.stop(), json.stop()]);
    }
  });

  it("sends the credentials as Basic authentication and says so when they are refused", async () => {
    let auth: string | undefined;
    const s = await startHttp((req, res) => {
      auth = req.headers.authorization;
      res.writeHead(401, { "content-type": "application/json" }).end('{"error":"authorization failed"}');
    });
    try {
      const e = (await new InfluxSource({ url: s.url, database: "x", username: "u", password: "p" }).groupMetrics(query({ metrics: ["cpu"] })).catch((x: unknown) => x)) as MetricsError;
      expect(e).toBeInstanceOf(MetricsError);
      expect(e.message).toBe(`metrics source ${s.url}: HTTP 401: authorization failed`);
      expect(e.hint).toBe("check the credentials");
      expect(auth).toBe(`Basic ${Buffer.from("u:p").toString("base64")}`);
    } finally {
      await s.stop();
    }
  });
});
