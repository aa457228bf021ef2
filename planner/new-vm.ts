/** Static addresses for new VMs. */
const ipv4Value = (address: string): number => {
  const parts = address.split(".").map(Number);
  return parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)
    ? parts.reduce((n, p) => n * 256 + p, 0)
    : Number.POSITIVE_INFINITY;
};

/** The addresses of `pool` not in `used`, lowest first. */
export function freeAddresses(pool: string[], used: ReadonlySet<string>): string[] {
  return [...new Set(pool)].filter((a) => !used.has(a)).sort((a, b) => ipv4Value(a) - ipv4Value(b) || (a < b ? -1 : 1));
}
