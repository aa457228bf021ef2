/**
 * Structure-aware config files for the loader's fuzz test (config/load.fuzz.test.ts).
 *
 * Three layers, each a fast-check arbitrary, so a failing case shrinks and replays from its seed:
 * 1. `valueFromSchema`: walks config/schema.ts's JSON Schema and derives values that satisfy it field by field
 *    (types, enums, consts, patterns, ranges, required keys, the `allOf`/`if`/`then` variants of policies and
 *    stores), with a few formats the schema only names in prose (libvirt URIs, IPv4 pools, crons) as hints.
 *    `cohere` then makes about half of them pass the cross-field rules too, so normalisation is reached.
 * 2. Value mutations at a random place in that tree: wrong types, out-of-range numbers (from the schema's own
 *    limits at that place), missing required fields, unknown keys, huge or empty strings, duplicate list items,
 *    and raw YAML put where a value was (tags, aliases, deep nesting, YAML 1.1 scalars).
 * 3. Text and byte mutations of the rendered YAML: duplicate keys, tabs, BOMs, CR/CRLF, NUL and control bytes,
 *    bytes that are not UTF-8, truncation, very long lines, more documents, `%YAML 1.1` (which turns on
 *    `!!binary`, `!!set`, `!!timestamp`, merge keys), and billion-laughs alias bombs.
 */
import fc from "fast-check";
import { stringify } from "yaml";
import { configSchema as schemaFor } from "../../config/schema.js";
import { configFragments } from "../../providers/index.js";

/** The schema with every kind premiscale knows, as users' files are checked against it. */
const configSchema = schemaFor(configFragments);

type Schema = Record<string, unknown>;
type Json = unknown;
/** A place in a value: map keys and list indexes. */
type Path = (string | number)[];

/** Field path as hints name it: `groups[].template.userDataFile`. */
function hintKey(at: readonly string[]): string {
  return at.join(".").replace(/\.\[\]/g, "[]");
}

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));

/** User-data that exercises the secret and placeholder rules (literal passwords, bad names, broken YAML). */
const USER_DATA = [
  "",
  "#cloud-config\n",
  "#cloud-config\npackages: [curl]\n",
  "#cloud-config\npassword: hunter2\n",
  "#cloud-config\npassword: ${env:WEB_PASSWORD}\n",
  "#cloud-config\nusers:\n  - name: a\n    plain_text_passwd: x\n",
  "#cloud-config\nchpasswd:\n  list: |\n    root:secret\n    bob:RANDOM\n",
  "#cloud-config\nruncmd: [\"echo ${env:FOO} ${env:bad-name} ${env:}\"]\n",
  "#cloud-config\n: : [\n",
  "#!/bin/sh\necho hi\n",
  "${env:A}${env:A}${env:B_2}",
  "#cloud-config\r\nwrite_files: [{path: /x, content: \"\\0\"}]\r\n",
];

/**
 * Paths for `userDataFile`, relative to the config's folder: `prepareConfigDir` makes the files; the rest are
 * missing, outside, special (devices, a FIFO, a folder, /proc) or odd.
 */
const USER_DATA_FILES = [
  "user-data.yaml",
  "plain.sh",
  "binary.bin",
  "missing.yaml",
  "folder",
  "fifo",
  "../user-data.yaml",
  "/dev/null",
  "/dev/zero",
  "/dev/urandom",
  "/proc/self/status",
  "folder/../user-data.yaml",
  "user-data.yaml\u0000.txt",
  " ",
];

/** Mostly values that pass, sometimes ones that do not: each config has dozens of fields, so bad ones must be rare. */
const mostly = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>): fc.Arbitrary<T> => fc.oneof({ arbitrary: good, weight: 39 }, { arbitrary: bad, weight: 1 });

/** The cron, time zone and duration of a scheduled disruption budget at `at`. */
function budgetHints(at: string): Record<string, fc.Arbitrary<Json>> {
  return {
    [`${at}.schedule`]: mostly(fc.constantFrom("0 9 * * 1-5", "*/30 * * * *", "@daily", "0 22 * * SAT"), fc.constantFrom("0 0 30 2 *", "0 25 * * *", "* * *", "@reboot")),
    [`${at}.timezone`]: mostly(fc.constantFrom("UTC", "Europe/Berlin", "America/St_Johns"), fc.constantFrom("Mars/Phobos", "utc", "")),
    [`${at}.duration`]: mostly(fc.constantFrom("8h", "30m", "1h30m", "24h"), fc.constantFrom("0h", "8", "8 hours", "1d", "")),
  };
}

/** Formats the schema states only in descriptions; everything else comes from the schema itself. */
const HINTS: Record<string, fc.Arbitrary<Json>> = {
  "hosts[].uri": mostly(
    fc.constantFrom("test:///default", "qemu:///system", "qemu+ssh://admin@kvm1/system", "qemu+tls://h.example/session", "test:///tmp/x.xml"),
    fc.oneof(fc.constantFrom("qemu://host/other", "xen:///system", "test://h/default", "qemu+ssh//x/system", "qemu:///system?socket=/x", "qemu:///system#frag"), fc.string({ minLength: 1, maxLength: 30 })),
  ),
  "groups[].networking.addresses[]": mostly(
    fc.tuple(fc.nat(255), fc.nat(255), fc.nat(250)).map(([a, b, c]) => `10.${a}.${b}.${c}-10.${a}.${b}.${c + 5}`),
    fc.oneof(ipv4, fc.constantFrom("10.0.0.9-10.0.0.1", "1.2.3", "01.2.3.4", "1.2.3.4-", "-", "256.1.1.1", "1.2.3.4-5.6.7.8-9.9.9.9")),
  ),
  "groups[].networking.gateway": mostly(ipv4, fc.constantFrom("gw", "::1", "10.0.0.1")),
  "groups[].networking.dns[]": mostly(ipv4, fc.constantFrom("dns.example", "", "1.1.1")),
  "groups[].template.userData": mostly(fc.constantFrom(...USER_DATA.slice(0, 3), USER_DATA[4]!), fc.constantFrom(...USER_DATA)),
  "groups[].template.userDataFile": mostly(fc.constant("user-data.yaml"), fc.constantFrom(...USER_DATA_FILES)),
  "groups[].scaling.policies[].cron": mostly(
    fc.constantFrom("0 8 * * 1-5", "*/5 * * * *", "@daily", "@hourly", "0 8 * * MON-FRI"),
    fc.constantFrom("0 0 30 2 *", "61 * * * *", "* * *", "", "@reboot", "0 0 29 2 1", "* * * * * * *"),
  ),
  "groups[].scaling.policies[].timezone": mostly(fc.constantFrom("UTC", "Europe/Berlin", "America/St_Johns"), fc.constantFrom("Mars/Phobos", "Etc/GMT+14", "utc", "")),
  "groups[].scaling.policies[].metric": mostly(fc.constantFrom("cpu", "memory", "net_rx_bytes", "disk_read_bytes"), fc.constantFrom("cpu_percent", "", "CPU")),
  "groups[].lifecycleHooks[].http.url": mostly(
    fc.constantFrom("http://127.0.0.1:8080/hook", "https://hooks.example/premiscale"),
    fc.constantFrom("http://", "https://]", "ftp://x/", "not a url", ""),
  ),
  // Disruption budgets on a schedule (kubernetes/native): a cron, a time zone and a duration, as in prose.
  ...budgetHints("kubernetes.native.scaleDown.budgets[]"),
  ...budgetHints("groups[].kubernetes.autoscaling.disruptionBudgets[]"),
  "gitops.webhook.secretEnv": mostly(fc.constant("WEBHOOK_SECRET"), fc.constantFrom("lower", "1A")),
};

/** The `then` schemas of an `allOf` of conditionals (a policy's or a store's variants), or undefined. */
function variants(schema: Schema): Schema[] | undefined {
  const all = schema.allOf as Schema[] | undefined;
  if (!all?.length || !all.every((s) => s.then)) return undefined;
  return all.map((s) => s.then as Schema);
}

/**
 * Values that satisfy `schema` field by field (not yet the rules between fields). Required keys are always
 * present, as are the keys an `if`/`then`/`else` may require (the rules then decide, e.g. `source` of a NIC);
 * other keys half of the time. Lists are kept short so a case stays small.
 */
export function valueFromSchema(schema: Schema, at: readonly string[] = []): fc.Arbitrary<Json> {
  const hint = HINTS[hintKey(at)];
  if (hint) return hint;
  if ("const" in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as Json[]));
  const alternatives = variants(schema);
  // Each variant is a whole object schema; the keys the parent requires (a policy's `type`) stay required.
  const inherited = (schema.required as string[] | undefined) ?? [];
  if (alternatives) return fc.oneof(...alternatives.map((s) => valueFromSchema({ ...s, required: [...((s.required as string[]) ?? []), ...inherited] }, at)));
  // A value of one of several forms (a count or a percentage).
  if (Array.isArray(schema.anyOf)) return fc.oneof(...(schema.anyOf as Schema[]).map((s) => valueFromSchema(s, at)));
  switch (schema.type) {
    case "object": {
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      const then = (schema.then ?? {}) as Schema;
      const otherwise = (schema.else ?? {}) as Schema;
      const required = new Set([...((schema.required as string[]) ?? []), ...((then.required as string[]) ?? []), ...((otherwise.required as string[]) ?? [])]);
      const model = Object.fromEntries(Object.entries(props).map(([k, s]) => [k, valueFromSchema(s, [...at, k])]));
      return fc.record(model, { requiredKeys: Object.keys(props).filter((k) => required.has(k)) });
    }
    case "array": {
      const item = valueFromSchema((schema.items ?? {}) as Schema, [...at, "[]"]);
      const minLength = (schema.minItems as number | undefined) ?? 0;
      const maxLength = minLength + 2;
      return schema.uniqueItems ? fc.uniqueArray(item, { minLength, maxLength, selector: (v) => JSON.stringify(v) }) : fc.array(item, { minLength, maxLength });
    }
    case "string": {
      const minLength = (schema.minLength as number | undefined) ?? 0;
      const maxLength = schema.maxLength as number | undefined;
      if (typeof schema.pattern === "string") {
        // Only the schema's own bounds filter: a pattern longer than any default bound (sha256:<64 hex>) would never
        // pass a filter of ours, and fast-check retries a filter forever.
        return fc.stringMatching(new RegExp(schema.pattern), { size: "xsmall" }).filter((s) => s.length >= minLength && s.length <= (maxLength ?? Infinity));
      }
      return fc.string({ minLength, maxLength: Math.min(maxLength ?? 24, 24) });
    }
    case "integer": {
      const min = (schema.minimum as number | undefined) ?? -1000;
      const max = (schema.maximum as number | undefined) ?? min + 1000;
      return fc.integer({ min, max });
    }
    case "number": {
      const exclusive = schema.exclusiveMinimum as number | undefined;
      const min = exclusive ?? (schema.minimum as number | undefined) ?? -1e6;
      const max = (schema.maximum as number | undefined) ?? min + 1000;
      return fc.double({ min, max, minExcluded: exclusive !== undefined, noNaN: true, noDefaultInfinity: true });
    }
    case "boolean":
      return fc.boolean();
    default:
      return fc.jsonValue({ maxDepth: 1 });
  }
}

/** The schema of the value at `path` inside `value`, following `allOf` variants by the value's `type`. */
export function schemaAt(value: Json, path: Path, schema: Schema = configSchema): Schema | undefined {
  let s: Schema | undefined = schema;
  let v: Json = value;
  for (const seg of path) {
    if (!s) return undefined;
    const alternatives = variants(s);
    if (alternatives && v && typeof v === "object") {
      const type = (v as Record<string, unknown>).type;
      s = alternatives.find((a) => ((a.properties as Record<string, Schema> | undefined)?.type as Schema | undefined)?.const === type) ?? s;
    }
    s = (typeof seg === "number" ? s.items : (s.properties as Record<string, Schema> | undefined)?.[seg]) as Schema | undefined;
    v = v && typeof v === "object" ? (v as Record<string | number, Json>)[seg] : undefined;
  }
  return s;
}

type Cfg = Record<string, unknown>;
const objects = (v: unknown): Cfg[] => (Array.isArray(v) ? v.filter((x): x is Cfg => !!x && typeof x === "object" && !Array.isArray(x)) : []);

/**
 * Makes a schema-valid value also pass most rules between fields, which the schema cannot express: unique names,
 * groups on declared hosts, min <= desired <= max, static pools big enough, no `desired` beside `scaling`,
 * one user-data source, heartbeats within their limits. Deterministic: a function of the value.
 */
export function cohere(input: Cfg): Cfg {
  const c = structuredClone(input);
  const listens = [c.server, (c.gitops as Cfg | undefined)?.webhook] as (Cfg | undefined)[];
  for (const l of listens) if (l && typeof l.listen === "string" && !/:([1-9]\d{0,3}|[1-5]\d{4})$/.test(l.listen)) l.listen = "127.0.0.1:8970";
  const hosts = objects(c.hosts);
  hosts.forEach((h, i) => {
    h.name = `h${i}`;
    // A kind's required fields are checked by its rules, not by the schema (which cannot tie them to `kind`); and
    // each kind refuses the other's fields.
    if (h.kind === "proxmox") {
      for (const k of ["uri", "pool", "accelerator"]) delete h[k];
      const api = h.api && typeof h.api === "object" && !Array.isArray(h.api) ? (h.api as Cfg) : {};
      delete api.caFile; // must name an existing PEM file
      h.api = { ...api, endpoints: [{ node: "pve1", url: "https://10.0.0.11:8006" }], tokenId: "premiscale@pve!fuzz", tokenSecretEnv: "PVE_TOKEN_SECRET" };
      return;
    }
    for (const k of ["api", "node", "isoStorage", "taskTimeoutSeconds"]) delete h[k];
    if (typeof h.uri !== "string" || !/^(test|qemu(\+\w+)?):\/\/\/?/.test(h.uri)) h.uri = "test:///default";
    if (h.accelerator === "auto") h.accelerator = "qemu";
  });
  const kindOf = new Map(hosts.map((h) => [h.name, h.kind === "proxmox" ? "proxmox" : "libvirt"]));
  const k8s = c.kubernetes && typeof c.kubernetes === "object" && !Array.isArray(c.kubernetes) ? (c.kubernetes as Cfg) : undefined;
  if (k8s) cohereKubernetes(k8s);
  objects(c.groups).forEach((g, gi) => {
    g.name = `g${gi}`;
    if (hosts.length) g.hosts = hosts.filter((_, i) => i % (gi + 1) === 0).map((h) => h.name);
    const max = typeof g.max === "number" ? Math.min(g.max, 50) : 3;
    g.max = max;
    if (typeof g.min === "number") g.min = Math.min(g.min, max);
    if (typeof g.desired === "number") g.desired = Math.max(Math.min(g.desired, max), typeof g.min === "number" ? g.min : 0);
    if (g.scaling) delete g.desired;
    // A Kubernetes node group: the cluster decides its size (no desired, no scaling), under a top-level block, and
    // never under review; k3s and rke2 joins name their server.
    const gk = g.kubernetes && typeof g.kubernetes === "object" && !Array.isArray(g.kubernetes) ? (g.kubernetes as Cfg) : undefined;
    if (gk && (!k8s || (c.gitops as Cfg | undefined)?.mode === "review")) delete g.kubernetes;
    else if (gk) {
      delete g.desired;
      delete g.scaling;
      if ((gk.join === "k3s" || gk.join === "rke2") && typeof gk.server !== "string") gk.server = "https://10.0.0.1:6443";
    }
    const pool = g.warmPool && typeof g.warmPool === "object" && !Array.isArray(g.warmPool) ? (g.warmPool as Cfg) : undefined;
    if (pool && pool.size !== undefined) delete pool.maxPrepared;
    if (pool && typeof pool.maxPrepared === "number") pool.maxPrepared = Math.max(pool.maxPrepared, typeof g.min === "number" ? g.min : 0);
    const t = (g.template ?? {}) as Cfg;
    // Likewise the template fields the kinds of the group's hosts require (libvirt: a disk on a base image; proxmox:
    // a template to clone), and none of a kind the group has no host of.
    const kinds = new Set(((g.hosts as string[] | undefined) ?? []).map((h) => kindOf.get(h)));
    if (kinds.has("libvirt") || kinds.size === 0) {
      if (typeof t.disk !== "object" || t.disk === null || Array.isArray(t.disk)) t.disk = { baseImage: "base.qcow2" };
    } else for (const k of ["disk", "nic", "boot"]) delete t[k];
    if (kinds.has("proxmox")) {
      const px = t.proxmox && typeof t.proxmox === "object" && !Array.isArray(t.proxmox) ? (t.proxmox as Cfg) : {};
      delete px.templateTag;
      px.template = "debian-12-cloud";
      if (px.clone !== "full") delete px.storage;
      if (px.cloudInit !== "proxmox") for (const k of ["ciUser", "sshKeys"]) delete px[k];
      if (Array.isArray(px.sshKeys)) px.sshKeys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq6dXk0yFQeE1o4nHq1Yg0D5jV0gC1V2pT3N0mWm1sH fuzz@example"];
      t.proxmox = px;
    } else delete t.proxmox;
    if (t.userData !== undefined && t.userDataFile !== undefined) delete t.userDataFile;
    const nic = t.nic as Cfg | undefined;
    if (nic?.type === "user" || (nic && nic.type === undefined)) delete nic.source;
    const net = g.networking as Cfg | undefined;
    if (net?.mode === "static") {
      Object.assign(net, { addresses: [`10.${gi}.0.1-10.${gi}.0.200`], prefix: 24, gateway: `10.${gi}.0.254`, dns: ["1.1.1.1"] });
    } else if (net) {
      for (const k of ["addresses", "prefix", "gateway", "dns"]) delete net[k];
    }
    if (g.scaling) cohereScaling(g.scaling as Cfg, typeof g.min === "number" ? g.min : 0, max);
    // Hooks: unique names, and a program that exists (the rules check it on this machine).
    objects(g.lifecycleHooks).forEach((h, hi) => {
      h.name = `hook${hi}`;
      if (h.command !== undefined && h.http !== undefined) delete h.http;
      if (h.command !== undefined) h.command = ["/bin/true"];
    });
    const r = g.readiness as Cfg | undefined;
    if (r && typeof r.heartbeatSeconds === "number" && r.heartbeatSeconds > 0) {
      r.checkIn = true;
      r.unhealthyAfterSeconds = Math.max(typeof r.unhealthyAfterSeconds === "number" ? r.unhealthyAfterSeconds : 180, 2 * r.heartbeatSeconds);
    }
  });
  return c;
}

/** The rules of config/kubernetes-config.ts: a loopback or TLS listener, native settings only in native mode, leases in order. */
function cohereKubernetes(k: Cfg): void {
  const grpc = k.externalGrpc && typeof k.externalGrpc === "object" && !Array.isArray(k.externalGrpc) ? (k.externalGrpc as Cfg) : undefined;
  if (grpc && typeof grpc.listen === "string" && !/^127\.0\.0\.1:([1-9]\d{0,3}|[1-5]\d{4})$/.test(grpc.listen)) grpc.listen = "127.0.0.1:8972";
  if (k.mode !== "native") delete k.native;
  const n = k.native && typeof k.native === "object" && !Array.isArray(k.native) ? (k.native as Cfg) : undefined;
  if (n) {
    if (Array.isArray(n.expander)) n.expander = [...new Set(n.expander)].filter((e) => e !== "priority" || (n.priorities && typeof n.priorities === "object" && Object.keys(n.priorities).length > 0));
    if (Array.isArray(n.expander) && n.expander.length === 0) delete n.expander;
    if (n.priorities && typeof n.priorities === "object") n.priorities = { "10": ["^g"] };
    const b = n.batch && typeof n.batch === "object" && !Array.isArray(n.batch) ? (n.batch as Cfg) : undefined;
    // The schema's defaults are idleMs 1000 and maxMs 10000 (Karpenter's).
    if (b && typeof b.idleMs === "number") b.maxMs = Math.max(typeof b.maxMs === "number" ? b.maxMs : 10_000, b.idleMs);
    else if (b && typeof b.maxMs === "number") b.idleMs = Math.min(1000, b.maxMs);
  }
  // client-go's defaults (15, 10, 2) when any of the three is set: they are ordered.
  if (k.leaderElection && typeof k.leaderElection === "object" && !Array.isArray(k.leaderElection)) {
    Object.assign(k.leaderElection, { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 });
  }
}

/** The scaling rules of policies/validate.ts: steps contiguous, thresholds ordered, schedule sizes within bounds. */
function cohereScaling(scaling: Cfg, min: number, max: number): void {
  for (const p of objects(scaling.policies)) {
    if (p.type === "target-tracking" && typeof p.target === "number") p.target = Math.min(p.target, 100);
    if (p.type === "step") {
      const steps = objects(p.steps);
      steps.forEach((s, i) => {
        delete s.lower;
        delete s.upper;
        if (i > 0) s.lower = i * 10;
        if (i < steps.length - 1) s.upper = (i + 1) * 10;
        if (p.adjustmentType === "ExactCapacity" && typeof s.adjustment === "number") s.adjustment = Math.abs(s.adjustment);
      });
      if (p.adjustmentType !== "PercentChangeInCapacity") delete p.minAdjustmentMagnitude;
    }
    if (p.type === "threshold") {
      p.above = 80;
      p.below = 20;
      if (typeof p.datapointsToAlarm === "number") p.evaluationPeriods = Math.max(p.datapointsToAlarm, typeof p.evaluationPeriods === "number" ? p.evaluationPeriods : 3);
    }
    if (p.type === "schedule") {
      for (const k of ["minSize", "maxSize", "desired"]) if (typeof p[k] === "number") p[k] = Math.max(min, Math.min(max, p[k] as number));
      if (typeof p.minSize === "number" && typeof p.maxSize === "number" && p.minSize > p.maxSize) p.minSize = p.maxSize;
      if (p.minSize === undefined && p.maxSize === undefined && p.desired === undefined) p.desired = min;
    }
  }
  const behavior = scaling.behavior as Cfg | undefined;
  for (const dir of ["scaleUp", "scaleDown"]) {
    const r = behavior?.[dir] as Cfg | undefined;
    if (r && Array.isArray(r.policies) && r.policies.length === 0) delete r.policies;
    for (const l of objects(r?.policies)) if (l.type === "Pods" && typeof l.value === "number") l.value = Math.max(1, Math.round(l.value));
  }
}

/** One value mutation, applied at the `pick`-th place of its kind (modulo how many there are). */
export type Mutation =
  | { kind: "wrong-type"; pick: number; value: Json }
  | { kind: "out-of-range"; pick: number; choice: number }
  | { kind: "remove-key"; pick: number }
  | { kind: "unknown-key"; pick: number; key: string; value: Json }
  | { kind: "huge-string"; pick: number; choice: number; size: number }
  | { kind: "empty"; pick: number; choice: number }
  | { kind: "duplicate-item"; pick: number }
  | { kind: "raw-yaml"; pick: number; choice: number; depth: number };

/** Raw YAML put where a value was: tags, YAML 1.1 scalars, aliases, anchors, odd keys, deep or wide nesting. */
export function rawFragment(choice: number, depth: number): string {
  const fragments: (() => string)[] = [
    () => "!!binary aGVsbG8gd29ybGQ=",
    () => "!!timestamp 2001-12-14t21:59:43.10-05:00",
    () => "!!set {a, b}",
    () => "!!omap [{a: 1}, {b: 2}]",
    () => "!!pairs [{a: 1}, {a: 2}]",
    () => "!!float 3",
    () => "!!int 0x1F",
    () => '!!int "12"',
    () => "!!str 12",
    () => "!!bool yes",
    () => "!!map [a, b]",
    () => "!!seq {a: 1}",
    () => "!custom value",
    () => "!<tag:example.com,2000:thing> 1",
    () => '!!js/function "function () { return 1 }"',
    () => "! 12",
    () => "0x1F",
    () => "0o17",
    () => "1_000",
    () => "1:20",
    () => ".inf",
    () => "-.inf",
    () => ".nan",
    () => "12e500",
    () => "-12e500",
    () => "99999999999999999999999",
    () => "-0",
    () => "yes",
    () => "off",
    () => "~",
    () => '"\\0\\x01\\ud800"',
    () => "'it''s'",
    () => "*undefined_anchor",
    () => "&anchor [1, *anchor]",
    () => "&self {a: *self}",
    () => "{? [a, b] : c}",
    () => "{[1, 2]: 3, {a: 1}: 4}",
    () => "{null: 1, ~: 2, 1: 3, true: 4}",
    () => "{__proto__: {polluted: 1}, constructor: {prototype: {x: 1}}}",
    () => "{<<: {a: 1}}",
    () => "[" + "[".repeat(depth) + "]".repeat(depth) + "]",
    () => "{a: ".repeat(depth) + "1" + "}".repeat(depth),
    () => "[" + Array.from({ length: depth * 10 }, (_, i) => i).join(", ") + "]",
    () => "{" + Array.from({ length: depth * 10 }, (_, i) => `k${i}: ${i}`).join(", ") + "}",
  ];
  return fragments[choice % fragments.length]!();
}

/** Long strings of the shapes that slow naive code down: plain, dash runs, placeholders, multi-byte, many lines. */
function hugeString(choice: number, size: number): string {
  const shapes = [
    () => "a".repeat(size),
    () => "a" + "-".repeat(size) + "B",
    () => "${env:a}\n".repeat(Math.ceil(size / 9)),
    () => "${env:".repeat(Math.ceil(size / 6)),
    () => "€".repeat(size),
    () => "\u{1F600}".repeat(Math.ceil(size / 2)),
    () => "x\u0000y".repeat(Math.ceil(size / 3)),
    () => " \t".repeat(Math.ceil(size / 2)),
    () => "a\n".repeat(Math.ceil(size / 2)),
    () => "/".repeat(size),
    () => "%".repeat(size),
  ];
  return shapes[choice % shapes.length]!();
}

const WRONG_TYPES: Json[] = [null, true, false, 0, -1, 1.5, "", "x", "12", [], {}, [1, "a"], { a: 1 }, [[[]]], { type: "user" }];

/** Every place in `v` with its value, depth first. */
function places(v: Json, at: Path = []): { path: Path; value: Json }[] {
  const out = [{ path: at, value: v }];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...places(x, [...at, i])));
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) out.push(...places(x, [...at, k]));
  return out;
}

function setAt(root: Json, path: Path, value: Json): Json {
  if (path.length === 0) return value;
  let node = root as Record<string | number, Json>;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, Json>;
  node[path.at(-1)!] = value;
  return root;
}

/** Where raw YAML goes: a marker that renders as a plain scalar and is replaced after rendering. */
const RAW_MARKER = (n: number) => `FUZZRAW${n}X`;

/** Applies mutations to a copy of `value`; raw YAML fragments come back separately, keyed by their marker. */
export function mutate(value: Json, mutations: readonly Mutation[]): { value: Json; raw: Map<string, string> } {
  let v = structuredClone(value);
  const raw = new Map<string, string>();
  for (const m of mutations) {
    const all = places(v);
    const pickOf = <T>(list: T[]): T | undefined => (list.length ? list[m.pick % list.length] : undefined);
    switch (m.kind) {
      case "wrong-type": {
        const p = pickOf(all.filter((p) => p.path.length > 0));
        if (p) v = setAt(v, p.path, structuredClone(m.value));
        break;
      }
      case "out-of-range": {
        const p = pickOf(all.filter((p) => typeof p.value === "number"));
        if (!p) break;
        const s = schemaAt(v, p.path) ?? {};
        const lo = (s.exclusiveMinimum as number | undefined) ?? (s.minimum as number | undefined);
        const hi = s.maximum as number | undefined;
        const candidates = [
          ...(lo !== undefined ? [lo - 1, s.exclusiveMinimum !== undefined ? lo : lo - 0.5, lo - 1e-9] : []),
          ...(hi !== undefined ? [hi + 1, hi + 0.5] : []),
          s.type === "integer" ? (p.value as number) + 0.5 : (p.value as number) * 1e300,
          -1, 0, 2 ** 31, 2 ** 53 + 2, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, NaN, Infinity, -Infinity, -0,
        ];
        v = setAt(v, p.path, candidates[m.choice % candidates.length]);
        break;
      }
      case "remove-key": {
        const p = pickOf(all.filter((p) => p.value && typeof p.value === "object" && !Array.isArray(p.value) && Object.keys(p.value).length));
        if (!p) break;
        const obj = p.value as Record<string, Json>;
        const keys = Object.keys(obj);
        delete obj[keys[m.pick % keys.length]!];
        break;
      }
      case "unknown-key": {
        const p = pickOf(all.filter((p) => p.value && typeof p.value === "object" && !Array.isArray(p.value)));
        if (!p) break;
        const obj = p.value as Record<string, Json>;
        const sibling = Object.keys(obj)[m.pick % Math.max(1, Object.keys(obj).length)];
        // Half are typos of a real key (one letter changed, or its case), so "did you mean" gets exercised.
        const key = sibling && m.pick % 2 === 0 ? (m.pick % 4 === 0 ? sibling.toUpperCase() : sibling.slice(0, -1) + "q") : m.key;
        Object.defineProperty(obj, key, { value: structuredClone(m.value), enumerable: true, writable: true, configurable: true });
        break;
      }
      case "huge-string": {
        // Half of the time a field with a pattern (names, paths, addresses), whose error path does the most work.
        const strings = all.filter((p) => typeof p.value === "string");
        const patterned = strings.filter((p) => typeof schemaAt(v, p.path)?.pattern === "string");
        const p = pickOf(m.choice % 2 && patterned.length ? patterned : strings);
        if (p) v = setAt(v, p.path, hugeString(m.choice, m.size));
        break;
      }
      case "empty": {
        const p = pickOf(all.filter((p) => p.path.length > 0));
        if (p) v = setAt(v, p.path, ["", [], {}, null][m.choice % 4]);
        break;
      }
      case "duplicate-item": {
        const p = pickOf(all.filter((p) => Array.isArray(p.value) && p.value.length));
        if (p) (p.value as Json[]).push(structuredClone((p.value as Json[])[m.pick % (p.value as Json[]).length]));
        break;
      }
      case "raw-yaml": {
        const p = pickOf(all.filter((p) => p.path.length > 0));
        if (!p) break;
        const marker = RAW_MARKER(raw.size);
        raw.set(marker, rawFragment(m.choice, m.depth));
        v = setAt(v, p.path, marker);
        break;
      }
    }
  }
  return { value: v, raw };
}

const anyKey = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "", " ", "<<", "-", "? x", "x".repeat(300), "ÿ", "0"),
);

/** One value mutation. Huge strings are mostly small (up to 2 Ki characters), sometimes 64 Ki, rarely 256 Ki. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("wrong-type" as const), pick: fc.nat(), value: fc.oneof(fc.constantFrom(...WRONG_TYPES), fc.jsonValue({ maxDepth: 2 })) }),
  fc.record({ kind: fc.constant("out-of-range" as const), pick: fc.nat(), choice: fc.nat() }),
  fc.record({ kind: fc.constant("remove-key" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("unknown-key" as const), pick: fc.nat(), key: anyKey, value: fc.jsonValue({ maxDepth: 1 }) }),
  fc.record({
    kind: fc.constant("huge-string" as const),
    pick: fc.nat(),
    choice: fc.nat(),
    size: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 2048 }), weight: 40 }, { arbitrary: fc.constant(65_536), weight: 3 }, { arbitrary: fc.constant(262_144), weight: 1 }),
  }),
  fc.record({ kind: fc.constant("empty" as const), pick: fc.nat(), choice: fc.nat() }),
  fc.record({ kind: fc.constant("duplicate-item" as const), pick: fc.nat() }),
  fc.record({
    kind: fc.constant("raw-yaml" as const),
    pick: fc.nat(),
    choice: fc.nat(),
    depth: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 50 }), weight: 10 }, { arbitrary: fc.constantFrom(500, 2_000, 10_000), weight: 1 }),
  }),
);

/** One change to the rendered text or its bytes. */
export type TextMutation =
  | { kind: "bom" | "crlf" | "cr" | "yaml-1.1" | "yaml-1.3" | "tag-directive" | "more-documents" | "document-end" | "merge-key" }
  | { kind: "duplicate-key" | "tab-indent" | "indent-shift" | "truncate" | "comment"; at: number }
  | { kind: "control-char" | "non-utf8"; at: number; choice: number }
  | { kind: "long-line"; at: number; size: number }
  | { kind: "alias-bomb"; levels: number; use: boolean };

export const textMutationArb: fc.Arbitrary<TextMutation> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constantFrom("bom", "crlf", "cr", "yaml-1.1", "yaml-1.3", "tag-directive", "more-documents", "document-end", "merge-key") }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constantFrom("duplicate-key", "tab-indent", "indent-shift", "truncate", "comment"), at: fc.nat() }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constantFrom("control-char", "non-utf8"), at: fc.nat(), choice: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("long-line" as const), at: fc.nat(), size: fc.oneof({ arbitrary: fc.constant(4_096), weight: 8 }, { arbitrary: fc.constant(100_000), weight: 2 }, { arbitrary: fc.constant(1_000_000), weight: 1 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("alias-bomb" as const), levels: fc.integer({ min: 1, max: 12 }), use: fc.boolean() }), weight: 1 },
) as fc.Arbitrary<TextMutation>;

/** Billion laughs: level n is a list of ten aliases of level n-1, so a few hundred bytes expand to 10^levels. */
function aliasBomb(levels: number): string {
  const lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
  for (let i = 1; i <= levels; i++) lines.push(`lol${i}: &l${i} [${Array.from({ length: 10 }, () => `*l${i - 1}`).join(", ")}]`);
  return lines.join("\n") + "\n";
}

/** Applies text mutations; the result is bytes because some of them are not UTF-8. */
export function mutateText(text: string, mutations: readonly TextMutation[]): Buffer {
  let t = text;
  const chunks: { at: number; bytes: Buffer }[] = [];
  const lineAt = (n: number): { lines: string[]; i: number } => {
    const lines = t.split("\n");
    return { lines, i: n % lines.length };
  };
  for (const m of mutations) {
    switch (m.kind) {
      case "bom":
        t = "\uFEFF" + t;
        break;
      case "crlf":
        t = t.replace(/\n/g, "\r\n");
        break;
      case "cr":
        t = t.replace(/\n/g, "\r");
        break;
      case "yaml-1.1":
        t = "%YAML 1.1\n---\n" + t;
        break;
      case "yaml-1.3":
        t = "%YAML 1.3\n---\n" + t;
        break;
      case "tag-directive":
        t = "%TAG !e! tag:example.com,2000:\n---\n" + t.replace(/: (\w+)$/m, ": !e!thing $1");
        break;
      case "more-documents":
        t = t + "\n---\nversion: v1alpha1\n";
        break;
      case "document-end":
        t = t + "\n...\n";
        break;
      case "merge-key":
        t = "base: &base {max: 3, min: 0}\n" + t.replace(/^(\s+)max: .*$/m, "$1<<: *base");
        break;
      case "duplicate-key": {
        const { lines, i } = lineAt(m.at);
        const keyed = lines.map((l, j) => ({ l, j })).filter(({ l }) => /^\s*(- )?[A-Za-z]+:/.test(l));
        const pick = keyed[i % Math.max(1, keyed.length)];
        if (pick) lines.splice(pick.j + 1, 0, pick.l.replace(/^(\s*)- /, "$1  "));
        t = lines.join("\n");
        break;
      }
      case "tab-indent": {
        const { lines, i } = lineAt(m.at);
        lines[i] = lines[i]!.replace(/^( +)/, (s) => "\t".repeat(Math.max(1, s.length / 2)));
        t = lines.join("\n");
        break;
      }
      case "indent-shift": {
        const { lines, i } = lineAt(m.at);
        lines[i] = " " + lines[i];
        t = lines.join("\n");
        break;
      }
      case "truncate":
        t = t.slice(0, m.at % (t.length + 1));
        break;
      case "comment": {
        const at = m.at % (t.length + 1);
        t = t.slice(0, at) + " # comment" + t.slice(at);
        break;
      }
      case "long-line": {
        const { lines, i } = lineAt(m.at);
        lines.splice(i, 0, m.at % 2 ? "# " + "x".repeat(m.size) : `longValue${i}: ${"y".repeat(m.size)}`);
        t = lines.join("\n");
        break;
      }
      case "control-char": {
        const at = m.at % (t.length + 1);
        t = t.slice(0, at) + ["\u0000", "\u0007", "\u001b[31m", "\u007f", "\u0085", "\u2028", "\uFEFF", "\uFFFE"][m.choice % 8] + t.slice(at);
        break;
      }
      case "non-utf8": {
        // Lone continuation bytes, a truncated sequence, an overlong "/", a UTF-16 surrogate, 0xFF.
        const bytes = [[0x80], [0xc3], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xff, 0xfe], [0xf8, 0x88, 0x80, 0x80, 0x80]][m.choice % 7]!;
        chunks.push({ at: m.at, bytes: Buffer.from(bytes) });
        break;
      }
      case "alias-bomb":
        t = aliasBomb(m.levels) + (m.use ? t.replace(/^state:.*$/m, `state: *l${m.levels}`).replace(/^(\s+)userData: .*$/m, `$1userData: *l${m.levels}`) : t);
        break;
    }
  }
  let bytes = Buffer.from(t, "utf8");
  for (const c of chunks) {
    const at = c.at % (bytes.length + 1);
    bytes = Buffer.concat([bytes.subarray(0, at), c.bytes, bytes.subarray(at)]);
  }
  return bytes;
}

/** A generated config file and how it was made (for the failure report and the tallies). */
export interface FuzzCase {
  /** The schema-derived value before mutation. */
  base: Json;
  coherent: boolean;
  mutations: readonly Mutation[];
  textMutations: readonly TextMutation[];
}

/**
 * Whole cases: a value from the schema (made coherent half of the time), 0-3 value mutations and, for a third of
 * the cases, 1-3 text mutations. About one case in six is left unmutated, to keep valid files in the mix.
 */
export const fuzzCaseArb: fc.Arbitrary<FuzzCase> = fc
  .record({
    base: valueFromSchema(configSchema),
    coherent: fc.boolean(),
    mutations: fc.oneof({ arbitrary: fc.constant<Mutation[]>([]), weight: 1 }, { arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }), weight: 4 }),
    textMutations: fc.oneof({ arbitrary: fc.constant<TextMutation[]>([]), weight: 2 }, { arbitrary: fc.array(textMutationArb, { minLength: 1, maxLength: 3 }), weight: 1 }),
  })
  .map((c) => ({ ...c, base: c.coherent ? cohere(c.base as Cfg) : c.base }));

/** The bytes of a case's config file. */
export function renderCase(c: FuzzCase): Buffer {
  const { value, raw } = mutate(c.base, c.mutations);
  let text = stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
  for (const [marker, fragment] of raw) text = text.replace(marker, () => fragment);
  return mutateText(text, c.textMutations);
}

/** Files a case's `userDataFile` may name, made in the config's folder (the FIFO has no writer, on purpose). */
export const USER_DATA_FIXTURES: Record<string, string | Buffer> = {
  "user-data.yaml": "#cloud-config\npackages: [curl]\n",
  "plain.sh": "#!/bin/sh\necho ${env:FOO}\n",
  "binary.bin": Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x0a]),
};
