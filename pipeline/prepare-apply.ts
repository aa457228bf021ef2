/**
 * What the applier needs for one apply of a config, built in one place so `premiscale apply` and the reconciler
 * apply alike: the journal at `<state>/.premiscale/journal.jsonl`, readiness (the check-in server) when a create
 * waits for its VM, the groups' own lifecycle hooks (hooks/), each host's `maxParallel`.
 */
import { join } from "node:path";
import { readinessHooks, type ApplyDeps } from "../applier/apply-plan.js";
import { FileJournal, readInterrupted, type InterruptedApply } from "../applier/journal.js";
import type { LifecycleHook } from "../applier/lifecycle.js";
import type { Config } from "../config/types.js";
import { userHooks } from "../hooks/user-hooks.js";
import type { Plan } from "../planner/plan.js";
import type { Provider } from "../providers/provider.js";
import type { ServerLogLine } from "../server/check-in-server.js";
import { CheckInLedger } from "../server/check-in-ledger.js";
import { startReadiness } from "../server/readiness.js";
import { RUNTIME_DIR } from "../state/git-state-store.js";
import { kubernetesHooks } from "./kubernetes-sources.js";
import type { StateLock } from "../state/state-store.js";

/** This machine's own, never committed files beside the state: journal, server secret, check-in records. */
export function runtimeDir(config: Config): string {
  return join(config.state.path, RUNTIME_DIR);
}

/** The apply journal (see applier/journal.ts). */
export function journalPath(config: Config): string {
  return join(runtimeDir(config), "journal.jsonl");
}

/** Applies recorded in the journal that never ended (an apply that crashed or was killed). */
export function interruptedApplies(config: Config): InterruptedApply[] {
  return readInterrupted(journalPath(config));
}

/** The deps of one apply and how to end them. */
export interface PreparedApply {
  deps: ApplyDeps;
  /** `own`: this process serves check-ins; `shared`: `premiscale serve` does; null: no create waits for one. */
  readiness: "own" | "shared" | null;
  /**
   * Closes the journal and stops the check-in server. `ended`: `applyPlan` returned, so the journal is rotated to
   * `journal.jsonl.last`; false (it threw) keeps it, so the next apply reports what was in flight.
   */
  close(ended: boolean): Promise<void>;
}

/**
 * Opens the journal and, when a create or a take (a stopped warm-pool VM started) of `plan` waits for its VM, starts
 * readiness. Call `close` in a `finally`. `serverLog` hears the check-in server's lines.
 */
export async function prepareApply(
  config: Config,
  plan: Plan,
  o: {
    providers: ReadonlyMap<string, Provider>;
    lock: StateLock;
    env: Record<string, string | undefined>;
    serverLog?: (line: ServerLogLine) => void;
    /** Hooks between the check-in wait's and the users'; default: the Kubernetes node hooks when the plan changes a node group. */
    hooks?: (group: string) => readonly LifecycleHook[];
  },
): Promise<PreparedApply> {
  // Users' hooks of the groups this plan changes; a hook's secret that is not set fails here, before anything changed.
  const user = userHooks(config, new Set(plan.changes.map((c) => c.group)), o.env);
  const nodeGroup = new Set(config.groups.filter((g) => g.kubernetes).map((g) => g.name));
  const kube = o.hooks ?? (plan.changes.some((c) => nodeGroup.has(c.group)) ? kubernetesHooks(config) : () => []);
  const readiness = plan.changes.some((c) => (c.action === "create" || c.action === "take") && c.ready)
    ? await startReadiness({ server: config.server, runtimeDir: runtimeDir(config), logger: o.serverLog ?? (() => undefined) })
    : null;
  let journal: FileJournal;
  try {
    journal = new FileJournal(journalPath(config));
  } catch (e) {
    await readiness?.close();
    throw e;
  }
  return {
    deps: {
      providers: o.providers,
      lock: o.lock,
      hostLimits: new Map(config.hosts.map((h) => [h.name, h.maxParallel])),
      env: o.env,
      journal,
      // The check-in wait first, then the node joining the cluster (node groups), then the group's own hooks: a
      // launching hook runs once the VM is up, has checked in and (for a node group) its Node is Ready.
      hooks: (group) => [...(readiness ? readinessHooks(readiness) : []), ...kube(group), ...(user.get(group) ?? [])],
      forget: (uuid) => new CheckInLedger(runtimeDir(config)).forget(uuid),
    },
    readiness: readiness?.mode ?? null,
    close: async (ended) => {
      journal.close({ rotate: ended });
      await readiness?.close();
    },
  };
}
