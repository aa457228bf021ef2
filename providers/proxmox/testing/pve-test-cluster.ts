import { PveClient, type PveClientOptions, type PveClock } from "../pve-client.js";
import type { TestClusterCerts } from "./pve-certs.js";
import { PveDouble, type PveDoubleAcl, type PveDoubleOptions, type PveDoubleToken } from "./pve-double.js";

/** The token the test clusters know; its secret lives in a test-only environment object, never in process.env. */
export const TEST_TOKEN_ID = "premiscale@pve!ci";
export const TEST_SECRET = "5f1c0c5e-8d0b-4c1e-9a7e-2b7c3d4e5f60";
export const TEST_SECRET_ENV = "PREMISCALE_TEST_PVE_SECRET";

/** Every privilege premiscale's provider needs, on the whole cluster (see README.md). */
export const PROVIDER_PRIVS = [
  "VM.Audit", "VM.Clone", "VM.Allocate", "VM.PowerMgmt", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Disk",
  "VM.Config.CDROM", "VM.Config.Options", "VM.Config.Cloudinit", "VM.Config.Network", "VM.GuestAgent.Audit",
  "VM.GuestAgent.Unrestricted", "Datastore.Audit", "Datastore.AllocateSpace", "Datastore.AllocateTemplate",
  "Datastore.Allocate", "Sys.Audit", "SDN.Use",
];

/** A fake clock for the double's tasks and the client's polling: sleeping moves time, nothing waits. */
export class FakeClock implements PveClock {
  constructor(public t = 1_767_225_600_000) {}
  now = (): number => this.t;
  sleep = async (ms: number, signal?: AbortSignal): Promise<void> => {
    signal?.throwIfAborted();
    this.t += ms;
  };
}

/** Options of a test cluster. */
export interface TestClusterOptions extends Partial<Omit<PveDoubleOptions, "nodes" | "tokens">> {
  nodes?: string[];
  /** Privileges of the test token (same on user and token), on `/`. @default PROVIDER_PRIVS */
  privs?: string[];
  /** Exact ACLs instead of `privs`. */
  acl?: { user: PveDoubleAcl[]; token?: PveDoubleAcl[]; privsep?: boolean };
  /** Certificate each node presents, by node. @default its CA-signed one */
  tlsFor?: (node: string) => { key: string; cert: string };
}

/**
 * A double with three nodes (pve1..3), storages `local-lvm` (lvmthin, per node), `local` (dir: iso, snippets),
 * `ceph` (rbd, shared), and templates 9000 (local-lvm on pve1) and 9001 (ceph on pve1).
 */
export async function startTestCluster(certs: TestClusterCerts, o: TestClusterOptions = {}): Promise<PveDouble> {
  const nodes = o.nodes ?? ["pve1", "pve2", "pve3"];
  const token: PveDoubleToken = o.acl
    ? { tokenId: TEST_TOKEN_ID, secret: TEST_SECRET, privsep: o.acl.privsep, userAcl: o.acl.user, tokenAcl: o.acl.token }
    : { tokenId: TEST_TOKEN_ID, secret: TEST_SECRET, userAcl: [{ path: "/", privs: o.privs ?? PROVIDER_PRIVS }], tokenAcl: [{ path: "/", privs: o.privs ?? PROVIDER_PRIVS }] };
  return PveDouble.start({
    nodes: nodes.map((n) => ({ name: n, tls: o.tlsFor ? o.tlsFor(n) : { key: certs.nodes[n]!.key, cert: certs.nodes[n]!.cert } })),
    storages: o.storages ?? [
      { id: "local-lvm", type: "lvmthin", content: ["images", "rootdir"], totalBytes: 500 * 1024 ** 3 },
      { id: "local", type: "dir", content: ["iso", "vztmpl", "snippets", "backup"], totalBytes: 100 * 1024 ** 3 },
      { id: "ceph", type: "rbd", content: ["images"], shared: true, totalBytes: 2000 * 1024 ** 3 },
    ],
    tokens: [token],
    vms: o.vms ?? [
      { node: nodes[0]!, vmid: 9000, name: "tmpl-local", template: true, disk: { storage: "local-lvm", sizeGiB: 10 }, tags: ["premiscale-template"] },
      { node: nodes[0]!, vmid: 9001, name: "tmpl-shared", template: true, disk: { storage: "ceph", sizeGiB: 10 } },
    ],
    pools: o.pools,
    now: o.now,
    taskMs: o.taskMs,
    workerStartDelayMs: o.workerStartDelayMs,
    // PVE waits 3 s before answering a failed login; the tests do not need to.
    authFailureDelayMs: o.authFailureDelayMs ?? 0,
  });
}

/** A client of a test cluster: every node its own endpoint, verified against the test CA. */
export function testClient(double: PveDouble, certs: TestClusterCerts, nodes: string[], o: Partial<PveClientOptions> = {}): PveClient {
  return new PveClient({
    cluster: "test",
    endpoints: nodes.map((n) => double.endpoint(n)),
    tokenId: TEST_TOKEN_ID,
    tokenSecretEnv: TEST_SECRET_ENV,
    env: { [TEST_SECRET_ENV]: TEST_SECRET },
    ca: certs.caPem,
    timeoutMs: 5000,
    ...o,
  });
}
