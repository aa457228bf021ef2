import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PremiscaleError } from "../config/errors.js";
import { tempPathFor, writeFileAtomic } from "../state/atomic-file.js";
import type { CheckIn } from "./check-in-server.js";
import { MIN_SECRET_BYTES } from "./instance-token.js";

/**
 * The check-in ledger: one file per instance that checked in, `<dir>/check-ins/<instance id>.json`, written
 * atomically by whichever process runs the check-in server (`premiscale serve`, or apply itself) and read by apply
 * while it waits for readiness. It lives in the state directory's local, git-ignored `.premiscale/` folder, beside
 * the server secret; it never holds a token.
 */
export class CheckInLedger {
  constructor(readonly dir: string) {}

  private file(instanceId: string): string {
    return join(this.dir, "check-ins", `${instanceId}.json`);
  }

  /** Records an instance's latest check-in. */
  async record(checkIn: CheckIn): Promise<void> {
    await writeFileAtomic(this.file(checkIn.instanceId), JSON.stringify(checkIn, null, 2) + "\n", { mode: 0o600, createDirs: true });
  }

  /** The instance's latest check-in, or null when it has not checked in. */
  async get(instanceId: string): Promise<CheckIn | null> {
    try {
      return JSON.parse(await readFile(this.file(instanceId), "utf8")) as CheckIn;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new PremiscaleError(`cannot read check-in record ${this.file(instanceId)}: ${(e as Error).message}`, "ledger_unreadable", "remove the file; the VM's next check-in rewrites it");
    }
  }

  /** Records a heartbeat (atomically, one small file per instance). */
  async recordSeen(instanceId: string, at: string): Promise<void> {
    await writeFileAtomic(join(this.dir, "check-ins", `${instanceId}.seen`), `${at}\n`, { mode: 0o600, createDirs: true });
  }

  /** When the instance was last heard from (heartbeat or check-in), or null when never. */
  async lastSeen(instanceId: string): Promise<string | null> {
    const checkIn = await this.get(instanceId);
    let seen: string | null = null;
    try {
      seen = (await readFile(join(this.dir, "check-ins", `${instanceId}.seen`), "utf8")).trim() || null;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const times = [checkIn?.receivedAt, seen].filter((t): t is string => typeof t === "string" && !Number.isNaN(Date.parse(t)));
    return times.sort((a, b) => Date.parse(a) - Date.parse(b)).at(-1) ?? null;
  }

  /** Forgets an instance (its VM was destroyed). */
  async forget(instanceId: string): Promise<void> {
    await rm(this.file(instanceId), { force: true });
    await rm(join(this.dir, "check-ins", `${instanceId}.seen`), { force: true });
  }
}

/**
 * The check-in server's `onCheckIn` and `onHeartbeat` for a ledger: each record is written in the background,
 * failures go to `onError`, and `flush()` waits for the writes in flight (call it after the server closed, so a
 * check-in accepted just before exit is not lost).
 */
export function ledgerRecorder(
  ledger: CheckInLedger,
  onError: (instanceId: string, what: "check-in" | "heartbeat", e: Error) => void,
): { onCheckIn(c: CheckIn): void; onHeartbeat(instanceId: string, at: string): void; flush(): Promise<void> } {
  const pending = new Set<Promise<void>>();
  const track = (instanceId: string, what: "check-in" | "heartbeat", write: Promise<void>) => {
    const p = write.catch((e: unknown) => onError(instanceId, what, e as Error));
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  return {
    onCheckIn: (c) => track(c.instanceId, "check-in", ledger.record(c)),
    onHeartbeat: (id, at) => track(id, "heartbeat", ledger.recordSeen(id, at)),
    flush: async () => {
      await Promise.all([...pending]);
    },
  };
}

/**
 * The server secret behind every instance token, `<dir>/server.secret` (hex, mode 0600). Made on first use; two
 * processes starting at once agree on one (the file is created with its content in one step via a hard link).
 */
export async function loadServerSecret(dir: string): Promise<Buffer> {
  const path = join(dir, "server.secret");
  const read = async (): Promise<Buffer | null> => {
    try {
      const hex = (await readFile(path, "utf8")).trim();
      const secret = Buffer.from(hex, "hex");
      if (secret.length < MIN_SECRET_BYTES || secret.toString("hex") !== hex.toLowerCase()) {
        throw new PremiscaleError(
          `the server secret ${path} is not ${MIN_SECRET_BYTES} or more bytes of hex`,
          "secret_invalid",
          "remove the file to make a new one (VMs created with the old one then cannot check in again)",
        );
      }
      return secret;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  };
  const existing = await read();
  if (existing) return existing;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = tempPathFor(path);
  await writeFile(tmp, randomBytes(MIN_SECRET_BYTES).toString("hex") + "\n", { mode: 0o600 });
  try {
    await link(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  } finally {
    await rm(tmp, { force: true });
  }
  return (await read())!;
}
