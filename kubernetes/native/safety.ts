/**
 * The safety rules of native mode, with cluster-autoscaler's defaults: halt all scaling when too many nodes are
 * unready, wait after a scale-up, a scale-down or a failure before scaling down, and back a group off when its new
 * nodes fail to become Ready (the first failure is replaced at once; after that the group waits, doubling, so a VM
 * that never joins is not made again and again). Pure: the times are data.
 */

/** The options, in milliseconds; defaults are cluster-autoscaler's. */
export interface SafetyOptions {
  /** --scan-interval. @default 10000 */
  scanIntervalMs: number;
  /** --scale-down-delay-after-add. @default 600000 */
  delayAfterAddMs: number;
  /** --scale-down-delay-after-delete; 0 means the scan interval, as upstream. @default 0 */
  delayAfterDeleteMs: number;
  /** --scale-down-delay-after-failure. @default 180000 */
  delayAfterFailureMs: number;
  /** --max-total-unready-percentage. @default 45 */
  maxTotalUnreadyPercentage: number;
  /** --ok-total-unready-count. @default 3 */
  okTotalUnreadyCount: number;
  /** First back-off of a group whose new node failed twice in a row; doubles, up to `maxBackoffMs`. @default 300000 */
  initialBackoffMs: number;
  /** @default 1800000 */
  maxBackoffMs: number;
}

/** cluster-autoscaler's defaults. */
export const DEFAULT_SAFETY: SafetyOptions = {
  scanIntervalMs: 10_000,
  delayAfterAddMs: 600_000,
  delayAfterDeleteMs: 0,
  delayAfterFailureMs: 180_000,
  maxTotalUnreadyPercentage: 45,
  okTotalUnreadyCount: 3,
  initialBackoffMs: 300_000,
  maxBackoffMs: 1_800_000,
};

/** What the loop remembers between scans (in memory, as cluster-autoscaler does). */
export interface NativeMemory {
  /** Per node: when it was first seen unneeded (ISO 8601). */
  unneededSince: Record<string, string>;
  lastScaleUp?: string;
  lastScaleDown?: string;
  lastFailure?: string;
  /** Per group: new nodes that failed (never Ready, create failed) in a row, and the last one's time. */
  failures: Record<string, { count: number; last: string }>;
}

/** A fresh memory (a restarted premiscale starts here, as cluster-autoscaler does). */
export const emptyMemory = (): NativeMemory => ({ unneededSince: {}, failures: {} });

/** Whether the cluster is healthy enough to scale: unready > okTotalUnreadyCount AND > the percentage halts it. */
export function clusterHealth(nodes: readonly { name: string; ready: boolean }[], o: SafetyOptions): { healthy: boolean; unready: number; total: number; reason?: string } {
  const unready = nodes.filter((n) => !n.ready).length;
  const total = nodes.length;
  const healthy = !(unready > o.okTotalUnreadyCount && unready > (o.maxTotalUnreadyPercentage / 100) * total);
  return healthy
    ? { healthy, unready, total }
    : { healthy, unready, total, reason: `${unready} of ${total} nodes unready (> ${o.okTotalUnreadyCount} and > ${o.maxTotalUnreadyPercentage}%): scaling halted until they recover` };
}

const since = (iso: string | undefined, now: Date) => (iso === undefined ? Infinity : now.getTime() - Date.parse(iso));
const secs = (ms: number) => `${Math.ceil(ms / 1000)} s`;

/** Why scale-down must wait now (a delay after an add, a delete or a failure), or undefined. */
export function scaleDownDelay(m: NativeMemory, now: Date, o: SafetyOptions): string | undefined {
  const afterAdd = o.delayAfterAddMs - since(m.lastScaleUp, now);
  if (afterAdd > 0) return `scale-down waits ${secs(afterAdd)} more after the scale-up at ${m.lastScaleUp} (delay after add ${secs(o.delayAfterAddMs)})`;
  const del = o.delayAfterDeleteMs > 0 ? o.delayAfterDeleteMs : o.scanIntervalMs;
  const afterDelete = del - since(m.lastScaleDown, now);
  if (afterDelete > 0) return `scale-down waits ${secs(afterDelete)} more after the scale-down at ${m.lastScaleDown} (delay after delete ${secs(del)})`;
  const afterFailure = o.delayAfterFailureMs - since(m.lastFailure, now);
  if (afterFailure > 0) return `scale-down waits ${secs(afterFailure)} more after the failure at ${m.lastFailure} (delay after failure ${secs(o.delayAfterFailureMs)})`;
  return undefined;
}

/**
 * Why a group may not grow now (backed off), or undefined. One failure: replaced at once. Two or more in a row:
 * `initialBackoffMs`, doubled per further failure, up to `maxBackoffMs`, from the last one.
 */
export function groupBackoff(m: NativeMemory, group: string, now: Date, o: SafetyOptions): string | undefined {
  const f = m.failures[group];
  if (!f || f.count < 2) return undefined;
  const wait = Math.min(o.maxBackoffMs, o.initialBackoffMs * 2 ** (f.count - 2));
  const left = wait - since(f.last, now);
  return left > 0 ? `backed off ${secs(left)} more: ${f.count} new nodes in a row failed (last at ${f.last})` : undefined;
}

/** The memory after a pass's results: scale-ups, scale-downs, and new nodes that failed or became Ready per group. */
export function recordResults(m: NativeMemory, now: Date, r: { added: number; removed: number; failedGroups: readonly string[]; joinedGroups: readonly string[] }): NativeMemory {
  const at = now.toISOString();
  const failures = { ...m.failures };
  for (const g of r.joinedGroups) delete failures[g];
  for (const g of r.failedGroups) failures[g] = { count: (failures[g]?.count ?? 0) + 1, last: at };
  return {
    ...m,
    failures,
    ...(r.added > 0 ? { lastScaleUp: at } : {}),
    ...(r.removed > 0 ? { lastScaleDown: at } : {}),
    ...(r.failedGroups.length > 0 ? { lastFailure: at } : {}),
  };
}
