import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * Writes a file so that a crash leaves the old content or the new, never half of either: a temporary file beside
 * it, synced, then renamed over it.
 */
export async function writeFileAtomic(path: string, text: string, options: { mode?: number; createDirs?: boolean } = {}): Promise<void> {
  const mode = options.mode ?? 0o644;
  if (options.createDirs) await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
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
