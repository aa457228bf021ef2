/**
 * Malformed HTTP for the servers' fuzz tests (server/check-in-server.fuzz.test.ts, reconciler/webhook.fuzz.test.ts).
 *
 * A request is plain data (`Exchange`), sent either through Node's HTTP client (well-framed requests with odd
 * methods, paths, headers and bodies) or as raw bytes on a `net` socket (what no HTTP client sends: broken request
 * lines and headers, conflicting lengths, chunked garbage, pipelining, other protocols, and slow partial requests
 * given up after a short deadline). The answers are parsed back into status codes and tallied per class.
 */
import { Agent, request } from "node:http";
import { connect } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";

/** One request as data, so a failing one can be printed and replayed. */
export type Exchange = HttpExchange | RawExchange;

/** A request Node's HTTP client can send. */
export interface HttpExchange {
  via: "http";
  /** The class it is counted under, e.g. `token`, `body`, `oversized`. */
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  /** Sent with a Content-Length, or in `chunks` with chunked encoding when `chunks` is set. */
  body?: Buffer;
  chunks?: Buffer[];
}

/** Bytes on a socket. */
export interface RawExchange {
  via: "raw";
  kind: string;
  /** Written one after another, `gapMs` apart (a slow client), then the socket is half-closed when `end`. */
  chunks: Buffer[];
  gapMs: number;
  end: boolean;
  /** The client gives up this long after connecting (a slowloris client never finishes on purpose). */
  deadlineMs: number;
  /** Methods of the requests in `chunks`, in order, so HEAD answers are parsed without a body. */
  methods: string[];
}

/** How an exchange ended, seen from the client. */
export interface ExchangeResult {
  /** Status codes of the responses received, in order. */
  statuses: number[];
  /** `answered`: at least one full response; `closed`: the server closed without one; `reset`: ECONNRESET/EPIPE;
   * `deadline`: the client gave up first; `refused-by-client`: Node's client would not send it (then `sendHttp`
   * sends it raw). */
  end: "answered" | "closed" | "reset" | "deadline" | "refused-by-client";
  ms: number;
}

/** Status codes of the responses at the start of `bytes`, for requests with `methods`; stops at anything unparsable. */
export function parseResponses(bytes: Buffer, methods: readonly string[]): number[] {
  const statuses: number[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const headEnd = bytes.indexOf("\r\n\r\n", at, "latin1");
    if (headEnd === -1) break;
    const head = bytes.subarray(at, headEnd).toString("latin1");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!m) break;
    const status = Number(m[1]);
    statuses.push(status);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    const bodyless = methods[i] === "HEAD" || status < 200 || status === 204 || status === 304;
    at = headEnd + 4 + (bodyless || !length ? 0 : Number(length[1]));
    if (status === 100) i--; // a 100 Continue precedes the real answer to the same request
  }
  return statuses;
}

/** Sends raw bytes; resolves when the server closes, or at the deadline (then the socket is destroyed). */
export function sendRaw(port: number, x: RawExchange): Promise<ExchangeResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (end: ExchangeResult["end"]) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      const statuses = parseResponses(Buffer.concat(received), x.methods);
      resolve({ statuses, end: statuses.length && end !== "reset" ? "answered" : end, ms: performance.now() - started });
    };
    const socket = connect({ port, host: "127.0.0.1" }, () => {
      x.chunks.forEach((chunk, i) => {
        timers.push(
          setTimeout(() => {
            if (socket.writable) socket.write(chunk);
            if (i === x.chunks.length - 1 && x.end && socket.writable) socket.end();
          }, i * x.gapMs),
        );
      });
      if (x.chunks.length === 0 && x.end) socket.end();
    });
    socket.on("data", (d: Buffer) => received.push(d));
    socket.on("close", () => finish("closed"));
    socket.on("error", (e: NodeJS.ErrnoException) => finish(e.code === "ECONNRESET" || e.code === "EPIPE" ? "reset" : "closed"));
    timers.push(setTimeout(() => finish("deadline"), x.deadlineMs));
  });
}

/** The same request as raw bytes, for what Node's client refuses to send (a space in the path, say). */
export function httpAsRaw(x: HttpExchange, deadlineMs: number): RawExchange {
  const headers = Object.entries(x.headers).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((one) => `${k}: ${one}\r\n`));
  const framing = x.chunks ? "Transfer-Encoding: chunked\r\n" : x.body ? `Content-Length: ${x.body.length}\r\n` : "";
  const head = Buffer.from(`${x.method} ${x.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers.join("")}${framing}\r\n`, "latin1");
  const body = x.chunks
    ? Buffer.concat([...x.chunks.flatMap((c) => [Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from("\r\n")]), Buffer.from("0\r\n\r\n")])
    : (x.body ?? Buffer.alloc(0));
  return { via: "raw", kind: x.kind, chunks: [Buffer.concat([head, body])], gapMs: 0, end: true, deadlineMs, methods: [x.method] };
}

/**
 * Sends a request with Node's client; `deadlineMs` bounds the whole exchange. What the client refuses to send
 * (invalid characters in the path or a header) goes out as the same bytes on a raw socket instead.
 */
export async function sendHttp(port: number, x: HttpExchange, agent: Agent, deadlineMs: number): Promise<ExchangeResult> {
  const r = await sendWithClient(port, x, agent, deadlineMs);
  return r.end === "refused-by-client" ? sendRaw(port, httpAsRaw(x, deadlineMs)) : r;
}

function sendWithClient(port: number, x: HttpExchange, agent: Agent, deadlineMs: number): Promise<ExchangeResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const statuses: number[] = [];
    const finish = (end: ExchangeResult["end"]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req?.destroy();
      resolve({ statuses, end: statuses.length ? "answered" : end, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish("deadline"), deadlineMs);
    let req: ReturnType<typeof request> | undefined;
    try {
      const headers = { ...x.headers, ...(x.body && !x.chunks ? { "content-length": String(x.body.length) } : {}) };
      req = request({ host: "127.0.0.1", port, method: x.method, path: x.path, headers, agent }, (res) => {
        statuses.push(res.statusCode ?? 0);
        res.resume();
        res.on("end", () => finish("answered"));
        res.on("error", () => finish("answered"));
      });
    } catch {
      finish("refused-by-client");
      return;
    }
    req.on("error", (e: NodeJS.ErrnoException) => finish(e.code === "ECONNRESET" || e.code === "EPIPE" ? "reset" : "closed"));
    if (x.chunks) {
      for (const c of x.chunks) req.write(c);
      req.end();
    } else req.end(x.body);
  });
}

/** Counts per class: how many were sent, and what came back (status codes and endings). */
export class ExchangeTally {
  readonly classes = new Map<string, { sent: number; outcomes: Map<string, number> }>();

  add(kind: string, r: ExchangeResult): void {
    const c = this.classes.get(kind) ?? { sent: 0, outcomes: new Map<string, number>() };
    c.sent++;
    const keys = r.statuses.length ? r.statuses.map(String) : [r.end];
    for (const k of r.statuses.length && r.end === "reset" ? [...keys, "reset"] : keys) c.outcomes.set(k, (c.outcomes.get(k) ?? 0) + 1);
    this.classes.set(kind, c);
  }

  get total(): number {
    return [...this.classes.values()].reduce((n, c) => n + c.sent, 0);
  }

  /** All status codes seen, with counts. */
  statuses(): Map<number, number> {
    const all = new Map<number, number>();
    for (const c of this.classes.values()) for (const [k, n] of c.outcomes) if (/^\d+$/.test(k)) all.set(Number(k), (all.get(Number(k)) ?? 0) + n);
    return all;
  }

  /** One line per class: `body 1500: 400 1100, 200 300, 413 100`. */
  summary(): string {
    return [...this.classes]
      .sort((a, b) => b[1].sent - a[1].sent)
      .map(([kind, c]) => `  ${kind} ${c.sent}: ${[...c.outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ")}`)
      .join("\n");
  }
}

/**
 * Runs `exchanges` in batches of `batchSize`, `concurrency` at a time, calling `afterBatch` between batches.
 * Those `slow` picks (clients that stall on purpose) run beside the batches in a lane of their own, so a batch
 * never waits for a deliberately slow client and the server sees them while it serves the rest.
 */
export async function runBatches<T>(
  exchanges: readonly T[],
  opts: { batchSize: number; concurrency: number; slow?: (x: T) => boolean; slowConcurrency?: number },
  send: (x: T, index: number) => Promise<void>,
  afterBatch: (batch: number) => Promise<void>,
): Promise<void> {
  const indexed = exchanges.map((x, i) => ({ x, i }));
  const slow = indexed.filter(({ x }) => opts.slow?.(x));
  const fast = indexed.filter(({ x }) => !opts.slow?.(x));
  const pool = async (items: { x: T; i: number }[], concurrency: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let k = next++; k < items.length; k = next++) await send(items[k]!.x, items[k]!.i);
      }),
    );
  };
  const slowLane = pool(slow, opts.slowConcurrency ?? 32);
  for (let start = 0, batch = 0; start < fast.length; start += opts.batchSize, batch++) {
    await pool(fast.slice(start, start + opts.batchSize), opts.concurrency);
    await afterBatch(batch);
  }
  await slowLane;
}

let gc: (() => void) | undefined;
/** Heap in use after a full garbage collection, in MiB. */
export function heapAfterGc(): number {
  if (!gc) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** Collects unhandled rejections and uncaught exceptions while a test runs; `stop` returns them. */
export function watchProcess(): { stop(): string[] } {
  const seen: string[] = [];
  const onRejection = (e: unknown) => seen.push(`unhandled rejection: ${String((e as Error)?.stack ?? e)}`);
  const onException = (e: unknown) => seen.push(`uncaught exception: ${String((e as Error)?.stack ?? e)}`);
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  return {
    stop() {
      process.off("unhandledRejection", onRejection);
      process.off("uncaughtException", onException);
      return seen;
    },
  };
}

/** Open TCP sockets of this process (client and server ends), for the check that none are left behind. */
export function openSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;
}

/** A short, printable description of an exchange for a failure message. */
export function describeExchange(x: Exchange): string {
  const show = (b: Buffer) => JSON.stringify(b.subarray(0, 300).toString("latin1")) + (b.length > 300 ? `…(${b.length} bytes)` : "");
  if (x.via === "raw") return `raw ${x.kind}: ${x.chunks.map(show).join(" + ")} (gap ${x.gapMs} ms, end ${x.end}, deadline ${x.deadlineMs} ms)`;
  const headers = JSON.stringify(x.headers).slice(0, 500);
  return `http ${x.kind}: ${x.method} ${x.path.slice(0, 300)}${x.path.length > 300 ? `…(${x.path.length})` : ""} ${headers} body ${x.body ? show(x.body) : x.chunks ? `${x.chunks.length} chunks` : "none"}`;
}

// Generators shared by both servers.

/** Methods Node's client sends (CONNECT goes raw: it turns the connection into a tunnel). */
export const methodArb = fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "PURGE", "SEARCH", "LINK");

/** Path segments that trip routers: traversal, encodings (NUL, slash, overlong UTF-8, right-to-left), empties. */
export const segmentArb = fc.oneof(
  fc.constantFrom("..", ".", "", "%2e%2e", "%2F", "..%2f", "%00", "%ZZ", "%", "%C0%AF", "%E2%80%AE", "%FF%FE", "%25", "~", "*", ";", "a;b=c", "%20", "+", "&", "=", "@", "$", ":", "%u2215", "%%32%65"),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,40}$/),
  fc.string({ maxLength: 20 }).map((s) => encodeURIComponent(s)),
);

/** A query string: repeated and empty keys, broken escapes, long values. */
export const queryArb = fc.oneof(
  fc.constant(""),
  fc.constantFrom("?", "?=", "?&&", "?a=1&a=2", "?%", "?%zz=1", "?token", "?token=", "?token=a&token=b", "?a[]=1&a[b]=2", "?__proto__=x"),
  fc.array(fc.tuple(fc.stringMatching(/^[a-z_]{0,8}$/), segmentArb), { maxLength: 4 }).map((kv) => "?" + kv.map(([k, v]) => `${k}=${v}`).join("&")),
);

/** Random bytes of a size picked from small to large. */
export const bytesArb = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

/** Header values Node's client accepts that servers may choke on. */
export const headerValueArb = fc.oneof(
  fc.constantFrom("", " ", "x".repeat(7_000), "x".repeat(20_000), "\u00ff\u00fe", "a, b", "; ;", "=", "\t", "0", "-1", "99999999999999999999"),
  fc.stringMatching(/^[ -~]{0,100}$/),
);

/** Malformed request heads and bodies only a raw socket sends. `host` is the Host header to use. */
export function malformedRawArb(paths: fc.Arbitrary<string>): fc.Arbitrary<RawExchange> {
  const raw = (kind: string, text: string | Buffer, methods: string[] = ["GET"], extra: Partial<RawExchange> = {}): RawExchange => ({
    via: "raw",
    kind,
    chunks: [typeof text === "string" ? Buffer.from(text, "latin1") : text],
    gapMs: 0,
    end: true,
    deadlineMs: 3_000,
    methods,
    ...extra,
  });
  const H = "Host: 127.0.0.1\r\n";
  return fc.oneof(
    bytesArb(2_000).map((b) => raw("raw-garbage", b)),
    paths.map((p) => raw("raw-http-0.9", `GET ${p}\r\n`)),
    fc.constantFrom(
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
      "SSH-2.0-OpenSSH_9.2\r\n",
      "\r\n\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/9.9\r\n" + H + "\r\n",
      "GET / HTTP/1.1 extra\r\n" + H + "\r\n",
      "G\x00T / HTTP/1.1\r\n" + H + "\r\n",
      "get / HTTP/1.1\r\n" + H + "\r\n",
      "GET  /  HTTP/1.1\r\n" + H + "\r\n",
      "GET\t/\tHTTP/1.1\r\n" + H + "\r\n",
      "GET /a b HTTP/1.1\r\n" + H + "\r\n",
      "GET /\x7f HTTP/1.1\r\n" + H + "\r\n",
      "GET http://127.0.0.1/healthz HTTP/1.1\r\n" + H + "\r\n",
      "GET //evil.example:99999/x HTTP/1.1\r\n" + H + "\r\n",
      "GET //[::1 HTTP/1.1\r\n" + H + "\r\n",
      "OPTIONS * HTTP/1.1\r\n" + H + "\r\n",
      "CONNECT 127.0.0.1:22 HTTP/1.1\r\n" + H + "\r\n",
      "GET / HTTP/1.1\r\n" + H + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET / HTTP/1.1\r\n" + H + "X: a\r\n b\r\n\r\n",
      "GET / HTTP/1.1\r\n" + H + "No colon here\r\n\r\n",
      "GET / HTTP/1.1\r\n" + H + "Bad Name: x\r\n\r\n",
      "GET / HTTP/1.1\r\n" + H + ": empty name\r\n\r\n",
      "GET / HTTP/1.1\r\n" + H + "X: \x00\r\n\r\n",
      "GET / HTTP/1.1\n" + "Host: 127.0.0.1\n\n",
      "GET / HTTP/1.1\r" + H + "\r\n",
      "GET / HTTP/1.0\r\n\r\n",
    ).map((t) => raw("raw-malformed-head", t)),
    // Lengths and encodings that disagree: request smuggling shapes, which the server must refuse, not split.
    fc.tuple(paths, fc.constantFrom(
      "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
      "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      "Content-Length: -1\r\n\r\n",
      "Content-Length: 1e3\r\n\r\n",
      "Content-Length: 0x10\r\n\r\n",
      "Content-Length: 99999999999999999999\r\n\r\n",
      "Content-Length:  5 \r\n\r\nhello",
      "Content-Length: 5, 5\r\n\r\nhello",
      "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
      "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
      "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
      "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nx\r\n",
      "Transfer-Encoding: chunked\r\n\r\n5;ext=1;x\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
      "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
      "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
      "Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
      "Content-Length: 100\r\n\r\nshort",
      "Content-Length: 0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
      "Expect: 100-continue\r\nContent-Length: 10\r\n\r\n",
      "Expect: 200-ok\r\nContent-Length: 0\r\n\r\n",
    ), fc.constantFrom("POST", "GET", "PUT")).map(([p, rest, method]) => raw("raw-framing", `${method} ${p} HTTP/1.1\r\n${H}${rest}`, [method, "GET"])),
    // Pipelined: several requests in one write, some broken.
    fc.array(fc.tuple(paths, fc.constantFrom("GET", "HEAD", "POST")), { minLength: 2, maxLength: 6 }).map((reqs) =>
      raw(
        "raw-pipelined",
        reqs.map(([p, m]) => `${m} ${p} HTTP/1.1\r\n${H}${m === "POST" ? "Content-Length: 0\r\n" : ""}\r\n`).join(""),
        reqs.map(([, m]) => m),
      ),
    ),
    // A request line or header block over Node's limits.
    fc.constantFrom(8_000, 9_000, 17_000, 70_000).map((n) => raw("raw-oversized-head", `GET /${"a".repeat(n)} HTTP/1.1\r\n${H}\r\n`)),
    fc.constantFrom(100, 2_500).map((n) => raw("raw-oversized-head", `GET / HTTP/1.1\r\n${H}${Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join("")}\r\n`)),
  );
}

/**
 * Slowloris-like clients: part of a request, then silence (or a trickle), given up after a short deadline.
 * `head` is a complete request head whose body the client then never finishes.
 */
export function slowRawArb(heads: fc.Arbitrary<string>): fc.Arbitrary<RawExchange> {
  return fc.oneof(
    fc.tuple(heads, fc.nat(), fc.integer({ min: 30, max: 300 })).map(([head, cut, deadlineMs]) => ({
      via: "raw" as const,
      kind: "slow-partial",
      chunks: [Buffer.from(head.slice(0, cut % head.length), "latin1")],
      gapMs: 0,
      end: false,
      deadlineMs,
      methods: ["POST"],
    })),
    fc.tuple(heads, fc.integer({ min: 5, max: 20 })).map(([head, gapMs]) => ({
      via: "raw" as const,
      kind: "slow-trickle",
      chunks: [...Buffer.from(head, "latin1")].slice(0, 40).map((b) => Buffer.from([b])),
      gapMs,
      end: false,
      deadlineMs: 40 * gapMs + 50,
      methods: ["POST"],
    })),
  );
}

/** What one fuzz run against a server found: counts, timings, and every property broken. */
export interface FuzzRun {
  tally: ExchangeTally;
  failures: string[];
  /** MiB after a full GC, after each batch (and once at the end). */
  heap: number[];
  /** ms the liveness probe took after each batch. */
  health: number[];
  seconds: number;
  socketsLeft: number;
  /** Unhandled rejections and uncaught errors of the process during the run. */
  processErrors: string[];
}

/**
 * Sends `exchanges` to a server on 127.0.0.1:`port` in batches (16 at a time, slow clients 64), checking after each
 * that it still answers `probe` with 200 and never a 5xx to anything; then waits (up to `socketWaitMs`) for every
 * connection to end. What must hold is checked by the caller on the result.
 */
export async function fuzzServer(opts: {
  port: number;
  exchanges: Exchange[];
  batchSize: number;
  seed: number;
  /** The liveness probe (a health route, or a signed ping where there is none), and what to call it in failures. */
  probe: HttpExchange;
  probeName: string;
  /** The server's name, in failures about slow clients. */
  serverName: string;
  socketWaitMs: number;
}): Promise<FuzzRun> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const watch = watchProcess();
  const socketsBefore = openSockets();
  const tally = new ExchangeTally();
  const failures: string[] = [];
  const heap: number[] = [];
  const health: number[] = [];
  const started = performance.now();
  const fail = (i: number, x: Exchange, r: ExchangeResult, why: string) => {
    if (failures.length < 20) failures.push(`#${i} (seed ${opts.seed}): ${why}: ${describeExchange(x)} → ${JSON.stringify(r)}`);
  };
  await runBatches(
    opts.exchanges,
    { batchSize: opts.batchSize, concurrency: 16, slow: (x) => x.kind.startsWith("slow"), slowConcurrency: 64 },
    async (x, i) => {
      const r = x.via === "raw" ? await sendRaw(opts.port, x) : await sendHttp(opts.port, x, agent, 5_000);
      tally.add(x.kind, r);
      if (r.statuses.some((s) => s >= 500)) fail(i, x, r, "a 5xx answer");
      if (r.end === "deadline" && !x.kind.startsWith("slow")) fail(i, x, r, "no answer and no close within the deadline");
      if (x.kind === "slow-until-server-timeout" && r.end === "deadline") fail(i, x, r, `a stalled request was not timed out by the ${opts.serverName}`);
    },
    async (batch) => {
      const t = performance.now();
      const r = await sendHttp(opts.port, opts.probe, agent, 2_000);
      health.push(performance.now() - t);
      if (r.statuses[0] !== 200) failures.push(`after batch ${batch}: ${opts.probeName} answered ${JSON.stringify(r)}`);
      heap.push(heapAfterGc());
    },
  );
  heap.push(heapAfterGc());
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  // Every connection ends: the server times out the slow ones, the client closed the rest.
  const deadline = Date.now() + opts.socketWaitMs;
  while (openSockets() > socketsBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return { tally, failures, heap, health, seconds, socketsLeft: openSockets() - socketsBefore, processErrors: watch.stop() };
}

/** The first line of a fuzz run's report: requests, time, seed and the statuses that came back. */
export function fuzzSummary(what: string, run: FuzzRun, seed: number): string {
  const statuses = [...run.tally.statuses()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`).join(", ");
  return `${what}: ${run.tally.total} requests in ${run.seconds.toFixed(1)} s, seed ${seed}; statuses ${statuses}`;
}
