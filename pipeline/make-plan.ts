/**
 * The I/O shell around the pure stages: observe the hosts, gather each policy-driven group's metrics and history,
 * decide and plan. `premiscale plan`/`apply` (cli/) and the reconciler both plan through here, so a plan means the
 * same whoever makes it.
 */
import { createHash, randomUUID } from "node:crypto";
import { dirname, join, relative } from "node:path";
import type { Config, GroupConfig, HostConfig } from "../config/types.js";
import { openConfiguredSource } from "../metrics/from-config.js";
import type { GroupMetrics, MetricsSource } from "../metrics/types.js";
import { computePlan } from "../planner/compute-plan.js";
import type { Plan } from "../planner/plan.js";
import { computeRefreshPlan } from "../planner/refresh-plan.js";
import { previousFitKey, rolledBackTo } from "../planner/rollback.js";
import { policySource } from "../policies/decide-group.js";
import { decideWith, type DecisionSource } from "../policies/decision.js";
import { emptyHistory } from "../policies/history.js";
import { configSource } from "../policies/static.js";
import { POLICY_DEFAULTS, type MetricName, type Policy } from "../config/scaling.js";
import type { HostObservation, KnownInstance, Provider, TemplateQuery } from "../providers/provider.js";
import { CheckInLedger } from "../server/check-in-ledger.js";
import { RUNTIME_DIR } from "../state/git-state-store.js";
import { git } from "../state/git.js";
import { membersOf, type State } from "../state/types.js";
import { hasAutoscalerSource, kubernetesSources, portableKubernetes } from "./kubernetes-sources.js";

/**
 * Observes the given hosts in parallel; each host has its own timeouts, so a hung one delays only itself. Each host
 * is asked about the templates of the config's groups that may place VMs on it, and a rolled-back group's previous
 * template.
 */
export async function observeHosts(
  providers: ReadonlyMap<string, Provider>,
  hosts: HostConfig[],
  state: State | null,
  groups: readonly GroupConfig[],
): Promise<HostObservation[]> {
  return Promise.all(
    hosts.map(async (h) => {
      const known = new Map<string, KnownInstance>();
      for (const g of state?.groups ?? []) {
        for (const i of g.instances) {
          if (i.host === h.name) known.set(i.name, { uuid: i.uuid, group: g.name, lineage: state!.lineage, createdAt: i.created });
        }
      }
      const templates = new Map<string, TemplateQuery>(
        groups.filter((g) => g.hosts.includes(h.name)).map((g) => [g.name, { vcpus: g.template.vcpus, memoryMiB: g.template.memoryMiB, settings: g.template.settings[h.kind] }]),
      );
      // A rolled-back group makes its VMs from its previous template: the host says whether that still fits (its base image may be gone).
      for (const g of groups.filter((g) => g.hosts.includes(h.name))) {
        const previous = rolledBackTo(g, state?.groups.find((x) => x.name === g.name));
        if (previous) templates.set(previousFitKey(g.name), { vcpus: previous.vcpus, memoryMiB: previous.memoryMiB, settings: previous.settings[h.kind] });
      }
      return providers.get(h.name)!.observe({ known, templates });
    }),
  );
}

/**
 * sha256 of the normalised config with its paths made relative to the config file's directory, so that the same
 * config checked out elsewhere (another machine, the reconciler's clone) has the same digest.
 */
export function configDigest(config: Config): string {
  const base = dirname(config.file);
  const rel = (p: string) => relative(base, p) || ".";
  const portable = {
    ...config,
    file: rel(config.file),
    state: { ...config.state, path: rel(config.state.path) },
    metrics: config.metrics.store.type === "sqlite" ? { ...config.metrics, store: { ...config.metrics.store, path: rel(config.metrics.store.path) } } : config.metrics,
    ...(config.kubernetes ? { kubernetes: portableKubernetes(config.kubernetes, rel) } : {}),
  };
  return createHash("sha256").update(JSON.stringify(portable)).digest("hex");
}

/** The commit of the repository holding the config file, or null when it is not in one. */
export async function configCommit(config: Config): Promise<string | null> {
  try {
    const r = await git(dirname(config.file), ["rev-parse", "--verify", "--quiet", "HEAD"], { allowFail: true });
    return r.exitCode === 0 ? r.stdout.trim() || null : null;
  } catch {
    return null;
  }
}

/** The window a group's policies read: the longest of their windows (a threshold reads N periods). */
export function metricsWindowSeconds(policies: Policy[]): number {
  let w = 0;
  for (const p of policies) {
    if (p.type === "target-tracking" || p.type === "step") w = Math.max(w, p.windowSeconds ?? POLICY_DEFAULTS.windowSeconds);
    if (p.type === "threshold") w = Math.max(w, (p.evaluationPeriods ?? POLICY_DEFAULTS.evaluationPeriods) * (p.periodSeconds ?? POLICY_DEFAULTS.periodSeconds));
  }
  return w;
}

/** The metrics a group's policies read. */
export function policyMetrics(policies: Policy[]): MetricName[] {
  return [...new Set(policies.flatMap((p) => (p.type === "schedule" ? [] : [p.metric])))];
}

/** Each policy-driven group's metrics, or the reason there are none (the source is down or answered garbage). */
export async function gatherMetrics(
  source: MetricsSource,
  groups: GroupConfig[],
  state: State | null,
  now: Date,
): Promise<Map<string, GroupMetrics | { error: string }>> {
  const out = new Map<string, GroupMetrics | { error: string }>();
  await Promise.all(
    groups.map(async (g) => {
      const policies = g.scaling?.policies ?? [];
      const metrics = policyMetrics(policies);
      if (metrics.length === 0) return;
      const members = membersOf(state?.groups.find((x) => x.name === g.name)).map((i) => i.name);
      try {
        out.set(g.name, await source.groupMetrics({ group: g.name, members, windowSeconds: metricsWindowSeconds(policies), now, metrics }));
      } catch (e) {
        const err = e as Error & { hint?: string };
        out.set(g.name, { error: `${err.message}${err.hint ? ` (${err.hint})` : ""}` });
      }
    }),
  );
  return out;
}

/**
 * When each instance of a group with heartbeats was last heard from, from the check-in ledger that `premiscale
 * serve` (or apply) keeps beside the state. Undefined when no group uses heartbeats.
 */
export async function heartbeats(config: Config, groups: GroupConfig[], state: State | null): Promise<Map<string, string | null> | undefined> {
  const watched = groups.filter((g) => g.readiness.heartbeatSeconds > 0 && !g.suspend);
  if (watched.length === 0) return undefined;
  const ledger = new CheckInLedger(join(config.state.path, RUNTIME_DIR));
  const out = new Map<string, string | null>();
  for (const g of watched) {
    for (const i of membersOf(state?.groups.find((x) => x.name === g.name))) out.set(i.name, await ledger.lastSeen(i.uuid));
  }
  return out;
}

/** Options of a planning run. */
export interface PlanRunOptions {
  targets: string[] | null;
  ttlSeconds?: number;
  now?: Date;
  /** The metrics source; default: the one the config names, opened and closed for this plan. */
  metrics?: MetricsSource;
  env?: Record<string, string | undefined>;
  newUuid?: () => string;
  /**
   * Decision sources that come before the policy engine and the config's `desired` (e.g. cluster-autoscaler's
   * targets); the first source that owns a group decides it.
   */
  sources?: readonly DecisionSource[];
  /** `--replace`: instances (`group[name]`) or groups to replace now through the roll-out path. */
  replace?: string[];
  /** `--refresh-only`: a plan that only records what the hosts have in state (planner/refresh-plan.ts). */
  refreshOnly?: boolean;
}

/**
 * Gathers the planner's inputs (state, observations, metrics, history, clock) and runs it: the thin I/O shell
 * around the pure `decideGroup` and `computePlan`. A metrics source that fails only makes its groups keep their
 * size (the plan says why); it never scales in.
 */
export async function makePlan(
  config: Config,
  providers: ReadonlyMap<string, Provider>,
  state: State | null,
  options: PlanRunOptions,
): Promise<{ plan: Plan; unreachable: { host: string; error: string }[] }> {
  const now = options.now ?? new Date();
  const groups = options.targets ? config.groups.filter((g) => options.targets!.includes(g.name)) : config.groups;
  const hostNames = new Set(groups.flatMap((g) => g.hosts));
  // Hosts that hold state instances of targeted groups must be observed too, even if a group no longer lists them.
  for (const g of state?.groups ?? []) {
    if (groups.some((x) => x.name === g.name)) for (const i of g.instances) hostNames.add(i.host);
  }
  const hosts = config.hosts.filter((h) => hostNames.has(h.name));
  const scaled = groups.filter((g) => g.scaling && !g.suspend);

  let metrics = new Map<string, GroupMetrics | { error: string }>();
  const observing = observeHosts(providers, hosts, state, groups);
  // A refresh-only plan decides nothing: no metrics to read.
  if (scaled.length > 0 && !options.refreshOnly) {
    let source: MetricsSource | null = options.metrics ?? null;
    try {
      source ??= openConfiguredSource(config.metrics.store, options.env);
    } catch (e) {
      const err = e as Error & { hint?: string };
      for (const g of scaled) if (policyMetrics(g.scaling!.policies ?? []).length > 0) metrics.set(g.name, { error: `${err.message}${err.hint ? ` (${err.hint})` : ""}` });
    }
    if (source) {
      try {
        metrics = await gatherMetrics(source, scaled, state, now);
      } finally {
        if (!options.metrics) await source.close();
      }
    }
  }
  const lastSeen = await heartbeats(config, groups, state);
  const observations = await observing;
  const unreachable = observations.flatMap((o) => (o.status === "unreachable" ? [{ host: o.host, error: o.error }] : []));

  const plan = (options.refreshOnly ? computeRefreshPlan : computePlan)({
    config,
    configDigest: configDigest(config),
    configCommit: await configCommit(config),
    state,
    observations,
    decide: decideWith([
      ...(options.sources ?? []),
      ...(hasAutoscalerSource(options.sources) ? [] : await kubernetesSources(config)),
      policySource({ metrics, history: (g) => state?.groups.find((x) => x.name === g)?.history ?? emptyHistory(), now }),
      configSource,
    ]),
    ...(lastSeen ? { lastSeen } : {}),
    now,
    newLineage: randomUUID(),
    newUuid: options.newUuid ?? randomUUID,
    targets: options.targets,
    ttlSeconds: options.ttlSeconds,
    ...(options.replace?.length ? { replace: options.replace } : {}),
  });
  for (const [group, m] of metrics) if ("error" in m) plan.warnings.push(`group ${group}: metrics unavailable, keeping its size: ${m.error}`);
  return { plan, unreachable };
}
