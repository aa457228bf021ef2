/**
 * Reads a config file into the normalised `Config`: YAML syntax, then the JSON Schema (schema.ts, which also
 * supplies the defaults), then normalisation and the rules that span fields. Every problem becomes a
 * `ConfigIssue` with the YAML line:column; all of a stage's issues are thrown together as one `ConfigError`.
 * Later stages only run when earlier ones passed, because they rely on the shape the schema guarantees.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import { readFile as readFileAsync } from "node:fs/promises";
import path from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from "yaml";
import { closest } from "./closest.js";
import { ConfigError, PremiscaleError, type ConfigIssue } from "./errors.js";
import { ABSOLUTE_PATH_PATTERN, configSchema, NAME_PATTERN } from "./schema.js";
import { validateScaling } from "../policies/validate.js";
import type { Config, GitopsConfig, GroupConfig, HostConfig, MetricsConfig, MetricsStoreConfig, NetworkingConfig, NicConfig, VmTemplate } from "./types.js";

type Seg = string | number;
interface Pos {
  line: number;
  column: number;
}

/** The file as written, after the schema filled in its defaults. */
interface RawTemplate extends Omit<VmTemplate, "userData" | "secretEnv" | "nic"> {
  nic: { type: NicConfig["type"]; source?: string };
  userData?: string;
  userDataFile?: string;
}
interface RawGroup extends Omit<GroupConfig, "desired" | "template" | "networking"> {
  desired?: number;
  template: RawTemplate;
  networking: { mode: "dhcp" | "static"; addresses?: string[]; prefix?: number; gateway?: string; dns: string[] };
}
interface RawConfig {
  version: Config["version"];
  state: { path: string };
  server: { listen: string; advertiseUrl?: string };
  metrics: { intervalSeconds?: number; store?: Record<string, unknown> & { type: MetricsStoreConfig["type"] } };
  gitops?: Partial<Omit<GitopsConfig, "webhook" | "lock">> & { lock?: { ttlSeconds?: number }; webhook?: { listen?: string; provider?: "github" | "gitlab"; secretEnv: string } };
  hosts: HostConfig[];
  groups: RawGroup[];
}

const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const WHOLE_PLACEHOLDER = /^\$\{env:[A-Z_][A-Z0-9_]*\}$/;
const SECRET_RULE = "secrets must be $ENV references, e.g. ${env:WEB_PASSWORD}";

const URI_SCHEMES = ["qemu", "qemu+ssh", "qemu+tls", "qemu+tcp", "qemu+unix", "qemu+libssh", "qemu+libssh2", "qemu+ext", "test"];

/** Positions of a parsed config's fields, for issues found after loading (see `poolSizeIssues`). */
const sources = new WeakMap<Config, Source>();

/** Dot path as shown to users: `groups[0].template.memoryMiB`. */
function fmtPath(segs: readonly Seg[]): string {
  return segs.reduce<string>((acc, s) => (typeof s === "number" ? `${acc}[${s}]` : acc ? `${acc}.${s}` : s), "");
}

/** The parsed YAML with its line table: turns data paths into line:column. */
class Source {
  readonly lines: string[];
  constructor(
    readonly file: string,
    readonly text: string,
    readonly doc: Document,
    readonly lc: LineCounter,
  ) {
    this.lines = text.split(/\r?\n/);
  }

  /** The node at `segs`, or the nearest ancestor that exists (defaults have no node); `key` prefers the field's key. */
  node(segs: readonly Seg[], key = false): Node | undefined {
    let node: unknown = this.doc.contents;
    let found: Node | undefined = node as Node | undefined;
    for (const [i, seg] of segs.entries()) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        if ((key && i === segs.length - 1) || !pair.value) return pair.key as Node;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === "number" && node.items[seg]) {
        node = node.items[seg];
      } else break;
      found = node as Node;
    }
    return found;
  }

  pos(offset: number): Pos {
    const { line, col } = this.lc.linePos(offset);
    return { line, column: col };
  }

  at(segs: readonly Seg[], key = false): Pos {
    const range = this.node(segs, key)?.range;
    return range ? this.pos(range[0]) : { line: 1, column: 1 };
  }

  issue(segs: readonly Seg[], message: string, fix?: string, key = false): ConfigIssue {
    return { file: this.file, ...this.at(segs, key), path: fmtPath(segs), message, ...(fix ? { fix } : {}) };
  }
}

let validator: ValidateFunction | undefined;
function validate(data: unknown): ErrorObject[] {
  validator ??= new Ajv({ allErrors: true, verbose: true, useDefaults: true }).compile(configSchema);
  return validator(data) ? [] : (validator.errors ?? []);
}

export { closest } from "./closest.js";

const quote = (s: string): string => JSON.stringify(s);
function show(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return typeof v === "string" ? quote(v) : String(v);
}
const TYPE_WORDS: Record<string, string> = {
  integer: "an integer",
  number: "a number",
  string: "a string",
  array: "a list",
  object: "a mapping",
  boolean: "true or false",
};
const didYouMean = (near: string | undefined): string => (near ? `did you mean ${quote(near)}? ` : "");

/** The schema of the value at `segs`, for descriptions in fixes. */
function schemaAt(segs: readonly Seg[]): Record<string, unknown> | undefined {
  let schema: Record<string, unknown> | undefined = configSchema;
  for (const seg of segs) {
    schema = (typeof seg === "number" ? schema?.items : (schema?.properties as Record<string, unknown> | undefined)?.[seg]) as Record<string, unknown> | undefined;
  }
  return schema;
}

/** One ajv error as a human issue, or undefined for errors that only repeat another (`if`). */
function schemaIssue(src: Source, e: ErrorObject): ConfigIssue | undefined {
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
    case "additionalProperties": {
      const field = String(p.additionalProperty);
      const allowed = Object.keys(parent.properties ?? {});
      return src.issue([...segs, field], `unknown field ${quote(field)}`, `${didYouMean(closest(field, allowed))}allowed fields: ${allowed.join(", ")}`, true);
    }
    case "required": {
      const field = String(p.missingProperty);
      const description = schemaAt([...segs, field])?.description;
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
        const better = trimDashes(String(e.data).toLowerCase().replace(/[^a-z0-9-]+/g, "-"));
        return src.issue(segs, `must be lowercase letters, digits and "-", starting and ending with a letter or digit, ${got}`, better ? `e.g. ${quote(better)}` : undefined);
      }
      if (p.pattern === ABSOLUTE_PATH_PATTERN) return src.issue(segs, `must be an absolute path on the host, ${got}`);
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

function byPosition(a: ConfigIssue, b: ConfigIssue): number {
  return a.line - b.line || a.column - b.column;
}

function fail(issues: ConfigIssue[]): never {
  throw new ConfigError([...issues].sort(byPosition));
}

/** Why `uri` is not a libvirt URI premiscale can use, or undefined when it is fine. */
function uriProblem(uri: string): { message: string; fix?: string } | undefined {
  const m = /^([A-Za-z0-9+]+):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(uri);
  const examples = "e.g. qemu:///system, qemu+ssh://admin@kvm1/system or test:///default";
  if (!m) return { message: `${quote(uri)} is not a libvirt URI (scheme://[user@host]/path)`, fix: examples };
  const [, scheme = "", authority = "", p = ""] = m;
  if (!URI_SCHEMES.includes(scheme)) {
    return { message: `unknown libvirt URI scheme ${quote(scheme)}`, fix: `${didYouMean(closest(scheme, URI_SCHEMES))}use one of ${URI_SCHEMES.join(", ")}` };
  }
  if (scheme === "test") {
    if (authority || p.length < 2) return { message: `test URIs must be test:///default or test:///absolute/path/to/driver.xml, got ${quote(uri)}` };
  } else if (p !== "/system" && p !== "/session") {
    return { message: `the path of a qemu URI must be /system or /session, got ${quote(p)}`, fix: examples };
  }
  return undefined;
}

/** IPv4 dotted quad as a number, or undefined. */
function ipv4(s: string): number | undefined {
  const parts = s.split(".");
  if (parts.length !== 4 || !parts.every((x) => /^(0|[1-9]\d{0,2})$/.test(x) && Number(x) <= 255)) return undefined;
  return parts.reduce((acc, x) => acc * 256 + Number(x), 0);
}
const ipString = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
const subnet = (ip: number, prefix: number): number => Math.floor(ip / 2 ** (32 - prefix));

interface Range {
  start: number;
  end: number;
  index: number;
}

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

/** yaml's message for a repeated key, which `duplicateKeys` reports in its place. */
const DUPLICATE_KEY = "Map keys must be unique";

/**
 * Offsets of keys that repeat an earlier scalar key of the same mapping, by yaml's own rule (equal scalar values).
 * Documents are parsed with `uniqueKeys: false` and checked here instead, because yaml compares every key with all
 * those before it: 4 s for a mapping of 20,000 keys, minutes for 100,000. A loop, not a recursion, and aliases are
 * not followed, so neither deep nesting nor alias bombs reach it.
 */
function duplicateKeys(doc: Document): number[] {
  const found: number[] = [];
  const stack: unknown[] = [doc.contents];
  while (stack.length) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Set<unknown>();
      for (const { key, value } of node.items) {
        // NaN is never equal to itself in yaml's check; a Set would call two of them the same.
        if (isScalar(key) && !Number.isNaN(key.value)) {
          if (seen.has(key.value) && key.range) found.push(key.range[0]);
          seen.add(key.value);
        }
        stack.push(key, value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return found;
}

/** Offsets of literal secrets in a #cloud-config document (never their values), with what they set. */
function literalSecrets(userData: string): { offset: number; what: string }[] | string {
  const doc = parseDocument(userData, { uniqueKeys: false });
  if (doc.errors.length) return doc.errors[0]?.message.split("\n")[0] ?? "invalid YAML";
  const duplicates = duplicateKeys(doc);
  if (duplicates.length) {
    // The first in the text, as yaml words its own errors here: "… at line L, column C:".
    const before = userData.slice(0, duplicates.reduce((a, b) => Math.min(a, b))).split("\n");
    return `${DUPLICATE_KEY} at line ${before.length}, column ${(before.at(-1) ?? "").length + 1}:`;
  }
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
function userDataIssues(src: Source, segs: Seg[], text: string, env: Record<string, string | undefined> | null, file?: string): { issues: ConfigIssue[]; names: string[] } {
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

/** Static pool rules of one group: parsed ranges (for cross-group checks) and issues. */
function staticIssues(src: Source, gi: number, g: RawGroup): { ranges: Range[]; issues: ConfigIssue[] } {
  const net = g.networking;
  const segs: Seg[] = ["groups", gi, "networking"];
  const issues: ConfigIssue[] = [];
  const ranges: Range[] = [];
  const prefix = net.prefix ?? 32;
  (net.addresses ?? []).forEach((entry, index) => {
    const [a = "", b, ...rest] = entry.split("-").map((s) => s.trim());
    const start = ipv4(a);
    const end = b === undefined ? start : ipv4(b);
    if (start === undefined || end === undefined || rest.length) {
      issues.push(src.issue([...segs, "addresses", index], `${quote(entry)} is not an IPv4 address or range`, "write a.b.c.d or a.b.c.d-a.b.c.e"));
    } else if (start > end) {
      issues.push(src.issue([...segs, "addresses", index], `range ${quote(entry)} starts after it ends`, `write ${b}-${a}`));
    } else ranges.push({ start, end, index });
  });
  if (net.gateway !== undefined) {
    const gw = ipv4(net.gateway);
    const outside = gw === undefined ? undefined : ranges.find((r) => subnet(r.start, prefix) !== subnet(gw, prefix) || subnet(r.end, prefix) !== subnet(gw, prefix));
    if (gw === undefined) issues.push(src.issue([...segs, "gateway"], `${quote(net.gateway)} is not an IPv4 address`));
    else if (outside) {
      const entry = net.addresses?.[outside.index] ?? "";
      issues.push(src.issue([...segs, "gateway"], `gateway ${net.gateway} is not in the same /${prefix} subnet as ${entry}`, "fix the gateway, the prefix or the addresses"));
    } else if (ranges.some((r) => r.start <= gw && gw <= r.end)) {
      issues.push(src.issue([...segs, "gateway"], `gateway ${net.gateway} is inside the address pool`, "take the gateway out of addresses"));
    }
  }
  net.dns.forEach((d, i) => {
    if (ipv4(d) === undefined) issues.push(src.issue([...segs, "dns", i], `${quote(d)} is not an IPv4 address`));
  });
  const size = [...ranges]
    .sort((x, y) => x.start - y.start)
    .reduce<{ count: number; last: number }>(
      (acc, r) => ({ count: acc.count + Math.max(0, r.end - Math.max(r.start, acc.last + 1) + 1), last: Math.max(acc.last, r.end) }),
      { count: 0, last: -1 },
    ).count;
  if (ranges.length === (net.addresses ?? []).length && size < g.max) {
    issues.push(src.issue([...segs, "addresses"], `the pool has ${size} address${size === 1 ? "" : "es"} but max is ${g.max}`, `add addresses or lower max to ${size}`));
  }
  return { ranges, issues };
}

/** Turns the schema-valid file into a Config, collecting every rule it breaks. */
function normalise(src: Source, raw: RawConfig, env: Record<string, string | undefined> | null, readFile: (absPath: string) => string): { config: Config; issues: ConfigIssue[] } {
  const dir = path.dirname(src.file);
  const issues: ConfigIssue[] = [];
  // A bootstrap for `premiscale reconcile` (gitops.repo) may have neither: the schema allows it only then.
  raw.hosts ??= [];
  raw.groups ??= [];
  const hostNames = raw.hosts.map((h) => h.name);

  const firstIndex = (names: string[], i: number): number => names.indexOf(names[i] ?? "");
  raw.hosts.forEach((h, i) => {
    if (firstIndex(hostNames, i) !== i) {
      issues.push(src.issue(["hosts", i, "name"], `host name ${quote(h.name)} is already used by hosts[${firstIndex(hostNames, i)}]`, "give every host a unique name"));
    }
    const bad = uriProblem(h.uri);
    if (bad) issues.push(src.issue(["hosts", i, "uri"], bad.message, bad.fix));
    else if (h.accelerator === "auto" && /^[a-z]+(\+[a-z0-9]+)?:\/\/[^/]/.test(h.uri)) {
      issues.push(src.issue(["hosts", i, "accelerator"], "accelerator auto is only for hosts on this machine (KVM is proven by booting a kernel here)", "set kvm or qemu for a remote host"));
    }
  });

  const groupNames = raw.groups.map((g) => g.name);
  const pools: { gi: number; ranges: Range[] }[] = [];
  const groups = raw.groups.map((g, gi): GroupConfig => {
    const gs: Seg[] = ["groups", gi];
    if (firstIndex(groupNames, gi) !== gi) {
      issues.push(src.issue([...gs, "name"], `group name ${quote(g.name)} is already used by groups[${firstIndex(groupNames, gi)}]`, "give every group a unique name"));
    }
    const desired = g.desired ?? g.min;
    if (g.min > g.max) issues.push(src.issue([...gs, "min"], `min (${g.min}) is greater than max (${g.max})`, "make min <= max"));
    else if (desired < g.min || desired > g.max) {
      issues.push(src.issue([...gs, "desired"], `desired (${desired}) must be between min (${g.min}) and max (${g.max})`, `set desired to a value from ${g.min} to ${g.max}`));
    }
    g.hosts.forEach((h, hi) => {
      if (!hostNames.includes(h)) {
        issues.push(src.issue([...gs, "hosts", hi], `unknown host ${quote(h)}`, `${didYouMean(closest(h, hostNames))}known hosts: ${hostNames.join(", ")}`));
      }
    });

    const t = g.template;
    const ts: Seg[] = [...gs, "template"];
    if (t.nic.type === "user" && t.nic.source !== undefined) {
      issues.push(src.issue([...ts, "nic", "source"], "source is only used with nic type network or bridge", "remove source, or set type: network or type: bridge", true));
    }
    let userData = t.userData ?? "";
    let secretEnv: string[] = [];
    if (t.userData !== undefined && t.userDataFile !== undefined) {
      issues.push(src.issue([...ts, "userDataFile"], "userData and userDataFile are mutually exclusive", "keep one of them", true));
    } else if (t.userDataFile !== undefined) {
      const abs = path.resolve(dir, t.userDataFile);
      try {
        userData = readFile(abs);
      } catch (err) {
        userData = "";
        const why = err instanceof Error ? err.message : String(err);
        issues.push(src.issue([...ts, "userDataFile"], `cannot read user-data file ${abs}: ${why}`, `check the path; it is relative to ${dir}`));
      }
      if (userData) {
        const r = userDataIssues(src, [...ts, "userDataFile"], userData, env, path.relative(dir, abs));
        issues.push(...r.issues);
        secretEnv = r.names;
      }
    } else if (userData) {
      const r = userDataIssues(src, [...ts, "userData"], userData, env);
      issues.push(...r.issues);
      secretEnv = r.names;
    }

    const net = g.networking;
    let networking: NetworkingConfig = { mode: "dhcp" };
    if (net.mode === "static") {
      const r = staticIssues(src, gi, g);
      issues.push(...r.issues);
      pools.push({ gi, ranges: r.ranges });
      networking = { mode: "static", addresses: net.addresses ?? [], prefix: net.prefix ?? 32, dns: net.dns, ...(net.gateway !== undefined ? { gateway: net.gateway } : {}) };
    } else {
      for (const f of ["addresses", "prefix", "gateway"] as const) {
        if (net[f] !== undefined) issues.push(src.issue([...gs, "networking", f], `${f} is only used with mode: static`, `remove ${f}, or set mode: static`, true));
      }
      if (net.dns.length) issues.push(src.issue([...gs, "networking", "dns"], "dns is only used with mode: static (DHCP supplies DNS servers)", "remove dns, or set mode: static", true));
    }

    const nic: NicConfig = t.nic.type === "user" ? { type: "user" } : { type: t.nic.type, source: t.nic.source ?? "" };
    const template: VmTemplate = { vcpus: t.vcpus, memoryMiB: t.memoryMiB, disk: { ...t.disk }, nic, userData, secretEnv, ...(t.boot ? { boot: { ...t.boot } } : {}) };
    const readiness = { ...g.readiness };
    if (readiness.heartbeatSeconds > 0 && !readiness.checkIn) {
      issues.push(src.issue([...gs, "readiness", "heartbeatSeconds"], "heartbeats need readiness.checkIn: true (they use the check-in's token and server)", "set readiness.checkIn: true, or heartbeatSeconds: 0"));
    } else if (readiness.heartbeatSeconds > 0 && readiness.unhealthyAfterSeconds < 2 * readiness.heartbeatSeconds) {
      issues.push(src.issue([...gs, "readiness", "unhealthyAfterSeconds"], `unhealthyAfterSeconds (${readiness.unhealthyAfterSeconds}) must be at least twice heartbeatSeconds (${readiness.heartbeatSeconds})`, "one late heartbeat must not get a VM replaced"));
    }
    if (readiness.checkIn && userData.trim() && !/^#cloud-config\s*$/m.test(userData.split("\n", 1)[0] ?? "")) {
      issues.push(
        src.issue(
          [...ts, t.userDataFile !== undefined ? "userDataFile" : "userData"],
          "readiness.checkIn needs #cloud-config user-data (premiscale adds phone_home to it), but this user-data is not #cloud-config",
          "start the user-data with #cloud-config, or set readiness.checkIn: false",
        ),
      );
    }
    if (g.scaling) {
      if (g.desired !== undefined) {
        issues.push(src.issue([...gs, "desired"], "desired is decided by the group's scaling policies", "remove desired (policies start from the VMs the group has, within min and max), or remove scaling"));
      }
      for (const si of validateScaling(g.scaling, { min: g.min, max: g.max })) {
        issues.push(src.issue([...gs, "scaling", ...dotPath(si.path)], si.message, si.fix));
      }
    }
    return {
      name: g.name, min: g.min, max: g.max, desired, hosts: [...g.hosts], placement: g.placement, template, networking, readiness,
      suspend: g.suspend ?? false,
      ...(g.scaling ? { scaling: structuredClone(g.scaling) } : {}),
    };
  });

  // A VM's address must be its own: two groups drawing from overlapping pools could hand one address out twice.
  for (const [a, pa] of pools.entries()) {
    for (const pb of pools.slice(a + 1)) {
      for (const rb of pb.ranges) {
        const ra = pa.ranges.find((r) => r.start <= rb.end && rb.start <= r.end);
        if (!ra) continue;
        const shared = ipString(Math.max(ra.start, rb.start));
        issues.push(src.issue(["groups", pb.gi, "networking", "addresses", rb.index], `${shared} is also in the pool of groups[${pa.gi}] (${groupNames[pa.gi]})`, "give each group its own addresses"));
      }
    }
  }

  const config: Config = {
    version: raw.version,
    file: src.file,
    state: { path: path.resolve(dir, raw.state.path) },
    server: serverConfig(src, raw.server, issues),
    metrics: metricsConfig(raw.metrics, dir, path.resolve(dir, raw.state.path)),
    gitops: gitopsConfig(src, raw.gitops, issues),
    hosts: raw.hosts.map((h) => ({ ...h })),
    groups,
  };
  return { config, issues };
}

/** `policies[1].steps[0].lower` → ["policies", 1, "steps", 0, "lower"]. */
function dotPath(p: string): Seg[] {
  return p.split(/\.|\[(\d+)\]/).filter((x) => x !== undefined && x !== "").map((x) => (/^\d+$/.test(x) ? Number(x) : x));
}

/** The metrics block with every default: the embedded store lives in the state directory's local `.premiscale/`. */
function metricsConfig(raw: RawConfig["metrics"], dir: string, stateDir: string): MetricsConfig {
  const st = (raw.store ?? { type: "sqlite" }) as Record<string, unknown> & { type: MetricsStoreConfig["type"] };
  const n = (k: string, d: number) => (typeof st[k] === "number" ? (st[k] as number) : d);
  const t = (k: string, d: string) => (typeof st[k] === "string" ? (st[k] as string) : d);
  const queries = (st.queries ?? {}) as Record<string, string>;
  let store: MetricsStoreConfig;
  if (st.type === "prometheus") {
    store = { type: "prometheus", url: t("url", ""), queries, memberLabel: t("memberLabel", "domain"), stepSeconds: n("stepSeconds", 15), rateWindow: t("rateWindow", "1m"), timeoutSeconds: n("timeoutSeconds", 10) };
  } else if (st.type === "influxdb") {
    store = {
      type: "influxdb", url: t("url", ""), database: t("database", ""), queries, memberTag: t("memberTag", "domain_name"), intervalSeconds: n("intervalSeconds", 15), timeoutSeconds: n("timeoutSeconds", 10),
      ...(typeof st.retentionPolicy === "string" ? { retentionPolicy: st.retentionPolicy } : {}),
      ...(typeof st.username === "string" ? { username: st.username } : {}),
      ...(typeof st.passwordEnv === "string" ? { passwordEnv: st.passwordEnv } : {}),
    };
  } else {
    store = {
      type: "sqlite",
      path: typeof st.path === "string" ? path.resolve(dir, st.path) : path.join(stateDir, ".premiscale", "metrics.db"),
      rawRetentionSeconds: n("rawRetentionSeconds", 86400),
      rollupRetentionSeconds: n("rollupRetentionSeconds", 2592000),
    };
  }
  return { intervalSeconds: raw.intervalSeconds ?? 15, store };
}

/** The gitops block with every default (used by `premiscale reconcile`). */
function gitopsConfig(src: Source, raw: RawConfig["gitops"], issues: ConfigIssue[]): GitopsConfig {
  const g = raw ?? {};
  let webhook: GitopsConfig["webhook"] = null;
  if (g.webhook) {
    const { host, port } = listenAddress(src, ["gitops", "webhook", "listen"], g.webhook.listen ?? "127.0.0.1:8971", issues);
    webhook = { host, port, provider: g.webhook.provider ?? "github", secretEnv: g.webhook.secretEnv };
  }
  return {
    repo: g.repo ?? null,
    branch: g.branch ?? "main",
    path: g.path ?? "premiscale.yaml",
    mode: g.mode ?? "auto",
    intervalSeconds: g.intervalSeconds ?? 60,
    workDir: g.workDir ?? "/var/lib/premiscale/repo",
    planTtlSeconds: g.planTtlSeconds ?? 86400,
    lock: { ttlSeconds: g.lock?.ttlSeconds ?? 300 },
    webhook,
  };
}

/** A `host:port` listen address split (an IPv6 host may be bracketed) and its port checked. */
function listenAddress(src: Source, at: Seg[], listen: string, issues: ConfigIssue[]): { host: string; port: number } {
  const cut = listen.lastIndexOf(":");
  const port = Number(listen.slice(cut + 1));
  if (!(port >= 1 && port <= 65535)) issues.push(src.issue(at, `port ${listen.slice(cut + 1)} is not between 1 and 65535`, `use e.g. 127.0.0.1:${at[0] === "server" ? 8970 : 8971}`));
  return { host: listen.slice(0, cut).replace(/^\[(.*)\]$/, "$1"), port };
}

/** The check-in server's address; the advertised URL defaults to the port as guests on user-mode networking see it. */
function serverConfig(src: Source, raw: RawConfig["server"], issues: ConfigIssue[]): Config["server"] {
  const { host, port } = listenAddress(src, ["server", "listen"], raw.listen, issues);
  return { host, port, advertiseUrl: (raw.advertiseUrl ?? `http://10.0.2.2:${port}`).replace(/\/+$/, "") };
}

/**
 * Parses, validates and normalises config text. `file` is where it came from (made absolute; relative paths in
 * the file resolve against its directory), `env` supplies the `${env:NAME}` variables (only whether they are
 * set is checked), and `readFile` reads `userDataFile`s. Throws one ConfigError with every issue, by line.
 */
export function parseConfig(
  text: string,
  file: string,
  env: Record<string, string | undefined>,
  readFile: (absPath: string) => string,
  options: LoadOptions = {},
): Config {
  const abs = path.resolve(file);
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: false });
  const src = new Source(abs, text, doc, lc);
  const duplicates = duplicateKeys(doc);
  if (doc.errors.length || duplicates.length) {
    fail([
      ...doc.errors.map((e) => ({
        file: abs,
        line: e.linePos?.[0].line ?? 0,
        column: e.linePos?.[0].col ?? 0,
        path: "",
        message:
          e.code === "MULTIPLE_DOCS"
            ? "the file holds more than one YAML document; premiscale reads one"
            : (e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, ""),
        fix: "fix the YAML syntax",
      })),
      ...duplicates.map((offset) => ({ file: abs, ...src.pos(offset), path: "", message: DUPLICATE_KEY, fix: "fix the YAML syntax" })),
    ]);
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // yaml refuses alias bombs here, after parsing succeeded; point at the first alias, where the expansion starts.
    let at = src.at([]);
    visit(doc, {
      Alias(_, node) {
        if (!node.range) return undefined;
        at = src.pos(node.range[0]);
        return visit.BREAK;
      },
    });
    fail([{ file: abs, ...at, path: "", message: err instanceof Error ? err.message : String(err), fix: "use fewer YAML aliases" }]);
  }
  // Repeats are dropped through a set: a search per issue was quadratic, minutes for a list of 100,000 bad items.
  const seen = new Set<string>();
  const schemaIssues = validate(data)
    .map((e) => schemaIssue(src, e))
    .filter((i): i is ConfigIssue => i !== undefined)
    .filter((i) => {
      const key = JSON.stringify([i.path, i.message]);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  if (schemaIssues.length) fail(schemaIssues);
  const { config, issues } = normalise(src, data as RawConfig, options.checkEnv === false ? null : env, readFile);
  if (issues.length) fail(issues);
  sources.set(config, src);
  return config;
}

/** Options of `parseConfig` / `loadConfig`. */
export interface LoadOptions {
  /**
   * Require every `${env:NAME}` of user-data to be set. Only apply needs the secrets; plan, validate and state
   * commands pass false so they run where the secrets are not.
   * @default true
   */
  checkEnv?: boolean;
}

/** Reads and parses a config file (see `parseConfig`); a missing or unreadable file is a ConfigError too. */
export async function loadConfig(file: string, env: Record<string, string | undefined> = process.env, options: LoadOptions = {}): Promise<Config> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = await readFileAsync(abs, "utf8");
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === "ENOENT" ? "does not exist" : code === "EISDIR" ? "is a directory" : `cannot be read (${err instanceof Error ? err.message : String(err)})`;
    throw new ConfigError([
      { file: abs, line: 0, column: 0, path: "", message: `config file ${why}`, fix: "check the path, or start from examples/basic.yaml" },
    ]);
  }
  return parseConfig(text, abs, env, readRegularFile, options);
}

/**
 * Reads a `userDataFile`. Only regular files: a path to a device (`/dev/zero`) or a FIFO, written in the file or
 * reached through a symlink in a config repository, would otherwise block or grow without end. Opened without
 * blocking and checked on the open descriptor, so a FIFO with no writer cannot hang the open either.
 */
function readRegularFile(p: string): string {
  const fd = openSync(p, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw new Error("not a regular file");
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * Groups whose hosts' storage pools together cannot hold `max` disks of `sizeGiB`. Needs live data, so the
 * CLI calls it with what it observed; groups with an unobserved host are skipped rather than guessed.
 */
export function poolSizeIssues(config: Config, pools: Map<string, { capacityBytes: number }>): ConfigIssue[] {
  const src = sources.get(config);
  return config.groups.flatMap((g, gi) => {
    const observed = g.hosts.map((h) => pools.get(h));
    if (observed.some((p) => p === undefined)) return [];
    const capacity = observed.reduce((sum, p) => sum + (p?.capacityBytes ?? 0), 0);
    const needed = g.max * g.template.disk.sizeGiB * 2 ** 30;
    if (capacity >= needed) return [];
    const gib = (b: number): string => (b / 2 ** 30).toFixed(1);
    const message = `the storage pools of ${g.hosts.join(", ")} hold ${gib(capacity)} GiB, but max ${g.max} × ${g.template.disk.sizeGiB} GiB needs ${gib(needed)} GiB`;
    const fix = "lower max or template.disk.sizeGiB, add hosts, or grow the pools";
    const segs = ["groups", gi, "max"];
    return [src ? src.issue(segs, message, fix) : { file: config.file, line: 0, column: 0, path: fmtPath(segs), message, fix }];
  });
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
