import { ProviderError } from "../../config/errors.js";

/** What a call was: enough to name it in a message without any secret. */
export interface PveCallSite {
  /** The PVE node the call is about (`/nodes/NODE/…`), else the node that answered a cluster-wide call. */
  node: string;
  /** The node whose API the call went through, when that is another node (pveproxy forwards it). */
  via?: string;
  method: string;
  /** API path below /api2/json, without the query string. */
  path: string;
}

/** A privilege PVE said is missing, read from its "Permission check failed (PATH, PRIV)" message. */
export interface MissingPrivilege {
  /** ACL path, e.g. `/vms/100` or `/storage/local-lvm`. */
  path: string;
  /** One privilege, or several of which any one would do (PVE joins those with `|`). */
  privileges: string[];
  /** True when any one of `privileges` is enough. */
  any: boolean;
}

const PERMISSION_RE = /^Permission check failed \(([^,]+), ([^)]+)\)/;

/** Reads PVE's permission message (pve-common PVE::Exception::raise_perm_exc); null when it names no privilege. */
export function parseMissingPrivilege(message: string): MissingPrivilege | null {
  const m = PERMISSION_RE.exec(message.trim());
  if (!m) return null;
  const privs = m[2]!.trim();
  return { path: m[1]!.trim(), privileges: privs.split("|"), any: privs.includes("|") };
}

/** The `pveum` line that grants a missing privilege to a token, and the privilege-separation caveat. */
export function grantHint(tokenId: string, missing: MissingPrivilege): string {
  const what = missing.any ? `one of ${missing.privileges.join(", ")}` : missing.privileges.join(", ");
  return (
    `the token ${tokenId} lacks ${what} on ${missing.path}: give it a role that has ${missing.any ? "one of them" : "it"}, ` +
    `e.g. \`pveum role add PremiscaleProvider --privs "${missing.privileges[0]}"\` then ` +
    `\`pveum acl modify ${missing.path} --tokens '${tokenId}' --roles PremiscaleProvider\` ` +
    `(a privilege-separated token gets only what both the token and its user have; see providers/proxmox/README.md for the full role)`
  );
}

/** PVE answered a call with an error status. */
export class PveApiError extends ProviderError {
  override name = "PveApiError";
  constructor(
    readonly site: PveCallSite,
    /** HTTP status; 595/596 are pveproxy's own "could not reach the node it proxies to". */
    readonly status: number,
    /** PVE's message: the `message` of the body, else the HTTP reason phrase (where PVE also puts it). */
    readonly pveMessage: string,
    /** PVE's per-parameter messages (400 "Parameter verification failed."), by parameter name. */
    readonly errors: Readonly<Record<string, string>>,
    hint: string,
    /** Set for a 403 that names the privilege. */
    readonly missingPrivilege: MissingPrivilege | null = null,
  ) {
    const detail = Object.entries(errors)
      .map(([k, v]) => `${k}: ${v}`)
      .join("; ");
    super(
      site.node,
      `${site.method} ${site.path}${site.via ? ` (via ${site.via})` : ""} failed: ${status} ${pveMessage}${detail ? ` (${detail})` : ""}`,
      hint,
      { code: status === 403 ? "pve_forbidden" : status === 401 ? "pve_unauthorized" : "pve_api_error" },
    );
  }
}

/** Why a call got no answer at all. */
export type PveConnectionFailure = "timeout" | "unreachable" | "tls" | "fingerprint" | "aborted" | "protocol";

/** A call got no usable answer: timeout, refused or reset connection, TLS verification failed, or garbage. */
export class PveConnectionError extends ProviderError {
  override name = "PveConnectionError";
  constructor(
    readonly site: PveCallSite,
    readonly kind: PveConnectionFailure,
    message: string,
    hint: string,
    options?: { cause?: unknown },
  ) {
    super(site.node, `${site.method} ${site.path}: ${message}`, hint, { cause: options?.cause, code: `pve_${kind}` });
  }
}

/** A PVE task (UPID) ended with an error, or did not end in time. */
export class PveTaskError extends ProviderError {
  override name = "PveTaskError";
  constructor(
    readonly node: string,
    readonly upid: string,
    /** Task type, e.g. `qmclone`, `qmstart`, `qmdestroy`. */
    readonly taskType: string,
    /** The task's object id (the VM id for qm* tasks); empty when the task has none. */
    readonly taskId: string,
    readonly kind: "failed" | "timeout",
    /** PVE's exit status for a failed task (the error text); null on timeout. */
    readonly exitstatus: string | null,
    message: string,
    hint: string,
  ) {
    super(node, message, hint, { code: kind === "failed" ? "pve_task_failed" : "pve_task_timeout" });
  }
}

/** The client's own configuration is wrong (token id, secret variable, fingerprint, endpoints). */
export class PveConfigError extends ProviderError {
  override name = "PveConfigError";
  constructor(cluster: string, message: string, hint: string) {
    super(cluster, message, hint, { code: "pve_config_invalid" });
  }
}

/**
 * PVE answered, but with less than premiscale needs because the token may not see it: PVE leaves out what a token
 * may not audit instead of refusing (nodes without numbers, storages missing) — premiscale names the privilege.
 */
export class PveMissingPrivilegeError extends ProviderError {
  override name = "PveMissingPrivilegeError";
  constructor(
    readonly site: PveCallSite,
    readonly missingPrivilege: MissingPrivilege,
    message: string,
    hint: string,
  ) {
    super(site.node, `${site.method} ${site.path}: ${message}`, hint, { code: "pve_forbidden" });
  }
}

/** Every id `cloneWithFreshId` tried was taken by a racing clone. */
export class PveCloneRaceError extends ProviderError {
  override name = "PveCloneRaceError";
  constructor(
    node: string,
    readonly template: number,
    /** The ids tried, in order. */
    readonly collisions: number[],
    last: Error,
  ) {
    super(
      node,
      `clone of VM ${template}: no free VM id after ${collisions.length} attempts (tried ${collisions.join(", ")}); last: ${last.message}`,
      "many clones run at once in this cluster; retry later, or keep other tools out of premiscale's id range (datacenter.cfg next-id)",
      { cause: last, code: "pve_clone_race" },
    );
  }
}

/** A command run in a guest through the QEMU guest agent did not exit in time. */
export class PveGuestCommandError extends ProviderError {
  override name = "PveGuestCommandError";
  constructor(
    node: string,
    readonly vmid: number,
    readonly command: readonly string[],
    readonly pid: number,
    timeoutMs: number,
  ) {
    super(
      node,
      `VM ${vmid}: guest command ${command.join(" ")} (pid ${pid}) did not exit within ${timeoutMs} ms`,
      "the guest may be busy or the command hangs; it keeps running in the guest",
      { code: "pve_guest_command_timeout" },
    );
  }
}
