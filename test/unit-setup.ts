import { createHash } from "node:crypto";
import { mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Keeps the unit project's promise, "nothing but Node", on every machine: while its tests run, PATH holds only a link
 * to this Node. A unit test that starts git, virsh, tmux or a metrics store fails here at once (spawn … ENOENT),
 * even on a machine that has them all; such a test belongs in the `fast` project (vitest.config.ts).
 */
const dir = join(tmpdir(), `premiscale-node-only-${createHash("sha256").update(process.execPath).digest("hex").slice(0, 12)}`);
mkdirSync(dir, { recursive: true });
try {
  symlinkSync(process.execPath, join(dir, "node"));
} catch (e) {
  if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
}
process.env.PATH = dir;
