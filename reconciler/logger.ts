/**
 * Structured JSON logs for the daemon (pino): one object per line with `level` as a word, an ISO `time`, `event`
 * and fields. Flags and environment: `--log-level` (`PREMISCALE_LOG_LEVEL`), `--log-file` (`PREMISCALE_LOG_FILE`),
 * `--log-stdout` (stdout even when the environment names a file).
 */
import { pino, type Logger } from "pino";
import { PremiscaleError } from "../config/errors.js";

/** pino's levels, plus `silent`. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Where logs go and from which level. */
export interface LogSettings {
  level: LogLevel;
  destination: { kind: "stdout" } | { kind: "file"; path: string };
}

/**
 * Settings from the daemon's flags and environment. Flags win over the environment; `--log-stdout` and
 * `--log-file` together are a usage error. @default level info, stdout
 */
export function logSettings(flags: { logLevel?: string; logFile?: string; logStdout?: boolean }, env: Record<string, string | undefined> = process.env): LogSettings {
  const raw = (flags.logLevel ?? env.PREMISCALE_LOG_LEVEL ?? "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) {
    const from = flags.logLevel !== undefined ? "--log-level" : "PREMISCALE_LOG_LEVEL";
    throw new PremiscaleError(`${from} "${raw}" is not a log level`, "usage", `use one of ${LOG_LEVELS.join(", ")}`);
  }
  if (flags.logStdout && flags.logFile) throw new PremiscaleError("--log-file and --log-stdout cannot be used together", "usage", "choose one destination");
  const file = flags.logStdout ? undefined : (flags.logFile ?? (env.PREMISCALE_LOG_FILE || undefined));
  return { level: raw as LogLevel, destination: file ? { kind: "file", path: file } : { kind: "stdout" } };
}

/** A logger and the handles a daemon needs around it. */
export interface DaemonLogger {
  logger: Logger;
  /** Reopens the log file (after logrotate moved it; call on SIGHUP). No-op for stdout. */
  reopen(): void;
  /** Writes out what is buffered (before exit). */
  flush(): void;
}

/** Creates the logger. `sync: true` writes every line at once (tests, and short-lived commands). */
export function createLogger(settings: LogSettings, opts: { sync?: boolean; base?: Record<string, unknown> } = {}): DaemonLogger {
  const dest =
    settings.destination.kind === "file"
      ? pino.destination({ dest: settings.destination.path, mkdir: true, sync: opts.sync ?? false })
      : pino.destination({ dest: 1, sync: opts.sync ?? false });
  const logger = pino(
    {
      level: settings.level,
      base: { pid: process.pid, ...(opts.base ?? {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: "msg",
    },
    dest,
  );
  return {
    logger,
    reopen: () => {
      if (settings.destination.kind === "file") dest.reopen();
    },
    flush: () => {
      try {
        dest.flushSync();
      } catch {
        // Nothing buffered yet (the stream is not open): nothing to flush.
      }
    },
  };
}
