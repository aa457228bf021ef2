import { InfluxSource, type InfluxSourceOptions } from "./influxdb-source.js";
import { PrometheusSource, type PrometheusSourceOptions } from "./prometheus-source.js";
import { SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
import type { MetricsSource } from "./types.js";

export { Collector, DEFAULT_INTERVAL_MS, type CollectorOptions, type CounterSink, type HostReport } from "./collector.js";
export { INFLUX_DEFAULT_QUERIES, INFLUX_VARIABLES, InfluxSource, type InfluxSourceOptions } from "./influxdb-source.js";
export { PROMETHEUS_DEFAULT_QUERIES, PROMETHEUS_VARIABLES, PrometheusSource, type PrometheusSourceOptions } from "./prometheus-source.js";
export { cpuPercent, memoryUsedPercent, samplesFromCounters } from "./rates.js";
export { SQLITE_DEFAULTS, SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
export * from "./types.js";

/**
 * The `metrics:` block proposed for the config file (the lead owns the schema): how often to collect, and where
 * samples are stored or read. Only `sqlite` is fed by premiscale's collector; the others are read-only.
 */
export interface MetricsConfig {
  /** @default 15 */
  intervalSeconds?: number;
  store: ({ type: "sqlite" } & SqliteStoreOptions) | ({ type: "prometheus" } & PrometheusSourceOptions) | ({ type: "influxdb" } & InfluxSourceOptions);
}

/** Opens the configured store or source. Throws `MetricsError` when the embedded database cannot be opened. */
export function openMetricsSource(store: MetricsConfig["store"]): MetricsSource {
  switch (store.type) {
    case "sqlite":
      return new SqliteStore(store);
    case "prometheus":
      return new PrometheusSource(store);
    case "influxdb":
      return new InfluxSource(store);
  }
}
