// Unschedulable pod → VM create started (issue 12): premiscale's native mode against the real cluster-autoscaler
// driving premiscale as its externalgrpc cloud provider (issue 11's loop), on one real test cluster, same scenario,
// rounds of the two sides interleaved in the same run.
//
// A round: a fresh `premiscale serve` (the built CLI, fresh git state) — native mode, or cluster-autoscaler mode with
// a fresh cluster-autoscaler process calling it over mutual TLS — waits for its first scan (cluster-autoscaler: its
// first main loop), then a random part of one scan interval (so the pod arrives at a random phase of the scan loop, as
// it would in a long-running cluster); then a Deployment of one pod that only a new node of the group can take
// (nodeSelector premiscale.io/group, 600m of a 1-vCPU node). Measured: from the pod's PodScheduled=False/Unschedulable
// (the moment a watch on the API server delivers it) and from the Deployment's create, to premiscale's apply starting
// the VM create (its `apply_start` log line, action create), and where the time went in between (serve's own log
// lines and cluster-autoscaler's klog lines, all from this machine's clock).
//
// The VM is made on the real local libvirtd (qemu:///system, plain QEMU) from an empty 64 MiB base image, as
// externalgrpc.bench.ts does: the measured interval ends when the create starts, before any guest would boot, and the
// VM only sits in firmware until the round ends. libvirt's test driver cannot be used: the libvirt provider reads a
// host's free memory from `freecell` there, which test:///default reports as 6 MiB and a custom test:///<file>.xml
// as 0, below any template (memoryMiB ≥ 64), so premiscale plans no VM on it. The create's first host step (after
// the join hook mints a bootstrap token on the real API server) is shown too. Between rounds: cluster-autoscaler and
// serve are stopped (SIGTERM aborts the create waiting for its Node without a clean-up call, as designed: state keeps
// it `creating` for the next serve, as after a crash), then the round's VM, disk and seed are removed with virsh, the
// Deployment deleted in the foreground (its pods gone) and the group's bootstrap token Secrets deleted; every round
// starts from an empty group, a fresh state and fresh processes.
//
// Variants (BENCH_VARIANTS, comma-separated): `default` = both sides' defaults (native scanIntervalSeconds 10, pending
// pods polled every 500 ms, batch 1 s idle / 10 s max; cluster-autoscaler --scan-interval=10s with its default
// --frequent-loops-enabled=true, premiscale debounceMs 200); `short` = both scan intervals 2 s; `timer` = the defaults,
// but cluster-autoscaler with --frequent-loops-enabled=false (its loop runs on the scan-interval timer only). All three
// by default (about 8 minutes); BENCH_ROUNDS (5) per side and variant. Needs dist/ (`npm run build`) and the test cluster's binaries
// (test/kubernetes/build-components.sh); without cluster-autoscaler the native side runs alone and the other is
// printed as skipped with the reason.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { premiscaleCommand, freePort, killLeftovers, type ServeProcess } from "../test/support/serve.js";
import { kubeBinDir, startKubeCluster, waitFor, type ClusterAutoscalerProcess, type KubeCluster } from "../test/support/kube-cluster.js";
import { makeKubePki } from "../test/support/kube-pki.js";
import { ensureBlankBase, leftovers } from "../test/support/libvirt.js";
import { removeLeftovers, startServe } from "../test/support/node-groups.js";
import { ms } from "./common.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const VARIANT_NAMES = (process.env.BENCH_VARIANTS ?? "default,short,timer").split(",").map((s) => s.trim()).filter(Boolean);
const RUN = randomBytes(2).toString("hex");
const G = `bnat${RUN}`;
const NS = "default";
const PROVIDER_STEPS = new Set(["disk", "seed", "define", "start"]);

/** One pairing of settings, read the same way on both sides. */
interface Variant {
  name: string;
  /** native scanIntervalSeconds and cluster-autoscaler --scan-interval. */
  scanSeconds: number;
  caFlags: string[];
  says: string;
}
const VARIANTS: Record<string, Variant> = {
  default: {
    name: "default",
    scanSeconds: 10,
    caFlags: [],
    says: "both defaults: native scanIntervalSeconds 10, pending pods polled every 500 ms, batch 1 s idle / 10 s max | cluster-autoscaler --scan-interval=10s, --frequent-loops-enabled=true (its default), premiscale debounceMs 200",
  },
  short: {
    name: "short",
    scanSeconds: 2,
    caFlags: [],
    says: "equal short intervals: native scanIntervalSeconds 2 (poll 500 ms, batch 1 s / 10 s) | cluster-autoscaler --scan-interval=2s, frequent loops on, premiscale debounceMs 200",
  },
  timer: {
    name: "timer",
    scanSeconds: 10,
    caFlags: ["--frequent-loops-enabled=false"],
    says: "defaults, but cluster-autoscaler --frequent-loops-enabled=false (its loop on the 10 s timer only) | native scanIntervalSeconds 10, poll 500 ms, batch 1 s / 10 s",
  },
};
for (const v of VARIANT_NAMES) if (!VARIANTS[v]) throw new Error(`BENCH_VARIANTS: unknown variant ${v} (known: ${Object.keys(VARIANTS).join(", ")})`);

type Side = "native" | "ca";
/** One round's figures, ms; stages in the order they happen. */
interface Round {
  fromUnschedulable: number;
  fromCreate: number;
  stages: [string, number][];
  toFirstHostStep: number;
  note: string;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));
type Log = Record<string, unknown>;
const at = (l: Log) => Date.parse(String(l.time));
/** The last line matching before `t` (inclusive). */
const lastBefore = (lines: Log[], t: number, match: (l: Log) => boolean) => lines.filter((l) => match(l) && at(l) <= t).at(-1);

/** klog's header `I1203 19:20:01.123456` is local time without a year: as this machine's clock reads it. */
function klogTimes(text: string, needle: string): { t: number; line: string }[] {
  const year = new Date().getFullYear();
  const out: { t: number; line: string }[] = [];
  for (const line of text.split("\n")) {
    if (!line.includes(needle)) continue;
    const m = /^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})/.exec(line);
    if (m) out.push({ t: new Date(year, Number(m[1]) - 1, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Math.floor(Number(m[6]) / 1000)).getTime(), line });
  }
  return out;
}

/**
 * Watches the pods of `app` and resolves when one is first seen PodScheduled=False/Unschedulable: the time the API
 * server's watch delivered it here (ms), and the condition's own lastTransitionTime (whole seconds, for a check).
 */
function watchUnschedulable(cluster: KubeCluster, app: string) {
  let seen!: (v: { at: number; transition: string }) => void;
  const unschedulable = new Promise<{ at: number; transition: string }>((r) => (seen = r));
  let opened!: () => void;
  let failed!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => ((opened = res), (failed = rej)));
  const url = new URL(`/api/v1/namespaces/${NS}/pods?watch=1&labelSelector=app%3D${app}&timeoutSeconds=300`, cluster.apiUrl);
  const req = httpsRequest(url, { ca: cluster.caCertPem, cert: cluster.adminClientCertPem, key: cluster.adminClientKeyPem, agent: false, timeout: 310_000 }, (res) => {
    if (res.statusCode !== 200) return failed(new Error(`watch of pods app=${app}: HTTP ${res.statusCode}`));
    opened();
    let buf = "";
    res.setEncoding("utf8").on("data", (d: string) => {
      const now = Date.now();
      buf += d;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const p of parts) {
        if (!p.trim()) continue;
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const pod = (JSON.parse(p) as { object: any }).object;
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const c = pod?.status?.conditions?.find((x: any) => x.type === "PodScheduled" && x.status === "False" && x.reason === "Unschedulable");
        if (c && !pod.spec?.nodeName) seen({ at: now, transition: c.lastTransitionTime });
      }
    });
    res.on("error", () => undefined);
  });
  req.on("timeout", () => req.destroy(new Error("watch timed out")));
  req.on("error", (e) => failed(e));
  req.end();
  ready.catch(() => undefined); // awaited later; a failure before that must not crash the process
  return { ready, unschedulable, close: () => req.destroy() };
}

function deployment(app: string) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: app, namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app } },
      template: {
        metadata: { labels: { app } },
        spec: {
          nodeSelector: { "premiscale.io/group": G },
          terminationGracePeriodSeconds: 0,
          // 600m of a 1-vCPU node; no image is ever pulled (no Node ever registers).
          containers: [{ name: "app", image: "registry.invalid/premiscale/app:bench", resources: { requests: { cpu: "600m", memory: "32Mi" } } }],
        },
      },
    },
  };
}

// ---- the cluster, once ----
const missing = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"].filter((c) => !existsSync(join(kubeBinDir(), c)));
if (missing.length > 0) {
  console.log(`# native-vs-ca: SKIPPED, the test cluster is not built (${missing.join(", ")} missing in ${kubeBinDir()}): run bash test/kubernetes/build-components.sh`);
  process.exit(0);
}
if (!existsSync(premiscaleCommand().args[0]!)) throw new Error("dist/ is not built: run `npm run build` first");
const CA_BIN = join(kubeBinDir(), "cluster-autoscaler");
const caSkipped = existsSync(CA_BIN)
  ? null
  : `the real cluster-autoscaler is not built (${CA_BIN} is missing; the Go module proxy does not serve it): build it with PREMISCALE_AUTOSCALER_SRC=<kubernetes/autoscaler git repository> bash test/kubernetes/build-components.sh`;

const base = await ensureBlankBase();
const cluster = await startKubeCluster();
const work = await mkdtemp(join(tmpdir(), "premiscale-bench-nvc-"));
const tlsDir = join(work, "tls");
mkdirSync(tlsDir);
// The server certificate names 127.0.0.1, which cluster-autoscaler checks against its cloud-config address.
const pki = await makeKubePki(tlsDir, [{ name: "cluster-autoscaler", user: "cluster-autoscaler" }]);
const tls = { cert: pki.apiserver.certPath, key: pki.apiserver.keyPath, clientCa: pki.ca.certPath, allowedClients: ["cluster-autoscaler"] };

async function configText(side: Side, v: Variant, grpcPort: number): Promise<string> {
  const mode = side === "native" ? `\n  mode: native\n  native: { scanIntervalSeconds: ${v.scanSeconds} }` : `\n  externalGrpc:\n    listen: 127.0.0.1:${grpcPort}\n    tls: ${JSON.stringify(tls)}`;
  return `version: v1alpha1
state: { path: ./state }
server: { listen: 127.0.0.1:${await freePort()} }
metrics: { store: { type: prometheus, url: "http://127.0.0.1:9" } }
kubernetes:
  kubeconfig: ${JSON.stringify(cluster.kubeconfigPath)}${mode}
hosts:
  - { name: local, kind: libvirt, uri: "qemu:///system", pool: default, accelerator: qemu, cpuOvercommit: 16 }
groups:
  - name: ${G}
    min: 0
    max: 5
    hosts: [local]
    readiness: { checkIn: false, timeoutSeconds: 120 }
    template: { vcpus: 1, memoryMiB: 64, disk: { baseImage: ${base}, sizeGiB: 1 } }
    kubernetes:
      labels: { type: kwok }
`;
}

async function deleteApp(app: string): Promise<void> {
  await cluster.request("DELETE", `/apis/apps/v1/namespaces/${NS}/deployments/${app}`, { body: { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Foreground" } });
  await waitFor(
    async () => (await cluster.request("GET", `/apis/apps/v1/namespaces/${NS}/deployments/${app}`)).status === 404 && (await cluster.request("GET", `/api/v1/namespaces/${NS}/pods?labelSelector=app%3D${app}`)).body.items.length === 0,
    { timeoutMs: 60_000, what: `Deployment ${app} and its pods gone` },
  );
}

const tokenSecrets = async () => (await cluster.request("GET", `/api/v1/namespaces/kube-system/secrets?labelSelector=premiscale.io%2Fgroup%3D${G}`)).body.items.length as number;

async function round(side: Side, v: Variant, i: number): Promise<Round> {
  const app = `${side === "native" ? "n" : "c"}${v.name.slice(0, 1)}${i}${RUN}`;
  const dir = await mkdtemp(join(work, `${side}-`));
  const grpcPort = await freePort();
  await writeFile(join(dir, "premiscale.yaml"), await configText(side, v, grpcPort));
  let serve: ServeProcess | null = null;
  let ca: ClusterAutoscalerProcess | null = null;
  const watch = watchUnschedulable(cluster, app);
  try {
    serve = await startServe(dir);
    const s = serve;
    const alive = () => (s.child.exitCode === null ? undefined : `premiscale serve exited:\n${s.stderr().slice(-2000)}`);
    if (side === "ca") {
      const cloudConfig = join(dir, "cloud-config.yaml");
      const client = pki.clients["cluster-autoscaler"]!;
      await writeFile(cloudConfig, `address: 127.0.0.1:${grpcPort}\ncert: ${client.certPath}\nkey: ${client.keyPath}\ncacert: ${pki.ca.certPath}\ngrpc_timeout: 5s\n`);
      ca = await cluster.startClusterAutoscaler({ cloudConfigPath: cloudConfig, flags: [`--scan-interval=${v.scanSeconds}s`, ...v.caFlags, "--v=4"] });
      const c = ca;
      await waitFor(() => c.logs().includes("Starting main loop"), { timeoutMs: 90_000, what: "cluster-autoscaler's first main loop", abortIf: alive });
    } else {
      await s.waitForLog((l) => l.event === "native_scan_done", 60_000);
    }
    // A random phase of the scan loop, as a pod meets a loop that has been running for a while.
    await sleep(Math.random() * v.scanSeconds * 1000);
    await watch.ready;
    const created = Date.now();
    const r = await cluster.request("POST", `/apis/apps/v1/namespaces/${NS}/deployments`, { body: deployment(app) });
    if (r.status !== 201) throw new Error(`creating Deployment ${app}: HTTP ${r.status} ${r.text}`);
    const start = await waitFor(() => s.logs().find((l) => l.event === "apply_start" && l.action === "create"), { timeoutMs: 120_000, intervalMs: 20, what: `${side}: a VM create started`, abortIf: alive });
    const step = await waitFor(() => s.logs().find((l) => l.event === "apply_step" && PROVIDER_STEPS.has(String(l.step))), { timeoutMs: 60_000, intervalMs: 20, what: `${side}: the create's first host step`, abortIf: alive });
    const uns = await Promise.race([watch.unschedulable, sleep(10_000).then(() => null)]);
    if (!uns) throw new Error(`${app}: the watch never saw the pod Unschedulable`);
    const tStart = at(start);
    const lines = s.logs();
    const stages: [string, number][] = [["scheduler: Deployment created → pod Unschedulable", uns.at - created]];
    let note: string;
    if (side === "native") {
      const scan = lastBefore(lines, tStart, (l) => l.event === "native_scan_start");
      const batch = scan && lastBefore(lines, at(scan), (l) => l.event === "pods_batched");
      if (!scan || !batch) throw new Error(`native: no pods_batched / native_scan_start before the create (${JSON.stringify(lines.slice(-20))})`);
      stages.push(["poll + batch window (→ pods_batched)", at(batch) - uns.at], ["read the cluster (→ scan start)", at(scan) - at(batch)], ["lock, decide, plan (→ create started)", tStart - at(scan)]);
      note = `scan trigger ${String(scan.trigger)}`;
    } else {
      const inc = lines.find((l) => l.event === "intent_recorded" && l.op === "IncreaseSize");
      const pass = lastBefore(lines, tStart, (l) => l.event === "autoscaler_pass_start");
      const logs = ca!.logs();
      const loop = inc && klogTimes(logs, "Starting main loop").filter((x) => x.t <= at(inc)).at(-1);
      if (!inc || !pass || !loop) throw new Error(`ca: no IncreaseSize / pass start / main loop before the create`);
      const trigger = klogTimes(logs, "Autoscaler loop triggered").filter((x) => x.t <= loop.t).at(-1);
      stages.push(
        ["wait for cluster-autoscaler's loop (→ main loop start)", loop.t - uns.at],
        ["cluster-autoscaler's loop (→ IncreaseSize recorded)", at(inc) - loop.t],
        ["premiscale debounce (→ pass start)", at(pass) - at(inc)],
        ["lock, plan (→ create started)", tStart - at(pass)],
      );
      note = trigger ? trigger.line.replace(/^.*\] /, "") : "its loop timer (no trigger line: frequent loops off)";
      // cluster-autoscaler's frequent loops start a loop when its pod watch sees a pending pod; when that loop's own
      // pod lister is behind, it finds nothing to do and the pod waits for the next loop.
      const early = klogTimes(logs, "triggered by unschedulable pod appearing").filter((x) => x.t >= uns.at - 1000 && x.t < loop.t);
      if (early.length > 0) note += `; ${early.length} earlier loop(s) triggered by the pod (at ${early.map((x) => `${x.t - uns.at >= 0 ? "+" : ""}${x.t - uns.at} ms`).join(", ")}) scaled nothing`;
    }
    // The condition's own time has whole seconds: a check that the watch saw it when it happened.
    if (Math.abs(Date.parse(uns.transition) - uns.at) > 2000) note += `; the watch saw Unschedulable at ${new Date(uns.at).toISOString()}, the condition says ${uns.transition}`;
    return { fromUnschedulable: tStart - uns.at, fromCreate: tStart - created, stages, toFirstHostStep: at(step) - tStart, note };
  } catch (e) {
    const tail = (serve?.stderr() ?? "").trimEnd().split("\n").slice(-25).join("\n");
    throw new Error(`${side} round ${i + 1} (${v.name}): ${(e as Error).message}\n--- the end of premiscale serve's log:\n${tail}${ca ? `\n--- cluster-autoscaler's:\n${ca.logs().trimEnd().split("\n").slice(-15).join("\n")}` : ""}`);
  } finally {
    watch.close();
    await ca?.stop();
    if (serve) {
      const s = serve;
      const kill = setTimeout(() => s.child.kill("SIGKILL"), 30_000);
      await s.stop("SIGTERM");
      clearTimeout(kill);
    }
    await deleteApp(app);
    await cluster.request("DELETE", `/api/v1/namespaces/kube-system/secrets?labelSelector=premiscale.io%2Fgroup%3D${G}`);
    await removeLeftovers([G]);
    await rm(dir, { recursive: true, force: true });
  }
}

function summary(side: string, rounds: Round[]): void {
  const u = rounds.map((r) => r.fromUnschedulable);
  const c = rounds.map((r) => r.fromCreate);
  console.log(`${side}: unschedulable → create started median ${ms(pct(u, 50))}, p90 ${ms(pct(u, 90))} (min ${ms(Math.min(...u))}); Deployment created → create started median ${ms(pct(c, 50))}, p90 ${ms(pct(c, 90))}`);
  const names = rounds[0]!.stages.map(([n]) => n);
  console.log(`  where (medians): ${names.map((n, k) => `${n} ${ms(pct(rounds.map((r) => r.stages[k]![1]), 50))}`).join("; ")}; then create started → first host step ${ms(pct(rounds.map((r) => r.toFirstHostStep), 50))} (the join token minted)`);
}

console.log(
  `# unschedulable pod → VM create started: premiscale native mode vs cluster-autoscaler (${caSkipped ? "SKIPPED" : "the real binary"}) + premiscale externalgrpc; ${ROUNDS} rounds per side, interleaved; VMs on qemu:///system from an empty base image (the interval ends before any guest boots); load ${(await import("node:os")).loadavg().map((x) => x.toFixed(1)).join(" ")}`,
);
try {
  for (const name of VARIANT_NAMES) {
    const v = VARIANTS[name]!;
    console.log(`\n## ${v.name}: ${v.says}`);
    const out: Record<Side, Round[]> = { native: [], ca: [] };
    for (let i = 0; i < ROUNDS; i++) {
      const order: Side[] = caSkipped ? ["native"] : i % 2 === 0 ? ["native", "ca"] : ["ca", "native"];
      for (const side of order) {
        const r = await round(side, v, i);
        out[side].push(r);
        console.log(`  round ${i + 1} ${side}: ${ms(r.fromUnschedulable)} from Unschedulable, ${ms(r.fromCreate)} from the Deployment [${r.stages.map(([, x]) => ms(x)).join(" + ")}] (${r.note})`);
      }
    }
    summary("native", out.native);
    if (caSkipped) {
      console.log(`cluster-autoscaler: SKIPPED, ${caSkipped}`);
      continue;
    }
    summary("cluster-autoscaler", out.ca);
    const ratio = (f: (r: Round) => number, p: number) => (pct(out.native.map(f), p) / pct(out.ca.map(f), p)).toFixed(2);
    console.log(
      `native / cluster-autoscaler: from Unschedulable ${ratio((r) => r.fromUnschedulable, 50)}× (median), ${ratio((r) => r.fromUnschedulable, 90)}× (p90); from the Deployment ${ratio((r) => r.fromCreate, 50)}× / ${ratio((r) => r.fromCreate, 90)}×`,
    );
  }
} finally {
  await killLeftovers();
  await removeLeftovers([G]);
  const left = await tokenSecrets().catch(() => -1);
  if (left !== 0) console.error(`left behind: ${left} bootstrap token Secret(s) of ${G}`);
  const stray = await leftovers(`${G}-`);
  if (stray.length > 0) console.error(`left behind on the libvirtd: ${stray.join(", ")}`);
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
}
