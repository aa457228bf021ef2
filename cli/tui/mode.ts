/** How progress is shown: a live terminal view, plain lines, or one JSON object per line. */
export type ReporterMode = "tui" | "plain" | "json";

/** True when `env` says we run in CI (`CI` or `CONTINUOUS_INTEGRATION` set, and not "0"/"false"), as Ink reads it. */
export function isCI(env: Record<string, string | undefined>): boolean {
  const set = (name: string) => env[name] !== undefined && env[name] !== "0" && env[name] !== "false";
  return set("CI") || set("CONTINUOUS_INTEGRATION");
}

/**
 * Picks the mode: `--json` wins; otherwise the live view only on a real terminal outside CI (Ink writes cursor
 * escapes even into pipes and CI logs), and plain lines everywhere else, including `TERM=dumb`.
 */
export function chooseMode(opts: { json?: boolean; isTTY: boolean | undefined; ci: boolean; term?: string | undefined }): ReporterMode {
  if (opts.json) return "json";
  if (!opts.isTTY || opts.ci || opts.term === "dumb") return "plain";
  return "tui";
}
