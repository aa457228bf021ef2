import type { GroupState, History, Instance, RolloutState, State, TemplateRecord } from "./types.js";

/** Who holds a lock, as recorded in it (Terraform's lock info). */
export interface LockInfo {
  ID: string;
  Operation: string;
  /** `user@host`. */
  Who: string;
  Version: string;
  Created: string;
  Pid: number;
  Host: string;
  /**
   * The leader election Lease (`namespace/name`) the taker held when it took the lock (premiscale serve replicas).
   * A later leader of that Lease takes such a lock over: its holder's term has ended, and a pid from another pod
   * (another host, another PID namespace) says nothing about whether it still runs.
   */
  Leader?: string;
}

/** Options of {@link StateStore.lock}. */
export interface LockOptions {
  /**
   * The Lease (`namespace/name`) the caller holds as leader, recorded in the lock. A lock recorded under the same
   * Lease that this process does not hold was taken by a previous leader and is removed as stale.
   */
  leaderOf?: string;
}

/** Progress notes a store reports (the CLI decides whether to print them). */
export type StateEvent =
  | { type: "lock_wait"; holder: LockInfo }
  | { type: "lock_stale_removed"; holder: LockInfo }
  | { type: "recovered_uncommitted"; files: string[] }
  /** Temporary files of writers that died mid-write (paths relative to the state directory), now removed. */
  | { type: "leftovers_removed"; files: string[] };

/**
 * A held lock on the state: the only way to change it. Every write is atomic (write-then-rename) and raises the
 * serial; `commit` records everything written under this lock as one commit.
 */
export interface StateLock {
  readonly info: LockInfo;
  /** The state as it is now, including writes made under this lock. */
  current(): State;
  /** Creates the state with this lineage when none exists yet; otherwise returns it unchanged. */
  init(lineage: string): Promise<State>;
  /** Adds or replaces an instance of a group. */
  putInstance(group: string, instance: Instance): Promise<void>;
  /** Removes an instance (no error when it is not there). */
  removeInstance(group: string, name: string): Promise<void>;
  /** Replaces a group's scaling history (a group with neither instances nor history has no file). */
  putHistory(group: string, history: History): Promise<void>;
  /** Replaces (or, with undefined, removes) where the group's template roll-out stands. */
  putRollout(group: string, rollout: RolloutState | undefined): Promise<void>;
  /** Replaces (or, with undefined, removes) the group's template record; it alone does not keep a group's file. */
  putTemplate(group: string, template: TemplateRecord | undefined): Promise<void>;
  /** Commits what changed under this lock; returns the commit id, or null when nothing changed. */
  commit(message: string): Promise<string | null>;
  release(): Promise<void>;
}

/** Where state is kept. The git-backed store is the real one; tests may use others through the same contract. */
export interface StateStore {
  /** Reads state without locking; null when none exists yet. */
  read(): Promise<State | null>;
  /** Takes the lock, retrying until `timeoutMs`; fails naming the holder. */
  lock(operation: string, timeoutMs: number, onEvent?: (e: StateEvent) => void, options?: LockOptions): Promise<StateLock>;
  /** Removes a lock by its ID, whoever holds it. */
  forceUnlock(id: string): Promise<LockInfo>;
  /** The lock currently held, if any. */
  lockHolder(): Promise<LockInfo | null>;
}

/** Inserts or replaces an instance, keeping the group's instances sorted by name. */
export function withInstance(group: GroupState, instance: Instance): GroupState {
  const instances = group.instances.filter((i) => i.name !== instance.name);
  instances.push(instance);
  instances.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { ...group, instances };
}
