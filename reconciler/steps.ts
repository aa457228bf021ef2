/**
 * The real steps of a reconcile pass: plan through the shared pipeline (pipeline/make-plan.ts, the same `makePlan` as
 * `premiscale plan`), apply with the same deps as `premiscale apply` (pipeline/prepare-apply.ts: journal, readiness, host
 * limits), state in the `GitStateStore`, providers from an injected factory (libvirt in the daemon,
 * `FakeProvider` in tests). The engine (reconcile.ts) only sees the `ReconcileSteps` port.
 */
import { join } from "node:path";
import { applyPlan, commitRecommendations, type ApplyEvent, type ApplyResult } from "../applier/apply-plan.js";
import type { InterruptedApply } from "../applier/journal.js";
import { loadConfig } from "../pipeline/config.js";
import type { Config, HostConfig } from "../config/types.js";
import type { MetricsSource } from "../metrics/types.js";
import type { Plan } from "../planner/plan.js";
import type { Provider } from "../providers/provider.js";
import type { ServerLogLine } from "../server/check-in-server.js";
import { GitStateStore } from "../state/git-state-store.js";
import type { StateLock, StateStore } from "../state/state-store.js";
import type { State } from "../state/types.js";
import { makePlan } from "../pipeline/make-plan.js";
import { interruptedApplies, prepareApply } from "../pipeline/prepare-apply.js";

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
  plan(config: Config, state: State | null, o: { targets: string[] | null; now: Date }): Promise<PlanOutcome>;
  apply(config: Config, plan: Plan, lock: StateLock, o: { signal?: AbortSignal; onEvent: (e: ApplyEvent) => void }): Promise<ApplyResult>;
  /**
   * A plan without changes may still carry new recommendations of policy-driven groups (stabilisation windows read
   * them): writes them to state and commits, only when they changed. Returns the commit, or null.
   */
  recordRecommendations?(plan: Plan, state: State | null, lock: StateLock, now: Date): Promise<string | null>;
}

/** Something the steps tell besides apply events: an earlier apply found interrupted, the check-in server. */
export type StepNotice =
  | { type: "interrupted_apply"; apply: InterruptedApply }
  | { type: "readiness"; mode: "own" | "shared" }
  | { type: "checkin_server"; line: ServerLogLine };

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
  /** The metrics source for policy-driven groups; default: the one the config names, opened per plan. */
  metrics?: MetricsSource;
  onNotice?: (n: StepNotice) => void;
}

/**
 * The steps on the real planner, applier and state store. Providers are kept across passes (their sessions stay
 * open) and remade when a host's config changes; `close()` ends them.
 */
export function localSteps(opts: LocalStepsOptions): ReconcileSteps & { close(): Promise<void> } {
  const env = opts.env ?? process.env;
  const notice = (n: StepNotice) => {
    try {
      opts.onNotice?.(n);
    } catch {
      // A broken listener must not break the pass.
    }
  };
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
  const providersOf = (config: Config) => new Map(config.hosts.map((h) => [h.name, providerFor(h)]));

  return {
    loadConfig: (repoDir) => loadConfig(join(repoDir, opts.configFile ?? "premiscale.yaml"), env, { checkEnv: true }),
    openState: (config) => new GitStateStore(config.state.path),
    plan: (config, state, o) =>
      makePlan(config, providersOf(config), state, {
        targets: o.targets,
        now: o.now,
        ttlSeconds: opts.planTtlSeconds ?? 86_400,
        env,
        ...(opts.metrics ? { metrics: opts.metrics } : {}),
        ...(opts.newUuid ? { newUuid: opts.newUuid } : {}),
      }),
    async apply(config, plan, lock, o) {
      for (const apply of interruptedApplies(config)) notice({ type: "interrupted_apply", apply });
      const prepared = await prepareApply(config, plan, { providers: providersOf(config), lock, env, serverLog: (line) => notice({ type: "checkin_server", line }) });
      if (prepared.readiness) notice({ type: "readiness", mode: prepared.readiness });
      let ended = false;
      try {
        const result = await applyPlan(plan, prepared.deps, {
          parallelism: opts.parallelism ?? 10,
          shutdownTimeoutMs: opts.shutdownTimeoutMs ?? 60_000,
          signal: o.signal,
          onEvent: o.onEvent,
        });
        ended = true;
        return result;
      } finally {
        await prepared.close(ended);
      }
    },
    async recordRecommendations(plan, _state, lock, now) {
      return commitRecommendations(plan, lock, now);
    },
    async close() {
      await Promise.all([...providers.values()].map((p) => p.provider.close().catch(() => undefined)));
      providers.clear();
    },
  };
}
