import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { KUBE_API_PERMISSIONS, type KubeApiPermission } from "../kubernetes/api-permissions.js";
import { openKubeApi } from "../kubernetes/kube-api.js";
import { leaderEndpoint } from "../kubernetes/native/leader-endpoint.js";
import { parseConfig } from "../pipeline/config.js";
import { startKubeCluster, waitFor, type KubeCluster } from "./support/kube-cluster.js";

// The Helm chart (deploy/helm/premiscale), rendered by a real Helm built from the Go module proxy
// (test/kubernetes/build-helm.sh) and applied to the real test API server (server-side apply with strict field
// validation), whose answers are the checks: every object accepted, the pods admitted under the `restricted` Pod
// Security level, the RBAC rules enforced by the real authorizer for exactly the calls kubernetes/api-permissions.ts
// lists, and the in-cluster kubeconfig the chart writes working through premiscale's own API client.

const CHART = resolve(import.meta.dirname, "../deploy/helm/premiscale");
const HELM = process.env.PREMISCALE_HELM ?? join(process.env.PREMISCALE_KUBE_CACHE ?? "/var/cache/premiscale/kubernetes", "helm-current", "bin", "helm");
const KUBE_VERSION = "1.36.3"; // test/kubernetes/build-components.sh's control plane
const FIELD_MANAGER = "premiscale-helm-test";
const WAIT = 60_000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

let work: string;

function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  if (!existsSync(HELM)) throw new Error(`helm is not built (${HELM} is missing): run bash test/kubernetes/build-helm.sh`);
  const r = spawnSync(HELM, args, { encoding: "utf8", timeout: 60_000, env: { ...process.env, HELM_CACHE_HOME: join(work, "helm-cache"), HELM_CONFIG_HOME: join(work, "helm-config"), HELM_DATA_HOME: join(work, "helm-data") } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` of the chart as release `release` in `namespace` with `values`; the rendered objects. */
function render(release: string, namespace: string, values: object = {}): Obj[] {
  const file = join(work, `${release}-values.yaml`);
  writeFileSync(file, stringify(values));
  const r = helm(["template", release, CHART, "--namespace", namespace, "--kube-version", KUBE_VERSION, "--api-versions", "monitoring.coreos.com/v1", "-f", file]);
  expect(r.stderr, "helm template's stderr").toBe("");
  expect(r.status).toBe(0);
  // YAML 1.1, as Helm reads what it renders before sending it (sigs.k8s.io/yaml): 0440 is octal there.
  return parseAllDocuments(r.stdout, { version: "1.1" })
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

const find = (objs: Obj[], kind: string, name?: string) => objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
const one = (objs: Obj[], kind: string, name?: string) => {
  const found = find(objs, kind, name);
  expect(found, `exactly one ${kind}${name ? ` ${name}` : ""}`).toHaveLength(1);
  return found[0]!;
};

/** A config with a kubernetes block: the node-group mode, whose calls the chart's RBAC is for. */
const KUBE_CONFIG = {
  version: "v1alpha1",
  hosts: [{ name: "kvm1", kind: "libvirt", uri: "qemu+ssh://premiscale@kvm1.example.net/system", pool: "default" }],
  groups: [
    {
      name: "workers",
      min: 0,
      max: 5,
      hosts: ["kvm1"],
      template: { vcpus: 2, memoryMiB: 4096, disk: { baseImage: "debian-12-genericcloud-amd64.qcow2", sizeGiB: 20 }, nic: { type: "bridge", source: "br0" } },
      kubernetes: { join: "kubeadm" },
    },
  ],
  server: { advertiseUrl: "http://premiscale.example.net:8970" },
  kubernetes: { apiServerEndpoint: "10.0.0.10:6443" },
};

/** The value combinations applied to the server, each as its own release in its own namespace. */
const COMBINATIONS: { release: string; what: string; values: object }[] = [
  { release: "defaults", what: "default values", values: {} },
  {
    release: "nodegroups",
    what: "a kubernetes block, the ServiceMonitor, SSH keys, externalgrpc TLS, a libvirt TLS Secret, a Proxmox token from a Secret",
    values: {
      config: KUBE_CONFIG,
      serviceMonitor: { enabled: true, labels: { release: "prometheus" } },
      sshSecret: "premiscale-ssh",
      externalGrpcTlsSecret: "premiscale-externalgrpc",
      extraSecretMounts: [{ name: "libvirt-pki", secretName: "libvirt-client", mountPath: "/etc/pki/libvirt" }],
      env: [{ name: "PVE_TOKEN", valueFrom: { secretKeyRef: { name: "pve", key: "token" } } }],
      service: { type: "NodePort" },
    },
  },
  {
    release: "single",
    what: "one replica, no leader election, no persistence, a kubeconfig Secret, no PDB",
    values: { replicaCount: 1, leaderElection: { enabled: false }, persistence: { enabled: false }, config: KUBE_CONFIG, kubeconfig: { existingSecret: "other-cluster" } },
  },
];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "premiscale-helm-"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the Helm chart, rendered", () => {
  it("passes helm lint --strict with default values and with every combination", () => {
    for (const c of COMBINATIONS) {
      const file = join(work, `lint-${c.release}.yaml`);
      writeFileSync(file, stringify(c.values));
      const r = helm(["lint", "--strict", CHART, "-f", file]);
      expect(r.status, `${c.what}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it("renders serve with its config, state volume, probes and a read-only root by default", () => {
    const objs = render("r", "ns");
    expect(objs.map((o) => o.kind).sort()).toEqual(["ConfigMap", "Deployment", "PersistentVolumeClaim", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount"]);
    const d = one(objs, "Deployment");
    expect(d.spec.replicas).toBe(2);
    const c = d.spec.template.spec.containers[0];
    expect([...c.command, ...c.args]).toEqual(["premiscale", "serve", "--log-level", "info"]);
    expect(c.ports).toEqual([{ name: "http", containerPort: 8970, protocol: "TCP" }]);
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(c.readinessProbe.httpGet).toEqual({ path: "/ready", port: "http" });
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    expect(c.env).toEqual(expect.arrayContaining([{ name: "PREMISCALE_CONFIG_PATH", value: "/etc/premiscale/config/premiscale.yaml" }]));
    expect(d.spec.template.spec.volumes.find((v: { name: string }) => v.name === "state").persistentVolumeClaim).toEqual({ claimName: "r-premiscale-state" });
    // Uninstalling keeps state: it is the only record of the VMs premiscale made.
    expect(one(objs, "PersistentVolumeClaim").metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    // No kubernetes block: premiscale makes no API call but the Lease's, so no node or secret rights.
    expect(find(objs, "ClusterRole")).toEqual([]);
    expect(one(objs, "Service").spec.ports).toEqual([{ name: "http", port: 8970, targetPort: "http", protocol: "TCP" }]);
  });

  it("writes a config that premiscale's own loader accepts, with the pod's paths filled in", () => {
    for (const c of COMBINATIONS) {
      const cm = one(render(c.release, "ns", c.values), "ConfigMap");
      const text = cm.data["premiscale.yaml"] as string;
      const config = parseConfig(text, "/etc/premiscale/config/premiscale.yaml", {}, () => "", { checkEnv: false });
      expect(config.state.path, c.what).toBe("/var/lib/premiscale/state");
      expect(config.server.port).toBe(8970);
      if (c.release === "nodegroups") {
        // The chart's leaderElection values become premiscale's own switch, on the Lease its Role allows.
        expect(config.kubernetes?.leaderElection).toMatchObject({ enabled: true, leaseName: "premiscale", namespace: "ns" });
        // Only the leader listens: it writes the -leader Service's EndpointSlice with the pod's IP.
        expect(config.kubernetes?.leaderElection?.endpoint).toEqual({ service: "nodegroups-premiscale-leader", addressEnv: "POD_IP", portName: "externalgrpc" });
        expect(config.kubernetes).toMatchObject({ kubeconfig: "/etc/premiscale/kubeconfig/kubeconfig", externalGrpc: { host: "0.0.0.0", port: 8972, tls: { cert: "/etc/premiscale/externalgrpc/tls.crt", key: "/etc/premiscale/externalgrpc/tls.key", clientCa: "/etc/premiscale/externalgrpc/ca.crt" } } });
      }
    }
  });

  it("replaces the example config with the user's: nothing of the example is left but what the chart fills in", () => {
    // Helm merges the maps of the user's values with the defaults: a map in the example would leak into every config.
    const { server: _server, ...noServer } = KUBE_CONFIG;
    const cm = one(render("r", "ns", { config: noServer }), "ConfigMap");
    expect(parseAllDocuments(cm.data["premiscale.yaml"] as string)[0]!.toJS()).toEqual({
      ...noServer,
      state: { path: "/var/lib/premiscale/state" },
      server: { listen: "0.0.0.0:8970" },
      kubernetes: { ...KUBE_CONFIG.kubernetes, kubeconfig: "/etc/premiscale/kubeconfig/kubeconfig", leaderElection: { enabled: true, leaseName: "premiscale", namespace: "ns" } },
    });
  });

  it("turns premiscale's leader election on with the chart's, and lets the config's own block win", () => {
    const election = (values: object) =>
      (parseAllDocuments(one(render("r", "ns", values), "ConfigMap").data["premiscale.yaml"] as string)[0]!.toJS() as { kubernetes?: { leaderElection?: unknown } }).kubernetes?.leaderElection;
    expect(election({ config: KUBE_CONFIG, leaderElection: { leaseName: "my-lease" } })).toEqual({ enabled: true, leaseName: "my-lease", namespace: "ns" });
    expect(election({ config: KUBE_CONFIG, leaderElection: { enabled: false } })).toBeUndefined();
    const own = { ...KUBE_CONFIG, kubernetes: { ...KUBE_CONFIG.kubernetes, leaderElection: { enabled: false } } };
    expect(election({ config: own })).toEqual({ enabled: false, leaseName: "premiscale", namespace: "ns" });
    expect(election({})).toBeUndefined();
  });

  it("refuses values the chart does not know, naming the key (values.schema.json)", () => {
    const r = helm(["template", "r", CHART, "--set", "sshSecrets=premiscale-ssh", "--set", "replicaCount=two"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("additional properties 'sshSecrets' not allowed");
    expect(r.stderr).toContain("at '/replicaCount': got string, want integer");
  });

  it("rolls the pods when the config changes (a checksum of the ConfigMap on the pod template)", () => {
    const sum = (values: object) => one(render("r", "ns", values), "Deployment").spec.template.metadata.annotations["checksum/config"];
    expect(sum({})).toMatch(/^[0-9a-f]{64}$/);
    expect(sum({ config: { ...KUBE_CONFIG, server: { advertiseUrl: "http://other:8970" } } })).not.toBe(sum({ config: KUBE_CONFIG }));
  });

  it("exposes the externalgrpc port only when it listens beyond loopback, and with leader election only through the leader's Service", () => {
    const services = (values: object) =>
      Object.fromEntries(find(render("r", "ns", values), "Service").map((o) => [o.metadata.name, o.spec.ports.map((p: { name: string; port: number }) => `${p.name}:${p.port}`)]));
    expect(services({ config: KUBE_CONFIG })).toEqual({ "r-premiscale": ["http:8970"] });
    expect(services({ config: KUBE_CONFIG, externalGrpcTlsSecret: "t", leaderElection: { enabled: false } })).toEqual({ "r-premiscale": ["http:8970", "externalgrpc:8972"] });
    expect(services({ config: { ...KUBE_CONFIG, server: { listen: "0.0.0.0:9000" } } })).toEqual({ "r-premiscale": ["http:9000"] });
    // Leader election (the default): the replicas' Service has no externalgrpc port, so cluster-autoscaler cannot
    // reach a replica that does not listen; the -leader Service has no selector (the leader writes its slice).
    const objs = render("r", "ns", { config: KUBE_CONFIG, externalGrpcTlsSecret: "t" });
    expect(services({ config: KUBE_CONFIG, externalGrpcTlsSecret: "t" })).toEqual({ "r-premiscale": ["http:8970"], "r-premiscale-leader": ["externalgrpc:8972"] });
    expect(one(objs, "Service", "r-premiscale-leader").spec.selector).toBeUndefined();
    const env = one(objs, "Deployment").spec.template.spec.containers[0].env;
    expect(env).toContainEqual({ name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } });
    // None without a listener beyond loopback, in native mode, or when the config turns leader election off.
    expect(find(render("r", "ns", { config: KUBE_CONFIG }), "Service", "r-premiscale-leader")).toEqual([]);
    expect(find(render("r", "ns", { config: { ...KUBE_CONFIG, kubernetes: { ...KUBE_CONFIG.kubernetes, mode: "native" } }, externalGrpcTlsSecret: "t" }), "Service", "r-premiscale-leader")).toEqual([]);
    const off = render("r", "ns", { config: { ...KUBE_CONFIG, kubernetes: { ...KUBE_CONFIG.kubernetes, leaderElection: { enabled: false } } }, externalGrpcTlsSecret: "t" });
    expect(find(off, "Service", "r-premiscale-leader")).toEqual([]);
    expect(one(off, "Deployment").spec.template.spec.containers[0].env.map((e: { name: string }) => e.name)).not.toContain("POD_IP");
  });

  it("refuses a leader endpoint in another namespace than the release's, naming the value", () => {
    const file = join(work, "endpoint-ns.yaml");
    writeFileSync(file, stringify({ externalGrpcTlsSecret: "t", config: { ...KUBE_CONFIG, kubernetes: { ...KUBE_CONFIG.kubernetes, leaderElection: { endpoint: { service: "ca-leader", namespace: "other" } } } } }));
    const r = helm(["template", "r", CHART, "-n", "ns", "-f", file]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("config.kubernetes.leaderElection.endpoint.namespace is other, but the chart makes the leader's Service and its rights in the release's namespace ns");
  });

  it("refuses a loopback server.listen, naming the value and the fix", () => {
    const file = join(work, "loopback.yaml");
    writeFileSync(file, stringify({ config: { ...KUBE_CONFIG, server: { listen: "127.0.0.1:8970" } } }));
    const r = helm(["template", "r", CHART, "-f", file]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("config.server.listen is 127.0.0.1:8970, a loopback address");
    expect(r.stderr).toContain("listen on 0.0.0.0:8970");
  });

  it("documents every value in the chart's README table", () => {
    const values = parseAllDocuments(readFileSync(join(CHART, "values.yaml"), "utf8"))[0]!.toJS() as Record<string, unknown>;
    const leaves = (o: unknown, at: string[]): string[][] =>
      o !== null && typeof o === "object" && !Array.isArray(o) && Object.keys(o).length > 0 ? Object.entries(o).flatMap(([k, v]) => leaves(v, [...at, k])) : [at];
    const readme = readFileSync(join(CHART, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("## Values"));
    const documented = new Set([...table.matchAll(/^\| ([^|]+) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`([^`]+)`/g)].map((k) => k[1]!)));
    const missing = leaves(values, []).filter((path) => !path.some((_, i) => documented.has(path.slice(0, i + 1).join("."))));
    expect(missing.map((p) => p.join(".")), "add these keys to the Values table of deploy/helm/premiscale/README.md").toEqual([]);
  });

  it("mounts Secret files so that premiscale, not root, can use an SSH private key from them (ssh's own check)", () => {
    // The kubelet writes a Secret volume's files owned by root, group fsGroup, mode defaultMode. ssh refuses a
    // private key that anyone but its owner can read only when the owner is the user running it: checked with the
    // real ssh-keygen, as the chart's user, on a file made like the kubelet's.
    const d = one(render("r", "ns", { sshSecret: "premiscale-ssh" }), "Deployment");
    const pod = d.spec.template.spec.securityContext as { runAsUser: number; runAsGroup: number; fsGroup: number };
    const mode = d.spec.template.spec.volumes.find((v: { name: string }) => v.name === "ssh").secret.defaultMode as number;
    expect(process.getuid?.(), "this test makes files owned by root and runs as another user: run it as root").toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "premiscale-helm-ssh-"));
    try {
      chmodSync(dir, 0o711);
      const key = join(dir, "id_ed25519");
      expect(spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]).status).toBe(0);
      const asUser = () => spawnSync("setpriv", [`--reuid=${pod.runAsUser}`, `--regid=${pod.runAsGroup}`, `--groups=${pod.fsGroup}`, "ssh-keygen", "-y", "-f", key], { encoding: "utf8" });
      chownSync(key, 0, pod.fsGroup);
      chmodSync(key, mode);
      const asMounted = asUser();
      expect(asMounted.stderr).toBe("");
      expect(asMounted.stdout).toMatch(/^ssh-ed25519 /);
      // The same mode on a file the user owns is refused: the check is real.
      chownSync(key, pod.runAsUser, pod.fsGroup);
      expect(asUser().stderr).toContain("UNPROTECTED PRIVATE KEY FILE");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses an externalgrpc listener beyond loopback without TLS, naming the Secret to set", () => {
    const file = join(work, "plaintext-grpc.yaml");
    writeFileSync(file, stringify({ config: { ...KUBE_CONFIG, kubernetes: { ...KUBE_CONFIG.kubernetes, externalGrpc: { listen: "0.0.0.0:8972" } } } }));
    const r = helm(["template", "r", CHART, "-f", file]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("config.kubernetes.externalGrpc.listen is 0.0.0.0:8972 without tls");
    expect(r.stderr).toContain("set externalGrpcTlsSecret");
  });

  it("never puts a secret in the rendered objects: Secrets are mounted by name", () => {
    const objs = render("nodegroups", "ns", COMBINATIONS[1]!.values);
    expect(find(objs, "Secret")).toEqual([]);
    const vols = one(objs, "Deployment").spec.template.spec.volumes.filter((v: { secret?: unknown }) => v.secret);
    expect(vols.map((v: { secret: { secretName: string; defaultMode: number } }) => [v.secret.secretName, v.secret.defaultMode])).toEqual([
      ["premiscale-ssh", 0o440],
      ["premiscale-externalgrpc", 0o440],
      ["libvirt-client", 0o440],
    ]);
  });
});

/** The chart's rules as [scope, verb, group, resource, resourceNames] lines, from its ClusterRole and Roles. */
function chartRules(objs: Obj[], releaseNs: string): string[] {
  const out: string[] = [];
  for (const o of objs.filter((x) => x.kind === "ClusterRole" || x.kind === "Role")) {
    const scope = o.kind === "ClusterRole" ? "cluster" : o.metadata.namespace === "kube-system" ? "kube-system" : o.metadata.namespace === releaseNs ? "release" : `namespace ${o.metadata.namespace}`;
    for (const r of o.rules as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[]) {
      for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) out.push(`${scope} ${v} ${g}/${res}${r.resourceNames ? ` [${r.resourceNames.join(",")}]` : ""}`);
    }
  }
  return out.sort();
}

const tableRule = (p: KubeApiPermission, leaseName: string, leaderService = "r-premiscale-leader") =>
  `${p.scope} ${p.verb} ${p.apiGroup}/${p.resource}${p.resourceNames === "lease" ? ` [${leaseName}]` : p.resourceNames === "leaderService" ? ` [${leaderService}]` : ""}`;

describe("the chart's RBAC", () => {
  it("grants exactly the calls kubernetes/api-permissions.ts lists: every one, nothing more", () => {
    const objs = render("r", "ns", { config: KUBE_CONFIG, externalGrpcTlsSecret: "t", leaderElection: { leaseName: "my-lease" } });
    expect(chartRules(objs, "ns")).toEqual(KUBE_API_PERMISSIONS.map((p) => tableRule(p, "my-lease")).sort());
  });

  it("drops the Lease rules without leader election, the EndpointSlice's without the leader's Service, and every rule without a kubernetes block but the Lease's", () => {
    expect(chartRules(render("r", "ns", { config: KUBE_CONFIG, externalGrpcTlsSecret: "t", leaderElection: { enabled: false } }), "ns")).toEqual(
      KUBE_API_PERMISSIONS.filter((p) => p.when === undefined).map((p) => tableRule(p, "")).sort(),
    );
    expect(chartRules(render("r", "ns", { config: KUBE_CONFIG }), "ns")).toEqual(
      KUBE_API_PERMISSIONS.filter((p) => p.when !== "leaderEndpoint").map((p) => tableRule(p, "premiscale")).sort(),
    );
    expect(chartRules(render("r", "ns", {}), "ns")).toEqual(KUBE_API_PERMISSIONS.filter((p) => p.when === "leaderElection").map((p) => tableRule(p, "premiscale")).sort());
    expect(render("r", "ns", { rbac: { create: false }, config: KUBE_CONFIG }).filter((o) => o.apiVersion.startsWith("rbac."))).toEqual([]);
  });

  it("binds every role to the chart's ServiceAccount in the release's namespace", () => {
    const objs = render("r", "ns", { config: KUBE_CONFIG });
    const bindings = objs.filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding");
    expect(bindings).toHaveLength(3);
    for (const b of bindings) expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: "r-premiscale", namespace: "ns" }]);
    expect(one(objs, "Deployment").spec.template.spec.serviceAccountName).toBe("r-premiscale");
  });
});

/** The API path of an object, for server-side apply. */
function objectPath(o: Obj): string {
  const plural: Record<string, string> = {
    ConfigMap: "configmaps",
    ServiceAccount: "serviceaccounts",
    Service: "services",
    PersistentVolumeClaim: "persistentvolumeclaims",
    Secret: "secrets",
    Namespace: "namespaces",
    Deployment: "deployments",
    PodDisruptionBudget: "poddisruptionbudgets",
    ClusterRole: "clusterroles",
    ClusterRoleBinding: "clusterrolebindings",
    Role: "roles",
    RoleBinding: "rolebindings",
    ServiceMonitor: "servicemonitors",
    CustomResourceDefinition: "customresourcedefinitions",
  };
  const resource = plural[o.kind];
  if (!resource) throw new Error(`the test does not know where ${o.kind} objects live: add it to objectPath`);
  const base = o.apiVersion.includes("/") ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  return `${base}${o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : ""}/${resource}/${o.metadata.name}`;
}

/**
 * Our subset of the Prometheus Operator's ServiceMonitor CRD: the fields the chart writes, with the operator's names
 * and types, and nothing else (so a field the operator does not know is refused, with strict field validation).
 */
const SERVICE_MONITOR_CRD: Obj = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "servicemonitors.monitoring.coreos.com" },
  spec: {
    group: "monitoring.coreos.com",
    scope: "Namespaced",
    names: { kind: "ServiceMonitor", listKind: "ServiceMonitorList", plural: "servicemonitors", singular: "servicemonitor", shortNames: ["smon"] },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: "object",
            required: ["spec"],
            properties: {
              apiVersion: { type: "string" },
              kind: { type: "string" },
              metadata: { type: "object" },
              spec: {
                type: "object",
                required: ["selector"],
                properties: {
                  selector: {
                    type: "object",
                    properties: { matchLabels: { type: "object", additionalProperties: { type: "string" } }, matchExpressions: { type: "array", items: { type: "object", "x-kubernetes-preserve-unknown-fields": true } } },
                  },
                  namespaceSelector: { type: "object", properties: { any: { type: "boolean" }, matchNames: { type: "array", items: { type: "string" } } } },
                  endpoints: {
                    type: "array",
                    items: {
                      type: "object",
                      properties: {
                        port: { type: "string" },
                        path: { type: "string" },
                        scheme: { type: "string", enum: ["http", "https"] },
                        interval: { type: "string", pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$" },
                        scrapeTimeout: { type: "string", pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$" },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    ],
  },
};

describe("the chart on the real test API server", () => {
  let cluster: KubeCluster;

  /** Server-side apply, strict: an unknown or duplicate field is an error, not a warning. */
  async function apply(o: Obj): Promise<{ status: number; text: string }> {
    const r = await cluster.request("PATCH", `${objectPath(o)}?fieldManager=${FIELD_MANAGER}&fieldValidation=Strict&force=true`, { body: JSON.stringify(o), contentType: "application/apply-patch+yaml" });
    return { status: r.status, text: r.text };
  }

  async function applyAll(objs: Obj[]): Promise<void> {
    for (const o of objs) {
      const r = await apply(o);
      expect([200, 201], `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}: HTTP ${r.status} ${r.text}`).toContain(r.status);
    }
  }

  /** A namespace where pods must meet the `restricted` Pod Security Standard (enforced, not only warned). */
  const namespace = (name: string): Obj => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels: { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest" } } });

  /** Whether the real authorizer (RBAC) lets ServiceAccount `ns`/`name` do `attrs`, with the groups its token carries. */
  const sar = async (ns: string, name: string, attrs: { verb: string; group: string; resource: string; subresource?: string; namespace?: string; name?: string }) => {
    const r = await cluster.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      body: { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec: { user: `system:serviceaccount:${ns}:${name}`, groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"], resourceAttributes: attrs } },
    });
    expect(r.status, r.text).toBe(201);
    return r.body.status.allowed === true;
  };

  beforeAll(async () => {
    cluster = await startKubeCluster();
    await applyAll([SERVICE_MONITOR_CRD]);
    await waitFor(
      async () => {
        const r = await cluster.request("GET", objectPath(SERVICE_MONITOR_CRD));
        return r.body.status?.conditions?.some((c: { type: string; status: string }) => c.type === "Established" && c.status === "True");
      },
      { timeoutMs: WAIT, what: "the ServiceMonitor CRD to be established" },
    );
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  for (const c of COMBINATIONS) {
    it(`accepts every object of the chart with ${c.what}, and admits its pods as restricted`, async () => {
      const ns = `helm-${c.release}`;
      const objs = render(c.release, ns, c.values);
      await applyAll([namespace(ns), ...objs]);
      // Read back: the server kept what the chart wrote.
      for (const o of objs) expect((await cluster.request("GET", objectPath(o))).status, `${o.kind} ${o.metadata.name}`).toBe(200);
      if (c.release === "nodegroups") expect(one(objs, "ServiceMonitor").spec.endpoints[0].port).toBe("http");
      // The Deployment's pods pass the Pod Security admission at `restricted`: the ReplicaSet creates them (no node
      // runs them here; creation is where a pod spec is refused).
      const d = one(objs, "Deployment");
      const selector = Object.entries(d.spec.selector.matchLabels as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(",");
      let refused: string | undefined;
      await waitFor(
        async () => {
          const rs = await cluster.request("GET", `/apis/apps/v1/namespaces/${ns}/replicasets?labelSelector=${encodeURIComponent(selector)}`);
          refused = rs.body.items?.flatMap((x: Obj) => x.status?.conditions ?? []).find((k: { type: string }) => k.type === "ReplicaFailure")?.message;
          const pods = await cluster.request("GET", `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`);
          return pods.body.items.length === d.spec.replicas;
        },
        { timeoutMs: WAIT, what: `${d.spec.replicas} pods of ${ns}/${d.metadata.name}`, abortIf: () => (refused ? `the ReplicaSet could not create pods: ${refused}` : undefined) },
      );
    });
  }

  it("lets the chart's ServiceAccount make every call the table lists, in the right place, and nothing nearby", async () => {
    // The release the test above applied with a kubernetes block (its objects are checked there).
    const sa = ["helm-nodegroups", "nodegroups-premiscale"] as const;
    for (const p of KUBE_API_PERMISSIONS) {
      const [resource, subresource] = p.resource.split("/") as [string, string?];
      const namespace = p.scope === "kube-system" ? "kube-system" : p.scope === "release" ? "helm-nodegroups" : undefined;
      const name = p.resourceNames === "lease" ? "premiscale" : p.resourceNames === "leaderService" ? "nodegroups-premiscale-leader" : undefined;
      const attrs = { verb: p.verb, group: p.apiGroup, resource, ...(subresource ? { subresource } : {}), ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) };
      expect(await sar(...sa, attrs), `${p.verb} ${p.resource} (${p.usedBy})`).toBe(true);
    }
    const denied = [
      { verb: "get", group: "", resource: "secrets", namespace: "default" },
      { verb: "list", group: "", resource: "secrets", namespace: "helm-nodegroups" },
      { verb: "get", group: "", resource: "secrets", namespace: "kube-system", name: "bootstrap-token-abcdef" },
      { verb: "update", group: "", resource: "nodes" },
      { verb: "delete", group: "", resource: "pods", namespace: "default" },
      { verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "helm-nodegroups", name: "someone-else" },
      { verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system", name: "premiscale" },
      { verb: "update", group: "discovery.k8s.io", resource: "endpointslices", namespace: "helm-nodegroups", name: "nodegroups-premiscale" },
      { verb: "update", group: "discovery.k8s.io", resource: "endpointslices", namespace: "default", name: "nodegroups-premiscale-leader" },
      { verb: "delete", group: "discovery.k8s.io", resource: "endpointslices", namespace: "helm-nodegroups", name: "nodegroups-premiscale-leader" },
    ];
    for (const attrs of denied) expect(await sar(...sa, attrs), JSON.stringify(attrs)).toBe(false);
  });

  it("gives premiscale's own API client, through the chart's in-cluster kubeconfig and a ServiceAccount token, the node-group calls and no more", async () => {
    const ns = "helm-nodegroups";
    const tr = await cluster.request("POST", `/api/v1/namespaces/${ns}/serviceaccounts/nodegroups-premiscale/token`, { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } } });
    expect(tr.status, tr.text).toBe(201);
    // The pod's files, as the kubelet projects them: the token and the cluster's CA.
    const sadir = mkdtempSync(join(work, "serviceaccount-"));
    writeFileSync(join(sadir, "token"), tr.body.status.token);
    writeFileSync(join(sadir, "ca.crt"), cluster.caCertPem);
    // The chart's kubeconfig, with the pod's paths and in-cluster name pointed at this machine's copies.
    const cm = one(render("nodegroups", ns, COMBINATIONS[1]!.values), "ConfigMap");
    const kubeconfig = join(sadir, "kubeconfig");
    writeFileSync(kubeconfig, (cm.data.kubeconfig as string).replaceAll("/var/run/secrets/kubernetes.io/serviceaccount", sadir).replace("https://kubernetes.default.svc", cluster.apiUrl));
    const api = openKubeApi({ kubeconfig, callTimeoutSeconds: 10, externalGrpc: { host: "127.0.0.1", port: 8972, tls: null }, debounceMs: 200, resyncSeconds: 60 });
    expect(api.caCertHash).toBe(cluster.caCertHash);

    expect((await api.request("GET", "/api/v1/nodes")).status).toBe(200);
    const id = "hlmtst";
    const secret = { apiVersion: "v1", kind: "Secret", type: "bootstrap.kubernetes.io/token", metadata: { name: `bootstrap-token-${id}`, namespace: "kube-system", labels: { "premiscale.io/instance": "helm-test" } }, stringData: { "token-id": id, "token-secret": "0123456789abcdef" } };
    expect((await api.request("POST", "/api/v1/namespaces/kube-system/secrets", secret)).status).toBe(201);
    const listed = await api.request("GET", `/api/v1/namespaces/kube-system/secrets?labelSelector=${encodeURIComponent("premiscale.io/instance=helm-test")}`);
    expect(listed.body.items.map((s: Obj) => s.metadata.name)).toEqual([`bootstrap-token-${id}`]);
    expect((await api.request("DELETE", `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`)).status).toBe(200);
    // The leader's EndpointSlice, written by premiscale's own writer as the chart's leader would: made, pointed at
    // the leader, emptied; the Service the chart made (applied above) selects nothing, so only this slice fills it.
    const events: string[] = [];
    const ep = leaderEndpoint({ api, namespace: ns, service: "nodegroups-premiscale-leader", identity: "nodegroups-premiscale-0", address: "10.244.0.7", port: 8972, portName: "externalgrpc", onEvent: (e) => events.push(e.type === "leader_endpoint_failed" ? e.error : e.type) });
    expect(await ep.publish(new AbortController().signal)).toBe(true);
    const slices = await cluster.request("GET", `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=${encodeURIComponent("kubernetes.io/service-name=nodegroups-premiscale-leader")}`);
    expect(slices.body.items.map((x: Obj) => [x.metadata.name, x.endpoints.map((e: { addresses: string[] }) => e.addresses[0]), x.ports[0].port])).toEqual([["nodegroups-premiscale-leader", ["10.244.0.7"], 8972]]);
    await ep.clear();
    expect(events).toEqual(["leader_endpoint_published", "leader_endpoint_cleared"]);
    // Next door: forbidden.
    expect((await api.request("GET", "/api/v1/namespaces/default/secrets")).status).toBe(403);
    expect((await api.request("GET", `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/nodegroups-premiscale`)).status).toBe(403);
    expect((await api.request("GET", `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`)).status).toBe(403);
    expect((await api.request("POST", "/api/v1/namespaces/default/secrets", { ...secret, metadata: { name: "x", namespace: "default" } })).status).toBe(403);
  });
});
