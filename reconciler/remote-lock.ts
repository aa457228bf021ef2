/**
 * A lock that works across machines: a ref on the shared git remote (`refs/premiscale/lock`), changed only by
 * compare-and-swap pushes. Git's receive-pack updates a ref only if its old value is the one the pusher names
 * (`--force-with-lease=<ref>:<expected>`, and "" means "must not exist"), so of two machines racing, exactly one
 * push lands. The ref points at a commit whose message records the holder (host, pid, a random id), when it was
 * taken and when it expires; an expired lock (its holder died) is taken over by another CAS against its commit.
 */
import { randomUUID } from "node:crypto";
import { hostname, userInfo } from "node:os";
import { errorLine, git, redact } from "../state/git.js";
import { pushRef, throwIfUnreachable } from "./git-remote.js";
import { ConfigRepoError, RemoteLockError } from "./errors.js";

/** Who holds the lock, as its commit records it. */
export interface LockHolder {
  /** Random per acquisition; `force-unlock` takes it. */
  id: string;
  host: string;
  pid: number;
  user: string;
  operation: string;
  acquiredAt: string;
  /** After this time anyone may take the lock over. */
  expiresAt: string;
}

/** Options of a `RemoteLock`. */
export interface RemoteLockOptions {
  /** A local git repository to build lock commits in and push from (the config repository's work directory). */
  dir: string;
  /** Remote name or URL. @default "origin" */
  remote?: string;
  /** @default "refs/premiscale/lock" */
  ref?: string;
  /** Lifetime of a taking or a renewal; a holder renews well before it runs out. @default 300 */
  ttlSeconds?: number;
  /** Recorded in the lock. @default "reconcile" */
  operation?: string;
  /** Wall clock (expiry is compared across machines, so keep their clocks in sync). */
  now?: () => Date;
  /** Overrides of the recorded identity (tests). */
  identity?: Partial<Pick<LockHolder, "host" | "pid" | "user">>;
}

/** The outcome of `acquire`: held, or who holds it. */
export type AcquireResult =
  | { acquired: true; lock: HeldRemoteLock; tookOverFrom: LockHolder | null }
  | { acquired: false; holder: LockHolder };

const EMPTY_TREE_INPUT = "";
const MAX_ROUNDS = 20;

/** The remote lock of one repository. */
export class RemoteLock {
  readonly remote: string;
  readonly ref: string;
  readonly ttlSeconds: number;
  private readonly now: () => Date;

  constructor(private readonly opts: RemoteLockOptions) {
    this.remote = opts.remote ?? "origin";
    this.ref = opts.ref ?? "refs/premiscale/lock";
    this.ttlSeconds = opts.ttlSeconds ?? 300;
    this.now = opts.now ?? (() => new Date());
    if (!/^refs\/[A-Za-z0-9._/-]+$/.test(this.ref) || this.ref.includes("..")) {
      throw new RemoteLockError(`lock ref "${this.ref}" is not a valid ref name`, "usage", "use a name like refs/premiscale/lock");
    }
    if (!(this.ttlSeconds > 0)) throw new RemoteLockError(`lock ttlSeconds must be > 0 (got ${this.ttlSeconds})`, "usage");
  }

  /**
   * Takes the lock, or says who holds it. An expired lock is taken over (CAS against its commit), and the old holder
   * is returned in `tookOverFrom`. With `waitMs`, retries a held lock with backoff until then (`onWait` once).
   */
  async acquire(opts: { waitMs?: number; onWait?: (holder: LockHolder) => void } = {}): Promise<AcquireResult> {
    const deadline = Date.now() + (opts.waitMs ?? 0);
    let delay = 250;
    let announced = false;
    for (;;) {
      const r = await this.tryAcquire();
      if (r.acquired || Date.now() >= deadline) return r;
      if (!announced) opts.onWait?.(r.holder);
      announced = true;
      await new Promise((res) => setTimeout(res, Math.min(delay, Math.max(0, deadline - Date.now()))));
      delay = Math.min(delay * 2, 5_000);
    }
  }

  private async tryAcquire(): Promise<AcquireResult> {
    const id = randomUUID();
    const acquiredAt = this.now();
    let expected = "";
    let tookOverFrom: LockHolder | null = null;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const holder = this.holderRecord(id, acquiredAt, acquiredAt);
      const sha = await this.lockCommit(holder);
      const pushed = await pushRef(this.opts.dir, this.remote, { src: sha, dst: this.ref, expected });
      if (pushed.ok) return { acquired: true, lock: new HeldRemoteLock(this, sha, holder), tookOverFrom };
      if (pushed.status && !isCasFailure(pushed.status.summary)) {
        throw new RemoteLockError(
          `the remote ${redact(this.remote)} refused the lock ref ${this.ref}: ${pushed.status.summary}`,
          "lock_refused",
          "allow pushes to refs/premiscale/* for the user premiscale runs as",
        );
      }
      const current = await this.read();
      if (!current) {
        expected = "";
        tookOverFrom = null;
        continue;
      }
      if (Date.parse(current.holder.expiresAt) <= this.now().getTime()) {
        expected = current.sha;
        tookOverFrom = current.holder;
        continue;
      }
      return { acquired: false, holder: current.holder };
    }
    throw new RemoteLockError(`the lock ${this.ref} on ${redact(this.remote)} changed hands ${MAX_ROUNDS} times while taking it`, "lock_contended", "try again");
  }

  /** The lock as it is on the remote now: its commit and holder, or null when nobody holds it. */
  async read(): Promise<{ sha: string; holder: LockHolder } | null> {
    const seen = "refs/premiscale/seen-lock";
    const r = await git(this.opts.dir, ["fetch", "--no-tags", "--quiet", this.remote, `+${this.ref}:${seen}`], { allowFail: true });
    if (r.exitCode !== 0) {
      if (/couldn't find remote ref/i.test(r.stderr)) return null;
      throwIfUnreachable(this.remote, r);
      throw new ConfigRepoError(`cannot read the lock ${this.ref} from ${redact(this.remote)}: ${errorLine(r.stderr)}`, "git_failed");
    }
    const sha = (await git(this.opts.dir, ["rev-parse", seen])).stdout.trim();
    const body = (await git(this.opts.dir, ["cat-file", "commit", sha])).stdout;
    return { sha, holder: parseHolder(body, sha) };
  }

  /**
   * Removes the lock whoever holds it, if its id (or commit) is `id`: for a holder that died with a long expiry.
   * Returns the removed holder.
   */
  async forceUnlock(id: string): Promise<LockHolder> {
    const current = await this.read();
    if (!current) throw new RemoteLockError(`the lock ${this.ref} on ${redact(this.remote)} is not held`, "not_locked");
    if (current.holder.id !== id && current.sha !== id) {
      throw new RemoteLockError(
        `lock ID ${id} does not match the lock held (ID ${current.holder.id} by ${describeHolder(current.holder)})`,
        "lock_id_mismatch",
        "pass the ID shown in the lock message",
      );
    }
    const r = await pushRef(this.opts.dir, this.remote, { src: "", dst: this.ref, expected: current.sha });
    if (!r.ok) throw new RemoteLockError(`the lock ${this.ref} changed while removing it`, "lock_contended", "look at the holder again and retry");
    return current.holder;
  }

  /** @internal Builds the lock commit recording `holder` (an empty tree; the message carries the record). */
  async lockCommit(holder: LockHolder): Promise<string> {
    const tree = (await git(this.opts.dir, ["mktree"], { input: EMPTY_TREE_INPUT })).stdout.trim();
    const subject = `premiscale lock: ${holder.operation} by ${holder.user}@${holder.host} (pid ${holder.pid}) until ${holder.expiresAt}`;
    const message = `${subject}\n\n${JSON.stringify(holder, null, 2)}\n`;
    const env = { GIT_AUTHOR_NAME: "premiscale", GIT_AUTHOR_EMAIL: `premiscale@${holder.host}`, GIT_COMMITTER_NAME: "premiscale", GIT_COMMITTER_EMAIL: `premiscale@${holder.host}` };
    return (await git(this.opts.dir, ["commit-tree", tree, "-F", "-"], { input: message, env })).stdout.trim();
  }

  /** @internal */
  holderRecord(id: string, acquiredAt: Date, from: Date): LockHolder {
    return {
      id,
      host: this.opts.identity?.host ?? hostname(),
      pid: this.opts.identity?.pid ?? process.pid,
      user: this.opts.identity?.user ?? safeUser(),
      operation: this.opts.operation ?? "reconcile",
      acquiredAt: acquiredAt.toISOString(),
      expiresAt: new Date(from.getTime() + this.ttlSeconds * 1000).toISOString(),
    };
  }

  /** @internal */
  clock(): Date {
    return this.now();
  }

  /** @internal */
  get dir(): string {
    return this.opts.dir;
  }
}

/** A lock this process holds. */
export class HeldRemoteLock {
  private released = false;

  constructor(
    private readonly owner: RemoteLock,
    /** The lock commit on the remote; every CAS names it. */
    public sha: string,
    public holder: LockHolder,
  ) {}

  /** Extends the expiry by the lock's TTL from now. Throws `RemoteLockError` (`lock_lost`) if it is no longer ours. */
  async renew(): Promise<void> {
    if (this.released) throw new RemoteLockError("the lock was already released", "lock_not_held");
    const next = { ...this.owner.holderRecord(this.holder.id, new Date(this.holder.acquiredAt), this.owner.clock()) };
    const sha = await this.owner.lockCommit(next);
    const r = await pushRef(this.owner.dir, this.owner.remote, { src: sha, dst: this.owner.ref, expected: this.sha });
    if (!r.ok) throw await this.lost("renew");
    this.sha = sha;
    this.holder = next;
  }

  /**
   * Deletes the lock ref, only if it still is this lock (CAS). Refused with `lock_not_held` when another holder took
   * it over after it expired; nothing is removed then.
   */
  async release(): Promise<void> {
    if (this.released) return;
    const r = await pushRef(this.owner.dir, this.owner.remote, { src: "", dst: this.owner.ref, expected: this.sha });
    if (!r.ok) {
      const current = await this.owner.read();
      if (current === null) {
        this.released = true;
        return;
      }
      throw await this.lost("release");
    }
    this.released = true;
  }

  private async lost(what: string): Promise<RemoteLockError> {
    const current = await this.owner.read().catch(() => null);
    const by = current ? ` it is held by ${describeHolder(current.holder)}` : " it is no longer held";
    return new RemoteLockError(
      `cannot ${what} the lock ${this.owner.ref} (ID ${this.holder.id}): it expired at ${this.holder.expiresAt} and was taken over;${by}`,
      "lock_not_held",
      "the work done under it may have overlapped another reconciler: check the state history",
    );
  }
}

/** `user@host (pid N, operation) until TIME, ID id`, for messages. */
export function describeHolder(h: LockHolder): string {
  return `${h.user}@${h.host} (pid ${h.pid}, ${h.operation}, since ${h.acquiredAt}) until ${h.expiresAt}, ID ${h.id}`;
}

/** Reads the holder from a lock commit (`git cat-file commit`); junk in the ref is reported as held by its commit. */
function parseHolder(commitText: string, sha: string): LockHolder {
  const message = commitText.slice(commitText.indexOf("\n\n") + 2);
  const json = message.slice(message.indexOf("{"));
  try {
    const h = JSON.parse(json) as LockHolder;
    if (typeof h.id === "string" && typeof h.expiresAt === "string" && !Number.isNaN(Date.parse(h.expiresAt))) return h;
  } catch {
    // fall through
  }
  return { id: sha, host: "unknown", pid: 0, user: "unknown", operation: "unknown", acquiredAt: "", expiresAt: "9999-12-31T23:59:59.000Z" };
}

/** A rejection because the ref was not what we expected: someone else changed it first. */
function isCasFailure(summary: string): boolean {
  return /stale info|fetch first|non-fast-forward|already exists|failed to (update|lock)|cannot lock|incorrect old value|reference already exists|atomic transaction failed|expected/i.test(summary);
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return "unknown";
  }
}
