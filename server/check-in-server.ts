import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { PremiscaleError } from "../config/errors.js";
import { closeServer, createHttpServer, listenOn, listeningUrl, readBody, sendText } from "./http-request.js";
import type { TokenVerifier } from "./instance-token.js";
import { isInstanceId, parseCheckInForm, type SshKeyType } from "./parse-check-in.js";

export { hmacTokenVerifier, instanceToken, MIN_SECRET_BYTES, type TokenVerifier } from "./instance-token.js";
export { isInstanceId, parseCheckInForm, type CheckInForm, type CheckInFormResult, type SshKeyType } from "./parse-check-in.js";

/** One instance's check-in as recorded: the latest one, with how many were accepted. Never holds the token. */
export interface CheckIn {
  /** The instance id (premiscale's domain UUID), the same in the URL and the body. */
  instanceId: string;
  /** `null` when cloud-init sent `N/A`. */
  hostname: string | null;
  /** `null` when cloud-init sent `N/A`. */
  fqdn: string | null;
  /** The guest's SSH host public keys (OpenSSH lines) by type; only keys it has, never `N/A`. */
  pubKeys: Partial<Record<SshKeyType, string>>;
  /** ISO-8601 time of the latest accepted check-in, by the server's clock. */
  receivedAt: string;
  /** ISO-8601 time of the first accepted check-in. */
  firstReceivedAt: string;
  /** The client's User-Agent (`Cloud-Init/22.4.2` for cloud-init), `null` when it sent none. */
  userAgent: string | null;
  /** Check-ins accepted from this instance; above 1 means cloud-init retried or someone replayed the token. */
  count: number;
}

/**
 * How a check-in attempt ended; the `result` label of `premiscale_checkins_total` and the `result` of log lines.
 * `repeated` is an accepted check-in from an instance that had already checked in.
 */
export type CheckInResult =
  | "ok"
  | "heartbeat"
  | "repeated"
  | "forbidden"
  | "bad_request"
  | "too_large"
  | "unsupported_media_type"
  | "method_not_allowed"
  | "aborted"
  | "error";

/** A structured log line. It never holds a token, a raw URL or a request body. */
export interface ServerLogLine {
  /** ISO-8601, by the server's clock. */
  time: string;
  /** `debug` for heartbeats, which come every interval from every VM. */
  level: "debug" | "info" | "warn" | "error";
  event: "listening" | "closed" | "check_in" | "request_rejected" | "client_error" | "internal_error" | "server_error";
  method?: string;
  /** The route template (`/phone-home`, `/healthz`…), or `unmatched`. */
  route?: string;
  /** For unmatched routes only: the path with everything after its first segment replaced by `/…`. */
  path?: string;
  status?: number;
  result?: CheckInResult;
  instanceId?: string;
  /** Why a request was refused or failed: a fixed sentence, never client input. */
  reason?: string;
  /** Accepted check-ins from this instance so far. */
  count?: number;
  userAgent?: string;
  remoteAddress?: string;
  durationMs?: number;
  url?: string;
}

/** What `createCheckInServer` takes. Checked on entry; errors name the option. */
export interface CheckInServerOptions {
  /**
   * Address to listen on. Guests under QEMU user-mode networking reach the host's loopback as 10.0.2.2, so the
   * default serves them without exposing the port elsewhere.
   * @default "127.0.0.1"
   */
  host?: string;
  /**
   * Port; 0 picks a free one (read it from `url` after `listen()`).
   * @default 0
   */
  port?: number;
  /** Decides which token may check in as which instance; see `hmacTokenVerifier`. */
  tokens: TokenVerifier;
  /** Called after each accepted check-in (first or repeated) with a copy of the record. Errors are logged, not thrown. */
  onCheckIn?: (checkIn: CheckIn) => void;
  /** Called after each accepted heartbeat with the instance and the time. Errors are logged, not thrown. */
  onHeartbeat?: (instanceId: string, at: string) => void;
  /**
   * Largest check-in body accepted; longer ones get 413 and are not read further. cloud-init's body with four
   * RSA-4096-sized keys is under 4 KiB.
   * @default 16384
   */
  maxBodyBytes?: number;
  /**
   * Answers `GET /ready`. Errors count as not ready.
   * @default () => true
   */
  ready?: () => boolean;
  /** Receives one structured line per event worth keeping (every refused request among them). Must not throw. */
  logger: (line: ServerLogLine) => void;
  /**
   * The time for `receivedAt` and log lines. Durations use a monotonic clock instead.
   * @default () => new Date()
   */
  clock?: () => Date;
  /**
   * How long a client has to send a whole request, headers and body; a slower one gets 408 and is disconnected.
   * @default 10000
   */
  requestTimeoutMs?: number;
  /**
   * Whether to add prom-client's default process metrics (CPU, memory, event loop, GC) to `metrics`.
   * @default true
   */
  defaultMetrics?: boolean;
}

/** A check-in server made by `createCheckInServer`. */
export interface CheckInServer {
  /** `http://host:port` once listening (the real port when `port` was 0). Throws before `listen()`. */
  readonly url: string;
  /** Starts listening; rejects with a `PremiscaleError` when the address cannot be bound. Once only. */
  listen(): Promise<void>;
  /** Stops accepting, lets requests in flight finish (at most a couple of seconds), then resolves. Idempotent. */
  close(): Promise<void>;
  /** The latest check-in of every instance that checked in, in order of first check-in; copies. */
  checkIns(): CheckIn[];
  /**
   * The registry `/metrics` serves. Owned by this server, never prom-client's global one, so that several servers
   * (tests) do not collide; the rest of premiscale registers its own metrics (plans, applies, steps) here.
   */
  readonly metrics: Registry;
}

/** The route prefix for check-ins: `POST /phone-home/<instance id>/<token>` (or `…/<instance id>?token=<token>`). */
export const PHONE_HOME_PATH = "/phone-home";

/**
 * The `phone_home` section of the cloud-config premiscale puts in a VM's seed. cloud-init replaces `$INSTANCE_ID`
 * itself, so the URL names the instance as the guest knows it; `token` must be `instanceToken(secret, instanceId)`.
 * @param baseUrl the server as guests reach it, e.g. `http://10.0.2.2:8080` under user-mode networking.
 */
export function phoneHomeConfig(baseUrl: string, token: string, tries = 10): { url: string; post: "all"; tries: number } {
  return { url: `${baseUrl.replace(/\/+$/, "")}${PHONE_HOME_PATH}/$INSTANCE_ID/${encodeURIComponent(token)}`, post: "all", tries };
}

type RouteLabel = "/phone-home" | "/heartbeat" | "/healthz" | "/ready" | "/metrics" | "unmatched";

/** What a handler decided; the shell turns it into a response, log line and metrics. */
interface Outcome {
  status: number;
  body: string;
  contentType?: string;
  headers?: Record<string, string>;
  result?: CheckInResult;
  reason?: string;
  instanceId?: string;
  count?: number;
  level?: "debug" | "info" | "warn" | "error";
}

const DEFAULT_MAX_BODY_BYTES = 16 * 1024;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const CLOSE_GRACE_MS = 2_000;
const FORM_TYPE = "application/x-www-form-urlencoded";
const FORBIDDEN: Outcome = { status: 403, body: "forbidden", result: "forbidden", level: "warn" };

/**
 * Makes (does not start) the HTTP server that VMs check in with, plus `/healthz`, `/ready` and `/metrics`.
 * Every bad request gets a 4xx and a log line; none can crash it or leave an unhandled rejection.
 */
export function createCheckInServer(options: CheckInServerOptions): CheckInServer {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 0;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const clock = options.clock ?? (() => new Date());
  const ready = options.ready ?? (() => true);
  checkOptions(options, { host, port, maxBodyBytes, requestTimeoutMs });

  const records = new Map<string, CheckIn>();
  /** Latest heartbeat per instance. */
  const lastSeen = new Map<string, string>();
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const checkInsTotal = new Counter({
    name: "premiscale_checkins_total",
    help: "Check-in attempts by how they ended (ok: first from an instance, repeated: again from the same instance).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  // Zero series from the start, so rate() and alerts work before the first failure happens.
  for (const r of ["ok", "repeated", "forbidden", "bad_request", "too_large"] as const) checkInsTotal.inc({ result: r }, 0);
  new Gauge({
    name: "premiscale_checkin_instances",
    help: "Instances that have checked in since the server started.",
    registers: [registry],
    collect() {
      this.set(records.size);
    },
  });
  const httpRequests = new Counter({
    name: "premiscale_http_requests_total",
    help: "HTTP requests by route template and status code (aborted: the client left before the response).",
    labelNames: ["route", "code"] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: "premiscale_http_request_duration_seconds",
    help: "Time from a request's arrival to its response, by route template.",
    labelNames: ["route"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
    registers: [registry],
  });

  let closing = false;
  let closed: Promise<void> | null = null;
  const inFlight = new WeakMap<Socket, ServerResponse>();
  const reportedSockets = new WeakSet<Socket>();

  const log = (line: Omit<ServerLogLine, "time">) => {
    try {
      // Absent fields are left out rather than kept as undefined, so lines serialise the same everywhere.
      const fields = Object.fromEntries(Object.entries(line).filter(([, value]) => value !== undefined));
      options.logger({ time: clock().toISOString(), ...fields } as ServerLogLine);
    } catch {
      // A broken logger must not take check-ins down with it; there is nowhere left to report this.
    }
  };

  const server = createHttpServer(
    { requestTimeoutMs, keepAliveTimeoutMs: 5_000, maxHeaderSize: 8 * 1024 },
    (req, res) => {
      const started = performance.now();
      let route: RouteLabel = "unmatched";
      inFlight.set(req.socket, res);
      res.once("close", () => {
        if (inFlight.get(req.socket) === res) inFlight.delete(req.socket);
        httpRequests.inc({ route, code: res.writableFinished ? String(res.statusCode) : "aborted" });
        httpDuration.observe({ route }, (performance.now() - started) / 1000);
      });
      handle(req, (r) => (route = r))
        .then((outcome) => {
          if (outcome.result) checkInsTotal.inc({ result: outcome.result });
          if (outcome.result === "aborted") {
            if (!reportedSockets.has(req.socket)) logRequest(req, route, outcome, started);
            res.destroy();
            return;
          }
          send(req, res, outcome);
          // Every check-in attempt and every refused request is logged; health checks and scrapes are not.
          if (outcome.result || (outcome.status >= 400 && outcome.status < 500)) logRequest(req, route, outcome, started);
        })
        .catch((e: unknown) => {
          if (route === "/phone-home") checkInsTotal.inc({ result: "error" });
          log({ level: "error", event: "internal_error", method: req.method, route, reason: errorMessage(e) });
          if (res.headersSent) res.destroy();
          else send(req, res, { status: 500, body: "internal error" });
        });
    },
  );

  // Requests Node could not parse, or that ran out of time, never reach the handler; without this listener Node
  // would answer them silently.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    reportedSockets.add(socket);
    const response = inFlight.get(socket);
    const canAnswer = socket.writable && (!response || !response.headersSent) && err.code !== "ECONNRESET" && err.code !== "EPIPE";
    const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    log({
      level: "warn",
      event: "client_error",
      status: canAnswer ? status : undefined,
      reason: clientErrorReason(err),
      remoteAddress: socket.remoteAddress,
    });
    if (canAnswer) {
      const text = { 400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large" }[status];
      socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      if (!response) httpRequests.inc({ route: "unmatched", code: String(status) });
    }
    socket.destroy();
  });

  // Errors after listen() (e.g. running out of file descriptors on accept) would otherwise be thrown.
  server.on("error", (e: Error) => {
    if (server.listening) log({ level: "error", event: "server_error", reason: e.message });
  });

  function logRequest(req: IncomingMessage, route: RouteLabel, o: Outcome, started: number): void {
    const unmatched = route === "unmatched";
    log({
      level: o.level ?? (o.status >= 500 ? "error" : o.status >= 400 ? "warn" : "info"),
      event: o.result === "ok" || o.result === "repeated" ? "check_in" : "request_rejected",
      method: req.method,
      route,
      path: unmatched ? redactPath(req.url ?? "") : undefined,
      status: o.result === "aborted" ? undefined : o.status,
      result: o.result,
      instanceId: o.instanceId,
      reason: o.reason,
      count: o.count,
      userAgent: headerText(req.headers["user-agent"]),
      remoteAddress: req.socket.remoteAddress,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
    });
  }

  async function handle(req: IncomingMessage, setRoute: (r: RouteLabel) => void): Promise<Outcome> {
    const { path, query } = splitUrl(req.url ?? "");
    const segments = pathSegments(path);
    const method = req.method ?? "";
    const simple = segments?.length === 1 ? (`/${segments[0]}` as RouteLabel) : null;
    if (simple === "/healthz" || simple === "/ready" || simple === "/metrics") {
      setRoute(simple);
      if (method !== "GET" && method !== "HEAD") {
        return { status: 405, body: "method not allowed", headers: { Allow: "GET, HEAD" }, reason: "method not allowed" };
      }
      if (simple === "/healthz") return { status: 200, body: "ok" };
      if (simple === "/ready") return isReady() ? { status: 200, body: "ready" } : { status: 503, body: "not ready" };
      return { status: 200, body: await registry.metrics(), contentType: registry.contentType };
    }
    if (segments && (segments.length === 2 || segments.length === 3) && segments[0] === "phone-home" && segments.every((s) => s !== "")) {
      setRoute("/phone-home");
      return checkIn(req, segments[1]!, segments[2] ?? null, query);
    }
    if (segments && (segments.length === 2 || segments.length === 3) && segments[0] === "heartbeat" && segments.every((s) => s !== "")) {
      setRoute("/heartbeat");
      return heartbeat(req, segments[1]!, segments[2] ?? null, query);
    }
    return { status: 404, body: "not found", reason: "no such route" };
  }

  function isReady(): boolean {
    if (closing) return false;
    try {
      return ready() === true;
    } catch (e) {
      log({ level: "error", event: "internal_error", route: "/ready", reason: `options.ready() threw: ${errorMessage(e)}` });
      return false;
    }
  }

  /**
   * A heartbeat: `POST /heartbeat/<instance id>/<token>` (any small body, ignored), sent by a running guest every
   * interval, with the same token as its check-in. Says only "still alive".
   */
  async function heartbeat(req: IncomingMessage, rawId: string, rawPathToken: string | null, query: string): Promise<Outcome> {
    const who = authorize(req, rawId, rawPathToken, query);
    if ("status" in who) return who;
    const body = await readBody(req, maxBodyBytes);
    if (body === "too_large") return tooLarge(who.instanceId);
    if (body === "aborted") return { status: 400, body: "", result: "aborted", instanceId: who.instanceId, reason: "the client left before sending the whole body" };
    const at = clock().toISOString();
    lastSeen.set(who.instanceId, at);
    if (options.onHeartbeat) {
      try {
        options.onHeartbeat(who.instanceId, at);
      } catch (e) {
        log({ level: "error", event: "internal_error", route: "/heartbeat", instanceId: who.instanceId, reason: `onHeartbeat threw: ${errorMessage(e)}` });
      }
    }
    return { status: 200, body: "ok", result: "heartbeat", instanceId: who.instanceId, level: "debug" };
  }

  /** Method, instance id and token of a check-in or heartbeat: the instance, or the refusal. */
  function authorize(req: IncomingMessage, rawId: string, rawPathToken: string | null, query: string): { instanceId: string } | Outcome {
    if (req.method !== "POST") {
      return { status: 405, body: "method not allowed", headers: { Allow: "POST" }, result: "method_not_allowed", reason: "method not allowed" };
    }
    const instanceId = decodeSegment(rawId);
    if (instanceId === null || !isInstanceId(instanceId)) return badRequest("the instance id in the path is not valid");
    const queryTokens = new URLSearchParams(query).getAll("token");
    const pathToken = rawPathToken === null ? null : decodeSegment(rawPathToken);
    if (rawPathToken !== null && pathToken === null) return { ...FORBIDDEN, instanceId, reason: "the token in the path is not valid %-encoding" };
    if (queryTokens.length + (pathToken === null ? 0 : 1) > 1) return badRequest("the token is given more than once", instanceId);
    const token = pathToken ?? queryTokens[0];
    if (token === undefined || token === "") return { ...FORBIDDEN, instanceId, reason: "no token" };
    let accepted: boolean;
    try {
      accepted = options.tokens(instanceId, token) === true;
    } catch (e) {
      throw new Error(`the token verifier threw: ${errorMessage(e)}`, { cause: e });
    }
    if (!accepted) return { ...FORBIDDEN, instanceId, reason: "the token is not valid for this instance id" };
    return { instanceId };
  }

  async function checkIn(req: IncomingMessage, rawId: string, rawPathToken: string | null, query: string): Promise<Outcome> {
    const who = authorize(req, rawId, rawPathToken, query);
    if ("status" in who) return who;
    const { instanceId } = who;

    const mediaType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (mediaType !== FORM_TYPE) {
      return {
        status: 415,
        body: `unsupported media type: send ${FORM_TYPE}`,
        result: "unsupported_media_type",
        instanceId,
        reason: mediaType ? "the body is not form-encoded" : "no Content-Type",
      };
    }
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > maxBodyBytes) return tooLarge(instanceId);
    const body = await readBody(req, maxBodyBytes);
    if (body === "too_large") return tooLarge(instanceId);
    if (body === "aborted") return { status: 400, body: "", result: "aborted", instanceId, reason: "the client left before sending the whole body" };

    const parsed = parseCheckInForm(body);
    if (!parsed.ok) return badRequest(parsed.reason, instanceId);
    if (parsed.form.instanceId !== instanceId) return badRequest("instance_id in the body does not match the path", instanceId);

    const now = clock().toISOString();
    const previous = records.get(instanceId);
    const record: CheckIn = {
      ...parsed.form,
      receivedAt: now,
      firstReceivedAt: previous?.firstReceivedAt ?? now,
      userAgent: headerText(req.headers["user-agent"]) ?? null,
      count: (previous?.count ?? 0) + 1,
    };
    records.set(instanceId, record);
    // A repeat with different keys or names means the token is being used from a second machine; keep the latest,
    // as documented, but say so loudly.
    const changed = previous !== undefined && identity(previous) !== identity(record);
    if (options.onCheckIn) {
      try {
        options.onCheckIn(copyCheckIn(record));
      } catch (e) {
        log({ level: "error", event: "internal_error", route: "/phone-home", instanceId, reason: `onCheckIn threw: ${errorMessage(e)}` });
      }
    }
    return {
      status: 200,
      body: "ok",
      result: previous ? "repeated" : "ok",
      instanceId,
      count: record.count,
      level: changed ? "warn" : "info",
      reason: changed ? "repeated check-in reports different host keys or names than the one before" : undefined,
    };
  }

  return {
    get url(): string {
      const url = listeningUrl(server, host);
      if (url === null) throw new PremiscaleError("the check-in server is not listening", "server_not_listening", "call listen() first");
      return url;
    },
    metrics: registry,
    checkIns: () => [...records.values()].map(copyCheckIn),
    listen: async () => {
      if (server.listening || closing) {
        throw new PremiscaleError("the check-in server was already started", "server_state", "make a new server with createCheckInServer");
      }
      try {
        await listenOn(server, port, host);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new PremiscaleError(
          `cannot listen on ${host}:${port}: ${err.message}`,
          "server_listen_failed",
          err.code === "EADDRINUSE" ? "another process uses that port: stop it or choose another port" : "check the host and port",
          { cause: err },
        );
      }
      log({ level: "info", event: "listening", url: listeningUrl(server, host)! });
    },
    close: () => {
      if (!closed) {
        closing = true;
        const wasListening = server.listening;
        closed = closeServer(server, CLOSE_GRACE_MS).then(() => {
          if (wasListening) log({ level: "info", event: "closed" });
        });
      }
      return closed;
    },
  };
}

/** Writes the response; every answer of this server says not to cache it or guess its type. */
function send(req: IncomingMessage, res: ServerResponse, o: Outcome): void {
  sendText(req, res, { status: o.status, body: o.body, contentType: o.contentType, headers: { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", ...o.headers } });
}

function badRequest(reason: string, instanceId?: string): Outcome {
  return { status: 400, body: `bad request: ${reason}`, result: "bad_request", reason, instanceId };
}

function tooLarge(instanceId: string): Outcome {
  return { status: 413, body: "request body too large", result: "too_large", instanceId, reason: "the body is over the size limit" };
}

function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf("?");
  return q === -1 ? { path: url, query: "" } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

/** Raw (still %-encoded) segments of an origin-form path, one trailing slash allowed; null for other forms. */
function pathSegments(path: string): string[] | null {
  if (!path.startsWith("/")) return null;
  const segments = path.slice(1).split("/");
  return segments.length > 1 && segments.at(-1) === "" ? segments.slice(0, -1) : segments;
}

function decodeSegment(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/** Paths of unmatched requests are logged without what follows their first segment, which may be a token. */
function redactPath(url: string): string {
  const { path } = splitUrl(url);
  const m = /^\/[^/]{0,64}/.exec(path);
  const head = m ? m[0] : "";
  return head.length < path.length ? `${head}/…` : head;
}

function headerText(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value.join(", ") : value;
  return text === undefined ? undefined : text.slice(0, 200);
}

function identity(c: CheckIn): string {
  return JSON.stringify([c.hostname, c.fqdn, Object.entries(c.pubKeys).sort()]);
}

function copyCheckIn(c: CheckIn): CheckIn {
  return { ...c, pubKeys: { ...c.pubKeys } };
}

function clientErrorReason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return "the client did not send the whole request in time";
    case "HPE_HEADER_OVERFLOW":
      return "the request headers are too large";
    case "ECONNRESET":
    case "EPIPE":
      return "the client reset the connection";
    default:
      return `the request is not valid HTTP (${err.code ?? "unknown"})`;
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function checkOptions(
  options: CheckInServerOptions,
  v: { host: string; port: number; maxBodyBytes: number; requestTimeoutMs: number },
): void {
  const fail = (option: string, must: string, got: unknown) => {
    throw new PremiscaleError(`createCheckInServer: the \`${option}\` option ${must}, got ${JSON.stringify(got) ?? String(got)}`, "server_options_invalid");
  };
  if (typeof v.host !== "string" || v.host === "") fail("host", "must be a host name or address", v.host);
  if (!Number.isInteger(v.port) || v.port < 0 || v.port > 65_535) fail("port", "must be a whole number from 0 to 65535", v.port);
  if (!Number.isInteger(v.maxBodyBytes) || v.maxBodyBytes < 1) fail("maxBodyBytes", "must be a whole number ≥ 1", v.maxBodyBytes);
  if (!Number.isInteger(v.requestTimeoutMs) || v.requestTimeoutMs < 1) fail("requestTimeoutMs", "must be a whole number of milliseconds ≥ 1", v.requestTimeoutMs);
  if (typeof options.tokens !== "function") fail("tokens", "must be a TokenVerifier function (see hmacTokenVerifier)", typeof options.tokens);
  if (typeof options.logger !== "function") fail("logger", "must be a function", typeof options.logger);
}
