/**
 * The node groups' part of every plan and apply (issue 11): their decisions come from cluster-autoscaler's intents
 * recorded beside the state (`kubernetesSources`: plan, apply and serve's loop alike, so `premiscale plan` shows
 * what the loop would do), and their VMs join and leave the cluster through the node lifecycle hooks
 * (`kubernetesHooks`). The loop itself is autoscaler-provider.ts.
 */
import { join } from "node:path";
import type { LifecycleHook } from "../applier/lifecycle.js";
import type { KubernetesConfig } from "../config/kubernetes.js";
import type { Config } from "../config/types.js";
import { AUTOSCALER_SOURCE, autoscalerSource } from "../kubernetes/autoscaler-source.js";
import { readIntents } from "../kubernetes/intent-store.js";
import { openKubeApi } from "../kubernetes/kube-api.js";
import { nodeHooks } from "../kubernetes/node-hooks.js";
import type { DecisionSource } from "../policies/decision.js";
import { RUNTIME_DIR } from "../state/git-state-store.js";

/** The node groups of a config (groups with a `kubernetes` block). */
export function nodeGroupNames(config: Config): string[] {
  return config.groups.filter((g) => g.kubernetes).map((g) => g.name);
}

/**
 * The decision source of the node groups from the intents recorded beside `config`'s state (none when the config
 * has no node group). Every plan of a node group goes through it, so `premiscale plan` shows what the loop would do.
 */
export async function kubernetesSources(config: Config): Promise<DecisionSource[]> {
  if (nodeGroupNames(config).length === 0) return [];
  return [autoscalerSource(await readIntents(join(config.state.path, RUNTIME_DIR)))];
}

/** Whether a source list already has the node groups' source. */
export function hasAutoscalerSource(sources: readonly DecisionSource[] | undefined): boolean {
  return (sources ?? []).some((s) => s.name === AUTOSCALER_SOURCE);
}

/** The node lifecycle hooks for `config`'s node groups (kubernetes/node-hooks.ts), victims read from the intents. */
export function kubernetesHooks(config: Config): (group: string) => LifecycleHook[] {
  if (!config.kubernetes) return () => [];
  const api = openKubeApi(config.kubernetes);
  return nodeHooks({
    config,
    api,
    apiServerEndpoint: api.apiServerEndpoint,
    caCertHash: api.caCertHash,
    isVictim: async (group, uuid) => ((await readIntents(join(config.state.path, RUNTIME_DIR))).get(group)?.remove ?? []).some((r) => r.uuid === uuid),
  });
}


/** The kubernetes block with its file paths relative (`rel`), so the config digest is the same in every clone. */
export function portableKubernetes(k: KubernetesConfig, rel: (p: string) => string): KubernetesConfig {
  const tls = k.externalGrpc.tls;
  return {
    ...k,
    kubeconfig: rel(k.kubeconfig),
    externalGrpc: { ...k.externalGrpc, tls: tls ? { ...tls, cert: rel(tls.cert), key: rel(tls.key), clientCa: rel(tls.clientCa) } : null },
  };
}
