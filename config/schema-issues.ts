/**
 * ajv's errors in the config's own words: each one becomes a `ConfigIssue` with the YAML line:column, the field's
 * path, what was wrong and what to write instead ("did you mean …?").
 */
import type { ErrorObject } from "ajv";
import { closest } from "./closest.js";
import type { ConfigIssue } from "./errors.js";
import { ABSOLUTE_PATH_PATTERN, ENV_NAME_PATTERN, NAME_PATTERN } from "./schema.js";
import { fmtPath, type Seg, type Source } from "./yaml-source.js";

export { quote, show } from "./show.js";
import { quote, SHOW_CHARS, show } from "./show.js";
const TYPE_WORDS: Record<string, string> = {
  integer: "an integer",
  number: "a number",
  string: "a string",
  array: "a list",
  object: "a mapping",
  boolean: "true or false",
};
/** "did you mean "x"? " when a close name exists, else "". */
export const didYouMean = (near: string | undefined): string => (near ? `did you mean ${quote(near)}? ` : "");

/** The schema of the value at `segs`, for descriptions in fixes. */
function schemaAt(schema0: Record<string, unknown>, segs: readonly Seg[]): Record<string, unknown> | undefined {
  let schema: Record<string, unknown> | undefined = schema0;
  for (const seg of segs) {
    schema = (typeof seg === "number" ? schema?.items : (schema?.properties as Record<string, unknown> | undefined)?.[seg]) as Record<string, unknown> | undefined;
  }
  return schema;
}

/** One ajv error as a human issue, or undefined for errors that only repeat another (`if`). */
export function schemaIssue(src: Source, schema: Record<string, unknown>, e: ErrorObject): ConfigIssue | undefined {
  const segs: Seg[] = e.instancePath
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const p = e.params as Record<string, unknown>;
  const parent = (e.parentSchema ?? {}) as { properties?: Record<string, unknown> };
  const got = `got ${show(e.data)}`;
  switch (e.keyword) {
    case "if":
      return undefined;
    case "anyOf": {
      const branches = ((e.schema as { description?: string }[] | undefined) ?? []).map((b) => b.description).filter(Boolean);
      return src.issue(segs, `must be ${branches.length ? branches.map((d) => d!.replace(/\.$/, "").toLowerCase()).join(" or ") : "one of the allowed forms"}, ${got}`);
    }
    case "additionalProperties": {
      const field = String(p.additionalProperty);
      const allowed = Object.keys(parent.properties ?? {});
      return src.issue([...segs, field], `unknown field ${quote(field)}`, `${didYouMean(closest(field, allowed))}allowed fields: ${allowed.join(", ")}`, true);
    }
    case "required": {
      const field = String(p.missingProperty);
      const description = schemaAt(schema, [...segs, field])?.description;
      const issue = src.issue(segs, `missing required field ${quote(field)}`, `add ${field}${typeof description === "string" ? ` (${description})` : ""}`);
      return { ...issue, path: fmtPath([...segs, field]) };
    }
    case "type":
      return src.issue(segs, `must be ${TYPE_WORDS[String(p.type)] ?? String(p.type)}, ${got}`, segs.length ? undefined : "start from examples/basic.yaml");
    case "enum": {
      const allowed = (p.allowedValues as unknown[]).map(String);
      const near = typeof e.data === "string" ? closest(e.data, allowed) : undefined;
      return src.issue(segs, `must be one of ${allowed.map(quote).join(", ")}, ${got}`, near ? `did you mean ${quote(near)}?` : undefined);
    }
    case "const":
      return src.issue(segs, `must be ${show(p.allowedValue)}, ${got}`, `write ${fmtPath(segs)}: ${String(p.allowedValue)}`);
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return src.issue(segs, `must be ${String(p.comparison)} ${String(p.limit)}, ${got}`);
    case "minItems":
      return src.issue(segs, `must list at least ${String(p.limit)} item${p.limit === 1 ? "" : "s"}`);
    case "uniqueItems": {
      const dup = Math.max(Number(p.i), Number(p.j));
      const value = Array.isArray(e.data) ? e.data[dup] : undefined;
      return src.issue([...segs, dup], `lists ${show(value)} twice`, "remove the duplicate");
    }
    case "minLength":
      return src.issue(segs, "must not be empty");
    case "maxLength":
      return src.issue(segs, `must be at most ${String(p.limit)} characters, ${got}`);
    case "pattern":
      if (p.pattern === NAME_PATTERN) {
        // Cut to 40 characters, the shortest limit of a name (groups'), so the suggestion is itself a valid name.
        const better = trimDashes(trimDashes(String(e.data).toLowerCase().replace(/[^a-z0-9-]+/g, "-")).slice(0, 40));
        return src.issue(segs, `must be lowercase letters, digits and "-", starting and ending with a letter or digit, ${got}`, better ? `e.g. ${quote(better)}` : undefined);
      }
      if (p.pattern === ABSOLUTE_PATH_PATTERN) return src.issue(segs, `must be an absolute path on the host, ${got}`);
      if (p.pattern === ENV_NAME_PATTERN) {
        const better = String(e.data).toUpperCase().replace(/[^A-Z0-9_]+/g, "_").replace(/^(?=[0-9])/, "_").slice(0, SHOW_CHARS);
        return src.issue(segs, `must be the name of an environment variable (capital letters, digits and "_", not starting with a digit), ${got}`, `e.g. ${quote(better)}`);
      }
      return src.issue(segs, `must match ${String(p.pattern)}, ${got}`);
    default:
      return src.issue(segs, `${e.message ?? "is invalid"}, ${got}`);
  }
}

/** `s` without leading and trailing dashes; a loop, because /-+$/ backtracks over a long inner run of dashes. */
function trimDashes(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && s[start] === "-") start++;
  while (end > start && s[end - 1] === "-") end--;
  return s.slice(start, end);
}
