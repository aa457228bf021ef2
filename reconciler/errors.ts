/** Errors of the reconciler's edges (git remotes, the remote lock). All are `PremiscaleError`s: message + next step. */
import { PremiscaleError } from "../config/errors.js";

/** A git remote could not be reached (network, wrong URL, missing credentials). */
export class RemoteUnreachableError extends PremiscaleError {
  override name = "RemoteUnreachableError";
  constructor(
    readonly remote: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `git remote ${remote} cannot be reached: ${detail}`,
      "remote_unreachable",
      `check that \`git ls-remote ${remote}\` works for the user premiscale runs as (its ssh key or git credential helper)`,
      options,
    );
  }
}

/** The remote refused a push for a reason other than "it moved" (protected branch, hook, checked-out branch). */
export class PushRejectedError extends PremiscaleError {
  override name = "PushRejectedError";
  constructor(
    readonly ref: string,
    message: string,
    hint?: string,
    code = "push_rejected",
  ) {
    super(message, code, hint);
  }
}

/** The cross-machine lock: held by someone else, lost, or not ours to release. */
export class RemoteLockError extends PremiscaleError {
  override name = "RemoteLockError";
}

/** The config repository's work directory cannot be used (another repository, a missing branch, a git failure). */
export class ConfigRepoError extends PremiscaleError {
  override name = "ConfigRepoError";
}
