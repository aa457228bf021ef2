import type { MetricName } from "../config/scaling.js";
import { displayUrl, fetchJson } from "./http.js";
import { checkTemplates, escapeRegex, renderTemplate } from "./templates.js";
import { MetricsError, type GroupMetrics, type GroupMetricsQuery, type MetricsSource } from "./types.js";

const sumOfRates = (measurement: string, field: string, perItemTag: string) =>
  `SELECT sum("r") FROM (SELECT non_negative_derivative(last("${field}"), 1s) AS "r" FROM "${measurement}"` +
  ` WHERE "domain_name" =~ /^({{members}})$/ AND {{timeFilter}} GROUP BY time({{interval}}), "domain_name", "${perItemTag}" fill(none))` +
  ` WHERE {{timeFilter}} GROUP BY time({{interval}}), "domain_name" fill(none)`;

/**
 * Default InfluxQL per metric, for Telegraf's libvirt input (`inputs.libvirt`, Telegraf ≥ 1.25): measurements
 * `libvirt_vcpu`, `libvirt_balloon`, `libvirt_block`, `libvirt_net`, tagged `domain_name`.
 *
 * CPU is the mean over a domain's vCPUs of each vCPU's time rate: InfluxQL cannot join measurements, so the
 * per-domain `cpu.time` cannot be divided by the vCPU count stored elsewhere. InfluxDB 1.x refuses a field named
 * `time`, so Telegraf's per-vCPU `time` field must reach it renamed to `time_ns` (README: a processors.rename block).
 */
export const INFLUX_DEFAULT_QUERIES: Partial<Record<MetricName, string>> = {
  cpu:
    `SELECT mean("pct") FROM (SELECT non_negative_derivative(last("time_ns"), 1s) / 10000000 AS "pct" FROM "libvirt_vcpu"` +
    ` WHERE "domain_name" =~ /^({{members}})$/ AND {{timeFilter}} GROUP BY time({{interval}}), "domain_name", "vcpu_id" fill(none))` +
    ` WHERE {{timeFilter}} GROUP BY time({{interval}}), "domain_name" fill(none)`,
  memory:
    `SELECT 100 * (mean("available") - mean("usable")) / mean("available") FROM "libvirt_balloon"` +
    ` WHERE "domain_name" =~ /^({{members}})$/ AND "available" > 0 AND {{timeFilter}} GROUP BY time({{interval}}), "domain_name" fill(none)`,
  disk_read_bytes: sumOfRates("libvirt_block", "rd_bytes", "block_id"),
  disk_write_bytes: sumOfRates("libvirt_block", "wr_bytes", "block_id"),
  net_rx_bytes: sumOfRates("libvirt_net", "rx_bytes", "interface_id"),
  net_tx_bytes: sumOfRates("libvirt_net", "tx_bytes", "interface_id"),
};

/** The variables an InfluxQL template may use. */
export const INFLUX_VARIABLES = ["members", "group", "timeFilter", "interval"] as const;

/** Options of the InfluxDB 1.x source. */
export interface InfluxSourceOptions {
  /** Base URL: `http://influx:8086`. */
  url: string;
  database: string;
  /** Retention policy (`rp`), when not the database's default. */
  retentionPolicy?: string;
  /** Basic authentication, when the server has `auth-enabled`. */
  username?: string;
  password?: string;
  /** InfluxQL templates per metric, replacing the defaults one by one; a metric without a query is missing. */
  queries?: Partial<Record<MetricName, string>>;
  /** The tag holding the member (domain) name; every query must `GROUP BY` it. @default "domain_name" */
  memberTag?: string;
  /** `{{interval}}`: the `GROUP BY time()` bucket. @default 15 */
  intervalSeconds?: number;
  /** @default 10000 */
  timeoutMs?: number;
}

interface InfluxSeries {
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

/**
 * A read-only metrics source over InfluxDB 1.x (`/query`, InfluxQL): one query per metric and group, from a template
 * with the members substituted. A sample is stamped with the time InfluxDB gives it (the start of its
 * `GROUP BY time()` bucket).
 */
export class InfluxSource implements MetricsSource {
  private readonly source: string;
  private readonly queries: Partial<Record<MetricName, string>>;

  constructor(private readonly o: InfluxSourceOptions) {
    this.source = displayUrl(o.url);
    this.queries = { ...INFLUX_DEFAULT_QUERIES, ...o.queries };
    checkTemplates(this.source, this.queries, INFLUX_VARIABLES);
  }

  async groupMetrics(q: GroupMetricsQuery): Promise<GroupMetrics> {
    const out: GroupMetrics = { members: Object.fromEntries(q.members.map((m) => [m, {}])) };
    if (q.members.length === 0) return out;
    const interval = this.o.intervalSeconds ?? 15;
    const toMs = q.now.getTime();
    const fromMs = toMs - q.windowSeconds * 1000;
    const vars = {
      members: q.members.map(escapeRegex).join("|"),
      group: q.group.replace(/\\/g, "\\\\").replace(/'/g, "\\'"),
      // One bucket earlier than the window, so the window's first bucket has a predecessor for derivatives.
      timeFilter: `time > ${fromMs - interval * 1000}ms AND time <= ${toMs}ms`,
      interval: `${interval}s`,
    };
    const tag = this.o.memberTag ?? "domain_name";
    const wanted = new Set(q.members);
    const headers = this.o.username !== undefined ? { authorization: `Basic ${Buffer.from(`${this.o.username}:${this.o.password ?? ""}`).toString("base64")}` } : undefined;
    await Promise.all(
      q.metrics.map(async (metric) => {
        for (const m of q.members) out.members[m]![metric] = [];
        const template = this.queries[metric];
        if (!template) return;
        const form = new URLSearchParams({ db: this.o.database, epoch: "ms", q: renderTemplate(template, vars) });
        if (this.o.retentionPolicy) form.set("rp", this.o.retentionPolicy);
        const url = new URL("query", this.o.url.endsWith("/") ? this.o.url : `${this.o.url}/`);
        const body = await fetchJson(url, { source: this.source, timeoutMs: this.o.timeoutMs ?? 10_000, headers, form });
        for (const s of this.series(body, metric)) {
          const member = s.tags?.[tag];
          if (member === undefined) {
            throw new MetricsError(this.source, `the ${metric} query returned a series without the tag ${tag}`, `GROUP BY "${tag}" in queries.${metric}`, { code: "metrics_bad_answer" });
          }
          if (!wanted.has(member)) continue;
          const samples = out.members[member]![metric]!;
          for (const row of s.values) {
            const [at, value] = row;
            if (typeof at === "number" && typeof value === "number" && Number.isFinite(value) && at > fromMs && at <= toMs) samples.push({ at, value });
          }
        }
      }),
    );
    return out;
  }

  /** Checks that a body is an InfluxDB 1.x query result and returns its series. */
  private series(body: unknown, metric: MetricName): InfluxSeries[] {
    const b = body as { results?: { error?: unknown; series?: unknown }[]; error?: unknown };
    if (typeof b?.error === "string") throw new MetricsError(this.source, `the ${metric} query failed: ${b.error}`, `check queries.${metric}`, { code: "metrics_query_failed" });
    const r = Array.isArray(b?.results) ? b.results[0] : undefined;
    if (r && typeof r.error === "string") {
      throw new MetricsError(this.source, `the ${metric} query failed: ${r.error}`, `check queries.${metric} and the database name`, { code: "metrics_query_failed" });
    }
    const series = r?.series ?? [];
    const ok =
      r !== undefined &&
      Array.isArray(series) &&
      series.every((s: Partial<InfluxSeries>) => s && Array.isArray(s.columns) && s.columns[0] === "time" && Array.isArray(s.values) && s.values.every(Array.isArray));
    if (!ok) {
      throw new MetricsError(this.source, `answered the ${metric} query with JSON that is not an InfluxDB 1.x result`, "check that the URL points at InfluxDB 1.x (/query)", { code: "metrics_bad_answer" });
    }
    return series as InfluxSeries[];
  }

  async close(): Promise<void> {}
}
