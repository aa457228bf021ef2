import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeKubePki, type KeyPair } from "./kube-pki.js";
import { freePort } from "./serve.js";

/**
 * A real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler and KWOK (fake kubelets), built by test/kubernetes/build-components.sh into a cache outside the
 * clone (tests never build). See test/kubernetes/README.md for versions, flags and start-up figures.
 */

/** Nodes carrying this label are KWOK's: they become Ready and the pods bound to them Running. */
export const KWOK_NODE_LABEL = { key: "type", value: "kwok" } as const;

/** What the build script puts in the cache, in the order the fixture starts them. */
export const KUBE_COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "cluster-autoscaler"] as const;
/** One of KUBE_COMPONENTS. */
export type KubeComponent = (typeof KUBE_COMPONENTS)[number];

const BUILD_HINT = "run `bash test/kubernetes/build-components.sh` (test/run.sh does; tests never build)";

/** A fixture failure: which component, why, and the tail of its log. */
export class KubeClusterError extends Error {
  override name = "KubeClusterError";
}

/** The directory of the built binaries: $PREMISCALE_KUBE_BIN, else $PREMISCALE_KUBE_CACHE/current/bin. */
export function kubeBinDir(): string {
  return process.env.PREMISCALE_KUBE_BIN ?? join(process.env.PREMISCALE_KUBE_CACHE ?? "/var/cache/premiscale/kubernetes", "current", "bin");
}

/** The path of one built component; throws, naming the build script, when it is not built. */
export function kubeBinary(name: KubeComponent): string {
  const path = join(kubeBinDir(), name);
  if (!existsSync(path)) {
    const why =
      name === "cluster-autoscaler"
        ? "cluster-autoscaler is not served by the Go module proxy: set PREMISCALE_AUTOSCALER_SRC to a kubernetes/autoscaler git repository and "
        : "";
    throw new KubeClusterError(`${name} is not built (${path} is missing): ${why}${BUILD_HINT}`);
  }
  return path;
}

/** An HTTP answer from the API server: its status and its body, parsed when it is JSON. */
export interface KubeResponse {
  status: number;
  // The API's objects are checked by the tests that read them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

/** One API request. */
export interface KubeRequestOptions {
  body?: unknown;
  /** Authenticate with this bearer token instead of the admin client certificate. */
  token?: string;
  /** @default "application/json" ("application/merge-patch+json" for PATCH) */
  contentType?: string;
  /** @default 15000 */
  timeoutMs?: number;
}

/** A `cluster-autoscaler` process against the test cluster. */
export interface ClusterAutoscalerProcess {
  pid: number;
  logPath: string;
  /** Its log so far. */
  logs(): string;
  /** Resolves when it exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/** A running test cluster. */
export interface KubeCluster {
  /** https://127.0.0.1:<port> */
  apiUrl: string;
  /** Admin (system:masters) kubeconfig, certificates embedded. */
  kubeconfigPath: string;
  caCertPem: string;
  /** "sha256:<hex>" of the CA certificate's DER SubjectPublicKeyInfo (kubeadm's --discovery-token-ca-cert-hash). */
  caCertHash: string;
  adminClientCertPem: string;
  adminClientKeyPem: string;
  /** The cluster's temporary directory (PKI, kubeconfigs, etcd data, logs/<component>.log); removed by stop(). */
  dir: string;
  /** Process ids by component (for leak checks). */
  pids: Record<string, number>;
  /** Log file of each component. */
  logPaths: Record<string, string>;
  /** Milliseconds from the call to each component being ready, and `total`. */
  startTimings: Record<string, number>;
  /** An API request as the admin (or with `token`). Never throws for an HTTP status; throws on timeout. */
  request(method: string, path: string, options?: KubeRequestOptions): Promise<KubeResponse>;
  /**
   * Starts cluster-autoscaler (`--cloud-provider=externalgrpc`, the admin kubeconfig, no leader election, metrics on
   * a free loopback port) with `flags` appended, e.g. `["--scan-interval=2s"]`. Stopped by stop() at the latest.
   */
  startClusterAutoscaler(options: { cloudConfigPath: string; flags?: string[] }): Promise<ClusterAutoscalerProcess>;
  /** Kills every process of this cluster, waits for them to exit and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

/** Options of startKubeCluster. */
export interface StartKubeClusterOptions {
  /** Deadline for each component to become ready. @default 90000 */
  readyTimeoutMs?: number;
  /** Extra flags per component, appended. */
  extraFlags?: Partial<Record<Exclude<KubeComponent, "cluster-autoscaler">, string[]>>;
  /** Keep `dir` after stop() (or a failed start) for reading the logs. @default $PREMISCALE_KEEP_KUBE_DIR === "1" */
  keepDir?: boolean;
}

/**
 * Polls `probe` until it returns a truthy value (returned) or `timeoutMs` passes (throws, naming `what` and the last
 * value or error seen). For state of real external processes; `abortIf` returning a reason stops the wait at once.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  o: { timeoutMs: number; what: string; intervalMs?: number; abortIf?: () => string | undefined },
): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 200;
  let last: unknown;
  for (;;) {
    const aborted = o.abortIf?.();
    if (aborted) throw new KubeClusterError(`gave up waiting for ${o.what}: ${aborted}`);
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new KubeClusterError(`timed out after ${o.timeoutMs} ms waiting for ${o.what} (last seen: ${seen})`);
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, left)));
  }
}

interface Proc {
  name: string;
  child: ChildProcess;
  logPath: string;
  exit?: { code: number | null; signal: NodeJS.Signals | null; error?: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

// Everything still running or on disk, for the exit hook: a test that throws before stop(), or a worker that exits,
// must not leave an etcd or an API server behind.
const liveProcs = new Set<Proc>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const p of liveProcs) {
      try {
        p.child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}

/** The last `lines` lines of a log file ("" when it is missing). */
export function logTail(path: string, lines = 25): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

function startProc(name: string, bin: string, args: string[], logPath: string, env: Record<string, string> = {}): Proc {
  const fd = openSync(logPath, "a");
  // setpriv --pdeathsig: the kernel kills the component when the process that spawned it dies, even by SIGKILL,
  // where no exit hook runs.
  const child = spawn("setpriv", ["--pdeathsig", "SIGKILL", "--", bin, ...args], { stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  const p: Proc = {
    name,
    child,
    logPath,
    exited: new Promise((res) => {
      child.once("exit", (code, signal) => {
        p.exit = { code, signal };
        liveProcs.delete(p);
        res({ code, signal });
      });
      child.once("error", (e) => {
        // spawn itself failed (setpriv is util-linux's, always on Debian)
        p.exit = { code: null, signal: null, error: e.message };
        liveProcs.delete(p);
        res({ code: null, signal: null });
      });
    }),
  };
  liveProcs.add(p);
  return p;
}

async function stopProc(p: Proc, graceMs = 5_000): Promise<void> {
  if (p.exit) return;
  p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.child.kill("SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(timer);
}

function exitedReason(p: Proc): string | undefined {
  if (!p.exit) return undefined;
  if (p.exit.error) return `${p.name} could not be started: ${p.exit.error}`;
  return `${p.name} exited (${p.exit.signal ? `signal ${p.exit.signal}` : `code ${p.exit.code}`})`;
}

type Endpoint = { apiUrl: string; caPem: string; cert?: string; key?: string };

function kubeRequest(ep: Endpoint, method: string, path: string, o: KubeRequestOptions = {}): Promise<KubeResponse> {
  const url = new URL(path, ep.apiUrl);
  const payload = o.body === undefined ? undefined : typeof o.body === "string" ? o.body : JSON.stringify(o.body);
  const headers: Record<string, string> = { accept: "application/json" };
  if (payload !== undefined) {
    headers["content-type"] = o.contentType ?? (method === "PATCH" ? "application/merge-patch+json" : "application/json");
    headers["content-length"] = String(Buffer.byteLength(payload));
  }
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  const timeoutMs = o.timeoutMs ?? 15_000;
  return new Promise((res, rej) => {
    const tls = o.token ? {} : { cert: ep.cert, key: ep.key };
    const req = httpsRequest(url, { method, headers, ca: ep.caPem, ...tls, agent: false, timeout: timeoutMs }, (r) => {
      let text = "";
      r.setEncoding("utf8");
      r.on("data", (d: string) => (text += d));
      r.on("end", () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON (/healthz says "ok")
        }
        res({ status: r.statusCode ?? 0, body, text });
      });
      r.on("error", rej);
    });
    req.on("timeout", () => req.destroy(new KubeClusterError(`${method} ${url.href}: no answer within ${timeoutMs} ms`)));
    req.on("error", rej);
    req.end(payload);
  });
}

/** GET a URL; resolves the status (0 when refused), never rejects: for readiness probes. */
function probeStatus(url: string, tls: { ca?: string; cert?: string; key?: string; insecure?: boolean } = {}): Promise<number> {
  return new Promise((res) => {
    const opts = { timeout: 3_000, agent: false as const, ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.insecure };
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, opts, (r) => {
      r.resume();
      r.on("end", () => res(r.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => res(0));
    req.end();
  });
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

function kubeconfig(apiUrl: string, caPem: string, user: string, pair: KeyPair): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "premiscale-test", cluster: { server: apiUrl, "certificate-authority-data": b64(caPem) } }],
      users: [{ name: user, user: { "client-certificate-data": b64(pair.certPem), "client-key-data": b64(pair.keyPem) } }],
      contexts: [{ name: "premiscale-test", context: { cluster: "premiscale-test", user } }],
      "current-context": "premiscale-test",
    },
    null,
    2,
  );
}

/**
 * Starts a new cluster in a new temporary directory, all on 127.0.0.1 ports picked at random, and resolves once
 * every component is ready (etcd /health, kube-apiserver /readyz, the controller manager's and scheduler's /healthz,
 * KWOK watching nodes, and the `default` ServiceAccount that pods in `default` need). On failure, everything started
 * is stopped and the error names the component and shows the tail of its log.
 */
export async function startKubeCluster(o: StartKubeClusterOptions = {}): Promise<KubeCluster> {
  const t0 = performance.now();
  const bins = Object.fromEntries((["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"] as const).map((c) => [c, kubeBinary(c)])) as Record<string, string>;
  const readyTimeoutMs = o.readyTimeoutMs ?? 90_000;
  const keepDir = o.keepDir ?? process.env.PREMISCALE_KEEP_KUBE_DIR === "1";
  installExitHook();
  const dir = await mkdtemp(join(tmpdir(), "premiscale-kube-"));
  if (!keepDir) liveDirs.add(dir);
  const logs = join(dir, "logs");
  mkdirSync(logs);
  const procs: Proc[] = [];
  const timings: Record<string, number> = {};
  const mark = (what: string) => (timings[what] = Math.round(performance.now() - t0));
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // The API server's clients first, etcd last: nothing logs a storage error on the way down.
    const [etcd, ...rest] = procs;
    await Promise.all(rest.map((p) => stopProc(p)));
    if (etcd) await stopProc(etcd);
    if (!keepDir) {
      await rm(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    }
  };
  const start = (name: string, args: string[], env?: Record<string, string>) => {
    const p = startProc(name, bins[name] ?? kubeBinary(name as KubeComponent), args, join(logs, `${name}.log`), env);
    procs.push(p);
    return p;
  };
  const ready = async (p: Proc, what: string, probe: () => Promise<boolean>, milestone = p.name) => {
    try {
      await waitFor(probe, { timeoutMs: readyTimeoutMs, what: `${p.name}: ${what}`, abortIf: () => exitedReason(p) });
      mark(milestone);
    } catch (e) {
      const where = keepDir ? p.logPath : "removed with the cluster; PREMISCALE_KEEP_KUBE_DIR=1 keeps it";
      throw new KubeClusterError(`${p.name} failed to start: ${(e as Error).message}\n--- the end of its log (${where}):\n${logTail(p.logPath)}`);
    }
  };

  try {
    const pkiDir = join(dir, "pki");
    mkdirSync(pkiDir);
    const pki = await makeKubePki(pkiDir, [
      { name: "admin", user: "premiscale-admin", groups: ["system:masters"] },
      { name: "controller-manager", user: "system:kube-controller-manager" },
      { name: "scheduler", user: "system:kube-scheduler" },
    ]);
    mark("pki");
    const [etcdClient, etcdPeer, apiPort, kcmPort, schedulerPort] = await distinctFreePorts(5);
    const apiUrl = `https://127.0.0.1:${apiPort}`;
    const admin = pki.clients.admin!;
    const kubeconfigPath = join(dir, "admin.kubeconfig");
    await writeFile(kubeconfigPath, kubeconfig(apiUrl, pki.ca.certPem, "premiscale-admin", admin), { mode: 0o600 });
    const kcmConfig = join(dir, "controller-manager.kubeconfig");
    await writeFile(kcmConfig, kubeconfig(apiUrl, pki.ca.certPem, "system:kube-controller-manager", pki.clients["controller-manager"]!), { mode: 0o600 });
    const schedulerConfig = join(dir, "scheduler.kubeconfig");
    await writeFile(schedulerConfig, kubeconfig(apiUrl, pki.ca.certPem, "system:kube-scheduler", pki.clients.scheduler!), { mode: 0o600 });
    const ep: Endpoint = { apiUrl, caPem: pki.ca.certPem, cert: admin.certPem, key: admin.keyPem };

    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = start("etcd", [
      "--name=default",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      "--initial-cluster-state=new",
      // Throwaway data on a shared 2-core machine: no fsync, so a busy disk does not stall the API server.
      "--unsafe-no-fsync=true",
      "--log-level=warn",
      ...(o.extraFlags?.etcd ?? []),
    ]);
    await ready(etcd, `${etcdUrl}/health answers 200`, async () => (await probeStatus(`${etcdUrl}/health`)) === 200);

    const apiserver = start("kube-apiserver", [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "apiserver")}`,
      `--tls-cert-file=${pki.apiserver.certPath}`,
      `--tls-private-key-file=${pki.apiserver.keyPath}`,
      `--client-ca-file=${pki.ca.certPath}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki.serviceAccountPubPath}`,
      `--service-account-signing-key-file=${pki.serviceAccountKeyPath}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--authorization-mode=Node,RBAC",
      "--enable-bootstrap-token-auth=true",
      "--allow-privileged=true",
      // The default reconciler writes 127.0.0.1 into the `kubernetes` Endpoints, which validation refuses (loopback).
      "--endpoint-reconciler-type=none",
      "--profiling=false",
      ...(o.extraFlags?.["kube-apiserver"] ?? []),
    ]);
    await ready(apiserver, `${apiUrl}/readyz answers 200`, async () => (await probeStatus(`${apiUrl}/readyz`, { ca: ep.caPem, cert: ep.cert, key: ep.key })) === 200);

    // Their /healthz needs no credentials (always-allowed paths); their serving certificates are self-signed.
    // skip-lookup: the API server has no front proxy, so its requestheader CA is missing, and looking it up would
    // log an error every few seconds.
    const delegated = (config: string) => [
      `--kubeconfig=${config}`,
      `--authentication-kubeconfig=${config}`,
      `--authorization-kubeconfig=${config}`,
      "--authentication-skip-lookup=true",
    ];
    const kcm = start("kube-controller-manager", [
      ...delegated(kcmConfig),
      "--bind-address=127.0.0.1",
      `--secure-port=${kcmPort}`,
      `--cert-dir=${join(dir, "controller-manager")}`,
      "--leader-elect=false",
      // tokencleaner deletes expired bootstrap tokens, bootstrapsigner signs kube-public/cluster-info: both off by default.
      "--controllers=*,tokencleaner,bootstrapsigner",
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${pki.serviceAccountKeyPath}`,
      `--root-ca-file=${pki.ca.certPath}`,
      `--cluster-signing-cert-file=${pki.ca.certPath}`,
      `--cluster-signing-key-file=${pki.ca.keyPath}`,
      "--cluster-name=premiscale-test",
      ...(o.extraFlags?.["kube-controller-manager"] ?? []),
    ]);
    const scheduler = start("kube-scheduler", [
      ...delegated(schedulerConfig),
      "--bind-address=127.0.0.1",
      `--secure-port=${schedulerPort}`,
      "--leader-elect=false",
      ...(o.extraFlags?.["kube-scheduler"] ?? []),
    ]);
    const kwokHome = join(dir, "kwok");
    mkdirSync(kwokHome);
    // HOME: KWOK reads ~/.kwok/kwok.yaml when it exists; this one never does.
    const kwok = start(
      "kwok",
      [`--kubeconfig=${kubeconfigPath}`, "--manage-all-nodes=false", `--manage-nodes-with-label-selector=${KWOK_NODE_LABEL.key}=${KWOK_NODE_LABEL.value}`, ...(o.extraFlags?.kwok ?? [])],
      { HOME: kwokHome },
    );
    await Promise.all([
      ready(kcm, `https://127.0.0.1:${kcmPort}/healthz answers 200`, async () => (await probeStatus(`https://127.0.0.1:${kcmPort}/healthz`, { insecure: true })) === 200),
      ready(scheduler, `https://127.0.0.1:${schedulerPort}/healthz answers 200`, async () => (await probeStatus(`https://127.0.0.1:${schedulerPort}/healthz`, { insecure: true })) === 200),
      // KWOK serves nothing by default; it logs this once its informers are set up.
      ready(kwok, 'its log says "Watch nodes"', async () => (await readFile(kwok.logPath, "utf8")).includes("Watch nodes")),
    ]);
    await ready(
      kcm,
      "the serviceaccount controller creates default/default",
      async () => (await kubeRequest(ep, "GET", "/api/v1/namespaces/default/serviceaccounts/default")).status === 200,
      "default-serviceaccount",
    );
    mark("total");

    const cluster: KubeCluster = {
      apiUrl,
      kubeconfigPath,
      caCertPem: pki.ca.certPem,
      caCertHash: pki.caCertHash,
      adminClientCertPem: admin.certPem,
      adminClientKeyPem: admin.keyPem,
      dir,
      pids: Object.fromEntries(procs.map((p) => [p.name, p.child.pid!])),
      logPaths: Object.fromEntries(procs.map((p) => [p.name, p.logPath])),
      startTimings: timings,
      request: (method, path, options) => kubeRequest(ep, method, path, options),
      async startClusterAutoscaler({ cloudConfigPath, flags = [] }) {
        const bin = kubeBinary("cluster-autoscaler");
        const [metricsPort] = await distinctFreePorts(1);
        const name = `cluster-autoscaler-${procs.filter((p) => p.name.startsWith("cluster-autoscaler")).length + 1}`;
        const p = startProc(
          name,
          bin,
          [
            "--cloud-provider=externalgrpc",
            `--cloud-config=${cloudConfigPath}`,
            `--kubeconfig=${kubeconfigPath}`,
            "--leader-elect=false",
            `--address=127.0.0.1:${metricsPort}`,
            "--v=2",
            ...flags,
          ],
          join(logs, `${name}.log`),
        );
        procs.push(p);
        cluster.pids[name] = p.child.pid!;
        cluster.logPaths[name] = p.logPath;
        return { pid: p.child.pid!, logPath: p.logPath, logs: () => logTail(p.logPath, Infinity), exited: p.exited, stop: () => stopProc(p) };
      },
      stop,
    };
    return cluster;
  } catch (e) {
    await stop();
    throw e;
  }
}
