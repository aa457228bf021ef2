/**
 * Where cluster-autoscaler's intents live between its call and the apply that carries them out: one small JSON file
 * per node group, `<state>/.premiscale/kubernetes/<group>.json` (beside the apply journal: this machine's own,
 * never committed), written atomically and synced before the call is answered. So an intent that was answered is
 * never lost: a premiscale restarted at any moment reads the target, the named victims and the failed instances back
 * and carries on. The applied changes are what git state records, one commit per apply, with the intents as reason.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PremiscaleError } from "../config/errors.js";
import { writeFileAtomic } from "../state/atomic-file.js";

/** The only intent file version this release reads and writes. */
export const INTENT_VERSION = 1;

/** What cluster-autoscaler (or premiscale, reporting back) did to a group's intent. */
export type IntentOpKind = "IncreaseSize" | "DeleteNodes" | "DecreaseTargetSize";

/** One change of an intent, kept until an apply records it (the commit's reason). */
export interface IntentOp {
  seq: number;
  at: string;
  op: IntentOpKind;
  /** Change of the target (DeleteNodes: minus the nodes that counted). */
  delta: number;
  /** DeleteNodes: the instance names (or instance ids of failed ones) named. */
  nodes?: string[];
  /** The target after it. */
  target: number;
}

/** A VM cluster-autoscaler asked to delete (DeleteNodes) that still exists. */
export interface Victim {
  uuid: string;
  name: string;
}

/**
 * An instance slot reported to cluster-autoscaler as a failed create (an `Instance` in state Creating with error
 * info), until cluster-autoscaler deletes it with DeleteNodes: a VM given up because it never became a Ready node
 * or its create failed (`Other`), or a VM no host had room for (`OutOfResources`; its uuid names no VM). It counts
 * towards the target, and no VM is made for it: cluster-autoscaler backs off the group and then deletes it.
 */
export interface FailedInstance {
  uuid: string;
  errorClass: "OutOfResources" | "Other";
  /** Machine-readable, e.g. `premiscale.NoRoom`, `premiscale.NodeNotReady`, `premiscale.CreateFailed`. */
  errorCode: string;
  message: string;
  at: string;
}

/** One node group's intent. */
export interface GroupIntent {
  group: string;
  /** The size cluster-autoscaler wants (NodeGroupTargetSize). */
  target: number;
  /** VMs named by DeleteNodes and not destroyed yet. */
  remove: Victim[];
  failed: FailedInstance[];
  /** Changes not yet recorded by an apply. */
  pending: IntentOp[];
  /** Raised by one per change; an apply records the ops up to the seq it planned with. */
  seq: number;
  updatedAt: string;
}

/** The intent a group has before cluster-autoscaler ever changed it. */
export function initialIntent(group: string, target: number): GroupIntent {
  return { group, target, remove: [], failed: [], pending: [], seq: 0, updatedAt: new Date(0).toISOString() };
}

/** Intent files: where they are, and reading them without the store (a `premiscale plan` in another process). */
export function intentDir(runtimeDir: string): string {
  return join(runtimeDir, "kubernetes");
}

function parseIntent(text: string, file: string): GroupIntent {
  let data: Partial<GroupIntent> & { version?: number };
  try {
    data = JSON.parse(text) as typeof data;
  } catch (e) {
    throw new PremiscaleError(`${file} is not valid JSON: ${(e as Error).message}`, "intent_corrupt", "the file is written atomically, so this is damage from outside; remove it to let the group start again from the VMs it has");
  }
  if (data.version !== INTENT_VERSION || typeof data.group !== "string" || typeof data.target !== "number") {
    throw new PremiscaleError(`${file}: not a version ${INTENT_VERSION} intent file`, "intent_corrupt", "use the premiscale release that wrote it, or remove it");
  }
  return {
    group: data.group,
    target: data.target,
    remove: data.remove ?? [],
    failed: data.failed ?? [],
    pending: data.pending ?? [],
    seq: data.seq ?? 0,
    updatedAt: data.updatedAt ?? new Date(0).toISOString(),
  };
}

/** Every group's intent as written now (groups cluster-autoscaler never changed have no file). */
export async function readIntents(runtimeDir: string): Promise<Map<string, GroupIntent>> {
  const dir = intentDir(runtimeDir);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".json"));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw e;
  }
  const out = new Map<string, GroupIntent>();
  for (const n of names) {
    const file = join(dir, n);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue; // removed meanwhile
      throw e;
    }
    const intent = parseIntent(text, file);
    out.set(intent.group, intent);
  }
  return out;
}

/**
 * The intents of one premiscale serve: read once at start, then changed only through `update`, which writes the
 * group's file (temporary file, fsync, rename) before it resolves. Updates run one at a time, in call order.
 */
export class IntentStore {
  private readonly intents = new Map<string, GroupIntent>();
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(readonly dir: string) {}

  /** Opens the store of a state directory's runtime folder, reading what earlier runs wrote. */
  static async open(runtimeDir: string): Promise<IntentStore> {
    const store = new IntentStore(intentDir(runtimeDir));
    for (const [g, intent] of await readIntents(runtimeDir)) store.intents.set(g, intent);
    return store;
  }

  /** A group's intent as last written, or undefined when cluster-autoscaler never changed it. */
  get(group: string): GroupIntent | undefined {
    const i = this.intents.get(group);
    return i ? structuredClone(i) : undefined;
  }

  /** Every written intent (copies). */
  snapshot(): Map<string, GroupIntent> {
    return new Map([...this.intents].map(([g, i]) => [g, structuredClone(i)]));
  }

  /**
   * WARNING: the durable write behind cluster-autoscaler's calls. `change` gets the current intent (`base` when none
   * was written) and returns the new one, or null to change nothing; it may throw to refuse (nothing is written).
   * Resolves with the intent as written once it is on disk.
   */
  update<T extends GroupIntent | null>(group: string, base: () => GroupIntent, change: (current: GroupIntent) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const current = this.intents.get(group) ?? base();
      const next = change(structuredClone(current));
      if (next === null) return next;
      const written = { ...next, updatedAt: new Date().toISOString() };
      await writeFileAtomic(join(this.dir, `${group}.json`), JSON.stringify({ version: INTENT_VERSION, ...written }, null, 2) + "\n", { mode: 0o600, createDirs: true });
      this.intents.set(group, written);
      return structuredClone(written) as T;
    };
    const result = this.chain.then(run, run);
    this.chain = result.catch(() => undefined);
    return result;
  }
}
