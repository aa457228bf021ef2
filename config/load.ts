/**
 * Reads a config file into the normalised `Config`: YAML syntax, then the JSON Schema (schema.ts, with the fields
 * of the provider kinds passed in), then normalisation and the rules that span fields. Every problem becomes a
 * `ConfigIssue` with the YAML line:column; all of a stage's issues are thrown together as one `ConfigError`.
 * Later stages only run when earlier ones passed, because they rely on the shape the schema guarantees.
 * The jobs are split by file: yaml-source.ts (positions), schema-issues.ts (ajv's errors in words), user-data.ts
 * (placeholders, secret lint, env substitution), static-pool.ts (address maths); each kind's rules are its own.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import { readFile as readFileAsync } from "node:fs/promises";
import path from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { LineCounter, parseDocument, visit } from "yaml";
import { closest } from "./closest.js";
import { cutText } from "./show.js";
import { normaliseGroupKubernetes, normaliseKubernetes } from "./kubernetes-config.js";
import { ConfigError, type ConfigIssue } from "./errors.js";
import type { ProviderConfigFragment } from "./provider-kinds.js";
import { configSchema, DEFAULT_KIND } from "./schema.js";
import { didYouMean, quote, schemaIssue } from "./schema-issues.js";
import { lifecycleHookIssues } from "./lifecycle-hooks.js";
import { ipString, staticIssues, type Range } from "./static-pool.js";
import { userDataIssues } from "./user-data.js";
import { DUPLICATE_KEY, duplicateKeys, fmtPath, Source, type Seg } from "./yaml-source.js";
import { validateScaling } from "./validate-scaling.js";
import type { PremiscaleConfig } from "./schema-types.js";
import type { ScalingSpec } from "./scaling.js";
import type { Config, GitopsConfig, GroupConfig, HostConfig, MetricsConfig, MetricsStoreConfig, NetworkingConfig, VmTemplate, WarmPoolConfig } from "./types.js";

// The document as the schema accepted it, defaults filled: its type is generated from the schema (schema-types.ts).
type RawConfig = PremiscaleConfig;
type RawGroup = NonNullable<RawConfig["groups"]>[number];

/** Positions and notes of a parsed config, for issues found after loading (see `issueAt`, `configNotices`). */
const sources = new WeakMap<Config, { src: Source; notices: ConfigIssue[] }>();

/** Host fields every kind has (the rest of a host's fields belong to its kind). */
const NEUTRAL_HOST_FIELDS = ["name", "kind", "reservedMemoryMiB", "cpuOvercommit", "maxParallel", "callTimeoutSeconds"];
/** Template fields every kind has. */
const NEUTRAL_TEMPLATE_FIELDS = ["vcpus", "memoryMiB", "userData", "userDataFile"];

/** One compiled validator per set of kinds (a process uses one set; tests may use others). */
const validators = new WeakMap<readonly ProviderConfigFragment[], { schema: Record<string, unknown>; validate: ValidateFunction }>();
function validate(kinds: readonly ProviderConfigFragment[], data: unknown): { schema: Record<string, unknown>; errors: ErrorObject[] } {
  let v = validators.get(kinds);
  if (!v) {
    const schema = configSchema(kinds);
    v = { schema, validate: new Ajv({ allErrors: true, verbose: true, useDefaults: true }).compile(schema) };
    validators.set(kinds, v);
  }
  return { schema: v.schema, errors: v.validate(data) ? [] : (v.validate.errors ?? []) };
}

export { closest } from "./closest.js";

function byPosition(a: ConfigIssue, b: ConfigIssue): number {
  return a.line - b.line || a.column - b.column;
}

function fail(issues: ConfigIssue[]): never {
  throw new ConfigError([...issues].sort(byPosition));
}

/** Turns the schema-valid file into a Config, collecting every rule it breaks. */
function normalise(
  src: Source,
  raw: RawConfig,
  env: Record<string, string | undefined> | null,
  readFile: (absPath: string) => string,
  kinds: readonly ProviderConfigFragment[],
  pathVar: string | undefined,
): { config: Config; issues: ConfigIssue[]; notices: ConfigIssue[] } {
  const dir = path.dirname(src.file);
  const issues: ConfigIssue[] = [];
  // A bootstrap for `premiscale reconcile` (gitops.repo) may have neither: the schema allows it only then.
  raw.hosts ??= [];
  raw.groups ??= [];
  const hostNames = raw.hosts.map((h) => h.name);

  const notices: ConfigIssue[] = [];
  const firstIndex = (names: string[], i: number): number => names.indexOf(names[i] ?? "");
  const kindOf = new Map(kinds.map((k) => [k.kind, k]));
  /** Fields that belong to kinds other than `kind`, by field. */
  const ownedElsewhere = (part: "host" | "template", kind: string): Map<string, string[]> => {
    const m = new Map<string, string[]>();
    for (const k of kinds) if (k.kind !== kind) for (const f of Object.keys(k[part].properties)) m.set(f, [...(m.get(f) ?? []), k.kind]);
    return m;
  };
  const contextAt = (base: Seg[]) => ({
    dir,
    issue: (p: Seg[], message: string, fix?: string, key = false) => issues.push(src.issue([...base, ...p], message, fix, key)),
  });
  const hosts = raw.hosts.map((h, i): HostConfig => {
    const hs: Seg[] = ["hosts", i];
    if (firstIndex(hostNames, i) !== i) {
      issues.push(src.issue([...hs, "name"], `host name ${quote(h.name)} is already used by hosts[${firstIndex(hostNames, i)}]`, "give every host a unique name"));
    }
    if (src.node([...hs, "kind"], true) === src.node(hs)) {
      notices.push(src.issue(hs, `host ${h.name} does not say its kind: ${DEFAULT_KIND} is assumed`, `write kind: ${DEFAULT_KIND}`));
    }
    const kind = kindOf.get(h.kind)!; // the schema's enum admits only registered kinds
    const elsewhere = ownedElsewhere("host", kind.kind);
    const fields: Record<string, unknown> = {};
    for (const [f, v] of Object.entries(h)) {
      if (NEUTRAL_HOST_FIELDS.includes(f)) continue;
      if (f in kind.host.properties) fields[f] = v;
      else if (elsewhere.has(f)) {
        const owners = elsewhere.get(f)!;
        issues.push(src.issue([...hs, f], `${quote(f)} is a field of ${owners.join(" and ")} hosts, and this host is kind ${kind.kind}`, `remove it, or set kind: ${owners[0]}`, true));
      }
    }
    const missing = kind.host.required.filter((f) => fields[f] === undefined);
    for (const f of missing) {
      issues.push({ ...src.issue(hs, `missing required field ${quote(f)} (${kind.kind} hosts need it)`, `add ${f}`), path: fmtPath([...hs, f]) });
    }
    const settings = missing.length === 0 ? kind.host.normalise(fields, contextAt(hs)) : {};
    return {
      name: h.name, kind: kind.kind, reservedMemoryMiB: h.reservedMemoryMiB, cpuOvercommit: h.cpuOvercommit, maxParallel: h.maxParallel,
      callTimeoutSeconds: h.callTimeoutSeconds, settings: settings as Record<string, unknown>,
    };
  });
  const hostKind = new Map(hosts.map((h) => [h.name, h.kind]));

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
    // Each kind among the group's hosts gets its settings from the template; fields no such kind owns are refused.
    const used = [...new Set(g.hosts.flatMap((h) => (hostKind.has(h) ? [hostKind.get(h)!] : [])))];
    const settings: Record<string, Record<string, unknown>> = {};
    for (const k of kinds.filter((k) => used.includes(k.kind))) {
      const fields = Object.fromEntries(Object.entries(t).filter(([f]) => f in k.template.properties));
      const missing = k.template.required.filter((f) => fields[f] === undefined);
      for (const f of missing) {
        issues.push({ ...src.issue(ts, `missing required field ${quote(f)} (the group has ${k.kind} hosts)`, `add ${f}${templateFieldHint(k, f)}`), path: fmtPath([...ts, f]) });
      }
      if (missing.length === 0) settings[k.kind] = k.template.normalise(fields, contextAt(ts)) as Record<string, unknown>;
    }
    for (const f of Object.keys(t)) {
      if (NEUTRAL_TEMPLATE_FIELDS.includes(f) || kinds.some((k) => used.includes(k.kind) && f in k.template.properties)) continue;
      const owners = kinds.filter((k) => f in k.template.properties).map((k) => k.kind);
      if (owners.length > 0 && used.length > 0) {
        issues.push(src.issue([...ts, f], `${quote(f)} is a field of ${owners.join(" and ")} templates, and none of the group's hosts is of that kind (${used.join(", ")})`, "remove it, or place the group on such a host", true));
      }
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
        // Node's message ends in ", open '<path>'": the path is already in ours once.
        const why = (err instanceof Error ? err.message : String(err)).replace(/, \w+ '[^]*'$/, "");
        // A path of thousands of characters (ENAMETOOLONG) is cut like any quoted value: the error stays readable.
        issues.push(src.issue([...ts, "userDataFile"], `cannot read user-data file ${cutText(abs, 200)}: ${why}`, `check the path; it is relative to ${dir}`));
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

    const template: VmTemplate = { vcpus: t.vcpus, memoryMiB: t.memoryMiB, userData, secretEnv, settings };
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
    const kubernetes = normaliseGroupKubernetes(src, gs, g.kubernetes, g, { topLevel: raw.kubernetes !== undefined, gitopsMode: raw.gitops?.mode }, issues);
    // A policy's fields depend on its type (the schema's if/then branches, which the generated types cannot say):
    // the schema checked them, config/scaling.ts types them.
    const scaling = g.scaling as ScalingSpec | undefined;
    if (scaling && !kubernetes) {
      if (g.desired !== undefined) {
        issues.push(src.issue([...gs, "desired"], "desired is decided by the group's scaling policies", "remove desired (policies start from the VMs the group has, within min and max), or remove scaling"));
      }
      for (const si of validateScaling(scaling, { min: g.min, max: g.max })) {
        issues.push(src.issue([...gs, "scaling", ...dotPath(si.path)], si.message, si.fix));
      }
    }
    const hooks = lifecycleHookIssues(src, gs, g.lifecycleHooks ?? [], dir, pathVar);
    issues.push(...hooks.issues);
    return {
      name: g.name, min: g.min, max: g.max, desired, hosts: [...g.hosts], placement: g.placement, template, networking, readiness,
      suspend: g.suspend, lifecycleHooks: hooks.hooks,
      rollout: { ...g.rollout, checkpoints: [...new Set(g.rollout.checkpoints)].sort((a, b) => a - b) },
      ...(g.maxInstanceLifetimeSeconds !== undefined ? { maxInstanceLifetimeSeconds: g.maxInstanceLifetimeSeconds } : {}),
      ...(g.warmPool ? { warmPool: warmPoolConfig(src, gs, g, issues) } : {}),
      ...(scaling ? { scaling: structuredClone(scaling) } : {}),
      ...(kubernetes ? { kubernetes } : {}),
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
    ...(raw.kubernetes ? { kubernetes: normaliseKubernetes(src, raw.kubernetes, dir, issues) } : {}),
    hosts,
    groups,
  };
  return { config, issues, notices };
}

/** A group's warm pool with its defaults; violations of the rules between its fields and the group's go to `issues`. */
function warmPoolConfig(src: Source, gs: Seg[], g: RawGroup, issues: ConfigIssue[]): WarmPoolConfig {
  const w = g.warmPool!;
  const at: Seg[] = [...gs, "warmPool"];
  if (w.size !== undefined && w.maxPrepared !== undefined) {
    issues.push(src.issue([...at, "maxPrepared"], "size and maxPrepared are mutually exclusive", "keep size (pool VMs to keep) or maxPrepared (members and pool VMs together at most)", true));
  } else if (w.maxPrepared !== undefined && w.maxPrepared < g.min) {
    issues.push(src.issue([...at, "maxPrepared"], `maxPrepared (${w.maxPrepared}) is below the group's min (${g.min}), so the pool would always be empty`, `set maxPrepared to at least ${g.min}, or use size`));
  }
  return { state: w.state, reuseOnScaleIn: w.reuseOnScaleIn, ...(w.size !== undefined ? { size: w.size } : {}), ...(w.maxPrepared !== undefined ? { maxPrepared: w.maxPrepared } : {}) };
}

/** " (description)" of a kind's template field, for a fix. */
function templateFieldHint(kind: ProviderConfigFragment, field: string): string {
  const d = kind.template.properties[field]?.description;
  return typeof d === "string" ? ` (${d})` : "";
}

/** `policies[1].steps[0].lower` → ["policies", 1, "steps", 0, "lower"]. */
function dotPath(p: string): Seg[] {
  return p.split(/\.|\[(\d+)\]/).filter((x) => x !== undefined && x !== "").map((x) => (/^\d+$/.test(x) ? Number(x) : x));
}

/** The metrics block with every default: the embedded store lives in the state directory's local `.premiscale/`. */
function metricsConfig(raw: RawConfig["metrics"], dir: string, stateDir: string): MetricsConfig {
  // The schema filled every default (ajv's useDefaults, also inside the store's variants): nothing is defaulted twice.
  const st = raw.store as unknown as MetricsStoreConfig & { path?: string };
  const store: MetricsStoreConfig =
    st.type === "sqlite" ? { ...st, path: st.path ? path.resolve(dir, st.path) : path.join(stateDir, ".premiscale", "metrics.db") } : { ...st, queries: { ...(st.queries ?? {}) } };
  return { intervalSeconds: raw.intervalSeconds, store };
}

/** The gitops block (used by `premiscale reconcile`); the schema filled its defaults. */
function gitopsConfig(src: Source, raw: RawConfig["gitops"], issues: ConfigIssue[]): GitopsConfig {
  const { webhook: wh, repo, ...g } = raw;
  let webhook: GitopsConfig["webhook"] = null;
  if (wh) {
    const { host, port } = listenAddress(src, ["gitops", "webhook", "listen"], wh.listen, issues);
    webhook = { host, port, provider: wh.provider, secretEnv: wh.secretEnv };
  }
  return { ...g, repo: repo ?? null, webhook };
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
 * set is checked) and the PATH hook programs are looked up on, and `readFile` reads `userDataFile`s. Throws one
 * ConfigError with every issue, by line.
 */
export function parseConfig(
  text: string,
  file: string,
  env: Record<string, string | undefined>,
  readFile: (absPath: string) => string,
  options: LoadOptions,
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
            : yamlErrorLine(e.message),
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
  const kinds = options.kinds;
  const checked = validate(kinds, data);
  // Repeats are dropped through a set: a search per issue was quadratic, minutes for a list of 100,000 bad items.
  const seen = new Set<string>();
  // A value that matches none of an anyOf's forms gets one issue for the anyOf, not one per form.
  const anyOfAt = new Set(checked.errors.filter((e) => e.keyword === "anyOf").map((e) => e.instancePath));
  const schemaIssues = checked.errors
    .filter((e) => e.keyword === "anyOf" || !(anyOfAt.has(e.instancePath) && e.schemaPath.includes("/anyOf/")))
    .map((e) => schemaIssue(src, checked.schema, e))
    .filter((i): i is ConfigIssue => i !== undefined)
    .filter((i) => {
      const key = JSON.stringify([i.path, i.message]);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  if (schemaIssues.length) fail(schemaIssues);
  const { config, issues, notices } = normalise(src, data as RawConfig, options.checkEnv === false ? null : env, readFile, kinds, env.PATH);
  if (issues.length) fail(issues);
  sources.set(config, { src, notices: notices.sort(byPosition) });
  return config;
}

/**
 * The first line of a YAML parser error without its position (the issue has it). A file whose lines end in CR alone
 * is one line to the parser's excerpt, so the line is cut at any line break and at 200 characters.
 */
function yamlErrorLine(message: string): string {
  const first = (message.split(/\r\n|\r|\n/)[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
  return cutText(first, 200);
}

/** Options of `parseConfig` / `loadConfig`. */
export interface LoadOptions {
  /** The provider kinds hosts may have, with their config fragments (premiscale's: providers/index.ts). */
  kinds: readonly ProviderConfigFragment[];
  /**
   * Require every `${env:NAME}` of user-data to be set. Only apply needs the secrets; plan, validate and state
   * commands pass false so they run where the secrets are not.
   * @default true
   */
  checkEnv?: boolean;
}

/** Reads and parses a config file (see `parseConfig`); a missing or unreadable file is a ConfigError too. */
export async function loadConfig(file: string, env: Record<string, string | undefined>, options: LoadOptions): Promise<Config> {
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
export function readRegularFile(p: string): string {
  const fd = openSync(p, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw new Error("not a regular file");
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * A `ConfigIssue` at a field of a loaded config, with its line:column (for problems found later, against live
 * hosts: `premiscale validate --check-hosts`).
 */
export function issueAt(config: Config, segs: Seg[], message: string, fix?: string): ConfigIssue {
  const src = sources.get(config)?.src;
  return src ? src.issue(segs, message, fix) : { file: config.file, line: 0, column: 0, path: fmtPath(segs), message, ...(fix ? { fix } : {}) };
}

/** What loading noticed without refusing the file (a host without `kind`), by line. */
export function configNotices(config: Config): ConfigIssue[] {
  return sources.get(config)?.notices ?? [];
}

export { substituteEnv } from "./user-data.js";
