import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { MetricName } from "../config/scaling.js";
import type { MetricsStoreConfig } from "../config/types.js";
import { InfluxSource } from "./influxdb-source.js";
import { PrometheusSource } from "./prometheus-source.js";
import { SqliteStore } from "./sqlite-store.js";
import type { MetricsSource } from "./types.js";

/**
 * Opens the metrics store or source the config names. `env` supplies the InfluxDB password (`passwordEnv`).
 * The SQLite store is returned as such, so the collector (`premiscale serve`) can also write to it.
 */
export function openConfiguredSource(store: MetricsStoreConfig, env: Record<string, string | undefined> = process.env): MetricsSource | SqliteStore {
  switch (store.type) {
    case "sqlite":
      // The default lives in the state directory's local .premiscale/, which may not exist before the first apply.
      mkdirSync(dirname(store.path), { recursive: true, mode: 0o700 });
      return new SqliteStore({ path: store.path, rawRetentionSeconds: store.rawRetentionSeconds, rollupRetentionSeconds: store.rollupRetentionSeconds });
    case "prometheus":
      return new PrometheusSource({
        url: store.url,
        queries: store.queries as Partial<Record<MetricName, string>>,
        memberLabel: store.memberLabel,
        stepSeconds: store.stepSeconds,
        rateWindow: store.rateWindow,
        timeoutMs: store.timeoutSeconds * 1000,
      });
    case "influxdb":
      return new InfluxSource({
        url: store.url,
        database: store.database,
        queries: store.queries as Partial<Record<MetricName, string>>,
        memberTag: store.memberTag,
        intervalSeconds: store.intervalSeconds,
        timeoutMs: store.timeoutSeconds * 1000,
        ...(store.retentionPolicy ? { retentionPolicy: store.retentionPolicy } : {}),
        ...(store.username ? { username: store.username } : {}),
        ...(store.passwordEnv && env[store.passwordEnv] !== undefined ? { password: env[store.passwordEnv] } : {}),
      });
  }
}
