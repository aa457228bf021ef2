/**
 * A TEST STAND-IN FOR THE KUBELET. No VM can run a kubelet under plain QEMU on these machines, so when a test VM
 * (the busybox guest) checks in, this agent does, from the host, what that VM's kubelet would do with what premiscale
 * gave the VM, and nothing else:
 *
 *   1. read the VM's own cloud-init seed (its `-seed.iso` volume in the libvirt pool) and the kubeadm
 *      JoinConfiguration premiscale wrote into its user-data (token, API server endpoint, CA pin, node name,
 *      kubelet --provider-id / --node-labels / --max-pods, taints);
 *   2. kubeadm's token discovery: fetch kube-public/cluster-info anonymously, check its JWS signature with the token
 *      (HS256, key = the token secret) and the CA against the pinned hash;
 *   3. the kubelet's TLS bootstrap with the VM's bootstrap token: a CSR for system:node:<name> (signer
 *      kubernetes.io/kube-apiserver-client-kubelet), approved and signed by kube-controller-manager;
 *   4. register the Node with that client certificate: the name, labels (the group's, which include KWOK's
 *      `type=kwok`, so KWOK plays the kubelet from here on: the Node becomes Ready), providerID, taints and the VM's
 *      vCPUs and memory as capacity.
 *
 * It also records who the API server says the token is (SelfSubjectReview), so tests can check that the token is a
 * real bootstrap token. `setUpLikeKubeadm` first creates what `kubeadm init` leaves for joins (cluster-info and the
 * bootstrap RBAC), which the fixture's hand-started cluster lacks.
 */
import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { caCertHashOf } from "./kube-pki.js";
import type { KubeCluster } from "./kube-cluster.js";

/** kubeadm's node bootstrap token group, and what `kubeadm init` binds to it. */
export const KUBEADM_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token";

/** What the agent did for one VM. */
export interface AgentJoin {
  uuid: string;
  vm: string;
  nodeName: string;
  providerID: string;
  tokenId: string;
  /** SelfSubjectReview of the VM's token, before the join. */
  tokenUser: { username: string; groups: string[] };
  /** The token and its Secret's expiration, for tests that prove expiry (never logged). */
  token: string;
  at: string;
}

function run(cmd: string, args: string[], o: { input?: string; timeoutMs?: number; encoding?: "utf8" | "buffer" } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: o.timeoutMs ?? 30_000, maxBuffer: 16 << 20 }, (e, out, err) =>
      e ? reject(new Error(`${cmd} ${args.join(" ")}: ${String(err).trim() || e.message}`)) : resolve(String(out)),
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

type Tls = { ca?: string; cert?: string; key?: string; token?: string; insecure?: boolean };
/** One HTTPS JSON call; resolves status and parsed body. */
export function apiCall(base: string, method: string, path: string, tls: Tls, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, base),
      {
        method,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        rejectUnauthorized: !tls.insecure,
        agent: false,
        timeout: 15_000,
        headers: { accept: "application/json", ...(tls.token ? { authorization: `Bearer ${tls.token}` } : {}), ...(payload ? { "content-type": "application/json" } : {}) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** Who the API server says a bearer token is (401 → null). */
export async function whoIs(apiUrl: string, caPem: string, token: string): Promise<{ username: string; groups: string[] } | null> {
  const r = await apiCall(apiUrl, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", { ca: caPem, token }, { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" });
  if (r.status === 401) return null;
  if (r.status !== 201) throw new Error(`SelfSubjectReview: HTTP ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.status.userInfo;
}

/**
 * What `kubeadm init` creates for node joins: kube-public/cluster-info (the API server and CA, signed per token by
 * the bootstrapsigner controller) readable by anonymous users, and the bindings that let kubeadm's token group
 * create CSRs and have them approved automatically. Idempotent.
 */
export async function setUpLikeKubeadm(cluster: KubeCluster): Promise<void> {
  const b64 = Buffer.from(cluster.caCertPem).toString("base64");
  const objects: [string, unknown][] = [
    [
      "/api/v1/namespaces/kube-public/configmaps",
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cluster-info", namespace: "kube-public" }, data: { kubeconfig: `apiVersion: v1\nkind: Config\nclusters:\n- name: ""\n  cluster:\n    certificate-authority-data: ${b64}\n    server: ${cluster.apiUrl}\ncontexts: []\ncurrent-context: ""\npreferences: {}\nusers: []\n` } },
    ],
    [
      "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/roles",
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "kubeadm:bootstrap-signer-clusterinfo", namespace: "kube-public" }, rules: [{ apiGroups: [""], resources: ["configmaps"], resourceNames: ["cluster-info"], verbs: ["get"] }] },
    ],
    [
      "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/rolebindings",
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", metadata: { name: "kubeadm:bootstrap-signer-clusterinfo", namespace: "kube-public" }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "kubeadm:bootstrap-signer-clusterinfo" }, subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "system:anonymous" }] },
    ],
    [
      "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "kubeadm:kubelet-bootstrap" }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:node-bootstrapper" }, subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: KUBEADM_TOKEN_GROUP }] },
    ],
    [
      "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "kubeadm:node-autoapprove-bootstrap" }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:certificates.k8s.io:certificatesigningrequests:nodeclient" }, subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: KUBEADM_TOKEN_GROUP }] },
    ],
  ];
  for (const [path, body] of objects) {
    const r = await cluster.request("POST", path, { body });
    if (r.status !== 201 && r.status !== 409) throw new Error(`POST ${path}: ${r.status} ${r.text}`);
  }
}

/** kubeadm's discovery: the cluster-info kubeconfig, trusted only if signed with the token and its CA matches the pin. */
async function discover(endpoint: string, tokenId: string, tokenSecret: string, pins: string[]): Promise<{ server: string; caPem: string } | null> {
  const base = `https://${endpoint}`;
  const r = await apiCall(base, "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info", { insecure: true });
  if (r.status !== 200) throw new Error(`discovery: cluster-info: HTTP ${r.status}`);
  const kubeconfig: string = r.body.data.kubeconfig;
  const jws: string | undefined = r.body.data[`jws-kubeconfig-${tokenId}`];
  if (!jws) return null; // the bootstrapsigner controller has not signed for this token yet: try again
  const [header, , signature] = jws.split(".");
  const expected = createHmac("sha256", tokenSecret).update(`${header}.${Buffer.from(kubeconfig).toString("base64url")}`).digest("base64url");
  if (expected !== signature) throw new Error("discovery: cluster-info's signature does not match the token");
  const doc = parseYaml(kubeconfig) as { clusters: { cluster: { server: string; "certificate-authority-data": string } }[] };
  const caPem = Buffer.from(doc.clusters[0]!.cluster["certificate-authority-data"], "base64").toString("utf8");
  if (!pins.includes(caCertHashOf(caPem))) throw new Error(`discovery: the cluster CA ${caCertHashOf(caPem)} is not pinned (${pins.join(", ")})`);
  return { server: doc.clusters[0]!.cluster.server, caPem };
}

interface Join {
  discovery: { bootstrapToken: { apiServerEndpoint: string; token: string; caCertHashes: string[] } };
  nodeRegistration: { name: string; taints?: { key: string; value?: string; effect: string }[]; kubeletExtraArgs: { name: string; value: string }[] };
}

/** Options of the agent. */
export interface KubeletAgentOptions {
  cluster: KubeCluster;
  /** The state directory of the premiscale under test (check-ins and instances are read there). */
  stateDir: string;
  /** @default "qemu:///system" */
  libvirtUri?: string;
  /** @default "default" */
  pool?: string;
  /** VMs the agent plays dead for: their kubelet never registers (a VM that never joins). */
  refuse?: (vm: { uuid: string; name: string; group: string }) => boolean;
  /** @default 500 */
  pollMs?: number;
}

/** A running agent. */
export interface KubeletAgent {
  /** Joins done, by instance uuid. */
  readonly joins: Map<string, AgentJoin>;
  /** VMs that checked in and that it refused, by uuid, with their token (for expiry tests). */
  readonly refused: Map<string, { vm: string; token: string; tokenUser: { username: string; groups: string[] } | null }>;
  /** Failures (a join that failed is retried on the next poll). */
  readonly errors: string[];
  stop(): Promise<void>;
}

/** Starts the agent; it polls the state's check-in ledger. */
export function startKubeletAgent(o: KubeletAgentOptions): KubeletAgent {
  const joins = new Map<string, AgentJoin>();
  const refused = new Map<string, { vm: string; token: string; tokenUser: { username: string; groups: string[] } | null }>();
  const errors: string[] = [];
  const busy = new Set<string>();
  const uri = o.libvirtUri ?? "qemu:///system";
  const pool = o.pool ?? "default";
  let stopped = false;

  const instance = async (uuid: string) => {
    const dir = join(o.stateDir, "groups");
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      const g = JSON.parse(await readFile(join(dir, f), "utf8")) as { name: string; instances: { uuid: string; name: string; vcpus?: number; memoryMiB?: number }[] };
      const i = g.instances.find((x) => x.uuid === uuid);
      if (i) return { ...i, group: g.name };
    }
    return null;
  };

  const joinOne = async (uuid: string) => {
    const vm = await instance(uuid);
    if (!vm) return; // not recorded yet (state is written right after the check-in's apply step): next poll
    const seed = (await run("virsh", ["-c", uri, "vol-path", "--pool", pool, `${vm.name}-seed.iso`])).trim();
    const userData = await run("isoinfo", ["-R", "-i", seed, "-x", "/user-data"]);
    const files = ((parseYaml(userData) as { write_files?: { path: string; content: string }[] }).write_files ?? []);
    const file = files.find((f) => f.path === "/etc/premiscale/kubeadm-join.yaml");
    if (!file) throw new Error(`${vm.name}: its user-data has no kubeadm JoinConfiguration`);
    const jc = parseYaml(file.content) as Join;
    const token = jc.discovery.bootstrapToken.token;
    const [tokenId, tokenSecret] = token.split(".") as [string, string];
    const arg = (name: string) => jc.nodeRegistration.kubeletExtraArgs.find((a) => a.name === name)?.value;
    const providerID = arg("provider-id") ?? "";
    const found = await discover(jc.discovery.bootstrapToken.apiServerEndpoint, tokenId, tokenSecret, jc.discovery.bootstrapToken.caCertHashes);
    if (!found) return;
    const { server, caPem } = found;
    const tokenUser = await whoIs(server, caPem, token);
    if (o.refuse?.(vm)) {
      refused.set(uuid, { vm: vm.name, token, tokenUser });
      return;
    }
    if (!tokenUser) throw new Error(`${vm.name}: the API server does not accept its bootstrap token`);

    // TLS bootstrap, as the kubelet does it with a bootstrap kubeconfig.
    const tmp = await mkdtemp(join(tmpdir(), "premiscale-kubelet-"));
    try {
      const nodeName = jc.nodeRegistration.name;
      await run("openssl", ["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", join(tmp, "key.pem")]);
      const csr = await run("openssl", ["req", "-new", "-key", join(tmp, "key.pem"), "-subj", `/O=system:nodes/CN=system:node:${nodeName}`]);
      const name = `node-csr-${uuid.slice(0, 8)}-${Date.now().toString(36)}`;
      const created = await apiCall(server, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", { ca: caPem, token }, {
        apiVersion: "certificates.k8s.io/v1",
        kind: "CertificateSigningRequest",
        metadata: { name },
        spec: { request: Buffer.from(csr).toString("base64"), signerName: "kubernetes.io/kube-apiserver-client-kubelet", usages: ["digital signature", "client auth"] },
      });
      if (created.status !== 201) throw new Error(`${vm.name}: CSR: HTTP ${created.status}: ${JSON.stringify(created.body)}`);
      let cert = "";
      for (let i = 0; i < 120 && !cert; i++) {
        const r = await apiCall(server, "GET", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`, { ca: caPem, token });
        if (r.body?.status?.certificate) cert = Buffer.from(r.body.status.certificate, "base64").toString("utf8");
        else await new Promise((res) => setTimeout(res, 250));
      }
      if (!cert) throw new Error(`${vm.name}: CSR ${name} was not approved and signed within 30 s`);
      const key = await readFile(join(tmp, "key.pem"), "utf8");
      await writeFile(join(tmp, "cert.pem"), cert);
      const labels = Object.fromEntries((arg("node-labels") ?? "").split(",").filter(Boolean).map((kv) => kv.split("=") as [string, string]));
      const capacity = { cpu: String(vm.vcpus ?? 1), memory: `${vm.memoryMiB ?? 128}Mi`, pods: arg("max-pods") ?? "110" };
      const node = await apiCall(server, "POST", "/api/v1/nodes", { ca: caPem, cert, key }, {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: nodeName, labels: { ...labels, "kubernetes.io/hostname": nodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" } },
        spec: { providerID, ...(jc.nodeRegistration.taints?.length ? { taints: jc.nodeRegistration.taints } : {}) },
        status: { capacity, allocatable: capacity },
      });
      if (node.status !== 201) throw new Error(`${vm.name}: registering Node ${nodeName}: HTTP ${node.status}: ${JSON.stringify(node.body)}`);
      joins.set(uuid, { uuid, vm: vm.name, nodeName, providerID, tokenId, tokenUser, token, at: new Date().toISOString() });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  };

  const tick = async () => {
    const dir = join(o.stateDir, ".premiscale", "check-ins");
    for (const f of (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith(".json"))) {
      const uuid = f.slice(0, -5);
      if (joins.has(uuid) || refused.has(uuid) || busy.has(uuid)) continue;
      busy.add(uuid);
      joinOne(uuid)
        .catch((e: Error) => errors.push(`${uuid}: ${e.message}`))
        .finally(() => busy.delete(uuid));
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await tick().catch((e: Error) => errors.push(e.message));
      await new Promise((res) => setTimeout(res, o.pollMs ?? 500));
    }
  })();
  return {
    joins,
    refused,
    errors,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
