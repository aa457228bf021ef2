/**
 * The config as every command reads it: `config/load.ts` with the fragments of every provider kind premiscale
 * knows (providers/index.ts), so config/ never imports providers/.
 */
import { loadConfig as loadWith, parseConfig as parseWith } from "../config/load.js";
import type { Config } from "../config/types.js";
import { configFragments } from "../providers/index.js";

/** Reads, validates and normalises a config file (see config/load.ts); throws a `ConfigError` with every issue. */
export function loadConfig(file: string, env: Record<string, string | undefined> = process.env, options: { checkEnv?: boolean } = {}): Promise<Config> {
  return loadWith(file, env, { ...options, kinds: configFragments });
}

/** Parses config text (see config/load.ts `parseConfig`). */
export function parseConfig(text: string, file: string, env: Record<string, string | undefined>, readFile: (absPath: string) => string, options: { checkEnv?: boolean } = {}): Config {
  return parseWith(text, file, env, readFile, { ...options, kinds: configFragments });
}

export { configNotices, issueAt } from "../config/load.js";
