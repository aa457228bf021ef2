import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { runHook, type HookContext } from "../applier/lifecycle.js";
import { freePort } from "../test/support/serve.js";
import { httpHook, parseRetryAfter, signature, type HttpHookConfig } from "./http-hook.js";

// A real HTTP server on 127.0.0.1 answers; time is injected (the hook's clock and its waits between attempts), so
// backoff and timeouts are exact and nothing sleeps.

const target = { address: "web[web-1a2b3c4d]", group: "web", name: "web-1a2b3c4d", uuid: "0f9e8d7c-aaaa-4bbb-8ccc-123456789abc", host: "kvm1" };
const NOW = new Date("2026-12-03T10:00:00.000Z");
const SECRET = "s3cret";

type Answer = (req: IncomingMessage, body: string, res: ServerResponse) => void;
interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
  at: number;
}
let server: Server;
let url: string;
let answers: Answer[];
let fallback: Answer;
let seen: Seen[];
/** The injected clock (ms) and the waits the hook asked for. */
let t: number;
let slept: number[];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => (body += d));
    req.on("end", () => {
      seen.push({ method: req.method!, path: req.url!, headers: req.headers, body, at: t });
      (answers.shift() ?? fallback)(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/lb?token=abc`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  answers = [];
  fallback = (_q, _b, res) => res.writeHead(500).end("no answer scripted");
  seen = [];
  t = 0;
  slept = [];
});

const reply = (status: number, body = "", headers: Record<string, string> = {}): Answer => (_q, _b, res) => res.writeHead(status, headers).end(body);

function hookOf(o: Partial<HttpHookConfig> & { at?: string } = {}) {
  const { at, ...rest } = o;
  const config = { name: "lb", on: "launching", http: { url: at ?? url, secretEnv: "LB_SECRET" }, timeoutSeconds: 10, defaultResult: "abandon", ...rest } as HttpHookConfig;
  return httpHook(config, {
    secret: SECRET,
    now: () => NOW,
    clock: () => t,
    sleep: async (ms) => {
      slept.push(ms);
      t += ms;
    },
    requestTimeoutMs: 2000,
  });
}

function context(over: Partial<HookContext> = {}): HookContext {
  return { point: "until-ready", vm: target, signal: new AbortController().signal, heartbeat: () => undefined, ...over };
}

describe("httpHook", () => {
  it("POSTs the event as JSON, signed with HMAC-SHA256 of the body like GitHub webhooks; an empty 2xx continues", async () => {
    answers.push(reply(204));
    expect(await hookOf().run(context())).toEqual({ result: "continue" });
    expect(seen).toHaveLength(1);
    const [req] = seen;
    expect(req).toMatchObject({ method: "POST", path: "/hooks/lb?token=abc" });
    expect(JSON.parse(req!.body)).toEqual({
      version: 1,
      event: "launching",
      hook: "lb",
      group: "web",
      instance: { name: "web-1a2b3c4d", uuid: target.uuid, host: "kvm1" },
      timeoutSeconds: 10,
      defaultResult: "abandon",
      time: "2026-12-03T10:00:00.000Z",
    });
    // What a receiver does: recompute the HMAC over the raw body with the shared secret.
    const expected = `sha256=${createHmac("sha256", SECRET).update(req!.body).digest("hex")}`;
    expect(req!.headers["x-premiscale-signature-256"]).toBe(expected);
    expect(signature(req!.body, SECRET)).toBe(expected);
    expect(req!.headers).toMatchObject({ "content-type": "application/json", "x-premiscale-event": "launching", "x-premiscale-hook": "lb" });
    expect(req!.headers["x-premiscale-delivery"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(req!.headers["user-agent"]).toMatch(/^premiscale\//);
  });

  it("takes the result and message a 2xx body gives, and continues on a body that says nothing", async () => {
    answers.push(reply(200, JSON.stringify({ result: "abandon", message: "pool web is full" })));
    expect(await hookOf().run(context())).toEqual({ result: "abandon", message: "hook lb (launching) answered abandon: pool web is full" });
    answers.push(reply(200, JSON.stringify({ result: "continue", message: "added to pool web" })));
    expect(await hookOf().run(context())).toEqual({ result: "continue", message: "hook lb (launching): added to pool web" });
    answers.push(reply(200, "OK"), reply(201, JSON.stringify({ registered: true })));
    expect(await hookOf().run(context())).toEqual({ result: "continue" });
    expect(await hookOf().run(context())).toEqual({ result: "continue" });
    answers.push(reply(200, JSON.stringify({ result: "maybe" })));
    expect(await hookOf().run(context())).toEqual({
      result: "abandon",
      message: 'hook lb (launching) answered HTTP 200 with result "maybe", which is neither "continue" nor "abandon"',
    });
  });

  it("treats 202 as a heartbeat and asks again after Retry-After, or 5 s, with the same signed body", async () => {
    answers.push(reply(202, "", { "retry-after": "2" }), reply(202), reply(200, JSON.stringify({ result: "continue" })));
    let beats = 0;
    expect(await hookOf({ timeoutSeconds: 60 }).run(context({ heartbeat: () => beats++ }))).toEqual({ result: "continue" });
    expect(beats).toBe(2);
    expect(slept).toEqual([2000, 5000]);
    expect(new Set(seen.map((s) => s.body)).size).toBe(1);
    expect(new Set(seen.map((s) => s.headers["x-premiscale-delivery"])).size).toBe(1);
  });

  it("polls a 202 sooner than its Retry-After when the hook's timeout is shorter", async () => {
    answers.push(reply(202, "", { "retry-after": "60" }), reply(204));
    expect(await hookOf({ timeoutSeconds: 10 }).run(context())).toEqual({ result: "continue" });
    expect(slept).toEqual([4500]); // half of 10 s less a margin (it ends before runHook's own timer)
  });

  it("retries a refused connection with backoff until the timeout, then takes the default result naming the last error", async () => {
    const closed = `http://127.0.0.1:${await freePort()}/hook`;
    expect(await hookOf({ at: closed, defaultResult: "continue" }).run(context())).toEqual({
      result: "continue",
      message: `hook lb (launching): POST ${closed} failed (cannot connect: ECONNREFUSED) when its 10 s ran out; took its default result, continue`,
    });
    // 1, 2, 4 s, then the last try just before the deadline (10 s less a 1 s margin).
    expect(slept).toEqual([1000, 2000, 4000, 1500]);
  });

  it("retries 5xx and 429 (honouring Retry-After) and takes the answer that finally comes", async () => {
    answers.push(reply(503, "maintenance"), reply(429, "", { "retry-after": "3" }), reply(502), reply(200));
    expect(await hookOf().run(context())).toEqual({ result: "continue" });
    expect(slept).toEqual([1000, 3000, 4000]);
    expect(seen.map((s) => s.at)).toEqual([0, 1000, 4000, 8000]);
  });

  it("gives up on a 5xx that lasts, with the status and the server's words", async () => {
    fallback = reply(503, "upstream registry down");
    expect(await hookOf({ timeoutSeconds: 3 }).run(context())).toEqual({
      result: "abandon",
      message: `hook lb (launching): POST ${url.split("?")[0]} failed (HTTP 503: upstream registry down) when its 3 s ran out; took its default result, abandon`,
    });
  });

  it("abandons at once on a 4xx or a redirect, saying what to check", async () => {
    answers.push(reply(401, "bad signature"), reply(404), reply(302, "", { location: "https://elsewhere/" }));
    expect(await hookOf().run(context())).toEqual({
      result: "abandon",
      message: `hook lb (launching): POST ${url.split("?")[0]} answered HTTP 401: bad signature (check that the endpoint and http.secretEnv hold the same secret)`,
    });
    expect((await hookOf().run(context())).message).toMatch(/answered HTTP 404 \(check the URL\)$/);
    expect((await hookOf().run(context())).message).toMatch(/answered HTTP 302 \(redirects are not followed: set the URL to where it points\)$/);
    expect(slept).toEqual([]);
  });

  it("bounds each request by its timeout, and counts one that hangs as a failed try", async () => {
    const hung = createServer(() => undefined); // accepts, reads, never answers
    await new Promise<void>((r) => hung.listen(0, "127.0.0.1", r));
    try {
      const at = `http://127.0.0.1:${(hung.address() as AddressInfo).port}/`;
      const h = httpHook({ name: "lb", on: "terminating", http: { url: at, secretEnv: "S" }, timeoutSeconds: 1, defaultResult: "continue" }, { secret: SECRET, requestTimeoutMs: 50, clock: () => t, sleep: async (ms) => void (t += ms) });
      expect(await h.run(context({ point: "before-destroy" }))).toMatchObject({ result: "continue", message: expect.stringContaining("failed (no answer within 0.1 s) when its 1 s ran out") });
    } finally {
      hung.closeAllConnections();
      await new Promise((r) => hung.close(r));
    }
  });

  it("stops when apply stops waiting", async () => {
    const stop = new AbortController();
    fallback = (_q, _b, res) => {
      stop.abort(new Error("hook lb timed out"));
      res.writeHead(503).end();
    };
    const h = httpHook({ name: "lb", on: "launching", http: { url, secretEnv: "S" }, timeoutSeconds: 10, defaultResult: "continue" }, { secret: SECRET });
    expect(await h.run(context({ signal: stop.signal }))).toEqual({ result: "abandon", message: "hook lb (launching): stopped (hook lb timed out)" });
  });

  it("stops counting 202s as heartbeats after 100 timeouts, then takes the default result", async () => {
    fallback = reply(202);
    let beats = 0;
    const r = await hookOf({ timeoutSeconds: 10 }).run(context({ heartbeat: () => beats++ }));
    expect(r).toEqual({ result: "abandon", message: `hook lb (launching): POST ${url.split("?")[0]} was still working (202 Accepted) when its 10 s ran out; took its default result, abandon` });
    // Polled every 4.5 s (half of 10 s less the margin); beats count for 1000 s, then the last one lasts 9 s.
    expect(beats).toBe(Math.ceil(1_000_000 / 4500));
    expect(t).toBeGreaterThanOrEqual(1_000_000);
    expect(t).toBeLessThan(1_010_000);
  });

  it("with runHook and its real timer, a hook that keeps answering 202 outlives its timeout", async () => {
    // The hook's own clock and waits are the defaults here, faked along with runHook's timer.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    try {
      answers.push(reply(202, "", { "retry-after": "2" }), reply(202, "", { "retry-after": "2" }), reply(202, "", { "retry-after": "2" }), reply(200));
      const h = httpHook({ name: "lb", on: "launching", http: { url, secretEnv: "S" }, timeoutSeconds: 5, defaultResult: "abandon" }, { secret: SECRET });
      let beats = 0;
      const counted = { ...h, run: (ctx: HookContext) => h.run({ ...ctx, heartbeat: () => (beats++, ctx.heartbeat()) }) };
      const running = runHook(counted, { point: "until-ready", vm: target });
      for (let i = 1; i <= 3; i++) {
        // Once the 202 is counted, the hook has set its timer for the next request.
        for (let n = 0; beats < i; n++) {
          if (n > 100_000) throw new Error(`answer ${i} never came back`);
          await new Promise((r) => setImmediate(r));
        }
        await vi.advanceTimersByTimeAsync(2000); // 6 s in all, against a 5 s timeout
      }
      expect(await running).toEqual({ hook: "lb", result: "continue", timedOut: false });
      expect(seen).toHaveLength(4);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates, and nothing else", () => {
    expect(parseRetryAfter("7", NOW)).toBe(7000);
    expect(parseRetryAfter("Thu, 03 Dec 2026 10:00:30 GMT", NOW)).toBe(30_000);
    expect(parseRetryAfter("Thu, 03 Dec 2026 09:00:00 GMT", NOW)).toBe(0);
    expect(parseRetryAfter("soon", NOW)).toBeNull();
    expect(parseRetryAfter(null, NOW)).toBeNull();
  });
});
