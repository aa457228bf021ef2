/**
 * The normalised config of premiscale's Kubernetes mode (issue 11): the top-level `kubernetes:` block and a node
 * group's `kubernetes:` block. Types only (the schema, defaults and rules are kubernetes-config.ts), so every stage
 * may read them.
 */

/** How a group's VMs join the cluster; `none`: the image joins by itself (premiscale only waits for the Node). */
export type JoinMethod = "kubeadm" | "k3s" | "rke2" | "none";

/** A node taint, as in a Node's `spec.taints`. */
export interface NodeTaint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

/** The externalgrpc listener's mutual TLS, as cluster-autoscaler's cloud-config (`cert`, `key`, `cacert`) expects. */
export interface ExternalGrpcTls {
  /** Server certificate (PEM), absolute; its names must include the host cluster-autoscaler dials. */
  cert: string;
  /** Its private key (PEM), absolute. */
  key: string;
  /** CA (PEM) that client certificates must chain to, absolute. */
  clientCa: string;
  /** Client certificate common names allowed; empty: any certificate from `clientCa`. */
  allowedClients: string[];
}

/** Who decides the node groups' sizes: cluster-autoscaler over externalgrpc (issue 11), or premiscale itself (issue 12). */
export type KubernetesMode = "cluster-autoscaler" | "native";

/**
 * A disruption budget in force only for a while after each time its cron fires (Karpenter's NodePool budgets with
 * `schedule` and `duration`): the most restrictive budget in force wins, so `nodes: "0"` blocks scale-down then.
 */
export interface ScheduledDisruptionBudget {
  /** A node count (`"0"`, `"2"`) or a share of the group's nodes (`"10%"`, rounded up). */
  nodes: string;
  /** Five-field cron (`0 9 * * 1-5`) or `@daily`…, read in `timezone`. */
  schedule: string;
  /** @default "UTC" */
  timezone: string;
  /** How long it is in force after each run, as written (`8h`, `30m`, `1h30m`). */
  duration: string;
  durationSeconds: number;
}

/** Native mode's options (`kubernetes.native`), with cluster-autoscaler's defaults. */
export interface NativeModeConfig {
  /** @default 10 (--scan-interval) */
  scanIntervalSeconds: number;
  /** Expander chain, e.g. [priority, least-waste]. @default ["least-waste"] */
  expander: ("least-waste" | "priority" | "random" | "most-pods" | "least-nodes")[];
  /** The priority expander's rules: priority → regular expressions on group names (highest first). */
  priorities: { priority: number; patterns: string[] }[];
  scaleDown: {
    /** @default true */
    enabled: boolean;
    /** @default 0.5 */
    utilizationThreshold: number;
    /** @default 600 */
    unneededSeconds: number;
    /** @default 600 */
    delayAfterAddSeconds: number;
    /** 0: the scan interval. @default 0 */
    delayAfterDeleteSeconds: number;
    /** @default 180 */
    delayAfterFailureSeconds: number;
    /** Per group unless the group sets its own: a node count or a share of the group's nodes. @default "10%" */
    budget: string;
    /** Budgets on a schedule, per group unless the group sets its own list (the most restrictive in force wins). @default [] */
    budgets: ScheduledDisruptionBudget[];
  };
  /** @default 45 */
  maxTotalUnreadyPercentage: number;
  /** @default 3 */
  okTotalUnreadyCount: number;
  /** Pending pods are batched: a batch closes after `idleMs` without a new pod, or `maxMs`. @default 1000 / 10000 */
  batchIdleMs: number;
  batchMaxMs: number;
  /** How often the pending pods are listed. @default 500 */
  pollMs: number;
}

/** The top-level `kubernetes:` block. */
export interface KubernetesConfig {
  /**
   * Present when the block says `mode: native` (defaults filled): premiscale decides the node groups itself and no
   * externalgrpc listener runs. Absent: `mode: cluster-autoscaler` (the default).
   */
  native?: NativeModeConfig;
  /**
   * premiscale's own credentials for the cluster (bootstrap tokens, Nodes), absolute. Unset: the service account of
   * the pod premiscale runs in (in-cluster config).
   */
  kubeconfig?: string;
  /** A context of the kubeconfig. @default its current-context */
  context?: string;
  /** host:port joining VMs dial (kubeadm discovery). @default the kubeconfig's server */
  apiServerEndpoint?: string;
  /** `sha256:<hex>` pin of the cluster CA for joins. @default computed from the kubeconfig's CA */
  caCertHash?: string;
  /** Timeout of one Kubernetes API call, in seconds. @default 10 */
  callTimeoutSeconds: number;
  /** cluster-autoscaler's externalgrpc endpoint (served by `premiscale serve`). */
  externalGrpc: {
    host: string;
    port: number;
    /** null: plaintext, allowed only on a loopback address. */
    tls: ExternalGrpcTls | null;
  };
  /** How long the loop waits after an intent for more before it plans. @default 200 */
  debounceMs: number;
  /** The loop also plans this often without an intent (drift, retries). @default 60 */
  resyncSeconds: number;
  /**
   * Several `premiscale serve` replicas: only the holder of a Lease runs the node-group loops. Always set by the
   * loader; absent (configs built in code) means disabled.
   */
  leaderElection?: LeaderElectionConfig;
}

/** `kubernetes.leaderElection`: client-go's algorithm on a coordination.k8s.io/v1 Lease, with its defaults. */
export interface LeaderElectionConfig {
  /** @default false (one replica: no Lease, no RBAC on leases needed) */
  enabled: boolean;
  /** The Lease's namespace. @default the credentials' namespace (in a pod: its own), else `default` */
  namespace?: string;
  /** @default premiscale */
  leaseName: string;
  /** How long others wait, from their last observed change of the Lease, before taking it over. @default 15 */
  leaseDurationSeconds: number;
  /** The leader stops leading when it could not renew for this long. @default 10 */
  renewDeadlineSeconds: number;
  /** Candidates retry and the leader renews this often. @default 2 */
  retryPeriodSeconds: number;
  /** The leader's EndpointSlice, so cluster-autoscaler dials only the leader. Absent: none written. */
  endpoint?: LeaderEndpointConfig;
}

/** `kubernetes.leaderElection.endpoint`: the selector-less Service whose EndpointSlice the leader writes. */
export interface LeaderEndpointConfig {
  /** The Service; its EndpointSlice has the same name. */
  service: string;
  /** @default the Lease's namespace */
  namespace?: string;
  /** Environment variable with this replica's IP. @default POD_IP */
  addressEnv: string;
  /** The Service port's name. @default externalgrpc */
  portName: string;
}

/** Overrides of cluster-autoscaler's per-group options (NodeGroupGetOptions); the rest echo its defaults. */
export interface KubernetesAutoscalingOptions {
  scaleDownUtilizationThreshold?: number;
  scaleDownGpuUtilizationThreshold?: number;
  scaleDownUnneededSeconds?: number;
  scaleDownUnreadySeconds?: number;
  /** @default the group's readiness.timeoutSeconds + 60: cluster-autoscaler waits longer than premiscale does */
  maxNodeProvisionSeconds: number;
  zeroOrMaxNodeScaling?: boolean;
  ignoreDaemonSetsUtilization?: boolean;
  /** Native mode: the group's disruption budget (a node count or a share of its nodes); default kubernetes.native.scaleDown.budget. */
  disruptionBudget?: string;
  /** Native mode: the group's budgets on a schedule, instead of kubernetes.native.scaleDown.budgets. */
  disruptionBudgets?: ScheduledDisruptionBudget[];
}

/** A group's `kubernetes:` block: the group is a cluster-autoscaler node group. */
export interface KubernetesGroupConfig {
  join: JoinMethod;
  /** k3s / rke2: the server URL agents register with (https://host:6443, rke2: :9345). */
  server?: string;
  /** Labels every node of the group has (also in the scale-from-zero template); `premiscale.io/group` is added. */
  labels: Record<string, string>;
  taints: NodeTaint[];
  /** @default 110 */
  maxPods: number;
  /** Held back from allocatable (kube-reserved + system-reserved). @default 0 / 0 */
  reservedCpuMillis: number;
  reservedMemoryMiB: number;
  /** The node's ephemeral-storage capacity in the template; absent: not declared. */
  ephemeralStorageGiB?: number;
  /** auth-extra-groups of each VM's bootstrap token. @default per join method (kubeadm's default-node-token group) */
  tokenGroups: string[];
  /** Lifetime of each VM's bootstrap token. @default the group's readiness.timeoutSeconds */
  tokenTtlSeconds: number;
  autoscaling: KubernetesAutoscalingOptions;
}
