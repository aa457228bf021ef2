import type { VmCounters as DomainCounters } from "../provider.js";
import { parseDomstats } from "./parse.js";
import { quoteArg as q } from "./virsh-session.js";

/**
 * The stats groups premiscale reads, in one bulk call (`virConnectGetAllDomainStats`). `--nowait` skips, for that
 * call only, stats of a domain whose QEMU monitor is busy (a long job), so one stuck domain cannot hold the host's
 * whole sample; unsupported groups (the test driver) are left out silently, since `--enforce` is not given.
 */
export const DOMSTATS_FLAGS = "--raw --cpu-total --balloon --vcpu --block --interface --state --nowait";

/** The one virsh command that reads the counters of the named domains (all domains when `names` is empty). */
export function domstatsCommand(names: readonly string[]): string {
  return ["domstats", DOMSTATS_FLAGS, ...names.map(q)].join(" ");
}

const num = (v: string | undefined): number | undefined => {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
};

/** Sums `PREFIX.N.FIELD` over `N < PREFIX.count`; `undefined` when no entry has the field. */
function sumIndexed(kv: Record<string, string>, prefix: "block" | "net", field: string): number | undefined {
  const count = num(kv[`${prefix}.count`]) ?? 0;
  let sum: number | undefined;
  for (let i = 0; i < count; i++) {
    const v = num(kv[`${prefix}.${i}.${field}`]);
    if (v !== undefined) sum = (sum ?? 0) + v;
  }
  return sum;
}

/** The counters of one domain from its `domstats --raw` fields (`Domain: 'NAME'` block). Pure. */
export function countersFromStats(name: string, kv: Record<string, string>, at: number): DomainCounters {
  const c: DomainCounters = {
    name,
    at,
    cpuTimeNs: num(kv["cpu.time"]),
    vcpus: num(kv["vcpu.current"]),
    blockReadBytes: sumIndexed(kv, "block", "rd.bytes"),
    blockWriteBytes: sumIndexed(kv, "block", "wr.bytes"),
    blockReadReqs: sumIndexed(kv, "block", "rd.reqs"),
    blockWriteReqs: sumIndexed(kv, "block", "wr.reqs"),
    netRxBytes: sumIndexed(kv, "net", "rx.bytes"),
    netTxBytes: sumIndexed(kv, "net", "tx.bytes"),
    balloonCurrentKiB: num(kv["balloon.current"]),
    balloonAvailableKiB: num(kv["balloon.available"]),
    balloonUnusedKiB: num(kv["balloon.unused"]),
    balloonUsableKiB: num(kv["balloon.usable"]),
    balloonRssKiB: num(kv["balloon.rss"]),
  };
  for (const k of Object.keys(c) as (keyof DomainCounters)[]) if (c[k] === undefined) delete c[k];
  return c;
}

/**
 * `domstats --raw` output → counters of the domains that have any (a shut-off domain reports only its state and is
 * left out). Pure.
 */
export function parseDomainCounters(out: string, at: number): DomainCounters[] {
  const result: DomainCounters[] = [];
  for (const [name, kv] of parseDomstats(out)) {
    const c = countersFromStats(name, kv, at);
    if (Object.keys(c).length > 2) result.push(c);
  }
  return result;
}
