/**
 * The one way premiscale runs git: the `git` binary, each call bounded by a timeout, never a prompt, never a pager,
 * C messages (callers parse them). Git uses the user's own credentials (ssh agent, credential helper); premiscale
 * never handles them, but a daemon fails with a message instead of hanging on a password question. State commits
 * (state/) and the config repository and its remote (reconciler/) both run git through here.
 */
import { hostname } from "node:os";
import { execa } from "execa";
import { PremiscaleError } from "../config/errors.js";

/** What one git command printed and returned. */
export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** How long one git command may take unless the caller says otherwise. @default 120000 */
export const GIT_TIMEOUT_MS = 120_000;

/** A git command failed (non-zero exit, timeout), or git could not be started at all. */
export class GitError extends PremiscaleError {
  override name = "GitError";
}

/** Environment for every git we run: no prompts, no pager, C messages, ssh in batch mode unless set. */
export function gitEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    GIT_TERMINAL_PROMPT: "0",
    GIT_PAGER: "cat",
    LC_ALL: "C",
    ...(process.env.GIT_SSH_COMMAND || process.env.GIT_SSH ? {} : { GIT_SSH_COMMAND: "ssh -o BatchMode=yes" }),
    ...extra,
  };
}

/**
 * Runs git in `cwd`. Throws `GitError` on a non-zero exit unless `allowFail` (then the caller reads `exitCode`);
 * a timeout is exit code 124 with a line saying so. A git that cannot be started (not installed) always throws.
 */
export async function git(
  cwd: string,
  args: string[],
  opts: { input?: string; env?: Record<string, string>; allowFail?: boolean; timeoutMs?: number } = {},
): Promise<GitResult> {
  const timeoutMs = opts.timeoutMs ?? GIT_TIMEOUT_MS;
  const r = await execa("git", args, {
    cwd,
    input: opts.input ?? "",
    env: gitEnv(opts.env),
    reject: false,
    timeout: timeoutMs,
    stripFinalNewline: false,
  });
  if (r.failed && r.exitCode === undefined && !r.timedOut) {
    // Not git's answer: the process never ran (no git on PATH, or `cwd` does not exist).
    const missing = r.code === "ENOENT";
    throw new GitError(
      `cannot run git ${args[0]} in ${cwd}: ${r.originalMessage ?? r.shortMessage}`,
      "git_unavailable",
      missing ? "install git (Debian: apt-get install git), and check that the directory exists" : undefined,
    );
  }
  const result = { stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? ""), exitCode: r.exitCode ?? (r.timedOut ? 124 : 1) };
  if (r.timedOut) result.stderr += `\nfatal: git ${args[0]} timed out after ${timeoutMs} ms`;
  if (result.exitCode !== 0 && !opts.allowFail) {
    throw new GitError(`git ${args[0]} failed in ${cwd}: ${errorLine(result.stderr)}`, "git_failed");
  }
  return result;
}

/**
 * `-c user.name=… -c user.email=…` for a commit in `cwd` when git has no identity configured there (a fresh machine,
 * a service account), so the commit never fails on "Please tell me who you are"; nothing when it has one.
 */
export async function commitIdentity(cwd: string): Promise<string[]> {
  const email = await git(cwd, ["config", "user.email"], { allowFail: true });
  if (email.exitCode === 0 && email.stdout.trim() !== "") return [];
  return ["-c", "user.name=premiscale", "-c", `user.email=premiscale@${hostname()}`];
}

/** The line of git's error output worth showing (the `fatal:`/`error:` line, else the last one). */
export function errorLine(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  return redact(lines.find((l) => /^(fatal|error):/.test(l)) ?? lines.at(-1) ?? "(no message)");
}

/** A URL with its password or token hidden: `https://user:secret@host` → `https://user:***@host`. */
export function redact(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*):[^@\s/]*@/gi, "$1:***@");
}
