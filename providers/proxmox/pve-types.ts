/**
 * Shapes of the PVE API answers the client uses, field for field from pve-docs `api-viewer/apidata.js`
 * (the excerpt in testdata/pve-api-excerpt.json). PVE sends booleans as 0/1; `PveBool` says so.
 * Only fields premiscale reads are listed; PVE may send more.
 */

/** A boolean as PVE sends it: mostly 0/1, sometimes a JSON boolean. */
export type PveBool = 0 | 1 | boolean;

/** Reads a PVE boolean. */
export function pveBool(v: PveBool | undefined): boolean {
  return v === true || v === 1;
}

/** A node in `/cluster/resources`. Without Sys.Audit on /nodes/NODE, PVE leaves out every number. */
export interface PveNodeResource {
  type: "node";
  id: string;
  node: string;
  status: "online" | "offline" | "unknown";
  cpu?: number;
  maxcpu?: number;
  mem?: number;
  maxmem?: number;
  disk?: number;
  maxdisk?: number;
  uptime?: number;
  level?: string;
}

/** A VM in `/cluster/resources` (type `qemu`; `lxc` containers are listed too and ignored by premiscale). */
export interface PveVmResource {
  type: "qemu" | "lxc";
  id: string;
  vmid: number;
  node: string;
  /**
   * stopped, or for a VM whose QEMU runs its QMP status as pvestatd last saw it (every ~10 s): running, paused,
   * suspended, prelaunch…; unknown when its node sends no data (e.g. offline).
   */
  status: string;
  name?: string;
  template?: PveBool;
  tags?: string;
  lock?: string;
  pool?: string;
  cpu?: number;
  maxcpu?: number;
  mem?: number;
  maxmem?: number;
  disk?: number;
  maxdisk?: number;
  netin?: number;
  netout?: number;
  diskread?: number;
  diskwrite?: number;
  uptime?: number;
  hastate?: string;
}

/** A storage as seen from one node in `/cluster/resources` (one entry per node it is enabled on). */
export interface PveStorageResource {
  type: "storage";
  id: string;
  storage: string;
  node: string;
  /** available | unknown */
  status: string;
  /** Comma-separated content types, e.g. `images,rootdir`. */
  content: string;
  shared: PveBool;
  plugintype: string;
  disk?: number;
  maxdisk?: number;
}

/** Any entry of `/cluster/resources` premiscale reads; other types (pool, sdn, network) pass through untyped. */
export type PveClusterResource =
  | PveNodeResource
  | PveVmResource
  | PveStorageResource
  | { type: "pool" | "sdn" | "network" | "openvz"; id: string; [k: string]: unknown };

/** One VM of `GET /nodes/{node}/qemu`. */
export interface PveVmListEntry {
  vmid: number;
  status: "running" | "stopped";
  name?: string;
  template?: PveBool;
  tags?: string;
  lock?: string;
  cpus?: number;
  maxmem?: number;
  maxdisk?: number;
  mem?: number;
  cpu?: number;
  uptime?: number;
  pid?: number;
  qmpstatus?: string;
}

/** `GET /nodes/{node}/qemu/{vmid}/status/current`. */
export interface PveVmStatus {
  vmid: number;
  /** Whether the VM's QEMU process runs: a paused VM is `running` here. */
  status: "running" | "stopped";
  /** QMP `query-status` now: running, paused, suspended (guest S3), prelaunch…; the same as `status` when stopped. */
  qmpstatus?: string;
  name?: string;
  /** 1 when the config enables the guest agent (not whether it answers). */
  agent?: PveBool;
  template?: PveBool;
  tags?: string;
  lock?: string;
  ha: { managed: 0 | 1; [k: string]: unknown };
  cpus?: number;
  cpu?: number;
  maxmem?: number;
  mem?: number;
  maxdisk?: number;
  diskread?: number;
  diskwrite?: number;
  netin?: number;
  netout?: number;
  uptime?: number;
  pid?: number;
}

/** A VM's config (`GET …/config`): keys as in the VM's config file; `digest` guards concurrent changes. */
export interface PveVmConfig {
  digest: string;
  name?: string;
  cores?: number;
  sockets?: number;
  /** MiB, or a property string `current=…`. */
  memory?: string | number;
  template?: PveBool;
  tags?: string;
  description?: string;
  ciuser?: string;
  citype?: "configdrive2" | "nocloud" | "opennebula";
  cicustom?: string;
  nameserver?: string;
  searchdomain?: string;
  /** URL-encoded, as stored (decode with `decodeSshKeys`). */
  sshkeys?: string;
  agent?: string;
  lock?: string;
  [key: string]: string | number | boolean | undefined;
}

/** `GET /nodes/{node}/tasks/{upid}/status`. */
export interface PveTaskStatus {
  upid: string;
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  user: string;
  /** Set by PVE when a token started the task. */
  tokenid?: string;
  status: "running" | "stopped";
  /** Once stopped: "OK", "WARNINGS: n", or the error text. */
  exitstatus?: string;
}

/** One volume of `GET /nodes/{node}/storage/{storage}/content`. */
export interface PveStorageContentEntry {
  volid: string;
  format: string;
  size: number;
  content?: string;
  vmid?: number;
  ctime?: number;
  parent?: string;
  used?: number;
  notes?: string;
}

/** One interface of the guest agent's `network-get-interfaces` (QEMU guest agent's own shape). */
export interface PveGuestInterface {
  name: string;
  "hardware-address"?: string;
  "ip-addresses"?: Array<{ "ip-address-type": "ipv4" | "ipv6"; "ip-address": string; prefix: number }>;
  statistics?: Record<string, number>;
}

/** `GET …/agent/exec-status`, with out-data and err-data already base64-decoded by PVE. */
export interface PveAgentExecStatus {
  exited: PveBool;
  exitcode?: number;
  signal?: number;
  "out-data"?: string;
  "err-data"?: string;
  "out-truncated"?: PveBool;
  "err-truncated"?: PveBool;
}

/** The parts of a UPID (`UPID:node:PID:PSTART:STARTTIME:type:id:user:`, hex fields). */
export interface PveUpid {
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  /** `user@realm`, or `user@realm!token` when a token started it. */
  user: string;
}
