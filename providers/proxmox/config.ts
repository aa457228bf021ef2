/**
 * The proxmox kind's part of the config. One premiscale host is one Proxmox VE node (`node`); the hosts of one PVE
 * cluster share its API connection (`api`: endpoints, token, CA), written once with a YAML anchor and repeated with an
 * alias. Per node, because placement is premiscale's: its strategies spread a group over hosts by each host's
 * capacity, and a node that is offline is one host that is unreachable (skipped, said so) while the others go on.
 *
 * In a group's template, `proxmox:` says which PVE template to clone (by name or tag: one per node when it sits on
 * local storage), how (linked or full, target storage), the boot disk's size, and how cloud-init reaches the guest
 * (premiscale's NoCloud seed as an ISO, or PVE's own cloud-init drive).
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { FragmentContext, ProviderConfigFragment, Schema } from "../../config/provider-kinds.js";
import { int, obj, str } from "../../config/schema.js";
import { quote } from "../../config/schema-issues.js";
import type { HostConfig, VmTemplate } from "../../config/types.js";
import { TOKEN_ID_RE } from "./pve-client.js";
import { normalizeFingerprint } from "./pve-http.js";

/** One node's API address. */
export interface ProxmoxEndpoint {
  /** The node's name in the cluster (`pvecm nodes`). */
  node: string;
  /** As written: `https://10.0.0.11:8006`. */
  url: string;
  host: string;
  port: number;
  /** SHA-256 of the node's certificate (`pvenode cert info`), `AA:BB:…`: when set, it alone decides. */
  fingerprint?: string;
}

/** How premiscale reaches one PVE cluster; hosts with equal `api` share one connection. */
export interface ProxmoxApiSettings {
  /** Names the cluster in messages. @default "proxmox" */
  cluster: string;
  /** API addresses of the cluster's nodes; a node without one is reached through the first. */
  endpoints: ProxmoxEndpoint[];
  /** `USER@REALM!TOKENID`. */
  tokenId: string;
  /** Name of the environment variable holding the token's secret (never the secret itself). */
  tokenSecretEnv: string;
  /** Absolute path of the cluster's CA certificate (`/etc/pve/pve-root-ca.pem` copied here). */
  caFile?: string;
}

/** A proxmox host's own settings. */
export interface ProxmoxHostSettings {
  /** The PVE node this host is; absent: the host's name. */
  node?: string;
  api: ProxmoxApiSettings;
  /** Storage on the node for premiscale's cloud-init seed ISOs (content `iso`, file based). @default "local" */
  isoStorage: string;
  /** How long premiscale waits for one PVE task (a clone, a start, a delete) and for a VM's lock. @default 900 */
  taskTimeoutSeconds: number;
}

/** Which PVE template a group clones: by name, or by a tag it carries. */
export type ProxmoxTemplateRef = { name: string } | { tag: string };

/** A group template's proxmox settings. */
export interface ProxmoxTemplateSettings {
  template: ProxmoxTemplateRef;
  /** @default "linked" */
  clone: "linked" | "full";
  /** Full clones only: storage for the new disks. @default the template's */
  storage?: string;
  /** Grow the boot disk to this many GiB (PVE never shrinks). */
  diskGiB?: number;
  /** `seed`: premiscale's NoCloud ISO (user-data, check-in, network); `proxmox`: PVE's cloud-init drive. @default "seed" */
  cloudInit: "seed" | "proxmox";
  /** `proxmox` only: the default user cloud-init creates (`ciuser`). */
  ciUser?: string;
  /** `proxmox` only: OpenSSH public keys for that user (`sshkeys`). */
  sshKeys: string[];
  /** DNS search domains (`searchdomain`, or the seed's network-config). */
  searchDomains: string[];
  /** Wait after start until the QEMU guest agent reports the guest up; absent: do not. */
  guestAgent?: { timeoutSeconds: number };
}

const NODE_PATTERN = "^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$";
const STORAGE_PATTERN = "^[a-zA-Z][a-zA-Z0-9\\-_.]*[a-zA-Z0-9]$";
const TAG_PATTERN = "^[a-zA-Z0-9_][a-zA-Z0-9_\\-+.]*$";
const ENV_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$";

const endpoint = obj(
  "One node's API address.",
  {
    node: str("The node's name in the cluster (`pvecm nodes`).", { pattern: NODE_PATTERN }),
    url: str("Its API address, as in the web interface: https://HOST:8006.", { examples: ["https://10.0.0.11:8006"] }),
    fingerprint: str("SHA-256 fingerprint of the node's certificate (`pvenode cert info`); when set it alone decides, instead of caFile."),
  },
  { required: ["node", "url"] },
);

const hostProperties: Record<string, Schema> = {
  node: str("The Proxmox VE node this host is (`pvecm nodes`). Default: the host's name.", { pattern: NODE_PATTERN }),
  api: obj(
    "How premiscale reaches the PVE cluster. Hosts on one cluster write it once with an anchor (`api: &lab`) and repeat it with an alias (`api: *lab`); they share one connection.",
    {
      cluster: str("Name of the cluster in messages. Default: proxmox."),
      endpoints: {
        type: "array",
        minItems: 1,
        items: endpoint,
        description: "API addresses of the cluster's nodes. Give each node premiscale uses its own, so that a node that hangs stalls only its own calls; a node without one is reached through the first.",
      },
      tokenId: str("API token, USER@REALM!TOKENID (`pveum user token list`), e.g. premiscale@pve!autoscaler."),
      tokenSecretEnv: str("Name of the environment variable that holds the token's secret; the secret never goes into the config, plans or state.", { pattern: ENV_PATTERN }),
      caFile: str("The cluster's CA certificate (a copy of /etc/pve/pve-root-ca.pem), relative to this file. Without it and without fingerprints, the system's trust store (ACME certificates)."),
    },
    { required: ["endpoints", "tokenId", "tokenSecretEnv"] },
  ),
  isoStorage: str("Storage on the node for premiscale's cloud-init seed ISOs (content iso, a file-based storage). Default: local.", { pattern: STORAGE_PATTERN }),
  taskTimeoutSeconds: int("How long premiscale waits for one PVE task (a clone, start or delete) and for a VM's lock. Default: 900.", { minimum: 10, maximum: 86400 }),
};

const templateProperties: Record<string, Schema> = {
  proxmox: obj(
    "How each VM is made on a Proxmox VE node: a clone of a PVE template.",
    {
      template: str("Name of the PVE template to clone. With local storage, put one on every node the group uses (same name); on shared storage one is enough."),
      templateTag: str("Instead of template: the PVE template carrying this tag.", { pattern: TAG_PATTERN }),
      clone: { type: "string", enum: ["linked", "full"], description: "linked: shares the template's disks (fast, thin); full: a copy. Default: linked." },
      storage: str("Full clones only: storage for the new disks. Default: the template's.", { pattern: STORAGE_PATTERN }),
      diskGiB: { type: "number", exclusiveMinimum: 0, description: "Grow the boot disk to this size, in GiB (PVE never shrinks disks). Default: the template's size." },
      cloudInit: {
        type: "string",
        enum: ["seed", "proxmox"],
        description:
          "seed: premiscale's own NoCloud seed (user-data with the check-in, network-config), uploaded as an ISO and attached as a CD-ROM; proxmox: PVE's cloud-init drive of the template (ipconfig0, nameserver, searchdomain, ciuser, sshkeys), which cannot carry user-data, so no check-in either. Default: seed.",
      },
      ciUser: str("cloudInit proxmox only: the user cloud-init creates (ciuser)."),
      sshKeys: { type: "array", items: { type: "string", minLength: 1 }, description: "cloudInit proxmox only: OpenSSH public keys for ciUser, one per entry." },
      searchDomains: { type: "array", items: { type: "string", minLength: 1, pattern: "^[A-Za-z0-9.-]+$" }, description: "DNS search domains." },
      guestAgent: obj(
        "Readiness through the QEMU guest agent, for templates without cloud-init phone_home: after start, wait until the agent reports an IPv4 address and `systemctl is-system-running` says running or degraded.",
        {
          wait: { type: "boolean", description: "Wait for the guest agent. Default: false." },
          timeoutSeconds: int("How long, counted from the clone's end. Default: 600.", { minimum: 10, maximum: 86400 }),
        },
      ),
    },
  ),
};

/** Why `url` is not a PVE API address, or its host and port. */
export function parseApiUrl(url: string): { host: string; port: number } | { problem: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { problem: `${quote(url)} is not a URL` };
  }
  if (u.protocol !== "https:") return { problem: `${quote(url)} is not https:// (the PVE API speaks only TLS)` };
  if (u.username || u.password) return { problem: `${quote(url)} carries credentials; the API token goes in tokenId and tokenSecretEnv` };
  if (u.search || u.hash || !["", "/", "/api2/json", "/api2/json/"].includes(u.pathname)) {
    return { problem: `${quote(url)} has a path or query; give only https://HOST:PORT` };
  }
  return { host: u.hostname.replace(/^\[(.*)\]$/, "$1"), port: u.port ? Number(u.port) : 8006 };
}

function normaliseApi(raw: Record<string, unknown>, ctx: FragmentContext): ProxmoxApiSettings {
  const endpoints: ProxmoxEndpoint[] = [];
  const seen = new Map<string, number>();
  ((raw.endpoints as Array<Record<string, string>> | undefined) ?? []).forEach((e, i) => {
    const at = ["api", "endpoints", i];
    if (seen.has(e.node!)) ctx.issue([...at, "node"], `node ${e.node} is listed twice (endpoints[${seen.get(e.node!)}])`, "give each node one endpoint");
    seen.set(e.node!, i);
    const parsed = parseApiUrl(e.url!);
    if ("problem" in parsed) {
      ctx.issue([...at, "url"], parsed.problem, "e.g. https://10.0.0.11:8006");
      return;
    }
    let fingerprint: string | undefined;
    if (e.fingerprint !== undefined) {
      const fp = normalizeFingerprint(e.fingerprint);
      if (!fp) ctx.issue([...at, "fingerprint"], `${quote(e.fingerprint)} is not a SHA-256 fingerprint`, "copy it from `pvenode cert info` on the node (64 hex digits, colons optional)");
      else fingerprint = fp;
    }
    endpoints.push({ node: e.node!, url: e.url!, ...parsed, ...(fingerprint ? { fingerprint } : {}) });
  });
  const tokenId = String(raw.tokenId);
  if (!TOKEN_ID_RE.test(tokenId)) {
    ctx.issue(["api", "tokenId"], `${quote(tokenId)} is not an API token id (USER@REALM!TOKENID)`, "use the full id as `pveum user token list` shows it, e.g. premiscale@pve!autoscaler");
  }
  let caFile: string | undefined;
  if (raw.caFile !== undefined) {
    caFile = path.resolve(ctx.dir, String(raw.caFile));
    if (!existsSync(caFile)) {
      ctx.issue(["api", "caFile"], `${caFile} does not exist`, `copy /etc/pve/pve-root-ca.pem from a node there; the path is relative to ${ctx.dir}`);
    } else {
      try {
        if (!readFileSync(caFile, "utf8").includes("-----BEGIN CERTIFICATE-----")) {
          ctx.issue(["api", "caFile"], `${caFile} is not a PEM certificate`, "give a copy of /etc/pve/pve-root-ca.pem");
        }
      } catch (e) {
        ctx.issue(["api", "caFile"], `cannot read ${caFile}: ${(e as Error).message}`, "check the file's permissions");
      }
    }
  }
  return {
    cluster: (raw.cluster as string | undefined) ?? "proxmox",
    endpoints,
    tokenId,
    tokenSecretEnv: String(raw.tokenSecretEnv),
    ...(caFile ? { caFile } : {}),
  };
}

/** The proxmox kind's config fragment. */
export const proxmoxConfig: ProviderConfigFragment<ProxmoxHostSettings, ProxmoxTemplateSettings> = {
  kind: "proxmox",
  description: "a Proxmox VE node (one host per node; the nodes of a cluster share its API connection), reached through the PVE REST API with an API token",
  host: {
    properties: hostProperties,
    required: ["api"],
    normalise(f, ctx) {
      return {
        ...(f.node !== undefined ? { node: String(f.node) } : {}),
        api: normaliseApi(f.api as Record<string, unknown>, ctx),
        isoStorage: (f.isoStorage as string | undefined) ?? "local",
        taskTimeoutSeconds: (f.taskTimeoutSeconds as number | undefined) ?? 900,
      };
    },
  },
  template: {
    properties: templateProperties,
    required: ["proxmox"],
    normalise(f, ctx) {
      const p = f.proxmox as Record<string, unknown>;
      const at = (k: string) => ["proxmox", k];
      let template: ProxmoxTemplateRef = { name: "" };
      if (p.template !== undefined && p.templateTag !== undefined) {
        ctx.issue(at("templateTag"), "template and templateTag are mutually exclusive", "keep one of them", true);
      } else if (p.template === undefined && p.templateTag === undefined) {
        ctx.issue(["proxmox"], "which PVE template to clone is missing", "add template: NAME (the PVE template's name) or templateTag: TAG");
      }
      if (p.templateTag !== undefined) template = { tag: String(p.templateTag) };
      else if (p.template !== undefined) template = { name: String(p.template) };
      const clone = (p.clone as "linked" | "full" | undefined) ?? "linked";
      if (p.storage !== undefined && clone !== "full") {
        ctx.issue(at("storage"), "storage is only for full clones (a linked clone's disks stay on the template's storage)", "remove storage, or set clone: full", true);
      }
      const cloudInit = (p.cloudInit as "seed" | "proxmox" | undefined) ?? "seed";
      for (const k of ["ciUser", "sshKeys"]) {
        if (p[k] !== undefined && cloudInit !== "proxmox") {
          ctx.issue(at(k), `${k} is only used with cloudInit: proxmox (with seed, put users and keys in the user-data)`, `remove ${k}, or set cloudInit: proxmox`, true);
        }
      }
      const sshKeys = (p.sshKeys as string[] | undefined) ?? [];
      sshKeys.forEach((k, i) => {
        if (k.includes("\n") || !/^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-[\w@.-]+) [A-Za-z0-9+/]+=* ?.*$/.test(k.trim())) {
          ctx.issue([...at("sshKeys"), i], "not an OpenSSH public key on one line", "paste one key per entry, e.g. the content of ~/.ssh/id_ed25519.pub");
        }
      });
      const agent = p.guestAgent as { wait?: boolean; timeoutSeconds?: number } | undefined;
      return {
        template,
        clone,
        ...(p.storage !== undefined ? { storage: String(p.storage) } : {}),
        ...(p.diskGiB !== undefined ? { diskGiB: Number(p.diskGiB) } : {}),
        cloudInit,
        ...(p.ciUser !== undefined ? { ciUser: String(p.ciUser) } : {}),
        sshKeys: sshKeys.map((k) => k.trim()),
        searchDomains: (p.searchDomains as string[] | undefined) ?? [],
        ...(agent?.wait ? { guestAgent: { timeoutSeconds: agent.timeoutSeconds ?? 600 } } : {}),
      };
    },
  },
};

/** A proxmox host's settings (the loader validated them). */
export function proxmoxHost(host: HostConfig): ProxmoxHostSettings {
  return host.settings as unknown as ProxmoxHostSettings;
}

/** The PVE node a proxmox host is. */
export function proxmoxNode(host: HostConfig): string {
  return proxmoxHost(host).node ?? host.name;
}

/** A template's proxmox settings, or undefined when the group has no proxmox host. */
export function proxmoxTemplate(template: VmTemplate): ProxmoxTemplateSettings | undefined {
  return template.settings.proxmox as unknown as ProxmoxTemplateSettings | undefined;
}

/** How a template is named in messages: `template "debian-12"` or `the template tagged "web"`. */
export function describeTemplateRef(ref: ProxmoxTemplateRef): string {
  return "name" in ref ? `template ${quote(ref.name)}` : `the template tagged ${quote(ref.tag)}`;
}
