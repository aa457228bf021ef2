import { ProviderError } from "../../config/errors.js";
import type { HostConfig } from "../../config/types.js";
import type {
  CallOptions,
  HostCapacity,
  HostObservation,
  HostResource,
  ObserveRequest,
  OwnedVm,
  Provider,
  TemplateFit,
  TemplateQuery,
  VmCounters,
  VmRunState,
  VmSpec,
} from "../provider.js";
import { openCluster, type ClusterConnection } from "./cluster-connection.js";
import { describeTemplateRef, proxmoxHost, proxmoxNode, type ProxmoxHostSettings, type ProxmoxTemplateSettings } from "./config.js";
import { OWNER_TAG, instanceFromTags, markerDescription, parseMarker, splitTags, vmTags, type Marker } from "./marker.js";
import { cloneWithFreshId, systemClock, type CloneClient, type PveClient, type PveClock, type PveConfigChanges, type WaitTaskOptions } from "./pve-client.js";
import { PveApiError, PveConnectionError, PveTaskError } from "./pve-errors.js";
import type { PveClusterResource, PveNodeResource, PveStorageResource, PveVmConfig, PveVmResource, PveVmStatus } from "./pve-types.js";
import { pveBool } from "./pve-types.js";
import { SeedBuildError, buildSeedIso, renderNetworkConfig, seedFileName, seedFiles } from "./seed.js";

/** Options of the proxmox adapter beyond the host's config. */
export interface ProxmoxProviderOptions {
  /** Overrides the host's `callTimeoutSeconds` for every API call. */
  callTimeoutMs?: number;
  /** Where the token's secret is read from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** Clock and sleep of every wait (tasks, locks, shutdown, the guest agent). @default the real clock */
  clock?: PveClock;
  /** Tasks are polled after this long first, then less often up to `maxPollMs`. @default 250 */
  pollMs?: number;
  /** @default 2000 */
  maxPollMs?: number;
  /** Program that writes ISO9660 images. @default "genisoimage" */
  isoTool?: string;
}

/** The proxmox settings of a VM as the plan carries them: what `observe` answered for its host. */
export interface ProxmoxVmSettings {
  /** The node the VM goes on (the host's node). */
  node: string;
  /** The PVE template cloned: on this node, or on another one from shared storage. */
  template: { node: string; vmid: number; name: string };
  full: boolean;
  storage?: string;
  diskGiB?: number;
  cloudInit: "seed" | "proxmox";
  /** Storage of the seed ISO (the host's `isoStorage`). */
  isoStorage: string;
  ciUser?: string;
  sshKeys: string[];
  searchDomains: string[];
  /** Wait for the QEMU guest agent this long after the clone, s. */
  guestAgentTimeoutSeconds?: number;
}

const USER_DATA_FIX = "use cloudInit: seed, or remove the user-data and set readiness.checkIn: false (guestAgent.wait can take its place)";
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const DRIVE_RE = /^(ide|sata|scsi|virtio)\d+$/;
const BUS_ORDER = ["scsi", "virtio", "sata", "ide"];
/** An instance name (`GROUP-UUID8`): an unmarked VM so named may be a half-made one of ours, worth one config read. */
const INSTANCE_NAME_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?-[0-9a-f]{8}$/;

/** What the marker cache knows of one VM (by vmid and name: both are fixed once the clone has run). */
interface Identity {
  marker: Marker | null;
  /** SMBIOS uuid (a VM without marker is known to state by it). */
  smbiosUuid: string | null;
}

/** A VM premiscale found under a name it was asked about. */
interface FoundVm {
  vmid: number;
  config: PveVmConfig;
  status: string;
}

/**
 * The Proxmox VE adapter of the `Provider` port: one premiscale host is one PVE node, and the adapters of a cluster's
 * nodes share one API connection (see config.ts for why per node). Every call has the host's call timeout, goes to
 * this node's own endpoint (cluster-wide ones too), and every task and lock wait is bounded by `taskTimeoutSeconds`.
 * Ownership marker: the description written by the clone itself (instance id, group, lineage, created-at) and the
 * tags `premiscale`, `premiscale-<instance id>` (see marker.ts).
 */
export class ProxmoxProvider implements Provider {
  readonly kind = "proxmox";
  readonly host: string;
  /** The PVE node this host is. */
  readonly node: string;
  private readonly settings: ProxmoxHostSettings;
  private readonly timeoutMs: number;
  private readonly clock: PveClock;
  private conn: ClusterConnection | null = null;
  private readonly identities = new Map<string, Identity>();
  private readonly cpu = new Map<string, { vmid: number; at: number; ns: number }>();

  constructor(
    private readonly config: HostConfig,
    private readonly options: ProxmoxProviderOptions = {},
  ) {
    this.host = config.name;
    this.node = proxmoxNode(config);
    this.settings = proxmoxHost(config);
    this.timeoutMs = options.callTimeoutMs ?? config.callTimeoutSeconds * 1000;
    this.clock = options.clock ?? systemClock;
  }

  /** The shared connection, opened on first use (so commands that never call the host need no secret). */
  private connection(): ClusterConnection {
    this.conn ??= openCluster(this.settings.api, {
      timeoutMs: this.timeoutMs,
      // PVE's calls are short (slow work runs as tasks that are polled), so a few sockets serve many parallel steps.
      maxSocketsPerNode: 8,
      ...(this.options.env ? { env: this.options.env } : {}),
    });
    return this.conn;
  }

  private get client(): PveClient {
    return this.connection().client;
  }

  private get cluster(): string {
    return this.settings.api.cluster;
  }

  private wait(signal?: AbortSignal, timeoutMs = this.settings.taskTimeoutSeconds * 1000): WaitTaskOptions {
    return {
      timeoutMs,
      pollMs: this.options.pollMs ?? 250,
      maxPollMs: this.options.maxPollMs ?? 2000,
      // A node that stops answering fails its task waits after one call timeout, not after the task's.
      unreachableGraceMs: Math.max(this.timeoutMs, 5000),
      clock: this.clock,
      ...(signal ? { signal } : {}),
    };
  }

  /**
   * Runs `work`; a failure becomes a ProviderError naming this host and what was being done, its fix in the message
   * too (apply shows messages only). Errors that are not premiscale's own (a throw from `onStep`) pass unchanged.
   */
  private async doing<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw this.wrap(e, what);
    }
  }

  private wrap(e: unknown, what: string): unknown {
    if (e instanceof ProviderError) {
      if (e.host === this.host && e.message.startsWith(`host ${this.host}: ${what}`)) return e;
      const inner = e.message.replace(/^host \S+: /, "");
      return new ProviderError(this.host, `${what}: ${inner}${e.hint ? `; ${e.hint}` : ""}`, e.hint, { cause: e, code: e.code });
    }
    if (e instanceof SeedBuildError) return new ProviderError(this.host, `${what}: ${e.message}; ${e.hint}`, e.hint, { cause: e, code: "seed_failed" });
    return e;
  }

  // ---- observe ----------------------------------------------------------------------------------------------------

  async observe(request: ObserveRequest): Promise<HostObservation> {
    const unreachable = (error: string): HostObservation => ({ host: this.host, status: "unreachable", error });
    let list: PveClusterResource[];
    try {
      list = await this.client.clusterResources(undefined, { via: this.node });
    } catch (e) {
      return unreachable(await this.whyUnreachable(e));
    }
    const nodes = list.filter((r): r is PveNodeResource => r.type === "node");
    const me = nodes.find((n) => n.node === this.node);
    if (!me) {
      return unreachable(
        `PVE cluster ${this.cluster} has no node ${this.node} (its nodes: ${nodes.map((n) => n.node).join(", ") || "none visible"}); set hosts[].node to one of them`,
      );
    }
    if (me.status !== "online") {
      return unreachable(`PVE node ${this.node} is ${me.status} in cluster ${this.cluster}: it is skipped (its VMs are left as they are; new VMs go to other hosts)`);
    }
    const vms = list.filter((r): r is PveVmResource => r.type === "qemu" && r.node === this.node && !pveBool(r.template));
    let owned: OwnedVm[];
    try {
      owned = await this.ownedVms(vms, request.known);
    } catch (e) {
      return unreachable(errorText(this.wrap(e, "reading the marker of VMs")));
    }
    const storages = list.filter((r): r is PveStorageResource => r.type === "storage" && r.node === this.node);
    const resources: Record<string, HostResource> = {};
    for (const s of storages) {
      if (s.status !== "available" || !s.content.split(",").includes("images") || s.maxdisk === undefined) continue;
      resources[storageKey(s.storage)] = { label: `storage "${s.storage}"`, unit: "bytes", available: Math.max(0, s.maxdisk - (s.disk ?? 0)), capacity: s.maxdisk };
    }
    const maxmem = me.maxmem ?? 0;
    const capacity: HostCapacity = {
      cpus: me.maxcpu ?? 0,
      memoryMiB: Math.floor(maxmem / MiB),
      freeMemoryMiB: Math.max(0, Math.floor((maxmem - (me.mem ?? 0)) / MiB)),
      // Every VM whose QEMU runs holds its vCPUs, a paused one too (its status is its QMP status: paused, …).
      allocatedVcpus: vms.filter((v) => v.status !== "stopped" && v.status !== "unknown").reduce((a, v) => a + (v.maxcpu ?? 0), 0),
      resources,
    };
    const fits: Record<string, TemplateFit> = {};
    await Promise.all(
      [...request.templates].map(async ([group, t]) => {
        fits[group] = await this.fit(t, list, storages);
      }),
    );
    return { host: this.host, status: "ok", capacity, vms: owned, fits };
  }

  /** Why the cluster could not be asked through this node: when the node refuses connections, whether it is offline. */
  private async whyUnreachable(e: unknown): Promise<string> {
    const own = errorText(this.wrap(e, `asking cluster ${this.cluster} through node ${this.node}`));
    const others = this.settings.api.endpoints.filter((x) => x.node !== this.node);
    if (!(e instanceof PveConnectionError) || e.kind !== "unreachable" || others.length === 0) return own;
    try {
      const nodes = await this.client.clusterResources("node", { audit: "ignore" });
      const me = nodes.find((n) => n.type === "node" && n.node === this.node) as PveNodeResource | undefined;
      if (me && me.status !== "online") {
        return `PVE node ${this.node} is ${me.status} in cluster ${this.cluster} (as its other nodes report): it is skipped (its VMs are left as they are; new VMs go to other hosts)`;
      }
      return `${own} (cluster ${this.cluster} still lists node ${this.node} online: its API, pveproxy, does not answer)`;
    } catch {
      return own;
    }
  }

  /** The VMs carrying premiscale's marker, or recorded in state under that name and SMBIOS uuid; at most one config read per VM premiscale may own. */
  private async ownedVms(vms: PveVmResource[], known: ObserveRequest["known"]): Promise<OwnedVm[]> {
    const out: OwnedVm[] = [];
    await Promise.all(
      vms.map(async (v) => {
        const name = v.name ?? "";
        const state = runState(v);
        const tagged = instanceFromTags(v.tags);
        const k = known.get(name);
        if (tagged && k && k.uuid === tagged) {
          out.push({ name, uuid: tagged, group: k.group, lineage: k.lineage, createdAt: k.createdAt, state });
          return;
        }
        // A VM that is not (yet) tagged is read only when it may be ours: recorded in state under its name, or named
        // like an instance (a clone whose configure step never ran).
        if (!tagged && !splitTags(v.tags).includes(OWNER_TAG) && !k && !INSTANCE_NAME_RE.test(name)) return;
        const id = await this.identity(v.vmid, name);
        if (!id) return;
        if (id.marker) {
          out.push({ name, uuid: id.marker.instance, group: id.marker.group, lineage: id.marker.lineage, createdAt: id.marker.createdAt, state });
        } else if (k && id.smbiosUuid === k.uuid.toLowerCase()) {
          out.push({ name, uuid: k.uuid, group: k.group, lineage: k.lineage, createdAt: k.createdAt, state });
        }
      }),
    );
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A VM's marker and SMBIOS uuid, read once per VM (they are written once); null when the VM is gone meanwhile. */
  private async identity(vmid: number, name: string): Promise<Identity | null> {
    const key = `${vmid}/${name}`;
    const hit = this.identities.get(key);
    if (hit) return hit;
    let cfg: PveVmConfig;
    try {
      cfg = await this.client.getConfig(this.node, vmid);
    } catch (e) {
      if (isGone(e)) return null;
      throw e;
    }
    if (cfg.lock === "clone") return { marker: parseMarker(cfg.description), smbiosUuid: smbiosUuid(cfg) };
    const id: Identity = { marker: parseMarker(cfg.description), smbiosUuid: smbiosUuid(cfg) };
    this.identities.set(key, id);
    return id;
  }

  /** Whether a group's template can go on this node, what it takes, and the settings the plan carries. */
  private async fit(t: TemplateQuery, list: PveClusterResource[], storages: PveStorageResource[]): Promise<TemplateFit> {
    const ts = t.settings as ProxmoxTemplateSettings | undefined;
    if (!ts) return { ok: false, reason: "the group's template has no proxmox settings" };
    const ref = ts.template;
    const matches = list
      .filter((r): r is PveVmResource => r.type === "qemu" && pveBool(r.template))
      .filter((r) => ("name" in ref ? r.name === ref.name : splitTags(r.tags).includes(ref.tag)))
      .sort((a, b) => Number(b.node === this.node) - Number(a.node === this.node) || a.vmid - b.vmid);
    const what = describeTemplateRef(ref);
    if (matches.length === 0) {
      return { ok: false, reason: `no ${what} in PVE cluster ${this.cluster} (a token without VM.Audit on it does not see it either)` };
    }
    const src = matches[0]!;
    let cfg: PveVmConfig;
    try {
      cfg = await this.connection().templateConfig(src.node, src.vmid);
    } catch (e) {
      const hint = e instanceof ProviderError && e.hint ? `; ${e.hint}` : "";
      return { ok: false, reason: `cannot read ${what} (VM ${src.vmid} on node ${src.node}): ${errorText(e).replace(/^host \S+: /, "")}${hint}` };
    }
    const disks = driveEntries(cfg).filter((d) => !d.cdrom && !d.cloudinit);
    const boot = bootDisk(cfg);
    if (!boot) return { ok: false, reason: `${what} (VM ${src.vmid} on node ${src.node}) has no disk to boot from` };
    if (src.node !== this.node) {
      const local = disks.filter((d) => !list.some((r) => r.type === "storage" && (r as PveStorageResource).storage === d.storage && pveBool((r as PveStorageResource).shared)));
      if (local.length > 0) {
        return {
          ok: false,
          reason:
            `${what} is on node ${src.node}, not on ${this.node}, and its disk ${local[0]!.key} is on storage "${local[0]!.storage}", which is not shared: ` +
            `put a copy of the template on node ${this.node} (same ${"name" in ref ? "name" : "tag"}), or its disks on shared storage`,
        };
      }
    }
    const full = ts.clone === "full";
    const target = full && ts.storage ? ts.storage : boot.storage;
    const st = storages.find((s) => s.storage === target);
    if (!st || st.status !== "available") return { ok: false, reason: `storage "${target}" is not available on node ${this.node}` };
    if (!st.content.split(",").includes("images")) return { ok: false, reason: `storage "${target}" on node ${this.node} does not take VM disks (content images)` };
    if (ts.cloudInit === "seed") {
      const iso = storages.find((s) => s.storage === this.settings.isoStorage);
      if (!iso || iso.status !== "available" || !iso.content.split(",").includes("iso")) {
        return {
          ok: false,
          reason: `storage "${this.settings.isoStorage}" (hosts[].isoStorage, for the cloud-init seed) is not available on node ${this.node} with content iso: set isoStorage to a file-based storage that takes ISO images, or use cloudInit: proxmox`,
        };
      }
    } else if (!driveEntries(cfg).some((d) => d.cloudinit)) {
      return {
        ok: false,
        reason: `${what} (VM ${src.vmid} on node ${src.node}) has no cloud-init drive, which cloudInit: proxmox needs: add one (\`qm set ${src.vmid} --ide2 ${boot.storage}:cloudinit\`), or use cloudInit: seed`,
      };
    }
    const diskBytes = Math.max(boot.bytes, (ts.diskGiB ?? 0) * GiB);
    const settings: ProxmoxVmSettings = {
      node: this.node,
      template: { node: src.node, vmid: src.vmid, name: src.name ?? String(src.vmid) },
      full,
      ...(full && ts.storage ? { storage: ts.storage } : {}),
      ...(ts.diskGiB !== undefined ? { diskGiB: ts.diskGiB } : {}),
      cloudInit: ts.cloudInit,
      isoStorage: this.settings.isoStorage,
      ...(ts.ciUser !== undefined ? { ciUser: ts.ciUser } : {}),
      sshKeys: ts.sshKeys,
      searchDomains: ts.searchDomains,
      ...(ts.guestAgent ? { guestAgentTimeoutSeconds: ts.guestAgent.timeoutSeconds } : {}),
    };
    // A linked clone on thin storage grows up to the template's size: count all of it, as libvirt counts overlays.
    return { ok: true, demand: { [storageKey(target)]: diskBytes }, settings: { proxmox: settings } };
  }

  // ---- create -----------------------------------------------------------------------------------------------------

  async createVm(spec: VmSpec, options: CallOptions = {}): Promise<void> {
    const s = vmSettings(spec);
    const { signal, onStep } = options;
    const what = `create ${spec.name}`;
    if (s.node !== this.node) {
      throw new ProviderError(this.host, `${what}: the plan puts it on node ${s.node}, but this host is node ${this.node}; run premiscale plan again`, "run premiscale plan again");
    }
    if (s.cloudInit === "proxmox" && spec.userData.trim()) {
      // Before anything is made: PVE's cloud-init drive takes no user-data through the API.
      throw new ProviderError(
        this.host,
        `${what}: group ${spec.group}'s user-data (its own, or premiscale's check-in) cannot reach the guest through PVE's cloud-init drive (cloudInit: proxmox takes user-data only from a snippet, and snippets cannot be uploaded through the API); ${USER_DATA_FIX}`,
        USER_DATA_FIX,
        { code: "user_data_unsupported" },
      );
    }
    const found = await this.doing(`${what}: looking for an earlier attempt`, () => this.findOwn(spec.name, spec.uuid, signal));
    let vm = found[0];
    let cloneEnd: number;
    if (!vm) {
      signal?.throwIfAborted();
      onStep?.("create-disk");
      const vmid = await this.doing(`${what}: clone of template ${s.template.name} (VM ${s.template.vmid} on node ${s.template.node})`, () => this.clone(spec, s, signal));
      cloneEnd = this.clock.now();
      vm = { vmid, config: {} as PveVmConfig, status: "stopped" };
    } else {
      // An earlier attempt's clone may still run (premiscale died while it did): wait for it, never clone twice.
      if (vm.config.lock) await this.doing(`${what} (VM ${vm.vmid})`, () => this.waitUnlocked(vm!.vmid, signal));
      cloneEnd = this.clock.now();
    }
    const vmid = vm.vmid;
    const at = `${what} (VM ${vmid} on node ${this.node})`;
    const status = await this.doing(at, async () => (await this.client.statusCurrent(this.node, vmid, { signal })).status);
    // A VM that runs was configured before it was started.
    if (status !== "running") {
      signal?.throwIfAborted();
      onStep?.("configure");
      await this.doing(at, () => this.configure(vmid, spec, s, signal));
      signal?.throwIfAborted();
      onStep?.("start");
      await this.doing(`${at}: start`, async () => {
        try {
          await this.client.waitTask(this.node, await this.client.start(this.node, vmid, {}, { signal }), this.wait(signal));
        } catch (e) {
          if (!(e instanceof PveTaskError && /already running/.test(e.exitstatus ?? ""))) throw e;
        }
      });
    }
    if (s.guestAgentTimeoutSeconds !== undefined) {
      await this.doing(at, () => this.waitGuestAgent(vmid, cloneEnd + s.guestAgentTimeoutSeconds! * 1000, signal));
    }
  }

  /** Clones the template under a fresh id (retrying ids other clones took meanwhile); removes a half-made clone of ours. */
  private async clone(spec: VmSpec, s: ProxmoxVmSettings, signal?: AbortSignal): Promise<number> {
    const client = this.client;
    // nextid is a cluster-wide call: through this node, like everything this host does.
    const cc: CloneClient = {
      nextId: (o) => client.nextId({ ...o, via: this.node }),
      clone: (node, vmid, o, opts) => client.clone(node, vmid, o, opts),
      waitTask: (node, upid, o) => client.waitTask(node, upid, o),
    };
    const marker: Marker = { instance: spec.uuid, group: spec.group, lineage: spec.lineage, createdAt: spec.createdAt };
    // The plan names the template by node and id; ids are reused, so the id must still be that template.
    const source = await this.connection().templateConfig(s.template.node, s.template.vmid, signal);
    if (!pveBool(source.template) || source.name !== s.template.name) {
      throw new ProviderError(
        this.host,
        `VM ${s.template.vmid} on node ${s.template.node} is no longer template ${s.template.name} (the plan was made before it changed); run premiscale plan again`,
        "run premiscale plan again",
        { code: "plan_stale" },
      );
    }
    try {
      const r = await cloneWithFreshId(
        cc,
        s.template.node,
        s.template.vmid,
        {
          name: spec.name,
          description: markerDescription(marker),
          full: s.full,
          ...(s.storage ? { storage: s.storage } : {}),
          ...(s.template.node !== this.node ? { target: this.node } : {}),
        },
        { wait: this.wait(signal) },
      );
      return r.vmid;
    } catch (e) {
      if (e instanceof PveTaskError && e.kind === "timeout") {
        throw new ProviderError(
          this.host,
          `${e.message}: the clone keeps running on PVE and is not started again; premiscale removes it once it has finished (next apply)`,
          "for slow storage, raise hosts[].taskTimeoutSeconds",
          { cause: e, code: e.code },
        );
      }
      // PVE removes a failed clone itself; whatever it left under our marker goes too.
      await this.removeLeftovers(spec, signal).catch(() => undefined);
      throw e;
    }
  }

  private async removeLeftovers(spec: VmSpec, signal?: AbortSignal): Promise<void> {
    for (const vm of await this.findOwn(spec.name, spec.uuid, signal)) await this.destroyOne(vm.vmid, spec, { shutdownTimeoutMs: 0, ...(signal ? { signal } : {}) });
  }

  /** Sizes, tags, cloud-init (seed ISO or PVE's keys) and the guest agent, in one config change. */
  private async configure(vmid: number, spec: VmSpec, s: ProxmoxVmSettings, signal?: AbortSignal): Promise<void> {
    const opts = signal ? { signal } : {};
    let cfg = await this.client.getConfig(this.node, vmid, {}, opts);
    if (s.diskGiB !== undefined) {
      const boot = bootDisk(cfg);
      if (!boot) throw new ProviderError(this.host, `VM ${vmid} has no disk to grow`, `check template ${s.template.name}`);
      if (boot.bytes < s.diskGiB * GiB) {
        await this.client.waitTask(this.node, await this.client.resize(this.node, vmid, boot.key, `${s.diskGiB}G`, {}, opts), this.wait(signal));
        cfg = await this.client.getConfig(this.node, vmid, {}, opts);
      }
    }
    const changes: PveConfigChanges = { cores: spec.vcpus, sockets: 1, memoryMiB: spec.memoryMiB, tags: vmTags(cfg.tags, spec.uuid) };
    if (s.guestAgentTimeoutSeconds !== undefined && !/^(1|enabled=1)(,|$)/.test(String(cfg.agent ?? ""))) changes.agent = true;
    const drives = driveEntries(cfg);
    if (s.cloudInit === "seed") {
      const mac = /(?:^|,)[a-z0-9]+=([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})(?:,|$)/.exec(String(cfg.net0 ?? ""))?.[1];
      if (!mac) {
        throw new ProviderError(this.host, `VM ${vmid} has no network device net0 (cloned from template ${s.template.name})`, `add one to the template: \`qm set ${s.template.vmid} --net0 virtio,bridge=vmbr0\``);
      }
      const file = seedFileName(spec.name);
      const volid = `${s.isoStorage}:iso/${file}`;
      const iso = await buildSeedIso(seedFiles(spec, renderNetworkConfig(mac, spec.network, s.searchDomains)), { ...(this.options.isoTool ? { isoTool: this.options.isoTool } : {}) });
      await this.client.waitTask(this.node, await this.client.uploadIso(this.node, s.isoStorage, file, iso, opts), this.wait(signal));
      // The seed goes where PVE's own cloud-init drive was (two cidata sources would be one too many), else on a free IDE slot.
      const slot =
        drives.find((d) => d.volid === volid)?.key ??
        drives.find((d) => d.cloudinit)?.key ??
        ["ide2", "ide3", "ide1", "ide0"].find((k) => cfg[k] === undefined);
      if (!slot) throw new ProviderError(this.host, `VM ${vmid} has no free IDE slot for the cloud-init seed`, `free one of ide0..ide3 in template ${s.template.name}`);
      changes.drives = { [slot]: `${volid},media=cdrom` };
    } else {
      if (!drives.some((d) => d.cloudinit)) {
        throw new ProviderError(this.host, `VM ${vmid} (template ${s.template.name}) has no cloud-init drive`, `add one: \`qm set ${s.template.vmid} --ide2 local-lvm:cloudinit\`, or use cloudInit: seed`);
      }
      const net = spec.network;
      changes.ipconfig = { 0: net.mode === "dhcp" ? { ip: "dhcp" } : { ip: `${net.address}/${net.prefix}`, ...(net.gateway ? { gw: net.gateway } : {}) } };
      if (net.mode === "static" && net.dns.length > 0) changes.nameserver = net.dns;
      if (s.searchDomains.length > 0) changes.searchdomain = s.searchDomains;
      if (s.ciUser !== undefined) changes.ciuser = s.ciUser;
      if (s.sshKeys.length > 0) changes.sshkeys = s.sshKeys;
    }
    await this.client.setConfigSync(this.node, vmid, changes, opts);
  }

  /**
   * Readiness through the QEMU guest agent: the agent reports a non-loopback IPv4 address, then `systemctl
   * is-system-running` says running or degraded (a guest without systemd is up once it has the address). Bounded by
   * `deadline`, counted from the clone's end so that a slow clone does not eat the guest's boot time.
   */
  private async waitGuestAgent(vmid: number, deadline: number, signal?: AbortSignal): Promise<void> {
    let last = "the agent has not answered yet";
    for (;;) {
      signal?.throwIfAborted();
      const left = deadline - this.clock.now();
      if (left <= 0) break;
      try {
        const ifaces = await this.client.agentNetworkGetInterfaces(this.node, vmid, signal ? { signal } : {});
        const v4 = ifaces.some((i) => i.name !== "lo" && (i["ip-addresses"] ?? []).some((a) => a["ip-address-type"] === "ipv4" && !a["ip-address"].startsWith("127.")));
        if (!v4) last = "the guest has no IPv4 address yet";
        else {
          const r = await this.client.agentRun(this.node, vmid, ["systemctl", "is-system-running"], { timeoutMs: Math.min(30_000, left), clock: this.clock, ...(signal ? { signal } : {}) });
          const state = r.out.trim();
          if (state === "running" || state === "degraded") return;
          if (r.exitcode === 127 || /not found|No such file/i.test(r.err)) return;
          last = `systemctl is-system-running says ${JSON.stringify(state || r.err.trim())}`;
        }
      } catch (e) {
        // The agent answers once the guest has booted it: until then PVE says it is not running.
        if (e instanceof PveApiError && e.status === 500) last = e.pveMessage.trim();
        else if (e instanceof PveConnectionError && e.kind === "timeout") last = e.message;
        else if (e instanceof ProviderError && e.name === "PveGuestCommandError") last = e.message;
        else throw e;
      }
      await this.clock.sleep(Math.min(2000, Math.max(0, deadline - this.clock.now())), signal);
    }
    throw new ProviderError(
      this.host,
      `the QEMU guest agent did not report the guest up in time (counted from the clone's end): ${last}`,
      "install and enable qemu-guest-agent in the template, or raise guestAgent.timeoutSeconds",
      { code: "guest_agent_timeout" },
    );
  }

  /** Waits until no task holds the VM's lock, or the VM is gone; bounded by taskTimeoutSeconds. */
  private async waitUnlocked(vmid: number, signal?: AbortSignal): Promise<void> {
    const start = this.clock.now();
    let pause = this.options.pollMs ?? 250;
    for (;;) {
      let lock: string | undefined;
      try {
        lock = (await this.client.getConfig(this.node, vmid, {}, signal ? { signal } : {})).lock;
      } catch (e) {
        if (isGone(e)) return;
        throw e;
      }
      if (!lock) return;
      if (lock === "suspended") {
        // Hibernated: no task will ever release it.
        throw new ProviderError(
          this.host,
          `VM ${vmid} on node ${this.node} is hibernated (lock suspended); resume it (\`qm resume ${vmid}\`) or unlock it (\`qm unlock ${vmid}\`) on ${this.node}, then apply again`,
          `resume it (\`qm resume ${vmid}\`) or unlock it (\`qm unlock ${vmid}\`) on ${this.node}`,
          { code: "pve_locked" },
        );
      }
      const waited = this.clock.now() - start;
      if (waited >= this.settings.taskTimeoutSeconds * 1000) {
        throw new ProviderError(
          this.host,
          `VM ${vmid} on node ${this.node} is still locked (${lock}) after ${Math.round(waited / 1000)} s`,
          `a PVE task holds it (see node ${this.node}'s task list); once it ends, apply again`,
          { code: "pve_locked" },
        );
      }
      await this.clock.sleep(pause, signal);
      pause = Math.min(this.options.maxPollMs ?? 2000, pause * 2);
    }
  }

  /**
   * The VMs on this node named `name` whose marker is this instance's. Throws when there are VMs of that name but
   * none of them is it, unless `foreignOk`.
   */
  private async findOwn(name: string, uuid: string, signal?: AbortSignal, foreignOk = true): Promise<FoundVm[]> {
    const opts = signal ? { signal } : {};
    const list = await this.client.clusterResources("vm", { ...opts, via: this.node, audit: "ignore" });
    const same = list.filter((r): r is PveVmResource => r.type === "qemu" && r.node === this.node && r.name === name && !pveBool(r.template));
    const ours: FoundVm[] = [];
    const others: Array<{ vmid: number; seen: string }> = [];
    for (const v of same) {
      let config: PveVmConfig;
      try {
        config = await this.client.getConfig(this.node, v.vmid, {}, opts);
      } catch (e) {
        if (isGone(e)) continue;
        throw e;
      }
      const marker = parseMarker(config.description);
      if (marker?.instance === uuid) ours.push({ vmid: v.vmid, config, status: v.status });
      else others.push({ vmid: v.vmid, seen: marker ? `instance ${marker.instance}` : "no premiscale marker" });
    }
    if (ours.length === 0 && others.length > 0 && !foreignOk) {
      throw new ProviderError(
        this.host,
        `VM ${others.map((o) => `${o.vmid} (${o.seen})`).join(", ")} on node ${this.node} is named ${name} but is not the one premiscale created (instance ${uuid}); it was left alone`,
        "remove it from state by hand if it was replaced outside premiscale",
        { code: "not_owned" },
      );
    }
    return ours;
  }

  // ---- destroy ----------------------------------------------------------------------------------------------------

  async destroyVm(vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void> {
    const what = `destroy ${vm.name}`;
    const found = await this.doing(what, () => this.findOwn(vm.name, vm.uuid, options.signal, false));
    for (const f of found) await this.doing(`${what} (VM ${f.vmid} on node ${this.node})`, () => this.destroyOne(f.vmid, vm, options));
    if (found.length === 0) options.onStep?.("delete");
    await this.doing(`${what}: removing its cloud-init seed`, () => this.removeSeed(vm.name, options.signal));
  }

  /**
   * Shuts a VM down (ACPI, `shutdownTimeoutMs`), powers it off when it is still running, and deletes it with its
   * disks, again and again until PVE no longer has it: a delete that meets a VM a stop has not finished with, or one
   * someone started again meanwhile, is retried (no orphan). Every round first checks that the VM under that id is
   * still this instance: ids are reused as soon as a VM is gone, and the next VM with the id is someone else's.
   */
  private async destroyOne(vmid: number, vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void> {
    const { signal, onStep } = options;
    const opts = signal ? { signal } : {};
    const deadline = this.clock.now() + this.settings.taskTimeoutSeconds * 1000;
    let stopReported = false;
    let deleteReported = false;
    for (let round = 1; ; round++) {
      let cfg: PveVmConfig;
      try {
        cfg = await this.client.getConfig(this.node, vmid, {}, opts);
      } catch (e) {
        if (isGone(e)) return;
        throw e;
      }
      // A clone in progress has no description yet: only a finished one can be told to be someone else's.
      if (cfg.lock !== "clone" && parseMarker(cfg.description)?.instance !== vm.uuid) return;
      if (cfg.lock) {
        await this.waitUnlocked(vmid, signal);
        continue;
      }
      if (this.clock.now() >= deadline && round > 1) {
        throw new ProviderError(this.host, `VM ${vmid} (${vm.name}) on node ${this.node} is still there after ${round - 1} deletes`, `remove it by hand (\`qm destroy ${vmid} --purge\` on ${this.node})`);
      }
      const current = await this.client.statusCurrent(this.node, vmid, opts);
      if (current.status === "running") {
        if (!stopReported) {
          stopReported = true;
          onStep?.("stop");
          // PVE refuses to shut a paused VM down (the request would power it off whenever it ran again): power it off.
          if (!isPaused(current)) await this.shutdown(vmid, options.shutdownTimeoutMs, signal);
        }
        await this.powerOff(vmid, signal);
      }
      if (!deleteReported) {
        deleteReported = true;
        onStep?.("delete");
      }
      try {
        await this.client.waitTask(this.node, await this.client.deleteVm(this.node, vmid, { purge: true, destroyUnreferencedDisks: true }, opts), this.wait(signal));
      } catch (e) {
        if (isGone(e)) return;
        const text = e instanceof PveTaskError ? (e.exitstatus ?? "") : e instanceof PveApiError ? e.pveMessage : "";
        // Started again, or a stop or another task still holds it: the next round stops it again or waits.
        if (!/is running - destroy failed|VM is locked|got timeout/.test(text) || this.clock.now() >= deadline) throw e;
      }
    }
  }

  /** ACPI shutdown of a running VM, waiting up to `shutdownTimeoutMs`; a guest that ignores it is left to `powerOff`. */
  private async shutdown(vmid: number, shutdownTimeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (shutdownTimeoutMs <= 0) return;
    const seconds = Math.max(1, Math.ceil(shutdownTimeoutMs / 1000));
    try {
      const upid = await this.client.shutdown(this.node, vmid, { timeoutSeconds: seconds }, signal ? { signal } : {});
      await this.client.waitTask(this.node, upid, this.wait(signal, seconds * 1000 + this.timeoutMs));
    } catch (e) {
      // A guest that ignores ACPI (or a shutdown that timed out) is powered off next.
      if (!(e instanceof PveTaskError)) throw e;
    }
  }

  /** Powers the VM off when it still runs (aborting a shutdown task in flight). */
  private async powerOff(vmid: number, signal?: AbortSignal): Promise<void> {
    const opts = signal ? { signal } : {};
    if ((await this.client.statusCurrent(this.node, vmid, opts)).status !== "running") return;
    await this.client.waitTask(this.node, await this.client.stop(this.node, vmid, { overruleShutdown: true }, opts), this.wait(signal));
  }

  // ---- start and stop (warm pools) --------------------------------------------------------------------------------

  /** This instance's VM on this node, waited for while a task holds it; `not_found` when the node has none of that name. */
  private async ownOne(what: string, vm: { name: string; uuid: string }, signal?: AbortSignal): Promise<{ vmid: number; at: string }> {
    const [f] = await this.doing(what, () => this.findOwn(vm.name, vm.uuid, signal, false));
    if (!f) {
      throw new ProviderError(this.host, `${what}: node ${this.node} has no VM named ${vm.name}; run premiscale plan again`, "run premiscale plan again", { code: "not_found" });
    }
    const at = `${what} (VM ${f.vmid} on node ${this.node})`;
    // A start or shutdown of an earlier apply may still run: act on the state it leaves.
    if (f.config.lock) await this.doing(at, () => this.waitUnlocked(f.vmid, signal));
    return { vmid: f.vmid, at };
  }

  async startVm(vm: { name: string; uuid: string }, options: CallOptions = {}): Promise<void> {
    const { signal, onStep } = options;
    const { vmid, at } = await this.ownOne(`start ${vm.name}`, vm, signal);
    // status/current asks QEMU now; /cluster/resources may still say running for a VM paused a moment ago.
    const current = await this.doing(at, () => this.client.statusCurrent(this.node, vmid, signal ? { signal } : {}));
    if (current.status === "running" && !isPaused(current)) return;
    signal?.throwIfAborted();
    onStep?.("start");
    if (current.status === "running") {
      await this.doing(at, async () => this.client.waitTask(this.node, await this.client.resume(this.node, vmid, signal ? { signal } : {}), this.wait(signal)));
      return;
    }
    await this.doing(at, async () => {
      try {
        await this.client.waitTask(this.node, await this.client.start(this.node, vmid, {}, signal ? { signal } : {}), this.wait(signal));
      } catch (e) {
        if (!(e instanceof PveTaskError && /already running/.test(e.exitstatus ?? ""))) throw e;
      }
    });
  }

  async pauseVm(vm: { name: string; uuid: string }, options: CallOptions = {}): Promise<void> {
    const { signal, onStep } = options;
    const { vmid, at } = await this.ownOne(`pause ${vm.name}`, vm, signal);
    const current = await this.doing(at, () => this.client.statusCurrent(this.node, vmid, signal ? { signal } : {}));
    if (current.status !== "running") {
      throw new ProviderError(this.host, `${at}: the VM is stopped, so it cannot be paused`, "only a running VM can be paused; run premiscale plan again", { code: "not_running" });
    }
    if (isPaused(current)) return;
    signal?.throwIfAborted();
    onStep?.("pause");
    // vm_suspend without todisk: QMP `stop`, the VM stays in the node's memory (todisk would hibernate it instead).
    await this.doing(at, async () => this.client.waitTask(this.node, await this.client.suspend(this.node, vmid, signal ? { signal } : {}), this.wait(signal)));
  }

  async stopVm(vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void> {
    const { signal, onStep } = options;
    const { vmid, at } = await this.ownOne(`stop ${vm.name}`, vm, signal);
    const current = await this.doing(at, () => this.client.statusCurrent(this.node, vmid, signal ? { signal } : {}));
    if (current.status !== "running") return;
    signal?.throwIfAborted();
    onStep?.("stop");
    await this.doing(at, async () => {
      // The VM is kept, so its guest shuts down cleanly: a paused one runs again first (PVE refuses to shut it down).
      if (isPaused(current)) await this.client.waitTask(this.node, await this.client.resume(this.node, vmid, signal ? { signal } : {}), this.wait(signal));
      await this.shutdown(vmid, options.shutdownTimeoutMs, signal);
      await this.powerOff(vmid, signal);
    });
  }

  /** Removes the VM's seed ISO, if there is one (there is none with cloudInit: proxmox, or after a finished destroy). */
  private async removeSeed(name: string, signal?: AbortSignal): Promise<void> {
    const storage = this.settings.isoStorage;
    const volid = `${storage}:iso/${seedFileName(name)}`;
    const opts = signal ? { signal } : {};
    let content;
    try {
      content = await this.client.storageContent(this.node, storage, { content: "iso" }, opts);
    } catch (e) {
      // No such storage on this node: no seed was ever put there.
      if (e instanceof PveApiError && e.status === 500 && /does not exist|is not available|not enabled/.test(e.pveMessage)) return;
      throw e;
    }
    if (!content.some((c) => c.volid === volid)) return;
    await this.client.waitTask(this.node, await this.client.deleteVolume(this.node, storage, volid, opts), this.wait(signal));
  }

  // ---- counters ---------------------------------------------------------------------------------------------------

  /**
   * Counters of the named VMs from one `/cluster/resources` call through this node. PVE gives a VM's CPU use as a
   * fraction (averaged by pvestatd) rather than a cumulative time, so the adapter integrates it into `cpuTimeNs`
   * between samples; disk and network bytes are PVE's own cumulative counters; memory is PVE's `mem` of `maxmem`.
   */
  async counters(names: readonly string[], options: { signal?: AbortSignal } = {}): Promise<VmCounters[]> {
    if (names.length === 0) return [];
    const t0 = this.clock.now();
    const list = await this.doing("reading VM counters", () =>
      this.client.clusterResources("vm", { via: this.node, audit: "ignore", ...(options.signal ? { signal: options.signal } : {}) }),
    );
    const at = Math.round((t0 + this.clock.now()) / 2);
    const wanted = new Set(names);
    const out: VmCounters[] = [];
    for (const r of list) {
      if (r.type !== "qemu" || r.node !== this.node || !r.name || !wanted.has(r.name) || pveBool(r.template)) continue;
      const v = r as PveVmResource;
      const vcpus = v.maxcpu ?? 0;
      const rate = (v.cpu ?? 0) * vcpus * 1e9; // ns of CPU per second
      const prev = this.cpu.get(v.name!);
      const ns = prev && prev.vmid === v.vmid ? prev.ns + (rate * Math.max(0, at - prev.at)) / 1000 : rate * (v.uptime ?? 0);
      this.cpu.set(v.name!, { vmid: v.vmid, at, ns });
      const c: VmCounters = { name: v.name!, at, cpuTimeNs: Math.round(ns), vcpus };
      if (v.diskread !== undefined) c.blockReadBytes = v.diskread;
      if (v.diskwrite !== undefined) c.blockWriteBytes = v.diskwrite;
      if (v.netin !== undefined) c.netRxBytes = v.netin;
      if (v.netout !== undefined) c.netTxBytes = v.netout;
      if (v.maxmem !== undefined) {
        c.balloonCurrentKiB = Math.round(v.maxmem / 1024);
        if (v.status === "running" && v.mem !== undefined) {
          c.balloonAvailableKiB = Math.round(v.maxmem / 1024);
          c.balloonUsableKiB = Math.round(Math.max(0, v.maxmem - v.mem) / 1024);
        }
      }
      out.push(c);
    }
    return out;
  }

  async close(): Promise<void> {
    this.conn?.release();
    this.conn = null;
  }
}

/** The resource key of a PVE storage. */
export function storageKey(storage: string): string {
  return `storage:${storage}`;
}

/** The plan's proxmox settings of a VM. */
export function vmSettings(spec: VmSpec): ProxmoxVmSettings {
  const s = spec.settings.proxmox as ProxmoxVmSettings | undefined;
  if (!s) throw new ProviderError("(plan)", `the plan has no proxmox settings for ${spec.name}`, "run premiscale plan again");
  return s;
}

/**
 * A VM's run state. A lock alone does not change it (a backup or snapshot of a running VM leaves it running), except
 * the ones that say the VM is not made yet (`clone`, `create`) or is suspended.
 */
function runState(v: PveVmResource): VmRunState {
  if (v.lock === "clone" || v.lock === "create") return "other";
  if (v.lock === "suspended" || v.lock === "suspending") return "paused";
  if (v.status === "running") return "running";
  // A VM's status here is its QMP status as pvestatd last broadcast it (up to ~10 s old).
  if (v.status === "paused") return "paused";
  if (v.status === "stopped") return "stopped";
  return "other";
}

/** Whether status/current says the VM's QEMU runs with its vCPUs stopped (paused, or a guest in S3 / not started yet). */
function isPaused(s: PveVmStatus): boolean {
  return s.status === "running" && (s.qmpstatus === "paused" || s.qmpstatus === "suspended" || s.qmpstatus === "prelaunch");
}

function smbiosUuid(cfg: PveVmConfig): string | null {
  return /(?:^|,)uuid=([0-9a-fA-F-]{36})(?:,|$)/.exec(String(cfg.smbios1 ?? ""))?.[1]?.toLowerCase() ?? null;
}

/** PVE's answer for a VM that does not exist (any more). */
function isGone(e: unknown): boolean {
  const text = e instanceof PveApiError ? e.pveMessage : e instanceof PveTaskError ? (e.exitstatus ?? "") : "";
  return /Configuration file '[^']*' does not exist/.test(text);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** One drive of a VM config. */
interface Drive {
  key: string;
  volid: string;
  storage: string;
  bytes: number;
  cdrom: boolean;
  cloudinit: boolean;
}

function driveEntries(cfg: PveVmConfig): Drive[] {
  const out: Drive[] = [];
  for (const [key, value] of Object.entries(cfg)) {
    if (!DRIVE_RE.test(key) || typeof value !== "string") continue;
    const volid = value.split(",")[0]!;
    const storage = volid.includes(":") ? volid.split(":")[0]! : "";
    const size = /(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)(?:,|$)/.exec(value);
    const mult = { "": 1, K: 1024, M: MiB, G: GiB, T: 1024 * GiB }[size?.[2] ?? ""] ?? 1;
    out.push({
      key,
      volid,
      storage,
      bytes: size ? Math.round(Number(size[1]) * mult) : 0,
      cdrom: /(?:^|,)media=cdrom(?:,|$)/.test(value),
      cloudinit: /(?:^|:)(?:vm|base)-\d+-cloudinit|:cloudinit(?:,|$)/.test(volid),
    });
  }
  return out;
}

/** The disk a VM boots from: the first disk of `boot: order=…`, else the first disk by bus (scsi, virtio, sata, ide). */
function bootDisk(cfg: PveVmConfig): Drive | undefined {
  const disks = driveEntries(cfg).filter((d) => !d.cdrom && !d.cloudinit);
  const order = /(?:^|,)order=([^,]+)/.exec(String(cfg.boot ?? ""))?.[1]?.split(";") ?? [];
  for (const k of order) {
    const d = disks.find((x) => x.key === k);
    if (d) return d;
  }
  const rank = (k: string) => BUS_ORDER.indexOf(k.replace(/\d+$/, "")) * 100 + Number(/\d+$/.exec(k)![0]);
  return [...disks].sort((a, b) => rank(a.key) - rank(b.key))[0];
}
