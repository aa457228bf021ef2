/**
 * cloud-init user-data in the config: `${env:NAME}` placeholders (secrets are filled only at apply, never stored),
 * and the lint that refuses literal passwords in #cloud-config. Issues point at the exact line of an inline block.
 */
import { isMap, isScalar, isSeq, parseDocument } from "yaml";
import { PremiscaleError, type ConfigIssue } from "./errors.js";
import { quote } from "./schema-issues.js";
import { DUPLICATE_KEY, duplicateKeys, fmtPath, type Pos, type Seg, type Source } from "./yaml-source.js";

const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const WHOLE_PLACEHOLDER = /^\$\{env:[A-Z_][A-Z0-9_]*\}$/;
const SECRET_RULE = "secrets must be $ENV references, e.g. ${env:WEB_PASSWORD}";

/**
 * The `${env:…}` placeholders of `text`: everything from `${env:` to the next `}`. The name is checked separately,
 * so a bad name gets its own message. A scan rather than the regex /\$\{env:([^}]*)\}/g, which finds the same but
 * retries at every `${env:` with no `}` after it: seconds for a user-data holding 40,000 of them.
 */
function* placeholders(text: string): Generator<{ index: number; whole: string; name: string }> {
  for (let from = 0; ; ) {
    const index = text.indexOf("${env:", from);
    const close = index === -1 ? -1 : text.indexOf("}", index + 6);
    if (close === -1) return;
    yield { index, whole: text.slice(index, close + 1), name: text.slice(index + 6, close) };
    from = close + 1;
  }
}

/** Locates offsets inside user-data: inline literal blocks map to their exact config line, files to the field. */
function userDataLocator(src: Source, segs: Seg[], text: string, file?: string): (offset: number) => { pos: Pos; where: string } {
  const fieldPos = src.at(segs);
  const node = src.node(segs);
  // Split once: splitting per issue was quadratic, half a minute for 40,000 bad placeholders on their own lines.
  const lines = text.split("\n");
  const starts = [0];
  for (const line of lines.slice(0, -1)) starts.push((starts.at(-1) ?? 0) + line.length + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if ((starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    const lineIndex = lo;
    const col = offset - (starts[lineIndex] ?? 0);
    if (file) return { pos: fieldPos, where: ` (${file}:${lineIndex + 1}:${col + 1})` };
    if (isScalar(node) && node.type === "BLOCK_LITERAL" && node.range) {
      const srcLine = src.pos(node.range[0]).line + 1 + lineIndex;
      const written = src.lines[srcLine - 1];
      const valueLine = lines[lineIndex] ?? "";
      if (written !== undefined && written.endsWith(valueLine)) {
        return { pos: { line: srcLine, column: written.length - valueLine.length + col + 1 }, where: "" };
      }
    }
    return { pos: fieldPos, where: "" };
  };
}

/** Offsets of literal secrets in a #cloud-config document (never their values), with what they set. */
function literalSecrets(userData: string): { offset: number; what: string }[] | string {
  const doc = parseDocument(userData, { uniqueKeys: false });
  const duplicates = duplicateKeys(doc);
  if (duplicates.length) {
    // The first in the text, as yaml words its own errors here: "… at line L, column C:".
    const before = userData.slice(0, duplicates.reduce((a, b) => Math.min(a, b))).split("\n");
    return `${DUPLICATE_KEY} at line ${before.length}, column ${(before.at(-1) ?? "").length + 1}:`;
  }
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
  for (const { index, whole, name } of placeholders(text)) {
    if (!ENV_NAME.test(name)) {
      push(index, `invalid placeholder ${quote(whole)}: the name must match ${ENV_NAME.source}`, "use upper-case letters, digits and _, e.g. ${env:WEB_PASSWORD}");
    } else if (!names.has(name)) {
      names.add(name);
      if (env && env[name] === undefined) push(index, `environment variable ${name} is not set (used in ${field})`, `export ${name}=… before running premiscale`);
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
  let out = "";
  let last = 0;
  for (const { index, whole, name } of placeholders(text)) {
    const value = ENV_NAME.test(name) ? env[name] : undefined;
    if (value === undefined) throw new PremiscaleError(`environment variable ${name} is not set (${whole} in user-data)`, "config_env_missing", `export ${name}=… and run again`);
    out += text.slice(last, index) + value;
    last = index + whole.length;
  }
  return out + text.slice(last);
}
