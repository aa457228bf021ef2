import { MetricsError } from "./types.js";

/** A URL as it may be shown: without user and password. */
export function displayUrl(url: string | URL): string {
  const u = new URL(url);
  u.username = "";
  u.password = "";
  return u.toString().replace(/\/$/, "");
}

/** Options of one request to a metrics server. */
export interface RequestOptions {
  /** Shown in errors (no credentials). */
  source: string;
  timeoutMs: number;
  headers?: Record<string, string>;
  /** Form body: sent as a POST (long member lists do not fit in a URL). */
  form?: URLSearchParams;
}

/**
 * Fetches JSON from a metrics server. Every way it can go wrong becomes a `MetricsError` naming the source: no
 * connection, no answer in time, an HTTP error (with the server's own message when it gives one), or a body that is
 * not JSON.
 */
export async function fetchJson(url: URL, o: RequestOptions): Promise<unknown> {
  // fetch refuses URLs with credentials (and would echo them in its error): send them as Basic authentication.
  const target = new URL(url);
  const auth: Record<string, string> = {};
  if (target.username || target.password) {
    const user = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    auth.authorization = `Basic ${Buffer.from(user).toString("base64")}`;
    target.username = "";
    target.password = "";
  }
  let res: Response;
  try {
    res = await fetch(target, {
      method: o.form ? "POST" : "GET",
      headers: { accept: "application/json", ...(o.form ? { "content-type": "application/x-www-form-urlencoded" } : {}), ...auth, ...o.headers },
      body: o.form?.toString(),
      signal: AbortSignal.timeout(o.timeoutMs),
    });
  } catch (e) {
    throw transportError(e, o);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    throw transportError(e, o);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const said = serverMessage(body) ?? snippet(text);
    throw new MetricsError(o.source, `HTTP ${res.status}${said ? `: ${said}` : ""}`, res.status === 401 || res.status === 403 ? "check the credentials" : "check the URL and the query templates", { code: "metrics_http_error" });
  }
  if (body === undefined) {
    throw new MetricsError(o.source, `answered with something that is not JSON (${res.headers.get("content-type") ?? "no content type"}): ${snippet(text)}`, "check that the URL points at the server's API", { code: "metrics_bad_answer" });
  }
  return body;
}

function transportError(e: unknown, o: RequestOptions): MetricsError {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err.name === "TimeoutError" || err.name === "AbortError") {
    return new MetricsError(o.source, `no answer within ${o.timeoutMs / 1000} s`, "check the server, or raise the source's timeout", { cause: e, code: "metrics_timeout" });
  }
  const why = (err.cause?.code ?? err.cause?.message ?? err.message).replace(/\/\/[^/@\s]*@/g, "//");
  return new MetricsError(o.source, `cannot connect (${why})`, "check that the server runs and that the URL is right", { cause: e, code: "metrics_unreachable" });
}

function serverMessage(body: unknown): string | undefined {
  if (body && typeof body === "object") {
    const b = body as { error?: unknown; message?: unknown };
    if (typeof b.error === "string") return b.error;
    if (typeof b.message === "string") return b.message;
  }
  return undefined;
}

function snippet(text: string): string {
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > 120 ? `${t.slice(0, 120)}…` : t;
}
