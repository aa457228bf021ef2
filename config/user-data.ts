/**
 * cloud-init user-data in the config: `${env:NAME}` placeholders (secrets are filled only at apply, never stored),
 * and the lint that refuses literal passwords in #cloud-config. Issues point at the exact line of an inline block.
 */
import { isMap, isScalar, isSeq, parseDocument } from "yaml";
import { PremiscaleError, type ConfigIssue } from "./errors.js";
import { quote } from "./schema-issues.js";
import { fmtPath, type Pos, type Seg, type Source } from "./yaml-source.js";

/** `${env:NAME}` placeholders; the name group is checked separately so a bad name gets its own message. */
const PLACEHOLDER = /\$\{env:([^}]*)\}/g;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const WHOLE_PLACEHOLDER = /^\$\{env:[A-Z_][A-Z0-9_]*\}$/;
const SECRET_RULE = "secrets must be $ENV references, e.g. ${env:WEB_PASSWORD}";

/** Locates offsets inside user-data: inline literal blocks map to their exact config line, files to the field. */
function userDataLocator(src: Source, segs: Seg[], text: string, file?: string): (offset: number) => { pos: Pos; where: string } {
  const fieldPos = src.at(segs);
  const node = src.node(segs);
  return (offset) => {
    const before = text.slice(0, offset).split("\n");
    const lineIndex = before.length - 1;
    const col = (before[lineIndex] ?? "").length;
    if (file) return { pos: fieldPos, where: ` (${file}:${lineIndex + 1}:${col + 1})` };
    if (isScalar(node) && node.type === "BLOCK_LITERAL" && node.range) {
      const srcLine = src.pos(node.range[0]).line + 1 + lineIndex;
      const written = src.lines[srcLine - 1];
      const valueLine = text.split("\n")[lineIndex] ?? "";
      if (written !== undefined && written.endsWith(valueLine)) {
        return { pos: { line: srcLine, column: written.length - valueLine.length + col + 1 }, where: "" };
      }
    }
    return { pos: fieldPos, where: "" };
  };
}

/** Offsets of literal secrets in a #cloud-config document (never their values), with what they set. */
function literalSecrets(userData: string): { offset: number; what: string }[] | string {
  const doc = parseDocument(userData);
  if (doc.errors.length) return doc.errors[0]?.message.split("\n")[0] ?? "invalid YAML";
  const found: { offset: number; what: string }[] = [];
  const check = (value: unknown, what: string, ok: (s: string) => boolean = (s) => WHOLE_PLACEHOLDER.test(s)): void => {
    if (!isScalar(value) || value.value === null || value.value === "" || !value.range) return;
    if (typeof value.value !== "string" || !ok(value.value.trim())) found.push({ offset: value.range[0], what });
  };
  // chpasswd.list's old form is "user:password" lines; RANDOM/R ask cloud-init to generate one.
  const checkLines = (value: unknown): void =>
    check(value, "chpasswd.list", (s) =>
      s.split("\n").every((line) => {
        const pw = line.slice(line.indexOf(":") + 1).trim();
        return !line.trim() || WHOLE_PLACEHOLDER.test(pw) || pw === "RANDOM" || pw === "R";
      }),
    );
  const walk = (node: unknown, ctx: "root" | "users" | "chpasswd" | "other"): void => {
    if (isSeq(node)) {
      for (const item of node.items) {
        if (ctx === "chpasswd" && isScalar(item)) checkLines(item);
        else walk(item, ctx === "root" ? "other" : ctx);
      }
    } else if (isMap(node)) {
      for (const { key, value } of node.items) {
        const k = isScalar(key) ? String(key.value) : "";
        if (k === "plain_text_passwd") check(value, k);
        else if (k === "password" && ctx !== "other") check(value, ctx === "root" ? "password" : `${ctx} password`);
        else if (ctx === "root" && (k === "users" || k === "chpasswd")) walk(value, k);
        else if (ctx === "chpasswd" && k === "list" && isScalar(value)) checkLines(value);
        else walk(value, ctx === "root" ? "other" : ctx);
      }
    }
  };
  walk(doc.contents, "root");
  return found;
}

/** Placeholders, missing variables and literal secrets of one group's user-data. */
export function userDataIssues(src: Source, segs: Seg[], text: string, env: Record<string, string | undefined> | null, file?: string): { issues: ConfigIssue[]; names: string[] } {
  const locate = userDataLocator(src, segs, text, file);
  const field = fmtPath(segs);
  const issues: ConfigIssue[] = [];
  const names = new Set<string>();
  const push = (offset: number, message: string, fix: string): void => {
    const { pos, where } = locate(offset);
    issues.push({ file: src.file, ...pos, path: field, message: message + where, fix });
  };
  for (const m of text.matchAll(PLACEHOLDER)) {
    const name = m[1] ?? "";
    if (!ENV_NAME.test(name)) {
      push(m.index, `invalid placeholder ${quote(m[0])}: the name must match ${ENV_NAME.source}`, "use upper-case letters, digits and _, e.g. ${env:WEB_PASSWORD}");
    } else if (!names.has(name)) {
      names.add(name);
      if (env && env[name] === undefined) push(m.index, `environment variable ${name} is not set (used in ${field})`, `export ${name}=… before running premiscale`);
    }
  }
  if (/^#cloud-config[ \t]*(\r?\n|$)/.test(text)) {
    const secrets = literalSecrets(text);
    if (typeof secrets === "string") push(0, `user-data starts with #cloud-config but is not valid YAML: ${secrets}`, "fix the YAML; cloud-init would ignore it");
    else for (const s of secrets) push(s.offset, `${s.what} is a literal value; ${SECRET_RULE}`, "put the secret in an environment variable and write ${env:NAME} instead");
  }
  return { issues, names: [...names].sort() };
}

/**
 * Fills `${env:NAME}` placeholders from `env`, for whoever hands user-data to a guest. A variable that is not
 * set is an error rather than an empty string, so a guest never boots with a blank password.
 */
export function substituteEnv(text: string, env: Record<string, string | undefined>): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => {
    const value = ENV_NAME.test(name) ? env[name] : undefined;
    if (value === undefined) throw new PremiscaleError(`environment variable ${name} is not set (${whole} in user-data)`, "config_env_missing", `export ${name}=… and run again`);
    return value;
  });
}
