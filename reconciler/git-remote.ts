/**
 * Git against a remote: telling "cannot reach it" from "it refused", and pushes with a lease. Commands run through
 * the one git runner, state/git.ts (timeouts, no prompts, no pager).
 */
import { errorLine, git, redact, type GitResult } from "../state/git.js";
import { ConfigRepoError, RemoteUnreachableError } from "./errors.js";

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
