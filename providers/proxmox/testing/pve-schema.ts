/**
 * Our short notation for PVE API parameters and answer fields, used by testdata/pve-api-excerpt.json (written from
 * pve-docs api-viewer/apidata.js) and by the test double's own route table, so the two can be compared:
 *
 *   integer? 100..999999999 format(pve-vmid)      type, `?` = optional, range, format
 *   string enum(raw|qcow2|vmdk) maxlen(40)        enum, maximum length
 *   string pattern(\+?\d+(\.\d+)?[KMGT]?)         pattern (anchored, as PVE anchors it)
 *   array of string
 *
 * The validator reproduces pve-common PVE::JSONSchema's checks and messages for these (form values arrive as
 * strings; booleans only as 0/1).
 */

/** One parsed parameter or field. */
export interface PveSpec {
  type: "string" | "integer" | "number" | "boolean" | "array" | "object" | "null";
  optional: boolean;
  enum?: string[];
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  format?: string;
  pattern?: string;
  items?: string;
}

/** Parses one spec string; throws on anything it does not know, so a typo in a table cannot pass silently. */
export function parseSpec(text: string): PveSpec {
  const m = /^(string|integer|number|boolean|array|object|null)(\?)?(?: of (\w+))?(.*)$/.exec(text.trim());
  if (!m) throw new Error(`bad spec ${JSON.stringify(text)}`);
  const spec: PveSpec = { type: m[1] as PveSpec["type"], optional: m[2] === "?" };
  if (m[3]) spec.items = m[3];
  let rest = m[4]!.trim();
  while (rest) {
    let mm: RegExpExecArray | null;
    if ((mm = /^enum\(([^)]*)\)\s*/.exec(rest))) spec.enum = mm[1]!.split("|");
    else if ((mm = /^(-?\d+(?:\.\d+)?)?\.\.(-?\d+(?:\.\d+)?)?\s*/.exec(rest)) && mm[0].trim()) {
      if (mm[1] !== undefined) spec.minimum = Number(mm[1]);
      if (mm[2] !== undefined) spec.maximum = Number(mm[2]);
    } else if ((mm = /^maxlen\((\d+)\)\s*/.exec(rest))) spec.maxLength = Number(mm[1]);
    else if ((mm = /^format\(([\w-]+)\)\s*/.exec(rest))) spec.format = mm[1];
    else if ((mm = /^pattern\((.*)\)\s*$/.exec(rest))) spec.pattern = mm[1];
    else throw new Error(`bad spec ${JSON.stringify(text)} at ${JSON.stringify(rest)}`);
    rest = rest.slice(mm[0].length).trim();
  }
  return spec;
}

/** A parameter table: PVE name (with `[n]` for numbered ones such as `ipconfig[n]`) → spec string. */
export type PveParamTable = Readonly<Record<string, string>>;

/** Finds the table entry for a parameter name, resolving `ipconfig0` to `ipconfig[n]`. */
export function specKey(table: PveParamTable, name: string): string | undefined {
  if (name in table) return name;
  const m = /^([a-z]+)(\d+)$/.exec(name);
  if (m && `${m[1]}[n]` in table && Number(m[2]) < 32) return `${m[1]}[n]`;
  return undefined;
}

const NODE_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const STORAGE_ID_RE = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i;
const DNS_NAME_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const CONFIGID_RE = /^[a-z][a-z0-9_-]+$/i;
const TAG_RE = /^[a-z0-9_][a-z0-9_\-+.]*$/i;
const IPV4_RE = /^(?:\d{1,3}\.){3}\d{1,3}$/;

/** pve-common's format checks the client's parameters touch; returns the error text or null. */
function checkFormat(format: string, value: string): string | null {
  switch (format) {
    case "urlencoded":
      // pve-common JSONSchema pve_verify_urlencoded: exactly what encodeURIComponent leaves unescaped, plus %.
      return /^[-%a-zA-Z0-9_.!~*'()]*$/.test(value) ? null : `invalid urlencoded string: ${value}`;
    case "pve-node":
      return NODE_RE.test(value) ? null : `value does not look like a valid node name`;
    case "pve-storage-id":
      return STORAGE_ID_RE.test(value) ? null : `storage ID '${value}' contains illegal characters`;
    case "dns-name":
      return DNS_NAME_RE.test(value) ? null : `value does not look like a valid DNS name`;
    case "pve-configid":
      return CONFIGID_RE.test(value) ? null : `invalid configuration ID '${value}'`;
    case "pve-configid-list":
      for (const id of value.split(/[,;\s]+/).filter(Boolean)) if (!/^[a-z][a-z0-9_]*$/i.test(id)) return `invalid configuration ID '${id}'`;
      return null;
    case "pve-tag-list":
      for (const t of value.split(/[;, ]+/).filter(Boolean)) if (!TAG_RE.test(t)) return `invalid tag '${t}'`;
      return null;
    case "address-list":
      for (const a of value.split(/[,;\s]+/).filter(Boolean)) if (!IPV4_RE.test(a) && !/^[0-9a-fA-F:]+$/.test(a)) return `unable to parse address '${a}'`;
      return null;
    case "pve-qm-ipconfig":
      for (const part of value.split(",")) {
        const [k, v] = part.split("=", 2);
        if (!["ip", "gw", "ip6", "gw6"].includes(k ?? "") || v === undefined) return `invalid format - unknown key in comma separated list '${part}'`;
      }
      return null;
    case "pve-qm-cicustom":
      for (const part of value.split(",")) {
        const [k, v] = part.split("=", 2);
        if (!["user", "network", "meta", "vendor"].includes(k ?? "") || !v) return `invalid format - unknown key in comma separated list '${part}'`;
      }
      return null;
    default:
      // Formats the double does not check (pve-vmid is covered by the range, pve-poolid, pve-storage-content...).
      return null;
  }
}

/**
 * Checks form parameters against a table the way PVE does (additionalProperties 0); returns PVE's per-parameter
 * messages (empty when all is well) and the values converted (integers to numbers, booleans to 0/1, arrays).
 */
export function validateParams(
  table: PveParamTable,
  raw: Readonly<Record<string, string | string[]>>,
): { errors: Record<string, string>; values: Record<string, string | number | string[]> } {
  const errors: Record<string, string> = {};
  const values: Record<string, string | number | string[]> = {};
  for (const [name, value] of Object.entries(raw)) {
    const key = specKey(table, name);
    if (!key) {
      errors[name] = "property is not defined in schema and the schema does not allow additional properties";
      continue;
    }
    const spec = parseSpec(table[key]!);
    if (spec.type === "array") {
      values[name] = Array.isArray(value) ? value : [value];
      continue;
    }
    const v = Array.isArray(value) ? value.join(",") : value;
    const err = checkValue(spec, v);
    if (err) errors[name] = err;
    else values[name] = spec.type === "integer" || spec.type === "boolean" ? Number(v) : spec.type === "number" ? Number(v) : v;
  }
  for (const [key, text] of Object.entries(table)) {
    if (key.endsWith("[n]")) continue;
    if (!parseSpec(text).optional && !(key in raw)) errors[key] = "property is missing and it is not optional";
  }
  return { errors, values };
}

function checkValue(spec: PveSpec, v: string): string | null {
  if (spec.type === "boolean" && v !== "0" && v !== "1") return `type check ('boolean') failed - got '${v}'`;
  if (spec.type === "integer" && !/^[+-]?\d+$/.test(v)) return `type check ('integer') failed - got '${v}'`;
  if (spec.type === "number" && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v)) return `type check ('number') failed - got '${v}'`;
  if (spec.format) {
    const f = checkFormat(spec.format, v);
    if (f) return f.startsWith("invalid format") ? f : `invalid format - ${f}`;
  }
  if (spec.pattern && !new RegExp(`^(?:${spec.pattern})$`).test(v)) return "value does not match the regex pattern";
  if (spec.maxLength !== undefined && v.length > spec.maxLength) return `value may only be ${spec.maxLength} characters long`;
  if (spec.type === "integer" || spec.type === "number") {
    const n = Number(v);
    if (spec.maximum !== undefined && n > spec.maximum) return `value must have a maximum value of ${spec.maximum}`;
    if (spec.minimum !== undefined && n < spec.minimum) return `value must have a minimum value of ${spec.minimum}`;
  }
  if (spec.enum && !spec.enum.includes(v)) return `value '${v}' does not have a value in the enumeration '${spec.enum.join(", ")}'`;
  return null;
}

/** Whether a JSON value is of a spec's type as PVE sends it (booleans as 0/1 or true/false). */
export function valueHasType(spec: PveSpec, v: unknown): boolean {
  switch (spec.type) {
    case "string":
      return typeof v === "string";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "boolean":
      return v === 0 || v === 1 || typeof v === "boolean";
    case "array":
      return Array.isArray(v);
    case "object":
      return v !== null && typeof v === "object" && !Array.isArray(v);
    case "null":
      return v === null;
  }
}
