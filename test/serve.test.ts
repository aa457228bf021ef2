import { randomUUID } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VmSpec } from "../providers/provider.js";
import { CheckInLedger, loadServerSecret } from "../server/check-in-ledger.js";
import { instanceToken } from "../server/instance-token.js";
import { startReadiness } from "../server/readiness.js";
import { MEMBERS, metricsProject } from "./support/metrics-fixture.js";
import { freePort, killLeftovers, spawnPremiscale, type ServeProcess } from "./support/serve.js";

// `premiscale serve` in its own process (see support/serve.ts for which binary), real HTTP on 127.0.0.1, state and
// the collector on libvirt's test driver (its domains have no counters: the collector's cycles run, storing none;
// test/serve.libvirt.test.ts stores real ones).

const noStackTrace = (s: string) => expect(s).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

function form(instanceId: string, hostname = "web-1"): string {
  return new URLSearchParams({ instance_id: instanceId, hostname, fqdn: "N/A", pub_key_rsa: "N/A", pub_key_ecdsa: "N/A", pub_key_ed25519: "N/A" }).toString();
}

function checkIn(base: string, instanceId: string, token: string, hostname?: string): Promise<Response> {
  return fetch(`${base}/phone-home/${instanceId}/${token}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "Cloud-Init/22.4.2" },
    body: form(instanceId, hostname),
  });
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A metric's value from Prometheus text, or undefined. */
function metric(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function startServe(env: Record<string, string> = {}, args: string[] = []): Promise<{ dir: string; base: string; serve: ServeProcess; port: number }> {
  const port = await freePort();
  const dir = await metricsProject({ now: Date.now(), serverListen: `127.0.0.1:${port}`, intervalSeconds: 1, samples: false });
  const serve = spawnPremiscale(dir, ["serve", ...args], env);
  await serve.waitForLog((l) => l.event === "serving");
  return { dir, base: `http://127.0.0.1:${port}`, serve, port };
}

describe("premiscale serve", () => {
  let dir = "";
  let base = "";
  let port = 0;
  let serve: ServeProcess;
  beforeAll(async () => {
    ({ dir, base, serve, port } = await startServe({ PREMISCALE_LOG_LEVEL: "debug" }));
  });
  afterAll(async () => {
    await serve?.stop();
  });
  const runtime = () => join(dir, "state", ".premiscale");

  it("answers /healthz and /ready, and /metrics has premiscale's own metrics with the collector's cycles", async () => {
    expect(await (await fetch(`${base}/healthz`)).text()).toBe("ok");
    expect(await until("ready", async () => ((await fetch(`${base}/ready`)).status === 200 ? true : undefined))).toBe(true);
    // Interval 1 s: wait for two finished cycles over the three domains state records (none exists in the test driver).
    const text = await until("two collector cycles", async () => {
      const t = await (await fetch(`${base}/metrics`)).text();
      return (metric(t, 'premiscale_collector_cycles_total{result="ok"}') ?? 0) >= 2 ? t : undefined;
    });
    expect(metric(text, 'premiscale_collector_host_last_success_timestamp_seconds{host="local"}')).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(metric(text, 'premiscale_collector_samples_total{host="local"}')).toBe(0);
    expect(metric(text, 'premiscale_collector_host_failures_total{host="local",kind="error"}')).toBe(0);
    expect(metric(text, 'premiscale_checkins_total{result="forbidden"}')).toBeDefined();
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    // PREMISCALE_LOG_LEVEL=debug: each cycle is logged, as one JSON object per line.
    expect(serve.logs().some((l) => l.event === "collector_cycle" && l.level === "debug")).toBe(true);
    expect(serve.logs().find((l) => l.event === "collector_started")).toMatchObject({ level: "info", store: join(runtime(), "metrics.db"), intervalSeconds: 1 });
  });

  it("reports the latest apply from its journal: changes by result, step durations, applies seen", async () => {
    const before = await (await fetch(`${base}/metrics`)).text();
    expect(metric(before, "premiscale_last_apply_timestamp_seconds")).toBe(0);
    const e = (o: Record<string, unknown>) => JSON.stringify({ apply: "A1", ...o });
    await writeFile(
      join(runtime(), "journal.jsonl.last"),
      [
        e({ type: "apply_begin", at: "2026-01-01T00:00:00.000Z", pid: 1, changes: 1, based_on_serial: 0 }),
        e({ type: "change_begin", at: "2026-01-01T00:00:00.000Z", address: "web[web-1]", action: "create", host: "local", name: "web-1", uuid: "u" }),
        e({ type: "step", at: "2026-01-01T00:00:00.000Z", address: "web[web-1]", step: "create-disk" }),
        e({ type: "step", at: "2026-01-01T00:00:00.500Z", address: "web[web-1]", step: "ready" }),
        e({ type: "change_end", at: "2026-01-01T00:00:04.500Z", address: "web[web-1]", ok: true }),
        e({ type: "apply_end", at: "2026-01-01T00:00:05.000Z", succeeded: 1, failed: 0 }),
      ].join("\n") + "\n",
    );
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(metric(text, 'premiscale_last_apply_changes{result="succeeded"}')).toBe(1);
    expect(metric(text, 'premiscale_last_apply_step_duration_seconds{step="ready",stat="max"}')).toBe(4);
    expect(metric(text, 'premiscale_last_apply_step_duration_seconds{step="create-disk",stat="mean"}')).toBe(0.5);
    expect(metric(text, "premiscale_last_apply_timestamp_seconds")).toBe(Date.parse("2026-01-01T00:00:05.000Z") / 1000);
    expect(metric(text, 'premiscale_applies_total{result="ok"}')).toBe(1);
    // The same apply scraped again is not counted twice.
    expect(metric(await (await fetch(`${base}/metrics`)).text(), 'premiscale_applies_total{result="ok"}')).toBe(1);
  });

  it("records a check-in with a valid token in the ledger apply reads, and refuses a forged one with 403", async () => {
    const secret = await loadServerSecret(runtime());
    const id = randomUUID();
    const token = instanceToken(secret, id);
    const ok = await checkIn(base, id, token, "web-ok");
    expect([ok.status, await ok.text()]).toEqual([200, "ok"]);
    const ledger = new CheckInLedger(runtime());
    expect(await until("the ledger record", () => ledger.get(id).then((r) => r ?? undefined))).toMatchObject({ instanceId: id, hostname: "web-ok", count: 1 });

    const forgedId = randomUUID();
    const forged = await checkIn(base, forgedId, instanceToken(Buffer.alloc(32, 7), forgedId));
    expect(forged.status).toBe(403);
    const stolen = await checkIn(base, forgedId, token);
    expect(stolen.status).toBe(403);
    expect(await ledger.get(forgedId)).toBeNull();

    await serve.waitForLog((l) => l.event === "request_rejected" && l.instanceId === forgedId);
    expect(serve.logs().find((l) => l.event === "check_in" && l.instanceId === id)).toMatchObject({ level: "info", result: "ok", status: 200 });
    expect(serve.stderr()).not.toContain(token);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(metric(text, 'premiscale_checkins_total{result="ok"}')).toBeGreaterThanOrEqual(1);
    expect(metric(text, 'premiscale_checkins_total{result="forbidden"}')).toBe(2);
  });

  it("records heartbeats as when the VM was last seen, and refuses them with another instance's token", async () => {
    const secret = await loadServerSecret(runtime());
    const id = randomUUID();
    const ledger = new CheckInLedger(runtime());
    const before = Date.now();
    const beat = await fetch(`${base}/heartbeat/${id}/${instanceToken(secret, id)}`, { method: "POST", body: "beat=1" });
    expect(beat.status).toBe(200);
    const seen = await until("the heartbeat in the ledger", () => ledger.lastSeen(id).then((t) => t ?? undefined));
    expect(Date.parse(seen)).toBeGreaterThanOrEqual(before - 1000);
    const other = randomUUID();
    expect((await fetch(`${base}/heartbeat/${other}/${instanceToken(secret, id)}`, { method: "POST", body: "beat=1" })).status).toBe(403);
    expect(await ledger.lastSeen(other)).toBeNull();
  });

  it("is shared by an apply started meanwhile: apply's readiness sees the check-in serve received", async () => {
    const readiness = await startReadiness({
      server: { host: "127.0.0.1", port, advertiseUrl: base },
      runtimeDir: runtime(),
      logger: () => undefined,
    });
    try {
      expect(readiness.mode).toBe("shared");
      const uuid = randomUUID();
      const userData = readiness.prepare({ uuid, userData: "#cloud-config\n" } as VmSpec).userData;
      const url = /url: (\S+)/.exec(userData)![1]!.replace(/^"|"$/g, "").replace("$INSTANCE_ID", uuid);
      const waiting = readiness.wait({ uuid, name: "web-new" }, 15_000);
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form(uuid) });
      expect(res.status).toBe(200);
      await expect(waiting).resolves.toBeUndefined();
    } finally {
      await readiness.close();
    }
  });

  it("keeps serving through requests it refuses", async () => {
    expect((await fetch(`${base}/phone-home/${MEMBERS.A}`, { method: "GET" })).status).toBe(405);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect(await (await fetch(`${base}/healthz`)).text()).toBe("ok");
  });
});

describe("premiscale serve stopping and failing to start", () => {
  // A test that failed half-way must not leave its server running.
  afterAll(killLeftovers);

  it.each(["SIGTERM", "SIGINT"] as const)("on %s stops accepting, finishes, and exits 0 quickly", async (signal) => {
    const { base, serve } = await startServe();
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const r = await serve.stop(signal);
    expect(r).toMatchObject({ code: 0, signal: null });
    expect(r.ms).toBeLessThan(3000);
    const events = serve.logs().map((l) => l.event);
    expect(events.slice(events.indexOf("stopping"))).toEqual(expect.arrayContaining(["stopping", "collector_stopped", "closed", "stopped"]));
    expect(events.at(-1)).toBe("stopped");
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it("reports a host that does not answer as failed, keeps serving, and still stops within an interval", async () => {
    // A `virsh` that never answers, first on PATH: the collector's session for the host hangs on every call. It reads
    // its input to the end, so it also ends when its parent does.
    const bin = await mkdtemp(join(tmpdir(), "premiscale-hung-virsh-"));
    await writeFile(join(bin, "virsh"), "#!/bin/sh\nexec cat >/dev/null\n", { mode: 0o755 });
    const { base, serve } = await startServe({ PATH: `${bin}:${process.env.PATH}` });
    const failed = await serve.waitForLog((l) => l.event === "collector_host_failed");
    expect(failed).toMatchObject({ level: "warn", host: "local", kind: expect.stringMatching(/^(timeout|error)$/) });
    const text = await (await fetch(`${base}/metrics`)).text();
    const failures = ["timeout", "error"].map((k) => metric(text, `premiscale_collector_host_failures_total{host="local",kind="${k}"}`) ?? 0);
    expect(failures[0]! + failures[1]!).toBeGreaterThanOrEqual(1);
    expect(await (await fetch(`${base}/healthz`)).text()).toBe("ok");
    const r = await serve.stop("SIGTERM");
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(4000);
  });

  it("says the port is in use, names server.listen, exits 1 and prints no stack trace", async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", r));
    try {
      const dir = await metricsProject({ now: Date.now(), serverListen: `127.0.0.1:${port}`, samples: false });
      const serve = spawnPremiscale(dir, ["serve"]);
      const { code } = await serve.exited;
      expect(code).toBe(1);
      expect(serve.stderr()).toMatch(new RegExp(`^Error: cannot serve on 127\\.0\\.0\\.1:${port} \\(server\\.listen in .*premiscale\\.yaml\\): the port is already in use$`, "m"));
      expect(serve.stderr()).toMatch(/set server\.listen to a free address/);
      noStackTrace(serve.stderr());
    } finally {
      blocker.close();
    }
  });

  it("refuses an unknown log level before starting", async () => {
    const dir = await metricsProject({ now: Date.now(), samples: false });
    const serve = spawnPremiscale(dir, ["serve", "--log-level", "loud"]);
    expect((await serve.exited).code).toBe(1);
    expect(serve.stderr()).toMatch(/--log-level "loud" is not a log level/);
    noStackTrace(serve.stderr());
  });

  it("with a read-only metrics source, serves check-ins and does not collect", async () => {
    const port = await freePort();
    const dir = await metricsProject({ now: Date.now(), serverListen: `127.0.0.1:${port}`, samples: false, store: "    type: prometheus\n    url: http://127.0.0.1:1" });
    const serve = spawnPremiscale(dir, ["serve"]);
    try {
      await serve.waitForLog((l) => l.event === "serving");
      expect(serve.logs().find((l) => l.event === "collector_off")).toMatchObject({ reason: expect.stringMatching(/prometheus/) });
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toContain("premiscale_checkins_total");
      expect(text).not.toContain("premiscale_collector_");
      expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);
    } finally {
      expect((await serve.stop()).code).toBe(0);
    }
  });

  it("explains in --help what it serves and where guests must reach it", async () => {
    const dir = await metricsProject({ now: Date.now(), samples: false });
    const serve = spawnPremiscale(dir, ["serve", "--help"]);
    expect((await serve.exited).code).toBe(0);
    expect(serve.stdout()).toMatch(/server\.advertiseUrl/);
    expect(serve.stdout()).toMatch(/POST \/phone-home\/<instance id>\/<token>/);
    expect(serve.stdout()).toMatch(/--log-level/);
  });
});
