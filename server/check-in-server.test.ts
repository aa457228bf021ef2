import { randomBytes, randomUUID } from "node:crypto";
import { request } from "node:http";
import { connect } from "node:net";
import { register as globalRegistry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { PremiscaleError } from "../config/errors.js";
import {
  createCheckInServer,
  hmacTokenVerifier,
  instanceToken,
  phoneHomeConfig,
  type CheckIn,
  type CheckInServer,
  type CheckInServerOptions,
  type ServerLogLine,
} from "./check-in-server.js";

// Host keys as a Debian guest's /etc/ssh/ssh_host_*_key.pub hold them (made with ssh-keygen for these tests).
const ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMtJFKPN6zxXDV3LE3mlqTIW4UNLue/3j/+u5g8v2vOa root@web-1a2b3c4d";
const ECDSA =
  "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFyNHjYnjo8psP7ShH1+uGQ8CPCWJ2YWf9ie6OOwB4DwOVPaxdzymASpyxlp+rXC59kNpchb1q5Ge1+8P2mdhxA= root@web-1a2b3c4d";
const RSA =
  "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCwT9zYgOdh6m7nm3hsjnkw6QCqws1Clgw96AN+rTRzNJKDzWr4mgHhajVoPcKy9awIUAZxlXf4u7whwzxqdNhfiuvBve+ihkKniQqHeY/rV+mVeuRT1EcJJMhu5K6jB2exFej2f/1hMfeMqjlJqC5pnZDMGLC4LpoTG39dezojrw== root@web-1a2b3c4d";

const FORM = "application/x-www-form-urlencoded";
const CLOUD_INIT_HEADERS = { "Content-Type": FORM, "User-Agent": "Cloud-Init/22.4.2" };
const NOW = new Date("2026-11-23T12:00:00.000Z");

const secret = randomBytes(32);
/** Every token a test sent, valid or forged: none may ever show up in a log line or a record. */
const tokensSent = new Set<string>();
const running: { server: CheckInServer; logs: ServerLogLine[] }[] = [];

function tokenFor(instanceId: string): string {
  const token = instanceToken(secret, instanceId);
  tokensSent.add(token);
  return token;
}

function forged(token: string): string {
  tokensSent.add(token);
  return token;
}

/** The body cloud-init 22.4 posts with `post: all`, field for field (keys as read from disk, newline included). */
function cloudInitBody(instanceId: string, overrides: Record<string, string> = {}): string {
  return new URLSearchParams({
    pub_key_dsa: "N/A",
    pub_key_rsa: `${RSA}\n`,
    pub_key_ecdsa: `${ECDSA}\n`,
    pub_key_ed25519: `${ED25519}\n`,
    instance_id: instanceId,
    hostname: "web-1a2b3c4d",
    fqdn: "web-1a2b3c4d.example.internal",
    ...overrides,
  }).toString();
}

async function start(options: Partial<CheckInServerOptions> = {}) {
  const logs: ServerLogLine[] = [];
  const server = createCheckInServer({
    tokens: hmacTokenVerifier(secret),
    logger: (line) => logs.push(line),
    clock: () => NOW,
    ...options,
  });
  await server.listen();
  running.push({ server, logs });
  return { server, logs, url: server.url };
}

function phoneHome(url: string, instanceId: string, token: string, body = cloudInitBody(instanceId), headers: Record<string, string> = CLOUD_INIT_HEADERS) {
  return fetch(`${url}/phone-home/${instanceId}/${token}`, { method: "POST", headers, body });
}

async function textOf(response: Response): Promise<{ status: number; text: string }> {
  return { status: response.status, text: await response.text() };
}

/** Sends raw bytes and returns what came back before the server closed the connection. */
function rawExchange(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    let received = "";
    socket.on("data", (d) => (received += d.toString("latin1")));
    socket.on("close", () => resolve(received));
    socket.on("error", reject);
  });
}

afterEach(async () => {
  const all = running.splice(0);
  await Promise.all(all.map((r) => r.server.close()));
  const logged = JSON.stringify(all.map((r) => r.logs));
  const recorded = JSON.stringify(all.map((r) => r.server.checkIns()));
  for (const token of tokensSent) {
    expect(logged).not.toContain(token);
    expect(recorded).not.toContain(token);
    expect(logged).not.toContain(encodeURIComponent(token));
  }
  tokensSent.clear();
});

describe("a check-in from cloud-init", () => {
  it("is accepted with 200 ok and recorded with the guest's names, real keys and user agent", async () => {
    const seen: CheckIn[] = [];
    const { server, url, logs } = await start({ onCheckIn: (c) => seen.push(c) });
    const id = randomUUID();
    expect(await textOf(await phoneHome(url, id, tokenFor(id)))).toEqual({ status: 200, text: "ok" });
    const expected: CheckIn = {
      instanceId: id,
      hostname: "web-1a2b3c4d",
      fqdn: "web-1a2b3c4d.example.internal",
      pubKeys: { rsa: RSA, ecdsa: ECDSA, ed25519: ED25519 },
      receivedAt: NOW.toISOString(),
      firstReceivedAt: NOW.toISOString(),
      userAgent: "Cloud-Init/22.4.2",
      count: 1,
    };
    expect(server.checkIns()).toEqual([expected]);
    expect(seen).toEqual([expected]);
    expect(logs).toContainEqual(expect.objectContaining({ event: "check_in", result: "ok", instanceId: id, status: 200, level: "info" }));
  });

  it("records a guest without openssh-server (every key N/A) with no keys and no host names when they are N/A", async () => {
    const { server, url } = await start();
    const id = randomUUID();
    const body = cloudInitBody(id, { pub_key_rsa: "N/A", pub_key_ecdsa: "N/A", pub_key_ed25519: "N/A", fqdn: "N/A" });
    expect((await phoneHome(url, id, tokenFor(id), body)).status).toBe(200);
    expect(server.checkIns()[0]).toMatchObject({ pubKeys: {}, hostname: "web-1a2b3c4d", fqdn: null });
  });

  it("accepts the token as ?token= as well as a path segment, and a trailing slash", async () => {
    const { server, url } = await start();
    const a = randomUUID();
    const b = randomUUID();
    const viaQuery = await fetch(`${url}/phone-home/${a}?token=${tokenFor(a)}`, { method: "POST", headers: CLOUD_INIT_HEADERS, body: cloudInitBody(a) });
    const withSlash = await fetch(`${url}/phone-home/${b}/${tokenFor(b)}/`, { method: "POST", headers: CLOUD_INIT_HEADERS, body: cloudInitBody(b) });
    expect([viaQuery.status, withSlash.status]).toEqual([200, 200]);
    expect(server.checkIns().map((c) => c.instanceId)).toEqual([a, b]);
  });

  it("works at the URL phoneHomeConfig puts in the seed once cloud-init fills in $INSTANCE_ID", async () => {
    const { server, url } = await start();
    const id = randomUUID();
    const config = phoneHomeConfig(`${url}/`, tokenFor(id));
    expect(config).toEqual({ url: `${url}/phone-home/$INSTANCE_ID/${instanceToken(secret, id)}`, post: "all", tries: 10 });
    const response = await fetch(config.url.replace("$INSTANCE_ID", id), { method: "POST", headers: CLOUD_INIT_HEADERS, body: cloudInitBody(id) });
    expect(response.status).toBe(200);
    expect(server.checkIns()).toHaveLength(1);
  });

  it("is accepted again when the same token is replayed, and counted each time", async () => {
    let now = NOW.getTime();
    const { server, url } = await start({ clock: () => new Date(now) });
    const id = randomUUID();
    const token = tokenFor(id);
    for (let i = 0; i < 3; i++, now += 1000) expect((await phoneHome(url, id, token)).status).toBe(200);
    const [record] = server.checkIns();
    expect(record).toMatchObject({ instanceId: id, count: 3 });
    expect(Date.parse(record!.receivedAt) - Date.parse(record!.firstReceivedAt)).toBe(2000);
    const metrics = await server.metrics.metrics();
    expect(metrics).toContain('premiscale_checkins_total{result="ok"} 1');
    expect(metrics).toContain('premiscale_checkins_total{result="repeated"} 2');
  });

  it("logs a warning when a replay reports different host keys than before", async () => {
    const { server, url, logs } = await start();
    const id = randomUUID();
    await phoneHome(url, id, tokenFor(id));
    const response = await phoneHome(url, id, tokenFor(id), cloudInitBody(id, { pub_key_rsa: "N/A" }));
    expect(response.status).toBe(200);
    expect(server.checkIns()[0]!.pubKeys.rsa).toBeUndefined();
    expect(logs).toContainEqual(expect.objectContaining({ level: "warn", result: "repeated", count: 2, reason: expect.stringContaining("different host keys") }));
  });
});

describe("a refused check-in", () => {
  it("with a forged token gets 403, is not recorded, and is logged with the reason", async () => {
    const { server, url, logs } = await start();
    const id = randomUUID();
    const response = await textOf(await phoneHome(url, id, forged(randomBytes(32).toString("base64url"))));
    expect(response).toEqual({ status: 403, text: "forbidden" });
    expect(server.checkIns()).toEqual([]);
    expect(logs).toContainEqual(
      expect.objectContaining({ event: "request_rejected", status: 403, result: "forbidden", instanceId: id, reason: "the token is not valid for this instance id" }),
    );
  });

  it("with another instance's token, an unknown instance, or no token gets the same 403 as a forged one", async () => {
    const known = new Set<string>();
    const { server, url, logs } = await start({ tokens: hmacTokenVerifier(secret, { isKnown: (id) => known.has(id) }) });
    const mine = randomUUID();
    const other = randomUUID();
    const unknown = randomUUID();
    known.add(mine).add(other);
    const answers = [
      await textOf(await phoneHome(url, mine, tokenFor(other), cloudInitBody(mine))),
      await textOf(await phoneHome(url, unknown, tokenFor(unknown))),
      await textOf(await fetch(`${url}/phone-home/${mine}`, { method: "POST", headers: CLOUD_INIT_HEADERS, body: cloudInitBody(mine) })),
      await textOf(await phoneHome(url, mine, forged("x".repeat(43)))),
    ];
    expect(answers).toEqual(Array(4).fill({ status: 403, text: "forbidden" }));
    expect(server.checkIns()).toEqual([]);
    expect(logs.filter((l) => l.status === 403)).toHaveLength(4);
    expect(logs).toContainEqual(expect.objectContaining({ instanceId: mine, reason: "no token" }));
    expect((await phoneHome(url, mine, tokenFor(mine))).status).toBe(200);
  });

  it("whose body's instance_id is not the one in the path gets 400, even with a valid token", async () => {
    const { server, url, logs } = await start();
    const id = randomUUID();
    const response = await textOf(await phoneHome(url, id, tokenFor(id), cloudInitBody(randomUUID())));
    expect(response).toEqual({ status: 400, text: "bad request: instance_id in the body does not match the path" });
    expect(server.checkIns()).toEqual([]);
    expect(logs).toContainEqual(expect.objectContaining({ status: 400, result: "bad_request", instanceId: id }));
  });

  const id = "5d1f7a52-0c4e-4d8e-9d55-2f8a4c1e9b01";
  it.each([
    ["an empty body", "", "field instance_id is missing"],
    ["no instance_id", cloudInitBody(id).replace(`instance_id=${id}&`, ""), "field instance_id is missing"],
    ["instance_id N/A", cloudInitBody(id, { instance_id: "N/A" }), "field instance_id is missing"],
    ["instance_id twice", `${cloudInitBody(id)}&instance_id=${id}`, "field instance_id appears more than once"],
    ["a broken %-escape", `${cloudInitBody(id)}&hostname=%zz`, "the body has a malformed %-escape"],
    ["JSON sent as a form", JSON.stringify({ instance_id: id }), "the body is not form-encoded (every field must be name=value)"],
    ["a key that is not a key", cloudInitBody(id, { pub_key_ed25519: "ssh-ed25519 not-base64!" }), "field pub_key_ed25519 is neither N/A nor an OpenSSH ed25519 public key"],
    ["a key of the wrong type", cloudInitBody(id, { pub_key_rsa: ED25519 }), "field pub_key_rsa is neither N/A nor an OpenSSH rsa public key"],
    ["a key whose blob is another algorithm", cloudInitBody(id, { pub_key_rsa: ED25519.replace("ssh-ed25519", "ssh-rsa") }), "field pub_key_rsa is neither N/A nor an OpenSSH rsa public key"],
    ["a host name with a newline", cloudInitBody(id, { hostname: "web\nevil" }), "field hostname is not a host name"],
  ])("with %s gets 400 and a log line saying why", async (_, body, reason) => {
    const { server, url, logs } = await start();
    const response = await textOf(await phoneHome(url, id, tokenFor(id), body));
    expect(response).toEqual({ status: 400, text: `bad request: ${reason}` });
    expect(server.checkIns()).toEqual([]);
    expect(logs).toContainEqual(expect.objectContaining({ event: "request_rejected", status: 400, result: "bad_request", reason }));
  });

  it("whose body is not UTF-8 gets 400", async () => {
    const { url } = await start();
    const id = randomUUID();
    const body = Buffer.concat([Buffer.from(`instance_id=${id}&hostname=`), Buffer.from([0xff, 0xfe])]);
    const response = await fetch(`${url}/phone-home/${id}/${tokenFor(id)}`, { method: "POST", headers: CLOUD_INIT_HEADERS, body });
    expect(await textOf(response)).toEqual({ status: 400, text: "bad request: the body is not UTF-8" });
  });

  it("with a path that is not a valid instance id gets 400", async () => {
    const { url, logs } = await start();
    const response = await fetch(`${url}/phone-home/%2E%2E%2Fetc/${forged("abc")}`, { method: "POST", headers: CLOUD_INIT_HEADERS, body: "" });
    expect(response.status).toBe(400);
    expect(logs).toContainEqual(expect.objectContaining({ status: 400, reason: "the instance id in the path is not valid" }));
  });

  it("sent as JSON or without a Content-Type gets 415", async () => {
    const { url, logs } = await start();
    const id = randomUUID();
    const asJson = await phoneHome(url, id, tokenFor(id), JSON.stringify({ instance_id: id }), { "Content-Type": "application/json" });
    const untyped = await fetch(`${url}/phone-home/${id}/${tokenFor(id)}`, { method: "POST", body: new Uint8Array(Buffer.from(cloudInitBody(id))) });
    expect([asJson.status, untyped.status]).toEqual([415, 415]);
    expect(logs.filter((l) => l.result === "unsupported_media_type").map((l) => l.reason)).toEqual(["the body is not form-encoded", "no Content-Type"]);
  });

  it("over the size limit gets 413 from its Content-Length, before the body is read", async () => {
    const { server, url, logs } = await start({ maxBodyBytes: 1024 });
    const id = randomUUID();
    const response = await phoneHome(url, id, tokenFor(id), cloudInitBody(id, { hostname: "a".repeat(2000) }));
    expect(await textOf(response)).toEqual({ status: 413, text: "request body too large" });
    expect(logs).toContainEqual(expect.objectContaining({ status: 413, result: "too_large", instanceId: id }));
    expect((await phoneHome(url, id, tokenFor(id))).status).toBe(200);
    expect(server.checkIns()).toHaveLength(1);
  });

  it("streamed without a length gets 413 once the limit is passed, without the server reading the rest", async () => {
    const { url } = await start();
    const id = randomUUID();
    const endless = 64 * 1024 * 1024;
    const result = await new Promise<{ status: number; sentBeforeResponse: number }>((resolve, reject) => {
      let sent = 0;
      const req = request(`${url}/phone-home/${id}/${tokenFor(id)}`, { method: "POST", headers: CLOUD_INIT_HEADERS }, (res) => {
        const sentBeforeResponse = sent;
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode!, sentBeforeResponse }));
      });
      // The server closes the connection after its 413, so the rest of this body is refused: expected here.
      req.on("error", () => undefined);
      const chunk = Buffer.alloc(16 * 1024, "a");
      req.write(`instance_id=${id}&hostname=`);
      const pump = () => {
        while (sent < endless && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
      setTimeout(() => reject(new Error("no response")), 10_000).unref();
    });
    expect(result.status).toBe(413);
    expect(result.sentBeforeResponse).toBeLessThan(endless);
    expect(await textOf(await fetch(`${url}/healthz`))).toEqual({ status: 200, text: "ok" });
    expect((await phoneHome(url, id, tokenFor(id))).status).toBe(200);
  });

  it("with the wrong method gets 405 and an Allow header", async () => {
    const { url, logs } = await start();
    const id = randomUUID();
    const get = await fetch(`${url}/phone-home/${id}/${tokenFor(id)}`);
    const postHealth = await fetch(`${url}/healthz`, { method: "POST" });
    expect([get.status, get.headers.get("allow"), postHealth.status, postHealth.headers.get("allow")]).toEqual([405, "POST", 405, "GET, HEAD"]);
    expect(logs.filter((l) => l.status === 405)).toHaveLength(2);
  });

  it("to an unknown route gets 404, logged without the rest of its path", async () => {
    const { url, logs } = await start();
    const id = randomUUID();
    const responses = await Promise.all([
      fetch(`${url}/nope`),
      fetch(`${url}/phone-home/${id}/${tokenFor(id)}/extra`, { method: "POST", headers: CLOUD_INIT_HEADERS, body: cloudInitBody(id) }),
      fetch(`${url}/phone-home`, { method: "POST" }),
    ]);
    expect(responses.map((r) => r.status)).toEqual([404, 404, 404]);
    expect(logs.filter((l) => l.status === 404).map((l) => l.path).sort()).toEqual(["/nope", "/phone-home", "/phone-home/…"]);
  });
});

describe("robustness", () => {
  it("records a burst of 200 concurrent check-ins from 50 instances exactly", async () => {
    const { server, url } = await start();
    const ids = Array.from({ length: 50 }, () => randomUUID());
    const tokens = new Map(ids.map((id) => [id, tokenFor(id)]));
    const attempts = Array.from({ length: 200 }, (_, i) => ids[i % 50]!);
    const statuses = await Promise.all(attempts.map(async (id) => (await phoneHome(url, id, tokens.get(id)!)).status));
    expect(statuses).toEqual(Array(200).fill(200));
    const records = server.checkIns();
    expect(records.map((c) => c.instanceId).sort()).toEqual([...ids].sort());
    expect(records.every((c) => c.count === 4)).toBe(true);
    const metrics = await server.metrics.metrics();
    expect(metrics).toContain('premiscale_checkins_total{result="ok"} 50');
    expect(metrics).toContain('premiscale_checkins_total{result="repeated"} 150');
    expect(metrics).toContain("premiscale_checkin_instances 50");
  });

  it("disconnects a client that does not finish its request in time, with 408 and a log line", async () => {
    const { url, logs } = await start({ requestTimeoutMs: 300 });
    const started = Date.now();
    const reply = await rawExchange(url, "POST /phone-home/x/y HTTP/1.1\r\nHost: localhost\r\n");
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(logs).toContainEqual(expect.objectContaining({ event: "client_error", status: 408 }));
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it("disconnects a client whose body trickles in too slowly, logging it once", async () => {
    const { server, url, logs } = await start({ requestTimeoutMs: 300 });
    const id = randomUUID();
    const head = `POST /phone-home/${id}/${tokenFor(id)} HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${FORM}\r\nContent-Length: 500\r\n\r\n`;
    const reply = await rawExchange(url, `${head}instance_id=${id}`);
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(logs.filter((l) => l.event !== "listening")).toEqual([expect.objectContaining({ event: "client_error", status: 408 })]);
    expect(server.checkIns()).toEqual([]);
  });

  it("answers bytes that are not HTTP with 400 and a log line", async () => {
    const { url, logs } = await start();
    const reply = await rawExchange(url, "\x16\x03\x01 hello this is not http\r\n\r\n");
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(logs).toContainEqual(expect.objectContaining({ event: "client_error", status: 400 }));
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it("answers 500 when the token verifier throws, logs it, and keeps serving", async () => {
    const { url, logs } = await start({
      tokens: () => {
        throw new Error("verifier broke");
      },
    });
    const id = randomUUID();
    expect((await phoneHome(url, id, tokenFor(id))).status).toBe(500);
    expect(logs).toContainEqual(expect.objectContaining({ event: "internal_error", level: "error", reason: "the token verifier threw: verifier broke" }));
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it("still answers 200 when onCheckIn throws, and logs the error", async () => {
    const { server, url, logs } = await start({
      onCheckIn: () => {
        throw new Error("listener broke");
      },
    });
    const id = randomUUID();
    expect((await phoneHome(url, id, tokenFor(id))).status).toBe(200);
    expect(server.checkIns()).toHaveLength(1);
    expect(logs).toContainEqual(expect.objectContaining({ event: "internal_error", reason: "onCheckIn threw: listener broke" }));
  });

  it("keeps serving when the logger throws", async () => {
    const { url } = await start({
      logger: () => {
        throw new Error("logger broke");
      },
    });
    const id = randomUUID();
    expect((await phoneHome(url, id, forged("nope"))).status).toBe(403);
    expect((await phoneHome(url, id, tokenFor(id))).status).toBe(200);
  });

  it("closes promptly even with idle keep-alive connections open", async () => {
    const { server, url } = await start();
    await (await fetch(`${url}/healthz`)).text();
    const started = Date.now();
    await server.close();
    await server.close();
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe("health and metrics", () => {
  it("GET /healthz answers 200 ok while listening, HEAD too", async () => {
    const { url } = await start();
    expect(await textOf(await fetch(`${url}/healthz`))).toEqual({ status: 200, text: "ok" });
    expect((await fetch(`${url}/healthz`, { method: "HEAD" })).status).toBe(200);
  });

  it("GET /ready follows options.ready(), and an error in it counts as not ready", async () => {
    let ready: boolean | Error = false;
    const { url, logs } = await start({
      ready: () => {
        if (ready instanceof Error) throw ready;
        return ready;
      },
    });
    expect(await textOf(await fetch(`${url}/ready`))).toEqual({ status: 503, text: "not ready" });
    ready = true;
    expect(await textOf(await fetch(`${url}/ready`))).toEqual({ status: 200, text: "ready" });
    ready = new Error("state unreadable");
    expect((await fetch(`${url}/ready`)).status).toBe(503);
    expect(logs).toContainEqual(expect.objectContaining({ event: "internal_error", reason: "options.ready() threw: state unreadable" }));
  });

  it("GET /metrics serves Prometheus text from the server's own registry, not the global one", async () => {
    const { url } = await start();
    const id = randomUUID();
    await phoneHome(url, id, tokenFor(id));
    await phoneHome(url, id, forged("forged-token-value"));
    await fetch(`${url}/nope`);
    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await response.text();
    expect(text).toContain('premiscale_checkins_total{result="ok"} 1');
    expect(text).toContain('premiscale_checkins_total{result="forbidden"} 1');
    expect(text).toContain('premiscale_checkins_total{result="too_large"} 0');
    expect(text).toContain('premiscale_http_requests_total{route="/phone-home",code="200"} 1');
    expect(text).toContain('premiscale_http_requests_total{route="/phone-home",code="403"} 1');
    expect(text).toContain('premiscale_http_requests_total{route="unmatched",code="404"} 1');
    expect(text).toMatch(/premiscale_http_request_duration_seconds_bucket\{le="0\.1",route="\/phone-home"\} 2/);
    expect(text).toContain("process_cpu_user_seconds_total");
    expect(text).toContain("nodejs_eventloop_lag_seconds");
    expect(await globalRegistry.metrics()).not.toContain("premiscale_");
  });

  it("lets two servers run side by side, each with its own metrics", async () => {
    const a = await start({ defaultMetrics: false });
    const b = await start({ defaultMetrics: false });
    const id = randomUUID();
    await phoneHome(a.url, id, tokenFor(id));
    expect(await a.server.metrics.metrics()).toContain("premiscale_checkin_instances 1");
    expect(await b.server.metrics.metrics()).toContain("premiscale_checkin_instances 0");
    expect(await a.server.metrics.metrics()).not.toContain("process_cpu_user_seconds_total");
  });
});

describe("starting", () => {
  it("refuses options that cannot work, naming the option", () => {
    const base = { tokens: hmacTokenVerifier(secret), logger: () => undefined };
    expect(() => createCheckInServer({ ...base, port: 70_000 })).toThrow("the `port` option must be a whole number from 0 to 65535, got 70000");
    expect(() => createCheckInServer({ ...base, maxBodyBytes: 0 })).toThrow(/`maxBodyBytes`/);
    expect(() => createCheckInServer({ ...base, requestTimeoutMs: 1.5 })).toThrow(/`requestTimeoutMs`/);
  });

  it("rejects listen() with a PremiscaleError when the port is taken", async () => {
    const { url } = await start();
    const second = createCheckInServer({ tokens: hmacTokenVerifier(secret), logger: () => undefined, port: Number(new URL(url).port), defaultMetrics: false });
    const error = await second.listen().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PremiscaleError);
    expect(error).toMatchObject({ code: "server_listen_failed", hint: expect.stringContaining("another process uses that port") });
    expect(() => second.url).toThrow("the check-in server is not listening");
  });
});

describe("instance tokens", () => {
  it("are base64url HMACs that differ per instance and per secret and are stable otherwise", () => {
    const id = randomUUID();
    const token = instanceToken(secret, id);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(instanceToken(secret, id)).toBe(token);
    expect(instanceToken(secret, randomUUID())).not.toBe(token);
    expect(instanceToken(randomBytes(32), id)).not.toBe(token);
  });

  it("are checked by hmacTokenVerifier, which accepts only the instance's own token", () => {
    const verify = hmacTokenVerifier(secret);
    const id = randomUUID();
    const token = instanceToken(secret, id);
    expect(verify(id, token)).toBe(true);
    expect(verify(randomUUID(), token)).toBe(false);
    expect(verify(id, token.slice(1))).toBe(false);
    expect(verify(id, `${token}x`)).toBe(false);
    expect(verify(id, "")).toBe(false);
    expect(verify(id, "é".repeat(43))).toBe(false);
  });

  it("need a secret of at least 32 bytes", () => {
    expect(() => instanceToken(randomBytes(16), "x")).toThrow(PremiscaleError);
    expect(() => hmacTokenVerifier(Buffer.alloc(0))).toThrow("the check-in server secret must be at least 32 bytes, got 0");
  });
});
