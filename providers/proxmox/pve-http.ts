import https from "node:https";
import { isIP } from "node:net";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import {
  PveApiError,
  PveConnectionError,
  grantHint,
  parseMissingPrivilege,
  type PveCallSite,
} from "./pve-errors.js";

/** One PVE node's API address. Each node gets its own connections, so a hung node stalls only its own calls. */
export interface PveEndpoint {
  /** The node's name in the cluster (`pvecm nodes`), e.g. `pve1`. */
  node: string;
  /** Address of its API (`pveproxy`). */
  host: string;
  /** @default 8006 */
  port?: number;
  /**
   * SHA-256 fingerprint of this node's certificate (`pvenode cert info`, or the node's `ssl_fingerprint`), as
   * `AA:BB:…` or plain hex. When set it alone decides: a matching certificate is accepted whatever its chain or
   * names, any other is refused.
   */
  fingerprint?: string;
}

/** A form value: booleans travel as 1/0 (PVE accepts nothing else), arrays as the key repeated. */
export type PveFormValue = string | number | boolean | readonly string[] | undefined;
/** Parameters of one call, by PVE's parameter name. */
export type PveParams = Readonly<Record<string, PveFormValue>>;

/** Per-call options. */
export interface PveCallOptions {
  /** Aborts the call (e.g. the apply was cancelled). */
  signal?: AbortSignal;
  /** Overrides the client's timeout for this call. */
  timeoutMs?: number;
  /**
   * For a cluster-wide call: send it through this node's endpoint only, with no other endpoint tried (a provider
   * working for one node asks the cluster through that node, so another node that hangs cannot stall it). Ignored
   * when the node has no endpoint of its own, and for calls under `/nodes/NODE/`, which always go to NODE.
   */
  via?: string;
}

/** A multipart body (storage upload): text fields first, then one file. */
export interface PveMultipart {
  fields: ReadonlyArray<readonly [string, string]>;
  file: { field: string; filename: string; bytes: Uint8Array };
}

/** Settings of the transport; see `PveClientOptions` for the user-facing ones. */
export interface PveHttpOptions {
  /** Names the cluster in messages. */
  cluster: string;
  endpoints: readonly PveEndpoint[];
  tokenId: string;
  /** The secret itself, already read from the environment. Never logged, never put in a message. */
  secret: string;
  /** Name of the environment variable the secret came from, for hints. */
  secretEnv: string;
  /** PEM of the cluster CA (`/etc/pve/pve-root-ca.pem`) for endpoints without a fingerprint. */
  ca?: string;
  timeoutMs: number;
  maxSocketsPerNode: number;
}

/** The largest answer read; PVE's biggest answers (cluster resources of a large cluster) are far smaller. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** Normalises a fingerprint to Node's `fingerprint256` form (`AA:BB:…`); null when it is not 32 bytes of hex. */
export function normalizeFingerprint(fp: string): string | null {
  const hex = fp.replace(/[:\s]/g, "").toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return null;
  return hex.match(/../g)!.join(":");
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** An answer beyond MAX_ANSWER_BYTES; mapped to a protocol error. */
class AnswerTooLarge extends Error {}

/** The TLS handshake did not finish in time; mapped to a timeout. */
class HandshakeTimeout extends Error {}

/** Thrown inside the TLS layer when a pinned fingerprint does not match; mapped to a PveConnectionError. */
class FingerprintMismatch extends Error {
  constructor(
    readonly expected: string,
    readonly seen: string,
  ) {
    super(`certificate fingerprint mismatch: expected ${expected}, seen ${seen}`);
  }
}

/**
 * An HTTPS agent for one node that hands a socket to a request only after the peer is verified, so not one byte
 * of a request (and so not the token) reaches a peer that failed verification. With a pinned fingerprint, Node's
 * chain check is off (PVE's node certificates are signed by the cluster's own CA) and the pin is compared here;
 * Node would also skip its hostname check then, which is why the pin, not the name, decides. Without a pin, Node
 * verifies chain and hostname as usual (against `ca` when given).
 */
class VerifyingAgent extends https.Agent {
  constructor(
    private readonly pin: string | null,
    private readonly ca: string | undefined,
    private readonly connectTimeoutMs: number,
    maxSockets: number,
  ) {
    super({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: "lifo" });
  }

  override createConnection(options: tls.ConnectionOptions, callback?: (err: Error | null, s: Duplex) => void): Duplex {
    const host = options.host ?? "localhost";
    const socket = tls.connect({
      ...options,
      servername: isIP(host) ? undefined : host,
      ca: this.pin ? undefined : this.ca,
      rejectUnauthorized: this.pin === null,
    });
    socket.setTimeout(this.connectTimeoutMs, () => socket.destroy(new HandshakeTimeout(`no TLS handshake within ${this.connectTimeoutMs} ms`)));
    const fail = (err: Error) => callback?.(err, socket);
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      socket.setTimeout(0);
      socket.removeListener("error", fail);
      if (this.pin) {
        const seen = socket.getPeerCertificate().fingerprint256 ?? "(none)";
        if (seen !== this.pin) {
          const err = new FingerprintMismatch(this.pin, seen);
          socket.destroy();
          callback?.(err, socket);
          return;
        }
      }
      callback?.(null, socket);
    });
    // Returning nothing makes the agent wait for the callback (node's http Agent supports asynchronous creation).
    return undefined as unknown as Duplex;
  }
}

/** Encodes parameters as PVE's form decoder reads them (pve-http-server `decode_urlencoded`). */
export function encodeForm(params: PveParams): string {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    if (typeof v === "boolean") out.append(k, v ? "1" : "0");
    else if (typeof v === "string" || typeof v === "number") out.append(k, String(v));
    else for (const item of v) out.append(k, item);
  }
  return out.toString();
}

/** Builds the multipart body PVE's upload parser expects: the text fields, then the file part. */
export function encodeMultipart(body: PveMultipart, boundary: string): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of body.fields) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${body.file.field}"; filename="${body.file.filename}"\r\n` +
        `Content-Type: application/octet-stream\r\n\r\n`,
    ),
  );
  parts.push(Buffer.from(body.file.bytes.buffer, body.file.bytes.byteOffset, body.file.bytes.byteLength));
  parts.push(Buffer.from(`\r\n--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

interface Envelope {
  data?: unknown;
  message?: unknown;
  errors?: unknown;
}

/** The JSON object of an answer, or null when the body is empty or not a JSON object. */
function parseEnvelope(text: string): Envelope | null {
  if (!text.trim()) return null;
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Envelope) : null;
  } catch {
    return null;
  }
}

const TLS_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_SSL_WRONG_VERSION_NUMBER",
]);

interface Target {
  endpoint: PveEndpoint;
  agent: VerifyingAgent;
}

/**
 * The HTTP layer of the PVE client: one agent per node, the token header, form bodies, the `{data}` envelope,
 * errors as values that name node, method and path (never the secret).
 */
export class PveHttp {
  private readonly targets = new Map<string, Target>();
  private readonly order: Target[] = [];
  private preferred = 0;

  constructor(private readonly options: PveHttpOptions) {
    for (const ep of options.endpoints) {
      const pin = ep.fingerprint ? normalizeFingerprint(ep.fingerprint) : null;
      const t: Target = {
        endpoint: ep,
        agent: new VerifyingAgent(pin, options.ca, options.timeoutMs, options.maxSocketsPerNode),
      };
      this.targets.set(ep.node, t);
      this.order.push(t);
    }
  }

  /**
   * Sends one call and returns the unwrapped `data`. Calls under `/nodes/NODE/` go to that node's own endpoint when
   * one is configured (else through the first endpoint, which pveproxy forwards); cluster-wide calls go to the
   * endpoint that last answered one (at first the first endpoint), and GETs that get no answer at all try the next;
   * with `via`, only through that node's endpoint.
   */
  async call<T>(method: string, path: string, params: PveParams = {}, opts: PveCallOptions = {}, multipart?: PveMultipart): Promise<T> {
    const m = /^\/nodes\/([^/]+)(?:\/|$)/.exec(path);
    const own = m ? this.targets.get(decodeURIComponent(m[1]!)) : opts.via !== undefined ? this.targets.get(opts.via) : undefined;
    // Cluster-wide calls start at the endpoint that last answered one, so a dead first node costs one timeout, not one per call.
    const rotated = [...this.order.slice(this.preferred), ...this.order.slice(0, this.preferred)];
    const candidates = own ? [own] : method === "GET" ? rotated : rotated.slice(0, 1);
    let last: unknown;
    for (const target of candidates) {
      try {
        const r = await this.once<T>(target, method, path, params, opts, multipart);
        if (!own) this.preferred = this.order.indexOf(target);
        return r;
      } catch (e) {
        last = e;
        const retryable = e instanceof PveConnectionError && (e.kind === "timeout" || e.kind === "unreachable");
        if (!retryable || opts.signal?.aborted) throw e;
      }
    }
    throw last;
  }

  /** Closes every pooled connection. */
  close(): void {
    for (const t of this.order) t.agent.destroy();
  }

  private once<T>(target: Target, method: string, path: string, params: PveParams, opts: PveCallOptions, multipart?: PveMultipart): Promise<T> {
    const { endpoint } = target;
    const about = /^\/nodes\/([^/]+)(?:\/|$)/.exec(path);
    const subject = about ? decodeURIComponent(about[1]!) : endpoint.node;
    // Messages show the path as people read it (a UPID or volume id unescaped); the request uses the encoded one.
    const shown = safeDecode(path);
    const site: PveCallSite = subject === endpoint.node ? { node: subject, method, path: shown } : { node: subject, via: endpoint.node, method, path: shown };
    const timeoutMs = opts.timeoutMs ?? this.options.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;

    const form = encodeForm(params);
    const inBody = method === "POST" || method === "PUT";
    let body: Buffer | null = null;
    const headers: Record<string, string | number> = {
      Authorization: `PVEAPIToken=${this.options.tokenId}=${this.options.secret}`,
      Accept: "application/json",
    };
    if (multipart) {
      const boundary = `----premiscale${Math.random().toString(16).slice(2)}${Date.now().toString(16)}`;
      body = encodeMultipart(multipart, boundary);
      headers["Content-Type"] = `multipart/form-data; boundary=${boundary}`;
    } else if (inBody) {
      body = Buffer.from(form);
      headers["Content-Type"] = "application/x-www-form-urlencoded";
    }
    if (body) headers["Content-Length"] = body.length;
    const query = !inBody && form ? `?${form}` : "";

    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        {
          host: endpoint.host,
          port: endpoint.port ?? 8006,
          method,
          path: `/api2/json${path}${query}`,
          headers,
          agent: target.agent,
          signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > MAX_ANSWER_BYTES) {
              req.destroy(new AnswerTooLarge(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString("utf8");
            const parsed = parseEnvelope(text);
            if (status >= 200 && status < 300) {
              if (!parsed || !("data" in parsed)) {
                reject(
                  new PveConnectionError(
                    site,
                    "protocol",
                    `answer ${status} is not PVE's {"data": …} JSON envelope`,
                    `check that ${endpoint.host}:${endpoint.port ?? 8006} is a Proxmox VE API (pveproxy), not a reverse proxy's page`,
                  ),
                );
                return;
              }
              resolve(parsed.data as T);
              return;
            }
            const pveMessage =
              (parsed && typeof parsed.message === "string" && parsed.message.trim()) || res.statusMessage?.trim() || "(no message)";
            const errors: Record<string, string> = {};
            if (parsed && parsed.errors && typeof parsed.errors === "object") {
              for (const [k, v] of Object.entries(parsed.errors as Record<string, unknown>)) errors[k] = String(v).trim();
            }
            reject(this.apiError(site, status, pveMessage, errors));
          });
          res.on("error", (e) => reject(this.connectionError(site, e, timeout, timeoutMs, endpoint)));
        },
      );
      req.on("error", (e) => reject(this.connectionError(site, e, timeout, timeoutMs, endpoint)));
      req.end(body ?? undefined);
    });
  }

  private apiError(site: PveCallSite, status: number, message: string, errors: Record<string, string>): PveApiError {
    const missing = status === 403 ? parseMissingPrivilege(message) : null;
    return new PveApiError(site, status, message, errors, this.hintFor(site, status, message, errors, missing), missing);
  }

  private hintFor(
    site: PveCallSite,
    status: number,
    message: string,
    errors: Record<string, string>,
    missing: ReturnType<typeof parseMissingPrivilege>,
  ): string {
    const tokenId = this.options.tokenId;
    if (status === 401) {
      return (
        `PVE refused the token ${tokenId}: check the token id, that $${this.options.secretEnv} holds its secret ` +
        `(shown once by \`pveum user token add\`), and that the token and its user exist, are enabled and not expired`
      );
    }
    if (status === 403) {
      if (missing) return grantHint(tokenId, missing);
      return `PVE refused ${site.method} ${site.path} for ${tokenId}: ${message}`;
    }
    if (status === 595 || status === 596) {
      return `node ${site.via ?? "that answered"} could not reach node ${site.node} (offline, or its pveproxy down?): check \`pvecm status\``;
    }
    if (status === 400) {
      const names = Object.keys(errors);
      return names.length
        ? `PVE refused parameter${names.length > 1 ? "s" : ""} ${names.join(", ")}; this is a premiscale bug if the value came from premiscale itself, else fix the value in the config`
        : `PVE refused the call: ${message}`;
    }
    if (/config file already exists/.test(message)) {
      return "another VM took this id meanwhile (/cluster/nextid reserves nothing); retry with a fresh id";
    }
    if (/does not exist/.test(message)) {
      return `check that the VM or object exists on node ${site.node} (\`qm list\` there): VMs are addressed through the node that holds them`;
    }
    if (/is running - destroy failed/.test(message)) return "stop the VM first (a stop task may still be running)";
    if (/got timeout/.test(message)) return "another task holds the VM's lock; wait for it (see the node's task list) and try again";
    return `see the task log or \`journalctl -u pvedaemon\` on node ${site.node}`;
  }

  private connectionError(call: PveCallSite, e: unknown, timeout: AbortSignal, timeoutMs: number, ep: PveEndpoint): PveConnectionError {
    const where = `${ep.host}:${ep.port ?? 8006}`;
    // Without an answer, what failed is the node whose API was called, whatever the call was about.
    const site: PveCallSite = { node: ep.node, method: call.method, path: call.path };
    if (timeout.aborted || e instanceof HandshakeTimeout) {
      return new PveConnectionError(
        site,
        "timeout",
        `no answer from node ${site.node} (${where}) within ${timeoutMs} ms`,
        `node ${site.node} may be hung or overloaded (calls to other nodes are not affected); check pveproxy and pvedaemon there, or raise the timeout`,
        { cause: e },
      );
    }
    const err = e as NodeJS.ErrnoException & { cause?: unknown };
    if (err?.name === "AbortError") {
      return new PveConnectionError(site, "aborted", "call aborted", "the operation was cancelled", { cause: e });
    }
    if (e instanceof AnswerTooLarge) {
      return new PveConnectionError(site, "protocol", e.message, `check that ${where} is a Proxmox VE API`);
    }
    if (e instanceof FingerprintMismatch) {
      return new PveConnectionError(
        site,
        "fingerprint",
        `TLS certificate of node ${site.node} (${where}) does not match the pinned fingerprint: expected ${e.expected}, seen ${e.seen}`,
        `if node ${site.node}'s certificate was renewed, read the new fingerprint with \`pvenode cert info\` on it and update the pin; ` +
          `otherwise something else answers at ${where}: nothing was sent to it`,
      );
    }
    const code = err?.code ?? "";
    if (TLS_CODES.has(code) || /certificate|TLS|SSL/i.test(err?.message ?? "")) {
      return new PveConnectionError(
        site,
        "tls",
        `TLS verification of node ${site.node} (${where}) failed: ${code || err?.message}`,
        `give the cluster's CA (/etc/pve/pve-root-ca.pem) as the CA, or pin node ${site.node}'s certificate fingerprint ` +
          `(\`pvenode cert info\`); premiscale never switches verification off`,
        { cause: e },
      );
    }
    return new PveConnectionError(
      site,
      "unreachable",
      `cannot reach node ${site.node} at ${where}: ${code || err?.message || String(e)}`,
      `check that node ${site.node} is up and that port ${ep.port ?? 8006} is reachable from here`,
      { cause: e },
    );
  }
}
