// premiscale serve's memory: resident set size idle and while answering a burst of check-ins, against a bare Node
// http server (reads each body, answers "ok", nothing else) measured the same way in the same run. Both are separate
// processes; serve runs its collector on libvirt's test driver (its virsh session is reported on its own line).
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { loadServerSecret } from "../server/check-in-ledger.js";
import { instanceToken } from "../server/instance-token.js";
import { metricsProject } from "../test/support/metrics-fixture.js";
import { freePort, premiscaleCommand, spawnPremiscale } from "../test/support/serve.js";
import { median, ms, ratioLine } from "./common.js";

const ROOT = resolve(import.meta.dirname, "..");
const CHECKINS = Number(process.env.BENCH_CHECKINS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 3000);

/** Resident set size of a process, bytes (Linux). */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** RSS of the direct children of a process (serve's virsh sessions), bytes. */
function childrenRss(pid: number): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Field 4 (ppid) comes after the command name in parentheses, which may itself hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) {
        count++;
        bytes += rss(Number(entry));
      }
    } catch {
      // the process ended while we looked
    }
  }
  return { count, bytes };
}

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;

function memoryLine(what: string, value: number, baselineName: string, baseline: number): void {
  console.log(`${what}: ${mib(value)} vs ${baselineName} ${mib(baseline)} = ${(value / baseline).toFixed(2)}×`);
}

/** Median RSS over a second, after letting the process settle. */
async function idleRss(pid: number): Promise<number> {
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const xs: number[] = [];
  for (let i = 0; i < 10; i++) {
    xs.push(rss(pid));
    await new Promise((r) => setTimeout(r, 100));
  }
  return median(xs);
}

/** Sends the check-ins, CONCURRENCY at a time, sampling the RSS every 10 ms; the peak and the time taken. */
async function burst(pid: number, requests: { url: string; body: string }[]): Promise<{ peak: number; ms: number; failed: number }> {
  let peak = rss(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rss(pid))), 10);
  const t = performance.now();
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < requests.length) {
        const r = requests[next++]!;
        const res = await fetch(r.url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: r.body });
        await res.text();
        if (res.status !== 200) failed++;
      }
    }),
  );
  const took = performance.now() - t;
  clearInterval(sampler);
  return { peak: Math.max(peak, rss(pid)), ms: took, failed };
}

function form(id: string): string {
  return new URLSearchParams({ instance_id: id, hostname: `vm-${id.slice(0, 8)}`, fqdn: "N/A", pub_key_rsa: "N/A", pub_key_ecdsa: "N/A", pub_key_ed25519: "N/A" }).toString();
}

async function bareServer(port: number): Promise<ChildProcess> {
  const code = `require("node:http").createServer((req, res) => { req.resume(); req.on("end", () => res.end("ok")); })
    .listen(${port}, "127.0.0.1", () => console.log("listening"));`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((res) => child.stdout!.once("data", () => res()));
  return child;
}

console.log(`# premiscale serve's RSS, idle (median over 1 s after ${SETTLE_MS / 1000} s) and during ${CHECKINS} check-ins, ${CONCURRENCY} at once`);
if (!existsSync(premiscaleCommand().args[0]!)) throw new Error("dist/ is not built: run `npm run build` first");

// Baseline: the bare server.
const barePort = await freePort();
const bare = await bareServer(barePort);
const bareIdle = await idleRss(bare.pid!);
const bareRequests = Array.from({ length: CHECKINS }, () => {
  const id = randomUUID();
  return { url: `http://127.0.0.1:${barePort}/phone-home/${id}/x`, body: form(id) };
});
const bareBurst = await burst(bare.pid!, bareRequests);
bare.kill("SIGTERM");

// premiscale serve on a test-driver host with three domains in state (the collector runs every 15 s).
const port = await freePort();
const dir = await metricsProject({ now: Date.now(), serverListen: `127.0.0.1:${port}`, samples: false });
const serve = spawnPremiscale(dir, ["serve"], { PREMISCALE_LOG_LEVEL: "warn" });
await new Promise((r) => setTimeout(r, 300));
for (let i = 0; i < 200; i++) {
  if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) break;
  await new Promise((r) => setTimeout(r, 100));
}
const servePid = serve.child.pid!;
const serveIdle = await idleRss(servePid);
const sessions = childrenRss(servePid);
const secret = await loadServerSecret(join(dir, "state", ".premiscale"));
const requests = Array.from({ length: CHECKINS }, () => {
  const id = randomUUID();
  return { url: `http://127.0.0.1:${port}/phone-home/${id}/${instanceToken(secret, id)}`, body: form(id) };
});
const serveBurst = await burst(servePid, requests);
const serveAfter = await idleRss(servePid);
const stopped = await serve.stop("SIGTERM");

// The same serve with only its own modules loaded (commander + cli/serve.js; no plan, apply or TUI code): what
// cli/main.ts adds to it (it loads the plan/apply commands lazily, so little).
let lean: { idle: number; peak: number } | null = null;
{
  const code = `
    import { Command } from ${JSON.stringify(pathToFileURL(join(ROOT, "node_modules/commander/esm.mjs")).href)};
    import { registerServeCommand } from ${JSON.stringify(pathToFileURL(join(ROOT, "dist/cli/serve.js")).href)};
    import { processOutput } from ${JSON.stringify(pathToFileURL(join(ROOT, "dist/cli/output.js")).href)};
    const program = new Command("premiscale").option("-c, --config <file>");
    registerServeCommand(program, processOutput(), (c) => (process.exitCode = c), () => program.opts().config);
    await program.parseAsync(["serve"], { from: "user" });`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: dir, env: { ...process.env, PREMISCALE_LOG_LEVEL: "warn" }, stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 200; i++) {
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const idle = await idleRss(child.pid!);
  const more = Array.from({ length: CHECKINS }, () => {
    const id = randomUUID();
    return { url: `http://127.0.0.1:${port}/phone-home/${id}/${instanceToken(secret, id)}`, body: form(id) };
  });
  lean = { idle, peak: (await burst(child.pid!, more)).peak };
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
}
await rm(dir, { recursive: true, force: true });

memoryLine("serve idle RSS", serveIdle, "bare node http server", bareIdle);
memoryLine(`serve peak RSS during ${CHECKINS} check-ins`, serveBurst.peak, "bare node http server", bareBurst.peak);
memoryLine(`serve RSS ${SETTLE_MS / 1000} s after the burst`, serveAfter, "its own idle RSS", serveIdle);
ratioLine(`${CHECKINS} check-ins (each recorded in the ledger, a file per VM)`, serveBurst.ms, "bare node http server", bareBurst.ms);
console.log(`serve's virsh sessions (collector): ${sessions.count} process(es), ${mib(sessions.bytes)} RSS in all, beside serve's own`);
if (lean) {
  memoryLine("serve idle RSS, its own modules only", lean.idle, "bare node http server", bareIdle);
  memoryLine(`  peak during ${CHECKINS} check-ins`, lean.peak, "bare node http server", bareBurst.peak);
}
console.log(`refused: serve ${serveBurst.failed}, bare ${bareBurst.failed}; serve stopped on SIGTERM with code ${stopped.code} in ${ms(stopped.ms)}`);
