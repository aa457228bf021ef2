/**
 * cluster-autoscaler's cloud provider, as premiscale answers it: what each externalgrpc call means for premiscale's
 * node groups (the groups with a `kubernetes` block), independent of gRPC (grpc-server.ts maps it onto the wire).
 * Calls that change a group (IncreaseSize, DeleteNodes, DecreaseTargetSize) only record the intent durably
 * (intent-store.ts) and poke the loop that plans and applies; they answer in milliseconds, far inside
 * cluster-autoscaler's 5 s gRPC timeout. A refused call changes nothing.
 *
 * The contracts are cluster-autoscaler's (cloudprovider/cloud_provider.go, externalgrpc.proto): DeleteNodes fails for
 * a node that is not in the group and accepts the fake Node cluster-autoscaler makes for an instance that never
 * registered (name and providerID = the instance id); DecreaseTargetSize only cancels VMs not made yet; NodeGroupNodes
 * lists every instance with its state and create errors, which is how cluster-autoscaler learns that no host had room
 * (`OutOfResources`) or that a VM never became a node, backs the group off and deletes the failed instance.
 */
import { PremiscaleError } from "../config/errors.js";
import type { Config, GroupConfig } from "../config/types.js";
import { initialIntent, type FailedInstance, type GroupIntent, type IntentOpKind, type IntentStore } from "./intent-store.js";
import { encodeNode } from "./node-proto.js";
import { parseProviderId, providerIdOf } from "./provider-id.js";
import { templateNode } from "./template-node.js";

/** gRPC status codes premiscale answers with (their numbers are grpc's `status` enum). */
export type CloudProviderStatus = "INVALID_ARGUMENT" | "NOT_FOUND" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" | "UNIMPLEMENTED" | "INTERNAL";

/** A refused call: its gRPC status, and a message that names the group or node and what would fix it. */
export class CloudProviderError extends PremiscaleError {
  override name = "CloudProviderError";
  constructor(
    readonly status: CloudProviderStatus,
    message: string,
  ) {
    super(message, `externalgrpc_${status.toLowerCase()}`);
  }
}

/** A VM of a node group as the cloud provider sees it. */
export interface ViewInstance {
  uuid: string;
  name: string;
  /** State's status, or `creating` for a create of the apply in flight that has not written its record yet. */
  status: "creating" | "running" | "deleting";
}

/** Where the cloud provider reads a group's VMs from (state as written now, and the apply in flight). */
export interface InstanceView {
  instances(group: string): Promise<ViewInstance[]>;
}

/** A node group as cluster-autoscaler lists it. */
export interface NodeGroupInfo {
  id: string;
  minSize: number;
  maxSize: number;
  debug: string;
}

/** Instance states, as externalgrpc numbers them. */
export const INSTANCE_STATE = { running: 1, creating: 2, deleting: 3 } as const;
/** cloudprovider.InstanceErrorClass. */
export const ERROR_CLASS = { OutOfResources: 1, Other: 99 } as const;

/** One entry of NodeGroupNodes. */
export interface InstanceInfo {
  /** `premiscale://<group>/<uuid>`. */
  id: string;
  state: keyof typeof INSTANCE_STATE;
  error?: { code: string; message: string; class: keyof typeof ERROR_CLASS };
}

/** A node as cluster-autoscaler passes it (ExternalGrpcNode). */
export interface NodeRef {
  providerID: string;
  name: string;
}

/** cluster-autoscaler's per-group options (NodeGroupAutoscalingOptions), durations in ms; undefined: not given. */
export interface AutoscalingOptions {
  scaleDownUtilizationThreshold?: number;
  scaleDownGpuUtilizationThreshold?: number;
  scaleDownUnneededMs?: number;
  scaleDownUnreadyMs?: number;
  maxNodeProvisionMs?: number;
  maxNodeStartupMs?: number;
  zeroOrMaxNodeScaling?: boolean;
  ignoreDaemonSetsUtilization?: boolean;
  allowNonAtomicScaleUpToMax?: boolean;
}

/** What an accepted change did (for logs and metrics). */
export interface IntentChange {
  group: string;
  op: IntentOpKind;
  before: number;
  after: number;
  nodes?: string[];
}

/** What the cloud provider needs. */
export interface CloudProviderDeps {
  config: Config;
  store: IntentStore;
  view: InstanceView;
  /** Called after an intent was written (the loop plans soon after). */
  onIntent?: (change: IntentChange) => void;
  /** @default () => new Date() */
  now?: () => Date;
}

/** The label of GPU nodes premiscale reports (no premiscale template has GPUs yet). */
export const GPU_LABEL = "premiscale.io/gpu";

/** premiscale's answers to cluster-autoscaler. Each method is one externalgrpc call. */
export class CloudProvider {
  private readonly now: () => Date;

  constructor(private readonly deps: CloudProviderDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** The Kubernetes node groups of the config. */
  groups(): GroupConfig[] {
    return this.deps.config.groups.filter((g) => g.kubernetes);
  }

  private info(g: GroupConfig): NodeGroupInfo {
    const t = g.template;
    return {
      id: g.name,
      minSize: g.min,
      maxSize: g.max,
      debug: `premiscale group ${g.name}: ${g.min}-${g.max} VMs of ${t.vcpus} vCPU / ${t.memoryMiB} MiB on ${g.hosts.join(", ")}${g.suspend ? " (suspended)" : ""}`,
    };
  }

  private group(id: string, call: string): GroupConfig {
    const g = this.groups().find((x) => x.name === id);
    if (g) return g;
    const known = this.groups().map((x) => x.name);
    throw new CloudProviderError("NOT_FOUND", `${call}: no node group "${id}" (premiscale's node groups: ${known.length ? known.join(", ") : "none"}); nothing changed`);
  }

  /** The intent as written, or the one a group starts with: its VMs (not being deleted), within min and max. */
  private async current(g: GroupConfig): Promise<{ intent: GroupIntent; instances: ViewInstance[] }> {
    const instances = await this.deps.view.instances(g.name);
    const intent = this.deps.store.get(g.name) ?? initialIntent(g.name, clamp(instances.filter((i) => i.status !== "deleting").length, g.min, g.max));
    return { intent, instances };
  }

  /** NodeGroups. */
  nodeGroups(): NodeGroupInfo[] {
    return this.groups().map((g) => this.info(g));
  }

  /** NodeGroupForNode: the group of a VM premiscale knows; null for any other node (not autoscaled by premiscale). */
  async nodeGroupForNode(node: NodeRef): Promise<NodeGroupInfo | null> {
    const id = parseProviderId(node.providerID);
    if (!id) return null;
    const g = this.groups().find((x) => x.name === id.group);
    if (!g) return null;
    const { intent, instances } = await this.current(g);
    const known = instances.some((i) => i.uuid === id.uuid) || intent.failed.some((f) => f.uuid === id.uuid);
    return known ? this.info(g) : null;
  }

  /** NodeGroupTargetSize. */
  async targetSize(id: string): Promise<number> {
    return (await this.current(this.group(id, "NodeGroupTargetSize"))).intent.target;
  }

  /** NodeGroupIncreaseSize: raises the target; the loop makes the VMs. */
  async increaseSize(id: string, delta: number): Promise<number> {
    const call = "NodeGroupIncreaseSize";
    const g = this.group(id, call);
    if (!Number.isInteger(delta) || delta <= 0) {
      throw new CloudProviderError("INVALID_ARGUMENT", `${call} of node group ${id}: delta must be a positive number of nodes, got ${delta}; nothing changed (cluster-autoscaler shrinks a group with DeleteNodes or DecreaseTargetSize)`);
    }
    const { intent } = await this.current(g);
    return this.record(g, intent, call, (i) => {
      if (i.target + delta > g.max) {
        throw new CloudProviderError("OUT_OF_RANGE", `${call} of node group ${id}: target ${i.target} + ${delta} = ${i.target + delta} is above the group's max ${g.max}; nothing changed`);
      }
      return { op: "IncreaseSize", delta, target: i.target + delta };
    });
  }

  /**
   * NodeGroupDeleteNodes: names the VMs to remove and lowers the target by as many. Every node must be a VM of this
   * group (a Node whose providerID is `premiscale://<id>/<uuid>`, or cluster-autoscaler's fake Node of an instance
   * that never registered, named after its instance id) or a failed instance; otherwise nothing changes. A VM
   * already being deleted counts once. Deleting a failed instance never takes the target below min: the slot is
   * then tried again.
   */
  async deleteNodes(id: string, nodes: NodeRef[]): Promise<number> {
    const call = "NodeGroupDeleteNodes";
    const g = this.group(id, call);
    if (nodes.length === 0) throw new CloudProviderError("INVALID_ARGUMENT", `${call} of node group ${id}: no nodes given; nothing changed`);
    const { intent, instances } = await this.current(g);
    const byUuid = new Map(instances.map((i) => [i.uuid, i]));
    const victims: ViewInstance[] = [];
    const failed: FailedInstance[] = [];
    const names: string[] = [];
    for (const n of nodes) {
      const pid = n.providerID || n.name;
      const label = n.name && n.name !== pid ? `node ${n.name} (providerID ${pid || '""'})` : `node ${pid || '""'}`;
      const parsed = parseProviderId(pid);
      if (!parsed) {
        throw new CloudProviderError("INVALID_ARGUMENT", `${call} of node group ${id}: ${label} is not a premiscale VM (its providerID is not premiscale://${id}/<instance uuid>); nothing changed`);
      }
      if (parsed.group !== id) {
        throw new CloudProviderError("INVALID_ARGUMENT", `${call} of node group ${id}: ${label} belongs to node group ${parsed.group}, not ${id}; nothing changed`);
      }
      const vm = byUuid.get(parsed.uuid);
      const f = intent.failed.find((x) => x.uuid === parsed.uuid);
      if (vm) {
        if (vm.status !== "deleting" && !intent.remove.some((r) => r.uuid === vm.uuid) && !victims.includes(vm)) victims.push(vm);
        names.push(vm.name);
      } else if (f) {
        if (!failed.includes(f)) failed.push(f);
        names.push(providerIdOf(id, f.uuid));
      } else {
        throw new CloudProviderError("NOT_FOUND", `${call} of node group ${id}: ${label} is not an instance of node group ${id} (no VM with instance id ${parsed.uuid}); nothing changed`);
      }
    }
    return this.record(g, intent, call, (i) => {
      const afterVictims = i.target - victims.length;
      if (victims.length > 0 && afterVictims < g.min) {
        throw new CloudProviderError("FAILED_PRECONDITION", `${call} of node group ${id}: deleting ${victims.length} node(s) would take the target from ${i.target} to ${afterVictims}, below the group's min ${g.min}; nothing changed`);
      }
      const target = Math.min(afterVictims, Math.max(g.min, afterVictims - failed.length));
      i.remove.push(...victims.map((v) => ({ uuid: v.uuid, name: v.name })));
      i.failed = i.failed.filter((x) => !failed.some((f) => f.uuid === x.uuid));
      return { op: "DeleteNodes", delta: target - i.target, target, nodes: names };
    });
  }

  /**
   * NodeGroupDecreaseTargetSize: lowers the target only by VMs not made yet. The VMs that exist or are being
   * created (and failed instances, until cluster-autoscaler deletes them) are a floor it never goes below.
   */
  async decreaseTargetSize(id: string, delta: number): Promise<number> {
    const call = "NodeGroupDecreaseTargetSize";
    const g = this.group(id, call);
    if (!Number.isInteger(delta) || delta >= 0) {
      throw new CloudProviderError("INVALID_ARGUMENT", `${call} of node group ${id}: delta must be negative, got ${delta}; nothing changed`);
    }
    const { intent, instances } = await this.current(g);
    return this.record(g, intent, call, (i) => {
      const going = new Set(i.remove.map((r) => r.uuid));
      const existing = instances.filter((x) => x.status !== "deleting" && !going.has(x.uuid));
      const floor = existing.length + i.failed.length;
      const target = i.target + delta;
      if (target < floor) {
        const what = [...existing.map((x) => `${x.name} (${x.status})`), ...i.failed.map((f) => `failed ${f.uuid}`)].join(", ");
        throw new CloudProviderError(
          "FAILED_PRECONDITION",
          `${call} of node group ${id}: target ${i.target} ${delta} = ${target} is below the ${floor} instance(s) that exist or are being created (${what}); it only cancels VMs not made yet, and never deletes one (use DeleteNodes); nothing changed`,
        );
      }
      if (target < g.min) {
        throw new CloudProviderError("FAILED_PRECONDITION", `${call} of node group ${id}: target ${i.target} ${delta} = ${target} is below the group's min ${g.min}; nothing changed`);
      }
      return { op: "DecreaseTargetSize", delta, target };
    });
  }

  /** Writes one change of the intent (the check runs again on the intent as it is at write time). */
  private async record(
    g: GroupConfig,
    seen: GroupIntent,
    call: string,
    change: (i: GroupIntent) => { op: IntentOpKind; delta: number; target: number; nodes?: string[] },
  ): Promise<number> {
    const done: { change?: IntentChange } = {};
    let written: GroupIntent;
    try {
      written = await this.deps.store.update(g.name, () => seen, (i) => {
        const c = change(i);
        const seq = i.seq + 1;
        done.change = { group: g.name, op: c.op, before: i.target, after: c.target, ...(c.nodes ? { nodes: c.nodes } : {}) };
        return { ...i, target: c.target, seq, pending: [...i.pending, { seq, at: this.now().toISOString(), op: c.op, delta: c.delta, ...(c.nodes ? { nodes: c.nodes } : {}), target: c.target }] };
      });
    } catch (e) {
      if (e instanceof CloudProviderError) throw e;
      throw new CloudProviderError("INTERNAL", `${call} of node group ${g.name}: recording the intent failed, nothing changed: ${(e as Error).message}`);
    }
    if (done.change) this.deps.onIntent?.(done.change);
    return written.target;
  }

  /**
   * NodeGroupNodes: every VM of the group in state (creating, running, deleting; a VM named by DeleteNodes is
   * deleting from then on), the creates of the apply in flight, and the failed instances as creating with their
   * error (OutOfResources when no host had room).
   */
  async nodes(id: string): Promise<InstanceInfo[]> {
    const g = this.group(id, "NodeGroupNodes");
    const { intent, instances } = await this.current(g);
    const going = new Set(intent.remove.map((r) => r.uuid));
    return [
      ...instances.map((i): InstanceInfo => ({ id: providerIdOf(g.name, i.uuid), state: going.has(i.uuid) ? "deleting" : i.status })),
      ...intent.failed.map((f): InstanceInfo => ({ id: providerIdOf(g.name, f.uuid), state: "creating", error: { code: f.errorCode, message: f.message, class: f.errorClass } })),
    ];
  }

  /** NodeGroupTemplateNodeInfo: the v1.Node protobuf bytes of a new node of the group. */
  templateNodeInfo(id: string): Buffer {
    return encodeNode(templateNode(this.group(id, "NodeGroupTemplateNodeInfo"), this.now()));
  }

  /**
   * NodeGroupGetOptions: cluster-autoscaler's defaults, echoed, with what the group's `kubernetes.autoscaling`
   * sets, and max-node-provision-time longer than premiscale's own wait for a node (readiness.timeoutSeconds), so
   * a VM that never joins is given up and reported by premiscale before cluster-autoscaler's scale-up times out.
   * Without defaults in the request there is nothing to echo: Unimplemented, so the caller keeps its own.
   */
  getOptions(id: string, defaults: AutoscalingOptions | undefined): AutoscalingOptions {
    const g = this.group(id, "NodeGroupGetOptions");
    if (!defaults) throw new CloudProviderError("UNIMPLEMENTED", `NodeGroupGetOptions of node group ${id}: the request carries no defaults to echo, so the caller's own stay in force`);
    const a = g.kubernetes!.autoscaling;
    const s = (x: number | undefined) => (x === undefined ? undefined : x * 1000);
    const out: AutoscalingOptions = { ...defaults };
    const set = <K extends keyof AutoscalingOptions>(k: K, v: AutoscalingOptions[K] | undefined) => {
      if (v !== undefined) out[k] = v;
    };
    set("scaleDownUtilizationThreshold", a.scaleDownUtilizationThreshold);
    set("scaleDownGpuUtilizationThreshold", a.scaleDownGpuUtilizationThreshold);
    set("scaleDownUnneededMs", s(a.scaleDownUnneededSeconds));
    set("scaleDownUnreadyMs", s(a.scaleDownUnreadySeconds));
    set("maxNodeProvisionMs", a.maxNodeProvisionSeconds * 1000);
    set("zeroOrMaxNodeScaling", a.zeroOrMaxNodeScaling);
    set("ignoreDaemonSetsUtilization", a.ignoreDaemonSetsUtilization);
    return out;
  }
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}
