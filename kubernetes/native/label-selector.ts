/**
 * Kubernetes label selectors (`metav1.LabelSelector`): PodDisruptionBudgets and pod (anti-)affinity terms select pods
 * with them. Pure.
 */

// The API's objects, as far as they are read here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ApiObject = any;

/** One requirement of a label selector's `matchExpressions`. */
export interface LabelRequirement {
  key: string;
  operator: string;
  values?: string[];
}

/** A `metav1.LabelSelector`. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelRequirement[];
}

/** A selector as the API gives it; undefined or null (select nothing) is null. */
export function selectorFromApi(sel: ApiObject): LabelSelector | null {
  if (sel === undefined || sel === null) return null;
  return {
    ...(sel.matchLabels ? { matchLabels: { ...sel.matchLabels } } : {}),
    ...(sel.matchExpressions ? { matchExpressions: sel.matchExpressions.map((r: ApiObject) => ({ key: String(r.key), operator: String(r.operator), ...(Array.isArray(r.values) ? { values: r.values.map(String) } : {}) })) } : {}),
  };
}

/** Whether `labels` match `selector` (Kubernetes' rules; an unknown operator matches nothing, as the API server treats an invalid selector). */
export function selectorMatches(selector: LabelSelector | null, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const values = r.values ?? [];
    switch (r.operator) {
      case "In":
        if (!has || !values.includes(labels[r.key]!)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[r.key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
