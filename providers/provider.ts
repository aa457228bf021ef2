/**
 * The `Provider` port: how premiscale observes and changes the VMs of one host, whatever its kind (libvirt today,
 * Proxmox VE next). Everything crossing this port is plain data. Each method's contract is in its doc comment; the
 * suite in `provider.contract.ts` holds every adapter to it.
 *
 * Neutral words only: a VM has vCPUs, memory, cloud-init user-data and an IPv4 set-up; everything else a kind needs
 * (libvirt: pool, base image, NIC, kernel boot, accelerator; Proxmox VE: template per node, storage) is that kind's
 * `settings`, which premiscale carries from the config through the plan to the adapter without looking inside.
 */

/** Where a VM is in its life, as far as premiscale cares; each adapter maps its own states onto these. */
export type VmRunState = "running" | "paused" | "stopped" | "crashed" | "other";

/** A VM that carries premiscale's ownership marker (only those are ever listed, and only those are ever touched). */
export interface OwnedVm {
  /** Name on the host; equals the instance name. */
  name: string;
  /** The VM's UUID; equals the instance id. */
  uuid: string;
  group: string;
  /** The state lineage that created it; a VM of another lineage belongs to another premiscale state. */
  lineage: string;
  createdAt: string;
  state: VmRunState;
}

/**
 * A resource new VMs use up besides vCPUs and memory (libvirt: the space of a storage pool), under an opaque key
 * (`pool:default`). The planner only counts it down; the adapter says what a template needs of it.
 */
export interface HostResource {
  /** How a person calls it: `pool "default"`. */
  label: string;
  unit: "bytes" | "count";
  available: number;
  /** The whole size, used or not (to tell whether `max` VMs could ever fit); absent when the host does not say. */
  capacity?: number;
}

/** What a host has and what is already used on it (all VMs, not only ours). */
export interface HostCapacity {
  cpus: number;
  memoryMiB: number;
  freeMemoryMiB: number;
  /** vCPUs of every running or paused VM on the host. */
  allocatedVcpus: number;
  /** Other resources, by key. */
  resources: Record<string, HostResource>;
}

/**
 * The adapter's answer to "can one more VM of this group go on this host": what it takes of the host's `resources`
 * besides the template's vCPUs and memory, and the kind's VM settings for this host (carried in the plan); or why the
 * template cannot go there at all (a base image missing, a pool that does not exist).
 */
export type TemplateFit =
  | { ok: true; demand: Record<string, number>; settings: ProviderSettings }
  | { ok: false; reason: string };

/** A kind's own data, keyed by the kind (`{ libvirt: { pool, baseImage, … } }`): plain JSON, opaque to the rest. */
export type ProviderSettings = Record<string, unknown>;

/** A group's template as the adapter is asked about it: the neutral size, and the config's settings of this kind. */
export interface TemplateQuery {
  vcpus: number;
  memoryMiB: number;
  /** The group template's settings for this host's kind, as the kind's config fragment normalised them. */
  settings: unknown;
}

/** One host as observed now. */
export type HostObservation =
  | {
      host: string;
      status: "ok";
      capacity: HostCapacity;
      vms: OwnedVm[];
      /** Per group asked about in `ObserveRequest.templates`, the adapter's fit answer. */
      fits: Record<string, TemplateFit>;
    }
  | { host: string; status: "unreachable"; error: string };

/** What state records about an instance, enough to recognise its VM without reading the ownership marker. */
export interface KnownInstance {
  uuid: string;
  group: string;
  lineage: string;
  createdAt: string;
}

/** What `observe` is asked. */
export interface ObserveRequest {
  /** The instances state records on this host, by name. */
  known: ReadonlyMap<string, KnownInstance>;
  /** The templates of the groups that may place VMs here, by group name: answered in `fits`. */
  templates: ReadonlyMap<string, TemplateQuery>;
}

/** How a new VM gets its IPv4 address (rendered by the adapter: cloud-init network-config, Proxmox `ipconfig0`…). */
export type VmNetwork =
  | { mode: "dhcp" }
  | { mode: "static"; address: string; prefix: number; gateway?: string; dns: string[] };

/** Everything needed to create one VM, as apply hands it to the adapter. */
export interface VmSpec {
  name: string;
  uuid: string;
  group: string;
  lineage: string;
  createdAt: string;
  vcpus: number;
  memoryMiB: number;
  /** cloud-init user-data with secrets filled in (never stored). */
  userData: string;
  network: VmNetwork;
  /** The settings the adapter gave for this host in its fit answer, as the plan carries them. */
  settings: ProviderSettings;
}

/**
 * Steps an adapter reports while it works (for journals and progress), in the order they happen. Each adapter maps
 * its own calls onto them: libvirt's overlay volume is `create-disk`, its seed and `define` are `configure`.
 */
export type ProviderStep = "create-disk" | "configure" | "start" | "pause" | "stop" | "delete";

/** Raw cumulative counters of one VM at one moment; a field the host did not report is `undefined` (never 0). */
export interface VmCounters {
  /** VM name (unique across hosts: premiscale names are `GROUP-UUID8`). */
  name: string;
  /** When the counters were read, ms since the epoch. */
  at: number;
  /** Total CPU time of the VM, ns. */
  cpuTimeNs?: number;
  /** vCPUs online. */
  vcpus?: number;
  /** Bytes and requests read / written, summed over the VM's disks. */
  blockReadBytes?: number;
  blockWriteBytes?: number;
  blockReadReqs?: number;
  blockWriteReqs?: number;
  /** Bytes received / sent, summed over the VM's interfaces. */
  netRxBytes?: number;
  netTxBytes?: number;
  /** Memory the host gives the guest, KiB. Not a utilisation. */
  balloonCurrentKiB?: number;
  /** Guest-reported memory it sees in total, KiB. */
  balloonAvailableKiB?: number;
  /** Guest-reported free memory, KiB. */
  balloonUnusedKiB?: number;
  /** Guest-reported memory usable without swapping (like MemAvailable), KiB. */
  balloonUsableKiB?: number;
  /** Resident set size of the VM's process on the host, KiB. */
  balloonRssKiB?: number;
}

/** Options of one call that changes a host. */
export interface CallOptions {
  /** Reports each step as it starts. A throw from it stops the call there (tests use that to crash it half-way). */
  onStep?: (step: ProviderStep) => void;
  /** Stops waiting (the adapter gives up on what is in flight and rejects). */
  signal?: AbortSignal;
}

/**
 * One host of some kind. Every method talks to that host only, and each call has its own timeout (the host's
 * `callTimeoutSeconds`): a host that hangs delays only its own calls. Every mutating method is idempotent, so
 * repeating it after a crash at any point converges.
 */
export interface Provider {
  /** The host's kind (`libvirt`, …). */
  readonly kind: string;
  /** The host's name in the config. */
  readonly host: string;
  /**
   * Observes the host in a constant number of round trips: its capacity, the VMs carrying premiscale's marker, and the
   * fit of each template asked about. A VM recorded in `known` (same name and UUID) is reported from it without
   * reading its marker. Never rejects: a host that does not answer is `unreachable`, with the reason.
   */
  observe(request: ObserveRequest): Promise<HostObservation>;
  /**
   * Creates and starts a VM. Pieces already there with the same names (left by an earlier attempt) are reused or
   * replaced, so calling it again after a failure or a crash converges to one running VM.
   */
  createVm(spec: VmSpec, options?: CallOptions): Promise<void>;
  /**
   * Stops and removes a VM and everything it owns on the host: ACPI shutdown first, forced off after
   * `shutdownTimeoutMs`; a paused VM is forced off at once (its guest cannot run a shutdown, and one sent to it would be
   * delivered whenever it ran again). Refuses (rejects, touching nothing) a VM of that name that does not carry
   * premiscale's marker for the same UUID. A VM that is already gone is not an error, and its leftovers are still
   * removed.
   */
  destroyVm(vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void>;
  /**
   * Starts a VM of ours that is stopped (a warm pool's VM taken into its group); one that already runs is left
   * running, a paused one is resumed where it stopped (no boot), reporting the step `start` either way. Rejects,
   * touching nothing, when the host has no VM of that name (code `not_found`) or when that VM does not carry
   * premiscale's marker for the same UUID (code `not_owned`).
   */
  startVm(vm: { name: string; uuid: string }, options?: CallOptions): Promise<void>;
  /**
   * Pauses a running VM of ours in memory (a paused warm pool): its vCPUs stop, its memory, disks and devices stay as
   * they are, and `startVm` resumes it where it stopped. Reports the step `pause`. A VM already paused is left so.
   * Rejects, touching nothing, when the VM does not run (code `not_running`: only a running guest can be paused), when
   * the host has no VM of that name (`not_found`) or when it is not this instance (`not_owned`).
   */
  pauseVm(vm: { name: string; uuid: string }, options?: CallOptions): Promise<void>;
  /**
   * Stops a VM of ours and keeps everything it owns (disks, seed, definition), so `startVm` boots it again: ACPI
   * shutdown first, forced off after `shutdownTimeoutMs`; a paused VM is resumed first, so its guest can shut down
   * cleanly. A VM already stopped is left so. Rejects, touching nothing, when the host has no VM of that name
   * (`not_found`) or when it is not this instance (`not_owned`).
   */
  stopVm(vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void>;
  /**
   * Counters of the named VMs, in one call to the host. VMs that do not exist (any more) are left out; the call as a
   * whole rejects only when the host does not answer.
   */
  counters(names: readonly string[], options?: { signal?: AbortSignal }): Promise<VmCounters[]>;
  /** Releases connections and processes. */
  close(): Promise<void>;
}
