import { cutText } from "./show.js";

/**
 * Error values shared by every part. Each carries a `code`, a message that names the object, and `hint`,
 * the next step for the user. The CLI maps classes to exit codes and never prints a stack trace for these.
 */
export class PremiscaleError extends Error {
  override name = "PremiscaleError";
  constructor(
    message: string,
    readonly code: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** One problem in a config file, with where it is. */
export interface ConfigIssue {
  file: string;
  /** 1-based; 0 when unknown. */
  line: number;
  column: number;
  /** Dot path of the field, e.g. `groups[0].max`. Empty for the whole file. */
  path: string;
  message: string;
  /** What to do about it. */
  fix?: string;
}

/** The most characters of an issue's message or fix: a value of a megabyte must not make an unreadable error. */
const ISSUE_TEXT_MAX = 1_000;
const cut = (s: string): string => cutText(s, ISSUE_TEXT_MAX);

/** The config file is malformed or breaks a rule. */
export class ConfigError extends PremiscaleError {
  override name = "ConfigError";
  readonly issues: ConfigIssue[];
  /** Issues are kept as given, except that a message or fix longer than 1,000 characters is cut (values, paths). */
  constructor(issues: ConfigIssue[]) {
    issues = issues.map((i) => (i.message.length <= ISSUE_TEXT_MAX && (i.fix ?? "").length <= ISSUE_TEXT_MAX ? i : { ...i, message: cut(i.message), ...(i.fix !== undefined ? { fix: cut(i.fix) } : {}) }));
    super(
      issues.map((i) => `${i.file}:${i.line}:${i.column}: ${i.path ? i.path + ": " : ""}${i.message}`).join("\n"),
      "config_invalid",
      issues.find((i) => i.fix)?.fix,
    );
    this.issues = issues;
  }
}

/** A host could not be reached or refused a call. */
export class ProviderError extends PremiscaleError {
  override name = "ProviderError";
  constructor(
    readonly host: string,
    message: string,
    hint?: string,
    options?: { cause?: unknown; code?: string },
  ) {
    super(`host ${host}: ${message}`, options?.code ?? "provider_failed", hint, options);
  }
}

/** State could not be read, written or locked. */
export class StateError extends PremiscaleError {
  override name = "StateError";
}

/** A saved plan cannot be applied (stale, expired, altered, or has errors). */
export class PlanRejectedError extends PremiscaleError {
  override name = "PlanRejectedError";
}
