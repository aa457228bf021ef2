/**
 * The body of a check-in as cloud-init's `phone_home` module sends it (`post: all`), checked field by field.
 * Pure: bytes in, a result out.
 */

/** SSH host key types `phone_home` reports, as in its `pub_key_<type>` field names. */
export type SshKeyType = "rsa" | "ecdsa" | "ed25519" | "dsa";

/** The fields premiscale takes from a check-in body. */
export interface CheckInForm {
  instanceId: string;
  /** `null` when absent or `N/A`. */
  hostname: string | null;
  /** `null` when absent or `N/A`. */
  fqdn: string | null;
  /** One OpenSSH public key line per type the guest has; types sent as `N/A` are left out. */
  pubKeys: Partial<Record<SshKeyType, string>>;
}

/** What `parseCheckInForm` found: the form, or why the body is refused (a sentence for the log). */
export type CheckInFormResult = { ok: true; form: CheckInForm } | { ok: false; reason: string };

/** cloud-init's placeholder for a value it does not have. */
const NOT_AVAILABLE = "N/A";

/** Algorithms allowed in each `pub_key_<type>` field (what `/etc/ssh/ssh_host_<type>_key.pub` can hold). */
const KEY_ALGORITHMS: Record<SshKeyType, readonly string[]> = {
  rsa: ["ssh-rsa"],
  ecdsa: ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"],
  ed25519: ["ssh-ed25519"],
  dsa: ["ssh-dss"],
};

const KEY_TYPES = Object.keys(KEY_ALGORITHMS) as SshKeyType[];
const KNOWN_FIELDS = new Set(["instance_id", "hostname", "fqdn", ...KEY_TYPES.map((t) => `pub_key_${t}`)]);
const MAX_NAME_LENGTH = 255;

/**
 * Whether `id` can be an instance id: premiscale uses domain UUIDs; other NoCloud ids (`i-abc123`) fit too.
 * The narrow alphabet keeps ids safe to put in URLs, logs and metric labels.
 */
export function isInstanceId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id);
}

/**
 * Parses an `application/x-www-form-urlencoded` check-in body. Refuses anything cloud-init would not send: bytes
 * that are not UTF-8, broken `%` escapes, pairs without `=`, a known field given twice, a missing or malformed
 * `instance_id`, host names with control characters, and `pub_key_*` values that are neither `N/A` nor an OpenSSH
 * public key of that type. Unknown fields are ignored, so newer cloud-init versions that post more still check in.
 */
export function parseCheckInForm(body: Uint8Array): CheckInFormResult {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    return fail("the body is not UTF-8");
  }
  // URLSearchParams silently keeps a broken escape as literal text; cloud-init never sends one, so it is an error.
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) return fail("the body has a malformed %-escape");
  const pairs = text === "" ? [] : text.split("&");
  if (pairs.some((p) => !/^[^=]+=/.test(p))) return fail("the body is not form-encoded (every field must be name=value)");

  const fields = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(text)) {
    if (!KNOWN_FIELDS.has(name)) continue;
    if (fields.has(name)) return fail(`field ${name} appears more than once`);
    fields.set(name, value);
  }

  const instanceId = fields.get("instance_id");
  if (instanceId === undefined || instanceId === NOT_AVAILABLE) return fail("field instance_id is missing");
  if (!isInstanceId(instanceId)) return fail("field instance_id is not a valid instance id");

  const names: { hostname: string | null; fqdn: string | null } = { hostname: null, fqdn: null };
  for (const name of ["hostname", "fqdn"] as const) {
    const value = fields.get(name);
    if (value === undefined || value === NOT_AVAILABLE) continue;
    if (value.length === 0 || value.length > MAX_NAME_LENGTH || /[\s\p{Cc}]/u.test(value)) {
      return fail(`field ${name} is not a host name`);
    }
    names[name] = value;
  }

  const pubKeys: Partial<Record<SshKeyType, string>> = {};
  for (const type of KEY_TYPES) {
    const value = fields.get(`pub_key_${type}`);
    if (value === undefined || value === NOT_AVAILABLE) continue;
    // cloud-init posts the .pub file as read, final newline included.
    const line = value.trim();
    if (!isPublicKeyLine(line, KEY_ALGORITHMS[type])) return fail(`field pub_key_${type} is neither N/A nor an OpenSSH ${type} public key`);
    pubKeys[type] = line;
  }

  return { ok: true, form: { instanceId, ...names, pubKeys } };
}

/**
 * `<algorithm> <base64 blob> [comment]`, where the blob is an SSH wire-format key whose first field repeats the
 * algorithm: a check that the value really is a key, not just text that starts like one.
 */
function isPublicKeyLine(line: string, algorithms: readonly string[]): boolean {
  const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [^\p{Cc}]*)?$/u.exec(line);
  if (!m || !algorithms.includes(m[1]!)) return false;
  const blob = Buffer.from(m[2]!, "base64");
  if (blob.length < 4) return false;
  const nameLength = blob.readUInt32BE(0);
  return nameLength === m[1]!.length && blob.subarray(4, 4 + nameLength).toString("latin1") === m[1];
}

function fail(reason: string): CheckInFormResult {
  return { ok: false, reason };
}
