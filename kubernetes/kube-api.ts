/**
 * premiscale's calls to the Kubernetes API: credentials from the configured kubeconfig (@kubernetes/client-node
 * reads it: certificates, tokens, exec plugins) or, when none is configured and premiscale runs in a pod, the pod's
 * service account (in-cluster config), requests over node:https with a timeout each, errors that name the call and
 * the API server. Only what premiscale needs: bootstrap token Secrets, Nodes, Pods and their evictions, Leases, the
 * leader's EndpointSlice.
 */
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIPv6 } from "node:net";
import { request, type RequestOptions } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import { PremiscaleError } from "../config/errors.js";
import type { KubernetesConfig } from "../config/kubernetes.js";

/** A Kubernetes API call failed (transport, timeout, or a status the caller did not expect). */
export class KubeApiError extends PremiscaleError {
  override name = "KubeApiError";
  constructor(
    message: string,
    readonly status: number | null,
    hint?: string,
  ) {
    super(message, "kube_api_failed", hint);
  }
}

/**
 * The error for a 403: which verb on which resource premiscale's credentials lack, where, and the rule to add (the
 * API server's own message, which names the user, follows).
 */
export function rbacError(res: KubeResponse, what: { verb: string; resource: string; group?: string; namespace?: string }): KubeApiError {
  const where = what.namespace ? `in namespace ${what.namespace}` : "cluster-wide";
  const group = what.group ? `apiGroups ["${what.group}"]` : `apiGroups [""]`;
  return new KubeApiError(
    `RBAC: premiscale's credentials may not ${what.verb} ${what.resource} ${where}: add verb ${what.verb} on ${what.resource} (${group}) to premiscale's ${what.namespace ? "Role or ClusterRole" : "ClusterRole"} (${statusMessage(res)})`,
    403,
    `grant premiscale's service account (or kubeconfig user) the verb ${what.verb} on ${what.resource}`,
  );
}

/** An API answer: status and the parsed JSON body. */
export interface KubeResponse {
  status: number;
  // The API's objects; callers read the fields they need.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** The calls premiscale makes. */
export interface KubeApi {
  /** The API server's URL. */
  readonly server: string;
  /** One call (a PATCH is a JSON merge patch); never rejects for an HTTP status (the caller decides), rejects with `KubeApiError` otherwise. */
  request(method: string, path: string, body?: unknown): Promise<KubeResponse>;
}

/** A Node as premiscale reads it. */
export interface KubeNode {
  metadata: { name: string; labels?: Record<string, string>; creationTimestamp?: string };
  spec?: { providerID?: string; unschedulable?: boolean };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/** The Ready condition of a Node, if it has one. */
export function readyCondition(node: KubeNode): { status: string; reason?: string; message?: string } | undefined {
  return node.status?.conditions?.find((c) => c.type === "Ready");
}

/** "sha256:<hex>" of a CA certificate's DER SubjectPublicKeyInfo: kubeadm's --discovery-token-ca-cert-hash. */
export function caCertHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

/** The API client for the config's kubeconfig, with what joining VMs need: the endpoint and the CA pin. */
export interface OpenedKubeApi extends KubeApi {
  /** host:port joining VMs dial. */
  apiServerEndpoint: string;
  /** `sha256:<hex>` of the cluster CA. */
  caCertHash: string;
  /** The credentials' namespace: the kubeconfig context's, or the pod's in-cluster; undefined when neither says. */
  namespace?: string;
  /** Where the credentials came from. */
  source: "kubeconfig" | "in-cluster";
}

/** Where in-cluster credentials are read (a pod's service account), and from which environment. */
export interface InClusterOptions {
  /** @default process.env (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT) */
  env?: Record<string, string | undefined>;
  /** Prefix of /var/run/secrets/kubernetes.io/serviceaccount (tests). @default "" */
  serviceAccountRoot?: string;
}

/** Where a kubeconfig-less premiscale reads its service account (token, ca.crt, namespace). */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * Loads the credentials of `config`: its kubeconfig, else the in-cluster service account when premiscale runs in a
 * pod (KUBERNETES_SERVICE_HOST set), else a `PremiscaleError` saying to set one.
 */
function loadKubeConfig(config: KubernetesConfig, o: InClusterOptions): { kc: KubeConfig; where: string; source: OpenedKubeApi["source"] } {
  const kc = new KubeConfig();
  if (config.kubeconfig === undefined) {
    const env = o.env ?? process.env;
    const root = o.serviceAccountRoot ?? "";
    if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
      throw new PremiscaleError(
        "kubernetes.kubeconfig is not set and premiscale is not running in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset), so it has no credentials for the cluster",
        "kubeconfig_missing",
        "set kubernetes.kubeconfig to a kubeconfig file, or run premiscale in the cluster with a service account",
      );
    }
    const dir = `${root}${SERVICE_ACCOUNT_DIR}`;
    for (const f of ["token", "ca.crt"]) {
      try {
        readFileSync(`${dir}/${f}`);
      } catch (e) {
        throw new PremiscaleError(
          `kubernetes.kubeconfig is not set, so premiscale uses its pod's service account, but ${dir}/${f} cannot be read: ${(e as Error).message}`,
          "in_cluster_unreadable",
          "mount the service account token (automountServiceAccountToken: true), or set kubernetes.kubeconfig",
        );
      }
    }
    // client-node's loadFromCluster reads process.env; built here from the environment we were given instead.
    const host = env.KUBERNETES_SERVICE_HOST;
    const server = `https://${isIPv6(host) ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT}`;
    let namespace: string | undefined;
    try {
      namespace = readFileSync(`${dir}/namespace`, "utf8").trim() || undefined;
    } catch {
      // optional: the Lease namespace then defaults elsewhere
    }
    kc.loadFromOptions({
      clusters: [{ name: "in-cluster", server, caFile: `${dir}/ca.crt`, skipTLSVerify: false }],
      // client-node's tokenFile provider re-reads the file every minute: projected tokens rotate.
      users: [{ name: "in-cluster", authProvider: { name: "tokenFile", config: { tokenFile: `${dir}/token` } } }],
      contexts: [{ name: "in-cluster", cluster: "in-cluster", user: "in-cluster", ...(namespace ? { namespace } : {}) }],
      currentContext: "in-cluster",
    });
    return { kc, where: `the in-cluster service account (${dir})`, source: "in-cluster" };
  }
  try {
    kc.loadFromFile(config.kubeconfig);
  } catch (e) {
    throw new PremiscaleError(`cannot read kubernetes.kubeconfig ${config.kubeconfig}: ${(e as Error).message}`, "kubeconfig_unreadable", "check kubernetes.kubeconfig (a path relative to the config file)");
  }
  if (config.context) {
    if (!kc.getContextObject(config.context)) {
      throw new PremiscaleError(`kubernetes.context ${config.context} is not in ${config.kubeconfig} (contexts: ${kc.getContexts().map((c) => c.name).join(", ")})`, "kubeconfig_context", "set kubernetes.context to one of them");
    }
    kc.setCurrentContext(config.context);
  }
  return { kc, where: config.kubeconfig, source: "kubeconfig" };
}

/**
 * Reads the kubeconfig (and context) of `config`, or the in-cluster service account when `kubernetes.kubeconfig` is
 * unset and premiscale runs in a pod, and returns a client. Fails with a `PremiscaleError` naming the field when
 * the credentials cannot be read, the context does not exist, or the CA pin cannot be found.
 */
export function openKubeApi(config: KubernetesConfig, o: InClusterOptions = {}): OpenedKubeApi {
  const { kc, where, source } = loadKubeConfig(config, o);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new PremiscaleError(`${where} has no cluster for its current context`, "kubeconfig_cluster", "check the kubeconfig");
  const server = cluster.server.replace(/\/+$/, "");
  let hash = config.caCertHash;
  if (!hash) {
    const pem = cluster.caData ? Buffer.from(cluster.caData, "base64").toString("utf8") : cluster.caFile ? readFileSync(cluster.caFile, "utf8") : null;
    if (!pem) {
      throw new PremiscaleError(`${where} names no CA for ${server}, so premiscale cannot pin it for joining VMs`, "kubeconfig_no_ca", "set kubernetes.caCertHash (sha256:<hex> of the CA's public key, as kubeadm prints it)");
    }
    hash = caCertHash(pem);
  }
  const timeoutMs = config.callTimeoutSeconds * 1000;
  return {
    server,
    apiServerEndpoint: config.apiServerEndpoint ?? new URL(server).host,
    caCertHash: hash,
    ...(kc.getContextObject(kc.getCurrentContext())?.namespace ? { namespace: kc.getContextObject(kc.getCurrentContext())!.namespace! } : {}),
    source,
    request: async (method, path, body) => {
      const url = new URL(path, `${server}/`);
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const opts: RequestOptions = {
        method,
        headers: {
          accept: "application/json",
          ...(payload !== undefined ? { "content-type": method === "PATCH" ? "application/merge-patch+json" : "application/json", "content-length": String(Buffer.byteLength(payload)) } : {}),
        },
        timeout: timeoutMs,
      };
      await kc.applyToHTTPSOptions(opts);
      return new Promise<KubeResponse>((resolve, reject) => {
        const fail = (why: string) => reject(new KubeApiError(`${method} ${url.pathname} on ${server}: ${why}`, null, `check that the API server is up and the credentials of ${where} are valid`));
        const timer = setTimeout(() => {
          req.destroy();
          fail(`no answer within ${config.callTimeoutSeconds} s (kubernetes.callTimeoutSeconds)`);
        }, timeoutMs);
        const req = request(url, opts, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => {
            clearTimeout(timer);
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on("error", (e) => (clearTimeout(timer), fail(e.message)));
        });
        req.on("error", (e) => (clearTimeout(timer), fail(e.message)));
        req.end(payload);
      });
    },
  };
}

/** The message of a failed API answer (a Status object's message, else the start of the body). */
export function statusMessage(res: KubeResponse): string {
  const m = typeof res.body === "object" && res.body !== null && typeof res.body.message === "string" ? res.body.message : String(res.body).slice(0, 200);
  return `HTTP ${res.status}: ${m}`;
}
