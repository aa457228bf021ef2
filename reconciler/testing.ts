/** Real git repositories for the reconciler's tests: a bare "remote" and clones of it acting as users or machines. */
import { mkdtemp, mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { git } from "../state/git.js";

/** A fresh temporary directory. */
export function tempDir(prefix = "premiscale-reconciler-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

const IDENTITY = ["-c", "user.name=Test User", "-c", "user.email=user@example.invalid"];

/**
 * A bare repository (refusing non-fast-forward pushes to branches, so a force push would fail the test) whose
 * `main` holds `files`. Returns its path.
 */
export async function makeRemote(files: Record<string, string>): Promise<string> {
  const root = await tempDir();
  const remote = join(root, "remote.git");
  await git(root, ["init", "--quiet", "--bare", "--initial-branch=main", remote]);
  await git(remote, ["config", "receive.denyNonFastForwards", "true"]);
  const seed = join(root, "seed");
  await git(root, ["clone", "--quiet", remote, seed]);
  await commitFiles(seed, files, "initial config");
  await git(seed, ["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
  return remote;
}

/** A clone of `remote` acting as a user (with an identity). */
export async function userClone(remote: string): Promise<string> {
  const dir = join(await tempDir(), "user");
  await git(dirname(dir), ["clone", "--quiet", remote, dir]);
  await git(dir, ["config", "user.name", "Test User"]);
  await git(dir, ["config", "user.email", "user@example.invalid"]);
  return dir;
}

/** Writes files in a work tree and commits them (not pushed). */
export async function commitFiles(dir: string, files: Record<string, string>, message: string): Promise<string> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  await git(dir, ["add", "-A"]);
  await git(dir, [...IDENTITY, "commit", "--quiet", "-m", message]);
  return (await git(dir, ["rev-parse", "HEAD"])).stdout.trim();
}

/** Commits `files` in a user clone (after pulling) and pushes to main. */
export async function pushUserCommit(clone: string, files: Record<string, string>, message: string): Promise<string> {
  await git(clone, ["pull", "--quiet", "--rebase", "origin", "main"]);
  const sha = await commitFiles(clone, files, message);
  await git(clone, ["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
  return sha;
}

/** The commit a ref of the bare remote points at, or null. */
export async function remoteRef(remote: string, ref: string): Promise<string | null> {
  const r = await git(remote, ["rev-parse", "--verify", "--quiet", ref], { allowFail: true });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

/** A file's text at a ref of the bare remote, or null. */
export async function remoteFile(remote: string, ref: string, path: string): Promise<string | null> {
  const r = await git(remote, ["show", `${ref}:${path}`], { allowFail: true });
  return r.exitCode === 0 ? r.stdout : null;
}
