import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  PveClient,
  cloneWithFreshId,
  configParams,
  decodeSshKeys,
  encodeSshKeys,
  isIdTaken,
  parseUpid,
  type CloneClient,
} from "./pve-client.js";
import {
  PveApiError,
  PveCloneRaceError,
  PveConfigError,
  PveConnectionError,
  PveGuestCommandError,
  PveMissingPrivilegeError,
  PveTaskError,
} from "./pve-errors.js";
import { makeClusterCerts, type TestClusterCerts } from "./testing/pve-certs.js";
import type { PveDouble } from "./testing/pve-double.js";
import {
  FakeClock,
  PROVIDER_PRIVS,
  TEST_SECRET,
  TEST_SECRET_ENV,
  TEST_TOKEN_ID,
  startTestCluster,
  testClient,
  type TestClusterOptions,
} from "./testing/pve-test-cluster.js";

let certs: TestClusterCerts;
beforeAll(() => {
  certs = makeClusterCerts(["pve1", "pve2", "pve3"]);
});

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function cluster(o: TestClusterOptions = {}): Promise<PveDouble> {
  const d = await startTestCluster(certs, o);
  open.push(d);
  return d;
}

function client(d: PveDouble, nodes = ["pve1", "pve2", "pve3"], o: Parameters<typeof testClient>[3] = {}): PveClient {
  const c = testClient(d, certs, nodes, o);
  open.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the call to fail");
}

/** Everything an error exposes: message, hint, stack, own fields, cause chain. */
function everything(e: unknown): string {
  const seen = new Set<unknown>();
  const walk = (x: unknown): string => {
    if (x === null || typeof x !== "object" || seen.has(x)) return String(x);
    seen.add(x);
    const err = x as Error & { cause?: unknown };
    return [err.message, err.stack, JSON.stringify(x), ...Object.values(x).map(walk), err.cause ? walk(err.cause) : ""].join("\n");
  };
  return walk(e);
}

/** qemu-server decodes sshkeys with URI::Escape::uri_unescape: %XX only, `+` stays a plus. */
function uriUnescape(s: string): string {
  return Buffer.from(s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8");
}

describe("auth and the envelope", () => {
  it("sends the token as PVEAPIToken=USER@REALM!TOKENID=SECRET and unwraps the data envelope", async () => {
    const d = await cluster();
    const c = client(d);
    expect(await c.nextId()).toBe(100);
    expect(d.requests[0]!.authorization).toBe(`PVEAPIToken=${TEST_TOKEN_ID}=${TEST_SECRET}`);
    expect(d.requests[0]!.path).toBe("/cluster/nextid");
  });

  it("refuses to start without the secret, naming the variable it reads", () => {
    const e = (() => {
      try {
        new PveClient({ endpoints: [{ node: "pve1", host: "127.0.0.1" }], tokenId: TEST_TOKEN_ID, tokenSecretEnv: "PVE_NOPE", env: {} });
      } catch (x) {
        return x as PveConfigError;
      }
      throw new Error("no error");
    })();
    expect(e).toBeInstanceOf(PveConfigError);
    expect(e.message).toContain("PVE_NOPE");
    expect(e.message).toContain(TEST_TOKEN_ID);
    expect(e.hint).toContain("export PVE_NOPE=");
  });

  it("refuses a token id that is not USER@REALM!TOKENID before any call", () => {
    expect(
      () => new PveClient({ endpoints: [{ node: "pve1", host: "127.0.0.1" }], tokenId: "premiscale@pve", tokenSecretEnv: TEST_SECRET_ENV, env: { [TEST_SECRET_ENV]: "x" } }),
    ).toThrow(/USER@REALM!TOKENID/);
  });

  it("turns a wrong secret into a 401 error that never contains the secret", async () => {
    const d = await cluster();
    const wrong = "a0a0a0a0-1111-2222-3333-444444444444";
    const c = client(d, ["pve1"], { env: { [TEST_SECRET_ENV]: wrong } });
    const e = await failure(c.listVms("pve1"));
    expect(e).toBeInstanceOf(PveApiError);
    expect((e as PveApiError).status).toBe(401);
    expect((e as PveApiError).pveMessage).toBe("Authentication failed!");
    expect((e as PveApiError).hint).toContain(`$${TEST_SECRET_ENV}`);
    expect(everything(e)).not.toContain(wrong);
    expect(everything(e)).not.toContain(TEST_SECRET);
  });

  it("never puts the secret into errors of any kind", async () => {
    const d = await cluster({ privs: ["VM.Audit"] });
    const c = client(d, ["pve1"], { timeoutMs: 300 });
    const errors = [
      await failure(c.clone("pve1", 9000, { newid: 100 })), // 403
      await failure(c.getConfig("pve1", 4242)), // 500
      await failure(c.setConfigSync("pve1", 9000, { cores: 0 })), // 400
    ];
    d.freeze("pve1");
    errors.push(await failure(c.listVms("pve1"))); // timeout
    for (const e of errors) expect(everything(e)).not.toContain(TEST_SECRET);
  });
});

describe("TLS", () => {
  it("verifies each node against the cluster CA", async () => {
    const d = await cluster();
    expect(await client(d).listVms("pve1")).toHaveLength(2);
  });

  it("refuses a node whose certificate the system does not trust, and sends it nothing", async () => {
    const d = await cluster();
    const c = client(d, ["pve1"], { ca: undefined });
    const e = await failure(c.listVms("pve1"));
    expect(e).toBeInstanceOf(PveConnectionError);
    expect((e as PveConnectionError).kind).toBe("tls");
    expect(e.message).toContain("node pve1");
    expect((e as PveConnectionError).hint).toContain("pve-root-ca.pem");
    expect(d.requests).toHaveLength(0);
  });

  it("keeps hostname checks: a certificate from the right CA for another name is refused", async () => {
    const d = await cluster({ tlsFor: (n) => (n === "pve1" ? certs.wrongName : certs.nodes[n]!) });
    const e = await failure(client(d, ["pve1"]).listVms("pve1"));
    expect((e as PveConnectionError).kind).toBe("tls");
    expect(e.message).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
    expect(d.requests).toHaveLength(0);
  });

  it("accepts a node by its pinned fingerprint without the CA, even when the name does not match", async () => {
    const d = await cluster({ tlsFor: (n) => (n === "pve1" ? certs.wrongName : certs.nodes[n]!) });
    const c = client(d, ["pve1"], {
      ca: undefined,
      endpoints: [{ ...d.endpoint("pve1"), fingerprint: certs.wrongName.fingerprint256.replace(/:/g, "").toLowerCase() }],
    });
    expect(await c.listVms("pve1")).toHaveLength(2);
  });

  it("refuses a wrong fingerprint naming the node, the expected and the seen fingerprint, and sends nothing", async () => {
    const d = await cluster();
    const c = client(d, ["pve1"], { endpoints: [{ ...d.endpoint("pve1"), fingerprint: certs.impostor.fingerprint256 }] });
    const e = await failure(c.listVms("pve1"));
    expect(e).toBeInstanceOf(PveConnectionError);
    expect((e as PveConnectionError).kind).toBe("fingerprint");
    expect(e.message).toContain("node pve1");
    expect(e.message).toContain(`expected ${certs.impostor.fingerprint256}`);
    expect(e.message).toContain(`seen ${certs.nodes.pve1!.fingerprint256}`);
    expect(d.requests).toHaveLength(0);
  });

  it("refuses a malformed fingerprint when the client is made", () => {
    expect(() => testClient({ endpoint: () => ({ node: "pve1", host: "127.0.0.1", port: 1 }) } as unknown as PveDouble, certs, [], {
      endpoints: [{ node: "pve1", host: "127.0.0.1", fingerprint: "AB:CD" }],
    })).toThrow(/pve1: fingerprint "AB:CD" is not a SHA-256 fingerprint/);
  });
});

describe("timeouts and unreachable nodes", () => {
  it("fails a frozen node's call after its timeout while a call to another node succeeds meanwhile", async () => {
    const d = await cluster();
    const c = client(d, ["pve1", "pve2"], { timeoutMs: 600 });
    d.freeze("pve1");
    const started = Date.now();
    let settled = false;
    const frozen = failure(c.listVms("pve1")).finally(() => (settled = true));
    const other = await c.listVms("pve2");
    expect(other).toEqual([]);
    expect(settled).toBe(false);
    const e = await frozen;
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(e).toBeInstanceOf(PveConnectionError);
    expect((e as PveConnectionError).kind).toBe("timeout");
    expect(e.message).toContain("node pve1");
    expect(e.message).toContain("600 ms");
    d.thaw("pve1");
    expect(await c.listVms("pve1")).toHaveLength(2);
  });

  it("sends cluster-wide reads to the next node when the first does not answer, and keeps using it", async () => {
    const d = await cluster();
    const c = client(d, ["pve1", "pve2"], { timeoutMs: 300 });
    d.freeze("pve1");
    expect(await c.nextId()).toBe(100);
    expect(await c.nextId()).toBe(100);
    // The second call goes straight to the node that answered the first.
    expect(d.requests.filter((r) => r.path === "/cluster/nextid").map((r) => r.server)).toEqual(["pve1", "pve2", "pve2"]);
  });

  it("reports a node that another node cannot reach as 595 with a hint, and a refused connection as unreachable", async () => {
    const d = await cluster();
    await d.setOnline("pve2", false);
    const through = client(d, ["pve1"]);
    const e = await failure(through.listVms("pve2"));
    expect((e as PveApiError).status).toBe(595);
    expect((e as PveApiError).hint).toContain("pve2");
    const direct = client(d, ["pve2"]);
    const u = await failure(direct.listVms("pve2"));
    expect((u as PveConnectionError).kind).toBe("unreachable");
    expect(u.message).toContain("ECONNREFUSED");
  });

  it("sends a cluster-wide call only through the node named by `via`, so a hung first node cannot stall it", async () => {
    const d = await cluster();
    const c = client(d, ["pve1", "pve2"], { timeoutMs: 300 });
    d.freeze("pve1");
    const t0 = Date.now();
    expect(await c.nextId({ via: "pve2" })).toBe(100);
    expect(Date.now() - t0).toBeLessThan(300);
    d.thaw("pve1");
    d.freeze("pve2");
    const e = (await failure(c.clusterResources("node", { via: "pve2" }))) as PveConnectionError;
    expect(e.kind).toBe("timeout");
    expect(e.message).toContain("node pve2");
    // No other endpoint was tried for it.
    expect(d.requests.filter((r) => r.path === "/cluster/resources").map((r) => r.server)).toEqual(["pve2"]);
  });

  it("stops a call when the caller aborts", async () => {
    const d = await cluster();
    d.freeze("pve1");
    const c = client(d, ["pve1"]);
    const ac = new AbortController();
    const p = failure(c.listVms("pve1", { signal: ac.signal }));
    ac.abort();
    expect(((await p) as PveConnectionError).kind).toBe("aborted");
  });
});

describe("errors and privileges", () => {
  it("names the missing privilege of a 403 and how to grant it", async () => {
    const d = await cluster({ privs: ["VM.Audit", "VM.Allocate"] });
    const e = (await failure(client(d).clone("pve1", 9000, { newid: 100 }))) as PveApiError;
    expect(e.status).toBe(403);
    expect(e.pveMessage).toBe("Permission check failed (/vms/9000, VM.Clone)");
    expect(e.missingPrivilege).toEqual({ path: "/vms/9000", privileges: ["VM.Clone"], any: false });
    expect(e.hint).toContain(`--tokens '${TEST_TOKEN_ID}'`);
    expect(e.hint).toContain("VM.Clone");
    expect(e.message).toContain("host pve1: POST /nodes/pve1/qemu/9000/clone failed: 403");
  });

  it("names Datastore.AllocateSpace on the storage and SDN.Use on the bridge a clone also needs", async () => {
    const d = await cluster({ privs: ["VM.Audit", "VM.Clone", "VM.Allocate"] });
    const e = (await failure(client(d).clone("pve1", 9000, { newid: 100 }))) as PveApiError;
    expect(e.missingPrivilege).toEqual({ path: "/storage/local-lvm", privileges: ["Datastore.AllocateSpace"], any: false });
    const d2 = await cluster({ privs: ["VM.Audit", "VM.Clone", "VM.Allocate", "Datastore.AllocateSpace"] });
    const e2 = (await failure(client(d2).clone("pve1", 9000, { newid: 100 }))) as PveApiError;
    expect(e2.missingPrivilege).toEqual({ path: "/sdn/zones/localnetwork/vmbr0", privileges: ["SDN.Use"], any: false });
  });

  it("names Sys.Audit when nodes come back without figures, as PVE sends them to a token without it", async () => {
    const d = await cluster({ privs: PROVIDER_PRIVS.filter((p) => p !== "Sys.Audit") });
    const c = client(d);
    const e = await failure(c.clusterResources());
    expect(e).toBeInstanceOf(PveMissingPrivilegeError);
    expect((e as PveMissingPrivilegeError).missingPrivilege.privileges).toEqual(["Sys.Audit"]);
    expect(e.message).toContain("node pve1 is listed without CPU and memory figures");
    const raw = await c.clusterResources("node", { audit: "ignore" });
    expect(raw.find((r) => r.id === "node/pve1")).toEqual({ id: "node/pve1", node: "pve1", type: "node", status: "online", level: "" });
  });

  it("names Datastore.Audit when no storage is visible", async () => {
    const d = await cluster({ privs: PROVIDER_PRIVS.filter((p) => p !== "Datastore.Audit") });
    const e = (await failure(client(d).clusterResources("storage"))) as PveMissingPrivilegeError;
    expect(e.missingPrivilege).toEqual({ path: "/storage", privileges: ["Datastore.Audit"], any: false });
  });

  it("gets an empty VM list without VM.Audit, as PVE answers (it cannot be told from no VMs)", async () => {
    const d = await cluster({ privs: ["Sys.Audit"] });
    expect(await client(d).listVms("pve1")).toEqual([]);
  });

  it("gives a privilege-separated token only what both it and its user have", async () => {
    const d = await cluster({ acl: { user: [{ path: "/", privs: PROVIDER_PRIVS }], token: [{ path: "/vms/9000", privs: ["VM.Audit"] }] } });
    const c = client(d);
    expect((await c.listVms("pve1")).map((v) => v.vmid)).toEqual([9000]);
    const e = (await failure(c.statusCurrent("pve1", 9001))) as PveApiError;
    expect(e.missingPrivilege?.path).toBe("/vms/9001");
  });

  it("carries PVE's per-parameter messages of a 400", async () => {
    const d = await cluster();
    const e = (await failure(client(d).setConfigSync("pve1", 9000, { cores: 0, name: "not a name!" }))) as PveApiError;
    expect(e.status).toBe(400);
    expect(e.pveMessage).toBe("Parameter verification failed.");
    expect(e.errors).toEqual({ cores: "value must have a minimum value of 1", name: "invalid format - value does not look like a valid DNS name" });
    expect(e.message).toContain("cores: value must have a minimum value of 1");
  });

  it("reports a VM asked for on the wrong node with PVE's message and a hint", async () => {
    const d = await cluster();
    const e = (await failure(client(d).getConfig("pve2", 9000))) as PveApiError;
    expect(e.status).toBe(500);
    expect(e.pveMessage).toBe("Configuration file 'nodes/pve2/qemu-server/9000.conf' does not exist");
    expect(e.hint).toContain("node pve2");
  });
});

describe("clone", () => {
  it("clones a template linked by default, and fully into another storage on request", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmclone: 4000 } });
    const c = client(d);
    const linked = await c.clone("pve1", 9000, { newid: 100, name: "web-1" });
    expect(parseUpid(linked)).toMatchObject({ node: "pve1", type: "qmclone", id: "9000", user: TEST_TOKEN_ID });
    expect(d.inspectVm(100)?.config).toEqual({ lock: "clone" });
    await c.waitTask("pve1", linked, { timeoutMs: 60_000, clock });
    const cfg = await c.getConfig("pve1", 100);
    expect(cfg.name).toBe("web-1");
    expect(cfg.scsi0).toMatch(/^local-lvm:vm-100-disk-0,.*size=10G/);
    expect(cfg.template).toBeUndefined();
    expect(cfg.net0).not.toBe(d.inspectVm(9000)!.config.net0);
    expect(await c.storageContent("pve1", "local-lvm", { vmid: 100 })).toContainEqual(
      expect.objectContaining({ volid: "local-lvm:vm-100-disk-0", parent: "base-9000-disk-0" }),
    );
    const full = await c.clone("pve1", 9000, { newid: 101, full: true, storage: "ceph", format: "raw" });
    await c.waitTask("pve1", full, { timeoutMs: 60_000, clock });
    expect((await c.getConfig("pve1", 101)).scsi0).toMatch(/^ceph:vm-101-disk-0,/);
    expect((await c.storageContent("pve1", "ceph", { vmid: 101 }))[0]!.parent).toBeUndefined();
  });

  it("refuses a linked clone of a VM that is not a template, and `storage` for a linked clone, with PVE's messages", async () => {
    const d = await cluster({
      vms: [{ node: "pve1", vmid: 200, name: "plain", disk: { storage: "local-lvm", sizeGiB: 4 } }, { node: "pve1", vmid: 9000, name: "t", template: true, disk: { storage: "local-lvm", sizeGiB: 4 } }],
    });
    const c = client(d);
    expect(((await failure(c.clone("pve1", 200, { newid: 101, full: false }))) as PveApiError).pveMessage).toBe(
      "Linked clone feature is not supported for 'local-lvm:vm-200-disk-0' (scsi0)",
    );
    expect(((await failure(c.clone("pve1", 9000, { newid: 101, storage: "ceph" }))) as PveApiError).pveMessage).toBe(
      "parameter 'storage' not allowed for linked clones",
    );
  });

  it("clones to another node only from shared storage, with PVE's message for a local-storage template", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now });
    const c = client(d);
    const e = (await failure(c.clone("pve1", 9000, { newid: 100, target: "pve2" }))) as PveApiError;
    expect(e.pveMessage).toBe("can't clone VM to node 'pve2' (VM uses local storage)");
    expect(((await failure(c.clone("pve1", 9001, { newid: 100, target: "pve2", full: true, storage: "local-lvm" }))) as PveApiError).pveMessage).toBe(
      "can't clone to non-shared storage 'local-lvm'",
    );
    const upid = await c.clone("pve1", 9001, { newid: 100, target: "pve2" });
    await c.waitTask("pve1", upid, { timeoutMs: 10_000, clock });
    expect(d.inspectVm(100)?.node).toBe("pve2");
    expect((await c.listVms("pve2")).map((v) => v.vmid)).toEqual([100]);
  });

  it("retries a clone that lost the nextid race (PVE: config file already exists) with the next id", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmclone: 5000 } });
    const c = client(d);
    const id = await c.nextId();
    // Someone else clones to the same id first.
    await c.clone("pve1", 9000, { newid: id });
    let stale = true;
    const racing: CloneClient = {
      nextId: async (o) => (stale ? ((stale = false), id) : c.nextId(o)),
      clone: (...a) => c.clone(...a),
      waitTask: (...a) => c.waitTask(...a),
    };
    const seen: string[] = [];
    const r = await cloneWithFreshId(racing, "pve1", 9000, { name: "web-2" }, {
      wait: { timeoutMs: 60_000, clock },
      onCollision: (_id, err) => seen.push(err.message),
    });
    expect(r.collisions).toEqual([id]);
    expect(r.vmid).toBe(id + 1);
    expect(seen[0]).toContain(`unable to create VM ${id}: config file already exists`);
    expect(d.inspectVm(id + 1)?.config.name).toBe("web-2");
  });

  it("retries when the race shows inside the task: the other clone holds the new id's lock", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmclone: 5000 }, workerStartDelayMs: 50 });
    const c = client(d);
    // Both requests pass PVE's early check: neither worker has written the id's config yet.
    const first = await c.clone("pve1", 9000, { newid: 100 });
    const second = await c.clone("pve1", 9000, { newid: 100 });
    const e = (await failure(c.waitTask("pve1", second, { timeoutMs: 60_000, clock }))) as PveTaskError;
    expect(e).toBeInstanceOf(PveTaskError);
    expect(e.exitstatus).toBe("can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout");
    expect(isIdTaken(e, 100)).toBe(true);
    await c.waitTask("pve1", first, { timeoutMs: 60_000, clock });
    let stale = true;
    const racing: CloneClient = {
      nextId: async (o) => (stale ? ((stale = false), 100) : c.nextId(o)),
      clone: (...a) => c.clone(...a),
      waitTask: (...a) => c.waitTask(...a),
    };
    const r = await cloneWithFreshId(racing, "pve1", 9000, {}, { wait: { timeoutMs: 60_000, clock } });
    expect(r).toMatchObject({ vmid: 101, collisions: [100] });
  });

  it("gives up after the allowed attempts when every id it gets is taken, naming the ids", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, vms: [{ node: "pve1", vmid: 9000, name: "t", template: true, disk: { storage: "local-lvm", sizeGiB: 4 } }, { node: "pve1", vmid: 100, name: "a" }, { node: "pve1", vmid: 101, name: "b" }] });
    const c = client(d);
    const ids = [100, 101];
    const racing: CloneClient = { nextId: async () => ids.shift()!, clone: (...a) => c.clone(...a), waitTask: (...a) => c.waitTask(...a) };
    const e = (await failure(cloneWithFreshId(racing, "pve1", 9000, {}, { attempts: 2, wait: { timeoutMs: 10_000, clock } }))) as PveCloneRaceError;
    expect(e).toBeInstanceOf(PveCloneRaceError);
    expect(e.collisions).toEqual([100, 101]);
    expect(e.message).toContain("clone of VM 9000: no free VM id after 2 attempts (tried 100, 101)");
    expect(e.message).toContain("unable to create VM 101: config file already exists");
  });

  it("treats an id that exists on another node as taken: pmxcfs refuses it inside the task", async () => {
    const clock = new FakeClock();
    const d = await cluster({
      now: clock.now,
      vms: [{ node: "pve1", vmid: 9000, name: "t", template: true, disk: { storage: "local-lvm", sizeGiB: 4 } }, { node: "pve2", vmid: 150, name: "other" }],
    });
    const c = client(d);
    const upid = await c.clone("pve1", 9000, { newid: 150 });
    const e = (await failure(c.waitTask("pve1", upid, { timeoutMs: 10_000, clock }))) as PveTaskError;
    expect(e.exitstatus).toBe("close (rename) atomic file '/etc/pve/nodes/pve1/qemu-server/150.conf' failed: File exists");
    expect(isIdTaken(e, 150)).toBe(true);
    expect(isIdTaken(e, 151)).toBe(false);
  });

  it("reports a failed clone task naming type, VM and node, leaves no half-made VM, and does not retry it", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmclone: 2000 } });
    d.failNextTask("qmclone", "clone failed: lvcreate 'pve/vm-100-disk-0' error: Insufficient free space", 9000);
    const c = client(d);
    const e = (await failure(cloneWithFreshId(c, "pve1", 9000, {}, { wait: { timeoutMs: 60_000, clock } }))) as PveTaskError;
    expect(e).toBeInstanceOf(PveTaskError);
    expect(e.kind).toBe("failed");
    expect(e.message).toContain("task qmclone of VM 9000 on node pve1 failed: clone failed: lvcreate");
    expect(e.hint).toContain(`pvenode task log pve1 ${e.upid}`);
    expect(d.inspectVm(100)).toBeUndefined();
    expect(d.taskList().filter((t) => t.type === "qmclone")).toHaveLength(1);
  });

  it("fails writes without quorum: a two-node cluster with one node offline cannot clone", async () => {
    const d = await cluster({ nodes: ["pve1", "pve2"] });
    await d.setOnline("pve2", false);
    const e = (await failure(client(d, ["pve1"]).clone("pve1", 9000, { newid: 100 }))) as PveApiError;
    expect(e.pveMessage).toBe("cluster not ready - no quorum?");
  });
});

describe("tasks", () => {
  it("polls a running task with the injected clock until it is OK", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmstart: 3000 }, vms: [{ node: "pve1", vmid: 100, name: "a" }] });
    const c = client(d);
    const t0 = clock.t;
    const upid = await c.start("pve1", 100);
    const st = await c.waitTask("pve1", upid, { timeoutMs: 60_000, pollMs: 1000, clock });
    expect(st).toMatchObject({ status: "stopped", exitstatus: "OK", type: "qmstart", id: "100", user: "premiscale@pve", tokenid: "ci" });
    expect(clock.t - t0).toBe(3000);
    expect(d.requests.filter((r) => r.route === "GET /nodes/{node}/tasks/{upid}/status")).toHaveLength(4);
    expect((await c.statusCurrent("pve1", 100)).status).toBe("running");
  });

  it("polls quickly first and then less often, up to maxPollMs", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmstart: 10_000 }, vms: [{ node: "pve1", vmid: 100, name: "a" }] });
    const c = client(d);
    const upid = await c.start("pve1", 100);
    const polls: number[] = [];
    const t0 = clock.t;
    const spy = { ...clock, now: clock.now, sleep: async (ms: number) => (polls.push(ms), clock.sleep(ms)) };
    await c.waitTask("pve1", upid, { timeoutMs: 60_000, pollMs: 250, maxPollMs: 2000, clock: spy });
    expect(polls).toEqual([250, 500, 1000, 2000, 2000, 2000, 2000, 2000]);
    // The 10 s task is seen done at the first poll after it ended.
    expect(clock.t - t0).toBe(11_750);
  });

  it("gives up polling a node that stopped answering after the grace, not after the task's whole timeout", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmstart: 60_000 }, vms: [{ node: "pve2", vmid: 100, name: "a" }] });
    const c = client(d);
    const upid = await c.start("pve2", 100);
    await d.setOnline("pve2", false);
    const t0 = clock.t;
    const e = (await failure(c.waitTask("pve2", upid, { timeoutMs: 900_000, pollMs: 1000, unreachableGraceMs: 5000, clock }))) as PveConnectionError;
    expect(e.kind).toBe("unreachable");
    expect(e.message).toContain("node pve2");
    expect(clock.t - t0).toBe(5000);
  });

  it("counts 'WARNINGS: n' as success: a forced shutdown of a guest that ignores ACPI", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, vms: [{ node: "pve1", vmid: 100, name: "a", running: true, guest: { acpiShutdownMs: Infinity } }] });
    const c = client(d);
    const upid = await c.shutdown("pve1", 100, { timeoutSeconds: 30, forceStop: true });
    const st = await c.waitTask("pve1", upid, { timeoutMs: 120_000, clock });
    expect(st.exitstatus).toBe("WARNINGS: 1");
    expect((await c.statusCurrent("pve1", 100)).status).toBe("stopped");
  });

  it("fails the same shutdown without forceStop with PVE's message", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, vms: [{ node: "pve1", vmid: 100, name: "a", running: true, guest: { acpiShutdownMs: Infinity } }] });
    const c = client(d);
    const upid = await c.shutdown("pve1", 100, { timeoutSeconds: 30 });
    const e = (await failure(c.waitTask("pve1", upid, { timeoutMs: 120_000, clock }))) as PveTaskError;
    expect(e.message).toBe("host pve1: task qmshutdown of VM 100 on node pve1 failed: VM quit/powerdown failed - got timeout");
    expect((await c.statusCurrent("pve1", 100)).status).toBe("running");
  });

  it("gives up on a task still running at the deadline and says it keeps running", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmclone: Infinity } });
    const c = client(d);
    const upid = await c.clone("pve1", 9000, { newid: 100 });
    const t0 = clock.t;
    const e = (await failure(c.waitTask("pve1", upid, { timeoutMs: 10_000, pollMs: 3000, clock }))) as PveTaskError;
    expect(e.kind).toBe("timeout");
    expect(clock.t - t0).toBe(10_000);
    expect(e.message).toContain("task qmclone of VM 9000 on node pve1 still running after 10 s");
    expect(e.hint).toContain("keeps running");
  });

  it("reads PVE's UPID format and refuses anything else", () => {
    expect(parseUpid("UPID:pve1:00001234:0001E240:65A1B2C3:qmclone:9000:root@pam:")).toEqual({
      node: "pve1", pid: 0x1234, pstart: 0x1e240, starttime: 0x65a1b2c3, type: "qmclone", id: "9000", user: "root@pam",
    });
    expect(parseUpid("UPID:pve-2:0000ABCD:12345678A:65A1B2C3:imgcopy::premiscale@pve!ci:")).toMatchObject({ id: "", pstart: 0x12345678a });
    expect(() => parseUpid("UPID:pve1:1234:5678:9:qmclone:9000:root@pam:")).toThrow(/not a PVE task id/);
  });

  it("refuses to poll a task on another node than its UPID names", async () => {
    const d = await cluster();
    const e = await failure(client(d).waitTask("pve2", "UPID:pve1:00001234:0001E240:65A1B2C3:qmclone:9000:root@pam:", { timeoutMs: 1000 }));
    expect(e.message).toContain("runs on node pve1, not pve2");
  });
});

describe("config and cloud-init", () => {
  const keys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq+0/3zR7/Xk9a+b/c= alice@laptop (work key)",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7+/== bob",
  ];

  it("double-encodes sshkeys so that PVE's uri_unescape gives back the keys exactly", async () => {
    const d = await cluster({ vms: [{ node: "pve1", vmid: 100, name: "a" }] });
    const c = client(d);
    await c.setConfigSync("pve1", 100, { sshkeys: keys });
    const stored = d.inspectVm(100)!.config.sshkeys!;
    expect(stored).toMatch(/^[-%a-zA-Z0-9_.!~*'()]*$/); // pve-common's `urlencoded` format
    expect(uriUnescape(stored)).toBe(keys.join("\n"));
    expect(decodeSshKeys((await c.getConfig("pve1", 100)).sshkeys!)).toEqual(keys);
    // On the wire the value is encoded twice: a space is %20 inside, then %2520.
    const body = d.requests.find((r) => r.route === "PUT /nodes/{node}/qemu/{vmid}/config")!.body.toString();
    expect(body).toContain("sshkeys=ssh-ed25519%2520AAAAC3NzaC1lZDI1NTE5AAAAIGq%252B0%252F3zR7");
    expect(encodeSshKeys(keys)).toBe(stored);
  });

  it("shows why form-style encoding is wrong for sshkeys: PVE refuses its '+' for spaces", async () => {
    const d = await cluster({ vms: [{ node: "pve1", vmid: 100, name: "a" }] });
    const formStyle = new URLSearchParams({ k: keys[0]! }).toString().slice(2);
    const e = (await failure(client(d).call("PUT", "/nodes/pve1/qemu/100/config", { sshkeys: formStyle }))) as PveApiError;
    expect(e.status).toBe(400);
    expect(e.errors.sshkeys).toMatch(/^invalid format - invalid urlencoded string: ssh-ed25519\+AAAA/);
  });

  it("sets cloud-init keys, tags, description and sizes as PVE stores them", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, vms: [{ node: "pve1", vmid: 100, name: "a" }] });
    const c = client(d);
    const upid = await c.setConfig("pve1", 100, {
      cores: 4,
      memoryMiB: 4096,
      ciuser: "debian",
      citype: "nocloud",
      cicustom: { user: "local:snippets/user-100.yaml", network: "local:snippets/net-100.yaml" },
      nameserver: ["10.0.0.53", "10.0.0.54"],
      searchdomain: ["lab.example", "example"],
      ipconfig: { 0: { ip: "10.0.0.21/24", gw: "10.0.0.1" }, 1: { ip: "dhcp", ip6: "auto" } },
      tags: ["premiscale", "group-web"],
      description: "premiscale: group=web instance=1f2e lineage=ab12\nsecond line",
    });
    expect(upid).toMatch(/^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:qmconfig:100:premiscale@pve!ci:$/);
    await c.waitTask("pve1", upid!, { timeoutMs: 10_000, clock });
    const cfg = await c.getConfig("pve1", 100);
    expect(cfg).toMatchObject({
      cores: 4,
      memory: "4096",
      ciuser: "debian",
      citype: "nocloud",
      cicustom: "user=local:snippets/user-100.yaml,network=local:snippets/net-100.yaml",
      nameserver: "10.0.0.53 10.0.0.54",
      searchdomain: "lab.example example",
      ipconfig0: "ip=10.0.0.21/24,gw=10.0.0.1",
      ipconfig1: "ip=dhcp,ip6=auto",
      tags: "premiscale;group-web",
      description: "premiscale: group=web instance=1f2e lineage=ab12\nsecond line",
    });
    expect(cfg.digest).toMatch(/^[0-9a-f]{40}$/);
  });

  it("answers null for a quick change with background_delay, and refuses a change against a stale digest", async () => {
    const d = await cluster({ vms: [{ node: "pve1", vmid: 100, name: "a" }] });
    const c = client(d);
    const { digest } = await c.getConfig("pve1", 100);
    expect(await c.setConfig("pve1", 100, { cores: 2, digest }, { backgroundDelaySeconds: 5 })).toBeNull();
    const e = (await failure(c.setConfigSync("pve1", 100, { cores: 3, digest }))) as PveApiError;
    expect(e.pveMessage).toBe("detected modified configuration - file changed by other user? Try again.");
    await c.setConfigSync("pve1", 100, { delete: ["agent"] });
    expect((await c.getConfig("pve1", 100)).agent).toBeUndefined();
  });

  it("grows a disk with resize and refuses to shrink it", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, vms: [{ node: "pve1", vmid: 100, name: "a", disk: { storage: "local-lvm", sizeGiB: 10 } }] });
    const c = client(d);
    await c.waitTask("pve1", await c.resize("pve1", 100, "scsi0", "+5G"), { timeoutMs: 1000, clock });
    expect((await c.getConfig("pve1", 100)).scsi0).toContain("size=15G");
    const e = (await failure(c.waitTask("pve1", await c.resize("pve1", 100, "scsi0", "12G"), { timeoutMs: 1000, clock }))) as PveTaskError;
    expect(e.exitstatus).toBe("shrinking disks is not supported");
  });
});

describe("power and delete", () => {
  it("refuses to delete a running VM, then deletes it with its disks once stopped", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, vms: [{ node: "pve1", vmid: 100, name: "a", running: true, disk: { storage: "local-lvm", sizeGiB: 4 } }] });
    const c = client(d);
    expect(((await failure(c.deleteVm("pve1", 100, { purge: true }))) as PveApiError).pveMessage).toBe("VM 100 is running - destroy failed");
    await c.waitTask("pve1", await c.stop("pve1", 100), { timeoutMs: 10_000, clock });
    const upid = await c.deleteVm("pve1", 100, { purge: true, destroyUnreferencedDisks: true });
    expect(d.requests.at(-1)!.params).toMatchObject({ purge: "1", "destroy-unreferenced-disks": "1" });
    await c.waitTask("pve1", upid, { timeoutMs: 10_000, clock });
    expect(d.inspectVm(100)).toBeUndefined();
    expect(d.volumeIds("local-lvm")).toEqual([]);
  });

  it("refuses a delete that races a stop until the stop has finished, as PVE does", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmstop: 4000 }, vms: [{ node: "pve1", vmid: 100, name: "a", running: true }] });
    const c = client(d);
    const stop = await c.stop("pve1", 100);
    expect(((await failure(c.deleteVm("pve1", 100))) as PveApiError).pveMessage).toBe("VM 100 is running - destroy failed");
    await c.waitTask("pve1", stop, { timeoutMs: 10_000, clock });
    await c.waitTask("pve1", await c.deleteVm("pve1", 100, { purge: true }), { timeoutMs: 10_000, clock });
    expect(d.inspectVm(100)).toBeUndefined();
  });

  it("fails to start a template inside the task with PVE's message", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now });
    const c = client(d);
    const e = (await failure(c.waitTask("pve1", await c.start("pve1", 9000), { timeoutMs: 1000, clock }))) as PveTaskError;
    expect(e.exitstatus).toBe("you can't start a vm if it's a template");
  });
});

describe("ISO upload", () => {
  it("uploads an ISO as PVE's multipart form, waits for its imgcopy task and finds it in the storage", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { imgcopy: 1500 } });
    const c = client(d);
    const bytes = new Uint8Array(70_000).map((_, i) => (i * 7) % 256);
    const upid = await c.uploadIso("pve2", "local", "premiscale-seed-100.iso", bytes);
    expect(parseUpid(upid)).toMatchObject({ node: "pve2", type: "imgcopy", id: "" });
    await c.waitTask("pve2", upid, { timeoutMs: 10_000, clock });
    expect(await c.storageContent("pve2", "local", { content: "iso" })).toEqual([
      expect.objectContaining({ volid: "local:iso/premiscale-seed-100.iso", size: 70_000, format: "iso", content: "iso" }),
    ]);
    expect(await c.storageContent("pve1", "local", { content: "iso" })).toEqual([]);
    expect(Buffer.compare(d.uploadedBytes("pve2", "local:iso/premiscale-seed-100.iso")!, Buffer.from(bytes))).toBe(0);
    const body = d.requests.find((r) => r.route?.endsWith("/upload"))!.body.toString("latin1");
    expect(body.indexOf('name="content"')).toBeLessThan(body.indexOf('name="filename"; filename="premiscale-seed-100.iso"'));
  });

  it("fails an upload to a storage that does not take ISOs with PVE's message", async () => {
    const d = await cluster();
    const e = (await failure(client(d).uploadIso("pve1", "local-lvm", "seed.iso", new Uint8Array(10)))) as PveApiError;
    expect(e.pveMessage).toBe("storage 'local-lvm' does not support 'iso' content");
  });

  it("refuses an ISO file name PVE would not take before sending anything", async () => {
    const d = await cluster();
    await expect(client(d).uploadIso("pve1", "local", "../seed.txt", new Uint8Array(1))).rejects.toThrow(/not allowed/);
    expect(d.requests).toHaveLength(0);
  });

  it("deletes an uploaded ISO through an imgdel task, which needs Datastore.Allocate on the storage", async () => {
    const d = await cluster();
    const c = client(d);
    await c.waitTask("pve1", await c.uploadIso("pve1", "local", "seed.iso", new Uint8Array(10)), { timeoutMs: 5000 });
    const upid = await c.deleteVolume("pve1", "local", "local:iso/seed.iso");
    expect(parseUpid(upid)).toMatchObject({ node: "pve1", type: "imgdel", id: "local" });
    expect(await c.waitTask("pve1", upid, { timeoutMs: 5000 })).toMatchObject({ exitstatus: "OK" });
    expect(await c.storageContent("pve1", "local", { content: "iso" })).toEqual([]);
    // A file that is gone already is a warning, as pve-storage's free_image has it.
    expect(await c.waitTask("pve1", await c.deleteVolume("pve1", "local", "local:iso/seed.iso"), { timeoutMs: 5000 })).toMatchObject({ exitstatus: "WARNINGS: 1" });
    const weak = await cluster({ privs: PROVIDER_PRIVS.filter((p) => p !== "Datastore.Allocate") });
    const e = (await failure(client(weak).deleteVolume("pve1", "local", "local:iso/seed.iso"))) as PveApiError;
    expect(e.missingPrivilege).toEqual({ path: "/storage/local", privileges: ["Datastore.Allocate"], any: false });
  });

  it("attaches an ISO as a CD-ROM, which needs VM.Config.CDROM on the VM", async () => {
    const d = await cluster({ vms: [{ node: "pve1", vmid: 100, name: "a", disk: { storage: "local-lvm", sizeGiB: 1 } }] });
    await client(d).setConfigSync("pve1", 100, { drives: { ide2: "local:iso/seed.iso,media=cdrom" } });
    expect(d.inspectVm(100)!.config.ide2).toBe("local:iso/seed.iso,media=cdrom");
    const weak = await cluster({ privs: PROVIDER_PRIVS.filter((p) => p !== "VM.Config.CDROM"), vms: [{ node: "pve1", vmid: 100, name: "a" }] });
    const e = (await failure(client(weak).setConfigSync("pve1", 100, { drives: { ide2: "local:iso/seed.iso,media=cdrom" } }))) as PveApiError;
    expect(e.missingPrivilege).toEqual({ path: "/vms/100", privileges: ["VM.Config.CDROM"], any: false });
    expect(() => configParams({ drives: { net0: "x" } })).toThrow(/not a drive key/);
  });

  it("needs Datastore.AllocateTemplate on the storage to upload", async () => {
    const d = await cluster({ privs: PROVIDER_PRIVS.filter((p) => p !== "Datastore.AllocateTemplate") });
    const e = (await failure(client(d).uploadIso("pve1", "local", "seed.iso", new Uint8Array(1)))) as PveApiError;
    expect(e.missingPrivilege).toEqual({ path: "/storage/local", privileges: ["Datastore.AllocateTemplate"], any: false });
  });
});

describe("guest agent", () => {
  it("runs a command in the guest: exec gives a pid, exec-status the exit code and output", async () => {
    const clock = new FakeClock();
    const seen: string[][] = [];
    const d = await cluster({
      now: clock.now,
      vms: [{
        node: "pve1", vmid: 100, name: "a", running: true,
        guest: { exec: (cmd) => (seen.push(cmd), { exitcode: 1, out: "degraded\n", err: "", runMs: 2500 }) },
      }],
    });
    const c = client(d);
    const r = await c.agentRun("pve1", 100, ["systemctl", "is-system-running"], { timeoutMs: 30_000, pollMs: 1000, clock });
    expect(r).toEqual({ exitcode: 1, signal: null, out: "degraded\n", err: "" });
    expect(seen).toEqual([["systemctl", "is-system-running"]]);
    expect(d.requests.find((x) => x.route?.endsWith("/agent/exec"))!.body.toString()).toBe("command=systemctl&command=is-system-running");
  });

  it("gives up on a guest command that does not exit in time, naming VM, command and pid", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, vms: [{ node: "pve1", vmid: 100, name: "a", running: true, guest: { exec: () => ({ exitcode: 0, runMs: Infinity }) } }] });
    const e = (await failure(client(d).agentRun("pve1", 100, ["sleep", "infinity"], { timeoutMs: 5000, clock }))) as PveGuestCommandError;
    expect(e).toBeInstanceOf(PveGuestCommandError);
    expect(e.message).toBe("host pve1: VM 100: guest command sleep infinity (pid 1000) did not exit within 5000 ms");
  });

  it("reads the guest's network interfaces", async () => {
    const ifaces = [{ name: "eth0", "hardware-address": "bc:24:11:00:00:01", "ip-addresses": [{ "ip-address-type": "ipv4", "ip-address": "10.0.0.21", prefix: 24 }] }];
    const d = await cluster({ vms: [{ node: "pve1", vmid: 100, name: "a", running: true, guest: { interfaces: ifaces } }] });
    expect(await client(d).agentNetworkGetInterfaces("pve1", 100)).toEqual(ifaces);
  });

  it("fails agent calls with PVE's messages when the VM is stopped, has no agent, or the agent does not answer", async () => {
    const d = await cluster({
      vms: [
        { node: "pve1", vmid: 100, name: "stopped" },
        { node: "pve1", vmid: 101, name: "noagent", running: true, agent: false },
        { node: "pve1", vmid: 102, name: "booting", running: true, guest: { agentRunning: false } },
      ],
    });
    const c = client(d);
    const msg = async (id: number) => ((await failure(c.agentNetworkGetInterfaces("pve1", id))) as PveApiError).pveMessage;
    expect(await msg(100)).toBe("VM 100 is not running");
    expect(await msg(101)).toBe("No QEMU guest agent configured");
    expect(await msg(102)).toBe("QEMU guest agent is not running");
  });
});

describe("cluster resources", () => {
  it("lists nodes, VMs and storages in one call, with an offline node and its VMs marked", async () => {
    const d = await cluster({ vms: [{ node: "pve1", vmid: 9000, name: "t", template: true, disk: { storage: "local-lvm", sizeGiB: 4 } }, { node: "pve3", vmid: 300, name: "x", running: true }] });
    await d.setOnline("pve3", false);
    const all = await client(d, ["pve1"]).clusterResources();
    const byId = new Map(all.map((r) => [r.id, r as Record<string, unknown>]));
    expect(byId.get("node/pve3")).toMatchObject({ status: "offline", maxcpu: 8 });
    expect(byId.get("node/pve3")!.mem).toBeUndefined();
    expect(byId.get("node/pve1")).toMatchObject({ status: "online", maxcpu: 8, maxmem: 32768 * 1024 ** 2 });
    expect(byId.get("qemu/300")).toMatchObject({ status: "unknown", node: "pve3" });
    expect(byId.get("qemu/9000")).toMatchObject({ status: "stopped", template: 1, name: "t" });
    expect(byId.get("storage/pve2/ceph")).toMatchObject({ shared: 1, content: "images", plugintype: "rbd", status: "available" });
    expect(byId.get("storage/pve3/local-lvm")).toMatchObject({ status: "unknown" });
  });
});
