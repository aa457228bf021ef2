import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = resolve(ROOT, "dist/cli/main.js");

/** How to run premiscale as its own process: the built CLI (test/global-setup.ts builds dist/). */
export function premiscaleCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: [BIN] };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** A `premiscale serve` process. */
export interface ServeProcess {
  child: ChildProcess;
  /** Its JSON log lines so far (stderr), parsed; other stderr text is in `stderr()`. */
  logs(): Record<string, unknown>[];
  stderr(): string;
  stdout(): string;
  /** Resolves when it exits: its exit code (null when killed by a signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal and waits for the exit; `ms` is how long that took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  /** Resolves with the first log line matching, or rejects when the process exits or `timeoutMs` passes first. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

const running = new Set<ChildProcess>();

/** Kills every process `spawnPremiscale` started that still runs (for `afterAll`, after a failed test). */
export async function killLeftovers(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((res) => {
          if (child.exitCode !== null || child.signalCode !== null) return res();
          child.once("exit", () => res());
          child.kill("SIGKILL");
        }),
    ),
  );
}

/** Runs `premiscale ARGS` in `cwd` (no terminal, CI=true), leaving it running. */
export function spawnPremiscale(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
  options: {
    dieWithParent?: boolean;
    /**
     * Runs it as in a pod: in its own UTS and PID namespaces (unshare), with this hostname and pid 1. Killing the
     * process kills the namespace (`--kill-child`); premiscale as pid 1 ignores SIGTERM, so stop it with SIGKILL.
     */
    podHostname?: string;
  } = {},
): ServeProcess {
  const { command, args: pre } = premiscaleCommand();
  const inPod = options.podHostname
    ? ["unshare", "--uts", "--pid", "--fork", "--kill-child", "--", "sh", "-c", 'hostname "$0" && exec "$@"', options.podHostname, command]
    : [command];
  // dieWithParent: setpriv's parent-death signal kills it with the test process, even one killed by SIGKILL (a
  // long-lived serve that drives VMs must not outlive its test).
  const full = [...inPod, ...pre, ...args];
  const [cmd, argv] = options.dieWithParent ? ["setpriv", ["--pdeathsig", "SIGKILL", "--", ...full]] : [full[0]!, full.slice(1)];
  const child = spawn(cmd, argv as string[], { cwd, env: { ...process.env, CI: "true", NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  child.once("exit", () => running.delete(child));
  let err = "";
  let out = "";
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let partial = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    err += d;
    partial += d;
    const parts = partial.split("\n");
    partial = parts.pop()!;
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        // not a log line (an error message before the logger started)
      }
    }
    for (const w of waiters) w();
  });
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once("exit", (code, signal) => res({ code, signal })));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const w of waiters) w();
  });
  return {
    child,
    logs: () => [...lines],
    stderr: () => err,
    stdout: () => out,
    exited,
    async stop(signal = "SIGTERM") {
      const t = performance.now();
      if (!done) child.kill(signal);
      const r = await exited;
      return { ...r, ms: performance.now() - t };
    },
    waitForLog(match, timeoutMs = 30_000) {
      return new Promise((res, rej) => {
        const check = () => {
          const hit = lines.find(match);
          if (hit) finish(() => res(hit));
          else if (done) finish(() => rej(new Error(`premiscale exited before the expected log line; stderr:\n${err}`)));
        };
        const timer = setTimeout(() => finish(() => rej(new Error(`no such log line within ${timeoutMs} ms; stderr:\n${err}`))), timeoutMs);
        const finish = (f: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      });
    },
  };
}
