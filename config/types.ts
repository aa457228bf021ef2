/**
 * The normalised configuration: what every stage reads after `loadConfig` has parsed, validated and
 * filled in defaults. Field names match the YAML the user writes (see config/premiscale.schema.json).
 */

import type { ScalingSpec } from "./scaling.js";
import type { KubernetesConfig, KubernetesGroupConfig } from "./kubernetes.js";

/** The only config version this release reads. */
export const CONFIG_VERSION = "v1alpha1";

/** A host premiscale may place VMs on. */
export interface HostConfig {
  /** Unique name used by groups and in state. */
  name: string;
  /** How premiscale talks to the host: picks its adapter and owns `settings`. @default "libvirt" */
  kind: string;
  /** Memory kept free for the host itself, never given to VMs. @default 512 */
  reservedMemoryMiB: number;
  /** vCPUs of VMs allowed per physical CPU. @default 4 */
  cpuOvercommit: number;
  /** At most this many apply steps run against this host at once. @default 4 */
  maxParallel: number;
  /** Timeout of one call to the host, in seconds. @default 60 */
  callTimeoutSeconds: number;
  /**
   * The fields the host's kind owns, as its config fragment normalised them (libvirt: uri, pool, accelerator).
   * Plain data; only the kind's own code reads inside.
   */
  settings: Record<string, unknown>;
}

/** Placement strategies; each is one file under planner/placement/. */
export type PlacementStrategyName = "round-robin" | "most-free" | "fill-first" | "random";

/** What every VM of a group looks like. */
export interface VmTemplate {
  vcpus: number;
  memoryMiB: number;
  /** cloud-init user-data text (inline, or read from `userDataFile` at load). `${env:NAME}` placeholders are filled at apply. */
  userData: string;
  /** Names of environment variables the user-data refers to (secrets never appear in plan or state). */
  secretEnv: string[];
  /**
   * Per kind of the group's hosts, the template fields that kind owns, as its fragment normalised them
   * (libvirt: disk, nic, boot): `{ libvirt: {...} }`.
   */
  settings: Record<string, Record<string, unknown>>;
}

/** How guests get their IPv4 address: DHCP, or one from a static pool per VM. */
export type NetworkingConfig =
  | { mode: "dhcp" }
  | { mode: "static"; addresses: string[]; prefix: number; gateway?: string; dns: string[] };

/** An autoscaling group. */
export interface GroupConfig {
  name: string;
  min: number;
  max: number;
  /** Until the policy engine decides, this is the size the planner aims for. */
  desired: number;
  hosts: string[];
  placement: PlacementStrategyName;
  template: VmTemplate;
  networking: NetworkingConfig;
  readiness: ReadinessConfig;
  /** Scaling policies as written (policies/types.ts fills the defaults); absent: `desired` sets the size. */
  scaling?: ScalingSpec;
  /** Leave the group alone: plans do not change it. @default false */
  suspend: boolean;
  /** Users' hooks around each VM's launch and termination, in the order they run. @default [] */
  lifecycleHooks: LifecycleHookConfig[];
  /** How VMs made from an older template (or too old) are replaced. */
  rollout: RolloutConfig;
  /** VMs older than this are replaced like out-of-date ones. Absent: no limit. */
  maxInstanceLifetimeSeconds?: number;
  /** VMs made ahead of need, outside the group, that a scale-out takes instead of creating (AWS warm pools). Absent: none. */
  warmPool?: WarmPoolConfig;
  /** A cluster-autoscaler node group (see config/kubernetes-config.ts); absent: not one. */
  kubernetes?: KubernetesGroupConfig;
}

/**
 * A group's warm pool: VMs created (booted once, checked in) and kept stopped, running or paused outside the group; a
 * scale-out takes one instead of creating a VM from scratch, and the pool is refilled.
 */
export interface WarmPoolConfig {
  /** Pool VMs to keep. Absent: `maxPrepared` decides. */
  size?: number;
  /**
   * Members and pool VMs together at most (AWS's MaxGroupPreparedCapacity): the pool holds `maxPrepared - desired`.
   * Used when `size` is absent; absent too: the group's `max`.
   */
  maxPrepared?: number;
  /**
   * What pool VMs do while they wait: shut off, running, or paused (suspended in memory: no guest CPU, memory held,
   * resumed in place when taken). @default "stopped"
   */
  state: "stopped" | "running" | "paused";
  /** Scale-in returns members to the pool (in the pool's state) instead of destroying them, while it has room. @default false */
  reuseOnScaleIn: boolean;
}

/** How a group rolls out a new template. */
export interface RolloutConfig {
  /** @default "rolling" */
  strategy: "rolling" | "manual";
  /** A count, or a percentage of the size as "25%". @default 1 */
  maxSurge: number | string;
  /** A count, or a percentage of the size as "25%". @default 0 */
  maxUnavailable: number | string;
  /** Percentages of the roll-out after which it pauses. @default [] */
  checkpoints: number[];
  /** @default 0 */
  checkpointPauseSeconds: number;
  /**
   * When the roll-out's new VMs fail, replace the VMs it already replaced with the template the group ran before, and
   * refuse the failed template until the config's template changes. @default true
   */
  rollback: boolean;
}

/**
 * A user's lifecycle hook (like AWS Auto Scaling lifecycle hooks): a command or a signed HTTP call, run when a VM is
 * launching (after it is up and checked in) or terminating (before it is destroyed). hooks/ runs them.
 */
export type LifecycleHookConfig = {
  /** Unique in the group. */
  name: string;
  on: "launching" | "terminating";
  /** Heartbeat timeout, in seconds. @default 300 */
  timeoutSeconds: number;
  /** The result when the hook times out or cannot be reached in time. @default "abandon" */
  defaultResult: "continue" | "abandon";
} & (
  | {
      /**
       * Program and arguments as written (so the config digest stays the same in every checkout): a relative program
       * is relative to the config file's directory, a bare name is looked up on PATH (`resolveHookProgram`).
       */
      command: string[];
      http?: never;
    }
  | {
      /** `secretEnv` names the variable with the HMAC secret; apply reads it, nothing stores it. */
      http: { url: string; secretEnv: string };
      command?: never;
    }
);

/** Where metrics are stored or read. */
export type MetricsStoreConfig =
  | { type: "sqlite"; path: string; rawRetentionSeconds: number; rollupRetentionSeconds: number }
  | { type: "prometheus"; url: string; queries: Record<string, string>; memberLabel: string; stepSeconds: number; rateWindow: string; timeoutSeconds: number }
  | {
      type: "influxdb";
      url: string;
      database: string;
      retentionPolicy?: string;
      username?: string;
      /** Name of the environment variable with the password (read when the source opens). */
      passwordEnv?: string;
      queries: Record<string, string>;
      memberTag: string;
      intervalSeconds: number;
      timeoutSeconds: number;
    };

/** VM metrics: how often premiscale collects them, and where from. */
export interface MetricsConfig {
  /** @default 15 */
  intervalSeconds: number;
  store: MetricsStoreConfig;
}

/** `premiscale reconcile`. */
export interface GitopsConfig {
  /** Remote URL or path; null: the repository holding the config file. */
  repo: string | null;
  branch: string;
  /** Config file inside the repository (with `repo`). */
  path: string;
  mode: "auto" | "review";
  intervalSeconds: number;
  workDir: string;
  planTtlSeconds: number;
  lock: { ttlSeconds: number };
  webhook: { host: string; port: number; provider: "github" | "gitlab"; secretEnv: string } | null;
}

/** When a new VM counts as ready. */
export interface ReadinessConfig {
  /** Wait for the VM's cloud-init phone_home check-in (else: ready once started). @default true */
  checkIn: boolean;
  /** Max provision time: a VM not checked in by then is destroyed and reported. @default 900 */
  timeoutSeconds: number;
  /** Heartbeat interval the VM's user-data gets; 0 = no heartbeats. @default 0 */
  heartbeatSeconds: number;
  /** A VM not heard from for this long is replaced. @default 180 */
  unhealthyAfterSeconds: number;
}

/** The check-in server. */
export interface ServerConfig {
  /** @default "127.0.0.1" */
  host: string;
  /** @default 8970 */
  port: number;
  /** How guests reach it. @default `http://10.0.2.2:<port>` (the host's loopback from QEMU user-mode networking) */
  advertiseUrl: string;
}

/** Where the git-tracked state lives. */
export interface StateConfig {
  /** Absolute path of the state directory (created and `git init`ed if missing, unless inside a repository). */
  path: string;
}

/** The whole normalised config. */
export interface Config {
  version: typeof CONFIG_VERSION;
  /** Absolute path of the file it came from. */
  file: string;
  state: StateConfig;
  server: ServerConfig;
  metrics: MetricsConfig;
  gitops: GitopsConfig;
  /** The Kubernetes mode (premiscale serve as cluster-autoscaler's externalgrpc provider); absent: off. */
  kubernetes?: KubernetesConfig;
  hosts: HostConfig[];
  groups: GroupConfig[];
}
