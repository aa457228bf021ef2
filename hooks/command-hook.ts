/**
 * A user's lifecycle hook that runs a program: argv as written (no shell), in the config file's directory, with the
 * event as JSON on stdin and as PREMISCALE_HOOK_* variables. Exit 0 continues; any other exit abandons, with the
 * last lines of stderr as the reason. A line `heartbeat` on stdout restarts the hook's timeout.
 *
 * The program runs in a process group of its own, so that what it starts goes with it: on a timeout or when apply
 * stops waiting, the whole group is killed. Apply itself may die (kill -9) while a hook runs; a tiny guard process
 * per hook (`sh`, reading a pipe from apply that only apply's death closes without a line) then kills the group, so
 * no hook outlives the apply that started it. The hook runs again from the top in the next apply (hooks must be
 * idempotent).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { HookOutcome, LifecycleHook } from "../applier/lifecycle.js";
import { resolveHookProgram } from "../config/lifecycle-hooks.js";
import type { LifecycleHookConfig } from "../config/types.js";
import { boundedHeartbeat, HOOK_POINT, hookEnv, hookEvent, hookLabel } from "./hook-event.js";

/** A hook of the config that runs a command. */
export type CommandHookConfig = Extract<LifecycleHookConfig, { command: string[] }>;

/** Where and how the command runs. */
export interface CommandHookOptions {
  /** The config file's directory: a relative program resolves against it, and the command runs in it. */
  dir: string;
  /** The environment the command inherits (its PATH finds bare program names); the PREMISCALE_HOOK_* are added. */
  env: Record<string, string | undefined>;
  /** @default () => new Date() */
  now?: () => Date;
  /** Monotonic ms, for the heartbeat limit. @default performance.now */
  clock?: () => number;
}

/** How many of stderr's last lines make the reason of an abandon. */
const STDERR_LINES = 5;

/** The lifecycle hook that runs `hook.command` (see the module comment). */
export function commandHook(hook: CommandHookConfig, o: CommandHookOptions): LifecycleHook {
  const timeoutMs = hook.timeoutSeconds * 1000;
  return {
    name: hook.name,
    point: HOOK_POINT[hook.on],
    defaultResult: hook.defaultResult,
    timeoutMs: () => timeoutMs,
    run: async (ctx) => {
      const [program, ...args] = hook.command;
      const found = resolveHookProgram(program!, o.dir, o.env.PATH);
      if (!found.ok) return { result: "abandon", message: `${hookLabel(hook)}: ${found.message} (${found.fix})` };
      const event = hookEvent(hook, ctx.vm, (o.now ?? (() => new Date()))());
      return runCommand(hook, found.path, args, {
        cwd: o.dir,
        env: { ...o.env, ...hookEnv(event) },
        input: JSON.stringify(event) + "\n",
        signal: ctx.signal,
        heartbeat: boundedHeartbeat(ctx, timeoutMs, o.clock ?? (() => performance.now())),
      });
    },
  };
}

function runCommand(
  hook: CommandHookConfig,
  program: string,
  args: string[],
  o: { cwd: string; env: Record<string, string | undefined>; input: string; signal: AbortSignal; heartbeat: () => void },
): Promise<HookOutcome> {
  const label = hookLabel(hook);
  return new Promise((resolve) => {
    if (o.signal.aborted) return resolve({ result: "abandon", message: `${label}: not started: ${reason(o.signal)}` });
    // detached: the child leads a new session and process group, so killing -pid takes everything it started.
    const child = spawn(program, args, { cwd: o.cwd, env: o.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
    // Right away, not on 'spawn': the fewer instants apply can die with the hook running unguarded, the better.
    const guard = child.pid === undefined ? null : guardGroup(child.pid);
    let settled = false;
    const stderr: string[] = [];
    const finish = (outcome: HookOutcome) => {
      if (settled) return;
      settled = true;
      o.signal.removeEventListener("abort", onAbort);
      guard?.release();
      resolve(outcome);
    };
    const onAbort = () => {
      killGroup(child);
      // Resolved once the group's leader is gone (SIGKILL cannot be caught), so a stopped hook is really stopped.
      const gone = () => finish({ result: "abandon", message: `${label}: stopped (${reason(o.signal)}); its process group was killed` });
      if (child.exitCode !== null || child.signalCode !== null) gone();
      else {
        child.once("exit", gone);
        setTimeout(gone, 2000).unref(); // a process stuck in the kernel: do not wait for it
      }
    };
    o.signal.addEventListener("abort", onAbort, { once: true });
    child.once("error", (e) => finish({ result: "abandon", message: `${label}: cannot run ${program}: ${e.message}` }));
    // A hook that does not read its stdin closes it early (EPIPE): that is its business.
    child.stdin!.on("error", () => undefined);
    child.stdin!.end(o.input);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.trim() === "heartbeat") o.heartbeat();
    });
    createInterface({ input: child.stderr! }).on("line", (line) => {
      if (!line.trim()) return;
      stderr.push(line.length > 300 ? `${line.slice(0, 300)}…` : line);
      if (stderr.length > STDERR_LINES) stderr.shift();
    });
    child.once("exit", (code, signal) => {
      // Its last stderr lines may still be in the pipe: wait for the streams to close, but not for something the
      // hook left running in the background that holds them open.
      const report = () => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        const said = stderr.length ? `: ${stderr.join(" / ")}` : "";
        if (code === 0) finish({ result: "continue" });
        else if (code !== null) finish({ result: "abandon", message: `${label}: ${hook.command[0]} exited with code ${code}${said}` });
        else finish({ result: "abandon", message: `${label}: ${hook.command[0]} was killed by ${signal}${said}` });
      };
      const cap = setTimeout(report, 250);
      cap.unref();
      child.once("close", () => {
        clearTimeout(cap);
        report();
      });
    });
  });
}

/** Why the hook was stopped, from its signal's reason. */
function reason(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? "aborted");
}

/** Kills the hook's whole process group; nothing to do when it is already gone. */
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // ESRCH: every process of the group has exited.
  }
}

interface Guard {
  /** The hook's run is over: the guard exits without killing anything. */
  release(): void;
}

/**
 * A process that kills the process group `pgid` when apply dies: it waits for a line on its stdin, a pipe from this
 * process. `release` sends the line; apply's death (even SIGKILL) closes the pipe without one, and then it kills.
 * It is a fixed script with a number for an argument: nothing of the user's argv goes through a shell.
 */
function guardGroup(pgid: number): Guard {
  const g = spawn("/bin/sh", ["-c", 'read -r _ || kill -s KILL -- -"$1" 2>/dev/null', "premiscale-hook-guard", String(pgid)], {
    stdio: ["pipe", "ignore", "ignore"],
    // Its own group: a Ctrl-C meant for apply must not take the guard down before apply has stopped the hook.
    detached: true,
  });
  g.on("error", () => undefined);
  g.stdin!.on("error", () => undefined);
  // Never keeps apply alive: a guard left over when apply exits does its job, killing what its hook left running.
  g.unref();
  (g.stdin as unknown as { unref?: () => void }).unref?.();
  return { release: () => g.stdin!.end("\n") };
}
