import { randomUUID } from "node:crypto";
import { link, mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import { join, relative } from "node:path";
import { StateError } from "../config/errors.js";
import { VERSION } from "../config/version.js";
import { processAlive, sweepTempFiles, tempPathFor, writeFileAtomic } from "./atomic-file.js";
import { commitIdentity, git } from "./git.js";
import { withInstance, type LockInfo, type LockOptions, type StateEvent, type StateLock, type StateStore } from "./state-store.js";
import { STATE_VERSION, type GroupState, type History, type Instance, type RolloutState, type State, type TemplateRecord } from "./types.js";

const ROOT_FILE = "state.json";
const GROUPS_DIR = "groups";
const LOCK_FILE = ".premiscale.lock";
/** IDs of the locks this process holds now (any store): never taken over as a previous leader's. */
const heldHere = new Set<string>();
/**
 * This machine's own files beside the state, never committed: the apply journal, the check-in server's secret and
 * its check-in records.
 */
export const RUNTIME_DIR = ".premiscale";

/**
 * State in a directory tracked by git: `state.json` holds version, lineage and serial; `groups/<name>.json` holds
 * one group's instances, so a change to one group rewrites one small file and git re-hashes only that blob.
 * The directory is `git init`ed when it is not inside a repository already (e.g. the config repository).
 */
export class GitStateStore implements StateStore {
  constructor(readonly dir: string) {}

  async read(): Promise<State | null> {
    let rootText: string;
    try {
      rootText = await readFile(join(this.dir, ROOT_FILE), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new StateError(`cannot read state in ${this.dir}: ${(e as Error).message}`, "state_unreadable");
    }
    const root = parseJson(rootText, join(this.dir, ROOT_FILE)) as Partial<State>;
    if (root.version !== STATE_VERSION) {
      throw new StateError(
        `${join(this.dir, ROOT_FILE)}: state version ${String(root.version)} is not ${STATE_VERSION}`,
        "state_version",
        "use the premiscale release that wrote this state",
      );
    }
    if (typeof root.lineage !== "string" || typeof root.serial !== "number") {
      throw new StateError(`${join(this.dir, ROOT_FILE)}: lineage or serial missing`, "state_corrupt");
    }
    let files: string[] = [];
    try {
      files = (await readdir(join(this.dir, GROUPS_DIR))).filter((f) => f.endsWith(".json")).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    // Read concurrently: at fleet size this is a thousand small files.
    const groups = await Promise.all(
      files.map(async (f) => {
        const path = join(this.dir, GROUPS_DIR, f);
        const g = parseJson(await readFile(path, "utf8"), path) as GroupState;
        if (typeof g.name !== "string" || !Array.isArray(g.instances)) {
          throw new StateError(`${path}: not a group state file`, "state_corrupt");
        }
        return g;
      }),
    );
    return { version: STATE_VERSION, lineage: root.lineage, serial: root.serial, groups };
  }

  async lock(operation: string, timeoutMs: number, onEvent?: (e: StateEvent) => void, options: LockOptions = {}): Promise<StateLock> {
    await mkdir(this.dir, { recursive: true });
    await this.ensureRepo();
    const info: LockInfo = {
      ID: randomUUID(),
      Operation: operation,
      Who: `${safeUser()}@${hostname()}`,
      Version: VERSION,
      Created: new Date().toISOString(),
      Pid: process.pid,
      Host: hostname(),
      ...(options.leaderOf ? { Leader: options.leaderOf } : {}),
    };
    const path = join(this.dir, LOCK_FILE);
    const deadline = Date.now() + timeoutMs;
    let delay = 100;
    let announced = false;
    for (;;) {
      if (await this.tryCreateLock(path, info)) break;
      const holder = await this.lockHolder();
      // The holder died on this machine, or led the Lease we now lead (its term is over: the leader stops starting
      // changes before its lease can expire): its lock will never be released by it.
      const previousLeader = options.leaderOf !== undefined && holder?.Leader === options.leaderOf && !heldHere.has(holder.ID);
      if (holder && (previousLeader || (holder.Host === hostname() && !processAlive(holder.Pid)))) {
        if (await this.removeStaleLock(path, holder)) onEvent?.({ type: "lock_stale_removed", holder });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new StateError(
          holder
            ? `state is locked by ${holder.Who} (${holder.Operation}, since ${holder.Created}, lock ID ${holder.ID})`
            : `state is locked (${path})`,
          "state_locked",
          holder
            ? `wait for it to finish, retry with --lock-timeout, or if it died run: premiscale force-unlock ${holder.ID}`
            : undefined,
        );
      }
      if (holder && !announced) {
        onEvent?.({ type: "lock_wait", holder });
        announced = true;
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
      delay = Math.min(delay * 2, 2000);
    }

    heldHere.add(info.ID);
    const leftovers = await this.sweepLeftovers();
    if (leftovers.length > 0) onEvent?.({ type: "leftovers_removed", files: leftovers });
    const pending = await this.uncommitted();
    if (pending.length > 0) onEvent?.({ type: "recovered_uncommitted", files: pending });
    return new GitStateLock(this, info, await this.read(), pending.length > 0);
  }

  /**
   * Removes temporary files that writers killed between their write and their rename left behind (called with the
   * lock held). State files are written only under the lock, so any other process's temporary state file is a dead
   * holder's; the lock's own and the runtime folder's temporary files (serve writes there without the lock) go only
   * when their writer's pid no longer runs on this machine.
   */
  private async sweepLeftovers(): Promise<string[]> {
    const dead = ({ pid }: { pid: number }) => !processAlive(pid);
    const lockName = LOCK_FILE;
    const under = (rel: string) => (names: string[]) => names.map((n) => join(rel, n));
    const found = await Promise.all([
      sweepTempFiles(this.dir, (t) => (t.target === lockName ? dead(t) : t.target === ROOT_FILE)).then(under(".")),
      sweepTempFiles(join(this.dir, GROUPS_DIR), () => true).then(under(GROUPS_DIR)),
      sweepTempFiles(join(this.dir, RUNTIME_DIR), dead).then(under(RUNTIME_DIR)),
      sweepTempFiles(join(this.dir, RUNTIME_DIR, "check-ins"), dead).then(under(join(RUNTIME_DIR, "check-ins"))),
    ]);
    return found.flat().sort();
  }

  /** Creates the lock with its content in one step: a crash can leave a temporary file, never an empty lock. */
  private async tryCreateLock(path: string, info: LockInfo): Promise<boolean> {
    const tmp = tempPathFor(path, info.ID);
    try {
      await writeFile(tmp, JSON.stringify(info, null, 2) + "\n");
      await link(tmp, path);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw new StateError(`cannot create lock ${path}: ${(e as Error).message}`, "lock_failed");
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Removes a dead holder's lock without racing another waiter: the lock is renamed aside and removed only if it
   * is still the dead holder's; a fresh lock taken meanwhile by someone else is put back.
   */
  private async removeStaleLock(path: string, dead: LockInfo): Promise<boolean> {
    const aside = tempPathFor(path, "stale");
    try {
      await rename(path, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw e;
    }
    const moved = await readLock(aside);
    const wasDead = moved !== null && moved !== "unreadable" && moved.ID === dead.ID;
    if (!wasDead) await link(aside, path).catch(() => undefined);
    await rm(aside, { force: true });
    return wasDead;
  }

  async lockHolder(): Promise<LockInfo | null> {
    const path = join(this.dir, LOCK_FILE);
    const holder = await readLock(path);
    if (holder === "unreadable") {
      throw new StateError(
        `the lock file ${path} exists but cannot be read`,
        "lock_unreadable",
        `if no premiscale is running against this state, delete ${path}`,
      );
    }
    return holder;
  }

  async forceUnlock(id: string): Promise<LockInfo> {
    const holder = await this.lockHolder();
    if (!holder) throw new StateError(`state in ${this.dir} is not locked`, "not_locked");
    if (holder.ID !== id) {
      throw new StateError(
        `lock ID ${id} does not match the lock held (ID ${holder.ID} by ${holder.Who}, ${holder.Operation})`,
        "lock_id_mismatch",
        "pass the ID shown in the lock error",
      );
    }
    await rm(join(this.dir, LOCK_FILE), { force: true });
    return holder;
  }

  /** @internal Releases a lock if it is still this one's. */
  async releaseLock(id: string): Promise<void> {
    const holder = await this.lockHolder();
    if (holder?.ID === id) await rm(join(this.dir, LOCK_FILE), { force: true });
    heldHere.delete(id);
  }

  private async ensureRepo(): Promise<void> {
    try {
      await this.ensureRepoNow();
    } catch (e) {
      throw new StateError(`cannot prepare the git repository for state in ${this.dir}: ${(e as Error).message.trim()}`, "state_repo_failed", "check that git is installed and the directory is writable", { cause: e });
    }
  }

  private async ensureRepoNow(): Promise<void> {
    const probe = await git(this.dir, ["rev-parse", "--is-inside-work-tree"], { allowFail: true });
    const inside = probe.exitCode === 0 && probe.stdout.trim() === "true";
    if (!inside) await git(this.dir, ["init", "--initial-branch=main", "--quiet"]);
    const ignore = join(this.dir, ".gitignore");
    let current: string | null = null;
    try {
      current = await readFile(ignore, "utf8");
    } catch {
      current = null;
    }
    const wanted = [LOCK_FILE, "*.tmp", `${RUNTIME_DIR}/`];
    const missing = wanted.filter((w) => !(current ?? "").split("\n").includes(w));
    if (missing.length > 0) await writeFile(ignore, `${current ?? ""}${current && !current.endsWith("\n") ? "\n" : ""}${missing.join("\n")}\n`);
  }

  private async uncommitted(): Promise<string[]> {
    // Every untracked file listed on its own (-uall), NUL-separated so that no path comes back quoted.
    const status = await git(this.dir, ["status", "--porcelain", "-z", "--untracked-files=all", "--", "."]);
    const paths: string[] = [];
    const entries = status.stdout.split("\0");
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.length < 4) continue;
      paths.push(entry.slice(3));
      // A rename or copy is followed by the path it came from.
      if (entry[0] === "R" || entry[0] === "C") i++;
    }
    // Only state files count: the .gitignore written on first use is not an interrupted apply's work.
    return paths.filter((p) => p.endsWith(ROOT_FILE) || p.includes(`${GROUPS_DIR}/`));
  }

  /** @internal Atomic write of a state file; failures name the file. */
  async writeAtomic(rel: string, text: string): Promise<void> {
    const path = join(this.dir, rel);
    try {
      await writeFileAtomic(path, text, { createDirs: true });
    } catch (e) {
      throw new StateError(`cannot write state file ${path}: ${(e as Error).message}`, "state_write_failed", "check the disk and the directory's permissions", { cause: e });
    }
  }

  /** @internal */
  async removeFile(rel: string): Promise<void> {
    await rm(join(this.dir, rel), { force: true });
  }
}

class GitStateLock implements StateLock {
  private state: State | null;
  private released = false;

  constructor(
    private readonly store: GitStateStore,
    readonly info: LockInfo,
    state: State | null,
    private dirty: boolean,
  ) {
    this.state = state;
  }

  current(): State {
    if (!this.state) throw new StateError("state has not been created yet", "state_missing");
    return this.state;
  }

  async init(lineage: string): Promise<State> {
    if (this.state) return this.state;
    this.state = { version: STATE_VERSION, lineage, serial: 0, groups: [] };
    await this.writeRoot();
    return this.state;
  }

  async putInstance(group: string, instance: Instance): Promise<void> {
    const s = this.current();
    const old = s.groups.find((g) => g.name === group) ?? { name: group, instances: [] };
    const next = withInstance(old, instance);
    await this.writeGroup(next);
  }

  async removeInstance(group: string, name: string): Promise<void> {
    const s = this.current();
    const old = s.groups.find((g) => g.name === group);
    if (!old || !old.instances.some((i) => i.name === name)) return;
    await this.writeGroup({ ...old, instances: old.instances.filter((i) => i.name !== name) });
  }

  async putHistory(group: string, history: History): Promise<void> {
    const s = this.current();
    const old = s.groups.find((g) => g.name === group) ?? { name: group, instances: [] };
    if (JSON.stringify(old.history ?? null) === JSON.stringify(history)) return;
    await this.writeGroup({ ...old, history });
  }

  async putRollout(group: string, rollout: RolloutState | undefined): Promise<void> {
    const s = this.current();
    const old = s.groups.find((g) => g.name === group) ?? { name: group, instances: [] };
    if (JSON.stringify(old.rollout ?? null) === JSON.stringify(rollout ?? null)) return;
    const { rollout: _old, ...rest } = old;
    await this.writeGroup(rollout ? { ...rest, rollout } : rest);
  }

  async putTemplate(group: string, template: TemplateRecord | undefined): Promise<void> {
    const s = this.current();
    const old = s.groups.find((g) => g.name === group);
    // A template record alone keeps no group file: a group without members settles again when it gets some.
    if (!old) return;
    if (JSON.stringify(old.template ?? null) === JSON.stringify(template ?? null)) return;
    const { template: _old, ...rest } = old;
    await this.writeGroup(template ? { ...rest, template } : rest);
  }

  private async writeGroup(g: GroupState): Promise<void> {
    const s = this.current();
    const groups = s.groups.filter((x) => x.name !== g.name);
    const rel = join(GROUPS_DIR, `${g.name}.json`);
    if (g.instances.length > 0 || isRemembered(g.history) || g.rollout) {
      groups.push(g);
      await this.store.writeAtomic(rel, serializeGroup(g));
    } else {
      await this.store.removeFile(rel);
    }
    groups.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.state = { ...s, groups };
    await this.writeRoot();
  }

  private async writeRoot(): Promise<void> {
    const s = this.current();
    // The serial is written last: it is what a saved plan checks, so it changes only once the group file is in place.
    this.state = { ...s, serial: s.serial + 1 };
    this.dirty = true;
    await this.store.writeAtomic(
      ROOT_FILE,
      JSON.stringify({ version: STATE_VERSION, lineage: s.lineage, serial: s.serial + 1 }, null, 2) + "\n",
    );
  }

  async commit(message: string): Promise<string | null> {
    if (!this.dirty) return null;
    try {
      return await this.commitNow(message);
    } catch (e) {
      throw new StateError(
        `git commit of the state in ${this.store.dir} failed: ${(e as Error).message.trim()}`,
        "state_commit_failed",
        "the state files are written; fix the repository and run apply again to commit them",
        { cause: e },
      );
    }
  }

  private async commitNow(message: string): Promise<string | null> {
    const dir = this.store.dir;
    const top = (await git(dir, ["rev-parse", "--show-toplevel"])).stdout.trim();
    const pathspec = relative(top, dir) || ".";
    await git(top, ["add", "-A", "--", pathspec]);
    const staged = (await git(top, ["diff", "--cached", "--name-only", "--", pathspec])).stdout;
    if (!staged.trim()) return null;
    // A pathspec on commit leaves whatever else the user staged in the repository alone.
    await git(top, [...(await commitIdentity(top)), "commit", "--quiet", "--no-verify", "-m", message, "--", pathspec]);
    this.dirty = false;
    return (await git(top, ["rev-parse", "HEAD"])).stdout.trim();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.store.releaseLock(this.info.ID);
  }
}

/** A history worth a file: one with recommendations or events in it. */
function isRemembered(h: History | undefined): boolean {
  return h !== undefined && (h.recommendations.length > 0 || h.events.length > 0);
}

/** A group file: keys in a fixed order and instances sorted, so equal states serialise identically. */
export function serializeGroup(g: GroupState): string {
  const instances = [...g.instances]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((i) => ({
      name: i.name,
      uuid: i.uuid,
      host: i.host,
      created: i.created,
      status: i.status,
      ...(i.address ? { address: i.address } : {}),
      ...(i.vcpus !== undefined ? { vcpus: i.vcpus } : {}),
      ...(i.memoryMiB !== undefined ? { memoryMiB: i.memoryMiB } : {}),
      ...(i.protected ? { protected: true } : {}),
      ...(i.template ? { template: i.template } : {}),
      ...(i.pool ? { pool: i.pool } : {}),
      ...(i.poolState ? { poolState: i.poolState } : {}),
      ...(i.joined ? { joined: i.joined } : {}),
      ...(i.bootBeacon ? { bootBeacon: true } : {}),
      ...(i.stopped ? { stopped: { at: i.stopped.at, state: i.stopped.state } } : {}),
    }));
  return (
    JSON.stringify(
      { name: g.name, instances, ...(g.history ? { history: g.history } : {}), ...(g.rollout ? { rollout: g.rollout } : {}), ...(g.template ? { template: g.template } : {}) },
      null,
      2,
    ) + "\n"
  );
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new StateError(`${path} is not valid JSON: ${(e as Error).message}`, "state_corrupt", "restore it from git history");
  }
}

async function readLock(path: string): Promise<LockInfo | null | "unreadable"> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    return "unreadable";
  }
  try {
    const info = JSON.parse(text) as LockInfo;
    return typeof info?.ID === "string" ? info : "unreadable";
  } catch {
    return "unreadable";
  }
}


function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return "unknown";
  }
}
