/**
 * Runs the `git` binary for what simple-git lacks (stdin, a private index, `push --porcelain` with its exit code).
 * Git uses the user's own credentials (ssh agent, credential helper); premiscale never handles them, but it does
 * forbid prompts, so a daemon fails with a message instead of hanging on a password question.
 */
import { execa } from "execa";
import { ConfigRepoError, RemoteUnreachableError } from "./errors.js";

/** What one git command printed and returned. */
export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Environment for every git we run: no prompts, C messages (parsed below), ssh in batch mode unless set. */
export function gitEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    GIT_TERMINAL_PROMPT: "0",
    LC_ALL: "C",
    ...(process.env.GIT_SSH_COMMAND || process.env.GIT_SSH ? {} : { GIT_SSH_COMMAND: "ssh -o BatchMode=yes" }),
    ...extra,
  };
}

/** Runs git in `cwd`. Throws `ConfigRepoError` on a non-zero exit unless `allowFail`. */
export async function git(
  cwd: string,
  args: string[],
  opts: { input?: string; env?: Record<string, string>; allowFail?: boolean; timeoutMs?: number } = {},
): Promise<GitResult> {
  const r = await execa("git", args, {
    cwd,
    input: opts.input ?? "",
    env: gitEnv(opts.env),
    reject: false,
    timeout: opts.timeoutMs ?? 120_000,
    stripFinalNewline: false,
  });
  const result = { stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? ""), exitCode: r.exitCode ?? (r.timedOut ? 124 : 1) };
  if (r.timedOut) result.stderr += `\nfatal: git ${args[0]} timed out after ${opts.timeoutMs ?? 120_000} ms`;
  if (result.exitCode !== 0 && !opts.allowFail) {
    throw new ConfigRepoError(`git ${args[0]} failed in ${cwd}: ${errorLine(result.stderr)}`, "git_failed");
  }
  return result;
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

/** True when git failed to talk to the remote at all (as opposed to the remote refusing something). */
export function isTransportFailure(stderr: string): boolean {
  return /Could not read from remote|does not appear to be a git repository|unable to access|Could not resolve host|Connection refused|Connection timed out|Authentication failed|Permission denied|Host key verification failed|repository .* not found|repository '.*' does not exist|No such file or directory|not a git repository|timed out|unable to connect|terminal prompts disabled/i.test(
    stderr,
  );
}

/** Throws `RemoteUnreachableError` for a transport failure of a git command that talked to `remote`. */
export function throwIfUnreachable(remote: string, r: GitResult): void {
  if (r.exitCode !== 0 && isTransportFailure(r.stderr)) throw new RemoteUnreachableError(redact(remote), errorLine(r.stderr));
}

/** One ref's line of `git push --porcelain`: flag (`!` rejected, `*` new, `-` deleted, ` ` fast-forward, `+` forced, `=` up to date). */
export interface PushStatus {
  flag: string;
  ref: string;
  summary: string;
}

/** Parses `git push --porcelain` output: the status line of `ref`, or null when git never got that far. */
export function pushStatus(stdout: string, ref: string): PushStatus | null {
  for (const line of stdout.split("\n")) {
    const m = /^(.)\t([^\t]*):([^\t]+)\t(.*)$/.exec(line);
    if (m && m[3] === ref) return { flag: m[1]!, ref: m[3]!, summary: m[4]! };
  }
  return null;
}

/** Pushes one refspec atomically with an optional lease (`expected`: "" = the ref must not exist). */
export async function pushRef(
  cwd: string,
  remote: string,
  refspec: { src: string; dst: string; expected?: string },
): Promise<{ ok: boolean; status: PushStatus | null; result: GitResult }> {
  const lease = refspec.expected === undefined ? [] : [`--force-with-lease=${refspec.dst}:${refspec.expected}`];
  const result = await git(cwd, ["push", "--porcelain", "--atomic", "--no-verify", ...lease, remote, `${refspec.src}:${refspec.dst}`], { allowFail: true });
  const status = pushStatus(result.stdout, refspec.dst);
  if (!status) {
    throwIfUnreachable(remote, result);
    if (result.exitCode !== 0) {
      throw new ConfigRepoError(`git push to ${redact(remote)} (${refspec.dst}) failed: ${errorLine(result.stderr)}`, "git_failed");
    }
  }
  return { ok: result.exitCode === 0 && status !== null && status.flag !== "!", status, result };
}
