import { createHmac } from "node:crypto";
import { request } from "node:http";
import { connect } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createWebhookReceiver, type WebhookEvent, type WebhookLogLine, type WebhookReceiver } from "./webhook.js";

const SECRET = "s3cret-webhook";
const sign = (body: string, secret = SECRET) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

let receiver: WebhookReceiver | null = null;
// Only the debounce timer is faked (node:http keeps its own timers), so the tests move the debounce clock by hand
// and can tell "no trigger" from "no trigger yet".
beforeEach(() => void vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] }));
afterEach(async () => {
  vi.useRealTimers();
  await receiver?.close();
  receiver = null;
});

async function start(opts: { branch?: string; maxBodyBytes?: number; gitlabToken?: string } = {}) {
  const triggers: WebhookEvent[][] = [];
  const logs: WebhookLogLine[] = [];
  receiver = createWebhookReceiver({ githubSecret: SECRET, debounceMs: 50, onTrigger: (e) => triggers.push(e), log: (l) => logs.push(l), ...opts });
  await receiver.listen();
  return { triggers, logs, url: receiver.url };
}

function post(url: string, body: string | Buffer, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Moves the faked debounce clock on by `ms`. */
const advance = (ms: number) => vi.advanceTimersByTime(ms);
const pushBody = JSON.stringify({ ref: "refs/heads/main", after: "abc" });

describe("webhook receiver", () => {
  it("accepts a GitHub push with a valid signature and triggers once for a burst", async () => {
    const { triggers, logs, url } = await start({ branch: "main" });
    for (let i = 0; i < 3; i++) {
      const r = await post(url, pushBody, { "x-github-event": "push", "x-github-delivery": `d${i}`, "x-hub-signature-256": sign(pushBody) });
      expect(r).toEqual({ status: 202, text: "accepted" });
    }
    advance(49);
    expect(triggers).toEqual([]);
    advance(1);
    expect(triggers).toHaveLength(1);
    advance(10_000);
    expect(triggers).toHaveLength(1);
    expect(triggers[0]!.map((e) => e.delivery)).toEqual(["d0", "d1", "d2"]);
    expect(triggers[0]![0]).toEqual({ source: "github", kind: "push", ref: "refs/heads/main", delivery: "d0" });
    expect(logs.filter((l) => l.event === "webhook_accepted")).toHaveLength(3);
  });

  it("refuses a forged signature with 401 and a log line, and does not trigger", async () => {
    const { triggers, logs, url } = await start();
    const forged = await post(url, pushBody, { "x-github-event": "push", "x-hub-signature-256": sign(pushBody, "wrong") });
    const tampered = await post(url, pushBody.replace("abc", "evil"), { "x-github-event": "push", "x-hub-signature-256": sign(pushBody) });
    const garbage = await post(url, pushBody, { "x-github-event": "push", "x-hub-signature-256": "sha256=zz" });
    const none = await post(url, pushBody, { "x-github-event": "push" });
    expect([forged.status, tampered.status, garbage.status, none.status]).toEqual([401, 401, 401, 401]);
    advance(10_000);
    expect(triggers).toEqual([]);
    const rejected = logs.filter((l) => l.event === "webhook_rejected");
    expect(rejected).toHaveLength(4);
    expect(rejected[0]).toMatchObject({ level: "warn", status: 401, reason: "X-Hub-Signature-256 does not match the body", remoteAddress: "127.0.0.1" });
    expect(JSON.stringify(logs)).not.toContain(SECRET);
  });

  it("refuses a body over the limit with 413, declared or streamed, and keeps serving", async () => {
    const { triggers, url } = await start({ maxBodyBytes: 1024 });
    const big = JSON.stringify({ ref: "refs/heads/main", pad: "x".repeat(5000) });
    expect((await post(url, big, { "x-github-event": "push", "x-hub-signature-256": sign(big) })).status).toBe(413);
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: "POST", headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": sign(big), "transfer-encoding": "chunked" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.write(big.slice(0, 800));
      req.end(big.slice(800));
    });
    expect(streamed).toBe(413);
    expect((await post(url, pushBody, { "x-github-event": "push", "x-hub-signature-256": sign(pushBody) })).status).toBe(202);
    advance(10_000);
    expect(triggers).toHaveLength(1);
  });

  it("answers malformed JSON with 400 even when correctly signed", async () => {
    const { triggers, url } = await start();
    const body = "{not json";
    const r = await post(url, body, { "x-github-event": "push", "x-hub-signature-256": sign(body) });
    expect(r.status).toBe(400);
    expect(r.text).toContain("not JSON");
    advance(10_000);
    expect(triggers).toEqual([]);
  });

  it("acknowledges but ignores other events, pings and other branches", async () => {
    const { triggers, logs, url } = await start({ branch: "main" });
    const issue = JSON.stringify({ action: "opened" });
    expect(await post(url, issue, { "x-github-event": "issues", "x-hub-signature-256": sign(issue) })).toEqual({ status: 202, text: "ignored" });
    expect(await post(url, issue, { "x-github-event": "ping", "x-hub-signature-256": sign(issue) })).toEqual({ status: 200, text: "pong" });
    const dev = JSON.stringify({ ref: "refs/heads/dev" });
    expect((await post(url, dev, { "x-github-event": "push", "x-hub-signature-256": sign(dev) })).text).toBe("ignored");
    const pr = JSON.stringify({ action: "closed", pull_request: { merged: true, base: { ref: "main" } } });
    expect((await post(url, pr, { "x-github-event": "pull_request", "x-hub-signature-256": sign(pr) })).text).toBe("accepted");
    advance(10_000);
    expect(triggers).toEqual([[{ source: "github", kind: "pull_request", ref: "refs/heads/main", delivery: null }]]);
    expect(logs.filter((l) => l.event === "webhook_ignored").map((l) => l.reason)).toEqual(["not a push or pull request event", "ping", "not for branch main"]);
  });

  it("checks GitLab's token before reading the body, and accepts push and merge request hooks", async () => {
    const { triggers, url } = await start({ gitlabToken: "gl-token" });
    expect((await post(url, pushBody, { "x-gitlab-event": "Push Hook", "x-gitlab-token": "nope" })).status).toBe(401);
    expect((await post(url, pushBody, { "x-gitlab-event": "Push Hook", "x-gitlab-token": "gl-token" })).status).toBe(202);
    const mr = JSON.stringify({ object_attributes: { target_branch: "main" } });
    expect((await post(url, mr, { "x-gitlab-event": "Merge Request Hook", "x-gitlab-token": "gl-token" })).status).toBe(202);
    advance(10_000);
    expect(triggers).toHaveLength(1);
    expect(triggers[0]!.map((e) => [e.source, e.kind, e.ref])).toEqual([["gitlab", "push", "refs/heads/main"], ["gitlab", "pull_request", "refs/heads/main"]]);
  });

  it("refuses other paths, methods and content types, and survives a throwing trigger", async () => {
    const logs: WebhookLogLine[] = [];
    receiver = createWebhookReceiver({ githubSecret: SECRET, debounceMs: 10, onTrigger: () => { throw new Error("boom"); }, log: (l) => logs.push(l) });
    await receiver.listen();
    const url = receiver.url;
    expect((await post(url.replace("/webhook", "/other"), pushBody, {})).status).toBe(404);
    const form = "payload=%7B%7D";
    expect((await post(url, form, { "content-type": "application/x-www-form-urlencoded", "x-github-event": "push", "x-hub-signature-256": sign(form) })).status).toBe(415);
    expect((await post(url, pushBody, { "x-github-event": "push", "x-hub-signature-256": sign(pushBody) })).status).toBe(202);
    advance(10);
    expect(logs.some((l) => l.event === "webhook_error" && l.reason === "onTrigger threw: boom")).toBe(true);
    expect((await post(url, pushBody, { "x-github-event": "push", "x-hub-signature-256": sign(pushBody) })).status).toBe(202);
  });

  it("answers request targets that start with // or are not URLs with 404 or 400, never 500, and keeps serving", async () => {
    const { triggers, logs, url } = await start();
    const { port } = new URL(url);
    const statusOf = (target: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), "127.0.0.1", () => socket.end(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
        let text = "";
        socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
        socket.on("close", () => resolve(text.split("\r\n")[0] ?? ""));
        socket.on("error", reject);
      });
    expect(await statusOf("//a:99999/webhook")).toBe("HTTP/1.1 404 Not Found");
    expect(await statusOf("//[::1/webhook")).toBe("HTTP/1.1 404 Not Found");
    expect(await statusOf("//x/webhook")).toBe("HTTP/1.1 404 Not Found");
    expect(await statusOf("http://[/webhook")).toBe("HTTP/1.1 400 Bad Request");
    expect(await statusOf("http://127.0.0.1/webhook")).toBe("HTTP/1.1 405 Method Not Allowed");
    expect(logs.filter((l) => l.event === "webhook_error")).toEqual([]);
    expect((await post(url, pushBody, { "x-github-event": "push", "x-hub-signature-256": sign(pushBody) })).status).toBe(202);
    await vi.waitFor(() => expect(triggers).toHaveLength(1));
  });

  it("needs a secret", () => {
    expect(() => createWebhookReceiver({ onTrigger: () => undefined })).toThrow(/needs a GitHub secret or a GitLab token/);
  });
});
