/**
 * Expanders: which group grows when several could take the pending pods, as cluster-autoscaler's `--expander`
 * chooses. A chain (`priority,least-waste`) narrows the options one expander after the other; each keeps the best
 * (all that tie). What is left after the chain is decided by the group name (first), so a decision never depends on
 * map order; put `random` last for cluster-autoscaler's own tie-break. Pure: `random` draws from an injected
 * generator.
 *
 *   least-waste  least unused CPU + memory share on the new nodes (DaemonSet pods count as used)
 *   priority     the highest priority whose regular expressions match the group name (groups matching none are
 *                dropped; when no group matches any, all stay, as upstream)
 *   random       one, uniformly
 *   most-pods    the most pending pods placed
 *   least-nodes  the fewest new nodes
 */
import type { SimPod } from "./cluster-model.js";

/** The expanders. */
export const EXPANDERS = ["least-waste", "priority", "random", "most-pods", "least-nodes"] as const;
/** One expander. */
export type ExpanderName = (typeof EXPANDERS)[number];

/** A group that could take some pending pods, and what it would cost. */
export interface ExpansionOption {
  group: string;
  newNodes: number;
  /** The pods it would place (may be built when read: use `podCount` to count them). */
  readonly pods: readonly SimPod[];
  podCount: number;
  waste: { cpu: number; memory: number };
}

/** A priority and the regular expressions (on group names) that have it. */
export interface PriorityRule {
  priority: number;
  patterns: readonly string[];
}

/** What the expanders need besides the options. */
export interface ExpanderContext {
  /** The `priority` expander's rules (cluster-autoscaler's ConfigMap `priorities`: priority → regexes). */
  priorities?: readonly PriorityRule[];
  /** A number in [0, 1): the `random` expander's draw. */
  random?: () => number;
}

/** The option chosen and why, in words with the numbers ("least waste 12%"). */
export interface Expansion {
  option: ExpansionOption;
  /** What each expander that had a say said, in chain order. */
  why: string[];
}

/** "12%" from a waste share (the mean of CPU and memory, as a percentage). */
export function wastePercent(o: ExpansionOption): number {
  return Math.round(((o.waste.cpu + o.waste.memory) / 2) * 100);
}

function best<T>(options: T[], score: (o: T) => number): T[] {
  let top = Infinity;
  for (const o of options) top = Math.min(top, score(o));
  return options.filter((o) => score(o) <= top + 1e-12);
}

const compiled = new Map<string, RegExp>();
function regex(p: string): RegExp {
  let r = compiled.get(p);
  if (!r) compiled.set(p, (r = new RegExp(p)));
  return r;
}

/** Picks one of `options` (at least one) through `chain`. */
export function expand(chain: readonly ExpanderName[], options: readonly ExpansionOption[], ctx: ExpanderContext = {}): Expansion {
  if (options.length === 0) throw new Error("expand needs at least one option");
  let left = [...options].sort((a, b) => a.group.localeCompare(b.group));
  const why: string[] = [];
  if (left.length === 1) return { option: left[0]!, why: [`only ${left[0]!.group} can take them`] };
  for (const name of chain) {
    if (left.length === 1) break;
    switch (name) {
      case "least-waste": {
        left = best(left, (o) => o.waste.cpu + o.waste.memory);
        why.push(`least waste ${wastePercent(left[0]!)}%`);
        break;
      }
      case "most-pods": {
        left = best(left, (o) => -o.podCount);
        why.push(`most pods ${left[0]!.podCount}`);
        break;
      }
      case "least-nodes": {
        left = best(left, (o) => o.newNodes);
        why.push(`least nodes ${left[0]!.newNodes}`);
        break;
      }
      case "priority": {
        const rank = (o: ExpansionOption): number | undefined => {
          let p: number | undefined;
          for (const r of ctx.priorities ?? []) if (r.patterns.some((x) => regex(x).test(o.group)) && (p === undefined || r.priority > p)) p = r.priority;
          return p;
        };
        const ranked = left.filter((o) => rank(o) !== undefined);
        if (ranked.length === 0) {
          why.push("no priority matches");
          break;
        }
        left = best(ranked, (o) => -rank(o)!);
        why.push(`priority ${rank(left[0]!)}`);
        break;
      }
      case "random": {
        const draw = (ctx.random ?? (() => 0))();
        left = [left[Math.min(left.length - 1, Math.floor(draw * left.length))]!];
        why.push(`random of ${options.length}`);
        break;
      }
    }
  }
  if (left.length > 1) why.push(`tie: first by name of ${left.map((o) => o.group).join(", ")}`);
  return { option: left[0]!, why };
}
