import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";

/** The outcome of one virsh command inside a session. */
export interface VirshResult {
  command: string;
  /** True when virsh printed no `error:` line for it (virsh's batch mode has no per-command exit status). */
  ok: boolean;
  stdout: string;
  /** The `error: …` lines, without the prefix. */
  errors: string[];
}

/** Why a session call failed as a whole (not one command's error, which is in `VirshResult`). */
export class VirshSessionError extends Error {
  override name = "VirshSessionError";
  constructor(
    message: string,
    readonly kind: "timeout" | "exited" | "spawn",
  ) {
    super(message);
  }
}

/** Options of a session. */
export interface VirshSessionOptions {
  uri: string;
  /** Timeout of one batch, in ms. */
  timeoutMs: number;
  /** @default "virsh" */
  virshPath?: string;
}

interface Pending {
  marker: string;
  commands: string[];
  resolve: (r: VirshResult[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const PROMPT_LINE = /virsh # [^\n]*\n/g;

/**
 * One long-running `virsh -c URI` process fed commands on stdin: 0.3-0.8 ms a call instead of 15 ms (local)
 * or 390 ms (ssh) for a process per call (see bench/libvirt-transport.bench.ts).
 *
 * virsh's batch mode gives no exit status per command and echoes every command after a `virsh # ` prompt, so each
 * command is followed by an `echo` marker on stdout and an `echo --err` marker on stderr; what lies between the
 * previous command's markers and its own belongs to it. A batch is sent as one `;`-joined line.
 * Batches run one at a time. A batch that exceeds its timeout kills the process and its transport (a hung host must
 * not hold a call forever, nor leave an ssh behind); the next batch starts a fresh process.
 */
/** The screen width virsh's readline is told (see `ensureChild`): far wider than any line we send. */
const SCREEN_COLUMNS = 1_000_000;
/**
 * The longest line a batch is sent as; longer batches go as several lines. virsh's time per line grows faster than
 * its length (a 300,000-character line takes 2.2 s, six 50,000-character lines 1 s), and it keeps lines far
 * narrower than the screen.
 */
const MAX_LINE = 50_000;

export class VirshSession {
  private child: ChildProcessWithoutNullStreams | null = null;
  private out = "";
  private err = "";
  private queue: Promise<unknown> = Promise.resolve();
  private pending: Pending | null = null;
  private seq = 0;
  private inFlight = 0;
  private readonly nonce = randomBytes(4).toString("hex");
  private outScanned = 0;
  private errScanned = 0;

  constructor(private readonly options: VirshSessionOptions) {}

  /** Runs one command. */
  async run(command: string, timeoutMs?: number): Promise<VirshResult> {
    const [r] = await this.runMany([command], timeoutMs);
    return r!;
  }

  /**
   * Runs several commands in one write: one round trip for all of them. A batch longer than `MAX_LINE` is sent as
   * several lines (virsh slows down on very long lines, and readline must never scroll one, see `ensureChild`).
   */
  runMany(commands: string[], timeoutMs = this.options.timeoutMs): Promise<VirshResult[]> {
    for (const c of commands) {
      if (c.includes("\n")) throw new Error(`virsh command must be one line: ${JSON.stringify(c)}`);
    }
    // Each command adds its two end markers (~50 characters) to the line.
    const length = commands.reduce((n, c) => n + c.length + 60, 0);
    if (length > MAX_LINE && commands.length > 1) {
      const half = Math.ceil(commands.length / 2);
      return Promise.all([this.runMany(commands.slice(0, half), timeoutMs), this.runMany(commands.slice(half), timeoutMs)]).then(([a, b]) => [...a, ...b]);
    }
    this.inFlight++;
    const next = this.queue.then(() => this.send(commands, timeoutMs)).finally(() => this.inFlight--);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Calls queued or running on this session (to pick the least busy of several). */
  get load(): number {
    return this.inFlight;
  }

  /** Stops the process. */
  async close(): Promise<void> {
    await this.queue;
    const child = this.child;
    this.child = null;
    if (!child) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.stdin.end("quit\n");
      setTimeout(() => killGroup(child), 2000).unref();
    });
  }

  private ensureChild(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    // Keepalive notices a dead remote transport; local drivers refuse it and the connection fails.
    const keepalive = isRemoteUri(this.options.uri) ? ["-k", "5", "-K", "3"] : ["-k", "0"];
    const child = spawn(this.options.virshPath ?? "virsh", ["-q", ...keepalive, "-c", this.options.uri], {
      stdio: ["pipe", "pipe", "pipe"],
      // A process group of its own, so that a timeout kills virsh's transport too (see `killGroup`).
      detached: true,
      // virsh reads its input with readline, which echoes each line after the prompt. Beyond the screen width (80
      // when unknown) readline scrolls the line sideways, printing pieces that start anywhere, e.g. right at a marker,
      // and a marker not preceded by its quote would end a batch early; a terminal type with its own width (TERM=xterm)
      // wraps it with carriage returns instead. A dumb terminal wider than any batch prevents both.
      // (Not wider than that: readline's buffers grow with it; 10^8 columns cost 0.5 GB and 0.3 s per virsh.)
      env: { ...process.env, LC_ALL: "C", LANG: "C", TERM: "dumb", COLUMNS: String(SCREEN_COLUMNS), LINES: "1000" },
    });
    this.out = "";
    this.err = "";
    this.outScanned = 0;
    this.errScanned = 0;
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    // Events of a process that was killed after a timeout must not touch the buffers or the batch of its successor.
    child.stdout.on("data", (d: string) => {
      if (this.child !== child) return;
      this.out += d;
      this.check();
    });
    child.stderr.on("data", (d: string) => {
      if (this.child !== child) return;
      this.err += d;
      this.check();
    });
    child.on("error", (e) => this.fail(new VirshSessionError(`cannot run virsh: ${e.message}`, "spawn"), child));
    child.stdin.on("error", () => undefined); // EPIPE after the process died; reported through "exit".
    child.on("exit", (code, signal) => {
      if (this.child !== child) return;
      const detail = errorLines(this.err).filter((l) => !l.startsWith("@@")).join("; ");
      this.fail(new VirshSessionError(detail || `virsh exited (${signal ?? code})`, "exited"), child);
    });
    this.child = child;
    return child;
  }

  private send(commands: string[], timeoutMs: number): Promise<VirshResult[]> {
    return new Promise((resolve, reject) => {
      const child = this.ensureChild();
      const marker = `@@${this.nonce}.${++this.seq}.`;
      const timer = setTimeout(() => {
        this.pending = null;
        this.kill();
        reject(new VirshSessionError(`no answer within ${timeoutMs} ms (${commands[0]}…); the session was reset`, "timeout"));
      }, timeoutMs);
      this.pending = { marker, commands, resolve, reject, timer };
      // One `;`-joined line per batch: virsh handles it about four times faster than one line per command.
      const line = commands
        .map((c, i) => `${c} ; echo "${marker}E${i}" ; echo --err "${marker}E${i}"`)
        .join(" ; ");
      child.stdin.write(line + "\n");
    });
  }

  private check(): void {
    const p = this.pending;
    if (!p) return;
    const last = `${p.marker}E${p.commands.length - 1}`;
    // The marker also appears in virsh's echo of the command line (`virsh # echo "…" ; …`), always right after a
    // quote; the echo command's output never is. Searches resume where the last one stopped: a large batch arrives
    // in many chunks, and rescanning the whole buffer on each would be quadratic.
    let outAt = this.out.indexOf(last, this.outScanned);
    while (outAt > 0 && this.out[outAt - 1] === '"') outAt = this.out.indexOf(last, outAt + 1);
    if (outAt < 0) {
      this.outScanned = Math.max(0, this.out.length - last.length - 1);
      return;
    }
    const errNeedle = `error: ${last}\n`;
    if (this.err.indexOf(errNeedle, this.errScanned) < 0) {
      this.errScanned = Math.max(0, this.err.length - errNeedle.length);
      this.outScanned = outAt;
      return;
    }
    this.outScanned = 0;
    this.errScanned = 0;
    const outEnd = outAt + last.length;
    const errEnd = this.err.indexOf(`error: ${last}\n`) + `error: ${last}\n`.length;
    const out = this.out.slice(0, outEnd).replace(PROMPT_LINE, "");
    const err = this.err.slice(0, errEnd);
    this.out = this.out.slice(outEnd);
    this.err = this.err.slice(errEnd);
    clearTimeout(p.timer);
    this.pending = null;
    // Each command's output runs from the previous command's end marker (or the batch's start) to its own.
    let outPos = 0;
    let errPos = 0;
    const results = p.commands.map((command, i) => {
      const o = upTo(out, `${p.marker}E${i}`, outPos);
      const e = upTo(err, `error: ${p.marker}E${i}\n`, errPos);
      outPos = o.end;
      errPos = e.end;
      const errors = errorLines(e.text);
      return { command, ok: errors.length === 0, stdout: o.text, errors };
    });
    p.resolve(results);
  }

  private fail(e: Error, child: ChildProcessWithoutNullStreams): void {
    if (this.child !== child) return;
    this.child = null;
    const p = this.pending;
    if (!p) return;
    clearTimeout(p.timer);
    this.pending = null;
    p.reject(e);
  }

  private kill(): void {
    const child = this.child;
    this.child = null;
    if (child) killGroup(child);
  }
}

/**
 * Kills virsh and what it started. For qemu+ssh:// virsh runs `ssh` as its child; killed alone, virsh leaves that ssh
 * behind, waiting for as long as the host stays silent (a frozen host never closes the connection): one more
 * process and connection for every call that timed out. virsh runs in a process group of its own, so the group goes.
 * Only while virsh has not been reaped: its pid, and so its group's id, cannot have been reused until then.
 */
function killGroup(child: ChildProcessWithoutNullStreams): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
}

function upTo(text: string, end: string, from: number): { text: string; end: number } {
  const b = text.indexOf(end, from);
  return b < 0 ? { text: text.slice(from), end: text.length } : { text: text.slice(from, b), end: b + end.length };
}

function errorLines(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("error: "))
    .map((l) => l.slice("error: ".length));
}

/** True when the URI names a remote host (a transport that keepalive can watch). */
export function isRemoteUri(uri: string): boolean {
  return /^[a-z]+\+(ssh|tcp|tls|libssh|libssh2)/.test(uri) || /^[a-z]+:\/\/[^/]/.test(uri);
}

/** Quotes one argument for virsh's command parser. */
export function quoteArg(value: string): string {
  if (/^[A-Za-z0-9_./:@%+=,-]+$/.test(value)) return value;
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
