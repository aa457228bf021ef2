/**
 * The request plumbing premiscale's two small HTTP servers share: the check-in server (server/check-in-server.ts)
 * and the GitOps webhook receiver (reconciler/webhook.ts). A server whose request and header timeouts Node really
 * enforces, a body read up to a limit and never past it, a plain-text response, listening and closing. No framework,
 * no routes: each server keeps its own routes, log lines and wording of errors.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Options of `createHttpServer`. */
export interface HttpServerOptions {
  /** How long a client has to send a whole request, headers and body; a slower one is a `clientError` (408). */
  requestTimeoutMs: number;
  /** @default Node's (5000) */
  keepAliveTimeoutMs?: number;
  /** @default Node's (16384) */
  maxHeaderSize?: number;
}

/** A `node:http` server with these timeouts (not started). */
export function createHttpServer(options: HttpServerOptions, handler: RequestListener): Server {
  return createServer(
    {
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: options.requestTimeoutMs,
      // Node checks the timeouts above only every connectionsCheckingInterval (30 s by default).
      connectionsCheckingInterval: Math.min(1_000, options.requestTimeoutMs),
      ...(options.keepAliveTimeoutMs !== undefined ? { keepAliveTimeout: options.keepAliveTimeoutMs } : {}),
      ...(options.maxHeaderSize !== undefined ? { maxHeaderSize: options.maxHeaderSize } : {}),
    },
    handler,
  );
}

/** Reads a body up to `limit` bytes. Past the limit it stops reading, so a huge body is never held in memory. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too_large" | "aborted"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: Buffer | "too_large" | "aborted") => {
      req.off("data", onData).off("end", onEnd).off("error", onAbort).off("close", onAbort);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        finish("too_large");
      } else chunks.push(chunk);
    };
    const onEnd = () => finish(Buffer.concat(chunks, size));
    const onAbort = () => finish("aborted");
    req.on("data", onData).on("end", onEnd).on("error", onAbort).on("close", onAbort);
  });
}

/** A request header's value (the first, when sent more than once), or null when absent. */
export function header(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
}

/** A response with a small body held in memory. */
export interface TextResponse {
  status: number;
  body: string;
  /** @default "text/plain; charset=utf-8" */
  contentType?: string;
  /** Set after Content-Type and Content-Length. */
  headers?: Record<string, string>;
}

/**
 * Writes a whole response, unless one was already started or the connection is gone. A request whose body was not
 * read to the end gets `Connection: close`, so the rest of it is dropped with the connection rather than read.
 */
export function sendText(req: IncomingMessage, res: ServerResponse, r: TextResponse): void {
  if (res.headersSent || res.destroyed) return;
  const body = Buffer.from(r.body, "utf8");
  res.statusCode = r.status;
  res.setHeader("Content-Type", r.contentType ?? "text/plain; charset=utf-8");
  res.setHeader("Content-Length", body.length);
  for (const [name, value] of Object.entries(r.headers ?? {})) res.setHeader(name, value);
  if (!req.complete) res.setHeader("Connection", "close");
  res.end(body);
}

/** Starts listening on host:port; rejects with Node's own error (EADDRINUSE, EACCES…) for the caller to word. */
export function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(e);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/** `http://host:port` of a listening server (an IPv6 host in brackets, the real port when 0 was asked), else null. */
export function listeningUrl(server: Server, host: string): string | null {
  const address = server.address() as AddressInfo | string | null;
  if (!address || typeof address === "string") return null;
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
}

/**
 * Stops accepting and resolves once every connection is closed: idle keep-alive connections at once, requests in
 * flight when they finish, or, with `graceMs`, cut after that long. Resolves at once when not listening.
 */
export function closeServer(server: Server, graceMs?: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const force = graceMs === undefined ? undefined : setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
