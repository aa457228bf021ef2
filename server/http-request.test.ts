import { request, type Server } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { closeServer, createHttpServer, header, listenOn, listeningUrl, readBody, sendText } from "./http-request.js";

const servers: Server[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(servers.splice(0).map((s) => closeServer(s, 100)));
});

/** A server on a free loopback port whose handler is `handler`. */
async function serve(handler: Parameters<typeof createHttpServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createHttpServer({ requestTimeoutMs: 5_000 }, handler);
  servers.push(server);
  await listenOn(server, 0, "127.0.0.1");
  return { server, url: listeningUrl(server, "127.0.0.1")! };
}

/** POSTs `chunks` (chunked), resolving with the status, the Connection header and the body of the answer. */
function post(url: string, chunks: string[]): Promise<{ status: number; connection: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "x-token": "a" } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, text }));
    });
    // The server may close before the rest of a refused body is sent.
    req.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" || e.code === "EPIPE" ? undefined : reject(e)));
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe("readBody and sendText", () => {
  it("hands back a body within the limit, and answers in plain text", async () => {
    const { url } = await serve(async (req, res) => {
      const body = await readBody(req, 10);
      sendText(req, res, { status: 200, body: `${header(req, "x-token")}:${body instanceof Buffer ? body.toString() : body}` });
    });
    expect(await post(url, ["hello", " you"])).toEqual({ status: 200, connection: "keep-alive", text: "a:hello you" });
  });

  it("stops reading past the limit, and closes the connection so the rest is never read", async () => {
    let got: unknown;
    const { url } = await serve(async (req, res) => {
      got = await readBody(req, 10);
      sendText(req, res, { status: 413, body: "too large", headers: { "Cache-Control": "no-store" } });
    });
    const r = await post(url, ["0123456789", "abcdef", "x".repeat(64 * 1024)]);
    expect(got).toBe("too_large");
    expect(r).toEqual({ status: 413, connection: "close", text: "too large" });
  });
});

describe("listenOn and closeServer", () => {
  it("hands back Node's error for an address in use", async () => {
    const { server } = await serve(() => undefined);
    const port = (server.address() as { port: number }).port;
    const second = createHttpServer({ requestTimeoutMs: 1_000 }, () => undefined);
    await expect(listenOn(second, port, "127.0.0.1")).rejects.toMatchObject({ code: "EADDRINUSE" });
    expect(listeningUrl(second, "127.0.0.1")).toBeNull();
    await closeServer(second);
  });

  it("with a grace period, cuts a request that never ends once it is over", async () => {
    const { server, url } = await serve(() => undefined); // never answers
    const arrived = new Promise<void>((resolve) => server.once("request", () => resolve()));
    const hung = new Promise<NodeJS.ErrnoException>((resolve) => request(url, { method: "POST" }, () => undefined).on("error", resolve).end("x"));
    await arrived;
    // Only the grace timer is faked (node:http keeps its own timers): "not before 200 ms" is then exact.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    let closed = false;
    const closing = closeServer(server, 200).then(() => (closed = true));
    vi.advanceTimersByTime(199);
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    vi.advanceTimersByTime(1);
    await closing;
    expect((await hung).code).toBe("ECONNRESET");
    expect(server.listening).toBe(false);
  });
});
