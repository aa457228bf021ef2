/**
 * What a new VM needs to join the cluster as the node of its providerID, as cloud-init user-data: a bootstrap token
 * minted for it alone (the Secret's format is Kubernetes' bootstrap-token one: token-id `[a-z0-9]{6}`, token-secret
 * `[a-z0-9]{16}`, expiration, usage flags, auth-extra-groups) and, per join method, a kubeadm JoinConfiguration
 * (discovery by token with the CA pinned; the kubelet gets `--provider-id`), or a k3s / rke2 agent config. Pure
 * (randomness is passed in). The token exists only here, in the API server and in the VM's seed: never in git, the
 * plan or a log.
 */
import { randomInt } from "node:crypto";
import { Document, isMap, isSeq, parseDocument } from "yaml";
import { PremiscaleError } from "../config/errors.js";
import type { GroupConfig } from "../config/types.js";
import { groupNodeLabels } from "./template-node.js";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A bootstrap token: `<id>.<secret>`. */
export interface BootstrapToken {
  id: string;
  secret: string;
  /** `<id>.<secret>`, what kubeadm, k3s and rke2 take. */
  token: string;
  expiration: Date;
}

/** Labels premiscale puts on the token Secrets it mints, so it finds them again after a restart. */
export const TOKEN_LABELS = { instance: "premiscale.io/instance", group: "premiscale.io/group" } as const;

/** Where the VM's files go. */
export const JOIN_FILES = {
  providerId: "/etc/premiscale/provider-id",
  kubeadm: "/etc/premiscale/kubeadm-join.yaml",
  k3s: "/etc/rancher/k3s/config.yaml",
  rke2: "/etc/rancher/rke2/config.yaml",
} as const;

/** A new token valid `ttlSeconds` from `now`; `pick(n)` returns an integer in [0, n) (crypto's randomInt). */
export function newBootstrapToken(now: Date, ttlSeconds: number, pick: (n: number) => number = randomInt): BootstrapToken {
  const draw = (len: number) => Array.from({ length: len }, () => ALPHABET[pick(ALPHABET.length)]).join("");
  const id = draw(6);
  const secret = draw(16);
  return { id, secret, token: `${id}.${secret}`, expiration: new Date(now.getTime() + ttlSeconds * 1000) };
}

/** RFC 3339 without fractions, as the bootstrap-token `expiration` field wants it. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * The Secret `bootstrap-token-<id>` in kube-system: usable for authentication (kubelet TLS bootstrap) and for
 * signing (kubeadm's discovery checks kube-public/cluster-info's signature with it), in `groups`.
 */
export function bootstrapTokenSecret(t: BootstrapToken, o: { groups: string[]; group: string; uuid: string; description: string }): object {
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "bootstrap.kubernetes.io/token",
    metadata: { name: `bootstrap-token-${t.id}`, namespace: "kube-system", labels: { [TOKEN_LABELS.instance]: o.uuid, [TOKEN_LABELS.group]: o.group } },
    stringData: {
      description: o.description,
      "token-id": t.id,
      "token-secret": t.secret,
      expiration: rfc3339(t.expiration),
      "usage-bootstrap-authentication": "true",
      "usage-bootstrap-signing": "true",
      "auth-extra-groups": o.groups.join(","),
    },
  };
}

/** Everything a VM's join needs. */
export interface JoinSpec {
  group: GroupConfig;
  /** The node name (the instance name, also the VM's hostname). */
  nodeName: string;
  providerId: string;
  token: BootstrapToken;
  /** kubeadm: host:port of the API server, and the CA pin. */
  apiServerEndpoint: string;
  caCertHash: string;
}

const taintArg = (t: { key: string; value?: string; effect: string }) => `${t.key}${t.value !== undefined ? `=${t.value}` : ""}:${t.effect}`;

/** The kubeadm JoinConfiguration (kubeadm.k8s.io/v1beta4, kubeadm >= 1.31) of a VM. */
export function kubeadmJoinConfiguration(j: JoinSpec): string {
  const k = j.group.kubernetes!;
  const labels = Object.entries(groupNodeLabels(j.group)).map(([key, v]) => `${key}=${v}`).join(",");
  const doc = {
    apiVersion: "kubeadm.k8s.io/v1beta4",
    kind: "JoinConfiguration",
    discovery: {
      // kubeadm join <endpoint> --token <token> --discovery-token-ca-cert-hash <hash>, as a file.
      bootstrapToken: { apiServerEndpoint: j.apiServerEndpoint, token: j.token.token, caCertHashes: [j.caCertHash] },
    },
    nodeRegistration: {
      name: j.nodeName,
      taints: k.taints.map((t) => ({ key: t.key, ...(t.value !== undefined ? { value: t.value } : {}), effect: t.effect })),
      kubeletExtraArgs: [
        { name: "provider-id", value: j.providerId },
        { name: "node-labels", value: labels },
        { name: "max-pods", value: String(k.maxPods) },
      ],
    },
  };
  return new Document(doc).toString({ lineWidth: 0 });
}

/** The k3s / rke2 agent config.yaml of a VM. */
export function agentConfig(j: JoinSpec): string {
  const k = j.group.kubernetes!;
  return new Document({
    server: k.server,
    token: j.token.token,
    "node-name": j.nodeName,
    "kubelet-arg": [`provider-id=${j.providerId}`, `max-pods=${k.maxPods}`],
    "node-label": Object.entries(groupNodeLabels(j.group)).map(([key, v]) => `${key}=${v}`),
    ...(k.taints.length > 0 ? { "node-taint": k.taints.map(taintArg) } : {}),
  }).toString({ lineWidth: 0 });
}

/** The files and commands of a VM's join, by method. */
export function joinParts(j: JoinSpec): { files: { path: string; content: string; permissions: string }[]; runcmd: string[][] } {
  const providerId = { path: JOIN_FILES.providerId, content: `${j.providerId}\n`, permissions: "0644" };
  const k = j.group.kubernetes!;
  switch (k.join) {
    case "kubeadm":
      return {
        files: [providerId, { path: JOIN_FILES.kubeadm, content: kubeadmJoinConfiguration(j), permissions: "0600" }],
        // The file holds the token: gone once the kubelet has its own credentials.
        runcmd: [["sh", "-c", `kubeadm join --config ${JOIN_FILES.kubeadm} && rm -f ${JOIN_FILES.kubeadm}`]],
      };
    case "k3s":
      return {
        files: [providerId, { path: JOIN_FILES.k3s, content: agentConfig(j), permissions: "0600" }],
        runcmd: [["sh", "-c", "command -v k3s >/dev/null 2>&1 || curl -sfL https://get.k3s.io | INSTALL_K3S_EXEC=agent INSTALL_K3S_SKIP_START=true sh -; systemctl enable --now k3s-agent"]],
      };
    case "rke2":
      return {
        files: [providerId, { path: JOIN_FILES.rke2, content: agentConfig(j), permissions: "0600" }],
        runcmd: [["sh", "-c", "command -v rke2 >/dev/null 2>&1 || curl -sfL https://get.rke2.io | INSTALL_RKE2_TYPE=agent sh -; systemctl enable --now rke2-agent.service"]],
      };
    case "none":
      return { files: [providerId], runcmd: [] };
  }
}

/** Adds a join's files (`write_files`) and commands (`runcmd`, after the template's own) to #cloud-config user-data. */
export function withJoin(userData: string, parts: ReturnType<typeof joinParts>): string {
  const text = userData.trim() ? userData : "#cloud-config\n";
  const doc = parseDocument(text);
  if (doc.errors.length > 0 || !(isMap(doc.contents) || doc.contents === null)) {
    throw new PremiscaleError(
      "the user-data is not a #cloud-config mapping, so the Kubernetes join cannot be added to it",
      "user_data_not_cloud_config",
      "start the template's user-data with #cloud-config, or set the group's kubernetes.join: none",
    );
  }
  const list = (key: string): unknown[] => {
    const v = doc.get(key);
    return isSeq(v) ? (v.toJSON() as unknown[]) : v === undefined ? [] : [v];
  };
  if (parts.files.length > 0) doc.set("write_files", doc.createNode([...list("write_files"), ...parts.files]));
  if (parts.runcmd.length > 0) doc.set("runcmd", doc.createNode([...list("runcmd"), ...parts.runcmd]));
  const body = doc.toString({ lineWidth: 0 });
  return body.startsWith("#cloud-config") ? body : `#cloud-config\n${body}`;
}
