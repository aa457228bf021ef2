import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { Change } from "../planner/plan.js";

/**
 * The apply journal: one JSON object per line, appended and flushed to disk before each step starts and after each
 * change ends, so that after a crash (`kill -9`, power loss) the next apply can say what was in flight.
 *
 * The journal tells; it does not decide. Recovery comes from state and observation: a create is recorded in state as
 * `creating` and a destroy as `deleting` before their first host call, and the planner finishes or undoes those. The
 * journal adds what state cannot hold: which step each change had reached, by which process, and when.
 */
export type JournalEntry =
  | { type: "apply_begin"; apply: string; at: string; pid: number; changes: number; based_on_serial: number }
  | { type: "change_begin"; apply: string; at: string; address: string; action: Change["action"]; host: string; name: string; uuid: string }
  /** A step is about to start; the previous step of the same change has ended. */
  | { type: "step"; apply: string; at: string; address: string; step: string }
  | { type: "change_end"; apply: string; at: string; address: string; ok: boolean; error?: string }
  | { type: "apply_end"; apply: string; at: string; succeeded: number; failed: number };

/** Where the applier writes its journal. */
export interface ApplyJournal {
  /** Appends one entry; returns once it is on disk. */
  append(entry: JournalEntry): void;
}

/** A change that had begun and not ended when its apply stopped. */
export interface InFlight {
  address: string;
  action: Change["action"];
  host: string;
  /** The last step it had started, or null before its first. */
  lastStep: string | null;
}

/** An apply that began and never ended: it crashed or was killed. */
export interface InterruptedApply {
  apply: string;
  pid: number;
  startedAt: string;
  inFlight: InFlight[];
  /** Changes that had finished before it stopped. */
  finished: number;
}

/** An append-only journal file, flushed after every line. */
export class FileJournal implements ApplyJournal {
  private fd: number | null;

  /** Opens (creating if needed) the journal at `path`. */
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.fd = openSync(path, "a", 0o600);
  }

  append(entry: JournalEntry): void {
    if (this.fd === null) throw new Error(`journal ${this.path} is closed`);
    writeSync(this.fd, JSON.stringify(entry) + "\n");
    fdatasyncSync(this.fd);
  }

  /**
   * Closes the journal. After an apply that ended, the file is moved to `<path>.last` so the next apply starts
   * with an empty journal and the latest finished one stays readable.
   */
  close(options: { rotate: boolean }): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    if (options.rotate) renameSync(this.path, `${this.path}.last`);
  }
}

/**
 * Reads a journal and returns the applies in it that never ended (normally none, or the one a crash cut short).
 * A torn last line (the crash hit mid-write) is ignored; a missing file is an empty journal.
 */
export function readInterrupted(path: string): InterruptedApply[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  return interruptedApplies(text);
}

/** The pure part of `readInterrupted`. */
export function interruptedApplies(text: string): InterruptedApply[] {
  const applies = new Map<string, InterruptedApply & { open: Map<string, InFlight>; ended: boolean }>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let e: JournalEntry;
    try {
      e = JSON.parse(line) as JournalEntry;
    } catch {
      continue; // a line torn by the crash
    }
    if (e.type === "apply_begin") {
      applies.set(e.apply, { apply: e.apply, pid: e.pid, startedAt: e.at, inFlight: [], finished: 0, open: new Map(), ended: false });
      continue;
    }
    const a = applies.get(e.apply);
    if (!a) continue;
    if (e.type === "change_begin") a.open.set(e.address, { address: e.address, action: e.action, host: e.host, lastStep: null });
    else if (e.type === "step") {
      const c = a.open.get(e.address);
      if (c) c.lastStep = e.step;
    } else if (e.type === "change_end") {
      a.open.delete(e.address);
      a.finished++;
    } else if (e.type === "apply_end") a.ended = true;
  }
  return [...applies.values()]
    .filter((a) => !a.ended)
    .map(({ apply, pid, startedAt, open, finished }) => ({ apply, pid, startedAt, finished, inFlight: [...open.values()] }));
}

/** What one finished apply did, from its journal: for `premiscale serve`'s /metrics. */
export interface ApplySummary {
  apply: string;
  startedAt: string;
  endedAt: string;
  succeeded: number;
  failed: number;
  /** Per step: how many ran and how long they took (a step lasts until the next step or the change's end). */
  steps: Map<string, { count: number; totalSeconds: number; maxSeconds: number }>;
}

/** The summary of the last apply in a journal that ended (normally `journal.jsonl.last`), or null. */
export function summarizeApply(text: string): ApplySummary | null {
  const entries: JournalEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      entries.push(JSON.parse(line) as JournalEntry);
    } catch {
      // a torn line
    }
  }
  const end = entries.findLast((e) => e.type === "apply_end");
  const begin = end && entries.find((e) => e.type === "apply_begin" && e.apply === end.apply);
  if (!end || end.type !== "apply_end" || !begin) return null;
  const steps = new Map<string, { count: number; totalSeconds: number; maxSeconds: number }>();
  const open = new Map<string, { step: string; at: number }>();
  const close = (address: string, at: number) => {
    const o = open.get(address);
    if (!o) return;
    const seconds = Math.max(0, (at - o.at) / 1000);
    const s = steps.get(o.step) ?? { count: 0, totalSeconds: 0, maxSeconds: 0 };
    steps.set(o.step, { count: s.count + 1, totalSeconds: s.totalSeconds + seconds, maxSeconds: Math.max(s.maxSeconds, seconds) });
    open.delete(address);
  };
  for (const e of entries) {
    if (e.apply !== end.apply) continue;
    const at = Date.parse(e.at);
    if (e.type === "step") {
      close(e.address, at);
      open.set(e.address, { step: e.step, at });
    } else if (e.type === "change_end") close(e.address, at);
  }
  return { apply: end.apply, startedAt: begin.at, endedAt: end.at, succeeded: end.succeeded, failed: end.failed, steps };
}
