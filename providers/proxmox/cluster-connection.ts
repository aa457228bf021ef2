/**
 * One API connection per PVE cluster, shared by the adapters of its nodes: hosts whose `api` settings (written once
 * with a YAML anchor) and call timeout are equal get the same `PveClient`, so the connections per node are pooled once
 * per process, and a template's config is read once for every node that asks about it.
 */
import { readFileSync } from "node:fs";
import { PveConfigError } from "./pve-errors.js";
import { PveClient } from "./pve-client.js";
import type { PveVmConfig } from "./pve-types.js";
import type { ProxmoxApiSettings } from "./config.js";

/** How long a template's config is taken as read (templates change rarely; a long-running serve re-reads them). */
const TEMPLATE_TTL_MS = 60_000;

/** A shared connection; `release` it once per `openCluster`. */
export interface ClusterConnection {
  readonly client: PveClient;
  /** A template's config, read at most once a minute per process (shared by every node's adapter). */
  templateConfig(node: string, vmid: number, signal?: AbortSignal): Promise<PveVmConfig>;
  release(): void;
}

interface Entry {
  client: PveClient;
  users: number;
  templates: Map<string, { at: number; config: Promise<PveVmConfig> }>;
}

const open = new Map<string, Entry>();

/** Options of a connection beyond the cluster's settings. */
export interface ClusterOptions {
  timeoutMs: number;
  maxSocketsPerNode: number;
  /** Where the token's secret is read from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The shared connection for these settings, made on first use. Throws `PveConfigError` when it cannot be made: the
 * secret's variable is unset, the CA file unreadable (naming the variable or file and the fix).
 */
export function openCluster(api: ProxmoxApiSettings, o: ClusterOptions): ClusterConnection {
  // The environment is part of the key only as "which secret": two tests with two secrets must not share a client.
  const secretSeen = (o.env ?? process.env)[api.tokenSecretEnv] ?? "";
  const key = JSON.stringify([api, o.timeoutMs, o.maxSocketsPerNode, o.env ? secretHash(secretSeen) : "process.env"]);
  let entry = open.get(key);
  if (!entry) {
    let ca: string | undefined;
    if (api.caFile) {
      try {
        ca = readFileSync(api.caFile, "utf8");
      } catch (e) {
        throw new PveConfigError(api.cluster, `cannot read the CA file ${api.caFile}: ${(e as Error).message}`, "copy /etc/pve/pve-root-ca.pem from a node there, or pin each node's fingerprint");
      }
    }
    const client = new PveClient({
      cluster: api.cluster,
      endpoints: api.endpoints.map((e) => ({ node: e.node, host: e.host, port: e.port, ...(e.fingerprint ? { fingerprint: e.fingerprint } : {}) })),
      tokenId: api.tokenId,
      tokenSecretEnv: api.tokenSecretEnv,
      ...(ca !== undefined ? { ca } : {}),
      timeoutMs: o.timeoutMs,
      maxSocketsPerNode: o.maxSocketsPerNode,
      ...(o.env ? { env: o.env } : {}),
    });
    entry = { client, users: 0, templates: new Map() };
    open.set(key, entry);
  }
  entry.users++;
  const e = entry;
  let released = false;
  return {
    client: e.client,
    templateConfig(node, vmid, signal) {
      const k = `${node}/${vmid}`;
      const hit = e.templates.get(k);
      if (hit && Date.now() - hit.at < TEMPLATE_TTL_MS) return hit.config;
      const config = e.client.getConfig(node, vmid, {}, signal ? { signal } : {});
      e.templates.set(k, { at: Date.now(), config });
      // A failed read is not kept: the next observation asks again.
      config.catch(() => {
        if (e.templates.get(k)?.config === config) e.templates.delete(k);
      });
      return config;
    },
    release() {
      if (released) return;
      released = true;
      if (--e.users === 0) {
        e.client.close();
        open.delete(key);
      }
    },
  };
}

function secretHash(secret: string): string {
  // Not a secret store: only tells two secrets apart inside this process's map key, never leaves it.
  let h = 0;
  for (const c of secret) h = (h * 31 + c.charCodeAt(0)) | 0;
  return `s${h}`;
}
