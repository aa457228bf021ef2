import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

/**
 * Temporary files are named `<target>.<pid>[.<tag>].tmp`: the writer's pid in the name is what lets a later process
 * tell a dead writer's leftover (a `kill -9` between the write and the rename) from a live writer's file in flight.
 */
export function tempPathFor(path: string, tag?: string): string {
  return `${path}.${process.pid}${tag ? `.${tag}` : ""}.tmp`;
}

const TEMP_NAME = /^(.+)\.(\d+)(?:\.[A-Za-z0-9-]+)?\.tmp$/;

/** The target and writer pid of a temporary file's name, or null when the name is not one of ours. */
export function parseTempName(name: string): { target: string; pid: number } | null {
  const m = TEMP_NAME.exec(name);
  return m ? { target: m[1]!, pid: Number(m[2]) } : null;
}

/** Whether a process with this pid exists on this machine (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the temporary files in `dir` (not below it) that `isLeftover` judges left behind by a writer that died.
 * Returns the names removed. A directory that does not exist has nothing to sweep.
 */
export async function sweepTempFiles(dir: string, isLeftover: (t: { name: string; target: string; pid: number }) => boolean): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR") return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names) {
    const t = parseTempName(name);
    if (!t || t.pid === process.pid || !isLeftover({ name, ...t })) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Writes a file so that a crash leaves the old content or the new, never half of either: a temporary file beside
 * it, synced, then renamed over it.
 */
export async function writeFileAtomic(path: string, text: string, options: { mode?: number; createDirs?: boolean } = {}): Promise<void> {
  const mode = options.mode ?? 0o644;
  if (options.createDirs) await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const fh = await open(tmp, "w", mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
}
