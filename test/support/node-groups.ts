/**
 * Helpers of the Kubernetes node-group tests (issue 11): a config whose node groups boot the busybox test guest on
 * the real libvirtd and join the test cluster, `premiscale serve` running it, and what the tests look at afterwards
 * (Nodes by providerID, bootstrap token Secrets, git state commits, leftovers).
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { InstalledGuest } from "./guests.js";
import type { KubeCluster } from "./kube-cluster.js";
import { leftovers, virsh } from "./libvirt.js";
import { spawnPremiscale, type ServeProcess } from "./serve.js";

/** One node group of the test config. */
export interface TestNodeGroup {
  name: string;
  max: number;
  min?: number;
  /** @default 1 */
  vcpus?: number;
  /** @default the guest's memory */
  memoryMiB?: number;
  /** Node labels besides KWOK's `type: kwok`. */
  labels?: Record<string, string>;
  /** readiness.timeoutSeconds (max provision time). @default 120 */
  timeoutSeconds?: number;
  tokenTtlSeconds?: number;
  /** Extra YAML lines of the group's kubernetes block. */
  kubernetes?: string;
}

/** Options of {@link nodeGroupConfigText}. */
export interface NodeGroupConfigOptions {
  guest: InstalledGuest;
  /** The check-in server's port (guests reach it as 10.0.2.2). */
  checkInPort: number;
  grpcPort: number;
  kubeconfig: string;
  groups: TestNodeGroup[];
  /** Extra YAML lines of the top-level kubernetes block. */
  kubernetes?: string;
  /** state.path (e.g. one absolute directory that several replicas share). @default ./state */
  statePath?: string;
  /** Mutual TLS of the externalgrpc listener (PEM file paths). */
  tls?: { cert: string; key: string; clientCa: string; allowedClients: string[] };
}

/** The config: one host (qemu:///system, plain QEMU), node groups of busybox VMs labelled for KWOK. */
export function nodeGroupConfigText(o: NodeGroupConfigOptions): string {
  const g = o.guest;
  const groups = o.groups
    .map(
      (x) => `  - name: ${x.name}
    min: ${x.min ?? 0}
    max: ${x.max}
    hosts: [local]
    readiness:
      checkIn: true
      timeoutSeconds: ${x.timeoutSeconds ?? 120}
    template:
      vcpus: ${x.vcpus ?? 1}
      memoryMiB: ${x.memoryMiB ?? g.memoryMiB}
      disk:
        baseImage: ${g.baseImage}
        sizeGiB: ${g.minDiskGiB}
      boot:
        kernel: ${JSON.stringify(g.kernel)}
        initrd: ${JSON.stringify(g.initrd)}
        cmdline: ${JSON.stringify(g.cmdline)}
      userData: |
        #cloud-config
        write_files:
          - path: /etc/motd
            content: "a premiscale node\\n"
    kubernetes:
      labels: ${JSON.stringify({ type: "kwok", ...x.labels })}${x.tokenTtlSeconds ? `\n      tokenTtlSeconds: ${x.tokenTtlSeconds}` : ""}${x.kubernetes ? `\n${x.kubernetes.trim().split("\n").map((l) => `      ${l}`).join("\n")}` : ""}`,
    )
    .join("\n");
  return `version: v1alpha1
state:
  path: ${JSON.stringify(o.statePath ?? "./state")}
server:
  listen: 127.0.0.1:${o.checkInPort}
metrics:
  store: { type: prometheus, url: "http://127.0.0.1:9" }
kubernetes:
  kubeconfig: ${JSON.stringify(o.kubeconfig)}
  externalGrpc:
    listen: 127.0.0.1:${o.grpcPort}${o.tls ? `\n    tls: ${JSON.stringify(o.tls)}` : ""}
  debounceMs: 100
  resyncSeconds: 10${o.kubernetes ? `\n${o.kubernetes.trim().split("\n").map((l) => `  ${l}`).join("\n")}` : ""}
hosts:
  - name: local
    kind: libvirt
    uri: qemu:///system
    pool: ${g.pool}
    accelerator: qemu
    cpuOvercommit: 16
    maxParallel: 4
    callTimeoutSeconds: 60
groups:
${groups}
`;
}

/** Starts `premiscale serve` (the built CLI) in `dir` and waits until it serves. */
export async function startServe(dir: string): Promise<ServeProcess> {
  const serve = spawnPremiscale(dir, ["serve", "--log-level", "debug"], {}, { dieWithParent: true });
  await serve.waitForLog((l) => l.event === "serving", 60_000);
  return serve;
}

/** A Node as the tests read it. */
export interface TestNode {
  metadata: { name: string; labels?: Record<string, string>; creationTimestamp: string; deletionTimestamp?: string };
  spec?: { providerID?: string; taints?: { key: string; effect: string }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

/** The cluster's Nodes whose providerID is of `group`. */
export async function nodesOf(cluster: KubeCluster, group: string): Promise<TestNode[]> {
  const r = await cluster.request("GET", "/api/v1/nodes");
  return (r.body.items as TestNode[]).filter((n) => n.spec?.providerID?.startsWith(`premiscale://${group}/`));
}

/** Whether a Node is Ready. */
export const isReady = (n: TestNode): boolean => n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/** Names of the bootstrap token Secrets premiscale minted for a group's VMs. */
export async function tokenSecretsOf(cluster: KubeCluster, group: string): Promise<string[]> {
  const r = await cluster.request("GET", `/api/v1/namespaces/kube-system/secrets?labelSelector=${encodeURIComponent(`premiscale.io/group=${group}`)}`);
  return (r.body.items as { metadata: { name: string } }[]).map((s) => s.metadata.name);
}

/** The running domains named after a group (`<group>-<8 hex>`). */
export async function domainsOf(group: string): Promise<string[]> {
  return (await virsh("list", "--name")).split("\n").map((s) => s.trim()).filter((n) => new RegExp(`^${group}-[0-9a-f]{8}$`).test(n));
}

/** The instances state records for a group now, with their status (read from the state files, as on disk). */
export async function stateInstances(dir: string, group: string): Promise<{ name: string; uuid: string; status: string }[]> {
  try {
    return JSON.parse(await readFile(join(dir, "state", "groups", `${group}.json`), "utf8")).instances;
  } catch {
    return [];
  }
}

/** git log of the state repository: one entry per commit, subject and body. */
export function stateCommits(dir: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    execFile("git", ["-C", join(dir, "state"), "log", "--format=%B%x00"], { timeout: 20_000 }, (e, out) => (e ? reject(e) : resolve(out.split("\0").map((s) => s.trim()).filter(Boolean)))),
  );
}

/** Everything of the state repository's history, diffs included (to prove a secret never reached it). */
export function stateHistory(dir: string): Promise<string> {
  return new Promise((resolve, reject) => execFile("git", ["-C", join(dir, "state"), "log", "-p", "--all"], { timeout: 20_000, maxBuffer: 64 << 20 }, (e, out) => (e ? reject(e) : resolve(out))));
}

/** Runs every clean-up step even when one fails (each is logged), so a cluster or a serve is never left behind. */
export async function cleanUp(steps: [string, () => Promise<unknown> | unknown][]): Promise<void> {
  for (const [what, step] of steps) {
    try {
      await step();
    } catch (e) {
      console.warn(`clean-up: ${what} failed: ${(e as Error).message}`);
    }
  }
}

/** Destroys what a failed test left of these groups on the libvirtd (domains and volumes): a safety net only. */
export async function removeLeftovers(groups: string[]): Promise<void> {
  for (const g of groups) {
    for (const name of await leftovers(`${g}-`)) {
      if (/\.(qcow2|iso)$/.test(name)) await virsh("vol-delete", "--pool", "default", name).catch(() => undefined);
      else {
        await virsh("destroy", name).catch(() => undefined);
        await virsh("undefine", name).catch(() => undefined);
      }
    }
  }
}

/**
 * A Deployment of `replicas` pods that each need most of one 1-vCPU node (600m, or `cpu`): one pod per node, on the
 * nodes `nodeSelector` picks (and `tolerations` allow). No image is ever pulled: KWOK only moves the pods through
 * their phases.
 */
export function oneNodePodDeployment(o: { name: string; namespace: string; replicas: number; nodeSelector: Record<string, string>; cpu?: string; tolerations?: { key: string; operator: string; value?: string; effect: string }[] }) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: { app: o.name } },
      template: {
        metadata: { labels: { app: o.name } },
        spec: {
          nodeSelector: o.nodeSelector,
          ...(o.tolerations ? { tolerations: o.tolerations } : {}),
          terminationGracePeriodSeconds: 0,
          containers: [{ name: "app", image: "registry.invalid/premiscale/app:test", resources: { requests: { cpu: o.cpu ?? "600m", memory: "32Mi" } } }],
        },
      },
    },
  };
}

/** Names of the Running pods (not being deleted) labelled app=`app` in `namespace`. */
export async function runningPodNames(cluster: KubeCluster, namespace: string, app: string): Promise<string[]> {
  const r = await cluster.request("GET", `/api/v1/namespaces/${namespace}/pods?labelSelector=app%3D${encodeURIComponent(app)}`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return r.body.items.filter((p: any) => p.status?.phase === "Running" && !p.metadata.deletionTimestamp).map((p: any) => p.metadata.name);
}
