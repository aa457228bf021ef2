import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { KubernetesConfig } from "../config/kubernetes.js";
import { openKubeApi, rbacError, SERVICE_ACCOUNT_DIR } from "./kube-api.js";

// Where premiscale's Kubernetes credentials come from when kubernetes.kubeconfig is unset. Against the real API
// server (a service account's token, RBAC): kubernetes/native/drain.kubernetes.test.ts.

// Only read by TLS when a call is made; the config pins the CA hash, so it is never parsed here.
const CA = "-----BEGIN CERTIFICATE-----\n(not parsed)\n-----END CERTIFICATE-----\n";

const config = { callTimeoutSeconds: 5, externalGrpc: { host: "127.0.0.1", port: 0, tls: null }, debounceMs: 0, resyncSeconds: 60, caCertHash: `sha256:${"0".repeat(64)}` } as KubernetesConfig;

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

function podRoot(files: Record<string, string>): string {
  root = mkdtempSync(join(tmpdir(), "premiscale-sa-"));
  const dir = join(root, SERVICE_ACCOUNT_DIR);
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return root;
}

describe("premiscale's credentials without a kubeconfig", () => {
  it("come from the pod's service account: the Service's address, its CA and namespace", () => {
    const r = podRoot({ token: "t0ken", "ca.crt": CA, namespace: "premiscale" });
    const api = openKubeApi(config, { env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, serviceAccountRoot: r });
    expect(api).toMatchObject({ server: "https://10.96.0.1:443", source: "in-cluster", namespace: "premiscale" });
    const v6 = openKubeApi(config, { env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }, serviceAccountRoot: r });
    expect(v6.server).toBe("https://[fd00::1]:443");
  });

  it("are refused outside a pod with an error saying what to set", () => {
    expect(() => openKubeApi(config, { env: {} })).toThrow(
      "kubernetes.kubeconfig is not set and premiscale is not running in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset), so it has no credentials for the cluster",
    );
    try {
      openKubeApi(config, { env: {} });
    } catch (e) {
      expect(e).toMatchObject({ code: "kubeconfig_missing", hint: "set kubernetes.kubeconfig to a kubeconfig file, or run premiscale in the cluster with a service account" });
    }
  });

  it("are refused in a pod whose service account token is not mounted, naming the file", () => {
    const r = podRoot({ "ca.crt": CA });
    expect(() => openKubeApi(config, { env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, serviceAccountRoot: r })).toThrow(
      new RegExp(`^kubernetes\\.kubeconfig is not set, so premiscale uses its pod's service account, but ${r}/var/run/secrets/kubernetes\\.io/serviceaccount/token cannot be read: ENOENT`),
    );
  });
});

describe("a 403", () => {
  it("names the verb, the resource, where, and the rule to add, with the API server's words", () => {
    const e = rbacError(
      { status: 403, body: { message: 'pods "web-1" is forbidden: User "system:serviceaccount:ops:premiscale" cannot create resource "pods/eviction" in API group "" in the namespace "shop"' } },
      { verb: "create", resource: "pods/eviction", namespace: "shop" },
    );
    expect(e.message).toBe(
      `RBAC: premiscale's credentials may not create pods/eviction in namespace shop: add verb create on pods/eviction (apiGroups [""]) to premiscale's Role or ClusterRole (HTTP 403: pods "web-1" is forbidden: User "system:serviceaccount:ops:premiscale" cannot create resource "pods/eviction" in API group "" in the namespace "shop")`,
    );
    expect(e.status).toBe(403);
    expect(rbacError({ status: 403, body: { message: "no" } }, { verb: "list", resource: "nodes" }).message).toMatch(/^RBAC: premiscale's credentials may not list nodes cluster-wide: add verb list on nodes \(apiGroups \[""\]\) to premiscale's ClusterRole/);
  });
});
