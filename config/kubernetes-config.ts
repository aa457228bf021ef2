/**
 * The config of premiscale's Kubernetes mode (issue 11): the top-level `kubernetes:` block (the cluster premiscale
 * serves as cluster-autoscaler's externalgrpc cloud provider, and its listener) and a group's `kubernetes:` block
 * (the group is a node group: cluster-autoscaler decides its size and which VMs go, and its VMs join the cluster).
 * Schema fragments, normalised types and the rules between fields; load.ts calls them, kubernetes/ reads the result.
 */
import { isIP } from "node:net";
import path from "node:path";
import type { ConfigIssue } from "./errors.js";
import type { Schema } from "./provider-kinds.js";
import { isTimeZone, parseCron } from "./cron.js";
import { show } from "./show.js";
import type { KubernetesConfig, KubernetesGroupConfig, NativeModeConfig, ScheduledDisruptionBudget } from "./kubernetes.js";
import type { Seg, Source } from "./yaml-source.js";
import type { PremiscaleConfig } from "./schema-types.js";

/** kubeadm's group for node bootstrap tokens: `kubeadm init` binds it to what a joining kubelet needs. */
export const KUBEADM_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token";
/** The group `k3s token create` gives its tokens (rke2 is built from k3s). */
export const K3S_TOKEN_GROUP = "system:bootstrappers:k3s:default-node-token";

const LABEL_KEY = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
const LABEL_VALUE = "^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$";
const TOKEN_GROUP = "^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$";

const obj = (description: string, properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: "object", description, additionalProperties: false, properties, ...extra });
const str = (description: string, extra: Schema = {}): Schema => ({ type: "string", minLength: 1, description, ...extra });
const int = (description: string, extra: Schema = {}): Schema => ({ type: "integer", description, ...extra });

const BUDGET = "^([0-9]+|[0-9]{1,3}%)$";

/** Schema of a list of budgets on a schedule (Karpenter's NodePool `budgets` with `schedule` and `duration`). */
const scheduledBudgetsSchema = (description: string, extra: Schema = {}): Schema => ({
  type: "array",
  maxItems: 50,
  description,
  items: obj(
    "A disruption budget in force for `duration` after each time `schedule` fires; the most restrictive budget in force wins.",
    {
      nodes: str("How many of the group's nodes may go at once while it is in force: a count (0 stops scale-down) or a share of its nodes (10%, rounded up).", { pattern: BUDGET }),
      schedule: str('When it comes into force: a five-field cron (minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5") or @daily, @weekly...'),
      timezone: str("IANA time zone the schedule is read in (Europe/Berlin).", { default: "UTC" }),
      duration: str("How long it stays in force after each run of the schedule: hours and minutes (8h, 30m, 1h30m)."),
    },
    { required: ["nodes", "schedule", "duration"] },
  ),
  ...extra,
});

/** Schema of `kubernetes.native` (cluster-autoscaler's flags and defaults where it has them). */
const nativeSchema: Schema = obj(
  "Native mode (mode: native): premiscale scales the node groups itself, up for pods the scheduler could not place, down for under-used nodes. Defaults are cluster-autoscaler's.",
  {
    scanIntervalSeconds: int("How often the cluster is scanned (--scan-interval).", { minimum: 1, maximum: 3600, default: 10 }),
    expander: {
      type: "array",
      minItems: 1,
      default: ["least-waste"],
      description: "Expander chain (--expander=priority,least-waste): which group grows when several could take the pods.",
      items: { type: "string", enum: ["least-waste", "priority", "random", "most-pods", "least-nodes"], description: "An expander." },
    },
    priorities: {
      type: "object",
      default: {},
      description: "The priority expander's rules, as cluster-autoscaler's priority ConfigMap: an integer priority → regular expressions on group names; the highest priority that matches wins.",
      patternProperties: { "^-?[0-9]{1,9}$": { type: "array", minItems: 1, items: { type: "string", minLength: 1, description: "A regular expression on group names." }, description: "Regular expressions with this priority." } },
      additionalProperties: false,
    },
    scaleDown: obj(
      "Scale-down and consolidation.",
      {
        enabled: { type: "boolean", default: true, description: "Remove under-used nodes (--scale-down-enabled)." },
        utilizationThreshold: { type: "number", minimum: 0, maximum: 1, default: 0.5, description: "A node under this utilisation (max of cpu and memory requests ÷ allocatable) may go." },
        unneededSeconds: int("How long a node must be unneeded before it goes (--scale-down-unneeded-time).", { minimum: 0, default: 600 }),
        delayAfterAddSeconds: int("No scale-down this long after a scale-up.", { minimum: 0, default: 600 }),
        delayAfterDeleteSeconds: int("No scale-down this long after a scale-down (0: the scan interval).", { minimum: 0, default: 0 }),
        delayAfterFailureSeconds: int("No scale-down this long after a failure.", { minimum: 0, default: 180 }),
        budget: str("Disruption budget per group: how many of its nodes may go at once, a count (2) or a share of its nodes (10%, rounded up).", { pattern: BUDGET, default: "10%" }),
        budgets: scheduledBudgetsSchema("Disruption budgets on a schedule, per group unless the group sets kubernetes.autoscaling.disruptionBudgets: while one is in force, the most restrictive of it and budget applies (nodes: \"0\" on \"0 9 * * 1-5\" for 8h: no scale-down in business hours).", { default: [] }),
      },
      { default: {} },
    ),
    maxTotalUnreadyPercentage: { type: "number", minimum: 0, maximum: 100, default: 45, description: "Halt scaling when more than this share of nodes is unready (and more than okTotalUnreadyCount)." },
    okTotalUnreadyCount: int("Unready nodes always tolerated.", { minimum: 0, default: 3 }),
    batch: obj(
      "Pending pods arriving together make one decision: a batch closes when no new pod came for idleMs, or after maxMs.",
      { idleMs: int("Idle window.", { minimum: 0, maximum: 60_000, default: 1000 }), maxMs: int("Maximum window.", { minimum: 0, maximum: 600_000, default: 10_000 }) },
      { default: {} },
    ),
    pollMs: int("How often the pending pods are listed (the batches see new pods this often).", { minimum: 100, maximum: 60_000, default: 500 }),
  },
);

/** Schema of the top-level `kubernetes:` block. */
export const kubernetesSchema: Schema = obj(
  "Kubernetes: premiscale serve becomes cluster-autoscaler's externalgrpc cloud provider for the groups with a kubernetes block, and their VMs join this cluster.",
  {
    kubeconfig: str("kubeconfig premiscale uses (relative to this file): it creates bootstrap tokens in kube-system and reads and deletes Nodes. Default: the service account of the pod premiscale runs in (in-cluster config)."),
    context: str("Context of the kubeconfig. Default: its current-context."),
    apiServerEndpoint: str("host:port that joining VMs dial (kubeadm discovery). Default: the kubeconfig's server.", { pattern: "^[^\\s/]+:[0-9]{1,5}$" }),
    caCertHash: str("sha256:<64 hex> pin of the cluster CA's public key for joins. Default: computed from the kubeconfig's CA.", { pattern: "^sha256:[0-9a-f]{64}$" }),
    callTimeoutSeconds: int("Timeout of one Kubernetes API call, in seconds.", { minimum: 1, maximum: 300, default: 10 }),
    externalGrpc: obj(
      "cluster-autoscaler's externalgrpc endpoint (its --cloud-config `address`).",
      {
        listen: str("Address and port. Plaintext is allowed only on a loopback address; elsewhere set tls.", { pattern: "^[^\\s]+:[0-9]{1,5}$", default: "127.0.0.1:8972" }),
        tls: obj(
          "Mutual TLS, as cluster-autoscaler's cloud-config cert/key/cacert expect.",
          {
            cert: str("Server certificate (PEM), relative to this file; its names must include the host cluster-autoscaler dials."),
            key: str("The server certificate's private key (PEM)."),
            clientCa: str("CA certificate (PEM) that cluster-autoscaler's client certificate must chain to."),
            allowedClients: { type: "array", items: { type: "string", minLength: 1 }, default: [], description: "Common names of client certificates allowed (empty: any certificate from clientCa)." },
          },
          { required: ["cert", "key", "clientCa"] },
        ),
      },
      { default: { listen: "127.0.0.1:8972" } },
    ),
    mode: { type: "string", enum: ["cluster-autoscaler", "native"], default: "cluster-autoscaler", description: "Who decides the node groups' sizes: cluster-autoscaler over externalgrpc, or premiscale itself from pending pods and node utilisation (native)." },
    native: nativeSchema,
    debounceMs: int("After an intent from cluster-autoscaler, wait this long for more before planning.", { minimum: 0, maximum: 10_000, default: 200 }),
    resyncSeconds: int("Also plan this often without an intent (drift, retries).", { minimum: 5, maximum: 3600, default: 60 }),
    leaderElection: obj(
      "Several premiscale serve replicas: only the holder of a coordination.k8s.io/v1 Lease runs the node-group loops (client-go's algorithm and defaults).",
      {
        enabled: { type: "boolean", default: false, description: "Elect a leader (needs get, create, update on leases in the namespace)." },
        namespace: str("The Lease's namespace. Default: the credentials' namespace (in a pod: its own), else default.", { pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 63 }),
        leaseName: str("The Lease's name.", { pattern: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", maxLength: 253, default: "premiscale" }),
        leaseDurationSeconds: int("Others take the Lease over when it has not changed for this long, as they observed it.", { minimum: 1, maximum: 3600, default: 15 }),
        renewDeadlineSeconds: { type: "number", exclusiveMinimum: 0, maximum: 3600, default: 10, description: "The leader stops leading when it could not renew for this long (less than leaseDurationSeconds)." },
        retryPeriodSeconds: { type: "number", exclusiveMinimum: 0, maximum: 600, default: 2, description: "Candidates retry and the leader renews this often (renewDeadlineSeconds must exceed 1.2 times it)." },
        endpoint: obj(
          "Where cluster-autoscaler finds the leader: the leader writes the EndpointSlice of this selector-less Service with its own address and the externalgrpc port when it takes the Lease, and empties it when it stops (needs get, create, update on endpointslices.discovery.k8s.io in the namespace).",
          {
            service: str("The Service (selector-less) whose EndpointSlice names the leader; the slice has the same name.", { pattern: "^[a-z]([-a-z0-9]*[a-z0-9])?$", maxLength: 63 }),
            namespace: str("The Service's namespace. Default: the Lease's.", { pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 63 }),
            addressEnv: str("Environment variable holding this replica's IP address (in a pod: status.podIP through the downward API).", { pattern: "^[A-Za-z_][A-Za-z0-9_]*$", default: "POD_IP" }),
            portName: { type: "string", pattern: "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$", maxLength: 15, default: "externalgrpc", description: "The Service port's name the slice's port carries (\"\" for a Service with one unnamed port)." },
          },
          { required: ["service"] },
        ),
      },
      { default: {} },
    ),
  },
);

/** Schema of a group's `kubernetes:` block. */
export const groupKubernetesSchema: Schema = obj(
  "This group is a cluster-autoscaler node group: cluster-autoscaler decides its size and which VMs go, and each new VM joins the cluster (needs the top-level kubernetes block).",
  {
    join: { type: "string", enum: ["kubeadm", "k3s", "rke2", "none"], default: "kubeadm", description: "How VMs join: a kubeadm JoinConfiguration, a k3s or rke2 agent config, or none (the image joins by itself; premiscale only waits for its Node)." },
    server: str("k3s / rke2: the server URL agents register with (https://host:6443; rke2: https://host:9345).", { pattern: "^https://" }),
    labels: {
      type: "object",
      description: "Labels every node of the group has (kubelet --node-labels, and the scale-from-zero template); keys are Kubernetes label keys.",
      patternProperties: { [LABEL_KEY]: { type: "string", pattern: LABEL_VALUE, description: "A label value." } },
      additionalProperties: false,
      default: {},
    },
    taints: {
      type: "array",
      default: [],
      description: "Taints every node of the group registers with.",
      items: obj("A taint.", { key: str("Taint key.", { pattern: LABEL_KEY }), value: { type: "string", pattern: LABEL_VALUE, description: "Taint value." }, effect: { type: "string", enum: ["NoSchedule", "PreferNoSchedule", "NoExecute"], description: "Effect." } }, { required: ["key", "effect"] }),
    },
    maxPods: int("Pods per node (kubelet --max-pods; the template's pods capacity).", { minimum: 1, maximum: 2000, default: 110 }),
    reserved: obj("Held back from the node's allocatable (kube-reserved + system-reserved), as the kubelet is configured.", { cpuMillis: int("CPU, in millicores.", { minimum: 0, default: 0 }), memoryMiB: int("Memory, in MiB.", { minimum: 0, default: 0 }) }, { default: {} }),
    ephemeralStorageGiB: { type: "number", exclusiveMinimum: 0, description: "The node's ephemeral-storage capacity in the scale-from-zero template (absent: not declared)." },
    tokenGroups: { type: "array", items: { type: "string", pattern: TOKEN_GROUP }, minItems: 1, description: `auth-extra-groups of each VM's bootstrap token. Default: ${KUBEADM_TOKEN_GROUP} (kubeadm), ${K3S_TOKEN_GROUP} (k3s, rke2).` },
    tokenTtlSeconds: int("Lifetime of each VM's bootstrap token. Default: readiness.timeoutSeconds.", { minimum: 60, maximum: 86_400 }),
    autoscaling: obj(
      "Overrides of cluster-autoscaler's options for this group (NodeGroupGetOptions); the rest are its own defaults, echoed.",
      {
        scaleDownUtilizationThreshold: { type: "number", minimum: 0, maximum: 1, description: "Scale a node down below this utilisation." },
        scaleDownGpuUtilizationThreshold: { type: "number", minimum: 0, maximum: 1, description: "The same for GPU nodes." },
        scaleDownUnneededSeconds: int("A node must be unneeded this long before it goes.", { minimum: 0 }),
        scaleDownUnreadySeconds: int("An unready node must be unneeded this long before it goes.", { minimum: 0 }),
        maxNodeProvisionSeconds: int("How long cluster-autoscaler waits for a new node. Default: readiness.timeoutSeconds + 60, so premiscale gives up on a VM (and reports it) first.", { minimum: 1 }),
        zeroOrMaxNodeScaling: { type: "boolean", description: "Scale the group between 0 and max at once." },
        ignoreDaemonSetsUtilization: { type: "boolean", description: "Leave DaemonSet pods out of the utilisation." },
        disruptionBudget: str("Native mode: how many of this group's nodes may go at once, a count (2) or a share of its nodes (10%). Default: kubernetes.native.scaleDown.budget.", { pattern: BUDGET }),
        disruptionBudgets: scheduledBudgetsSchema("Native mode: this group's disruption budgets on a schedule, instead of kubernetes.native.scaleDown.budgets (an empty list: none)."),
      },
      { default: {} },
    ),
  },
);

// The blocks as written, after the schema filled their defaults: their types are generated from the schema.
type RawKubernetes = NonNullable<PremiscaleConfig["kubernetes"]>;
type RawNative = NonNullable<RawKubernetes["native"]>;
type RawGroupKubernetes = NonNullable<NonNullable<PremiscaleConfig["groups"]>[number]["kubernetes"]>;

/** Whether a listen host is a loopback address (plaintext is allowed only there). */
export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** The top-level block normalised (paths absolute), with its rule violations. */
export function normaliseKubernetes(src: Source, raw: RawKubernetes, dir: string, issues: ConfigIssue[]): KubernetesConfig {
  const at: Seg[] = ["kubernetes", "externalGrpc", "listen"];
  const listen = raw.externalGrpc.listen;
  const cut = listen.lastIndexOf(":");
  const host = listen.slice(0, cut).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(cut + 1));
  if (!(port >= 1 && port <= 65535)) issues.push(src.issue(at, `port ${listen.slice(cut + 1)} is not between 1 and 65535`, "use e.g. 127.0.0.1:8972"));
  const tls = raw.externalGrpc.tls;
  if (!tls && !isLoopbackHost(host)) {
    issues.push(
      src.issue(
        at,
        `externalGrpc listens on ${listen} without tls: cluster-autoscaler's calls change the cluster's size, so plaintext is allowed only on a loopback address`,
        "set kubernetes.externalGrpc.tls (cert, key, clientCa: the files cluster-autoscaler's cloud-config names as cert, key and cacert), or listen on 127.0.0.1",
      ),
    );
  }
  const native = raw.mode === "native" ? normaliseNative(src, raw.native, issues) : undefined;
  if (raw.mode !== "native" && raw.native !== undefined) issues.push(src.issue(["kubernetes", "native"], "kubernetes.native is set, but kubernetes.mode is cluster-autoscaler (the default), so nothing reads it", "set kubernetes.mode: native, or remove kubernetes.native", true));
  const le = raw.leaderElection;
  const ls: Seg[] = ["kubernetes", "leaderElection"];
  if (!(le.leaseDurationSeconds > le.renewDeadlineSeconds)) {
    issues.push(src.issue([...ls, "renewDeadlineSeconds"], `renewDeadlineSeconds (${le.renewDeadlineSeconds}) must be less than leaseDurationSeconds (${le.leaseDurationSeconds}): the leader must give up before another replica may take over`, "keep client-go's defaults (15, 10, 2), or lower renewDeadlineSeconds"));
  } else if (!(le.renewDeadlineSeconds > 1.2 * le.retryPeriodSeconds)) {
    issues.push(src.issue([...ls, "retryPeriodSeconds"], `renewDeadlineSeconds (${le.renewDeadlineSeconds}) must be greater than 1.2 × retryPeriodSeconds (${le.retryPeriodSeconds}): a renewal needs room for a retry`, "keep client-go's defaults (15, 10, 2), or lower retryPeriodSeconds"));
  }
  const endpoint = le.endpoint;
  if (endpoint) {
    const es: Seg[] = [...ls, "endpoint"];
    if (!le.enabled) issues.push(src.issue(es, "kubernetes.leaderElection.endpoint is set, but leader election is off, so no leader writes it", "set kubernetes.leaderElection.enabled: true, or remove endpoint", true));
    if (raw.mode === "native") issues.push(src.issue(es, "native mode has no externalgrpc listener for the Service to point at", "remove kubernetes.leaderElection.endpoint (or use mode: cluster-autoscaler)", true));
    else if (isLoopbackHost(host)) {
      issues.push(
        src.issue(es, `externalGrpc listens on ${listen}, a loopback address: the leader's Service would send cluster-autoscaler to a port only this machine reaches`, "listen on 0.0.0.0 with kubernetes.externalGrpc.tls, or remove endpoint", true),
      );
    }
  }
  return {
    ...(native ? { native } : {}),
    ...(raw.kubeconfig !== undefined ? { kubeconfig: path.resolve(dir, raw.kubeconfig) } : {}),
    ...(raw.context ? { context: raw.context } : {}),
    ...(raw.apiServerEndpoint ? { apiServerEndpoint: raw.apiServerEndpoint } : {}),
    ...(raw.caCertHash ? { caCertHash: raw.caCertHash } : {}),
    callTimeoutSeconds: raw.callTimeoutSeconds,
    externalGrpc: {
      host,
      port,
      tls: tls ? { cert: path.resolve(dir, tls.cert), key: path.resolve(dir, tls.key), clientCa: path.resolve(dir, tls.clientCa), allowedClients: [...tls.allowedClients] } : null,
    },
    debounceMs: raw.debounceMs,
    resyncSeconds: raw.resyncSeconds,
    leaderElection: {
      enabled: le.enabled,
      ...(le.namespace ? { namespace: le.namespace } : {}),
      leaseName: le.leaseName,
      leaseDurationSeconds: le.leaseDurationSeconds,
      renewDeadlineSeconds: le.renewDeadlineSeconds,
      retryPeriodSeconds: le.retryPeriodSeconds,
      ...(endpoint ? { endpoint: { service: endpoint.service, ...(endpoint.namespace ? { namespace: endpoint.namespace } : {}), addressEnv: endpoint.addressEnv, portName: endpoint.portName } } : {}),
    },
  };
}

/** The schema's defaults of `kubernetes.native`, for `mode: native` without the block. */
const NATIVE_DEFAULTS: RawNative = {
  scanIntervalSeconds: 10,
  expander: ["least-waste"],
  priorities: {},
  scaleDown: { enabled: true, utilizationThreshold: 0.5, unneededSeconds: 600, delayAfterAddSeconds: 600, delayAfterDeleteSeconds: 0, delayAfterFailureSeconds: 180, budget: "10%", budgets: [] },
  maxTotalUnreadyPercentage: 45,
  okTotalUnreadyCount: 3,
  batch: { idleMs: 1000, maxMs: 10_000 },
  pollMs: 500,
};

/** `kubernetes.native` normalised: priorities sorted highest first, every regex compiled, the expander chain checked. */
function normaliseNative(src: Source, raw: RawNative | undefined, issues: ConfigIssue[]): NativeModeConfig {
  const n = raw ?? NATIVE_DEFAULTS;
  const at: Seg[] = ["kubernetes", "native"];
  const priorities = Object.entries(n.priorities)
    .map(([k, patterns]) => ({ priority: Number(k), patterns: [...patterns] }))
    .sort((a, b) => b.priority - a.priority);
  for (const [k, patterns] of Object.entries(n.priorities)) {
    patterns.forEach((p, i) => {
      try {
        new RegExp(p);
      } catch (e) {
        issues.push(src.issue([...at, "priorities", k, i], `${JSON.stringify(p)} is not a regular expression: ${(e as Error).message}`, "write a JavaScript regular expression (e.g. ^web-)"));
      }
    });
  }
  if (n.expander.includes("priority") && priorities.length === 0) issues.push(src.issue([...at, "expander"], "the priority expander needs priorities", "add kubernetes.native.priorities (e.g. 10: [\"^web-\"]), or remove priority from the chain"));
  const dup = n.expander.find((e, i) => n.expander.indexOf(e) !== i);
  if (dup) issues.push(src.issue([...at, "expander"], `expander ${dup} is in the chain twice`, "list each expander once"));
  if (n.batch.maxMs < n.batch.idleMs) issues.push(src.issue([...at, "batch", "maxMs"], `batch.maxMs ${n.batch.maxMs} is shorter than batch.idleMs ${n.batch.idleMs}`, "make maxMs at least idleMs (Karpenter: 1000 and 10000)"));
  return {
    scanIntervalSeconds: n.scanIntervalSeconds,
    expander: [...n.expander],
    priorities,
    scaleDown: { ...n.scaleDown, budgets: normaliseBudgets(src, [...at, "scaleDown", "budgets"], n.scaleDown.budgets, issues) },
    maxTotalUnreadyPercentage: n.maxTotalUnreadyPercentage,
    okTotalUnreadyCount: n.okTotalUnreadyCount,
    batchIdleMs: n.batch.idleMs,
    batchMaxMs: n.batch.maxMs,
    pollMs: n.pollMs,
  };
}

/** The longest window a scheduled budget may have: a leap year (longer is always in force: drop the schedule). */
const MAX_BUDGET_SECONDS = 366 * 86_400;

/** "8h", "30m", "1h30m" in seconds; null for anything else, zero, or more than a leap year. */
export function budgetDurationSeconds(text: string): number | null {
  const m = /^(?:([0-9]+)h)?(?:([0-9]+)m)?$/.exec(text.trim());
  if (!m || (m[1] === undefined && m[2] === undefined)) return null;
  const s = Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60;
  return s > 0 && s <= MAX_BUDGET_SECONDS ? s : null;
}

/** A list of budgets on a schedule, checked: a cron that parses and runs, a known time zone, a duration. */
function normaliseBudgets(src: Source, at: Seg[], raw: readonly { nodes: string; schedule: string; timezone: string; duration: string }[], issues: ConfigIssue[]): ScheduledDisruptionBudget[] {
  return raw.map((b, i) => {
    const here: Seg[] = [...at, i];
    if (!isTimeZone(b.timezone)) issues.push(src.issue([...here, "timezone"], `unknown time zone ${show(b.timezone)}`, "use an IANA name such as Europe/Berlin, or leave timezone out for UTC"));
    else {
      try {
        if (parseCron(b.schedule, b.timezone).nextRun(new Date(0)) === null) issues.push(src.issue([...here, "schedule"], `${show(b.schedule)} never runs`, 'give a cron that fires, e.g. "0 9 * * 1-5"'));
      } catch (e) {
        // The parser's message may repeat the pattern: cut, as show() cuts the value.
        const full = (e instanceof Error ? e.message : String(e)).replace(/^CronPattern: /, "");
        const msg = full.length <= 200 ? full : `${full.slice(0, 200)}…`;
        issues.push(src.issue([...here, "schedule"], `invalid cron ${show(b.schedule)}: ${msg}`, 'five fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5"'));
      }
    }
    const seconds = budgetDurationSeconds(b.duration);
    if (seconds === null) issues.push(src.issue([...here, "duration"], `duration ${show(b.duration)} is not hours and minutes up to a year`, "write e.g. 8h, 30m or 1h30m (Karpenter's form; more than zero, at most 8784h)"));
    return { nodes: b.nodes, schedule: b.schedule, timezone: b.timezone, duration: b.duration, durationSeconds: seconds ?? 0 };
  });
}

/**
 * A group's block normalised, and the rules between it and the rest of the group and config: cluster-autoscaler
 * decides the size (so no `desired`, no `scaling`), the top-level block must exist, review-mode GitOps cannot hold
 * cluster-autoscaler's decisions for a pull request, k3s and rke2 need a server URL.
 */
export function normaliseGroupKubernetes(
  src: Source,
  gs: Seg[],
  raw: RawGroupKubernetes | undefined,
  group: { desired?: number; scaling?: unknown; readiness: { timeoutSeconds: number } },
  context: { topLevel: boolean; gitopsMode: string | undefined },
  issues: ConfigIssue[],
): KubernetesGroupConfig | undefined {
  if (!raw) return undefined;
  const ks: Seg[] = [...gs, "kubernetes"];
  if (!context.topLevel) issues.push(src.issue(ks, "the group is a Kubernetes node group, but the config has no top-level kubernetes block", "add kubernetes: {kubeconfig: …} at the top level (the cluster and cluster-autoscaler's externalgrpc listener)", true));
  if (group.desired !== undefined) issues.push(src.issue([...gs, "desired"], "cluster-autoscaler decides the size of a Kubernetes node group", "remove desired (the group starts at min, or at the VMs it has)"));
  if (group.scaling !== undefined) issues.push(src.issue([...gs, "scaling"], "cluster-autoscaler decides the size of a Kubernetes node group; scaling policies cannot also decide it", "remove scaling, or remove the group's kubernetes block"));
  if (context.gitopsMode === "review") {
    issues.push(
      src.issue(
        ks,
        "gitops.mode is review, but cluster-autoscaler changes this group's size at any moment and waits seconds, not a pull request, for the VMs",
        "use gitops.mode: auto, or remove the group's kubernetes block",
        true,
      ),
    );
  }
  if ((raw.join === "k3s" || raw.join === "rke2") && !raw.server) issues.push(src.issue([...ks, "join"], `join: ${raw.join} needs the server URL its agents register with`, `add kubernetes.server: https://<server>:${raw.join === "rke2" ? 9345 : 6443}`));
  const defaultGroup = raw.join === "k3s" || raw.join === "rke2" ? K3S_TOKEN_GROUP : KUBEADM_TOKEN_GROUP;
  const { maxNodeProvisionSeconds, disruptionBudgets, ...autoscaling } = raw.autoscaling;
  return {
    join: raw.join,
    ...(raw.server ? { server: raw.server } : {}),
    labels: { ...raw.labels },
    taints: raw.taints.map((t) => ({ key: t.key, ...(t.value !== undefined ? { value: t.value } : {}), effect: t.effect })),
    maxPods: raw.maxPods,
    reservedCpuMillis: raw.reserved.cpuMillis ?? 0,
    reservedMemoryMiB: raw.reserved.memoryMiB ?? 0,
    ...(raw.ephemeralStorageGiB !== undefined ? { ephemeralStorageGiB: raw.ephemeralStorageGiB } : {}),
    tokenGroups: raw.tokenGroups ? [...raw.tokenGroups] : [defaultGroup],
    tokenTtlSeconds: raw.tokenTtlSeconds ?? group.readiness.timeoutSeconds,
    autoscaling: {
      ...autoscaling,
      ...(disruptionBudgets ? { disruptionBudgets: normaliseBudgets(src, [...ks, "autoscaling", "disruptionBudgets"], disruptionBudgets, issues) } : {}),
      maxNodeProvisionSeconds: maxNodeProvisionSeconds ?? group.readiness.timeoutSeconds + 60,
    },
  };
}
