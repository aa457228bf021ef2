/**
 * The `Provider` port: how premiscale observes and changes one kind of hypervisor host.
 * The libvirt adapter lives in providers/libvirt/; a Proxmox VE adapter is meant to sit beside it.
 * Everything crossing this port is plain data.
 */

/** Where a domain is in its life, as far as premiscale cares. */
export type DomainRunState = "running" | "paused" | "shutoff" | "crashed" | "other";

/** A domain that carries premiscale's metadata element (only those are ever listed). */
export interface OwnedDomain {
  /** Domain name on the host; equals the instance name. */
  name: string;
  /** Domain UUID; equals the instance id. */
  uuid: string;
  group: string;
  /** The state lineage that created it; a domain of another lineage belongs to another premiscale state. */
  lineage: string;
  createdAt: string;
  state: DomainRunState;
}

/** What a host has and what is already used on it (all domains, not only ours). */
export interface HostCapacity {
  cpus: number;
  memoryMiB: number;
  freeMemoryMiB: number;
  /** vCPUs of every running domain on the host. */
  allocatedVcpus: number;
  pool: { name: string; capacityBytes: number; availableBytes: number } | null;
  /** Volume names present in the pool (to check base images exist). */
  volumes: string[];
  /** The accelerator new VMs get here, resolved when the host setting is `auto`. */
  accelerator?: "kvm" | "qemu";
}

/** One host as observed now. */
export type HostObservation =
  | { host: string; status: "ok"; capacity: HostCapacity; domains: OwnedDomain[] }
  | { host: string; status: "unreachable"; error: string };

/** Everything needed to create one VM; built by the planner, carried in the plan. */
export interface VmSpec {
  name: string;
  uuid: string;
  group: string;
  lineage: string;
  createdAt: string;
  vcpus: number;
  memoryMiB: number;
  accelerator: "kvm" | "qemu";
  pool: string;
  baseImage: string;
  diskSizeGiB: number;
  mac: string;
  nic: { type: "user" } | { type: "network" | "bridge"; source: string };
  boot?: { kernel: string; initrd?: string; cmdline?: string };
  /** cloud-init user-data with secrets already filled in (never stored). */
  userData: string;
  /** cloud-init network-config (v2) text. */
  networkConfig: string;
}

/** What state records about an instance, enough to recognise its domain without reading metadata. */
export interface KnownInstance {
  uuid: string;
  group: string;
  lineage: string;
  createdAt: string;
}

/** Names of what a VM owns on its host, derived from its name alone so a crashed create can be cleaned up. */
export interface VmVolumes {
  disk: string;
  seed: string;
}

/** Steps a provider reports while it works, for journals and progress views. */
export type ProviderStep = "disk" | "seed" | "define" | "start" | "shutdown" | "destroy" | "undefine" | "volumes";

/**
 * A hypervisor backend. Each method talks to one host and has its own timeout; every mutating method is
 * idempotent, so repeating it after a crash converges.
 */
export interface Provider {
  /**
   * Observe one host in a constant number of round trips. `known` are the instances state already records on
   * this host, by name: a domain with that name and UUID is reported from them without reading its metadata.
   */
  observe(known: ReadonlyMap<string, KnownInstance>): Promise<HostObservation>;
  /** Create and start a VM. Existing pieces with the same names are reused. */
  createVm(spec: VmSpec, onStep?: (step: ProviderStep) => void): Promise<void>;
  /**
   * Stop and remove a VM and its volumes. Refuses to touch a domain that does not carry premiscale's metadata
   * for the same instance. A VM that is already gone is not an error.
   */
  destroyVm(
    vm: { name: string; uuid: string },
    options: { shutdownTimeoutMs: number },
    onStep?: (step: ProviderStep) => void,
  ): Promise<void>;
  /** Release connections and processes. */
  close(): Promise<void>;
}
