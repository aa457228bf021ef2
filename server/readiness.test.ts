import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { VmSpec } from "../providers/provider.js";
import { createCheckInServer, type ServerLogLine } from "./check-in-server.js";
import { CheckInLedger, loadServerSecret } from "./check-in-ledger.js";
import { hmacTokenVerifier } from "./instance-token.js";
import { BOOT_BEACON_PATH, startReadiness, withPhoneHome, type ReadinessService } from "./readiness.js";

const UUID = "6f1c1a52-3b7e-4c1e-9a47-0d5f1f5d2a10";
const spec = (userData: string): VmSpec => ({
  name: "web-6f1c1a52",
  uuid: UUID,
  group: "web",
  lineage: "l",
  createdAt: "2026-01-01T00:00:00.000Z",
  vcpus: 1,
  memoryMiB: 128,
  userData,
  network: { mode: "dhcp" },
  settings: {},
});

/** What a guest would do: POST its check-in to the URL its user-data names, as cloud-init's phone_home does. */
async function phoneHome(userData: string, serverUrl: string, advertised: string): Promise<number> {
  const url = (parse(userData) as { phone_home: { url: string } }).phone_home.url.replace("$INSTANCE_ID", UUID).replace(advertised, serverUrl);
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: `instance_id=${UUID}&hostname=web&fqdn=web.local`,
  });
  return res.status;
}

describe("withPhoneHome", () => {
  const ph = { url: "http://10.0.2.2:1/phone-home/$INSTANCE_ID/tok", post: "all" as const, tries: 10 };

  it("adds phone_home to cloud-config and keeps the rest", () => {
    const out = withPhoneHome("#cloud-config\n# users come first\npackages: [nginx]\n", ph);
    expect(out.startsWith("#cloud-config\n")).toBe(true);
    expect(out).toContain("# users come first");
    expect(parse(out)).toEqual({ packages: ["nginx"], phone_home: ph });
  });

  it("replaces a phone_home the template had, and fills empty user-data", () => {
    expect(parse(withPhoneHome("#cloud-config\nphone_home: {url: http://elsewhere/}\n", ph))).toEqual({ phone_home: ph });
    const empty = withPhoneHome("", ph);
    expect(empty.startsWith("#cloud-config\n")).toBe(true);
    expect(parse(empty)).toEqual({ phone_home: ph });
  });

  it("refuses user-data that is not a mapping", () => {
    expect(() => withPhoneHome("#cloud-config\n- a\n- b\n", ph)).toThrow(/not a #cloud-config mapping/);
  });
});

describe("startReadiness", () => {
  const dirs: string[] = [];
  const services: ReadinessService[] = [];
  const logs: ServerLogLine[] = [];
  const logger = (l: ServerLogLine) => void logs.push(l);
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(services.splice(0).map((s) => s.close()));
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), "premiscale-ready-"));
    dirs.push(d);
    return d;
  };

  it("serves check-ins itself when the port is free, and wait resolves once the VM phoned home", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const advertised = `http://10.0.2.2:${port}`;
    const r = await startReadiness({ server: { host: "127.0.0.1", port, advertiseUrl: advertised }, runtimeDir: dir, logger });
    services.push(r);
    expect(r.mode).toBe("own");
    const userData = r.prepare(spec("#cloud-config\n")).userData;
    const waiting = r.wait({ uuid: UUID, name: "web-6f1c1a52" }, 10_000);
    expect(await phoneHome(userData, `http://127.0.0.1:${port}`, advertised)).toBe(200);
    await expect(waiting).resolves.toBeUndefined();
    // Recorded for `premiscale serve` and later applies, without the token.
    const record = await new CheckInLedger(dir).get(UUID);
    expect(record).toMatchObject({ instanceId: UUID, hostname: "web", fqdn: "web.local" });
    expect(JSON.stringify(record)).not.toContain(userData.match(/phone-home\/\$INSTANCE_ID\/([^"\s]+)/)![1]!);
  });

  it("is not ready until the check-in is on disk: a check-in the server took but could not record does not count", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const advertised = `http://10.0.2.2:${port}`;
    const r = await startReadiness({ server: { host: "127.0.0.1", port, advertiseUrl: advertised }, runtimeDir: dir, logger });
    services.push(r);
    // A folder where the record's temporary file goes (tempPathFor: this process's pid): the write fails.
    await mkdir(join(dir, "check-ins", `${UUID}.json.${process.pid}.tmp`), { recursive: true });
    const userData = r.prepare(spec("#cloud-config\n")).userData;
    const waiting = r.wait({ uuid: UUID, name: "web-6f1c1a52" }, 1500).then(() => "ready", (e: Error) => e.message);
    expect(await phoneHome(userData, `http://127.0.0.1:${port}`, advertised)).toBe(200);
    expect(await waiting).toMatch(/web-6f1c1a52 did not check in within 2 s/);
  });

  it("refuses a forged token: the VM is not ready", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const r = await startReadiness({ server: { host: "127.0.0.1", port, advertiseUrl: `http://127.0.0.1:${port}` }, runtimeDir: dir, logger });
    services.push(r);
    const forged = r.prepare(spec("#cloud-config\n")).userData.replace(/(phone-home\/\$INSTANCE_ID\/)[^"\s]+/, "$1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    expect(await phoneHome(forged, `http://127.0.0.1:${port}`, `http://127.0.0.1:${port}`)).toBe(403);
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    let settled = false;
    const waiting = r.wait({ uuid: UUID, name: "web-6f1c1a52" }, 600);
    waiting.then(() => (settled = true), () => (settled = true));
    await vi.advanceTimersByTimeAsync(599);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(waiting).rejects.toThrow(/web-6f1c1a52 did not check in within 1 s/);
  });

  it("reads the shared ledger when premiscale serve already listens on the port", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const ledger = new CheckInLedger(dir);
    // Stands in for `premiscale serve`: the same secret and ledger directory.
    const serve = createCheckInServer({ host: "127.0.0.1", port, tokens: hmacTokenVerifier(await loadServerSecret(dir)), logger, defaultMetrics: false, onCheckIn: (c) => void ledger.record(c) });
    await serve.listen();
    try {
      const r = await startReadiness({ server: { host: "127.0.0.1", port, advertiseUrl: `http://127.0.0.1:${port}` }, runtimeDir: dir, logger });
      services.push(r);
      expect(r.mode).toBe("shared");
      const waiting = r.wait({ uuid: UUID, name: "web-6f1c1a52" }, 10_000);
      expect(await phoneHome(r.prepare(spec("")).userData, `http://127.0.0.1:${port}`, `http://127.0.0.1:${port}`)).toBe(200);
      await expect(waiting).resolves.toBeUndefined();
    } finally {
      await serve.close();
    }
  });

  it("stops waiting when the apply is interrupted", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const r = await startReadiness({ server: { host: "127.0.0.1", port, advertiseUrl: `http://127.0.0.1:${port}` }, runtimeDir: dir, logger });
    services.push(r);
    // The poll's clock is faked (the server is already listening), so "stopped at once" can be told from "timed out".
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const ac = new AbortController();
    let settled = false;
    const waiting = r.wait({ uuid: UUID, name: "web-6f1c1a52" }, 60_000, ac.signal);
    waiting.then(() => (settled = true), () => (settled = true));
    await vi.advanceTimersByTimeAsync(1_000); // a few polls
    expect(settled).toBe(false);
    const before = Date.now();
    ac.abort();
    // The abort wakes the poll; its last look at the ledger is real file I/O, so wait for that, not for fake time.
    await vi.waitFor(() => expect(settled).toBe(true));
    await expect(waiting).rejects.toThrow(/interrupted/);
    expect(Date.now() - before).toBeLessThan(60_000);
  });

  it("adds a heartbeat loop that reaches the server, recorded as when the VM was last seen", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const r = await startReadiness({ server: { host: "127.0.0.1", port, advertiseUrl: base }, runtimeDir: dir, logger });
    services.push(r);
    const userData = r.prepare(spec("#cloud-config\nbootcmd:\n  - echo hi\n"), 30).userData;
    const doc = parse(userData) as { bootcmd: unknown[]; premiscale: { heartbeat_url: string; heartbeat_seconds: number } };
    expect(doc.bootcmd[0]).toBe("echo hi");
    expect(doc.bootcmd[1]).toEqual(["sh", "-c", expect.stringMatching(/while :; do sleep 30; python3 .*\/heartbeat\/.* \|\| curl /)]);
    expect(doc.premiscale.heartbeat_seconds).toBe(30);
    // What the loop does, once: POST to the heartbeat URL with the VM's token.
    const ledger = new CheckInLedger(dir);
    expect(await ledger.lastSeen(UUID)).toBeNull();
    const ok = await fetch(doc.premiscale.heartbeat_url, { method: "POST", body: "beat=1" });
    expect(ok.status).toBe(200);
    const forged = await fetch(doc.premiscale.heartbeat_url.replace(/\/[^/]+$/, "/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), { method: "POST", body: "" });
    expect(forged.status).toBe(403);
    expect((await fetch(doc.premiscale.heartbeat_url)).status).toBe(405);
    // Closing waits for the ledger writes in flight, so the beat is on disk after it.
    services.splice(services.indexOf(r), 1);
    await r.close();
    expect(await ledger.lastSeen(UUID)).toMatch(/^\d{4}-/);
  });

  it("adds a boot beacon run on every boot, and a wait since a time resolves only on a sign of life after it", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const r = await startReadiness({ server: { host: "127.0.0.1", port, advertiseUrl: base }, runtimeDir: dir, logger });
    services.push(r);
    const userData = r.prepare(spec("#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hi\n"), 0, { bootBeacon: true }).userData;
    const doc = parse(userData) as { write_files: { path: string; permissions?: string; content: string }[]; premiscale: { boot_beacon_url: string } };
    expect(doc.write_files[0]).toEqual({ path: "/etc/motd", content: "hi" });
    expect(doc.write_files[1]).toMatchObject({ path: BOOT_BEACON_PATH, permissions: "0755" });
    expect(doc.write_files[1]!.content).toContain(`url='${doc.premiscale.boot_beacon_url}'`);
    expect(doc.write_files[1]!.content).toMatch(/^#!\/bin\/sh\n/);
    expect(doc.premiscale.boot_beacon_url).toMatch(new RegExp(`^${base}/heartbeat/${UUID}/`));
    // An old sign of life does not count for a VM started after it.
    expect((await fetch(doc.premiscale.boot_beacon_url, { method: "POST", body: "boot=1" })).status).toBe(200);
    await new Promise((res) => setTimeout(res, 50)); // the recorder writes in the background
    const since = new Date(Date.now() + 5);
    await new Promise((res) => setTimeout(res, 10));
    await expect(r.wait({ uuid: UUID, name: "web-6f1c1a52" }, 600, undefined, since)).rejects.toThrow(/web-6f1c1a52 did not say it was up within 1 s of being started/);
    const waiting = r.wait({ uuid: UUID, name: "web-6f1c1a52" }, 10_000, undefined, since);
    expect((await fetch(doc.premiscale.boot_beacon_url, { method: "POST", body: "boot=1" })).status).toBe(200);
    await expect(waiting).resolves.toBeUndefined();
  });

  it("keeps one secret for every process that starts at once", async () => {
    const dir = await tempDir();
    const secrets = await Promise.all(Array.from({ length: 8 }, () => loadServerSecret(dir)));
    expect(new Set(secrets.map((s) => s.toString("hex"))).size).toBe(1);
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
