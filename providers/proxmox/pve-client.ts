import { setTimeout as sleepFor } from "node:timers/promises";
import {
  PveApiError,
  PveCloneRaceError,
  PveConfigError,
  PveConnectionError,
  PveGuestCommandError,
  PveMissingPrivilegeError,
  PveTaskError,
  grantHint,
  type MissingPrivilege,
} from "./pve-errors.js";
import { PveHttp, normalizeFingerprint, type PveCallOptions, type PveEndpoint, type PveParams } from "./pve-http.js";
import type {
  PveAgentExecStatus,
  PveClusterResource,
  PveGuestInterface,
  PveStorageContentEntry,
  PveTaskStatus,
  PveUpid,
  PveVmConfig,
  PveVmListEntry,
  PveVmStatus,
} from "./pve-types.js";
import { pveBool } from "./pve-types.js";

export type { PveCallOptions, PveEndpoint } from "./pve-http.js";

/** How the client reaches and authenticates to one PVE cluster. */
export interface PveClientOptions {
  /** Names the cluster in messages. @default "proxmox" */
  cluster?: string;
  /**
   * The nodes' API addresses. Calls about a node go to that node; cluster-wide calls go to the first endpoint (and
   * to the next ones when it does not answer). A node without an endpoint is reached through the first one.
   */
  endpoints: readonly PveEndpoint[];
  /** `USER@REALM!TOKENID`, e.g. `premiscale@pve!autoscaler`. */
  tokenId: string;
  /** Name of the environment variable that holds the token's secret (the secret itself never appears in config). */
  tokenSecretEnv: string;
  /** PEM of the cluster's CA (`/etc/pve/pve-root-ca.pem`) for endpoints without a pinned fingerprint. */
  ca?: string;
  /** Timeout of one API call, in ms. @default 30000 */
  timeoutMs?: number;
  /** Parallel connections per node. @default 4 */
  maxSocketsPerNode?: number;
  /** Where the secret is read from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Clock and sleep for polling, injectable so tests run without waiting. */
export interface PveClock {
  /** Milliseconds, monotonic enough for deadlines. */
  now(): number;
  /** Resolves after `ms`, rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock. */
export const systemClock: PveClock = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    await sleepFor(ms, undefined, signal ? { signal } : undefined);
  },
};

/** Options of `waitTask`. */
export interface WaitTaskOptions {
  /** Give up after this long (the task itself keeps running on PVE). */
  timeoutMs: number;
  /** @default 1000 */
  pollMs?: number;
  /**
   * With it, the interval starts at `pollMs` and doubles after each poll up to this (a quick task is seen at once,
   * a long clone is not polled every second for minutes). @default pollMs
   */
  maxPollMs?: number;
  /**
   * How long polls may go without an answer (a node that restarts pveproxy, or went offline) before the wait gives
   * up with that error instead of waiting out `timeoutMs`. @default timeoutMs
   */
  unreachableGraceMs?: number;
  signal?: AbortSignal;
  /** @default systemClock */
  clock?: PveClock;
}

/** Options of `clone` (PVE's parameter names in camel case where PVE uses none). */
export interface CloneOptions {
  newid: number;
  name?: string;
  description?: string;
  /** Full copy; PVE's default is linked for templates and full for other VMs. */
  full?: boolean;
  /** Node the clone is registered on; only when every disk is on shared storage. */
  target?: string;
  /** Storage for a full clone's disks. */
  storage?: string;
  format?: "raw" | "qcow2" | "vmdk";
  pool?: string;
  snapname?: string;
  /** KiB/s. */
  bwlimit?: number;
}

/** A cloud-init `ipconfigN` value. */
export interface PveIpConfig {
  /** IPv4 CIDR or `dhcp`. */
  ip?: string;
  gw?: string;
  /** IPv6 CIDR, `dhcp` or `auto`. */
  ip6?: string;
  gw6?: string;
}

/** Custom cloud-init files (`cicustom`): volume ids of snippets, e.g. `local:snippets/user.yaml`. */
export interface PveCicustom {
  user?: string;
  network?: string;
  meta?: string;
  vendor?: string;
}

/** Config changes premiscale makes, encoded by the client the way PVE expects them. */
export interface PveConfigChanges {
  name?: string;
  description?: string;
  /** Joined with `;` (pve-tag-list). */
  tags?: readonly string[];
  cores?: number;
  sockets?: number;
  memoryMiB?: number;
  onboot?: boolean;
  /** `1`, `0` or a property string such as `enabled=1,fstrim_cloned_disks=1`. */
  agent?: boolean | string;
  ciuser?: string;
  cipassword?: string;
  citype?: "nocloud" | "configdrive2" | "opennebula";
  ciupgrade?: boolean;
  cicustom?: PveCicustom;
  /** DNS servers (address-list). */
  nameserver?: readonly string[];
  /** Search domains, space separated by PVE. */
  searchdomain?: readonly string[];
  /** OpenSSH public keys, one per entry, raw: the client applies PVE's URL-encoding (see `encodeSshKeys`). */
  sshkeys?: readonly string[];
  /** `ipconfigN` by interface index N. */
  ipconfig?: Readonly<Record<number, PveIpConfig>>;
  /** Drives by key (`ide2`…) as PVE writes them, e.g. an ISO as CD-ROM: `local:iso/seed.iso,media=cdrom`. */
  drives?: Readonly<Record<string, string>>;
  /** Settings to remove. */
  delete?: readonly string[];
  /** Refuse the change when the config moved since this digest (from `getConfig`). */
  digest?: string;
}

/** `USER@REALM!TOKENID` as PVE names API tokens. */
export const TOKEN_ID_RE = /^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$/;
const UPID_RE =
  /^UPID:([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

/** Splits a UPID (pve-common PVE::UPID::decode's pattern); throws on anything else. */
export function parseUpid(upid: string): PveUpid {
  const m = UPID_RE.exec(upid);
  if (!m) {
    throw new PveConfigError("proxmox", `not a PVE task id (UPID): ${JSON.stringify(upid.slice(0, 120))}`, "a UPID looks like UPID:node:0000ABCD:0001E240:65A1B2C3:qmclone:9000:user@pve!token:");
  }
  return {
    node: m[1]!,
    pid: parseInt(m[2]!, 16),
    pstart: parseInt(m[3]!, 16),
    starttime: parseInt(m[4]!, 16),
    type: m[5]!,
    id: m[6]!,
    user: m[7]!,
  };
}

/**
 * Encodes SSH keys for the `sshkeys` parameter. PVE's schema has it as format `urlencoded`
 * (pve-common: only `[-%a-zA-Z0-9_.!~*'()]`, exactly what encodeURIComponent leaves alone) and qemu-server
 * decodes it with URI::Escape::uri_unescape, which does not turn `+` into a space; the form body then encodes it
 * a second time. So: encodeURIComponent, never URLSearchParams-style (`+` for spaces would reach the guest).
 */
export function encodeSshKeys(keys: readonly string[]): string {
  const lines = keys.map((k) => k.replace(/\r/g, "").trim()).filter((k) => k.length > 0);
  for (const l of lines) {
    if (l.includes("\n")) throw new PveConfigError("proxmox", "an SSH key spans several lines", "give one OpenSSH public key per entry");
  }
  return encodeURIComponent(lines.join("\n"));
}

/** Decodes `sshkeys` as stored in a VM config back into keys. */
export function decodeSshKeys(stored: string): string[] {
  return decodeURIComponent(stored)
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

/** Formats an `ipconfigN` value (`ip=…,gw=…,ip6=…,gw6=…`). */
export function formatIpConfig(c: PveIpConfig): string {
  return (["ip", "gw", "ip6", "gw6"] as const)
    .filter((k) => c[k] !== undefined && c[k] !== "")
    .map((k) => `${k}=${c[k]}`)
    .join(",");
}

/** Formats `cicustom` (`user=…,network=…,meta=…,vendor=…`). */
export function formatCicustom(c: PveCicustom): string {
  return (["user", "network", "meta", "vendor"] as const)
    .filter((k) => c[k] !== undefined && c[k] !== "")
    .map((k) => `${k}=${c[k]}`)
    .join(",");
}

/** Turns typed config changes into PVE's parameters. */
export function configParams(changes: PveConfigChanges): Record<string, string | number | boolean | undefined> {
  const p: Record<string, string | number | boolean | undefined> = {
    name: changes.name,
    description: changes.description,
    tags: changes.tags ? changes.tags.join(";") : undefined,
    cores: changes.cores,
    sockets: changes.sockets,
    memory: changes.memoryMiB,
    onboot: changes.onboot,
    agent: typeof changes.agent === "boolean" ? (changes.agent ? "1" : "0") : changes.agent,
    ciuser: changes.ciuser,
    cipassword: changes.cipassword,
    citype: changes.citype,
    ciupgrade: changes.ciupgrade,
    cicustom: changes.cicustom ? formatCicustom(changes.cicustom) : undefined,
    nameserver: changes.nameserver ? changes.nameserver.join(" ") : undefined,
    searchdomain: changes.searchdomain ? changes.searchdomain.join(" ") : undefined,
    sshkeys: changes.sshkeys ? encodeSshKeys(changes.sshkeys) : undefined,
    delete: changes.delete && changes.delete.length ? changes.delete.join(",") : undefined,
    digest: changes.digest,
  };
  for (const [n, c] of Object.entries(changes.ipconfig ?? {})) p[`ipconfig${n}`] = formatIpConfig(c);
  for (const [k, v] of Object.entries(changes.drives ?? {})) {
    if (!/^(ide|sata|scsi|virtio)\d+$/.test(k)) throw new PveConfigError("proxmox", `${JSON.stringify(k)} is not a drive key`, "use ide0..3, sata0..5, scsi0..30 or virtio0..15");
    p[k] = v;
  }
  return p;
}

function seg(s: string | number): string {
  return encodeURIComponent(String(s));
}

/**
 * premiscale's own typed client of the Proxmox VE REST API (`https://HOST:8006/api2/json`): API-token auth,
 * verified TLS (cluster CA or a pinned fingerprint per node), a timeout on every call, one connection pool per
 * node, answers unwrapped from `{data}`, errors as `PveApiError` / `PveConnectionError` / `PveTaskError`.
 * Only the endpoints premiscale uses; `call` reaches others.
 */
export class PveClient {
  readonly cluster: string;
  readonly tokenId: string;
  private readonly http: PveHttp;
  /** The node cluster-wide calls go to first; named in their errors. */
  private readonly firstNode: string;

  constructor(options: PveClientOptions) {
    const cluster = options.cluster ?? "proxmox";
    this.cluster = cluster;
    if (!TOKEN_ID_RE.test(options.tokenId)) {
      throw new PveConfigError(
        cluster,
        `API token id ${JSON.stringify(options.tokenId)} is not USER@REALM!TOKENID`,
        "use the full token id as `pveum user token list` shows it, e.g. premiscale@pve!autoscaler",
      );
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.tokenSecretEnv)) {
      throw new PveConfigError(cluster, `${JSON.stringify(options.tokenSecretEnv)} is not an environment variable name`, "name the variable that holds the token secret, e.g. PVE_TOKEN_SECRET");
    }
    const secret = (options.env ?? process.env)[options.tokenSecretEnv];
    if (!secret || !secret.trim()) {
      throw new PveConfigError(
        cluster,
        `environment variable ${options.tokenSecretEnv} (the secret of API token ${options.tokenId}) is not set`,
        `export ${options.tokenSecretEnv}=<the secret \`pveum user token add\` printed>`,
      );
    }
    if (/[\s;]/.test(secret.trim())) {
      throw new PveConfigError(cluster, `environment variable ${options.tokenSecretEnv} holds something that is not a token secret (it contains spaces or ';')`, "put only the secret (a UUID) in it");
    }
    if (options.endpoints.length === 0) {
      throw new PveConfigError(cluster, "no node endpoints configured", "list at least one node with its API address");
    }
    const seen = new Set<string>();
    for (const ep of options.endpoints) {
      if (seen.has(ep.node)) throw new PveConfigError(cluster, `node ${ep.node} is listed twice`, "give each node one endpoint");
      seen.add(ep.node);
      if (ep.fingerprint !== undefined && normalizeFingerprint(ep.fingerprint) === null) {
        throw new PveConfigError(
          cluster,
          `node ${ep.node}: fingerprint ${JSON.stringify(ep.fingerprint)} is not a SHA-256 fingerprint`,
          "copy it from `pvenode cert info` on the node (64 hex digits, colons optional)",
        );
      }
    }
    if (options.ca !== undefined && !options.ca.includes("-----BEGIN CERTIFICATE-----")) {
      throw new PveConfigError(cluster, "the CA is not a PEM certificate", "give the content of /etc/pve/pve-root-ca.pem");
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!(timeoutMs > 0)) throw new PveConfigError(cluster, `timeout ${timeoutMs} ms is not positive`, "give a timeout above 0");
    this.tokenId = options.tokenId;
    this.firstNode = options.endpoints[0]!.node;
    this.http = new PveHttp({
      cluster,
      endpoints: options.endpoints,
      tokenId: options.tokenId,
      secret: secret.trim(),
      secretEnv: options.tokenSecretEnv,
      ca: options.ca,
      timeoutMs,
      maxSocketsPerNode: options.maxSocketsPerNode ?? 4,
    });
  }

  /** Any API call, answer unwrapped from `{data}`. The typed methods below are preferred. */
  call<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, params?: PveParams, opts?: PveCallOptions): Promise<T> {
    return this.http.call<T>(method, path, params, opts);
  }

  /** Closes pooled connections. */
  close(): void {
    this.http.close();
  }

  /**
   * `GET /cluster/resources`: nodes, VMs and storages of the whole cluster in one call. PVE hides from a token what
   * it may not audit instead of refusing; unless `audit` is "ignore", a node listed without its numbers (no
   * Sys.Audit on /nodes/NODE) or a cluster without any visible storage (no Datastore.Audit) is an error naming the
   * privilege. VMs without VM.Audit are simply not listed; that cannot be told from "no VMs".
   */
  async clusterResources(
    type?: "vm" | "storage" | "node",
    opts: PveCallOptions & { audit?: "require" | "ignore" } = {},
  ): Promise<PveClusterResource[]> {
    const path = "/cluster/resources";
    const list = await this.http.call<PveClusterResource[]>("GET", path, { type }, opts);
    if (!Array.isArray(list)) throw this.protocol(path, "the resource list is not an array");
    if (opts.audit !== "ignore") {
      const site = { node: opts.via ?? this.firstNode, method: "GET", path };
      for (const r of list) {
        if (r.type === "node" && r.status === "online" && (r as { maxcpu?: number }).maxcpu === undefined) {
          const missing: MissingPrivilege = { path: `/nodes/${r.node as string}`, privileges: ["Sys.Audit"], any: false };
          throw new PveMissingPrivilegeError(site, missing, `node ${r.node as string} is listed without CPU and memory figures`, grantHint(this.tokenId, missing));
        }
      }
      const wantsStorage = type === undefined || type === "storage";
      if (wantsStorage && !list.some((r) => r.type === "storage")) {
        const missing: MissingPrivilege = { path: "/storage", privileges: ["Datastore.Audit"], any: false };
        throw new PveMissingPrivilegeError(
          site,
          missing,
          "no storage is visible (every PVE cluster has at least one)",
          grantHint(this.tokenId, missing),
        );
      }
    }
    return list;
  }

  /** `GET /cluster/nextid`: the lowest free VM id now. It reserves nothing (see `cloneWithFreshId`). */
  async nextId(opts?: PveCallOptions): Promise<number> {
    const v = await this.http.call<number | string>("GET", "/cluster/nextid", {}, opts);
    // PVE answers a number, or the id as a string when one was passed to be checked.
    const n = typeof v === "string" ? Number(v) : v;
    if (!Number.isInteger(n)) throw this.protocol("/cluster/nextid", `next id ${JSON.stringify(v)} is not an integer`);
    return n;
  }

  /** `POST /nodes/{node}/qemu/{vmid}/clone` → the UPID of the `qmclone` task. */
  clone(node: string, vmid: number, o: CloneOptions, opts?: PveCallOptions): Promise<string> {
    return this.http.call<string>(
      "POST",
      `/nodes/${seg(node)}/qemu/${vmid}/clone`,
      {
        newid: o.newid,
        name: o.name,
        description: o.description,
        full: o.full,
        target: o.target,
        storage: o.storage,
        format: o.format,
        pool: o.pool,
        snapname: o.snapname,
        bwlimit: o.bwlimit,
      },
      opts,
    );
  }

  /** `GET /nodes/{node}/qemu/{vmid}/config` (with `current`: without pending changes). */
  getConfig(node: string, vmid: number, o: { current?: boolean } = {}, opts?: PveCallOptions): Promise<PveVmConfig> {
    return this.http.call<PveVmConfig>("GET", `/nodes/${seg(node)}/qemu/${vmid}/config`, { current: o.current }, opts);
  }

  /**
   * `POST …/config`: changes applied by a `qmconfig` task → its UPID; or null when `backgroundDelaySeconds` was given
   * and the task finished (successfully) within it.
   */
  async setConfig(
    node: string,
    vmid: number,
    changes: PveConfigChanges,
    o: { backgroundDelaySeconds?: number } = {},
    opts?: PveCallOptions,
  ): Promise<string | null> {
    const r = await this.http.call<string | null>(
      "POST",
      `/nodes/${seg(node)}/qemu/${vmid}/config`,
      { ...configParams(changes), background_delay: o.backgroundDelaySeconds },
      opts,
    );
    return r ?? null;
  }

  /** `PUT …/config`: changes applied before PVE answers. */
  async setConfigSync(node: string, vmid: number, changes: PveConfigChanges, opts?: PveCallOptions): Promise<void> {
    await this.http.call<null>("PUT", `/nodes/${seg(node)}/qemu/${vmid}/config`, configParams(changes), opts);
  }

  /** `PUT …/resize`: grows a disk (`+2G` adds, `20G` sets; PVE never shrinks) → UPID of the `resize` task. */
  resize(node: string, vmid: number, disk: string, size: string, o: { digest?: string } = {}, opts?: PveCallOptions): Promise<string> {
    return this.http.call<string>("PUT", `/nodes/${seg(node)}/qemu/${vmid}/resize`, { disk, size, digest: o.digest }, opts);
  }

  /** `POST …/status/start` → UPID of `qmstart`. */
  start(node: string, vmid: number, o: { timeoutSeconds?: number } = {}, opts?: PveCallOptions): Promise<string> {
    return this.http.call<string>("POST", `/nodes/${seg(node)}/qemu/${vmid}/status/start`, { timeout: o.timeoutSeconds }, opts);
  }

  /**
   * `POST …/status/shutdown` (ACPI or guest agent) → UPID of `qmshutdown`. Without `forceStop` the task fails when the
   * guest is still running after `timeoutSeconds` (PVE's default 60); with it PVE kills the VM and the task ends with a
   * warning.
   */
  shutdown(node: string, vmid: number, o: { timeoutSeconds?: number; forceStop?: boolean } = {}, opts?: PveCallOptions): Promise<string> {
    return this.http.call<string>(
      "POST",
      `/nodes/${seg(node)}/qemu/${vmid}/status/shutdown`,
      { timeout: o.timeoutSeconds, forceStop: o.forceStop },
      opts,
    );
  }

  /** `POST …/status/stop` (power off) → UPID of `qmstop`; `overruleShutdown` aborts a running `qmshutdown` first. */
  stop(node: string, vmid: number, o: { timeoutSeconds?: number; overruleShutdown?: boolean } = {}, opts?: PveCallOptions): Promise<string> {
    return this.http.call<string>(
      "POST",
      `/nodes/${seg(node)}/qemu/${vmid}/status/stop`,
      { timeout: o.timeoutSeconds, "overrule-shutdown": o.overruleShutdown },
      opts,
    );
  }

  /**
   * `POST …/status/suspend` without `todisk`: pauses the VM in memory (QMP `stop`) → UPID of `qmpause`. PVE refuses
   * a VM that does not run ("VM N not running") before it starts a task. (`todisk` hibernates instead: never used.)
   */
  suspend(node: string, vmid: number, opts?: PveCallOptions): Promise<string> {
    return this.http.call<string>("POST", `/nodes/${seg(node)}/qemu/${vmid}/status/suspend`, {}, opts);
  }

  /** `POST …/status/resume`: continues a paused VM (QMP `cont`; nothing when it runs) → UPID of `qmresume`. */
  resume(node: string, vmid: number, opts?: PveCallOptions): Promise<string> {
    return this.http.call<string>("POST", `/nodes/${seg(node)}/qemu/${vmid}/status/resume`, {}, opts);
  }

  /** `DELETE /nodes/{node}/qemu/{vmid}` → UPID of `qmdestroy`. PVE refuses while the VM runs. */
  deleteVm(
    node: string,
    vmid: number,
    o: { purge?: boolean; destroyUnreferencedDisks?: boolean } = {},
    opts?: PveCallOptions,
  ): Promise<string> {
    return this.http.call<string>(
      "DELETE",
      `/nodes/${seg(node)}/qemu/${vmid}`,
      { purge: o.purge, "destroy-unreferenced-disks": o.destroyUnreferencedDisks },
      opts,
    );
  }

  /** `GET …/status/current`. */
  statusCurrent(node: string, vmid: number, opts?: PveCallOptions): Promise<PveVmStatus> {
    return this.http.call<PveVmStatus>("GET", `/nodes/${seg(node)}/qemu/${vmid}/status/current`, {}, opts);
  }

  /** `GET /nodes/{node}/qemu`: the VMs on one node the token may audit. */
  listVms(node: string, opts?: PveCallOptions): Promise<PveVmListEntry[]> {
    return this.http.call<PveVmListEntry[]>("GET", `/nodes/${seg(node)}/qemu`, {}, opts);
  }

  /** `GET /nodes/{node}/tasks/{upid}/status`. */
  taskStatus(node: string, upid: string, opts?: PveCallOptions): Promise<PveTaskStatus> {
    return this.http.call<PveTaskStatus>("GET", `/nodes/${seg(node)}/tasks/${seg(upid)}/status`, {}, opts);
  }

  /**
   * Polls a task until it stops. "OK" and "WARNINGS: n" are success; any other exit status is a `PveTaskError`
   * naming the task type, its VM and node. When `timeoutMs` passes first, a `PveTaskError` of kind "timeout" says so
   * (the task keeps running on PVE: the caller decides, e.g. to keep waiting for a slow clone rather than retrying).
   * A poll that gets no answer (node briefly unreachable) is retried until the deadline.
   */
  async waitTask(node: string, upid: string, o: WaitTaskOptions): Promise<PveTaskStatus> {
    const task = parseUpid(upid);
    if (task.node !== node) {
      throw new PveConfigError(this.cluster, `task ${upid} runs on node ${task.node}, not ${node}`, "poll a task on the node its UPID names");
    }
    const clock = o.clock ?? systemClock;
    let pollMs = o.pollMs ?? 1000;
    const maxPollMs = Math.max(pollMs, o.maxPollMs ?? pollMs);
    const start = clock.now();
    const what = `task ${task.type}${task.id ? ` of VM ${task.id}` : ""} on node ${node}`;
    let silentSince: number | null = null;
    for (;;) {
      let st: PveTaskStatus | null = null;
      try {
        st = await this.taskStatus(node, upid, { signal: o.signal });
        silentSince = null;
      } catch (e) {
        const transient = e instanceof PveConnectionError && (e.kind === "timeout" || e.kind === "unreachable");
        silentSince ??= clock.now();
        if (!transient || clock.now() - start >= o.timeoutMs || clock.now() - silentSince >= (o.unreachableGraceMs ?? o.timeoutMs)) throw e;
      }
      if (st && st.status === "stopped") {
        const exit = st.exitstatus ?? "unexpected status";
        if (exit === "OK" || /^WARNINGS: \d+$/.test(exit)) return st;
        throw new PveTaskError(
          node,
          upid,
          task.type,
          task.id,
          "failed",
          exit,
          `${what} failed: ${exit}`,
          `see its log: \`pvenode task log ${node} ${upid}\``,
        );
      }
      const elapsed = clock.now() - start;
      if (elapsed >= o.timeoutMs) {
        throw new PveTaskError(
          node,
          upid,
          task.type,
          task.id,
          "timeout",
          null,
          `${what} still running after ${Math.round(elapsed / 1000)} s`,
          `it keeps running on PVE; follow it with \`pvenode task status ${node} ${upid}\` before retrying anything`,
        );
      }
      await clock.sleep(Math.min(pollMs, o.timeoutMs - elapsed), o.signal);
      pollMs = Math.min(maxPollMs, pollMs * 2);
    }
  }

  /**
   * `POST /nodes/{node}/storage/{storage}/upload` (multipart, content=iso) → UPID of the `imgcopy` task that moves the
   * file into place. For premiscale's own small NoCloud seeds: the body is built in memory.
   */
  async uploadIso(node: string, storage: string, filename: string, bytes: Uint8Array, opts?: PveCallOptions): Promise<string> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,250}\.(iso|img)$/i.test(filename)) {
      throw new PveConfigError(this.cluster, `ISO file name ${JSON.stringify(filename)} is not allowed`, "use letters, digits, . _ + - and end in .iso");
    }
    return this.http.call<string>("POST", `/nodes/${seg(node)}/storage/${seg(storage)}/upload`, {}, opts, {
      fields: [["content", "iso"]],
      file: { field: "filename", filename, bytes },
    });
  }

  /**
   * `DELETE /nodes/{node}/storage/{storage}/content/{volume}` → UPID of the `imgdel` task. Needs Datastore.Allocate on
   * the storage (PVE asks that for every volume but backups).
   */
  deleteVolume(node: string, storage: string, volid: string, opts?: PveCallOptions): Promise<string> {
    return this.http.call<string>("DELETE", `/nodes/${seg(node)}/storage/${seg(storage)}/content/${seg(volid)}`, {}, opts);
  }

  /** `GET /nodes/{node}/storage/{storage}/content`. */
  storageContent(
    node: string,
    storage: string,
    o: { content?: string; vmid?: number } = {},
    opts?: PveCallOptions,
  ): Promise<PveStorageContentEntry[]> {
    return this.http.call<PveStorageContentEntry[]>("GET", `/nodes/${seg(node)}/storage/${seg(storage)}/content`, { content: o.content, vmid: o.vmid }, opts);
  }

  /** `GET …/agent/network-get-interfaces`: the guest's interfaces and addresses, from the QEMU guest agent. */
  async agentNetworkGetInterfaces(node: string, vmid: number, opts?: PveCallOptions): Promise<PveGuestInterface[]> {
    const path = `/nodes/${seg(node)}/qemu/${vmid}/agent/network-get-interfaces`;
    const r = await this.http.call<{ result?: PveGuestInterface[] }>("GET", path, {}, opts);
    if (!r || !Array.isArray(r.result)) throw this.protocol(path, "answer has no result list");
    return r.result;
  }

  /** `POST …/agent/exec`: starts a command in the guest → its pid there. */
  agentExec(node: string, vmid: number, command: readonly string[], o: { inputData?: string } = {}, opts?: PveCallOptions): Promise<{ pid: number }> {
    return this.http.call<{ pid: number }>("POST", `/nodes/${seg(node)}/qemu/${vmid}/agent/exec`, { command, "input-data": o.inputData }, opts);
  }

  /** `GET …/agent/exec-status?pid=`. */
  agentExecStatus(node: string, vmid: number, pid: number, opts?: PveCallOptions): Promise<PveAgentExecStatus> {
    return this.http.call<PveAgentExecStatus>("GET", `/nodes/${seg(node)}/qemu/${vmid}/agent/exec-status`, { pid }, opts);
  }

  /**
   * Runs a command in the guest through the agent and waits for it to exit (e.g. `systemctl is-system-running`
   * for readiness) → exit code and output.
   */
  async agentRun(
    node: string,
    vmid: number,
    command: readonly string[],
    o: { timeoutMs: number; pollMs?: number; clock?: PveClock; signal?: AbortSignal },
  ): Promise<{ exitcode: number | null; signal: number | null; out: string; err: string }> {
    const clock = o.clock ?? systemClock;
    const start = clock.now();
    const { pid } = await this.agentExec(node, vmid, command, {}, { signal: o.signal });
    for (;;) {
      const s = await this.agentExecStatus(node, vmid, pid, { signal: o.signal });
      if (pveBool(s.exited)) {
        return { exitcode: s.exitcode ?? null, signal: s.signal ?? null, out: s["out-data"] ?? "", err: s["err-data"] ?? "" };
      }
      const elapsed = clock.now() - start;
      if (elapsed >= o.timeoutMs) {
        throw new PveGuestCommandError(node, vmid, command, pid, o.timeoutMs);
      }
      await clock.sleep(Math.min(o.pollMs ?? 500, o.timeoutMs - elapsed), o.signal);
    }
  }

  private protocol(path: string, message: string): PveConnectionError {
    return new PveConnectionError(
      { node: this.firstNode, method: "GET", path },
      "protocol",
      message,
      "this PVE version answers differently than premiscale expects; please report it with the PVE version",
    );
  }
}

/** Messages PVE gives when the id a clone asked for was taken by someone else meanwhile. */
const ID_TAKEN = [
  // qemu-server clone_vm: the id's config file exists on this node (checked before and again inside the task).
  /unable to create VM (\d+): config file already exists/,
  // another clone to the same id holds its lock (lock_config_full with a 1 s timeout inside the task).
  /can't lock file '\/var\/lock\/qemu-server\/lock-(\d+)\.conf' - got timeout/,
  // the id exists on another node: pmxcfs refuses the config file when the task writes it.
  /close \(rename\) atomic file '[^']*\/qemu-server\/(\d+)\.conf' failed: File exists/,
];

/** Whether an error says the requested new id was taken (so another id should be tried). */
export function isIdTaken(e: unknown, newid: number): boolean {
  const text = e instanceof PveTaskError ? (e.exitstatus ?? "") : e instanceof PveApiError ? e.pveMessage : "";
  return ID_TAKEN.some((re) => {
    const m = re.exec(text);
    return m !== null && Number(m[1]) === newid;
  });
}

/** What `cloneWithFreshId` needs of a client. */
export type CloneClient = Pick<PveClient, "nextId" | "clone" | "waitTask">;

/** Result of `cloneWithFreshId`. */
export interface FreshClone {
  vmid: number;
  upid: string;
  task: PveTaskStatus;
  /** Ids tried before `vmid` and found taken. */
  collisions: number[];
}

/**
 * Clones with an id from `nextId()` and, when PVE says another VM took that id meanwhile (/cluster/nextid reserves
 * nothing, so parallel clones race), asks for a new id and tries again, at most `attempts` times. Waits for the
 * clone task, because the id can also turn out taken inside the task. Any other failure, and a clone that is still
 * running at `wait.timeoutMs`, is thrown as is: a slow clone must not be retried (it would leave a second copy).
 */
export async function cloneWithFreshId(
  client: CloneClient,
  node: string,
  vmid: number,
  clone: Omit<CloneOptions, "newid">,
  o: { wait: WaitTaskOptions; attempts?: number; onCollision?: (newid: number, error: Error) => void },
): Promise<FreshClone> {
  const attempts = o.attempts ?? 5;
  if (!(attempts >= 1)) throw new PveConfigError(node, `clone attempts ${attempts} is below 1`, "give at least one attempt");
  const collisions: number[] = [];
  let lastError: Error | null = null;
  for (let i = 0; i < attempts; i++) {
    const newid = await client.nextId({ signal: o.wait.signal });
    try {
      const upid = await client.clone(node, vmid, { ...clone, newid }, { signal: o.wait.signal });
      const task = await client.waitTask(node, upid, o.wait);
      return { vmid: newid, upid, task, collisions };
    } catch (e) {
      if (!isIdTaken(e, newid)) throw e;
      collisions.push(newid);
      lastError = e as Error;
      o.onCollision?.(newid, lastError);
    }
  }
  throw new PveCloneRaceError(node, vmid, collisions, lastError!);
}
