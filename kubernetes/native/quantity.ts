/**
 * Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `128974848`, `129e6`) as integers premiscale can add up:
 * CPU in millicores (rounded up, as the scheduler does) and memory in bytes. Pure.
 */

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$/;

/** A quantity as a plain number of base units (cores, bytes), or undefined when it is not a quantity. */
export function parseQuantity(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  if (typeof q === "number") return Number.isFinite(q) ? q : undefined;
  const m = QUANTITY.exec(q.trim());
  if (!m) return undefined;
  const base = Number(m[1]);
  if (m[2]) return base * 10 ** Number(m[2].slice(1));
  return base * SUFFIX[m[3] ?? ""]!;
}

/** CPU in millicores, rounded up (`100m` → 100, `0.5` → 500, `1` → 1000); 0 when absent or unreadable. */
export function cpuMillis(q: string | number | undefined): number {
  const v = parseQuantity(q);
  // 1e-9 forgives floating-point noise: 0.1 cores is 100 millicores, not 101.
  return v === undefined || v <= 0 ? 0 : Math.ceil(v * 1000 - 1e-9);
}

/** Memory in bytes, rounded up; 0 when absent or unreadable. */
export function memoryBytes(q: string | number | undefined): number {
  const v = parseQuantity(q);
  return v === undefined || v <= 0 ? 0 : Math.ceil(v - 1e-9);
}

/** A count (`pods: "110"`); 0 when absent or unreadable. */
export function count(q: string | number | undefined): number {
  const v = parseQuantity(q);
  return v === undefined || v <= 0 ? 0 : Math.floor(v + 1e-9);
}

/** Bytes in a human unit for reasons: `512Mi`, `1.5Gi`. */
export function formatBytes(b: number): string {
  if (b >= 2 ** 30) return `${+(b / 2 ** 30).toFixed(2)}Gi`;
  if (b >= 2 ** 20) return `${+(b / 2 ** 20).toFixed(1)}Mi`;
  if (b >= 2 ** 10) return `${+(b / 2 ** 10).toFixed(1)}Ki`;
  return `${b}`;
}

/** Millicores for reasons: `1500m`, `2`. */
export function formatMillis(m: number): string {
  return m % 1000 === 0 ? String(m / 1000) : `${m}m`;
}
