/**
 * The config repository as the reconciler sees it: a remote (URL or local path) and a private clone of it (the work
 * directory, a cache premiscale owns) on the tracked branch. Git talks to the remote with the user's own credentials.
 * State commits made in the clone are pushed as fast-forwards only: when the remote moved, they are replayed on top
 * of it (rebase, never a force push) and the caller re-plans before pushing again.
 */
import { randomUUID } from "node:crypto";
import { access, mkdir, rename, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { ConfigRepoError, PushRejectedError, RemoteUnreachableError } from "./errors.js";
import { errorLine, git, redact, type GitResult } from "../state/git.js";
import { isTransportFailure, pushRef } from "./git-remote.js";

/** Options of a `ConfigRepo`. */
export interface ConfigRepoOptions {
  /** The repository: a URL (`https://…`, `ssh://…`, `git@host:path`) or a local path. */
  source: string;
  /** The tracked branch. @default "main" */
  branch?: string;
  /** Where the clone lives (created when missing; reused when it already is a clone of `source`). */
  workDir: string;
}

/** What a sync found. */
export interface SyncResult {
  /** The tracked branch on the remote, now. */
  commit: string;
  /** What this object saw before, or null on its first sync. */
  previous: string | null;
  /** The remote branch changed since the previous sync (always true on the first). */
  moved: boolean;
  /** Local commits not yet on the remote (state commits waiting to be pushed), replayed on top of it. */
  unpushed: number;
}

/** How a push ended. `remote_moved`: someone pushed first; the local commits now sit on top of theirs: re-plan. */
export type PushResult =
  | { status: "pushed"; commit: string }
  | { status: "up_to_date"; commit: string }
  | { status: "remote_moved"; commit: string; remote: string };

/** The clone of the config repository and the operations the reconciler needs on it. */
export class ConfigRepo {
  readonly source: string;
  readonly branch: string;
  /** The clone's work tree: the config is read and state is written here. */
  readonly dir: string;
  private lastSeen: string | null = null;

  constructor(opts: ConfigRepoOptions) {
    this.source = isUrl(opts.source) ? opts.source : resolve(opts.source);
    this.branch = opts.branch ?? "main";
    this.dir = resolve(opts.workDir);
    if (!/^[A-Za-z0-9._/-]+$/.test(this.branch) || this.branch.includes("..") || this.branch.startsWith("-")) {
      throw new ConfigRepoError(`branch "${this.branch}" is not a valid branch name`, "usage", "use a plain name like main");
    }
  }

  private get tracking(): string {
    return `refs/remotes/origin/${this.branch}`;
  }

  /** Clones the repository into the work directory unless a clone of it is already there. */
  async ensureClone(): Promise<void> {
    if (await exists(join(this.dir, ".git"))) {
      const url = (await git(this.dir, ["remote", "get-url", "origin"], { allowFail: true })).stdout.trim();
      if (url !== this.source) {
        throw new ConfigRepoError(
          `${this.dir} holds a clone of ${redact(url) || "(no origin)"}, not of ${redact(this.source)}`,
          "workdir_mismatch",
          "choose another work directory, or delete this one (it is only a cache)",
        );
      }
      return;
    }
    await mkdir(dirname(this.dir), { recursive: true });
    const tmp = `${this.dir}.clone-${randomUUID().slice(0, 8)}`;
    const cloned = await git(dirname(this.dir), ["clone", "--quiet", "--no-tags", "--single-branch", "--branch", this.branch, "--", this.source, tmp], { allowFail: true });
    if (cloned.exitCode !== 0) {
      await rm(tmp, { recursive: true, force: true });
      if (/Remote branch .* not found/i.test(cloned.stderr)) {
        throw new ConfigRepoError(`branch ${this.branch} does not exist in ${redact(this.source)}`, "branch_missing", "push it first, or set the branch to track");
      }
      unreachableOr(this.source, cloned, "clone_failed", "cannot clone");
    }
    // The clone is renamed into place only once complete, so an interrupted clone is never mistaken for one.
    await rename(tmp, this.dir);
    // Commits made here (state, plan removals) need an identity; the user's global one wins when it exists.
    const email = await git(this.dir, ["config", "user.email"], { allowFail: true });
    if (!email.stdout.trim()) {
      await git(this.dir, ["config", "user.name", "premiscale"]);
      await git(this.dir, ["config", "user.email", `premiscale@${hostname()}`]);
    }
  }

  /**
   * Fetches the tracked branch and brings the work tree to it. Local commits not yet pushed (state written by a
   * pass whose push failed) are replayed on top, and uncommitted state files survive (autostash).
   */
  async sync(): Promise<SyncResult> {
    await this.ensureClone();
    const fetched = await git(this.dir, ["fetch", "--no-tags", "--quiet", "origin", `+refs/heads/${this.branch}:${this.tracking}`], { allowFail: true });
    if (fetched.exitCode !== 0) {
      if (/couldn't find remote ref/i.test(fetched.stderr)) {
        throw new ConfigRepoError(`branch ${this.branch} no longer exists in ${redact(this.source)}`, "branch_missing", "push it again, or set the branch to track");
      }
      unreachableOr(this.source, fetched, "fetch_failed", "cannot fetch");
    }
    const commit = await this.rev(this.tracking);
    const unpushed = Number((await git(this.dir, ["rev-list", "--count", `${this.tracking}..HEAD`])).stdout.trim());
    if ((await this.rev("HEAD")) !== commit) await this.replayOnto(commit);
    const previous = this.lastSeen;
    this.lastSeen = commit;
    return { commit, previous, moved: previous !== commit, unpushed };
  }

  /** The work tree's commit (the tracked branch plus any unpushed local commits). */
  async head(): Promise<string> {
    return this.rev("HEAD");
  }

  /**
   * Pushes local commits to the tracked branch, as a fast-forward only. When the remote moved, fetches, replays the
   * local commits on top and returns `remote_moved`: the caller re-plans (the config may have changed) and pushes
   * again. A refusal for another reason is a `PushRejectedError`.
   */
  async push(): Promise<PushResult> {
    const head = await this.rev("HEAD");
    if (head === (await this.rev(this.tracking))) return { status: "up_to_date", commit: head };
    const ref = `refs/heads/${this.branch}`;
    const r = await pushRef(this.dir, "origin", { src: "HEAD", dst: ref });
    if (r.ok) {
      await git(this.dir, ["update-ref", this.tracking, head]);
      this.lastSeen = head;
      return { status: "pushed", commit: head };
    }
    const summary = r.status?.summary ?? errorLine(r.result.stderr);
    if (/fetch first|non-fast-forward/i.test(summary)) {
      const synced = await this.sync();
      return { status: "remote_moved", commit: await this.rev("HEAD"), remote: synced.commit };
    }
    if (/checked out/i.test(summary)) {
      throw new PushRejectedError(
        ref,
        `${redact(this.source)} refused the state commit: its branch ${this.branch} is checked out there`,
        "use a bare repository as the config repository, or run `git config receive.denyCurrentBranch updateInstead` in it",
      );
    }
    throw new PushRejectedError(
      ref,
      `${redact(this.source)} refused the push to ${this.branch}: ${summary}`,
      "allow premiscale's user to push to the tracked branch (branch protection, hooks); the state commit is kept locally and pushed by the next pass",
    );
  }

  /**
   * Publishes `files` on a new branch `name`, as one commit on top of the tracked branch, without touching the work
   * tree. Returns `exists` (and pushes nothing) when the branch is already on the remote.
   */
  async publishBranch(name: string, files: Record<string, string>, message: string): Promise<{ status: "pushed" | "exists"; commit: string | null }> {
    const ref = `refs/heads/${name}`;
    const ls = await git(this.dir, ["ls-remote", "--heads", "origin", ref], { allowFail: true });
    if (ls.exitCode !== 0) unreachableOr(this.source, ls, "git_failed", "cannot list branches of");
    if (ls.stdout.trim()) return { status: "exists", commit: ls.stdout.split(/\s/)[0] ?? null };
    const base = await this.rev(this.tracking);
    // A private index: the work tree and the real index stay as they are.
    const index = join(this.dir, ".git", `premiscale-index-${randomUUID().slice(0, 8)}`);
    const env = { GIT_INDEX_FILE: index };
    try {
      await git(this.dir, ["read-tree", base], { env });
      for (const [path, text] of Object.entries(files)) {
        const blob = (await git(this.dir, ["hash-object", "-w", "--stdin"], { input: text })).stdout.trim();
        await git(this.dir, ["update-index", "--add", "--cacheinfo", `100644,${blob},${path}`], { env });
      }
      const tree = (await git(this.dir, ["write-tree"], { env })).stdout.trim();
      const commit = (await git(this.dir, ["commit-tree", tree, "-p", base, "-F", "-"], { input: message })).stdout.trim();
      const r = await pushRef(this.dir, "origin", { src: commit, dst: ref, expected: "" });
      if (r.ok) return { status: "pushed", commit };
      if (r.status && /stale info|already exists|fetch first|atomic transaction failed/i.test(r.status.summary)) return { status: "exists", commit: null };
      throw new PushRejectedError(ref, `${redact(this.source)} refused the branch ${name}: ${r.status?.summary ?? errorLine(r.result.stderr)}`, "allow premiscale's user to create branches under premiscale/");
    } finally {
      await rm(index, { force: true });
    }
  }

  /** Removes files from the work tree and commits that (locally; `push` sends it). Returns the commit, or null. */
  async commitRemoval(paths: string[], message: string): Promise<string | null> {
    const present: string[] = [];
    for (const p of paths) if (await exists(join(this.dir, p))) present.push(p);
    if (present.length === 0) return null;
    await git(this.dir, ["rm", "--quiet", "--ignore-unmatch", "--", ...present]);
    await git(this.dir, ["commit", "--quiet", "--no-verify", "-m", message, "--", ...present]);
    return this.rev("HEAD");
  }

  /** Replays local commits on `onto` (a fast-forward when there are none); never rewrites what the remote has. */
  private async replayOnto(onto: string): Promise<void> {
    const r = await git(this.dir, ["rebase", "--autostash", "--quiet", onto], { allowFail: true });
    if (r.exitCode === 0) return;
    await git(this.dir, ["rebase", "--abort"], { allowFail: true });
    // Keep the local commits somewhere the user can see them before giving up.
    const head = await this.rev("HEAD");
    const rescue = `premiscale/rescue/${head.slice(0, 12)}`;
    const pushed = await pushRef(this.dir, "origin", { src: head, dst: `refs/heads/${rescue}` }).catch(() => null);
    throw new PushRejectedError(
      `refs/heads/${this.branch}`,
      `local state commits conflict with new commits on ${this.branch} of ${redact(this.source)}: ${errorLine(r.stderr || r.stdout)}`,
      pushed?.ok
        ? `someone changed the state files on ${this.branch}; the local commits were pushed to branch ${rescue}: merge them by hand`
        : `someone changed the state files on ${this.branch}; the local commits are kept in ${this.dir}: merge them by hand`,
      "state_conflict",
    );
  }

  private async rev(ref: string): Promise<string> {
    return (await git(this.dir, ["rev-parse", "--verify", `${ref}^{commit}`])).stdout.trim();
  }
}

/** Throws `RemoteUnreachableError` for a transport failure, else a `ConfigRepoError`. */
function unreachableOr(source: string, r: GitResult, code: string, what: string): never {
  if (isTransportFailure(r.stderr)) throw new RemoteUnreachableError(redact(source), errorLine(r.stderr));
  throw new ConfigRepoError(`${what} ${redact(source)}: ${errorLine(r.stderr)}`, code);
}

/** True for a remote URL (`https://…`, `ssh://…`, `git@host:path`), false for a local path. */
export function isUrl(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source) || (/^[^/]+@[^/:]+:/.test(source) && !isAbsolute(source));
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
