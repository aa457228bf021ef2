/** How values appear in config messages. No imports: policies/ (pure) reaches this through validate-scaling. */

/** Longer strings are cut in messages: a 1 MB value must not become a 1 MB error. */
export const SHOW_CHARS = 80;

/** `s` itself, or its first `max` characters, "…" and its whole length: how every long text in a message is cut. */
export function cutText(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length.toLocaleString("en-US")} characters)`;
}

/** A value as written in a message: quoted, and a long one cut to its start and its length. */
export const quote = (s: string): string => (s.length <= SHOW_CHARS ? JSON.stringify(s) : `${JSON.stringify(s.slice(0, SHOW_CHARS))}… (${s.length.toLocaleString("en-US")} characters)`);

/** A value for "got …" in a message. */
export function show(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return typeof v === "string" ? quote(v) : String(v);
}
