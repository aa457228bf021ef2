import { createHmac } from "node:crypto";
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
  type RawExchange,
} from "../test/support/fuzz-http.js";
import { createWebhookReceiver, type WebhookEvent, type WebhookReceiver } from "./webhook.js";

// Fuzzing the webhook receiver over real HTTP on 127.0.0.1: PREMISCALE_FUZZ_RUNS requests (10,000), generated from
// PREMISCALE_FUZZ_SEED (fixed by default, so a failure replays; the failing request is printed with its index).
const RUNS = Number(process.env.PREMISCALE_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.PREMISCALE_FUZZ_SEED ?? 15_04);
const BATCH = 250;

const GITHUB_SECRET = "fuzz-github-secret";
const GITLAB_TOKEN = "fuzz-gitlab-token";
const sign = (body: Buffer, secret = GITHUB_SECRET) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
const PING = Buffer.from(JSON.stringify({ zen: "Keep it logically awesome." }));

/** JSON payloads: real pushes and pull requests, fields of the wrong type, other JSON values, deep and wide ones. */
const payloadArb: fc.Arbitrary<Buffer> = fc
  .oneof(
    { arbitrary: fc.constantFrom("refs/heads/main", "refs/heads/dev", "main", "", "refs/tags/v1").map((ref) => JSON.stringify({ ref, after: "abc" })), weight: 4 },
    { arbitrary: fc.constantFrom("main", "dev").map((b) => JSON.stringify({ action: "closed", pull_request: { merged: true, base: { ref: b } } })), weight: 2 },
    { arbitrary: fc.constantFrom("main", "dev").map((b) => JSON.stringify({ object_attributes: { target_branch: b } })), weight: 2 },
    {
      arbitrary: fc.constantFrom(
        '{"ref": 1}',
        '{"ref": ["refs/heads/main"]}',
        '{"ref": null}',
        '{"ref": {"toString": "x"}}',
        '{"pull_request": 1}',
        '{"pull_request": "x"}',
        '{"pull_request": null, "object_attributes": []}',
        '{"pull_request": {"base": 5}}',
        '{"pull_request": {"base": {"ref": {"a": 1}}}}',
        '{"object_attributes": {"target_branch": ["main"]}}',
        '{"__proto__": {"ref": "refs/heads/main"}}',
        '{"constructor": {"prototype": {"ref": "x"}}}',
        '{"ref": "refs/heads/main", "ref": "refs/heads/dev"}',
        "[]",
        "null",
        '"string"',
        "12",
        "true",
        "{",
        "{not json",
        '{"a": 1,}',
        "\uFEFF{}",
        '{"ref": "\\ud800"}',
        "",
      ),
      weight: 4,
    },
    { arbitrary: fc.constantFrom(10, 1_000, 100_000).map((d) => "[".repeat(d) + "]".repeat(d)), weight: 1 },
    { arbitrary: fc.constantFrom(10, 1_000, 100_000).map((d) => '{"a":'.repeat(d) + "1" + "}".repeat(d)), weight: 1 },
    { arbitrary: fc.constantFrom(1_000, 500_000, 1_048_000).map((n) => JSON.stringify({ ref: "refs/heads/main", pad: "x".repeat(n) })), weight: 1 },
    { arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), weight: 2 },
  )
  .map((s) => Buffer.from(s, "utf8"));

const rawBodyArb = fc.oneof(payloadArb, bytesArb(3_000), fc.constant(Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00])));

/** X-Hub-Signature-256 values: right, for another body or secret, malformed, duplicated, absent. */
const signatureArb = (body: Buffer) =>
  fc.oneof(
    { arbitrary: fc.constant<string | string[] | undefined>(sign(body)), weight: 6 },
    { arbitrary: fc.constant<string | string[] | undefined>(sign(body).toUpperCase().replace("SHA256=", "sha256=")), weight: 1 },
    { arbitrary: fc.constant<string | string[] | undefined>(` ${sign(body)} `), weight: 1 },
    {
      arbitrary: fc.constantFrom<string | string[] | undefined>(
        sign(body, "wrong"),
        sign(Buffer.concat([body, Buffer.from(" ")])),
        "sha256=zz",
        "sha256=",
        "sha1=" + "0".repeat(40),
        "sha256=" + "0".repeat(63),
        "sha256=" + "0".repeat(65),
        "SHA256=" + "0".repeat(64),
        "",
        [sign(body), sign(body)],
        [sign(body), "sha256=zz"],
        undefined,
      ),
      weight: 3,
    },
  );

const gitlabTokenArb = fc.oneof(
  { arbitrary: fc.constant<string | string[]>(GITLAB_TOKEN), weight: 4 },
  { arbitrary: fc.constantFrom<string | string[]>("", "wrong", GITLAB_TOKEN + " ", GITLAB_TOKEN.toUpperCase(), "x".repeat(7_000), [GITLAB_TOKEN, GITLAB_TOKEN], [GITLAB_TOKEN, "wrong"]), weight: 2 },
);

const contentTypeArb = fc.oneof(
  { arbitrary: fc.constant("application/json"), weight: 6 },
  { arbitrary: fc.constantFrom("application/json; charset=utf-8", "APPLICATION/JSON", "application/x-www-form-urlencoded", "text/plain", "", "application/json;;", "application/jsonx"), weight: 2 },
);

const githubArb: fc.Arbitrary<HttpExchange> = rawBodyArb.chain((body) =>
  fc
    .record({
      signature: signatureArb(body),
      event: fc.constantFrom("push", "pull_request", "ping", "issues", "", "PUSH", "push\u00ff"),
      delivery: fc.option(headerValueArb.filter((v) => v.length < 200), { nil: undefined }),
      type: contentTypeArb,
    })
    .map(({ signature, event, delivery, type }) => ({
      via: "http" as const,
      kind: signature === sign(body) ? "github-payload" : "github-signature",
      method: "POST",
      path: "/webhook",
      headers: {
        "content-type": type,
        "x-github-event": event,
        ...(signature !== undefined ? { "x-hub-signature-256": signature } : {}),
        ...(delivery !== undefined ? { "x-github-delivery": delivery } : {}),
      },
      body,
    })),
);

const gitlabArb: fc.Arbitrary<HttpExchange> = fc
  .record({ body: rawBodyArb, token: gitlabTokenArb, event: fc.constantFrom("Push Hook", "Merge Request Hook", "Tag Push Hook", "", "push"), type: contentTypeArb, alsoGithub: fc.boolean() })
  .map(({ body, token, event, type, alsoGithub }) => ({
    via: "http" as const,
    kind: "gitlab",
    method: "POST",
    path: "/webhook",
    headers: { "content-type": type, "x-gitlab-token": token, "x-gitlab-event": event, "x-gitlab-event-uuid": "u-1", ...(alsoGithub ? { "x-hub-signature-256": "sha256=zz" } : {}) },
    body,
  }));

const pathArb = fc.oneof(
  fc.tuple(fc.constantFrom("/webhook", "/webhook/", "/WEBHOOK", "/", "", "/webhook%2F", "/web%68ook", "//webhook", "/./webhook", "/x/../webhook"), fc.array(segmentArb, { maxLength: 3 }), queryArb).map(
    ([head, segs, q]) => (head + (segs.length ? "/" + segs.join("/") : "") || "/") + q,
  ),
  fc.constantFrom(1_000, 7_000, 20_000).map((n) => "/webhook?" + "a".repeat(n)),
  fc.constantFrom("//a:99999/webhook", "//[::1/webhook", "//user@/webhook", "//%zz/webhook", "//a b/webhook", "http://x/webhook", "//x:0/webhook"),
);

const routeArb: fc.Arbitrary<HttpExchange> = fc.record({ method: methodArb, path: pathArb, body: fc.option(payloadArb, { nil: undefined }) }).map((r) => ({
  via: "http" as const,
  kind: "route",
  method: r.method,
  path: r.path,
  headers: r.body ? { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": sign(r.body) } : ({} as Record<string, string>),
  ...(r.body && r.method !== "GET" && r.method !== "HEAD" ? { body: r.body } : {}),
}));

const headersArb: fc.Arbitrary<HttpExchange> = fc
  .oneof<fc.Arbitrary<Record<string, string | string[]>>[]>(
    headerValueArb.map((v) => ({ "x-fuzz": v })),
    headerValueArb.map((v) => ({ "x-github-delivery": v })),
    fc.constantFrom<Record<string, string | string[]>>(
      { "content-type": ["application/json", "text/plain"] },
      { "x-github-event": ["push", "ping"] },
      { expect: "100-continue" },
      { "transfer-encoding": "gzip, chunked" },
      { "content-encoding": "gzip" },
    ),
    fc.integer({ min: 50, max: 150 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, "v".repeat(60)]))),
  )
  .map((extra) => {
    const body = Buffer.from(JSON.stringify({ ref: "refs/heads/main" }));
    return { via: "http" as const, kind: "headers", method: "POST", path: "/webhook", headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": sign(body), ...extra }, body };
  });

/** Bodies over the 1 MiB limit, declared or streamed. */
const oversizedArb: fc.Arbitrary<HttpExchange> = fc.record({ size: fc.constantFrom(1_048_577, 1_500_000, 4_000_000), chunked: fc.boolean(), gitlab: fc.boolean() }).map(({ size, chunked, gitlab }) => {
  const body = Buffer.alloc(size, 0x20);
  body.write('{"ref":"refs/heads/main","pad":"');
  return {
    via: "http" as const,
    kind: "oversized",
    method: "POST",
    path: "/webhook",
    headers: { "content-type": "application/json", ...(gitlab ? { "x-gitlab-token": GITLAB_TOKEN, "x-gitlab-event": "Push Hook" } : { "x-github-event": "push", "x-hub-signature-256": sign(body) }) },
    ...(chunked ? { chunks: Array.from({ length: Math.ceil(size / 65_536) }, (_, k) => body.subarray(k * 65_536, (k + 1) * 65_536)) } : { body }),
  };
});

const slowHeadArb = payloadArb.filter((b) => b.length > 20 && b.length < 10_000).map(
  (body) => `POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: ${sign(body)}\r\nContent-Length: ${body.length}\r\n\r\n${body.subarray(0, 10).toString("latin1")}`,
);

/** A client that stalls until the receiver's own 10 s request timeout: it must be disconnected, never answered 5xx. */
const slowWaitArb: fc.Arbitrary<RawExchange> = slowHeadArb.map((head) => ({ via: "raw", kind: "slow-until-server-timeout", chunks: [Buffer.from(head, "latin1")], gapMs: 0, end: false, deadlineMs: 14_000, methods: ["POST"] }));

const exchangeArb: fc.Arbitrary<Exchange> = fc.oneof(
  { arbitrary: routeArb, weight: 30 },
  { arbitrary: githubArb, weight: 80 },
  { arbitrary: gitlabArb, weight: 20 },
  { arbitrary: headersArb, weight: 14 },
  { arbitrary: oversizedArb, weight: 3 },
  { arbitrary: malformedRawArb(pathArb.filter((p) => /^[!-~]+$/.test(p))), weight: 40 },
  { arbitrary: slowRawArb(slowHeadArb), weight: 10 },
  { arbitrary: slowWaitArb, weight: 1 },
);

let receiver: WebhookReceiver;
let port: number;
const triggered: WebhookEvent[][] = [];
const logged = { lines: 0, withSecret: 0, byEvent: new Map<string, number>() };

beforeAll(async () => {
  receiver = createWebhookReceiver({
    githubSecret: GITHUB_SECRET,
    gitlabToken: GITLAB_TOKEN,
    branch: "main",
    debounceMs: 50,
    onTrigger: (events) => triggered.push(events),
    log: (line) => {
      logged.lines++;
      logged.byEvent.set(line.event, (logged.byEvent.get(line.event) ?? 0) + 1);
      const text = JSON.stringify(line);
      if (text.includes(GITHUB_SECRET) || text.includes(GITLAB_TOKEN)) logged.withSecret++;
    },
  });
  await receiver.listen();
  port = Number(new URL(receiver.url).port);
});

afterAll(async () => {
  await receiver?.close();
});

describe("the webhook receiver under malformed requests", () => {
  it(`never answers 5xx, stays up after every batch, and leaks neither memory nor sockets (${RUNS} requests)`, async () => {
    const exchanges = fc.sample(exchangeArb, { numRuns: RUNS, seed: SEED });
    const run = await fuzzServer({ port, exchanges, batchSize: BATCH, seed: SEED, probe: { via: "http", kind: "health", method: "POST", path: "/webhook", headers: { "content-type": "application/json", "x-github-event": "ping", "x-hub-signature-256": sign(PING) }, body: PING }, probeName: "a signed ping", serverName: "receiver", socketWaitMs: 15000 });
    const { tally, failures, heap } = run;
    console.log(
      [
        fuzzSummary("webhook fuzz", run, SEED),
        tally.summary(),
        `  signed ping after each of ${run.health.length} batches: max ${Math.max(...run.health).toFixed(0)} ms; heap after GC ${run.heap[0]!.toFixed(1)} MiB after the first batch, at most ${Math.max(...run.heap).toFixed(1)}, ${run.heap.at(-1)!.toFixed(1)} at the end`,
        `  triggers ${triggered.length} (${triggered.flat().length} events); log lines ${logged.lines} (${[...logged.byEvent].map(([e, n]) => `${e} ${n}`).join(", ")}), with a secret: ${logged.withSecret}; sockets left ${run.socketsLeft}`,
      ].join("\n"),
    );

    expect(failures).toEqual([]);
    expect(run.processErrors).toEqual([]);
    expect(tally.total).toBe(RUNS);
    expect([...tally.statuses().keys()].filter((s) => s >= 500)).toEqual([]);
    expect(logged.withSecret).toBe(0);
    expect(run.socketsLeft).toBeLessThanOrEqual(0);
    expect(heap.at(-1)! - heap[0]!).toBeLessThan(32);
    // Some of each kind of answer, or the generator missed whole paths of the receiver (in a run long enough to tell).
    if (RUNS >= 2_000) {
      expect(triggered.length).toBeGreaterThan(0);
      for (const s of [200, 202, 400, 401, 404, 405, 413, 415]) expect(tally.statuses().get(s) ?? 0, `status ${s}`).toBeGreaterThan(0);
    }
  }, 600_000);
});
