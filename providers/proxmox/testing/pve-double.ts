/**
 * A test double of a Proxmox VE cluster's API: one HTTPS server per node on 127.0.0.1, one in-memory cluster behind
 * them. It follows the PVE API schema field for field for every endpoint premiscale's client uses — parameter names,
 * types, enums, ranges and answer fields as in pve-docs `api-viewer/apidata.js` (checked by pve-schema.test.ts
 * against testdata/pve-api-excerpt.json) — and PVE's behaviour and messages as read in the sources:
 *
 * - pve-http-server (APIServer/AnyEvent.pm, Formatter/Standard.pm): `{data}` envelope; errors as HTTP status, the
 *   message as reason phrase and in `message` (with PVE's trailing newline), `errors` per parameter; token auth
 *   `PVEAPIToken=USER@REALM!ID=SECRET`; 401 "Authentication failed!" after PVE's 3 s delay (configurable here);
 *   multipart upload with the `content` field before the file part named `filename`, Content-Length required.
 * - pve-manager (HTTPServer.pm, API2/Cluster.pm, API2Tools.pm, API2/Tasks.pm): permission check before proxying to
 *   the node, 595 when that node cannot be reached; `/cluster/resources` entries and what a token without
 *   VM.Audit / Sys.Audit / Datastore.Audit sees (VMs left out, nodes without figures, storages left out); nextid;
 *   task status, where a token may read its own tasks.
 * - pve-common (JSONSchema.pm, Exception.pm, UPID.pm, Tools.pm): parameter checks and their messages, "Parameter
 *   verification failed.", "Permission check failed (PATH, PRIV)", UPID format, "OK" / "WARNINGS: n" / error text.
 * - pve-access-control (RPCEnvironment.pm, AccessControl.pm): ACL paths inherited downwards; a privilege-separated
 *   token has what both it and its user have.
 * - qemu-server (API2/Qemu.pm, API2/Qemu/Agent.pm, QemuServer.pm, QemuServer/Agent.pm): clone (linked only from a
 *   template, `storage`/`format` only for full clones, `target` only when all disks are shared, "config file already
 *   exists" before and inside the task, the 1 s lock on the new id, pmxcfs refusing an id that exists on another node),
 *   config get/set with digest and per-key privileges, `sshkeys` format urlencoded, start/shutdown/stop/destroy tasks
 *   and their messages, delete refused while running, resize never shrinking, guest agent availability checks,
 *   exec/exec-status with decoded output; pause and resume (QemuServer/RunState.pm `vm_suspend` without `todisk`,
 *   `vm_resume`: `qmpause` and `qmresume` tasks, "VM N not running" before the task, the VM's lock checked in it, a
 *   paused VM's QMP status `paused` in `status/current` and, through pvestatd's broadcast, as its `status` in
 *   `/cluster/resources`; a shutdown of a paused VM refused, or a stop with `forceStop`). Quorum: without a majority
 *   of nodes online, writes fail as on PVE.
 * - pve-storage (API2/Storage/Status.pm, Content.pm): upload of iso (extension checked, storage must allow `iso`),
 *   an `imgcopy` task, content listing.
 *
 * Time is `now()` (injectable): tasks run for a configurable time per type and their effects happen when that time
 * has passed, evaluated on every request, so tests drive it with a fake clock instead of sleeping.
 *
 * What it does NOT model: ticket (password) logins and CSRF; containers; snapshots (`snapname`, `snapshot`), pools
 * beyond existence, HA, replication, migration; pending config changes (everything applies at once); hotplug; storage
 * space running out; real disk contents and ISO checks (any bytes are an ISO); PVE's blocking waits (`background_delay`
 * and a PUT that meets a held lock answer at once instead of waiting); VM status on an offline node (reported
 * "unknown"); pvestatd's delay (PVE's `/cluster/resources` shows a VM paused or resumed up to ~10 s late; here at
 * once); hibernation (`todisk`, `lock: suspended`); the exact wording of pmxcfs errors without quorum for config and delete; SDN beyond `SDN.Use` on the
 * `localnetwork` zone's bridges. Parameters it knows but does not model (e.g. `bwlimit`, `snapname`) answer 501.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { validateParams, type PveParamTable } from "./pve-schema.js";

/** A node of the double. */
export interface PveDoubleNode {
  name: string;
  /** PEM key and certificate the node's HTTPS server presents. */
  tls: { key: string; cert: string };
  /** @default 8 */
  cpus?: number;
  /** @default 32768 */
  memoryMiB?: number;
}

/** A storage of the double. */
export interface PveDoubleStorage {
  id: string;
  /** PVE plugin type; `lvm` cannot make linked clones. */
  type: "lvmthin" | "lvm" | "dir" | "nfs" | "rbd" | "zfspool";
  /** Content types, e.g. ["images"], ["iso", "vztmpl", "snippets"]. */
  content: string[];
  shared?: boolean;
  totalBytes: number;
  /** Nodes it is enabled on. @default all */
  nodes?: string[];
}

/** An ACL entry: privileges granted on a path and everything below it. */
export interface PveDoubleAcl {
  path: string;
  privs: string[];
}

/** An API token of the double. */
export interface PveDoubleToken {
  /** `USER@REALM!TOKENID`. */
  tokenId: string;
  secret: string;
  /** @default true (PVE's default): the token has what both it and its user have. */
  privsep?: boolean;
  userAcl: PveDoubleAcl[];
  /** Only with privsep. */
  tokenAcl?: PveDoubleAcl[];
  /** Unix seconds; 0 or absent: never. */
  expire?: number;
}

/** What the guest inside a VM does, for the agent and for shutdown. */
export interface PveDoubleGuest {
  /** The QEMU guest agent answers (when the VM runs and its config enables the agent). @default true */
  agentRunning?: boolean;
  /** Answer of network-get-interfaces. */
  interfaces?: unknown[];
  /** How a command run through the agent behaves. @default exit 0, no output, instantly */
  exec?: (command: string[], inputData: string | undefined) => { exitcode: number; out?: string; err?: string; runMs?: number };
  /** Time the guest needs to power off on ACPI; Infinity: it ignores ACPI. @default 0 */
  acpiShutdownMs?: number;
}

/** A VM or template to put into the double. */
export interface PveDoubleVm {
  node: string;
  vmid: number;
  name: string;
  template?: boolean;
  running?: boolean;
  cores?: number;
  memoryMiB?: number;
  /** Its one disk (scsi0). */
  disk?: { storage: string; sizeGiB: number };
  /** A cloud-init drive (ide2) on the disk's storage. @default true when it has a disk */
  cloudInitDrive?: boolean;
  /** Bridge of net0. @default "vmbr0" */
  bridge?: string;
  /** Enables the guest agent in its config. @default true */
  agent?: boolean;
  tags?: string[];
  description?: string;
  /** SMBIOS uuid (`smbios1: uuid=…`). @default a random one, as qm create makes */
  uuid?: string;
  guest?: PveDoubleGuest;
}

/** Options of the double. */
export interface PveDoubleOptions {
  nodes: PveDoubleNode[];
  storages: PveDoubleStorage[];
  tokens: PveDoubleToken[];
  vms?: PveDoubleVm[];
  pools?: string[];
  /** Milliseconds. @default Date.now */
  now?: () => number;
  /** How long tasks of each type run (qmclone, qmstart, qmshutdown, qmstop, qmdestroy, qmconfig, resize, imgcopy). @default 0 */
  taskMs?: Partial<Record<string, number>>;
  /** Time between a task's request and its worker starting (the window in which two clones of one id both pass). @default 0 */
  workerStartDelayMs?: number;
  /** PVE delays every failed login by 3 s. @default 3000 */
  authFailureDelayMs?: number;
}

/** One request the double received (for tests that check what the client sent). */
export interface PveDoubleRequest {
  /** Node whose server received it. */
  server: string;
  method: string;
  path: string;
  /** Route it matched, e.g. `POST /nodes/{node}/qemu/{vmid}/clone`; null when none. */
  route: string | null;
  /** Parameters as PVE decoded them (query, body, path). */
  params: Record<string, string | string[]>;
  /** The raw request body (form or multipart). */
  body: Buffer;
  authorization: string | undefined;
  /** HTTP status answered (undefined while held by a frozen node). */
  status?: number;
  /** The `data` answered with 200. */
  answer?: unknown;
}

/** A failure to inject into the next matching requests. */
export interface PveDoubleFault {
  method?: string;
  /** Matched against the path below /api2/json. */
  path?: RegExp;
  status: number;
  message: string;
  errors?: Record<string, string>;
  /** @default 1 */
  times?: number;
}

/** A task as the double keeps it. */
export interface PveDoubleTask {
  upid: string;
  node: string;
  type: string;
  id: string;
  user: string;
  phase: "queued" | "running" | "stopped";
  exitstatus?: string;
  createdAt: number;
  startAt?: number;
  endAt?: number;
}

/** What a route's handler may read. */
interface Ctx {
  server: string;
  token: TokenState;
  params: Record<string, string | number | string[]>;
  raw: Record<string, string | string[]>;
  upload?: { filename: string; bytes: Buffer };
}

interface Route {
  method: string;
  template: string;
  re: RegExp;
  names: string[];
  params: PveParamTable;
  /** Parameters the double knows but does not model: 501 when given. */
  unmodelled?: string[];
  /** Runs on the node named by {node} (pveproxy forwards there); false for cluster calls and uploads. */
  proxy: boolean;
  perm: (d: PveDouble, c: { token: TokenState; raw: Record<string, string | string[]> }) => void;
  handle: (d: PveDouble, c: Ctx) => unknown;
}

interface TokenState {
  tokenId: string;
  user: string;
  tokenName: string;
  secret: string;
  superuser: boolean;
  privsep: boolean;
  userAcl: PveDoubleAcl[];
  tokenAcl: PveDoubleAcl[];
  expire: number;
}

interface NodeState {
  name: string;
  cpus: number;
  memoryBytes: number;
  online: boolean;
  frozen: boolean;
  port: number;
  server: https.Server;
  sockets: Set<Socket>;
  held: Set<ServerResponse>;
}

interface StorageState extends PveDoubleStorage {
  shared: boolean;
}

interface Volume {
  storage: string;
  /** Node for local storages; null for shared ones. */
  node: string | null;
  volname: string;
  sizeBytes: number;
  format: string;
  content: "images" | "iso";
  vmid?: number;
  parent?: string;
  ctime: number;
}

interface VmState {
  vmid: number;
  node: string;
  config: Record<string, string>;
  status: "running" | "stopped";
  /** QMP status `paused` (`vm_suspend` without `todisk`): the QEMU process runs, its vCPUs do not. */
  paused?: boolean;
  startedAt: number;
  guest: PveDoubleGuest;
  pool?: string;
  execs: Map<number, { startedAt: number; runMs: number; exitcode: number; out: string; err: string }>;
  nextExecPid: number;
}

interface TaskState extends PveDoubleTask {
  lockKey?: string;
  lockWaitMs: number;
  durationMs: number;
  /** Runs when the worker starts; returns an error text to fail at once, or a duration override. */
  onStart?: (t: number) => string | { durationMs: number } | void;
  /** Runs when the task's time is up; returns the exit status ("OK" when nothing). */
  onEnd?: (t: number) => string | void;
  /** Injected failure: the task ends with this instead of onEnd. */
  injected?: string;
  onFail?: () => void;
}

/** A refusal the double answers with, as PVE would. */
class PveFail extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, string>,
  ) {
    super(message);
  }
}

/** A VM's QMP run state as qemu-server's vmstatus reports it (`qmpstatus`, the same as `status` when it does not run). */
function qmpStatus(v: VmState): string {
  return v.status === "running" && v.paused ? "paused" : v.status;
}

function fail(message: string): never {
  throw new PveFail(500, `${message}\n`);
}
function paramFail(errors: Record<string, string>): never {
  throw new PveFail(400, "Parameter verification failed.\n", errors);
}
function permFail(path: string, privs: string[], any = false): never {
  throw new PveFail(403, `Permission check failed (${path}, ${privs.join(any ? "|" : ",")})\n`);
}

const GIB = 1024 ** 3;
const VMID = "integer 100..999999999 format(pve-vmid)";
const NODE = "string format(pve-node)";
const SKIPLOCK = "boolean?";
const QM_CONFIG_PRIVS = [
  "VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory",
  "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit",
];
/** Config keys and the privilege qemu-server's check_vm_modify_config_perm asks for each. */
const CONFIG_KEY_PRIVS: Record<string, string[]> = {
  cores: ["VM.Config.CPU"], sockets: ["VM.Config.CPU"], memory: ["VM.Config.Memory"],
  agent: ["VM.Config.Options"], description: ["VM.Config.Options"], name: ["VM.Config.Options"], onboot: ["VM.Config.Options"],
  tags: ["VM.Config.Options"],
  cicustom: ["VM.Config.Cloudinit", "VM.Config.Network"], cipassword: ["VM.Config.Cloudinit", "VM.Config.Network"],
  citype: ["VM.Config.Cloudinit", "VM.Config.Network"], ciuser: ["VM.Config.Cloudinit", "VM.Config.Network"],
  ciupgrade: ["VM.Config.Cloudinit", "VM.Config.Network"], nameserver: ["VM.Config.Cloudinit", "VM.Config.Network"],
  searchdomain: ["VM.Config.Cloudinit", "VM.Config.Network"], sshkeys: ["VM.Config.Cloudinit", "VM.Config.Network"],
};
/** Drive keys (qemu-server is_valid_drivename, the buses the double knows). */
const DRIVE_KEY = /^(ide|scsi|virtio|sata)\d+$/;
/** Config keys qemu-server types as integer or boolean (QemuServer::check_type turns those into numbers). */
const INT_KEYS = new Set(["cores", "sockets", "vcpus"]);
const BOOL_KEYS = new Set(["template", "onboot", "ciupgrade", "acpi", "kvm", "protection"]);
const CONFIG_PARAMS: Record<string, string> = {
  agent: "string?",
  cicustom: "string? format(pve-qm-cicustom)",
  cipassword: "string?",
  citype: "string? enum(configdrive2|nocloud|opennebula)",
  ciupgrade: "boolean?",
  ciuser: "string?",
  cores: "integer? 1..",
  delete: "string? format(pve-configid-list)",
  description: "string? maxlen(8192)",
  digest: "string? maxlen(40)",
  "ide[n]": "string?",
  "ipconfig[n]": "string? format(pve-qm-ipconfig)",
  memory: "string?",
  name: "string? format(dns-name)",
  nameserver: "string? format(address-list)",
  node: NODE,
  onboot: "boolean?",
  searchdomain: "string?",
  skiplock: SKIPLOCK,
  sockets: "integer? 1..",
  sshkeys: "string? format(urlencoded)",
  tags: "string? format(pve-tag-list)",
  vmid: VMID,
};

/**
 * Fields PVE sends beyond what its schema lists, each from the source: task status gets `tokenid` (pve-manager
 * API2/Tasks.pm convert_token_task), storage content items carry `content` (pve-storage Plugin.pm list_volumes).
 */
export const BEYOND_SCHEMA: Readonly<Record<string, readonly string[]>> = {
  "GET /nodes/{node}/tasks/{upid}/status": ["tokenid"],
  "GET /nodes/{node}/storage/{storage}/content": ["content"],
};

function route(
  method: string,
  template: string,
  params: Record<string, string>,
  perm: Route["perm"],
  handle: Route["handle"],
  extra: { proxy?: boolean; unmodelled?: string[] } = {},
): Route {
  const names: string[] = [];
  const re = new RegExp(
    "^" + template.replace(/\{(\w+)\}/g, (_, n: string) => {
      names.push(n);
      return "([^/]+)";
    }) + "$",
  );
  return { method, template, re, names, params, perm, handle, proxy: extra.proxy ?? template.startsWith("/nodes/{node}"), unmodelled: extra.unmodelled };
}

const vmPerm =
  (privs: string[], any = false): Route["perm"] =>
  (d, c) =>
    d.requirePriv(c.token, `/vms/${String(c.raw.vmid)}`, privs, any);
const anyone: Route["perm"] = () => undefined;

/** The routes of the double: exactly the endpoints premiscale's PVE client calls. */
const ROUTES: Route[] = [
  route("GET", "/cluster/resources", { type: "string? enum(vm|storage|node|sdn)" }, anyone, (d, c) => d.resources(c)),
  route("GET", "/cluster/nextid", { vmid: "integer? 100..999999999 format(pve-vmid)" }, anyone, (d, c) => d.nextid(c)),
  route("GET", "/nodes/{node}/qemu", { full: "boolean?", node: NODE }, anyone, (d, c) => d.vmlist(c), { unmodelled: ["full"] }),
  route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/clone",
    {
      bwlimit: "integer? 0..",
      description: "string?",
      format: "string? enum(raw|qcow2|vmdk)",
      full: "boolean?",
      name: "string? format(dns-name)",
      newid: VMID,
      node: NODE,
      pool: "string? format(pve-poolid)",
      snapname: "string? maxlen(40) format(pve-configid)",
      storage: "string? format(pve-storage-id)",
      target: "string? format(pve-node)",
      vmid: VMID,
    },
    (d, c) => {
      d.requirePriv(c.token, `/vms/${String(c.raw.vmid)}`, ["VM.Clone"]);
      const pool = typeof c.raw.pool === "string" ? c.raw.pool : undefined;
      if (!d.hasPriv(c.token, `/vms/${String(c.raw.newid)}`, "VM.Allocate") && !(pool && d.hasPriv(c.token, `/pool/${pool}`, "VM.Allocate"))) {
        permFail(`/vms/${String(c.raw.newid)}`, ["VM.Allocate"]);
      }
    },
    (d, c) => d.clone(c),
    { unmodelled: ["bwlimit", "snapname"] },
  ),
  route("GET", "/nodes/{node}/qemu/{vmid}/config", { current: "boolean?", node: NODE, snapshot: "string? maxlen(40) format(pve-configid)", vmid: VMID }, vmPerm(["VM.Audit"]), (d, c) => d.getConfig(c), { unmodelled: ["snapshot"] }),
  route("POST", "/nodes/{node}/qemu/{vmid}/config", { ...CONFIG_PARAMS, background_delay: "integer? 1..30" }, vmPerm(QM_CONFIG_PRIVS, true), (d, c) => d.setConfig(c, false), { unmodelled: ["skiplock"] }),
  route("PUT", "/nodes/{node}/qemu/{vmid}/config", CONFIG_PARAMS, vmPerm(QM_CONFIG_PRIVS, true), (d, c) => d.setConfig(c, true), { unmodelled: ["skiplock"] }),
  route(
    "PUT",
    "/nodes/{node}/qemu/{vmid}/resize",
    {
      digest: "string? maxlen(40)",
      disk: `string enum(${[...[0, 1, 2, 3].map((i) => `ide${i}`), ...Array.from({ length: 31 }, (_, i) => `scsi${i}`), ...Array.from({ length: 16 }, (_, i) => `virtio${i}`), ...[0, 1, 2, 3, 4, 5].map((i) => `sata${i}`), "efidisk0", "tpmstate0"].join("|")})`,
      node: NODE,
      size: "string pattern(\\+?\\d+(\\.\\d+)?[KMGT]?)",
      skiplock: SKIPLOCK,
      vmid: VMID,
    },
    vmPerm(["VM.Config.Disk"]),
    (d, c) => d.resize(c),
    { unmodelled: ["skiplock"] },
  ),
  route("POST", "/nodes/{node}/qemu/{vmid}/status/start", { node: NODE, skiplock: SKIPLOCK, timeout: "integer? 0..", vmid: VMID }, vmPerm(["VM.PowerMgmt"]), (d, c) => d.power(c, "qmstart"), { unmodelled: ["skiplock"] }),
  route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/status/shutdown",
    { forceStop: "boolean?", keepActive: "boolean?", node: NODE, skiplock: SKIPLOCK, timeout: "integer? 0..", vmid: VMID },
    vmPerm(["VM.PowerMgmt"]),
    (d, c) => d.power(c, "qmshutdown"),
    { unmodelled: ["skiplock", "keepActive"] },
  ),
  route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/status/stop",
    { keepActive: "boolean?", node: NODE, "overrule-shutdown": "boolean?", skiplock: SKIPLOCK, timeout: "integer? 0..", vmid: VMID },
    vmPerm(["VM.PowerMgmt"]),
    (d, c) => d.power(c, "qmstop"),
    { unmodelled: ["skiplock", "keepActive"] },
  ),
  route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/status/suspend",
    { node: NODE, skiplock: SKIPLOCK, statestorage: "string? format(pve-storage-id)", todisk: "boolean?", vmid: VMID },
    vmPerm(["VM.PowerMgmt"]),
    (d, c) => d.pause(c),
    { unmodelled: ["skiplock", "statestorage", "todisk"] },
  ),
  route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/status/resume",
    { nocheck: "boolean?", node: NODE, skiplock: SKIPLOCK, vmid: VMID },
    vmPerm(["VM.PowerMgmt"]),
    (d, c) => d.resume(c),
    { unmodelled: ["skiplock", "nocheck"] },
  ),
  route("GET", "/nodes/{node}/qemu/{vmid}/status/current", { node: NODE, vmid: VMID }, vmPerm(["VM.Audit"]), (d, c) => d.statusCurrent(c)),
  route(
    "DELETE",
    "/nodes/{node}/qemu/{vmid}",
    { "destroy-unreferenced-disks": "boolean?", node: NODE, purge: "boolean?", skiplock: SKIPLOCK, vmid: VMID },
    vmPerm(["VM.Allocate"]),
    (d, c) => d.destroy(c),
    { unmodelled: ["skiplock"] },
  ),
  route("GET", "/nodes/{node}/tasks/{upid}/status", { node: NODE, upid: "string" }, anyone, (d, c) => d.taskStatus(c)),
  route(
    "POST",
    "/nodes/{node}/storage/{storage}/upload",
    {
      checksum: "string?",
      "checksum-algorithm": "string? enum(md5|sha1|sha224|sha256|sha384|sha512)",
      content: "string enum(iso|vztmpl|import) format(pve-storage-content)",
      filename: "string maxlen(255)",
      node: NODE,
      storage: "string format(pve-storage-id)",
      tmpfilename: "string? pattern(/var/tmp/pveupload-[0-9a-f]+)",
    },
    (d, c) => d.requirePriv(c.token, `/storage/${String(c.raw.storage)}`, ["Datastore.AllocateTemplate"]),
    (d, c) => d.upload(c),
    { proxy: false, unmodelled: ["checksum", "checksum-algorithm"] },
  ),
  route(
    "DELETE",
    "/nodes/{node}/storage/{storage}/content/{volume}",
    { delay: "integer? 1..30", node: NODE, storage: "string? format(pve-storage-id)", volume: "string" },
    // pve-storage Content.pm checks inside the handler, once the volume is parsed.
    anyone,
    (d, c) => d.deleteVolume(c),
    { unmodelled: ["delay"] },
  ),
  route(
    "GET",
    "/nodes/{node}/storage/{storage}/content",
    { content: "string? format(pve-storage-content)", node: NODE, storage: "string format(pve-storage-id)", vmid: "integer? 100..999999999 format(pve-vmid)" },
    (d, c) => d.requirePriv(c.token, `/storage/${String(c.raw.storage)}`, ["Datastore.Audit", "Datastore.AllocateSpace"], true),
    (d, c) => d.storageContent(c),
  ),
  route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", { node: NODE, vmid: VMID }, vmPerm(["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"], true), (d, c) => d.agentInterfaces(c)),
  route("POST", "/nodes/{node}/qemu/{vmid}/agent/exec", { command: "array of string", "input-data": "string? maxlen(65536)", node: NODE, vmid: VMID }, vmPerm(["VM.GuestAgent.Unrestricted"]), (d, c) => d.agentExec(c)),
  route("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status", { node: NODE, pid: "integer", vmid: VMID }, vmPerm(["VM.GuestAgent.Unrestricted"]), (d, c) => d.agentExecStatus(c)),
];

/** The double's route table, for the schema conformance test. */
export const PVE_DOUBLE_ROUTES: ReadonlyArray<{ key: string; params: PveParamTable }> = ROUTES.map((r) => ({
  key: `${r.method} ${r.template}`,
  params: r.params,
}));

function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, "0");
}

function sizeString(bytes: number): string {
  return bytes % GIB === 0 ? `${bytes / GIB}G` : `${Math.round(bytes / 1024 ** 2)}M`;
}

function randomMac(): string {
  return ["BC", "24", "11", ...Array.from(randomBytes(3)).map((b) => b.toString(16).toUpperCase().padStart(2, "0"))].join(":");
}

/** The double itself; make one with `PveDouble.start`. */
export class PveDouble {
  readonly requests: PveDoubleRequest[] = [];
  private readonly nodes = new Map<string, NodeState>();
  private readonly storages = new Map<string, StorageState>();
  private readonly tokens = new Map<string, TokenState>();
  private readonly vms = new Map<number, VmState>();
  private readonly volumes: Volume[] = [];
  private readonly pools: Set<string>;
  private readonly tasks: TaskState[] = [];
  private readonly locks = new Map<string, TaskState>();
  private readonly faults: Array<PveDoubleFault & { left: number }> = [];
  private readonly taskFaults: Array<{ type: string; vmid?: number; exitstatus: string }> = [];
  private readonly uploads = new Map<string, Buffer>();
  private nextPid = 0x1a2b0;
  private readonly now: () => number;

  private constructor(private readonly options: PveDoubleOptions) {
    this.now = options.now ?? Date.now;
    this.pools = new Set(options.pools ?? []);
    for (const s of options.storages) this.storages.set(s.id, { ...s, shared: s.shared ?? false });
    for (const t of options.tokens) {
      const m = /^(.+)!([^!]+)$/.exec(t.tokenId);
      if (!m) throw new Error(`bad token id ${t.tokenId}`);
      const privsep = t.privsep ?? true;
      this.tokens.set(t.tokenId, {
        tokenId: t.tokenId,
        user: m[1]!,
        tokenName: m[2]!,
        secret: t.secret,
        privsep,
        superuser: m[1] === "root@pam" && !privsep,
        userAcl: t.userAcl,
        tokenAcl: t.tokenAcl ?? [],
        expire: t.expire ?? 0,
      });
    }
  }

  /** Starts one HTTPS server per node on 127.0.0.1 (random ports). */
  static async start(options: PveDoubleOptions): Promise<PveDouble> {
    const d = new PveDouble(options);
    for (const n of options.nodes) {
      const sockets = new Set<Socket>();
      const server = https.createServer({ key: n.tls.key, cert: n.tls.cert });
      const state: NodeState = {
        name: n.name,
        cpus: n.cpus ?? 8,
        memoryBytes: (n.memoryMiB ?? 32768) * 1024 ** 2,
        online: true,
        frozen: false,
        port: 0,
        server,
        sockets,
        held: new Set(),
      };
      server.on("secureConnection", (s: Socket) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
      });
      server.on("request", (req: IncomingMessage, res: ServerResponse) => {
        void d.serve(state, req, res);
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      state.port = (server.address() as { port: number }).port;
      d.nodes.set(n.name, state);
    }
    for (const vm of options.vms ?? []) d.addVm(vm);
    return d;
  }

  /** Where a node's API listens. */
  endpoint(node: string): { node: string; host: string; port: number } {
    return { node, host: "127.0.0.1", port: this.node(node).port };
  }

  /** Adds a VM or template (disk, cloud-init drive, net0 with a fresh MAC). */
  addVm(spec: PveDoubleVm): void {
    if (this.vms.has(spec.vmid)) throw new Error(`VM ${spec.vmid} exists`);
    this.node(spec.node);
    const cfg: Record<string, string> = {
      name: spec.name,
      cores: String(spec.cores ?? 1),
      sockets: "1",
      memory: String(spec.memoryMiB ?? 1024),
      ostype: "l26",
      scsihw: "virtio-scsi-single",
      net0: `virtio=${randomMac()},bridge=${spec.bridge ?? "vmbr0"}`,
      smbios1: `uuid=${spec.uuid ?? randomUUID()}`,
      boot: "order=scsi0",
    };
    if (spec.agent ?? true) cfg.agent = "1";
    if (spec.tags) cfg.tags = spec.tags.join(";");
    if (spec.description) cfg.description = spec.description;
    if (spec.disk) {
      const st = this.storage(spec.disk.storage);
      const volname = `${spec.template ? "base" : "vm"}-${spec.vmid}-disk-0`;
      this.volumes.push({
        storage: st.id, node: st.shared ? null : spec.node, volname, sizeBytes: spec.disk.sizeGiB * GIB, format: "raw",
        content: "images", vmid: spec.vmid, ctime: Math.floor(this.now() / 1000),
      });
      cfg.scsi0 = `${st.id}:${volname},iothread=1,size=${spec.disk.sizeGiB}G`;
      if (spec.cloudInitDrive ?? true) cfg.ide2 = `${st.id}:vm-${spec.vmid}-cloudinit,media=cdrom`;
    }
    if (spec.template) cfg.template = "1";
    this.vms.set(spec.vmid, {
      vmid: spec.vmid, node: spec.node, config: cfg, status: spec.running && !spec.template ? "running" : "stopped",
      startedAt: this.now(), guest: spec.guest ?? {}, execs: new Map(), nextExecPid: 1000,
    });
  }

  /** Changes what a VM's guest does (agent, exec, shutdown). */
  setGuest(vmid: number, guest: PveDoubleGuest): void {
    this.vm(vmid).guest = { ...this.vm(vmid).guest, ...guest };
  }

  /** A VM as the double holds it (config as stored, status, node), or undefined. */
  inspectVm(vmid: number): { node: string; status: string; qmpstatus: string; config: Readonly<Record<string, string>> } | undefined {
    this.advance();
    const v = this.vms.get(vmid);
    return v ? { node: v.node, status: v.status, qmpstatus: qmpStatus(v), config: { ...v.config } } : undefined;
  }

  /** Volumes on a storage (volids). */
  volumeIds(storage: string): string[] {
    this.advance();
    return this.volumes.filter((v) => v.storage === storage).map((v) => `${v.storage}:${v.volname}`);
  }

  /** Every task so far. */
  taskList(): PveDoubleTask[] {
    this.advance();
    return this.tasks.map((t) => ({ ...t }));
  }

  /** Takes a node offline (its server refuses connections; others answer 595 for it) or back online. */
  async setOnline(node: string, online: boolean): Promise<void> {
    const n = this.node(node);
    if (n.online === online) return;
    n.online = online;
    if (!online) {
      await new Promise<void>((resolve) => {
        n.server.close(() => resolve());
        for (const s of n.sockets) s.destroy();
        for (const r of n.held) r.destroy();
        n.held.clear();
      });
    } else {
      await new Promise<void>((resolve) => n.server.listen(n.port, "127.0.0.1", resolve));
    }
  }

  /** Freezes a node: every request to it, or forwarded to it, hangs until `thaw` (then is dropped). */
  freeze(node: string): void {
    this.node(node).frozen = true;
  }

  /** Ends a freeze; requests held so far are dropped (their connections closed), as a restarted pveproxy would. */
  thaw(node: string): void {
    const n = this.node(node);
    n.frozen = false;
    for (const r of n.held) r.destroy();
    n.held.clear();
  }

  /** Makes the next matching requests fail with the given status and message. */
  failRequests(fault: PveDoubleFault): void {
    this.faults.push({ ...fault, left: fault.times ?? 1 });
  }

  /**
   * Makes the next task of this type end with this exit status when its time is up (and undoes what it made, e.g. a
   * clone's half-made VM). `vmid` matches the id in the UPID: the source VM for qmclone.
   */
  failNextTask(type: string, exitstatus: string, vmid?: number): void {
    this.taskFaults.push({ type, vmid, exitstatus });
  }

  /** Stops every server. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.nodes.values()].map(
        (n) =>
          new Promise<void>((resolve) => {
            for (const r of n.held) r.destroy();
            for (const s of n.sockets) s.destroy();
            if (!n.server.listening) resolve();
            else n.server.close(() => resolve());
          }),
      ),
    );
  }

  // ---- HTTP -------------------------------------------------------------------------------------------------

  private async serve(node: NodeState, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://double");
    const method = req.method ?? "GET";
    if (node.frozen) {
      const path = url.pathname.replace(/^\/api2\/json/, "");
      this.requests.push({ server: node.name, method, path, route: null, params: {}, body: Buffer.alloc(0), authorization: req.headers.authorization });
      node.held.add(res);
      return;
    }
    const body = await readBody(req);
    const path = url.pathname.startsWith("/api2/json") ? url.pathname.slice("/api2/json".length) : null;
    const log: PveDoubleRequest = { server: node.name, method, path: path ?? url.pathname, route: null, params: {}, body, authorization: req.headers.authorization };
    this.requests.push(log);
    if (path === null) return reply(res, 501, "no such uri\n");

    const token = this.authenticate(req.headers.authorization);
    if (typeof token === "string") {
      const delay = this.options.authFailureDelayMs ?? 3000;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      // PVE answers a failed login with the reason only, no JSON body.
      res.writeHead(401, token);
      res.end();
      return;
    }
    try {
      const rt = ROUTES.find((r) => r.method === method && r.re.test(path));
      if (!rt) throw new PveFail(501, `Method '${method} ${path}' not implemented\n`);
      log.route = `${rt.method} ${rt.template}`;
      const m = rt.re.exec(path)!;
      let raw: Record<string, string | string[]> = {};
      let upload: Ctx["upload"];
      if (rt.template.endsWith("/upload")) {
        // pve-http-server checks the upload permission before it reads the body.
        rt.perm(this, { token, raw: { storage: decodeURIComponent(m[2]!) } });
        const parsed = parseMultipart(req.headers["content-type"], req.headers["content-length"], body);
        raw = parsed.fields;
        upload = parsed.file;
        if (upload) raw.filename = upload.filename;
      } else {
        raw = method === "POST" || method === "PUT" ? decodeForm(body.toString("latin1"), req.headers["content-type"]) : {};
      }
      for (const [k, v] of Object.entries(decodeForm(url.search.slice(1)))) raw[k] = v;
      rt.names.forEach((n, i) => {
        const v = decodeURIComponent(m[i + 1]!);
        if (raw[n] !== undefined && raw[n] !== v) paramFail({ [n]: "duplicate parameter (already defined in URI) with conflicting values!" });
        raw[n] = v;
      });
      log.params = raw;
      if (!rt.template.endsWith("/upload")) rt.perm(this, { token, raw });

      const target = rt.proxy ? String(raw.node) : node.name;
      if (target !== node.name) {
        const t = this.nodes.get(target);
        if (!t) fail(`hostname lookup '${target}' failed - failed to get address info for: ${target}: Name or service not known`);
        if (t.frozen) {
          node.held.add(res);
          t.held.add(res);
          return;
        }
        if (!t.online) {
          res.writeHead(595, "No route to host");
          res.end();
          return;
        }
      }
      const fault = this.faults.find((f) => f.left > 0 && (!f.method || f.method === method) && (!f.path || f.path.test(path)));
      if (fault) {
        fault.left--;
        throw new PveFail(fault.status, fault.message.endsWith("\n") ? fault.message : `${fault.message}\n`, fault.errors);
      }
      const { errors, values } = validateParams(rt.params, raw);
      if (Object.keys(errors).length) paramFail(errors);
      for (const p of rt.unmodelled ?? []) {
        if (raw[p] !== undefined) throw new PveFail(501, `the PVE test double does not model parameter '${p}'\n`);
      }
      this.advance();
      const data = rt.handle(this, { server: node.name, token, params: values, raw, upload });
      this.advance();
      log.status = 200;
      log.answer = data ?? null;
      res.writeHead(200, { "Content-Type": "application/json;charset=UTF-8" });
      res.end(JSON.stringify({ data: data ?? null }));
    } catch (e) {
      if (!(e instanceof PveFail)) {
        reply(res, 500, `internal error in the PVE double: ${(e as Error).stack ?? String(e)}\n`);
        return;
      }
      log.status = e.status;
      reply(res, e.status, e.message, e.errors);
    }
  }

  private authenticate(header: string | undefined): TokenState | string {
    const value = header ? /(?:^|\s)PVEAPIToken(?:=| )([^;]*)/.exec(header)?.[1] : undefined;
    if (!value) return "No ticket";
    const m = /^(.*)=(.*)$/.exec(decodeURIComponent(value));
    const t = m ? this.tokens.get(m[1]!) : undefined;
    if (!m || !t || t.secret !== m[2] || (t.expire && t.expire < this.now() / 1000)) return "Authentication failed!";
    return t;
  }

  // ---- permissions --------------------------------------------------------------------------------------------

  /** Whether a token has a privilege on a path (ACLs apply to the path and below; privsep: token and user). */
  hasPriv(token: TokenState, path: string, priv: string): boolean {
    if (token.superuser) return true;
    const grants = (acl: PveDoubleAcl[]) =>
      acl.some((a) => (a.path === "/" || path === a.path || path.startsWith(`${a.path}/`)) && a.privs.includes(priv));
    return grants(token.userAcl) && (!token.privsep || grants(token.tokenAcl));
  }

  /** Throws PVE's 403 unless the token has the privileges (all, or any one). */
  requirePriv(token: TokenState, path: string, privs: string[], any = false): void {
    if (any ? privs.some((p) => this.hasPriv(token, path, p)) : privs.every((p) => this.hasPriv(token, path, p))) return;
    if (any) permFail(path, privs, true);
    permFail(path, [privs.find((p) => !this.hasPriv(token, path, p))!]);
  }

  // ---- model ---------------------------------------------------------------------------------------------------

  private node(name: string): NodeState {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name} in the double`);
    return n;
  }

  private storage(id: string): StorageState {
    const s = this.storages.get(id);
    if (!s) throw new Error(`no storage ${id} in the double`);
    return s;
  }

  private vm(vmid: number): VmState {
    const v = this.vms.get(vmid);
    if (!v) throw new Error(`no VM ${vmid} in the double`);
    return v;
  }

  private quorate(): boolean {
    const online = [...this.nodes.values()].filter((n) => n.online).length;
    return online * 2 > this.nodes.size;
  }

  private requireQuorum(): void {
    if (!this.quorate()) fail("cluster not ready - no quorum?");
  }

  private storageEnabledOn(s: StorageState, node: string): boolean {
    return !s.nodes || s.nodes.includes(node);
  }

  /** qemu-server's load_config through the node a call runs on. */
  private loadVm(node: string, vmid: number): VmState {
    const v = this.vms.get(vmid);
    if (!v || v.node !== node) fail(`Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`);
    return v;
  }

  private checkLock(v: VmState): void {
    if (v.config.lock) fail(`VM is locked (${v.config.lock})`);
  }

  private disks(v: VmState): Array<{ key: string; volid: string; storage: string; volname: string; sizeBytes: number }> {
    const out = [];
    for (const [k, val] of Object.entries(v.config)) {
      if (!/^(scsi|virtio|sata|ide)\d+$/.test(k) || /media=cdrom/.test(val)) continue;
      const volid = val.split(",")[0]!;
      const [storage, volname] = volid.split(":") as [string, string];
      const size = /size=(\d+)([KMGT]?)/.exec(val);
      const mult = { "": 1, K: 1024, M: 1024 ** 2, G: GIB, T: 1024 ** 4 }[size?.[2] ?? ""] ?? 1;
      out.push({ key: k, volid, storage, volname, sizeBytes: size ? Number(size[1]) * mult : 0 });
    }
    return out;
  }

  private digest(v: VmState): string {
    const text = Object.keys(v.config)
      .sort()
      .map((k) => `${k}: ${v.config[k]}`)
      .join("\n");
    return createHash("sha1").update(text).digest("hex");
  }

  // ---- tasks ---------------------------------------------------------------------------------------------------

  private fork(
    node: string,
    type: string,
    id: string,
    token: TokenState,
    t: Partial<Pick<TaskState, "lockKey" | "lockWaitMs" | "onStart" | "onEnd" | "onFail" | "durationMs">>,
  ): TaskState {
    const now = this.now();
    const pid = this.nextPid++;
    const upid = `UPID:${node}:${hex8(pid)}:${hex8(0x2b0000 + pid)}:${hex8(Math.floor(now / 1000))}:${type}:${id}:${token.tokenId}:`;
    const fault = this.taskFaults.findIndex((f) => f.type === type && (f.vmid === undefined || String(f.vmid) === id));
    const task: TaskState = {
      upid, node, type, id, user: token.tokenId, phase: "queued", createdAt: now,
      lockWaitMs: t.lockWaitMs ?? 10_000,
      durationMs: t.durationMs ?? this.options.taskMs?.[type] ?? 0,
      lockKey: t.lockKey, onStart: t.onStart, onEnd: t.onEnd, onFail: t.onFail,
    };
    if (fault >= 0) task.injected = this.taskFaults.splice(fault, 1)[0]!.exitstatus;
    this.tasks.push(task);
    this.advance();
    return task;
  }

  /**
   * Moves every task forward to `now()`, event by event in time order: a worker starts once its start delay has
   * passed and its lock is free (or fails after waiting `lockWaitMs` for it, as PVE's lock_config does), and ends
   * when its time is up.
   */
  private advance(): void {
    const now = this.now();
    for (;;) {
      type Event = { t: number; prio: number; seq: number; task: TaskState; kind: "end" | "start" | "lockfail" };
      const events: Event[] = [];
      this.tasks.forEach((task, seq) => {
        if (task.phase === "running") events.push({ t: task.endAt!, prio: 0, seq, task, kind: "end" });
        if (task.phase !== "queued") return;
        const want = task.createdAt + (this.options.workerStartDelayMs ?? 0);
        const holder = task.lockKey ? this.locks.get(task.lockKey) : undefined;
        if (!holder) events.push({ t: want, prio: 1, seq, task, kind: "start" });
        else if (holder.endAt! <= want + task.lockWaitMs) events.push({ t: Math.max(want, holder.endAt!), prio: 1, seq, task, kind: "start" });
        else events.push({ t: want + task.lockWaitMs, prio: 1, seq, task, kind: "lockfail" });
      });
      const due = events.filter((e) => e.t <= now).sort((a, b) => a.t - b.t || a.prio - b.prio || a.seq - b.seq);
      const best = due[0];
      if (!best) return;
      const { t, task, kind } = best;
      if (kind === "lockfail") {
        task.phase = "stopped";
        task.endAt = t;
        task.exitstatus = `can't lock file '/var/lock/qemu-server/lock-${task.lockKey!.slice(3)}.conf' - got timeout`;
      } else if (kind === "start") {
        if (task.lockKey && this.locks.has(task.lockKey)) throw new Error(`PVE double: ${task.upid} started while its lock is held`);
        task.phase = "running";
        task.startAt = t;
        if (task.lockKey) this.locks.set(task.lockKey, task);
        const r = task.onStart?.(t);
        if (typeof r === "string") this.endTask(task, t, r);
        else task.endAt = t + (r?.durationMs ?? task.durationMs);
      } else {
        if (task.injected !== undefined) {
          task.onFail?.();
          this.endTask(task, t, task.injected);
        } else {
          this.endTask(task, t, task.onEnd?.(t) ?? "OK");
        }
      }
    }
  }

  private endTask(task: TaskState, t: number, exitstatus: string): void {
    task.phase = "stopped";
    task.endAt = t;
    task.exitstatus = exitstatus;
    if (task.lockKey && this.locks.get(task.lockKey) === task) this.locks.delete(task.lockKey);
  }

  // ---- handlers: public only for the route table above; tests use the hooks and inspectors ---------------------

  resources(c: Ctx): unknown[] {
    const type = c.params.type as string | undefined;
    const out: unknown[] = [];
    if (!type || type === "vm") {
      for (const v of [...this.vms.values()].sort((a, b) => a.vmid - b.vmid)) {
        if (!this.hasPriv(c.token, `/vms/${v.vmid}`, "VM.Audit")) continue;
        const online = this.node(v.node).online;
        const e: Record<string, unknown> = { id: `qemu/${v.vmid}`, vmid: v.vmid, node: v.node, type: "qemu", status: "unknown" };
        if (online) {
          const disk = this.disks(v)[0];
          Object.assign(e, {
            // pvestatd broadcasts the QMP status (`qmpstatus || status`), which is what this field shows.
            status: qmpStatus(v), name: v.config.name, template: v.config.template === "1" ? 1 : 0,
            maxcpu: Number(v.config.cores ?? 1) * Number(v.config.sockets ?? 1), cpu: v.status === "running" && !v.paused ? 0.02 : 0,
            maxmem: Number(v.config.memory ?? 512) * 1024 ** 2, mem: v.status === "running" ? Number(v.config.memory ?? 512) * 1024 ** 2 * 0.4 : 0,
            maxdisk: disk?.sizeBytes ?? 0, disk: 0, netin: 0, netout: 0, diskread: 0, diskwrite: 0,
            uptime: v.status === "running" ? Math.floor((this.now() - v.startedAt) / 1000) : 0,
          });
          e.mem = Math.round(e.mem as number);
        }
        if (v.config.tags) e.tags = v.config.tags;
        if (v.config.lock) e.lock = v.config.lock;
        if (v.pool) e.pool = v.pool;
        out.push(e);
      }
    }
    if (!type || type === "node") {
      for (const n of this.nodes.values()) {
        const e: Record<string, unknown> = { id: `node/${n.name}`, node: n.name, type: "node", status: n.online ? "online" : "offline", level: "" };
        if (this.hasPriv(c.token, `/nodes/${n.name}`, "Sys.Audit")) {
          Object.assign(e, { maxcpu: n.cpus, maxmem: n.memoryBytes, maxdisk: 100 * GIB });
          if (n.online) Object.assign(e, { cpu: 0.05, mem: this.memUsed(n.name), disk: 10 * GIB, uptime: 86400 });
        }
        out.push(e);
      }
    }
    if (!type || type === "storage") {
      for (const s of this.storages.values()) {
        if (!this.hasPriv(c.token, `/storage/${s.id}`, "Datastore.Audit")) continue;
        for (const n of this.nodes.values()) {
          if (!this.storageEnabledOn(s, n.name)) continue;
          const e: Record<string, unknown> = {
            id: `storage/${n.name}/${s.id}`, storage: s.id, node: n.name, type: "storage", plugintype: s.type,
            status: n.online ? "available" : "unknown", shared: s.shared ? 1 : 0, content: [...s.content].sort().join(","),
          };
          if (n.online) Object.assign(e, { maxdisk: s.totalBytes, disk: this.storageUsed(s, n.name) });
          out.push(e);
        }
      }
    }
    return out;
  }

  private memUsed(node: string): number {
    let used = 2 * GIB;
    for (const v of this.vms.values()) if (v.node === node && v.status === "running") used += Number(v.config.memory ?? 512) * 1024 ** 2;
    return used;
  }

  private storageUsed(s: StorageState, node: string): number {
    return this.volumes.filter((v) => v.storage === s.id && (s.shared || v.node === node)).reduce((a, v) => a + v.sizeBytes, 0);
  }

  nextid(c: Ctx): number | string {
    if (c.raw.vmid !== undefined) {
      const id = Number(c.params.vmid);
      if (this.vms.has(id)) paramFail({ vmid: `VM ${id} already exists` });
      // PVE hands back the parameter itself: a string in the JSON.
      return String(c.raw.vmid);
    }
    for (let i = 100; i < 1_000_000; i++) if (!this.vms.has(i)) return i;
    fail("unable to get any free VMID in range [100, 1000000]");
  }

  vmlist(c: Ctx): unknown[] {
    const node = String(c.params.node);
    return [...this.vms.values()]
      .filter((v) => v.node === node && this.hasPriv(c.token, `/vms/${v.vmid}`, "VM.Audit"))
      .map((v) => {
        const e: Record<string, unknown> = {
          vmid: v.vmid, status: v.status, name: v.config.name, cpus: Number(v.config.cores ?? 1) * Number(v.config.sockets ?? 1),
          maxmem: Number(v.config.memory ?? 512) * 1024 ** 2, maxdisk: this.disks(v)[0]?.sizeBytes ?? 0,
          mem: 0, cpu: 0, uptime: v.status === "running" ? Math.floor((this.now() - v.startedAt) / 1000) : 0,
          netin: 0, netout: 0, diskread: 0, diskwrite: 0,
        };
        if (v.status === "running") e.pid = 4000 + v.vmid;
        if (v.config.template === "1") e.template = 1;
        if (v.config.tags) e.tags = v.config.tags;
        if (v.config.lock) e.lock = v.config.lock;
        return e;
      });
  }

  clone(c: Ctx): string {
    const node = String(c.params.node);
    const vmid = Number(c.params.vmid);
    const newid = Number(c.params.newid);
    const p = c.params;
    let target = p.target as string | undefined;
    if (target === node || target === "localhost") target = undefined;
    const storage = p.storage as string | undefined;
    const format = p.format as string | undefined;
    const pool = p.pool as string | undefined;

    // qemu-server clone_vm's load_and_check, run before forking and again inside the worker.
    const check = (): { src: VmState; full: boolean } => {
      if (pool !== undefined && !this.pools.has(pool)) fail(`pool '${pool}' does not exist`);
      if (target !== undefined && !this.nodes.has(target)) fail(`no such cluster node '${target}'`);
      if (storage !== undefined) {
        const s = this.storages.get(storage);
        if (!s || !this.storageEnabledOn(s, node)) fail(`storage '${storage}' does not exist`);
        if (!s.content.includes("images")) paramFail({ storage: `storage '${storage}' does not support vm images` });
        if (target !== undefined) {
          if (!this.storageEnabledOn(s, target)) fail(`storage '${storage}' is not available on node '${target}'`);
          if (!s.shared) fail(`can't clone to non-shared storage '${storage}'`);
        }
      }
      this.requireQuorum();
      const src = this.loadVm(node, vmid);
      this.checkLock(src);
      const full = p.full !== undefined ? p.full === 1 : src.config.template !== "1";
      if (storage !== undefined && !full) fail("parameter 'storage' not allowed for linked clones");
      if (format !== undefined && !full) fail("parameter 'format' not allowed for linked clones");
      let shared = true;
      for (const d of this.disks(src)) {
        const st = this.storage(d.storage);
        // check_storage_access_clone: the target storage of a full clone, else each source storage.
        const allocOn = full && storage ? storage : d.storage;
        this.requirePriv(c.token, `/storage/${allocOn}`, ["Datastore.AllocateSpace"]);
        if (!full && (src.config.template !== "1" || st.type === "lvm")) fail(`Linked clone feature is not supported for '${d.volid}' (${d.key})`);
        if (!st.shared) shared = false;
      }
      const bridge = /bridge=([^,]+)/.exec(src.config.net0 ?? "")?.[1];
      if (bridge) this.requirePriv(c.token, `/sdn/zones/localnetwork/${bridge}`, ["SDN.Use"]);
      if (target !== undefined && !shared) fail(`can't clone VM to node '${target}' (VM uses local storage)`);
      const here = this.vms.get(newid);
      if (here && here.node === node) fail(`unable to create VM ${newid}: config file already exists`);
      return { src, full };
    };
    check();

    let made = false;
    const task = this.fork(node, "qmclone", String(vmid), c.token, {
      lockKey: `vm:${newid}`,
      lockWaitMs: 1000,
      onStart: () => {
        try {
          check();
        } catch (e) {
          return (e as Error).message.trim();
        }
        if (this.vms.has(newid)) return `close (rename) atomic file '/etc/pve/nodes/${node}/qemu-server/${newid}.conf' failed: File exists`;
        this.vms.set(newid, {
          vmid: newid, node, config: { lock: "clone" }, status: "stopped", startedAt: this.now(), guest: {}, execs: new Map(), nextExecPid: 1000,
        });
        made = true;
      },
      onFail: () => {
        if (made) this.vms.delete(newid);
      },
      onEnd: () => {
        const src = this.vms.get(vmid);
        if (!src) {
          this.vms.delete(newid);
          return `clone failed: Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`;
        }
        const full = p.full !== undefined ? p.full === 1 : src.config.template !== "1";
        const cfg: Record<string, string> = {};
        for (const [k, v] of Object.entries(src.config)) {
          if (k === "template" || k === "lock" || /^unused\d+$/.test(k)) continue;
          cfg[k] = v;
        }
        cfg.name = (p.name as string | undefined) ?? `Copy-of-VM-${src.config.name ?? vmid}`;
        if (p.description) cfg.description = String(p.description);
        cfg.smbios1 = `uuid=${randomUUID()}`;
        for (const k of Object.keys(cfg)) if (/^net\d+$/.test(k)) cfg[k] = cfg[k]!.replace(/^(\w+)=[0-9A-Fa-f:]+/, `$1=${randomMac()}`);
        let n = 0;
        for (const d of this.disks(src)) {
          const st = this.storage(full && storage ? storage : d.storage);
          const volname = `vm-${newid}-disk-${n++}`;
          this.volumes.push({
            storage: st.id, node: st.shared ? null : node, volname, sizeBytes: d.sizeBytes, format: format ?? "raw",
            content: "images", vmid: newid, parent: full ? undefined : d.volname, ctime: Math.floor(this.now() / 1000),
          });
          cfg[d.key] = src.config[d.key]!.replace(d.volid, `${st.id}:${volname}`);
        }
        if (src.config.ide2 && /cloudinit/.test(src.config.ide2)) {
          const st = this.storage(full && storage ? storage : src.config.ide2.split(":")[0]!);
          cfg.ide2 = `${st.id}:vm-${newid}-cloudinit,media=cdrom`;
        }
        const v = this.vms.get(newid)!;
        v.config = cfg;
        v.guest = { ...src.guest };
        if (target) v.node = target;
        if (pool) v.pool = pool;
      },
    });
    return task.upid;
  }

  getConfig(c: Ctx): Record<string, unknown> {
    const v = this.loadVm(String(c.params.node), Number(c.params.vmid));
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v.config)) out[k] = INT_KEYS.has(k) || BOOL_KEYS.has(k) ? Number(val) : val;
    out.digest = this.digest(v);
    return out;
  }

  setConfig(c: Ctx, sync: boolean): string | null {
    const node = String(c.params.node);
    const vmid = Number(c.params.vmid);
    const changes: Record<string, string> = {};
    const deletes = typeof c.params.delete === "string" ? c.params.delete.split(/[,;\s]+/).filter(Boolean) : [];
    for (const [k, v] of Object.entries(c.raw)) {
      if (["node", "vmid", "delete", "digest", "background_delay", "skiplock"].includes(k)) continue;
      changes[k] = String(v);
    }
    if (!deletes.length && !Object.keys(changes).length) fail("no options specified");
    if (changes.sshkeys !== undefined) {
      // qemu-server: URI::Escape::uri_unescape, then every line must be an OpenSSH public key (ssh-keygen -l).
      const keys = decodeURIComponentStrict(changes.sshkeys);
      for (const line of keys.split("\n")) {
        if (line.trim() && !/^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-[\w@.-]+) [A-Za-z0-9+/]+=* ?.*$/.test(line.trim())) {
          fail(`SSH public key validation error`);
        }
      }
    }
    const current = this.loadVm(node, vmid).config;
    for (const k of [...Object.keys(changes), ...deletes]) {
      if (DRIVE_KEY.test(k)) {
        // qemu-server checks drives by value: a CD-ROM needs VM.Config.CDROM, a disk VM.Config.Disk; an ISO volume
        // needs read access to its storage (PVE::Storage::check_volume_access).
        const value = changes[k] ?? current[k] ?? "";
        const cdrom = /(^|,)media=cdrom(,|$)/.test(value);
        this.requirePriv(c.token, `/vms/${vmid}`, [cdrom ? "VM.Config.CDROM" : "VM.Config.Disk"]);
        const iso = changes[k] !== undefined ? /^([^:,]+):iso\/[^,]+/.exec(changes[k]!) : null;
        if (iso) {
          this.requirePriv(c.token, `/storage/${iso[1]}`, ["Datastore.AllocateSpace", "Datastore.Audit"], true);
          if (!cdrom) paramFail({ [k]: "content type needs to be 'images' or 'iso'" });
        } else if (changes[k] !== undefined && !/:cloudinit|^none(,|$)/.test(changes[k]!)) {
          throw new PveFail(501, `the PVE test double models only ISO and cloud-init drives in config changes ('${k}')\n`);
        }
        continue;
      }
      const privs = /^ipconfig\d+$/.test(k) ? ["VM.Config.Cloudinit", "VM.Config.Network"] : CONFIG_KEY_PRIVS[k];
      if (privs) this.requirePriv(c.token, `/vms/${vmid}`, privs, privs.length > 1);
    }
    const apply = (): string | void => {
      const v = this.loadVm(node, vmid);
      this.checkLock(v);
      if (c.params.digest && c.params.digest !== this.digest(v)) fail("detected modified configuration - file changed by other user? Try again.");
      if (!this.quorate()) fail(`unable to open file '/etc/pve/nodes/${node}/qemu-server/${vmid}.conf.tmp.${this.nextPid}' - Permission denied`);
      for (const k of deletes) delete v.config[k];
      for (const [k, val] of Object.entries(changes)) v.config[k] = k === "tags" ? val.split(/[;, ]+/).filter(Boolean).join(";") : val;
    };
    const v = this.loadVm(node, vmid);
    this.checkLock(v);
    if (c.params.digest && c.params.digest !== this.digest(v)) fail("detected modified configuration - file changed by other user? Try again.");
    if (sync) {
      if (this.locks.has(`vm:${vmid}`)) fail(`can't lock file '/var/lock/qemu-server/lock-${vmid}.conf' - got timeout`);
      apply();
      return null;
    }
    const task = this.fork(node, "qmconfig", String(vmid), c.token, {
      lockKey: `vm:${vmid}`,
      onEnd: () => {
        try {
          apply();
        } catch (e) {
          return (e as Error).message.trim();
        }
      },
    });
    if (c.params.background_delay !== undefined && task.phase === "stopped") {
      if (task.exitstatus === "OK" || /^WARNINGS: \d+$/.test(task.exitstatus ?? "")) return null;
      fail(`failed to update VM ${vmid}: ${task.exitstatus}`);
    }
    return task.upid;
  }

  resize(c: Ctx): string {
    const node = String(c.params.node);
    const vmid = Number(c.params.vmid);
    const disk = String(c.params.disk);
    const sizeStr = String(c.params.size);
    this.loadVm(node, vmid);
    return this.fork(node, "resize", String(vmid), c.token, {
      lockKey: `vm:${vmid}`,
      onStart: () => {
        const v = this.vms.get(vmid);
        if (!v) return `Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`;
        if (c.params.digest && c.params.digest !== this.digest(v)) return "checksum mismatch (file change by other user?)";
        if (!v.config[disk]) return `disk '${disk}' does not exist`;
        if (/media=cdrom/.test(v.config[disk]!)) return "you can't resize a cdrom";
      },
      onEnd: () => {
        const v = this.vm(vmid);
        const d = this.disks(v).find((x) => x.key === disk)!;
        const m = /^(\+)?(\d+(?:\.\d+)?)([KMGT])?$/.exec(sizeStr)!;
        const mult = { K: 1024, M: 1024 ** 2, G: GIB, T: 1024 ** 4 }[m[3] as "K"] ?? 1;
        let size = Math.floor(Number(m[2]) * mult);
        if (m[1]) size += d.sizeBytes;
        if (size < d.sizeBytes) return "shrinking disks is not supported";
        v.config[disk] = v.config[disk]!.replace(/size=[^,]+/, `size=${sizeString(size)}`);
        const vol = this.volumes.find((x) => `${x.storage}:${x.volname}` === d.volid);
        if (vol) vol.sizeBytes = size;
      },
    }).upid;
  }

  power(c: Ctx, type: "qmstart" | "qmshutdown" | "qmstop"): string {
    const node = String(c.params.node);
    const vmid = Number(c.params.vmid);
    const v = this.loadVm(node, vmid);
    if (type === "qmstart") this.requireQuorum();
    // qemu-server's vm_shutdown: an ACPI request to a paused guest would wait out its timeout and power the VM off
    // whenever it ran again, so it is refused, or turned into a stop with forceStop.
    const pausedStop = type === "qmshutdown" && v.status === "running" && Boolean(v.paused);
    if (pausedStop && c.params.forceStop !== 1) fail("VM is paused - cannot shutdown");
    if (type === "qmstop" && c.params["overrule-shutdown"] === 1) {
      for (const t of this.tasks) {
        if (t.type === "qmshutdown" && t.id === String(vmid) && t.phase !== "stopped") this.endTask(t, this.now(), "interrupted by signal");
      }
    }
    const timeoutS = c.params.timeout as number | undefined;
    return this.fork(node, type, String(vmid), c.token, {
      lockKey: `vm:${vmid}`,
      onStart: () => {
        const vm = this.vms.get(vmid);
        if (!vm) return `Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`;
        if (type === "qmstart") {
          if (vm.config.template === "1") return "you can't start a vm if it's a template";
          if (vm.config.lock) return `VM is locked (${vm.config.lock})`;
          if (vm.status === "running") return `VM ${vmid} already running`;
          return;
        }
        if (vm.status !== "running") return { durationMs: 0 };
        if (type === "qmshutdown" && !pausedStop) {
          const guestMs = vm.guest.acpiShutdownMs ?? 0;
          return { durationMs: Math.min(guestMs, (timeoutS ?? 60) * 1000) };
        }
      },
      onEnd: () => {
        const vm = this.vms.get(vmid);
        if (!vm) return;
        if (type === "qmstart") {
          vm.status = "running";
          vm.startedAt = this.now();
          return;
        }
        if (type === "qmshutdown" && !pausedStop && vm.status === "running" && (vm.guest.acpiShutdownMs ?? 0) > (timeoutS ?? 60) * 1000) {
          if (c.params.forceStop !== 1) return "VM quit/powerdown failed - got timeout";
          vm.status = "stopped";
          vm.paused = false;
          return "WARNINGS: 1";
        }
        vm.status = "stopped";
        vm.paused = false;
      },
    }).upid;
  }

  /**
   * `vm_suspend` without `todisk` (task `qmpause`): QMP `stop`. Refused before the task when the VM does not run; the
   * task checks the VM's lock (a backup's excepted) as it runs. A paused VM is paused again harmlessly.
   */
  pause(c: Ctx): string {
    const node = String(c.params.node);
    const vmid = Number(c.params.vmid);
    const v = this.loadVm(node, vmid);
    if (v.status !== "running") fail(`VM ${vmid} not running`);
    return this.fork(node, "qmpause", String(vmid), c.token, {
      lockKey: `vm:${vmid}`,
      onStart: () => {
        const vm = this.vms.get(vmid);
        if (!vm) return `Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`;
        if (vm.config.lock && vm.config.lock !== "backup") return `VM is locked (${vm.config.lock})`;
      },
      onEnd: () => {
        const vm = this.vms.get(vmid);
        if (!vm || vm.status !== "running") return `VM ${vmid} qmp command 'stop' failed - unable to connect to VM ${vmid} qmp socket - No such file or directory`;
        vm.paused = true;
      },
    }).upid;
  }

  /** `vm_resume` (task `qmresume`): QMP `cont`, nothing when the VM runs already; refused before the task when it does not run. */
  resume(c: Ctx): string {
    const node = String(c.params.node);
    const vmid = Number(c.params.vmid);
    const v = this.loadVm(node, vmid);
    if (v.status !== "running") fail(`VM ${vmid} not running`);
    return this.fork(node, "qmresume", String(vmid), c.token, {
      lockKey: `vm:${vmid}`,
      onStart: () => {
        if (!this.vms.get(vmid)) return `Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`;
      },
      onEnd: () => {
        const vm = this.vms.get(vmid);
        if (!vm || vm.status !== "running") return `VM ${vmid} qmp command 'query-status' failed - unable to connect to VM ${vmid} qmp socket - No such file or directory`;
        if (!vm.paused) return;
        if (vm.config.lock && vm.config.lock !== "backup") return `VM is locked (${vm.config.lock})`;
        vm.paused = false;
      },
    }).upid;
  }

  statusCurrent(c: Ctx): Record<string, unknown> {
    const v = this.loadVm(String(c.params.node), Number(c.params.vmid));
    const e: Record<string, unknown> = {
      vmid: v.vmid, status: v.status, qmpstatus: qmpStatus(v), name: v.config.name, ha: { managed: 0 },
      cpus: Number(v.config.cores ?? 1) * Number(v.config.sockets ?? 1), maxmem: Number(v.config.memory ?? 512) * 1024 ** 2,
      maxdisk: this.disks(v)[0]?.sizeBytes ?? 0, mem: 0, cpu: 0, diskread: 0, diskwrite: 0, netin: 0, netout: 0,
      uptime: v.status === "running" ? Math.floor((this.now() - v.startedAt) / 1000) : 0,
    };
    if (v.config.agent && /^(1|enabled=1)/.test(v.config.agent)) e.agent = 1;
    if (v.status === "running") e.pid = 4000 + v.vmid;
    if (v.config.template === "1") e.template = 1;
    if (v.config.tags) e.tags = v.config.tags;
    if (v.config.lock) e.lock = v.config.lock;
    return e;
  }

  destroy(c: Ctx): string {
    const node = String(c.params.node);
    const vmid = Number(c.params.vmid);
    const early = (): VmState => {
      const v = this.loadVm(node, vmid);
      if (v.config.protection === "1") fail(`can't remove VM ${vmid} - protection mode enabled`);
      if (v.status === "running") fail(`VM ${vmid} is running - destroy failed`);
      return v;
    };
    early();
    return this.fork(node, "qmdestroy", String(vmid), c.token, {
      lockKey: `vm:${vmid}`,
      onStart: () => {
        try {
          const v = early();
          if (v.config.lock) return `VM is locked (${v.config.lock})`;
        } catch (e) {
          return (e as Error).message.trim();
        }
        if (!this.quorate()) return `unable to open file '/etc/pve/nodes/${node}/qemu-server/${vmid}.conf.tmp.${this.nextPid}' - Permission denied`;
      },
      onEnd: () => {
        const v = this.vms.get(vmid);
        if (!v) return;
        const referenced = new Set(this.disks(v).map((d) => d.volid));
        if (v.config.ide2 && /cloudinit/.test(v.config.ide2)) referenced.add(v.config.ide2.split(",")[0]!);
        for (let i = this.volumes.length - 1; i >= 0; i--) {
          const vol = this.volumes[i]!;
          if (vol.vmid !== vmid || vol.content !== "images") continue;
          if (referenced.has(`${vol.storage}:${vol.volname}`) || c.params["destroy-unreferenced-disks"] === 1) this.volumes.splice(i, 1);
        }
        this.vms.delete(vmid);
      },
    }).upid;
  }

  taskStatus(c: Ctx): Record<string, unknown> {
    const upid = String(c.params.upid);
    const m = /^UPID:([^:]+):([0-9A-F]{8}):([0-9A-F]{8,9}):([0-9A-F]{8}):([^:]+):([^:]*):([^:]+):$/i.exec(upid);
    if (!m) paramFail({ upid: "unable to parse worker upid" });
    const task = this.tasks.find((t) => t.upid === upid);
    if (!task || task.node !== c.params.node) paramFail({ upid: "no such task" });
    const [user, tokenid] = task.user.includes("!") ? task.user.split("!") as [string, string] : [task.user, undefined];
    // A token reads its own tasks; others need Sys.Audit on the node (pve-manager API2/Tasks.pm check_task_user).
    if (c.token.tokenId !== task.user) this.requirePriv(c.token, `/nodes/${task.node}`, ["Sys.Audit"]);
    const out: Record<string, unknown> = {
      upid, node: task.node, pid: parseInt(m[2]!, 16), pstart: parseInt(m[3]!, 16), starttime: parseInt(m[4]!, 16),
      type: task.type, id: task.id, user, status: task.phase === "stopped" ? "stopped" : "running",
    };
    if (tokenid) out.tokenid = tokenid;
    if (task.phase === "stopped") out.exitstatus = task.exitstatus;
    return out;
  }

  upload(c: Ctx): string {
    const node = String(c.params.node);
    const sid = String(c.params.storage);
    const s = this.storages.get(sid);
    if (!s || !this.storageEnabledOn(s, node)) fail(`storage '${sid}' is not available on node '${node}'`);
    if (!c.upload) fail("missing temporary file name");
    const content = String(c.params.content);
    const filename = c.upload.filename;
    if (content === "iso" && !/[^/]+\.(?:iso|img)$/i.test(filename)) paramFail({ filename: "wrong file extension" });
    if (content !== "iso") throw new PveFail(501, `the PVE test double does not model uploads of '${content}'\n`);
    if (!s.content.includes(content)) fail(`storage '${sid}' does not support '${content}' content`);
    const bytes = c.upload.bytes;
    return this.fork(node, "imgcopy", "", c.token, {
      onEnd: () => {
        const volname = `iso/${filename}`;
        const i = this.volumes.findIndex((v) => v.storage === sid && v.volname === volname && (s.shared || v.node === node));
        if (i >= 0) this.volumes.splice(i, 1);
        this.volumes.push({ storage: sid, node: s.shared ? null : node, volname, sizeBytes: bytes.length, format: "iso", content: "iso", ctime: Math.floor(this.now() / 1000) });
        this.uploads.set(`${sid}:${volname}@${s.shared ? "" : node}`, bytes);
      },
    }).upid;
  }

  deleteVolume(c: Ctx): string {
    const node = String(c.params.node);
    const raw = String(c.params.volume);
    // pve-storage Content.pm real_volume_id: a full volid, or a volume name on the storage parameter.
    const volid = raw.includes(":") ? raw : c.params.storage !== undefined ? `${String(c.params.storage)}:${raw}` : paramFail({ storage: "storage ID missing" });
    const sid = volid.split(":")[0]!;
    if (c.params.storage !== undefined && c.params.storage !== sid) paramFail({ volume: `volume '${volid}' is not on storage '${String(c.params.storage)}'` });
    const s = this.storages.get(sid);
    if (!s || !this.storageEnabledOn(s, node)) fail(`storage '${sid}' does not exist`);
    const volname = volid.slice(sid.length + 1);
    const vol = this.volumes.find((v) => v.storage === sid && v.volname === volname && (s.shared || v.node === node));
    this.requirePriv(c.token, `/storage/${sid}`, ["Datastore.Allocate"]);
    return this.fork(node, "imgdel", `${vol?.vmid !== undefined ? `${vol.vmid}@` : ""}${sid}`, c.token, {
      onEnd: () => {
        const i = this.volumes.findIndex((v) => v.storage === sid && v.volname === volname && (s.shared || v.node === node));
        // pve-storage Plugin.pm free_image: a file that is not there is a warning ("disk image … does not exist").
        if (i < 0) return "WARNINGS: 1";
        this.volumes.splice(i, 1);
        this.uploads.delete(`${volid}@${s.shared ? "" : node}`);
      },
    }).upid;
  }

  /** Bytes of an uploaded ISO (volid like `local:iso/seed.iso`), as stored on a node. */
  uploadedBytes(node: string, volid: string): Buffer | undefined {
    this.advance();
    const s = this.storages.get(volid.split(":")[0]!);
    return this.uploads.get(`${volid}@${s?.shared ? "" : node}`);
  }

  storageContent(c: Ctx): unknown[] {
    const node = String(c.params.node);
    const sid = String(c.params.storage);
    const s = this.storages.get(sid);
    if (!s || !this.storageEnabledOn(s, node)) fail(`storage '${sid}' is not available on node '${node}'`);
    return this.volumes
      .filter((v) => v.storage === sid && (s.shared || v.node === node))
      .filter((v) => c.params.content === undefined || v.content === c.params.content)
      .filter((v) => c.params.vmid === undefined || v.vmid === c.params.vmid)
      .map((v) => {
        const e: Record<string, unknown> = { volid: `${v.storage}:${v.volname}`, content: v.content, format: v.format, size: v.sizeBytes, ctime: v.ctime };
        if (v.vmid !== undefined) e.vmid = v.vmid;
        if (v.parent) e.parent = v.parent;
        return e;
      });
  }

  private agentVm(c: Ctx): VmState {
    const v = this.loadVm(String(c.params.node), Number(c.params.vmid));
    if (!v.config.agent || /^(0|enabled=0)/.test(v.config.agent)) fail("No QEMU guest agent configured");
    if (v.status !== "running") fail(`VM ${v.vmid} is not running`);
    if (v.guest.agentRunning === false) fail("QEMU guest agent is not running");
    return v;
  }

  agentInterfaces(c: Ctx): unknown {
    const v = this.agentVm(c);
    return { result: v.guest.interfaces ?? [] };
  }

  agentExec(c: Ctx): unknown {
    const v = this.agentVm(c);
    const command = c.params.command as string[];
    const input = c.params["input-data"] as string | undefined;
    const r = v.guest.exec ? v.guest.exec(command, input) : { exitcode: 0 };
    const pid = v.nextExecPid++;
    v.execs.set(pid, { startedAt: this.now(), runMs: r.runMs ?? 0, exitcode: r.exitcode, out: r.out ?? "", err: r.err ?? "" });
    return { pid };
  }

  agentExecStatus(c: Ctx): unknown {
    const v = this.agentVm(c);
    const ex = v.execs.get(Number(c.params.pid));
    if (!ex) fail(`Agent error: Invalid parameter 'pid'`);
    if (this.now() < ex.startedAt + ex.runMs) return { exited: 0 };
    const out: Record<string, unknown> = { exited: 1, exitcode: ex.exitcode };
    if (ex.out) out["out-data"] = ex.out;
    if (ex.err) out["err-data"] = ex.err;
    return out;
  }
}

function reply(res: ServerResponse, status: number, message: string, errors?: Record<string, string>): void {
  const body: Record<string, unknown> = { data: null, message };
  if (errors && Object.keys(errors).length) body.errors = errors;
  res.writeHead(status, message.split("\n")[0]!.replace(/[^\x20-\x7e]/g, "?"), { "Content-Type": "application/json;charset=UTF-8" });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** pve-http-server's decode_urlencoded: `+` is a space, repeated keys become a list; JSON bodies are read too. */
function decodeForm(text: string, contentType?: string): Record<string, string | string[]> {
  if (contentType && /^application\/json/.test(contentType)) {
    const v = JSON.parse(text || "{}") as Record<string, unknown>;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, Array.isArray(x) ? x.map(String) : String(x)]));
  }
  const out: Record<string, string | string[]> = {};
  if (!text) return out;
  const dec = (s: string) => Buffer.from(s.replace(/\+/g, " ").replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8");
  for (const kv of text.split(/[&;]/)) {
    const [k, v] = kv.split("=");
    if (k === undefined || v === undefined) continue;
    const key = dec(k);
    const val = dec(v);
    const old = out[key];
    out[key] = old === undefined ? val : Array.isArray(old) ? [...old, val] : [old, val];
  }
  return out;
}

/** URI::Escape::uri_unescape: %XX only, `+` stays. */
function decodeURIComponentStrict(s: string): string {
  return Buffer.from(s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8");
}

/**
 * pve-http-server's multipart upload reader: text fields (`content`, `checksum-algorithm`, `checksum`) must come
 * before the file, the file part must be named `filename`, and a Content-Length is required.
 */
function parseMultipart(
  contentType: string | undefined,
  contentLength: string | undefined,
  body: Buffer,
): { fields: Record<string, string>; file?: { filename: string; bytes: Buffer } } {
  const boundary = /^multipart\/form-data;\s*boundary=(\S+?)\s*$/.exec(contentType ?? "")?.[1];
  if (!boundary) fail(`upload 'Content-Type '${contentType ?? ""}' not implemented`);
  if (!contentLength) fail("upload without content length header not supported");
  const fields: Record<string, string> = {};
  const delim = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delim);
  while (pos >= 0) {
    const start = pos + delim.length;
    if (body.subarray(start, start + 2).toString() === "--") break;
    const headerEnd = body.indexOf("\r\n\r\n", start);
    if (headerEnd < 0) fail("upload failed");
    const headers = body.subarray(start, headerEnd).toString("utf8");
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headerEnd + 4);
    if (next < 0) fail("upload failed");
    const data = body.subarray(headerEnd + 4, next);
    const disp = /Content-Disposition: (.*?); name="(.*?)"(?:; filename="([^"]+)")?/.exec(headers);
    if (!disp) fail("upload failed");
    if (disp[1] !== "form-data") fail(`wrong Content-Disposition '${disp[1]}' in multipart, expected 'form-data'`);
    if (disp[3] !== undefined) {
      if (disp[2] !== "filename") fail(`wrong field name '${disp[2]}' for file upload, expected 'filename'`);
      return { fields, file: { filename: disp[3].trim(), bytes: Buffer.from(data) } };
    }
    if (["content", "checksum-algorithm", "checksum"].includes(disp[2]!)) fields[disp[2]!] = data.toString("utf8").trim();
    pos = next + 2;
  }
  return { fields };
}
