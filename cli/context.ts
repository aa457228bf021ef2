import { PremiscaleError } from "../config/errors.js";
import { loadConfig } from "../pipeline/config.js";
import type { Config } from "../config/types.js";
import { makeProvider } from "../providers/index.js";
import type { Provider } from "../providers/provider.js";
import { makePlan as planWith, type PlanRunOptions } from "../pipeline/make-plan.js";
import { GitStateStore } from "../state/git-state-store.js";
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
  if (config.groups.length === 0 && config.gitops.repo) {
    throw new PremiscaleError(
      `${config.file} only bootstraps premiscale reconcile (gitops.repo is set; it has no groups): the config is ${config.gitops.path} in ${config.gitops.repo}`,
      "bootstrap_config",
      "run premiscale reconcile with this file, or run plan and apply with the config in the repository (-c)",
    );
  }
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

/** Plans for the context's config and hosts (see pipeline/make-plan.ts). */
export function makePlan(ctx: Context, state: State | null, options: PlanRunOptions): ReturnType<typeof planWith> {
  return planWith(ctx.config, ctx.providers, state, options);
}

export { configCommit, configDigest, type PlanRunOptions } from "../pipeline/make-plan.js";
export { journalPath, runtimeDir } from "../pipeline/prepare-apply.js";
