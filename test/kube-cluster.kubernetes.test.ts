import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { caCertHashOf } from "./support/kube-pki.js";
import { KWOK_NODE_LABEL, kubeBinDir, startKubeCluster, waitFor, type KubeCluster } from "./support/kube-cluster.js";
import { freePort } from "./support/serve.js";

// The facts issues 11 and 12 build on, checked against the real components that test/kubernetes/build-components.sh
// builds (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK as the kubelets, cluster-autoscaler):
// one cluster for the file, one fact per test, every wait a poll of real API state with a deadline.

const SCRIPT = readFileSync(resolve(import.meta.dirname, "kubernetes/build-components.sh"), "utf8");
const pinned = (name: string) => SCRIPT.match(new RegExp(`^${name}=(\\S+)`, "m"))?.[1] ?? "unknown";
const KUBERNETES_VERSION = pinned("KUBERNETES_VERSION");
const AUTOSCALER_VERSION = pinned("AUTOSCALER_VERSION");
const CA_BIN = join(kubeBinDir(), "cluster-autoscaler");

const NODE = "kwok-node-1";
const PROVIDER_ID = "premiscale://web/4f1c2d9e-0000-4000-8000-000000000001";
const NS = "default";
const WAIT = 60_000;

let cluster: KubeCluster;

type Condition = { type: string; status: string; reason?: string; message?: string };
const condition = (obj: { status?: { conditions?: Condition[] } }, type: string) => obj.status?.conditions?.find((c) => c.type === type);

async function create(path: string, body: unknown): Promise<void> {
  const r = await cluster.request("POST", path, { body });
  expect(r.status, `POST ${path}: ${r.text}`).toBe(201);
}

function bootstrapToken(o: { expiration: Date; groups?: string; signing?: boolean }) {
  const id = randomBytes(3).toString("hex");
  const secret = randomBytes(8).toString("hex");
  const stringData: Record<string, string> = {
    "token-id": id,
    "token-secret": secret,
    expiration: o.expiration.toISOString().replace(/\.\d{3}Z$/, "Z"),
    "usage-bootstrap-authentication": "true",
  };
  if (o.groups) stringData["auth-extra-groups"] = o.groups;
  if (o.signing) stringData["usage-bootstrap-signing"] = "true";
  return { id, token: `${id}.${secret}`, secret: { apiVersion: "v1", kind: "Secret", type: "bootstrap.kubernetes.io/token", metadata: { name: `bootstrap-token-${id}`, namespace: "kube-system" }, stringData } };
}

const selfSubjectReview = (token: string) =>
  cluster.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", { token, body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });

const evict = (pod: string) =>
  cluster.request("POST", `/api/v1/namespaces/${NS}/pods/${pod}/eviction`, { body: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name: pod, namespace: NS } } });

async function runningPods(app: string): Promise<string[]> {
  const r = await cluster.request("GET", `/api/v1/namespaces/${NS}/pods?labelSelector=app%3D${app}`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return r.body.items.filter((p: any) => p.status?.phase === "Running" && !p.metadata.deletionTimestamp).map((p: any) => p.metadata.name);
}

function deployment(name: string, replicas: number) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          nodeSelector: { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value },
          // No image is ever pulled: KWOK only moves the pod through its phases.
          containers: [{ name: "app", image: "registry.invalid/premiscale/app:test", resources: { requests: { cpu: "100m", memory: "64Mi" } } }],
        },
      },
    },
  };
}

const strayProcesses = (dir: string) =>
  readdirSync("/proc")
    .filter((pid) => /^\d+$/.test(pid))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir);
      } catch {
        return false;
      }
    });

describe("starting a test cluster", () => {
  it("fails with the build script's name when the binaries are not built", async () => {
    const empty = mkdtempSync(join(tmpdir(), "premiscale-no-kube-bin-"));
    const saved = process.env.PREMISCALE_KUBE_BIN;
    process.env.PREMISCALE_KUBE_BIN = empty;
    try {
      await expect(startKubeCluster()).rejects.toThrow(/etcd is not built .*bash test\/kubernetes\/build-components\.sh/);
    } finally {
      if (saved === undefined) delete process.env.PREMISCALE_KUBE_BIN;
      else process.env.PREMISCALE_KUBE_BIN = saved;
      rmSync(empty, { recursive: true });
    }
  });

  it("names the component that failed and shows its log, and leaves nothing running", async () => {
    const before = new Set(readdirSync(tmpdir()).filter((d) => d.startsWith("premiscale-kube-")));
    // Other test clusters may be running on this machine (another checkout's tests): only this attempt's count.
    const running = new Set(strayProcesses("/premiscale-kube-"));
    const err = await startKubeCluster({ extraFlags: { "kube-apiserver": ["--no-such-flag"] } }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^kube-apiserver failed to start: .*kube-apiserver exited \(code 1\)/);
    expect(err?.message).toContain("unknown flag: --no-such-flag");
    const left = readdirSync(tmpdir()).filter((d) => d.startsWith("premiscale-kube-") && !before.has(d));
    expect(left).toEqual([]);
    expect(strayProcesses("/premiscale-kube-").filter((p) => !running.has(p))).toEqual([]);
  });
});

describe("the test cluster", () => {
  beforeAll(async () => {
    cluster = await startKubeCluster();
    console.info(`test cluster ready in ${cluster.startTimings.total} ms: ${JSON.stringify(cluster.startTimings)}`);
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it("reports the Kubernetes release the build script pins on /version", async () => {
    const r = await cluster.request("GET", "/version");
    expect(r.status).toBe(200);
    const [, minor] = /^v1\.(\d+)\./.exec(KUBERNETES_VERSION)!;
    expect(r.body).toMatchObject({ gitVersion: KUBERNETES_VERSION, major: "1", minor, gitTreeState: "clean" });
  });

  it("publishes the CA whose SubjectPublicKeyInfo hash the fixture reports, as openssl computes it", async () => {
    const cm = await waitFor(async () => {
      const r = await cluster.request("GET", `/api/v1/namespaces/${NS}/configmaps/kube-root-ca.crt`);
      return r.status === 200 ? r.body : undefined;
    }, { timeoutMs: WAIT, what: "the root CA ConfigMap from kube-controller-manager" });
    expect(caCertHashOf(cm.data["ca.crt"])).toBe(cluster.caCertHash);
    const der = execFileSync("sh", ["-c", "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum"], { input: cluster.caCertPem, encoding: "utf8" });
    expect(cluster.caCertHash).toBe(`sha256:${der.split(" ")[0]}`);
  });

  it("makes a KWOK-managed Node with a providerID Ready", async () => {
    await create("/api/v1/nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: NODE, labels: { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value, "kubernetes.io/hostname": NODE } },
      spec: { providerID: PROVIDER_ID },
      status: { capacity: { cpu: "4", memory: "8Gi", pods: "110" }, allocatable: { cpu: "4", memory: "8Gi", pods: "110" } },
    });
    const node = await waitFor(async () => {
      const r = await cluster.request("GET", `/api/v1/nodes/${NODE}`);
      return condition(r.body, "Ready")?.status === "True" ? r.body : undefined;
    }, { timeoutMs: WAIT, what: `node ${NODE} Ready` });
    expect(node.spec.providerID).toBe(PROVIDER_ID);
    expect(node.status.allocatable).toMatchObject({ cpu: "4", memory: "8Gi", pods: "110" });
  });

  it("schedules a Deployment's pods onto the KWOK node, where they run", async () => {
    await create(`/apis/apps/v1/namespaces/${NS}/deployments`, deployment("web", 2));
    await waitFor(async () => {
      const r = await cluster.request("GET", `/apis/apps/v1/namespaces/${NS}/deployments/web`);
      return r.body.status?.readyReplicas === 2;
    }, { timeoutMs: WAIT, what: "deployment web: 2 ready replicas" });
    const pods = (await cluster.request("GET", `/api/v1/namespaces/${NS}/pods?labelSelector=app%3Dweb`)).body.items;
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(p.spec.nodeName).toBe(NODE);
      expect(p.status.phase).toBe("Running");
      expect(condition(p, "Ready")?.status).toBe("True");
    }
  });

  it("marks a pod that fits on no node PodScheduled=False, reason Unschedulable", async () => {
    await create(`/api/v1/namespaces/${NS}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "too-big", namespace: NS },
      spec: { containers: [{ name: "app", image: "registry.invalid/premiscale/app:test", resources: { requests: { cpu: "64" } } }] },
    });
    const scheduled = await waitFor(async () => {
      const r = await cluster.request("GET", `/api/v1/namespaces/${NS}/pods/too-big`);
      return condition(r.body, "PodScheduled");
    }, { timeoutMs: WAIT, what: "pod too-big: a PodScheduled condition" });
    expect(scheduled).toMatchObject({ status: "False", reason: "Unschedulable" });
    expect(scheduled.message).toMatch(/Insufficient cpu/);
    expect((await cluster.request("DELETE", `/api/v1/namespaces/${NS}/pods/too-big`)).status).toBe(200);
  });

  it("refuses an eviction with 429 while the PDB allows no disruption, and accepts it once it allows one", async () => {
    await create(`/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets`, {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name: "web", namespace: NS },
      spec: { minAvailable: 2, selector: { matchLabels: { app: "web" } } },
    });
    const pdbStatus = (allowed: number) =>
      waitFor(async () => {
        const r = await cluster.request("GET", `/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets/web`);
        const s = r.body.status;
        return s?.observedGeneration === r.body.metadata.generation && s.currentHealthy === 2 && s.disruptionsAllowed === allowed ? s : undefined;
      }, { timeoutMs: WAIT, what: `PDB web: disruptionsAllowed ${allowed} from the disruption controller` });
    await pdbStatus(0);
    const [victim] = await runningPods("web");
    const refused = await evict(victim!);
    expect(refused.status, refused.text).toBe(429);
    expect(refused.body.message).toMatch(/disruption budget/);

    const patched = await cluster.request("PATCH", `/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets/web`, { body: { spec: { minAvailable: 1 } } });
    expect(patched.status, patched.text).toBe(200);
    await pdbStatus(1);
    const accepted = await evict(victim!);
    expect(accepted.status, accepted.text).toBe(201);
    await waitFor(async () => (await cluster.request("GET", `/api/v1/namespaces/${NS}/pods/${victim}`)).status === 404, {
      timeoutMs: WAIT,
      what: `evicted pod ${victim} deleted (KWOK finishes the deletion)`,
    });
    // The Deployment replaces it on the same node.
    await waitFor(async () => (await runningPods("web")).length === 2, { timeoutMs: WAIT, what: "deployment web back to 2 running pods" });
  });

  it("authenticates a bootstrap token as system:bootstrap:<id> with its extra groups", async () => {
    const t = bootstrapToken({ expiration: new Date(Date.now() + 3_600_000), groups: "system:bootstrappers:premiscale:web" });
    await create("/api/v1/namespaces/kube-system/secrets", t.secret);
    const r = await selfSubjectReview(t.token);
    expect(r.status, r.text).toBe(201);
    expect(r.body.status.userInfo.username).toBe(`system:bootstrap:${t.id}`);
    expect(r.body.status.userInfo.groups).toEqual(expect.arrayContaining(["system:bootstrappers", "system:bootstrappers:premiscale:web", "system:authenticated"]));
    const wrong = await selfSubjectReview(`${t.id}.${"0".repeat(16)}`);
    expect(wrong.status).toBe(401);
  });

  it("refuses an expired bootstrap token, and the tokencleaner deletes its Secret", async () => {
    const t = bootstrapToken({ expiration: new Date(Date.now() - 60_000) });
    await create("/api/v1/namespaces/kube-system/secrets", t.secret);
    const r = await selfSubjectReview(t.token);
    expect(r.status, r.text).toBe(401);
    await waitFor(async () => (await cluster.request("GET", `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${t.id}`)).status === 404, {
      timeoutMs: WAIT,
      what: "the tokencleaner controller deleting the expired token's Secret",
    });
  });

  it("signs kube-public/cluster-info for a signing bootstrap token (bootstrapsigner)", async () => {
    const t = bootstrapToken({ expiration: new Date(Date.now() + 3_600_000), signing: true });
    await create("/api/v1/namespaces/kube-system/secrets", t.secret);
    await create("/api/v1/namespaces/kube-public/configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "cluster-info", namespace: "kube-public" },
      data: { kubeconfig: `apiVersion: v1\nkind: Config\nclusters:\n- name: ""\n  cluster:\n    server: ${cluster.apiUrl}\n` },
    });
    const jws = await waitFor(async () => {
      const r = await cluster.request("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info");
      return r.body.data?.[`jws-kubeconfig-${t.id}`] as string | undefined;
    }, { timeoutMs: WAIT, what: `cluster-info signed for token ${t.id}` });
    expect(jws).toMatch(/^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+$/); // a detached JWS
  });

  // cluster-autoscaler has no --version flag ("unknown flag: --version", exit 2): it logs its version at start.
  it.skipIf(!existsSync(CA_BIN))("runs cluster-autoscaler, which logs its version and starts against the cluster", async () => {
    const help = spawnSync(CA_BIN, ["--help"], { encoding: "utf8", timeout: 30_000 });
    expect(help.status).toBe(0);
    expect(help.stderr).toContain("--cloud-provider"); // pflag prints usage on stderr
    // Nothing listens on this port: CA starts, reads the cluster and fails only its cloud provider calls.
    const cloudConfig = join(cluster.dir, "cloud-config.yaml");
    await writeFile(cloudConfig, `address: 127.0.0.1:${await freePort()}\ngrpc_timeout: 2s\n`);
    const ca = await cluster.startClusterAutoscaler({ cloudConfigPath: cloudConfig, flags: ["--scan-interval=2s"] });
    await waitFor(() => ca.logs().includes(`Cluster Autoscaler ${AUTOSCALER_VERSION}`), { timeoutMs: WAIT, what: "cluster-autoscaler's start-up line" });
    // Its informers synced against the API server, and its externalgrpc provider calls out (and finds no server).
    await waitFor(() => /Error on gRPC call NodeGroups: .*connection refused/.test(ca.logs()), { timeoutMs: WAIT, what: "cluster-autoscaler calling NodeGroups" });
    expect(ca.logs()).toContain("Building externalgrpc cloud provider");
    await ca.stop();
    expect(ca.logs()).toContain("Cleaned up, exiting");
  });

  it("stops every component and removes its directory", async () => {
    const pids = Object.values(cluster.pids);
    const dir = cluster.dir;
    const t = performance.now();
    await cluster.stop();
    console.info(`test cluster stopped in ${Math.round(performance.now() - t)} ms`);
    expect(pids.filter((pid) => existsSync(`/proc/${pid}`))).toEqual([]);
    if (process.env.PREMISCALE_KEEP_KUBE_DIR !== "1") expect(existsSync(dir)).toBe(false);
  });
});
