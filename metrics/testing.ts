// Test support: real metrics servers (Prometheus, VictoriaMetrics, InfluxDB 1.x) started on 127.0.0.1 on a free
// port with a temporary data directory, and tiny HTTP servers that misbehave. Installed by setup-stores.sh.
import { spawn, type ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A server a test started; `stop` kills it and removes its data. */
export interface TestServer {
  url: string;
  dir: string;
  stop(): Promise<void>;
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitReady(url: string, child: ChildProcess, log: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${log()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(500) });
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill("SIGKILL");
  throw new Error(`server at ${url} not ready within ${timeoutMs} ms: ${log()}`);
}

async function startProcess(cmd: string, args: string[], dir: string, url: string, readyPath: string): Promise<TestServer> {
  const child = spawn(cmd, args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-2000)));
  await waitReady(url + readyPath, child, () => err);
  return {
    url,
    dir,
    async stop() {
      if (child.exitCode === null) {
        await new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Prometheus with `openMetrics` (OpenMetrics text, `# EOF`-terminated) backfilled by promtool before it starts. */
export async function startPrometheus(openMetrics: string): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "premiscale-prom-"));
  await writeFile(join(dir, "in.om"), openMetrics);
  await writeFile(join(dir, "prometheus.yml"), "global: {}\n");
  await run("promtool", ["tsdb", "create-blocks-from", "openmetrics", "in.om", "data"], { cwd: dir });
  const port = await freePort();
  return startProcess(
    "prometheus",
    ["--config.file=prometheus.yml", "--storage.tsdb.path=data", `--web.listen-address=127.0.0.1:${port}`, "--log.level=error"],
    dir,
    `http://127.0.0.1:${port}`,
    "/-/ready",
  );
}

/** VictoriaMetrics with `prometheusText` (exposition format, timestamps in ms) imported and flushed. */
export async function startVictoriaMetrics(prometheusText: string): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "premiscale-vm-"));
  const port = await freePort();
  const s = await startProcess(
    "victoria-metrics",
    ["-storageDataPath=data", `-httpListenAddr=127.0.0.1:${port}`, "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR"],
    dir,
    `http://127.0.0.1:${port}`,
    "/health",
  );
  return loaded(s, async () => {
    const r = await fetch(`${s.url}/api/v1/import/prometheus`, { method: "POST", body: prometheusText });
    if (!r.ok) throw new Error(`import into VictoriaMetrics failed: ${r.status} ${await r.text()}`);
    await fetch(`${s.url}/internal/force_flush`);
  });
}

/** InfluxDB 1.x with database `db` holding `lines` (line protocol, ns timestamps). */
export async function startInfluxd(db: string, lines: string): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "premiscale-influx-"));
  const [port, rpc] = [await freePort(), await freePort()];
  await writeFile(
    join(dir, "influxdb.conf"),
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpc}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
[logging]
  level = "error"
`,
  );
  const s = await startProcess("influxd", ["run", "-config", "influxdb.conf"], dir, `http://127.0.0.1:${port}`, "/ping");
  return loaded(s, async () => {
    const q = await fetch(`${s.url}/query`, { method: "POST", body: new URLSearchParams({ q: `CREATE DATABASE "${db}"` }) });
    if (!q.ok) throw new Error(`CREATE DATABASE failed: ${await q.text()}`);
    const w = await fetch(`${s.url}/write?db=${db}`, { method: "POST", body: lines });
    if (w.status !== 204) throw new Error(`write failed: ${w.status} ${await w.text()}`);
  });
}

/** Loads a started server; stops it when loading fails, so no server outlives a failed set-up. */
async function loaded(s: TestServer, load: () => Promise<void>): Promise<TestServer> {
  try {
    await load();
    return s;
  } catch (e) {
    await s.stop();
    throw e;
  }
}

/** A plain HTTP server on 127.0.0.1 answering every request with `handler`. */
export async function startHttp(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    dir: "",
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
