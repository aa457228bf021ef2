/**
 * Review mode's policy backtest: when a commit changes a group's `scaling`, the plan shows how the old and the new
 * policies would have sized the group over its recent metrics (policies/simulate `compare`). The recent metrics are
 * the group's current members' samples from the metrics source, turned into a group trace: per time bucket, the
 * mean per member of each metric and the number of members that reported (`size`).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../pipeline/config.js";
import { PremiscaleError } from "../config/errors.js";
import type { Config, GroupConfig } from "../config/types.js";
import { SqliteStore } from "../metrics/sqlite-store.js";
import type { GroupMetrics, MetricsSource } from "../metrics/types.js";
import { compare, renderMarkdown, type Trace, type TraceRow } from "../policies/simulate/index.js";
import { METRIC_NAMES, type MetricName, type ScalingSpec } from "../config/scaling.js";
import { GitStateStore } from "../state/git-state-store.js";
import { membersOf, type State } from "../state/types.js";
import { git } from "../state/git.js";
import { policyMetrics } from "../pipeline/make-plan.js";

/** How far back the backtest reads. @default 6 h */
export const BACKTEST_WINDOW_SECONDS = 6 * 3600;

/**
 * A group trace from members' samples: one row per `bucketSeconds` holding a sample of any member, with each
 * metric's mean per member (a member's samples in the bucket averaged first) and `size`, the members that reported.
 * Null when fewer than two buckets have data (a trace needs two times). Pure.
 */
export function traceFromGroupMetrics(m: GroupMetrics, o: { metrics: readonly MetricName[]; bucketSeconds: number; file: string }): Trace | null {
  const bucketMs = o.bucketSeconds * 1000;
  // bucket → metric → member → [sum, count]
  const buckets = new Map<number, Map<MetricName, Map<string, [number, number]>>>();
  const reporters = new Map<number, Set<string>>();
  for (const [member, samples] of Object.entries(m.members)) {
    for (const metric of o.metrics) {
      for (const s of samples[metric] ?? []) {
        if (!Number.isFinite(s.value)) continue;
        const b = Math.floor(s.at / bucketMs);
        const perMetric = buckets.get(b) ?? new Map<MetricName, Map<string, [number, number]>>();
        buckets.set(b, perMetric);
        const perMember = perMetric.get(metric) ?? new Map<string, [number, number]>();
        perMetric.set(metric, perMember);
        const acc = perMember.get(member) ?? [0, 0];
        perMember.set(member, [acc[0] + s.value, acc[1] + 1]);
        const who = reporters.get(b) ?? new Set<string>();
        reporters.set(b, who.add(member));
      }
    }
  }
  const keys = [...buckets.keys()].sort((a, b) => a - b);
  if (keys.length < 2) return null;
  const seen = new Set<MetricName>();
  const rows: TraceRow[] = keys.map((b, i) => {
    const values: Partial<Record<MetricName, number>> = {};
    for (const [metric, perMember] of buckets.get(b)!) {
      const means = [...perMember.values()].map(([sum, n]) => sum / n);
      values[metric] = means.reduce((a, x) => a + x, 0) / means.length;
      seen.add(metric);
    }
    return { at: b * bucketMs, line: i + 1, size: reporters.get(b)!.size, values };
  });
  return {
    file: o.file,
    format: "csv",
    shape: "group",
    metrics: METRIC_NAMES.filter((x) => seen.has(x)),
    hasSize: true,
    rows,
    start: rows[0]!.at,
    end: rows[rows.length - 1]!.at,
    intervalSeconds: o.bucketSeconds,
  };
}

/** Groups whose `scaling` differs between two configs (and that have scaling now). */
export function scalingChanges(previous: Config, current: Config): { group: GroupConfig & { scaling: ScalingSpec }; before: ScalingSpec | null }[] {
  return current.groups.flatMap((g) => {
    if (!g.scaling) return [];
    const old = previous.groups.find((x) => x.name === g.name)?.scaling ?? null;
    return JSON.stringify(old) === JSON.stringify(g.scaling) ? [] : [{ group: g as GroupConfig & { scaling: ScalingSpec }, before: old }];
  });
}

/**
 * The config as it was before the newest commit that changed `configFile` in the repository at `repoDir`, or null
 * (the file is new, or that config did not load).
 */
export async function previousConfig(repoDir: string, configFile: string, env: Record<string, string | undefined>): Promise<{ config: Config; commit: string } | null> {
  const last = (await git(repoDir, ["log", "-1", "--format=%H", "--", configFile], { allowFail: true })).stdout.trim();
  if (!last) return null;
  const parent = await git(repoDir, ["rev-parse", "--verify", "--quiet", `${last}^`], { allowFail: true });
  if (parent.exitCode !== 0) return null;
  const commit = parent.stdout.trim();
  const shown = await git(repoDir, ["show", `${commit}:${configFile}`], { allowFail: true });
  if (shown.exitCode !== 0) return null;
  try {
    return { config: parseConfig(shown.stdout, join(repoDir, configFile), env, (p) => readFileSync(p, "utf8"), { checkEnv: false }), commit };
  } catch {
    return null;
  }
}

/** Options of `backtestScalingChanges`. */
export interface BacktestOptions {
  previous: { config: Config; commit: string };
  current: { config: Config; commit: string };
  state: State | null;
  source: MetricsSource;
  now: Date;
  /** @default BACKTEST_WINDOW_SECONDS */
  windowSeconds?: number;
  /** Simulation step. @default 60 (the embedded store's roll-up) */
  bucketSeconds?: number;
}

/**
 * Markdown with one backtest per group whose scaling changed, or null when none did. A group that cannot be
 * backtested (no members, too few samples, the source failed, the simulation refused) gets a line saying why.
 */
export async function backtestScalingChanges(o: BacktestOptions): Promise<string | null> {
  const changes = scalingChanges(o.previous.config, o.current.config);
  if (changes.length === 0) return null;
  const windowSeconds = o.windowSeconds ?? BACKTEST_WINDOW_SECONDS;
  const bucketSeconds = o.bucketSeconds ?? 60;
  const hours = `${Math.round((windowSeconds / 3600) * 10) / 10} h`;
  const out: string[] = [];
  for (const { group, before } of changes) {
    const members = membersOf(o.state?.groups.find((g) => g.name === group.name)).map((i) => i.name);
    const note = (why: string) => out.push(`Group \`${group.name}\`: no backtest: ${why}.`, "");
    if (members.length === 0) {
      note("it has no members, so there are no recent metrics");
      continue;
    }
    const metrics = [...new Set([...policyMetrics(before?.policies ?? []), ...policyMetrics(group.scaling.policies ?? [])])];
    if (metrics.length === 0) {
      note("its policies read no metric (schedules only)");
      continue;
    }
    try {
      const m = await o.source.groupMetrics({ group: group.name, members, windowSeconds, now: o.now, metrics });
      const trace = traceFromGroupMetrics(m, { metrics, bucketSeconds, file: `the last ${hours} of ${group.name}'s metrics` });
      if (!trace) {
        note(`fewer than two ${bucketSeconds} s buckets of metrics in the last ${hours}`);
        continue;
      }
      const initial = Math.min(group.max, Math.max(group.min, members.length));
      const run = (label: string, scaling: ScalingSpec) => ({ label, group: { name: group.name, min: group.min, max: group.max, initial }, scaling });
      const runs = [
        ...(before ? [run(`before (${o.previous.commit.slice(0, 7)})`, before)] : []),
        run(`after (${o.current.commit.slice(0, 7)})`, group.scaling),
      ];
      out.push(renderMarkdown(compare({ trace, evalIntervalSeconds: bucketSeconds, runs })).trim(), "");
    } catch (e) {
      if (!(e instanceof PremiscaleError)) throw e;
      note(e.message);
    }
  }
  return out.join("\n").trim();
}

/**
 * The `backtest` hook of `reconcileOnce` for the embedded store: when the config file's newest change touched a
 * group's scaling, the backtest over the stored metrics (null otherwise, or when the metrics are not in a SQLite
 * store premiscale keeps, or that store does not exist yet).
 */
export function storedMetricsBacktest(configFile: string, env: Record<string, string | undefined>, now: () => Date = () => new Date()) {
  return async (config: Config, _plan: unknown, at: { repoDir: string; commit: string }): Promise<string | null> => {
    const store = config.metrics.store;
    if (store.type !== "sqlite") return null;
    const previous = await previousConfig(at.repoDir, configFile, env);
    if (!previous || scalingChanges(previous.config, config).length === 0) return null;
    if (!existsSync(store.path)) return `No backtest: the metrics store ${store.path} does not exist on this machine yet (\`premiscale serve\` collects metrics).`;
    const state = await new GitStateStore(config.state.path).read();
    const source = new SqliteStore({ path: store.path, rawRetentionSeconds: store.rawRetentionSeconds, rollupRetentionSeconds: store.rollupRetentionSeconds });
    try {
      return await backtestScalingChanges({ previous, current: { config, commit: at.commit }, state, source, now: now() });
    } finally {
      await source.close();
    }
  };
}
