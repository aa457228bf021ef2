import type { MetricName } from "../config/scaling.js";
import { MetricsError } from "./types.js";

const VARIABLE = /\{\{\s*([A-Za-z]+)\s*\}\}/g;

/** Replaces `{{name}}` in a query template; every variable must be in `vars`. */
export function renderTemplate(template: string, vars: Record<string, string>): string {
  return template.replace(VARIABLE, (_, name: string) => vars[name] ?? `{{${name}}}`);
}

/** Refuses templates that use variables the source does not know (a typo would otherwise reach the server). */
export function checkTemplates(source: string, queries: Partial<Record<MetricName, string>>, known: readonly string[]): void {
  for (const [metric, t] of Object.entries(queries)) {
    for (const m of (t ?? "").matchAll(VARIABLE)) {
      if (!known.includes(m[1]!)) {
        throw new MetricsError(
          source,
          `queries.${metric} uses the unknown variable {{${m[1]}}}`,
          `the variables are ${known.map((k) => `{{${k}}}`).join(", ")}`,
          { code: "metrics_bad_template" },
        );
      }
    }
  }
}

/** Escapes a name for a regular expression (RE2 and Go's regexp: the same metacharacters). */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
