import type { MetricName } from "../config/scaling.js";
import { displayUrl, fetchJson } from "./http.js";
import { checkTemplates, escapeRegex, renderTemplate } from "./templates.js";
import { MetricsError, type GroupMetrics, type GroupMetricsQuery, type MetricsSource, type Sample } from "./types.js";

/**
 * Default PromQL per metric, for prometheus-libvirt-exporter (github.com/kumina/libvirt_exporter, Debian's
 * `prometheus-libvirt-exporter`): counters labelled `domain`. It exports no guest-reported memory
 * (`libvirt_domain_info_memory_usage_bytes` is the balloon size, not use), so `memory` has no default.
 */
export const PROMETHEUS_DEFAULT_QUERIES: Partial<Record<MetricName, string>> = {
  cpu:
    '100 * sum by (domain) (rate(libvirt_domain_info_cpu_time_seconds_total{domain=~"{{members}}"}[{{rate}}]))' +
    ' / sum by (domain) (libvirt_domain_info_virtual_cpus{domain=~"{{members}}"})',
  disk_read_bytes: 'sum by (domain) (rate(libvirt_domain_block_stats_read_bytes_total{domain=~"{{members}}"}[{{rate}}]))',
  disk_write_bytes: 'sum by (domain) (rate(libvirt_domain_block_stats_write_bytes_total{domain=~"{{members}}"}[{{rate}}]))',
  net_rx_bytes: 'sum by (domain) (rate(libvirt_domain_interface_stats_receive_bytes_total{domain=~"{{members}}"}[{{rate}}]))',
  net_tx_bytes: 'sum by (domain) (rate(libvirt_domain_interface_stats_transmit_bytes_total{domain=~"{{members}}"}[{{rate}}]))',
};

/** The variables a PromQL template may use. */
export const PROMETHEUS_VARIABLES = ["members", "group", "rate", "step"] as const;

/** Options of the Prometheus (and VictoriaMetrics) source. */
export interface PrometheusSourceOptions {
  /** Base URL of the Prometheus HTTP API: `http://prom:9090`, VictoriaMetrics `http://vm:8428`. */
  url: string;
  /** PromQL templates per metric, replacing the defaults one by one; a metric without a query is missing. */
  queries?: Partial<Record<MetricName, string>>;
  /** The label holding the member (domain) name in the results. @default "domain" */
  memberLabel?: string;
  /** Resolution of the samples. @default 15 */
  stepSeconds?: number;
  /** `{{rate}}`: the range of `rate()`. @default "1m" */
  rateWindow?: string;
  /** @default 10000 */
  timeoutMs?: number;
  /** Extra request headers (e.g. `Authorization`). */
  headers?: Record<string, string>;
}

/** PromQL string literal content for a regex matching exactly these names. */
function membersRegex(members: readonly string[]): string {
  return members.map(escapeRegex).join("|").replace(/\\/g, "\\\\").replace(/"/g, '\\"');
}

/**
 * A read-only metrics source over the Prometheus HTTP API (`POST /api/v1/query_range`): one query per metric and
 * group, from a template with the group's members substituted. Covers Prometheus and VictoriaMetrics.
 */
export class PrometheusSource implements MetricsSource {
  private readonly source: string;
  private readonly queries: Partial<Record<MetricName, string>>;

  constructor(private readonly o: PrometheusSourceOptions) {
    this.source = displayUrl(o.url);
    this.queries = { ...PROMETHEUS_DEFAULT_QUERIES, ...o.queries };
    checkTemplates(this.source, this.queries, PROMETHEUS_VARIABLES);
  }

  async groupMetrics(q: GroupMetricsQuery): Promise<GroupMetrics> {
    const out: GroupMetrics = { members: Object.fromEntries(q.members.map((m) => [m, {}])) };
    if (q.members.length === 0) return out;
    const step = this.o.stepSeconds ?? 15;
    const vars = {
      members: membersRegex(q.members),
      group: q.group.replace(/\\/g, "\\\\").replace(/"/g, '\\"'),
      rate: this.o.rateWindow ?? "1m",
      step: `${step}s`,
    };
    const endS = q.now.getTime() / 1000;
    const startS = endS - q.windowSeconds;
    const wanted = new Set(q.members);
    await Promise.all(
      q.metrics.map(async (metric) => {
        for (const m of q.members) out.members[m]![metric] = [];
        const template = this.queries[metric];
        if (!template) return;
        const form = new URLSearchParams({ query: renderTemplate(template, vars), start: String(startS), end: String(endS), step: String(step) });
        const url = new URL("api/v1/query_range", this.o.url.endsWith("/") ? this.o.url : `${this.o.url}/`);
        const body = await fetchJson(url, { source: this.source, timeoutMs: this.o.timeoutMs ?? 10_000, headers: this.o.headers, form });
        for (const series of this.matrix(body, metric)) {
          const member = series.metric[this.o.memberLabel ?? "domain"];
          if (member === undefined || !wanted.has(member)) continue;
          const samples = out.members[member]![metric]!;
          if (samples.length > 0) {
            throw new MetricsError(this.source, `the ${metric} query returned more than one series for ${member}`, `aggregate by the member label in queries.${metric}, e.g. sum by (${this.o.memberLabel ?? "domain"}) (…)`, { code: "metrics_bad_answer" });
          }
          for (const [t, v] of series.values) {
            const value = Number(v);
            const at = Math.round(t * 1000);
            if (Number.isFinite(value) && at > startS * 1000 && at <= endS * 1000) samples.push({ at, value } satisfies Sample);
          }
        }
      }),
    );
    return out;
  }

  /** Checks that a body is a successful matrix result. */
  private matrix(body: unknown, metric: MetricName): { metric: Record<string, string>; values: [number, string][] }[] {
    const b = body as { status?: unknown; error?: unknown; data?: { resultType?: unknown; result?: unknown } };
    if (b?.status === "error") throw new MetricsError(this.source, `the ${metric} query failed: ${String(b.error)}`, `check queries.${metric}`, { code: "metrics_query_failed" });
    const ok =
      b?.status === "success" &&
      b.data?.resultType === "matrix" &&
      Array.isArray(b.data.result) &&
      b.data.result.every(
        (s: { metric?: unknown; values?: unknown }) =>
          s && typeof s.metric === "object" && Array.isArray(s.values) && s.values.every((p) => Array.isArray(p) && typeof p[0] === "number" && typeof p[1] === "string"),
      );
    if (!ok) {
      throw new MetricsError(this.source, `answered the ${metric} query with JSON that is not a Prometheus range result`, "check that the URL points at a Prometheus-compatible API", { code: "metrics_bad_answer" });
    }
    return b.data!.result as { metric: Record<string, string>; values: [number, string][] }[];
  }

  async close(): Promise<void> {}
}
