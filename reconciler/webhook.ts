/**
 * The webhook receiver: GitHub (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body) and GitLab (`X-Gitlab-Token`)
 * push and pull/merge-request events trigger a reconcile at once instead of at the next poll. A valid event calls
 * `onTrigger` (debounced: a burst of events gives one call); anything else gets a 4xx and a log line, never a crash.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { PremiscaleError } from "../config/errors.js";
import { closeServer, createHttpServer, header, listenOn, listeningUrl, readBody, sendText } from "../server/http-request.js";

/** One accepted event. */
export interface WebhookEvent {
  source: "github" | "gitlab";
  /** `push`, `pull_request` (GitLab merge requests too). */
  kind: "push" | "pull_request";
  /** The pushed ref (`refs/heads/main`) or the pull request's target branch. */
  ref: string | null;
  /** GitHub's `X-GitHub-Delivery`, GitLab's `X-Gitlab-Event-UUID`. */
  delivery: string | null;
}

/** A log line of the receiver. Never holds a secret, a signature or a body. */
export interface WebhookLogLine {
  level: "info" | "warn" | "error";
  event: "webhook_listening" | "webhook_accepted" | "webhook_ignored" | "webhook_rejected" | "webhook_error";
  status?: number;
  reason?: string;
  source?: string;
  kind?: string;
  ref?: string | null;
  delivery?: string | null;
  remoteAddress?: string;
  url?: string;
}

/** Options of `createWebhookReceiver`. */
export interface WebhookOptions {
  /** @default "127.0.0.1" */
  host?: string;
  /** 0 picks a free port (read `url` after `listen()`). @default 0 */
  port?: number;
  /** Path that receives events. @default "/webhook" */
  path?: string;
  /** The secret set in GitHub's webhook settings; GitHub requests are refused without it. */
  githubSecret?: string;
  /** The secret token set in GitLab's webhook settings; GitLab requests are refused without it. */
  gitlabToken?: string;
  /** Only pushes to (and pull requests into) this branch trigger; others are acknowledged and ignored. null = any. */
  branch?: string | null;
  /** @default 1048576 (1 MiB) */
  maxBodyBytes?: number;
  /** Events within this window give one trigger. @default 500 */
  debounceMs?: number;
  /** Called, debounced, with the events since the last call. */
  onTrigger: (events: WebhookEvent[]) => void;
  log?: (line: WebhookLogLine) => void;
}

/** A webhook receiver. */
export interface WebhookReceiver {
  /** `http://host:port` once listening. */
  readonly url: string;
  listen(): Promise<void>;
  /** Stops listening; a pending debounced trigger is dropped. */
  close(): Promise<void>;
}

type Outcome = { status: number; body: string; log: WebhookLogLine };

/** Makes (does not start) the receiver. */
export function createWebhookReceiver(options: WebhookOptions): WebhookReceiver {
  const host = options.host ?? "127.0.0.1";
  const path = options.path ?? "/webhook";
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const debounceMs = options.debounceMs ?? 500;
  if (!options.githubSecret && !options.gitlabToken) {
    throw new PremiscaleError("the webhook receiver needs a GitHub secret or a GitLab token", "usage", "set gitops.webhook.secretEnv to a variable holding the secret");
  }
  const log = (line: WebhookLogLine) => {
    try {
      options.log?.(Object.fromEntries(Object.entries(line).filter(([, v]) => v !== undefined)) as WebhookLogLine);
    } catch {
      // A broken logger must not stop the receiver.
    }
  };

  let pending: WebhookEvent[] = [];
  let timer: NodeJS.Timeout | null = null;
  const schedule = (e: WebhookEvent) => {
    pending.push(e);
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      const events = pending;
      pending = [];
      try {
        options.onTrigger(events);
      } catch (err) {
        log({ level: "error", event: "webhook_error", reason: `onTrigger threw: ${(err as Error).message}` });
      }
    }, debounceMs);
  };

  const reject = (status: number, reason: string, body = reason): Outcome => ({ status, body, log: { level: "warn", event: "webhook_rejected", status, reason } });

  async function handle(req: IncomingMessage): Promise<Outcome> {
    // An origin-form target is a path even when it starts with "//", which new URL(target, base) reads as a host and
    // throws on (//a:99999/x, //[::1): that was a 500. Absolute-form targets (http://h/path) are parsed whole.
    const target = req.url ?? "/";
    let pathname: string;
    try {
      pathname = new URL(target.startsWith("/") ? `http://x${target}` : target).pathname;
    } catch {
      return reject(400, "the request target is not a URL", "bad request");
    }
    if (pathname !== path) return reject(404, "no such path", "not found");
    if (req.method !== "POST") return reject(405, `method ${req.method} not allowed`, "method not allowed");
    const gh = header(req, "x-hub-signature-256");
    const gl = header(req, "x-gitlab-token");
    if (gh === null && gl === null) return reject(401, "no signature (X-Hub-Signature-256) or token (X-Gitlab-Token)", "unauthorized");
    // A forged GitLab token is refused before its body is read.
    if (gl !== null && (!options.gitlabToken || !sameSecret(gl, options.gitlabToken))) return reject(401, "wrong X-Gitlab-Token", "unauthorized");
    if (gl === null && !options.githubSecret) return reject(401, "GitHub signature, but no GitHub secret is configured", "unauthorized");
    const declared = Number(header(req, "content-length") ?? NaN);
    if (declared > maxBodyBytes) return reject(413, `body of ${declared} bytes is over the ${maxBodyBytes}-byte limit`, "payload too large");
    const body = await readBody(req, maxBodyBytes);
    if (body === "too_large") return reject(413, `body is over the ${maxBodyBytes}-byte limit`, "payload too large");
    if (body === "aborted") return reject(400, "the client left before sending the whole body");
    if (gl === null && !validSignature(gh!, body, options.githubSecret!)) return reject(401, "X-Hub-Signature-256 does not match the body", "unauthorized");

    const type = (header(req, "content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json") return reject(415, `content type ${type || "(none)"}: set the webhook's content type to application/json`);
    let payload: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(body.toString("utf8"));
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
      payload = parsed as Record<string, unknown>;
    } catch (e) {
      return reject(400, `body is not a JSON object: ${(e as Error).message}`, "bad request: body is not JSON");
    }

    const source = gl !== null ? "gitlab" : "github";
    const name = gl !== null ? header(req, "x-gitlab-event") : header(req, "x-github-event");
    const delivery = gl !== null ? header(req, "x-gitlab-event-uuid") : header(req, "x-github-delivery");
    if (source === "github" && name === "ping") {
      return { status: 200, body: "pong", log: { level: "info", event: "webhook_ignored", status: 200, source, kind: "ping", delivery, reason: "ping" } };
    }
    const kind = eventKind(source, name);
    if (!kind) {
      return { status: 202, body: "ignored", log: { level: "info", event: "webhook_ignored", status: 202, source, kind: name ?? "(none)", delivery, reason: "not a push or pull request event" } };
    }
    const ref = eventRef(kind, payload);
    const branch = options.branch ?? null;
    if (branch !== null && ref !== null && ref !== `refs/heads/${branch}` && ref !== branch) {
      return { status: 202, body: "ignored", log: { level: "info", event: "webhook_ignored", status: 202, source, kind, ref, delivery, reason: `not for branch ${branch}` } };
    }
    schedule({ source, kind, ref, delivery });
    return { status: 202, body: "accepted", log: { level: "info", event: "webhook_accepted", status: 202, source, kind, ref, delivery } };
  }

  const server = createHttpServer({ requestTimeoutMs: 10_000 }, (req, res) => {
    handle(req)
      .then((o) => {
        sendText(req, res, { status: o.status, body: o.body });
        log({ ...o.log, remoteAddress: req.socket.remoteAddress });
      })
      .catch((e: unknown) => {
        log({ level: "error", event: "webhook_error", reason: (e as Error).message, remoteAddress: req.socket.remoteAddress });
        sendText(req, res, { status: 500, body: "internal error" });
      });
  });
  server.on("clientError", (_err, socket) => socket.destroy());

  return {
    get url(): string {
      const url = listeningUrl(server, host);
      if (url === null) throw new PremiscaleError("the webhook receiver is not listening", "server_not_listening", "call listen() first");
      return `${url}${path}`;
    },
    listen: async () => {
      try {
        await listenOn(server, options.port ?? 0, host);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new PremiscaleError(`cannot listen on ${host}:${options.port ?? 0} for webhooks: ${err.message}`, "server_listen_failed", err.code === "EADDRINUSE" ? "another process uses that port: choose another one (gitops.webhook.listen)" : "check gitops.webhook.listen", { cause: err });
      }
      log({ level: "info", event: "webhook_listening", url: `http://${host}:${(server.address() as { port: number }).port}${path}` });
    },
    close: () => {
      if (timer) clearTimeout(timer);
      timer = null;
      pending = [];
      return closeServer(server);
    },
  };
}

/** GitHub's signature check: `sha256=` + hex HMAC-SHA256 of the raw body, compared in constant time. */
export function validSignature(signature: string, body: Buffer, secret: string): boolean {
  const m = /^sha256=([0-9a-f]{64})$/i.exec(signature.trim());
  if (!m) return false;
  const expected = createHmac("sha256", secret).update(body).digest();
  return timingSafeEqual(Buffer.from(m[1]!, "hex"), expected);
}

/** Constant-time equality of two secrets of any length (their digests are compared). */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest());
}

function eventKind(source: "github" | "gitlab", name: string | null): WebhookEvent["kind"] | null {
  if (source === "github") return name === "push" ? "push" : name === "pull_request" ? "pull_request" : null;
  return name === "Push Hook" ? "push" : name === "Merge Request Hook" ? "pull_request" : null;
}

function eventRef(kind: WebhookEvent["kind"], p: Record<string, unknown>): string | null {
  if (kind === "push") return typeof p.ref === "string" ? p.ref : null;
  const pr = (p.pull_request ?? p.object_attributes) as Record<string, unknown> | undefined;
  const base = (pr?.base as Record<string, unknown> | undefined)?.ref ?? pr?.target_branch;
  return typeof base === "string" ? `refs/heads/${base}` : null;
}
