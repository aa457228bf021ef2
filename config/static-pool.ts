/**
 * Static IPv4 pools of groups: parsing `addresses` (single addresses and `a.b.c.d-a.b.c.e` ranges), the gateway and
 * DNS, and whether the pool holds `max` addresses.
 */
import type { ConfigIssue } from "./errors.js";
import { quote } from "./schema-issues.js";
import type { Seg, Source } from "./yaml-source.js";
import type { PremiscaleConfig } from "./schema-types.js";

/** `networking` as written, after the schema's defaults. */
/** A group's networking as written, defaults filled (generated from the schema). */
export type RawNetworking = NonNullable<PremiscaleConfig["groups"]>[number]["networking"];

/** IPv4 dotted quad as a number, or undefined. */
function ipv4(s: string): number | undefined {
  const parts = s.split(".");
  if (parts.length !== 4 || !parts.every((x) => /^(0|[1-9]\d{0,2})$/.test(x) && Number(x) <= 255)) return undefined;
  return parts.reduce((acc, x) => acc * 256 + Number(x), 0);
}
/** A number as a dotted quad. */
export const ipString = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
const subnet = (ip: number, prefix: number): number => Math.floor(ip / 2 ** (32 - prefix));

/** A parsed entry of a static pool: its first and last address as numbers, and its index in `addresses`. */
export interface Range {
  start: number;
  end: number;
  index: number;
}

/** Static pool rules of one group: parsed ranges (for cross-group checks) and issues. */
export function staticIssues(src: Source, gi: number, g: { max: number; networking: RawNetworking }): { ranges: Range[]; issues: ConfigIssue[] } {
  const net = g.networking;
  const segs: Seg[] = ["groups", gi, "networking"];
  const issues: ConfigIssue[] = [];
  const ranges: Range[] = [];
  const prefix = net.prefix ?? 32;
  (net.addresses ?? []).forEach((entry, index) => {
    const [a = "", b, ...rest] = entry.split("-").map((s) => s.trim());
    const start = ipv4(a);
    const end = b === undefined ? start : ipv4(b);
    if (start === undefined || end === undefined || rest.length) {
      issues.push(src.issue([...segs, "addresses", index], `${quote(entry)} is not an IPv4 address or range`, "write a.b.c.d or a.b.c.d-a.b.c.e"));
    } else if (start > end) {
      issues.push(src.issue([...segs, "addresses", index], `range ${quote(entry)} starts after it ends`, `write ${b}-${a}`));
    } else ranges.push({ start, end, index });
  });
  if (net.gateway !== undefined) {
    const gw = ipv4(net.gateway);
    const outside = gw === undefined ? undefined : ranges.find((r) => subnet(r.start, prefix) !== subnet(gw, prefix) || subnet(r.end, prefix) !== subnet(gw, prefix));
    if (gw === undefined) issues.push(src.issue([...segs, "gateway"], `${quote(net.gateway)} is not an IPv4 address`));
    else if (outside) {
      const entry = net.addresses?.[outside.index] ?? "";
      issues.push(src.issue([...segs, "gateway"], `gateway ${net.gateway} is not in the same /${prefix} subnet as ${entry}`, "fix the gateway, the prefix or the addresses"));
    } else if (ranges.some((r) => r.start <= gw && gw <= r.end)) {
      issues.push(src.issue([...segs, "gateway"], `gateway ${net.gateway} is inside the address pool`, "take the gateway out of addresses"));
    }
  }
  net.dns.forEach((d, i) => {
    if (ipv4(d) === undefined) issues.push(src.issue([...segs, "dns", i], `${quote(d)} is not an IPv4 address`));
  });
  const size = [...ranges]
    .sort((x, y) => x.start - y.start)
    .reduce<{ count: number; last: number }>(
      (acc, r) => ({ count: acc.count + Math.max(0, r.end - Math.max(r.start, acc.last + 1) + 1), last: Math.max(acc.last, r.end) }),
      { count: 0, last: -1 },
    ).count;
  if (ranges.length === (net.addresses ?? []).length && size < g.max) {
    issues.push(src.issue([...segs, "addresses"], `the pool has ${size} address${size === 1 ? "" : "es"} but max is ${g.max}`, `add addresses or lower max to ${size}`));
  }
  return { ranges, issues };
}
