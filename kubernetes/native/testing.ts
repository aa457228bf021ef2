/** Fixtures for native mode's tests and benchmarks: pods, nodes and node groups as plain data. */
import type { NativeModeConfig, NodeTaint } from "../../config/kubernetes.js";
import type { GroupConfig } from "../../config/types.js";
import { kubeTestConfig } from "../testing/config.js";
import type { SimNode, SimPod, Toleration } from "./cluster-model.js";
import type { SimPdb } from "./pdb-tracker.js";
import { GROUP_LABEL } from "../template-node.js";

const base = kubeTestConfig({ min: 0, max: 10 }).groups[0]!;
const MI = 2 ** 20;

/** A node group (a copy of the test config's, renamed and resized). */
export function testGroup(name: string, o: { vcpus?: number; memoryMiB?: number; min?: number; max?: number; maxPods?: number; labels?: Record<string, string>; taints?: NodeTaint[]; reservedCpuMillis?: number; reservedMemoryMiB?: number } = {}): GroupConfig {
  return {
    ...base,
    name,
    min: o.min ?? 0,
    max: o.max ?? 10,
    template: { ...base.template, vcpus: o.vcpus ?? 2, memoryMiB: o.memoryMiB ?? 2048 },
    kubernetes: {
      ...base.kubernetes!,
      labels: o.labels ?? {},
      taints: o.taints ?? [],
      maxPods: o.maxPods ?? 110,
      reservedCpuMillis: o.reservedCpuMillis ?? 0,
      reservedMemoryMiB: o.reservedMemoryMiB ?? 0,
    },
  };
}

let seq = 0;
/** A pod requesting `cpu` millicores and `memMiB` MiB. */
export function testPod(name: string, cpu: number, memMiB: number, o: Partial<SimPod> & { tolerations?: Toleration[] } = {}): SimPod {
  return {
    uid: `uid-${name}-${++seq}`,
    name,
    namespace: "default",
    requests: { cpuMillis: cpu, memoryBytes: memMiB * MI, pods: 1 },
    nodeSelector: {},
    affinityTerms: [],
    tolerations: [],
    daemonSet: false,
    mirror: false,
    ...o,
  };
}

/** A pending pod (the scheduler's Unschedulable condition, short of `cause`). */
export function pendingPod(name: string, cpu: number, memMiB: number, o: Partial<SimPod> = {}, cause = "cpu"): SimPod {
  return testPod(name, cpu, memMiB, { unschedulable: { message: `0/1 nodes are available: 1 Insufficient ${cause}.` }, ...o });
}

/** A Ready node of `group` (its name is the VM's) with `cpu` millicores and `memMiB` MiB allocatable. */
export function testNode(name: string, group: string | undefined, cpu = 2000, memMiB = 2048, o: Partial<SimNode> = {}): SimNode {
  return {
    name,
    labels: { ...(group ? { [GROUP_LABEL]: group } : {}), "kubernetes.io/hostname": name },
    taints: [],
    allocatable: { cpuMillis: cpu, memoryBytes: memMiB * MI, pods: 110 },
    ready: true,
    unschedulable: false,
    scaleDownDisabled: false,
    createdAt: "2026-12-03T10:00:00Z",
    ...o,
  };
}

/** A PodDisruptionBudget in `default` selecting `app: <app>`, allowing `allowed` disruptions. */
export function testPdb(name: string, app: string, allowed: number, o: Partial<SimPdb> = {}): SimPdb {
  return { namespace: "default", name, selector: { matchLabels: { app } }, disruptionsAllowed: allowed, currentHealthy: 3, desiredHealthy: 3 - allowed, alwaysAllowUnhealthy: false, stale: false, ...o };
}

/**
 * Native mode's settings for the real-cluster tests: scans every 3 s, cluster-autoscaler's thresholds, a long unneeded
 * time and delay after a scale-up (nothing is removed unless a test says so), 1 s batches, pending pods polled every
 * 200 ms. `scaleDown` fields replace the defaults' one by one.
 */
export function testNativeMode(o: Partial<Omit<NativeModeConfig, "scaleDown">> & { scaleDown?: Partial<NativeModeConfig["scaleDown"]> } = {}): NativeModeConfig {
  const { scaleDown, ...rest } = o;
  return {
    scanIntervalSeconds: 3,
    expander: ["least-waste"],
    priorities: [],
    maxTotalUnreadyPercentage: 45,
    okTotalUnreadyCount: 3,
    batchIdleMs: 1000,
    batchMaxMs: 10_000,
    pollMs: 200,
    ...rest,
    scaleDown: { enabled: true, utilizationThreshold: 0.5, unneededSeconds: 600, delayAfterAddSeconds: 600, delayAfterDeleteSeconds: 0, delayAfterFailureSeconds: 180, budget: "10%", budgets: [], ...scaleDown },
  };
}

/** A node group's `kubernetes` block for the real-cluster tests: no join (no VM boots there), no taints. */
export function testGroupKubernetes(o: Partial<NonNullable<GroupConfig["kubernetes"]>> = {}): NonNullable<GroupConfig["kubernetes"]> {
  return {
    join: "none",
    labels: {},
    taints: [],
    maxPods: 110,
    reservedCpuMillis: 0,
    reservedMemoryMiB: 0,
    tokenGroups: ["system:bootstrappers:kubeadm:default-node-token"],
    tokenTtlSeconds: 900,
    autoscaling: { maxNodeProvisionSeconds: 900 },
    ...o,
  };
}

export { ManualTimers, settle } from "../testing/manual-timers.js";
