import { createHash, randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { simpleGit } from "simple-git";
import { loadConfig } from "../config/load.js";
import type { Config, HostConfig } from "../config/types.js";
import { computePlan } from "../planner/compute-plan.js";
import type { Plan } from "../planner/plan.js";
import { decideFromConfig } from "../policies/static.js";
import { makeProvider } from "../providers/index.js";
import type { HostObservation, KnownInstance, Provider } from "../providers/provider.js";
import { GitStateStore, RUNTIME_DIR } from "../state/git-state-store.js";
import type { State } from "../state/types.js";

/** Where the config is: `-c`, else `PREMISCALE_CONFIG_PATH`, else `./premiscale.yaml`. */
export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.PREMISCALE_CONFIG_PATH ?? "premiscale.yaml";
}

/** The loaded config and the things built from it for one command. */
export interface Context {
  config: Config;
  store: GitStateStore;
  providers: Map<string, Provider>;
  close(): Promise<void>;
}

/** Loads the config and prepares the state store and one provider per host (connections open lazily). */
export async function openContext(file: string, options: { checkEnv: boolean }, env: NodeJS.ProcessEnv = process.env): Promise<Context> {
  const config = await loadConfig(file, env, options);
  const providers = new Map<string, Provider>(config.hosts.map((h) => [h.name, makeProvider(h)]));
  return {
    config,
    store: new GitStateStore(config.state.path),
    providers,
    close: async () => {
      await Promise.all([...providers.values()].map((p) => p.close()));
    },
  };
}

/** Observes the given hosts in parallel; each host has its own timeouts, so a hung one delays only itself. */
export async function observeHosts(
  ctx: Context,
  hosts: HostConfig[],
  state: State | null,
): Promise<HostObservation[]> {
  return Promise.all(
    hosts.map(async (h) => {
      const known = new Map<string, KnownInstance>();
      for (const g of state?.groups ?? []) {
        for (const i of g.instances) {
          if (i.host === h.name) known.set(i.name, { uuid: i.uuid, group: g.name, lineage: state!.lineage, createdAt: i.created });
        }
      }
      return ctx.providers.get(h.name)!.observe(known);
    }),
  );
}

/** This machine's own, never committed files beside the state: journal, server secret, check-in records. */
export function runtimeDir(config: Config): string {
  return join(config.state.path, RUNTIME_DIR);
}

/** The apply journal (see applier/journal.ts). */
export function journalPath(config: Config): string {
  return join(runtimeDir(config), "journal.jsonl");
}

/** sha256 of the normalised config, so a plan records exactly what it was made from. */
export function configDigest(config: Config): string {
  return createHash("sha256").update(JSON.stringify(config)).digest("hex");
}

/** The commit of the repository holding the config file, or null when it is not in one. */
export async function configCommit(config: Config): Promise<string | null> {
  try {
    return (await simpleGit({ baseDir: dirname(config.file) }).revparse(["HEAD"])).trim() || null;
  } catch {
    return null;
  }
}

/** Options of a planning run. */
export interface PlanRunOptions {
  targets: string[] | null;
  ttlSeconds?: number;
  now?: Date;
}

/**
 * Gathers the planner's inputs (state, observations, decisions, clock) and runs it: the thin I/O shell around the
 * pure `computePlan`.
 */
export async function makePlan(ctx: Context, state: State | null, options: PlanRunOptions): Promise<{ plan: Plan; unreachable: { host: string; error: string }[] }> {
  const { config } = ctx;
  const groups = options.targets ? config.groups.filter((g) => options.targets!.includes(g.name)) : config.groups;
  const hostNames = new Set(groups.flatMap((g) => g.hosts));
  // Hosts that hold state instances of targeted groups must be observed too, even if a group no longer lists them.
  for (const g of state?.groups ?? []) {
    if (groups.some((x) => x.name === g.name)) for (const i of g.instances) hostNames.add(i.host);
  }
  const hosts = config.hosts.filter((h) => hostNames.has(h.name));
  const observations = await observeHosts(ctx, hosts, state);
  const unreachable = observations.flatMap((o) => (o.status === "unreachable" ? [{ host: o.host, error: o.error }] : []));
  const plan = computePlan({
    config,
    configDigest: configDigest(config),
    configCommit: await configCommit(config),
    state,
    observations,
    decisions: decideFromConfig(config),
    now: options.now ?? new Date(),
    newLineage: randomUUID(),
    newUuid: randomUUID,
    targets: options.targets,
    ttlSeconds: options.ttlSeconds,
  });
  return { plan, unreachable };
}
