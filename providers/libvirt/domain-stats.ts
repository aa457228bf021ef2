import type { CounterSource, DomainCounters } from "../../metrics/types.js";
import { parseDomstats } from "./parse.js";
import { quoteArg as q, type VirshSession } from "./virsh-session.js";

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

/** Options of `LibvirtCounterSource`. */
export interface LibvirtCounterSourceOptions {
  /** Timeout of the call, ms. @default the session's timeout */
  timeoutMs?: number;
  /** The clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

const NO_SUCH_DOMAIN = /failed to get domain|domain not found|no domain with matching/i;

/**
 * The libvirt adapter of the collector's `CounterSource` port: one `domstats` call per sample on its own
 * `VirshSession` (give it a session of its own, so sampling never queues behind an apply's calls).
 *
 * virsh fails the whole call when one named domain does not exist (it was just destroyed); then the counters of
 * all active domains are read instead (a second call) and filtered, so a sample still costs at most two calls.
 */
export class LibvirtCounterSource implements CounterSource {
  constructor(
    readonly host: string,
    private readonly session: VirshSession,
    private readonly options: LibvirtCounterSourceOptions = {},
  ) {}

  async sample(names: string[], signal?: AbortSignal): Promise<DomainCounters[]> {
    if (names.length === 0) return [];
    const now = this.options.now ?? Date.now;
    const run = async (command: string) => {
      // Once sent, a call is not abandoned: the session's own timeout ends it, and until then the collector counts
      // the host as busy instead of queueing more calls behind it.
      signal?.throwIfAborted();
      const t0 = now();
      const r = await this.session.run(command, this.options.timeoutMs);
      // The host read the counters somewhere between sending and answering: take the middle.
      return { r, at: Math.round((t0 + now()) / 2) };
    };
    let { r, at } = await run(domstatsCommand(names));
    let wanted: Set<string> | undefined;
    if (!r.ok && r.errors.some((e) => NO_SUCH_DOMAIN.test(e))) {
      ({ r, at } = await run(`domstats ${DOMSTATS_FLAGS} --list-active`));
      wanted = new Set(names);
    }
    if (!r.ok) throw new Error(`domstats failed: ${r.errors.join("; ")}`);
    const counters = parseDomainCounters(r.stdout, at);
    return wanted ? counters.filter((c) => wanted.has(c.name)) : counters;
  }
}
