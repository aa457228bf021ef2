/** Parsers for virsh's text output. Pure; tested against captured output. */

/** `list --all --uuid --name` → name → uuid. */
export function parseUuidNameList(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split("\n")) {
    const [uuid, name] = line.trim().split(/\s+/);
    if (uuid && name) m.set(name, uuid);
  }
  return m;
}

/** `domstats --raw …` → name → key/value record. */
export function parseDomstats(out: string): Map<string, Record<string, string>> {
  const m = new Map<string, Record<string, string>>();
  let current: Record<string, string> | null = null;
  for (const line of out.split("\n")) {
    const head = /^Domain: '(.*)'$/.exec(line.trim());
    if (head) {
      current = {};
      m.set(head[1]!, current);
      continue;
    }
    const kv = /^\s+([^=]+)=(.*)$/.exec(line);
    if (kv && current) current[kv[1]!] = kv[2]!;
  }
  return m;
}

/** `Key:   value` lines (nodeinfo, pool-info, nodememstats) → key → value. */
export function parseKeyValues(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) m.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return m;
}

/** A `N KiB` figure in MiB. */
export function kibToMiB(value: string | undefined): number {
  const n = Number.parseInt(value ?? "", 10);
  return Number.isFinite(n) ? Math.floor(n / 1024) : 0;
}

/** `vol-list POOL` → volume names. */
export function parseVolList(out: string): string[] {
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("Name") && !l.startsWith("---"))
    .map((l) => l.split(/\s+/)[0]!)
    .filter(Boolean);
}
