/**
 * premiscale's calls to the Kubernetes API: credentials from the configured kubeconfig (@kubernetes/client-node
 * reads it: certificates, tokens, exec plugins), requests over node:https with a timeout each, errors that name the
 * call and the API server. Only what the node lifecycle needs: bootstrap token Secrets and Nodes.
 */
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
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
}

/**
 * Reads the kubeconfig (and context) of `config` and returns a client. Fails with a `PremiscaleError` naming the
 * field when the kubeconfig cannot be read, has no such context, or the CA pin cannot be found.
 */
export function openKubeApi(config: KubernetesConfig): OpenedKubeApi {
  const kc = new KubeConfig();
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
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new PremiscaleError(`${config.kubeconfig} has no cluster for its current context`, "kubeconfig_cluster", "check the kubeconfig");
  const server = cluster.server.replace(/\/+$/, "");
  let hash = config.caCertHash;
  if (!hash) {
    const pem = cluster.caData ? Buffer.from(cluster.caData, "base64").toString("utf8") : cluster.caFile ? readFileSync(cluster.caFile, "utf8") : null;
    if (!pem) {
      throw new PremiscaleError(`${config.kubeconfig} names no CA for ${server}, so premiscale cannot pin it for joining VMs`, "kubeconfig_no_ca", "set kubernetes.caCertHash (sha256:<hex> of the CA's public key, as kubeadm prints it)");
    }
    hash = caCertHash(pem);
  }
  const timeoutMs = config.callTimeoutSeconds * 1000;
  return {
    server,
    apiServerEndpoint: config.apiServerEndpoint ?? new URL(server).host,
    caCertHash: hash,
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
        const fail = (why: string) => reject(new KubeApiError(`${method} ${url.pathname} on ${server}: ${why}`, null, "check that the API server is up and kubernetes.kubeconfig's credentials are valid"));
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
