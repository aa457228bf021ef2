/**
 * PodDisruptionBudgets in scale-down's simulation: which pods each one covers and how many more evictions it allows,
 * so a plan never takes more nodes than the PDBs let it drain. Pure.
 *
 * Read as the Eviction API reads them (kube-apiserver's pod eviction REST), since the drain evicts through it:
 *   - a PDB covers the pods of its namespace that its `spec.selector` matches (no selector: none; `{}`: all);
 *   - a pod covered by more than one PDB cannot be evicted at all (the API answers 500);
 *   - a bound pod still `Pending` is evicted without asking its PDB;
 *   - a pod that is not Ready takes nothing from its PDB when the PDB says `unhealthyPodEvictionPolicy: AlwaysAllow`,
 *     or when the PDB is satisfied (`currentHealthy ≥ desiredHealthy > 0`);
 *   - a PDB whose status the disruption controller has not caught up with (`observedGeneration < generation`)
 *     refuses every eviction (429), as does one with `disruptionsAllowed` 0.
 * Every other covered pod takes one of the PDB's `status.disruptionsAllowed`, across the whole plan
 * (cluster-autoscaler's RemainingPdbTracker does the same count, without the rules above).
 */
import { podKey, type SimPod } from "./cluster-model.js";
import { selectorFromApi, selectorMatches, type LabelSelector } from "./label-selector.js";
import { namePods } from "./scale-up.js";

/** A PodDisruptionBudget as scale-down sees it. */
export interface SimPdb {
  namespace: string;
  name: string;
  /** null: the PDB selects no pod. */
  selector: LabelSelector | null;
  /** `status.disruptionsAllowed`. */
  disruptionsAllowed: number;
  /** `status.currentHealthy` and `status.desiredHealthy`: whether an unready pod may go without taking from it. */
  currentHealthy: number;
  desiredHealthy: number;
  /** `spec.unhealthyPodEvictionPolicy: AlwaysAllow`. */
  alwaysAllowUnhealthy: boolean;
  /** `status.observedGeneration < metadata.generation`: the Eviction API refuses every eviction until it catches up. */
  stale: boolean;
}

// The API's objects, as far as they are read here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ApiObject = any;

/** A policy/v1 PodDisruptionBudget as a `SimPdb`. */
export function pdbFromApi(o: ApiObject): SimPdb {
  const meta = o.metadata ?? {};
  const st = o.status ?? {};
  const sel = o.spec?.selector;
  return {
    namespace: meta.namespace ?? "default",
    name: meta.name,
    selector: selectorFromApi(sel),
    disruptionsAllowed: Number(st.disruptionsAllowed ?? 0),
    currentHealthy: Number(st.currentHealthy ?? 0),
    desiredHealthy: Number(st.desiredHealthy ?? 0),
    alwaysAllowUnhealthy: o.spec?.unhealthyPodEvictionPolicy === "AlwaysAllow",
    stale: Number(st.observedGeneration ?? 0) < Number(meta.generation ?? 0),
  };
}

/** Why a set of pods cannot be evicted within the PDBs' remaining disruptions. */
export interface PdbBlock {
  /** The PDB that refuses (absent: the pod has several PDBs). */
  pdb?: string;
  pods: SimPod[];
  why: string;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
const podsPhrase = (pods: readonly SimPod[]) => (pods.length === 1 ? `pod ${podKey(pods[0]!)} is` : `pods ${namePods(pods)} are`);

/**
 * The PDBs and what the plan has taken from them so far. `check` says whether some pods may be evicted on top of
 * what was taken; `take` records that they are.
 */
export class PdbTracker {
  private readonly left = new Map<SimPdb, number>();
  private readonly takenBy = new Map<SimPdb, string[]>();

  constructor(private readonly pdbs: readonly SimPdb[]) {
    for (const p of pdbs) this.left.set(p, p.stale ? 0 : Math.max(0, p.disruptionsAllowed));
  }

  /** The PDBs covering `pod` (its namespace, its labels). */
  covering(pod: SimPod): SimPdb[] {
    return this.pdbs.filter((p) => p.namespace === pod.namespace && selectorMatches(p.selector, pod.labels ?? {}));
  }

  /** Per PDB, the pods among `pods` whose eviction takes one of its disruptions; and the pods no eviction can move. */
  private demand(pods: readonly SimPod[]): { need: Map<SimPdb, SimPod[]>; multi: { pod: SimPod; pdbs: SimPdb[] }[] } {
    const need = new Map<SimPdb, SimPod[]>();
    const multi: { pod: SimPod; pdbs: SimPdb[] }[] = [];
    for (const pod of pods) {
      if (pod.phase === "Pending") continue;
      const cover = this.covering(pod);
      if (cover.length > 1) multi.push({ pod, pdbs: cover });
      if (cover.length !== 1) continue;
      const p = cover[0]!;
      if (pod.ready === false && (p.alwaysAllowUnhealthy || (p.currentHealthy >= p.desiredHealthy && p.desiredHealthy > 0))) continue;
      (need.get(p) ?? need.set(p, []).get(p)!).push(pod);
    }
    return { need, multi };
  }

  /** null when `pods` may all be evicted within what the PDBs have left; else the first PDB (by name) that refuses. */
  check(pods: readonly SimPod[]): PdbBlock | null {
    const { need, multi } = this.demand(pods);
    if (multi.length > 0) {
      const { pod, pdbs } = multi[0]!;
      return { pods: [pod], why: `pod ${podKey(pod)} is covered by ${pdbs.length} PDBs (${pdbs.map((p) => p.name).sort().join(", ")}): the Eviction API refuses to evict a pod with more than one` };
    }
    const refusals = [...need].filter(([p, ps]) => ps.length > this.left.get(p)!).sort((a, b) => a[0].name.localeCompare(b[0].name));
    if (refusals.length === 0) return null;
    const [p, ps] = refusals[0]!;
    const left = this.left.get(p)!;
    const taken = this.takenBy.get(p) ?? [];
    let why = `${podsPhrase(ps)} covered by PDB ${p.name}`;
    if (p.stale) why += `, whose status the disruption controller has not updated yet (the Eviction API refuses until it has)`;
    else {
      why += `, ${plural(p.disruptionsAllowed, "disruption", "disruptions")} allowed`;
      if (taken.length > 0) why += ` (${left} left once ${taken.join(", ")} ${taken.length === 1 ? "goes" : "go"})`;
      if (left > 0) why += `: ${ps.length} evictions needed`;
    }
    return { pdb: p.name, pods: ps, why };
  }

  /** Records that `pods` are evicted for node `node` (call only after `check` said yes). */
  take(pods: readonly SimPod[], node: string): void {
    for (const [p, ps] of this.demand(pods).need) {
      this.left.set(p, this.left.get(p)! - ps.length);
      (this.takenBy.get(p) ?? this.takenBy.set(p, []).get(p)!).push(node);
    }
  }

  /** Disruptions each PDB has left (`namespace/name` → count). */
  remaining(): Record<string, number> {
    return Object.fromEntries([...this.left].map(([p, n]) => [`${p.namespace}/${p.name}`, n]));
  }
}
