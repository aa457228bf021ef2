import { PremiscaleError } from "../config/errors.js";

/** `30s`, `5m`, `1h`, `250ms` or plain seconds → ms. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new PremiscaleError(`"${value}" is not a duration`, "usage", "write it like 30s, 5m or 1h");
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  return Math.round(Number(m[1]) * unit);
}

/** An option's parser (commander's `argParser`) for a whole number ≥ `min`; the error names the option. */
export function parseWholeNumber(name: string, min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new PremiscaleError(`${name} must be a whole number ≥ ${min}, got "${value}"`, "usage");
    return n;
  };
}
