import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bytesArb,
  fuzzServer,
  fuzzSummary,
  headerValueArb,
  malformedRawArb,
  methodArb,
  queryArb,
  segmentArb,
  slowRawArb,
  type Exchange,
  type HttpExchange,
} from "../test/support/fuzz-http.js";
import { createCheckInServer, hmacTokenVerifier, instanceToken, type CheckInServer } from "./check-in-server.js";

// Fuzzing the check-in server over real HTTP on 127.0.0.1: PREMISCALE_FUZZ_RUNS requests (10,000), generated from
// PREMISCALE_FUZZ_SEED (fixed by default, so a failure replays; the failing request is printed with its index).
const RUNS = Number(process.env.PREMISCALE_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.PREMISCALE_FUZZ_SEED ?? 15_04);
const BATCH = 250;

// Deterministic, so a seed replays the same requests: the secret, the instances and their tokens.
const SECRET = Buffer.alloc(32, 7);
const IDS = Array.from({ length: 8 }, (_, i) => `5d1f7a52-0c4e-4d8e-9d55-2f8a4c1e9b0${i}`);
const TOKENS = IDS.map((id) => instanceToken(SECRET, id));
const ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMtJFKPN6zxXDV3LE3mlqTIW4UNLue/3j/+u5g8v2vOa root@web";
const FORM = "application/x-www-form-urlencoded";

const idArb = fc.oneof(
  { arbitrary: fc.constantFrom(...IDS), weight: 8 },
  { arbitrary: fc.constantFrom("", "-x", "a".repeat(129), "%2E%2E%2Fetc", "%00", "%ZZ", "i-abc.def_1", "%E2%80%AE", "N%2FA", "%20%09"), weight: 2 },
);

/** Valid tokens, other instances' tokens, forged, truncated, padded, broken escapes, huge. */
const tokenArb = (id: string) =>
  fc.oneof(
    { arbitrary: fc.constant(TOKENS[IDS.indexOf(id)] ?? "x"), weight: 6 },
    { arbitrary: fc.constantFrom(...TOKENS), weight: 2 },
    { arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("base64url")), weight: 2 },
    { arbitrary: fc.constantFrom("", "%zz", "%", "A".repeat(5_000), (TOKENS[0] ?? "") + "x", (TOKENS[0] ?? "").slice(1), encodeURIComponent("é".repeat(43))), weight: 2 },
  );

/** cloud-init's body, then the same with one field broken. */
function cloudInitBody(id: string, overrides: Record<string, string> = {}): string {
  return new URLSearchParams({ pub_key_dsa: "N/A", pub_key_rsa: "N/A", pub_key_ecdsa: "N/A", pub_key_ed25519: `${ED25519}\n`, instance_id: id, hostname: "web-1", fqdn: "web-1.example", ...overrides }).toString();
}

const fieldValueArb = fc.oneof(
  fc.constantFrom("N/A", "", "web 1", "web\n1", "\u0000", "a".repeat(256), "a".repeat(15_000), "ssh-ed25519 !!!", "ssh-ed25519 AAAA", "ssh-rsa " + ED25519.split(" ")[1], ED25519 + "\u0007"),
  fc.string({ maxLength: 40 }),
);

const bodyArb = (id: string) =>
  fc.oneof(
    { arbitrary: fc.constant(cloudInitBody(id)), weight: 3 },
    { arbitrary: fc.tuple(fc.constantFrom("hostname", "fqdn", "instance_id", "pub_key_rsa", "pub_key_ed25519", "pub_key_dsa", "unknown"), fieldValueArb).map(([k, v]) => cloudInitBody(id, { [k]: v })), weight: 4 },
    { arbitrary: fc.nat().map((n) => cloudInitBody(id).slice(0, n % cloudInitBody(id).length)), weight: 2 },
    {
      arbitrary: fc.constantFrom(
        `${cloudInitBody(id)}&instance_id=${id}`,
        `${cloudInitBody(id)}&hostname=%zz`,
        `${cloudInitBody(id)}&&&`,
        `${cloudInitBody(id)}&novalue`,
        cloudInitBody(IDS[(IDS.indexOf(id) + 1) % IDS.length]!),
        JSON.stringify({ instance_id: id }),
        "=",
        "&",
        "%",
        `instance_id=${id}&hostname=${"%41".repeat(5_000)}`,
      ),
      weight: 2,
    },
    { arbitrary: bytesArb(3_000).map((b) => b.toString("latin1")), weight: 2 },
  );

const contentTypeArb = fc.oneof(
  { arbitrary: fc.constant(FORM), weight: 6 },
  { arbitrary: fc.constantFrom(`${FORM}; charset=utf-8`, "APPLICATION/X-WWW-FORM-URLENCODED", ` ${FORM} `, "application/json", "multipart/form-data; boundary=x", "text/plain", "", ";", `${FORM};;;`), weight: 2 },
);

const pathArb = fc.oneof(
  fc.tuple(fc.constantFrom("/healthz", "/ready", "/metrics", "/phone-home", "/heartbeat", "", "/", "//", "/phone-home/", "/healthz/", "/HEALTHZ"), fc.array(segmentArb, { maxLength: 4 }), queryArb).map(
    ([head, segs, q]) => (head + (segs.length ? "/" + segs.join("/") : "") || "/") + q,
  ),
  fc.constantFrom(1_000, 4_000, 7_000).map((n) => "/" + "a".repeat(n)),
  fc.constantFrom("/phone-home/../healthz", "/./healthz", "/healthz/..", "/phone-home/%2e%2e/%2e%2e/etc/passwd", "/heartbeat/x/y/z", "/metrics?name[]=x"),
);

const checkInArb: fc.Arbitrary<HttpExchange> = idArb.chain((id) =>
  fc.record({
    route: fc.constantFrom("phone-home", "heartbeat"),
    tokenIn: fc.constantFrom("path", "query", "both", "none"),
    token: tokenArb(id),
    body: bodyArb(id),
    type: contentTypeArb,
    ua: fc.option(headerValueArb, { nil: undefined }),
  }).map(({ route, tokenIn, token, body, type, ua }) => {
    const q = encodeURIComponent(token);
    const path = `/${route}/${id}` + (tokenIn === "path" || tokenIn === "both" ? `/${token}` : "") + (tokenIn === "query" || tokenIn === "both" ? `?token=${q}` : "");
    const validToken = TOKENS.includes(token) && tokenIn !== "none";
    return {
      via: "http" as const,
      kind: route === "heartbeat" ? "heartbeat" : validToken ? "body" : "token",
      method: "POST",
      path,
      headers: { "content-type": type, ...(ua !== undefined && /^[ -~]*$/.test(ua) ? { "user-agent": ua } : {}) },
      body: Buffer.from(body, "latin1"),
    };
  }),
);

const routeArb: fc.Arbitrary<HttpExchange> = fc.record({ method: methodArb, path: pathArb, body: fc.option(bytesArb(500), { nil: undefined }) }).map((r) => ({
  via: "http" as const,
  kind: "route",
  method: r.method,
  path: r.path,
  headers: {},
  ...(r.body && r.method !== "GET" && r.method !== "HEAD" ? { body: r.body } : {}),
}));

/** Odd headers on any route: huge, many, duplicated, a Content-Type given twice, Expect: 100-continue. */
const headersArb: fc.Arbitrary<HttpExchange> = fc
  .record({
    id: fc.constantFrom(...IDS),
    path: fc.constantFrom("/healthz", "/phone-home"),
    extra: fc.oneof<fc.Arbitrary<Record<string, string | string[]>>[]>(
      headerValueArb.map((v) => ({ "x-fuzz": v })),
      fc.constantFrom<Record<string, string | string[]>>(
        { "content-type": [FORM, "application/json"] },
        { "user-agent": ["a", "b", "c"], "x-forwarded-for": ["1.2.3.4", "::1"] },
        { expect: "100-continue" },
        { "transfer-encoding": "gzip, chunked" },
      ),
      fc.integer({ min: 50, max: 150 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, "v".repeat(60)]))),
    ),
  })
  .map(({ id, path, extra }) => {
    const i = IDS.indexOf(id);
    return {
      via: "http" as const,
      kind: "headers",
      method: path === "/healthz" ? "GET" : "POST",
      path: path === "/healthz" ? path : `/phone-home/${id}/${TOKENS[i]}`,
      headers: { "content-type": FORM, ...extra },
      ...(path === "/healthz" ? {} : { body: Buffer.from(cloudInitBody(id)) }),
    };
  });

/** Bodies over the 16 KiB limit, declared or streamed in chunks. */
const oversizedArb: fc.Arbitrary<HttpExchange> = fc
  .record({ id: fc.constantFrom(...IDS), size: fc.constantFrom(16_385, 20_000, 200_000, 2_000_000), chunked: fc.boolean(), route: fc.constantFrom("phone-home", "heartbeat") })
  .map(({ id, size, chunked, route }) => {
    const body = Buffer.alloc(size, "a");
    body.write(`instance_id=${id}&hostname=`);
    return {
      via: "http" as const,
      kind: "oversized",
      method: "POST",
      path: `/${route}/${id}/${TOKENS[IDS.indexOf(id)]}`,
      headers: { "content-type": FORM },
      ...(chunked ? { chunks: Array.from({ length: Math.ceil(size / 65_536) }, (_, k) => body.subarray(k * 65_536, (k + 1) * 65_536)) } : { body }),
    };
  });

/** A complete check-in head (with a Content-Length) for slow clients that then stop. */
const slowHeadArb = fc.constantFrom(...IDS).map((id) => {
  const body = cloudInitBody(id);
  return `POST /phone-home/${id}/${TOKENS[IDS.indexOf(id)]} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${FORM}\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 20)}`;
});

/** A slow client that waits for the server's own timeout (1 s here): it must get 408 or be disconnected. */
const slowWaitArb = slowHeadArb.map((head) => ({ via: "raw" as const, kind: "slow-until-server-timeout", chunks: [Buffer.from(head)], gapMs: 0, end: false, deadlineMs: 4_000, methods: ["POST"] }));

const exchangeArb: fc.Arbitrary<Exchange> = fc.oneof(
  { arbitrary: routeArb, weight: 40 },
  { arbitrary: checkInArb, weight: 80 },
  { arbitrary: headersArb, weight: 16 },
  { arbitrary: oversizedArb, weight: 6 },
  { arbitrary: malformedRawArb(pathArb.filter((p) => /^[!-~]+$/.test(p))), weight: 40 },
  { arbitrary: slowRawArb(slowHeadArb), weight: 10 },
  { arbitrary: slowWaitArb, weight: 1 },
);

let server: CheckInServer;
let port: number;
const logged = { lines: 0, withToken: 0, byEvent: new Map<string, number>() };

beforeAll(async () => {
  server = createCheckInServer({
    tokens: hmacTokenVerifier(SECRET),
    requestTimeoutMs: 1_000,
    logger: (line) => {
      logged.lines++;
      logged.byEvent.set(line.event, (logged.byEvent.get(line.event) ?? 0) + 1);
      const text = JSON.stringify(line);
      if (TOKENS.some((t) => text.includes(t))) logged.withToken++;
    },
  });
  await server.listen();
  port = Number(new URL(server.url).port);
});

afterAll(async () => {
  await server?.close();
});

describe("the check-in server under malformed requests", () => {
  it(`never answers 5xx, stays up after every batch, and leaks neither memory nor sockets (${RUNS} requests)`, async () => {
    const exchanges = fc.sample(exchangeArb, { numRuns: RUNS, seed: SEED });
    const run = await fuzzServer({ port, exchanges, batchSize: BATCH, seed: SEED, probe: { via: "http", kind: "health", method: "GET", path: "/healthz", headers: {} }, probeName: "/healthz", serverName: "server", socketWaitMs: 10000 });
    const { tally, failures, heap } = run;
    console.log(
      [
        fuzzSummary("check-in server fuzz", run, SEED),
        tally.summary(),
        `  health after each of ${run.health.length} batches: max ${Math.max(...run.health).toFixed(0)} ms; heap after GC ${run.heap[0]!.toFixed(1)} MiB after the first batch, at most ${Math.max(...run.heap).toFixed(1)}, ${run.heap.at(-1)!.toFixed(1)} at the end; check-in records ${server.checkIns().length}`,
        `  log lines ${logged.lines} (${[...logged.byEvent].map(([e, n]) => `${e} ${n}`).join(", ")}), with a token: ${logged.withToken}; sockets left ${run.socketsLeft}`,
      ].join("\n"),
    );

    expect(failures).toEqual([]);
    expect(run.processErrors).toEqual([]);
    expect(tally.total).toBe(RUNS);
    expect([...tally.statuses().keys()].filter((s) => s >= 500)).toEqual([]);
    expect(logged.withToken).toBe(0);
    expect(server.checkIns().length).toBeLessThanOrEqual(IDS.length);
    expect(run.socketsLeft).toBeLessThanOrEqual(0);
    // Memory: what the run left on the heap after a full GC stays small (logs are counted, not kept).
    expect(heap.at(-1)! - heap[0]!).toBeLessThan(32);
    // Some of each kind of answer, or the generator missed whole paths of the server (in a run long enough to tell).
    if (RUNS >= 2_000) for (const s of [200, 400, 403, 404, 405, 408, 413, 415, 431]) expect(tally.statuses().get(s) ?? 0, `status ${s}`).toBeGreaterThan(0);
  }, 600_000);
});
