/**
 * The node lifecycle of a Kubernetes node group, as lifecycle hooks (applier/lifecycle.ts) around each VM:
 *
 *   before-create `kubernetes-join`:  mint the VM's own bootstrap token through the API and put its join (kubeadm
 *                                      JoinConfiguration, or k3s / rke2 agent config) into its user-data
 *   until-ready   `kubernetes-node`:  wait for the Node whose spec.providerID is the VM's to be Ready, within the
 *                                      group's max provision time (readiness.timeoutSeconds, counted from the join);
 *                                      then delete the token (the kubelet has its own credentials by then). A VM
 *                                      cluster-autoscaler deleted meanwhile (DeleteNodes) is given up at once.
 *   before-destroy `kubernetes-node`: cordon the VM's Node, if it has one (cluster-autoscaler has drained what it
 *                                      deletes; a VM premiscale removes itself, e.g. a half-made one, gets no new pods)
 *   after-destroy `kubernetes-node`:  delete the VM's Node (cluster-autoscaler never does) and any token left
 *
 * Every step is idempotent (a crashed apply runs them again): a Node or Secret already gone is success.
 */
import type { Config, GroupConfig } from "../config/types.js";
import type { HookContext, LifecycleHook } from "../applier/lifecycle.js";
import { bootstrapTokenSecret, joinParts, newBootstrapToken, TOKEN_LABELS, withJoin } from "./join-config.js";
import { readyCondition, statusMessage, type KubeApi, type KubeNode } from "./kube-api.js";
import { providerIdOf } from "./provider-id.js";

/** What the hooks need. */
export interface NodeHooksDeps {
  config: Config;
  api: KubeApi;
  /** host:port and CA pin for kubeadm's discovery. */
  apiServerEndpoint: string;
  caCertHash: string;
  /** Whether cluster-autoscaler named the VM in DeleteNodes (read while waiting). @default never */
  isVictim?: (group: string, uuid: string) => Promise<boolean>;
  /** How often the Node is looked for. @default 2000 */
  pollMs?: number;
  now?: () => Date;
}

/**
 * Nodes by providerID, one list call per `pollMs` however many VMs wait (a wait per VM would list the cluster's
 * Nodes once per VM per poll).
 */
class NodeLookup {
  private cached: { at: number; nodes: Promise<KubeNode[]> } | null = null;
  constructor(
    private readonly api: KubeApi,
    private readonly maxAgeMs: number,
  ) {}

  private list(): Promise<KubeNode[]> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at >= this.maxAgeMs) {
      const nodes = this.api.request("GET", "/api/v1/nodes").then((r) => {
        if (r.status !== 200) throw new Error(`listing Nodes: ${statusMessage(r)}`);
        return (r.body.items ?? []) as KubeNode[];
      });
      this.cached = { at: now, nodes };
      nodes.catch(() => (this.cached = null));
    }
    return this.cached.nodes;
  }

  async byProviderId(id: string, fresh = false): Promise<KubeNode[]> {
    if (fresh) this.cached = null;
    return (await this.list()).filter((n) => n.spec?.providerID === id);
  }
}

/** Deletes the token Secrets premiscale minted for one VM (found by label, so also after a restart). */
async function deleteTokens(api: KubeApi, uuid: string): Promise<void> {
  const r = await api.request("GET", `/api/v1/namespaces/kube-system/secrets?labelSelector=${encodeURIComponent(`${TOKEN_LABELS.instance}=${uuid}`)}`);
  if (r.status !== 200) throw new Error(`listing the VM's bootstrap tokens: ${statusMessage(r)}`);
  for (const s of (r.body.items ?? []) as { metadata: { name: string } }[]) {
    const d = await api.request("DELETE", `/api/v1/namespaces/kube-system/secrets/${s.metadata.name}`);
    if (d.status !== 200 && d.status !== 404) throw new Error(`deleting bootstrap token Secret ${s.metadata.name}: ${statusMessage(d)}`);
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => (clearTimeout(t), signal.removeEventListener("abort", done), resolve());
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });

/** The hooks of each group: the three above for Kubernetes node groups, none for the others. */
export function nodeHooks(deps: NodeHooksDeps): (group: string) => LifecycleHook[] {
  const now = deps.now ?? (() => new Date());
  const pollMs = deps.pollMs ?? 2000;
  const nodes = new NodeLookup(deps.api, pollMs);
  // When each VM's join was prepared: its max provision time counts from there (in memory: after a restart the
  // VMs of an interrupted apply are replaced, and their new creates start again).
  const started = new Map<string, number>();
  const callMs = (deps.config.kubernetes?.callTimeoutSeconds ?? 10) * 1000;

  const join = (g: GroupConfig): LifecycleHook => ({
    name: "kubernetes-join",
    point: "before-create",
    step: "join-token",
    defaultResult: "abandon",
    timeoutMs: () => 3 * callMs + 5000,
    async run(ctx: HookContext) {
      started.set(ctx.vm.uuid, Date.now());
      const k = g.kubernetes!;
      const providerId = providerIdOf(g.name, ctx.vm.uuid);
      let token = newBootstrapToken(now(), k.tokenTtlSeconds);
      if (k.join !== "none") {
        // A 36^6 id space: a collision is unlikely, but the API answers 409 and a new id is cheap.
        for (let attempt = 1; ; attempt++) {
          const secret = bootstrapTokenSecret(token, { groups: k.tokenGroups, group: g.name, uuid: ctx.vm.uuid, description: `premiscale: ${ctx.vm.address} (${providerId})` });
          const r = await deps.api.request("POST", "/api/v1/namespaces/kube-system/secrets", secret);
          if (r.status === 201) break;
          if (r.status !== 409 || attempt >= 3) {
            // Never the body: it would echo the Secret.
            throw new Error(`minting the bootstrap token for ${ctx.vm.address} failed: HTTP ${r.status}: ${String(r.body?.reason ?? "")}${typeof r.body?.message === "string" ? ` ${r.body.message.replaceAll(token.secret, "<secret>")}` : ""}`);
          }
          token = newBootstrapToken(now(), k.tokenTtlSeconds);
        }
      }
      const parts = joinParts({ group: g, nodeName: ctx.vm.name, providerId, token, apiServerEndpoint: deps.apiServerEndpoint, caCertHash: deps.caCertHash });
      return { result: "continue", spec: { ...ctx.spec!, userData: withJoin(ctx.spec!.userData, parts) } };
    },
  });

  const ready = (g: GroupConfig): LifecycleHook => ({
    name: "kubernetes-node",
    point: "until-ready",
    step: "node-ready",
    defaultResult: "abandon",
    // The wait ends itself at the group's max provision time; this only catches a wait that hangs.
    timeoutMs: () => g.readiness.timeoutSeconds * 1000 + 2 * callMs + 5000,
    async run(ctx: HookContext) {
      const providerId = providerIdOf(g.name, ctx.vm.uuid);
      const deadline = (started.get(ctx.vm.uuid) ?? Date.now()) + g.readiness.timeoutSeconds * 1000;
      let seen = "no Node with that providerID has registered";
      for (;;) {
        if (ctx.signal.aborted) return { result: "abandon", message: `stopped waiting for the node of ${ctx.vm.address}: apply was interrupted` };
        if (await deps.isVictim?.(g.name, ctx.vm.uuid)) {
          return { result: "abandon", message: `cluster-autoscaler deleted ${ctx.vm.address} (DeleteNodes) before its node became Ready` };
        }
        try {
          const [node] = await nodes.byProviderId(providerId);
          const c = node ? readyCondition(node) : undefined;
          if (node && c?.status === "True") {
            await deleteTokens(deps.api, ctx.vm.uuid).catch(() => undefined); // it expires anyway
            started.delete(ctx.vm.uuid);
            return { result: "continue", message: `node ${node.metadata.name} is Ready` };
          }
          if (node) seen = `node ${node.metadata.name} registered but is not Ready${c ? ` (${c.reason ?? c.status}${c.message ? `: ${c.message}` : ""})` : ""}`;
        } catch (e) {
          seen = `the API server did not answer: ${(e as Error).message}`;
        }
        if (Date.now() >= deadline) {
          started.delete(ctx.vm.uuid);
          return {
            result: "abandon",
            message: `the node of ${ctx.vm.address} (providerID ${providerId}) did not become Ready within ${g.readiness.timeoutSeconds} s (readiness.timeoutSeconds, the max provision time): ${seen}`,
          };
        }
        await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())), ctx.signal);
      }
    },
  });

  const cordon = (g: GroupConfig): LifecycleHook => ({
    name: "kubernetes-node",
    point: "before-destroy",
    step: "node-cordon",
    // Cordoning only keeps new pods off a VM that goes anyway: never a reason to keep it.
    defaultResult: "continue",
    timeoutMs: () => 2 * callMs + 5000,
    async run(ctx: HookContext) {
      try {
        for (const n of await nodes.byProviderId(providerIdOf(g.name, ctx.vm.uuid), true)) {
          if (n.spec?.unschedulable) continue;
          const r = await deps.api.request("PATCH", `/api/v1/nodes/${encodeURIComponent(n.metadata.name)}`, { spec: { unschedulable: true } });
          if (r.status !== 200 && r.status !== 404) return { result: "continue", message: `could not cordon Node ${n.metadata.name}: ${statusMessage(r)}` };
        }
      } catch (e) {
        return { result: "continue", message: `could not cordon the VM's Node: ${(e as Error).message}` };
      }
      return { result: "continue" };
    },
  });

  const cleanup = (g: GroupConfig): LifecycleHook => ({
    name: "kubernetes-node",
    point: "after-destroy",
    step: "node-delete",
    defaultResult: "abandon",
    timeoutMs: () => 4 * callMs + 5000,
    async run(ctx: HookContext) {
      const providerId = providerIdOf(g.name, ctx.vm.uuid);
      started.delete(ctx.vm.uuid);
      for (const n of await nodes.byProviderId(providerId, true)) {
        const r = await deps.api.request("DELETE", `/api/v1/nodes/${encodeURIComponent(n.metadata.name)}`);
        if (r.status !== 200 && r.status !== 404) throw new Error(`deleting Node ${n.metadata.name}: ${statusMessage(r)}`);
      }
      await deleteTokens(deps.api, ctx.vm.uuid);
      return { result: "continue" };
    },
  });

  const byGroup = new Map<string, LifecycleHook[]>();
  for (const g of deps.config.groups) if (g.kubernetes) byGroup.set(g.name, [join(g), ready(g), cordon(g), cleanup(g)]);
  return (group) => byGroup.get(group) ?? [];
}
