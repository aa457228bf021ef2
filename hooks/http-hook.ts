/**
 * A user's lifecycle hook that is an HTTP call: the event is POSTed as JSON, signed the way GitHub signs webhooks
 * (`X-Premiscale-Signature-256: sha256=<hex HMAC-SHA256 of the body with the secret>`), with `X-Premiscale-Event`
 * (launching / terminating) and `X-Premiscale-Delivery` (one id per run of the hook, the same on every retry).
 *
 * Answers: 2xx continues, unless its JSON body says `{"result": "abandon", "message": …}`; 202 Accepted means "still
 * working": it counts as a heartbeat and the call is made again after `Retry-After` (or 5 s; at most half the
 * timeout, which a heartbeat lasts), the same body, until another answer or the hook's timeout. No connection, no answer within a request's timeout, 408, 429 or 5xx are
 * retried with backoff (1, 2, 4 … 30 s, or `Retry-After`). When the hook's time runs out, its default result is
 * taken, with the last error in the message. Any other status (a 4xx:
 * the URL or the secret is wrong) abandons at once. Redirects are not followed (a signed POST is not re-sent
 * elsewhere).
 */
import { createHmac, randomUUID } from "node:crypto";
import type { HookContext, HookOutcome, LifecycleHook } from "../applier/lifecycle.js";
import type { LifecycleHookConfig } from "../config/types.js";
import { VERSION } from "../config/version.js";
import { boundedHeartbeat, HOOK_POINT, hookEvent, hookLabel } from "./hook-event.js";

/** A hook of the config that makes an HTTP call. */
export type HttpHookConfig = Extract<LifecycleHookConfig, { http: object }>;

/** The secret and the clocks of an HTTP hook. */
export interface HttpHookOptions {
  /** The HMAC secret (the value of the variable `http.secretEnv` names). */
  secret: string;
  /** Timeout of one request (connect, answer and body). @default 10000 */
  requestTimeoutMs?: number;
  /** @default () => new Date() */
  now?: () => Date;
  /** Monotonic ms. @default performance.now */
  clock?: () => number;
  /** Waits `ms`, or less when `signal` aborts. @default a timer */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** How long to wait after a 202 without Retry-After. */
const POLL_MS = 5000;
/** Backoff of retries after an error: 1, 2, 4 … up to this. */
const MAX_BACKOFF_MS = 30_000;
/** Statuses worth asking again: the endpoint is busy or broken for now. */
const RETRY_STATUSES = new Set([408, 425, 429]);

/** The HMAC signature header's value for a body. */
export function signature(body: string, secret: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** The lifecycle hook that POSTs to `hook.http.url` (see the module comment). */
export function httpHook(hook: HttpHookConfig, o: HttpHookOptions): LifecycleHook {
  const timeoutMs = hook.timeoutSeconds * 1000;
  return {
    name: hook.name,
    point: HOOK_POINT[hook.on],
    defaultResult: hook.defaultResult,
    timeoutMs: () => timeoutMs,
    run: (ctx) => call(hook, o, ctx),
  };
}

async function call(hook: HttpHookConfig, o: HttpHookOptions, ctx: HookContext): Promise<HookOutcome> {
  const clock = o.clock ?? (() => performance.now());
  const sleep = o.sleep ?? wait;
  const requestTimeoutMs = o.requestTimeoutMs ?? 10_000;
  const timeoutMs = hook.timeoutSeconds * 1000;
  const label = hookLabel(hook);
  const where = `POST ${shownUrl(hook.http.url)}`;
  const body = JSON.stringify(hookEvent(hook, ctx.vm, (o.now ?? (() => new Date()))()));
  const headers = {
    "content-type": "application/json",
    "user-agent": `premiscale/${VERSION}`,
    "x-premiscale-event": hook.on,
    "x-premiscale-hook": hook.name,
    "x-premiscale-delivery": randomUUID(),
    "x-premiscale-signature-256": signature(body, o.secret),
  };
  const heartbeat = boundedHeartbeat(ctx, timeoutMs, clock);
  // The hook ends itself a little before runHook's timer would, so that its message (with the last error) is the
  // one reported rather than a bare "timed out".
  const margin = Math.min(1000, timeoutMs / 10);
  let deadline = clock() + timeoutMs - margin;
  let lastError = "";
  let failures = 0;
  const stopped = (): HookOutcome => ({ result: "abandon", message: `${label}: stopped (${reason(ctx.signal)})` });
  const giveUp = (): HookOutcome => ({
    result: hook.defaultResult,
    message: `${label}: ${where} ${lastError} when its ${hook.timeoutSeconds} s ran out; took its default result, ${hook.defaultResult}`,
  });
  for (;;) {
    const remaining = deadline - clock();
    if (remaining <= 0) return giveUp();
    const limit = Math.max(1, Math.floor(Math.min(requestTimeoutMs, remaining)));
    let status: number;
    let text: string;
    let retryAfterMs: number | null;
    try {
      const res = await fetch(hook.http.url, {
        method: "POST",
        headers,
        body,
        redirect: "manual",
        signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(limit)]),
      });
      status = res.status;
      retryAfterMs = parseRetryAfter(res.headers.get("retry-after"), (o.now ?? (() => new Date()))());
      text = await res.text();
    } catch (e) {
      if (ctx.signal.aborted) return stopped();
      lastError = `failed (${transportError(e, limit)})`;
      status = 0;
      text = "";
      retryAfterMs = null;
    }
    let delay: number;
    if (status === 202) {
      if (heartbeat()) deadline = clock() + timeoutMs - margin;
      lastError = "was still working (202 Accepted)";
      failures = 0;
      // Asked again within half the timeout at most, so the next request has time to be answered before it ends.
      delay = Math.min(retryAfterMs ?? POLL_MS, (timeoutMs - margin) / 2);
    } else if (status >= 200 && status < 300) {
      return answer(label, status, text);
    } else if (status === 0 || status >= 500 || RETRY_STATUSES.has(status)) {
      if (status !== 0) lastError = `failed (HTTP ${status}${snippet(text) ? `: ${snippet(text)}` : ""})`;
      delay = retryAfterMs ?? Math.min(MAX_BACKOFF_MS, 1000 * 2 ** failures);
      failures++;
    } else {
      const why = status >= 300 && status < 400 ? "redirects are not followed: set the URL to where it points" : status === 401 || status === 403 ? "check that the endpoint and http.secretEnv hold the same secret" : "check the URL";
      return { result: "abandon", message: `${label}: ${where} answered HTTP ${status}${snippet(text) ? `: ${snippet(text)}` : ""} (${why})` };
    }
    // Never past the deadline: the last try is made just before it, not skipped.
    const room = deadline - clock() - margin / 2;
    if (room <= 0) return giveUp();
    await sleep(Math.min(delay, room), ctx.signal);
    if (ctx.signal.aborted) return stopped();
  }
}

/** A 2xx answer: its body may say the result. */
function answer(label: string, status: number, text: string): HookOutcome {
  let parsed: unknown;
  try {
    parsed = text.trim() ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined; // a 2xx with a body that is not JSON (e.g. "OK") is a plain yes
  }
  if (!parsed || typeof parsed !== "object" || !("result" in parsed)) return { result: "continue" };
  const { result, message } = parsed as { result: unknown; message?: unknown };
  const said = typeof message === "string" && message ? message : undefined;
  if (result === "continue") return { result: "continue", ...(said ? { message: `${label}: ${said}` } : {}) };
  if (result === "abandon") return { result: "abandon", message: `${label} answered abandon${said ? `: ${said}` : ""}` };
  return { result: "abandon", message: `${label} answered HTTP ${status} with result ${JSON.stringify(result)}, which is neither "continue" nor "abandon"` };
}

/** `Retry-After` (seconds, or an HTTP date) in ms; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: Date): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now.getTime());
}

/** The URL as shown in messages: no query (it may carry a token) and no credentials. */
function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

function transportError(e: unknown, limitMs: number): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err.name === "TimeoutError" || err.name === "AbortError") return `no answer within ${Math.round(limitMs / 100) / 10} s`;
  return `cannot connect: ${err.cause?.code ?? err.cause?.message ?? err.message}`;
}

function snippet(text: string): string {
  const t = text.trim().replace(/\s+/g, " ");
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}

function reason(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? "aborted");
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
