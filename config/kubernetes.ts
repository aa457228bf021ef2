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

/** The top-level `kubernetes:` block. */
export interface KubernetesConfig {
  /** premiscale's own credentials for the cluster (bootstrap tokens, Nodes), absolute. */
  kubeconfig: string;
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
