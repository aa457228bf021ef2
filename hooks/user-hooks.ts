/**
 * A group's `lifecycleHooks` from the config as lifecycle hooks for the applier: commands run by command-hook.ts,
 * HTTP calls made by http-hook.ts with the secret read from the environment now, so that a missing secret stops
 * the apply before anything changes.
 */
import { dirname } from "node:path";
import type { LifecycleHook } from "../applier/lifecycle.js";
import { ConfigError, type ConfigIssue } from "../config/errors.js";
import { issueAt } from "../config/load.js";
import type { Config } from "../config/types.js";
import { commandHook } from "./command-hook.js";
import { httpHook } from "./http-hook.js";

/**
 * The users' hooks of each of `groups` (group name → hooks, in config order). `env` is the environment apply runs
 * in: commands inherit it, and each HTTP hook's `secretEnv` is read from it. Throws a `ConfigError` naming every
 * hook whose secret is not set (or empty), with its line:column.
 */
export function userHooks(config: Config, groups: Iterable<string>, env: Record<string, string | undefined>): Map<string, LifecycleHook[]> {
  const dir = dirname(config.file);
  const wanted = new Set(groups);
  const out = new Map<string, LifecycleHook[]>();
  const missing: ConfigIssue[] = [];
  config.groups.forEach((g, gi) => {
    if (!wanted.has(g.name) || g.lifecycleHooks.length === 0) return;
    const hooks: LifecycleHook[] = [];
    g.lifecycleHooks.forEach((h, hi) => {
      if (h.command) {
        hooks.push(commandHook(h, { dir, env }));
        return;
      }
      const secret = env[h.http.secretEnv];
      if (!secret) {
        missing.push(
          issueAt(
            config,
            ["groups", gi, "lifecycleHooks", hi, "http", "secretEnv"],
            `lifecycle hook ${h.name} of group ${g.name} signs its calls with the secret in ${h.http.secretEnv}, which is ${secret === "" ? "empty" : "not set"}`,
            `export ${h.http.secretEnv}=… where premiscale apply runs (the secret the endpoint checks X-Premiscale-Signature-256 with)`,
          ),
        );
        return;
      }
      hooks.push(httpHook(h, { secret }));
    });
    out.set(g.name, hooks);
  });
  if (missing.length > 0) throw new ConfigError(missing);
  return out;
}
