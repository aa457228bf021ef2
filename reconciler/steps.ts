/**
 * The real steps of a reconcile pass, built from the planner, the applier and the git state store, with providers
 * from an injected factory (libvirt in the daemon, `FakeProvider` in tests). The engine (reconcile.ts) only sees the
 * `ReconcileSteps` port, so it is tested with these or with anything else.
 */
import { createHash, randomUUID } from "node:crypto";
import { join, relative } from "node:path";
import { applyPlan, type ApplyDeps, type ApplyEvent, type ApplyResult } from "../applier/apply-plan.js";
import { loadConfig } from "../config/load.js";
import type { Config, HostConfig } from "../config/types.js";
import { computePlan } from "../planner/compute-plan.js";
import type { Plan } from "../planner/plan.js";
import { decideFromConfig } from "../policies/static.js";
import type { HostObservation, KnownInstance, Provider } from "../providers/provider.js";
import { GitStateStore } from "../state/git-state-store.js";
import type { StateLock, StateStore } from "../state/state-store.js";
import type { State } from "../state/types.js";

/** A plan and the hosts that could not be observed for it. */
export interface PlanOutcome {
  plan: Plan;
  unreachable: { host: string; error: string }[];
}

/** What the engine needs to turn a config into a plan and a plan into changes. */
export interface ReconcileSteps {
  /** Loads and validates the config from the clone; throws a `PremiscaleError` (e.g. `ConfigError`) when invalid. */
  loadConfig(repoDir: string): Promise<Config>;
  openState(config: Config): StateStore;
  plan(config: Config, state: State | null, o: { targets: string[] | null; now: Date; configCommit: string; configDigest: string }): Promise<PlanOutcome>;
  apply(config: Config, plan: Plan, lock: StateLock, o: { signal?: AbortSignal; onEvent: (e: ApplyEvent) => void }): Promise<ApplyResult>;
}

/** Options of `localSteps`. */
export interface LocalStepsOptions {
  /** The config file's path inside the repository. @default "premiscale.yaml" */
  configFile?: string;
  /** Makes the provider of a host (`makeProvider` from providers/ in the daemon). */
  makeProvider: (host: HostConfig) => Provider;
  /** Environment for `${env:NAME}` secrets. @default process.env */
  env?: Record<string, string | undefined>;
  /** @default 10 */
  parallelism?: number;
  /** @default 60000 */
  shutdownTimeoutMs?: number;
  /** How long a plan stays applicable (review mode: until merged). @default 86400 */
  planTtlSeconds?: number;
  /** @default randomUUID */
  newUuid?: () => string;
  /**
   * More of the applier's dependencies for a config: the check-in server's `readiness` (needed when a group waits
   * for check-ins) and the apply `journal`.
   */
  applyDeps?: (config: Config) => Partial<ApplyDeps>;
}

/**
 * The steps on the real planner, applier and state store. Providers are kept across passes (their sessions stay
 * open) and remade when a host's config changes; `close()` ends them.
 */
export function localSteps(opts: LocalStepsOptions): ReconcileSteps & { close(): Promise<void> } {
  const env = opts.env ?? process.env;
  const providers = new Map<string, { key: string; provider: Provider }>();
  const providerFor = (h: HostConfig): Provider => {
    const key = JSON.stringify(h);
    const cached = providers.get(h.name);
    if (cached?.key === key) return cached.provider;
    if (cached) void cached.provider.close().catch(() => undefined);
    const provider = opts.makeProvider(h);
    providers.set(h.name, { key, provider });
    return provider;
  };

  return {
    loadConfig: (repoDir) => loadConfig(join(repoDir, opts.configFile ?? "premiscale.yaml"), env, { checkEnv: true }),
    openState: (config) => new GitStateStore(config.state.path),
    async plan(config, state, o) {
      const groups = o.targets ? config.groups.filter((g) => o.targets!.includes(g.name)) : config.groups;
      const hostNames = new Set(groups.flatMap((g) => g.hosts));
      for (const g of state?.groups ?? []) if (groups.some((x) => x.name === g.name)) for (const i of g.instances) hostNames.add(i.host);
      const hosts = config.hosts.filter((h) => hostNames.has(h.name));
      const observations = await Promise.all(hosts.map((h) => providerFor(h).observe(knownOn(h.name, state))));
      const plan = computePlan({
        config,
        configDigest: o.configDigest,
        configCommit: o.configCommit,
        state,
        observations,
        decisions: decideFromConfig(config),
        now: o.now,
        newLineage: randomUUID(),
        newUuid: opts.newUuid ?? randomUUID,
        targets: o.targets,
        ttlSeconds: opts.planTtlSeconds ?? 86_400,
      });
      return { plan, unreachable: unreachableOf(observations) };
    },
    async apply(config, plan, lock, o) {
      return applyPlan(
        plan,
        {
          providers: new Map(config.hosts.map((h) => [h.name, providerFor(h)])),
          lock,
          hostLimits: new Map(config.hosts.map((h) => [h.name, h.maxParallel])),
          env,
          ...(opts.applyDeps?.(config) ?? {}),
        },
        { parallelism: opts.parallelism ?? 10, shutdownTimeoutMs: opts.shutdownTimeoutMs ?? 60_000, signal: o.signal, onEvent: o.onEvent },
      );
    },
    async close() {
      await Promise.all([...providers.values()].map((p) => p.provider.close().catch(() => undefined)));
      providers.clear();
    },
  };
}

/**
 * sha256 of the normalised config with its paths made relative to the repository, so a plan made in one clone
 * (one machine's work directory) is recognised in another.
 */
export function portableConfigDigest(config: Config, repoDir: string): string {
  const portable = { ...config, file: relative(repoDir, config.file), state: { ...config.state, path: relative(repoDir, config.state.path) } };
  return createHash("sha256").update(JSON.stringify(portable)).digest("hex");
}

function knownOn(host: string, state: State | null): Map<string, KnownInstance> {
  const known = new Map<string, KnownInstance>();
  for (const g of state?.groups ?? []) {
    for (const i of g.instances) if (i.host === host) known.set(i.name, { uuid: i.uuid, group: g.name, lineage: state!.lineage, createdAt: i.created });
  }
  return known;
}

function unreachableOf(observations: HostObservation[]): { host: string; error: string }[] {
  return observations.flatMap((o) => (o.status === "unreachable" ? [{ host: o.host, error: o.error }] : []));
}
