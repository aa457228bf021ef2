import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PveClient } from "./pve-client.js";
import { makeClusterCerts } from "./testing/pve-certs.js";
import { BEYOND_SCHEMA, PVE_DOUBLE_ROUTES, type PveDouble } from "./testing/pve-double.js";
import { parseSpec, specKey, validateParams, valueHasType, type PveParamTable } from "./testing/pve-schema.js";
import { FakeClock, startTestCluster, testClient } from "./testing/pve-test-cluster.js";

// Drift between the client, the double and the real API shows up here: the double's parameter table must equal our
// excerpt of pve-docs api-viewer/apidata.js, everything the double answers must be in the schema with PVE's types,
// and everything the client sends must pass the schema's checks.

interface Excerpt {
  endpoints: Record<string, { permission: string; params: PveParamTable; returns: string | { array: PveParamTable } | { object: PveParamTable } }>;
}
const excerpt = JSON.parse(readFileSync(new URL("./testdata/pve-api-excerpt.json", import.meta.url), "utf8")) as Excerpt;

let double: PveDouble;
let client: PveClient;

beforeAll(async () => {
  const certs = makeClusterCerts(["pve1", "pve2"]);
  const clock = new FakeClock();
  double = await startTestCluster(certs, { nodes: ["pve1", "pve2"], now: clock.now, taskMs: { qmclone: 2000, qmstart: 1000, imgcopy: 500 } });
  client = testClient(double, certs, ["pve1", "pve2"]);
  const wait = (node: string, upid: string) => client.waitTask(node, upid, { timeoutMs: 60_000, clock });

  // One pass through every endpoint the client has, the way the provider will use them.
  await client.clusterResources();
  await client.clusterResources("node");
  await client.clusterResources("storage");
  await client.clusterResources("vm");
  const id = await client.nextId();
  await client.listVms("pve1");
  await wait("pve1", await client.clone("pve1", 9000, { newid: id, name: "web-1", description: "premiscale instance" }));
  await wait("pve1", await client.clone("pve1", 9001, { newid: id + 1, full: true, storage: "ceph", format: "raw", target: "pve2" }));
  const cfg = await client.getConfig("pve1", id, { current: true });
  const upid = await client.setConfig("pve1", id, {
    cores: 2, sockets: 1, memoryMiB: 2048, name: "web-1", onboot: false, agent: "enabled=1", ciuser: "debian", cipassword: "x",
    citype: "nocloud", ciupgrade: false, cicustom: { user: "local:snippets/u.yaml" }, nameserver: ["10.0.0.53"], searchdomain: ["lab"],
    sshkeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq+0/3zR7 a@b"], ipconfig: { 0: { ip: "10.0.0.5/24", gw: "10.0.0.1" } },
    tags: ["premiscale"], digest: cfg.digest,
  });
  await wait("pve1", upid!);
  await client.setConfigSync("pve1", id, { delete: ["cipassword"], description: "d" });
  await wait("pve1", await client.resize("pve1", id, "scsi0", "+1G"));
  double.setGuest(id, { interfaces: [{ name: "eth0", "ip-addresses": [{ "ip-address-type": "ipv4", "ip-address": "10.0.0.5", prefix: 24 }] }], exec: () => ({ exitcode: 0, out: "running\n" }) });
  await wait("pve1", await client.start("pve1", id, { timeoutSeconds: 60 }));
  await client.statusCurrent("pve1", id);
  await wait("pve1", await client.suspend("pve1", id));
  await client.clusterResources("vm");
  await client.statusCurrent("pve1", id);
  await wait("pve1", await client.resume("pve1", id));
  await client.agentNetworkGetInterfaces("pve1", id);
  await client.agentRun("pve1", id, ["systemctl", "is-system-running"], { timeoutMs: 10_000, clock });
  await wait("pve1", await client.shutdown("pve1", id, { timeoutSeconds: 30, forceStop: true }));
  await wait("pve1", await client.start("pve1", id));
  await wait("pve1", await client.stop("pve1", id, { timeoutSeconds: 10, overruleShutdown: true }));
  await client.statusCurrent("pve1", id);
  await wait("pve1", await client.deleteVm("pve1", id, { purge: true, destroyUnreferencedDisks: true }));
  await wait("pve1", await client.uploadIso("pve1", "local", "seed.iso", new Uint8Array(2048)));
  await client.storageContent("pve1", "local", { content: "iso" });
  await wait("pve1", await client.clone("pve1", 9000, { newid: id + 2, name: "web-2" }));
  await client.setConfigSync("pve1", id + 2, { drives: { ide2: "local:iso/seed.iso,media=cdrom" } });
  await wait("pve1", await client.deleteVm("pve1", id + 2, { purge: true, destroyUnreferencedDisks: true }));
  await wait("pve1", await client.deleteVolume("pve1", "local", "local:iso/seed.iso"));
  await client.storageContent("pve2", "ceph", { vmid: id + 1 });
});

afterAll(async () => {
  client?.close();
  await double?.close();
});

describe("schema conformance (pve-docs apidata.js excerpt)", () => {
  it("the double serves exactly the endpoints of the excerpt", () => {
    expect(PVE_DOUBLE_ROUTES.map((r) => r.key).sort()).toEqual(Object.keys(excerpt.endpoints).sort());
  });

  it("every parameter of the double has the schema's name, type, optionality, enum, range, length, format and pattern", () => {
    for (const r of PVE_DOUBLE_ROUTES) {
      const want = excerpt.endpoints[r.key]!.params;
      expect(Object.keys(r.params).sort(), r.key).toEqual(Object.keys(want).sort());
      for (const [name, spec] of Object.entries(r.params)) expect(parseSpec(spec), `${r.key} ${name}`).toEqual(parseSpec(want[name]!));
    }
  });

  it("the pass through the client reached every endpoint, and PVE answered every call with success", () => {
    const reached = new Set(double.requests.map((q) => q.route));
    for (const key of Object.keys(excerpt.endpoints)) expect(reached.has(key), key).toBe(true);
    expect(double.requests.filter((q) => q.status !== 200)).toEqual([]);
  });

  it("every parameter the client sent is in the schema and passes its checks", () => {
    for (const q of double.requests) {
      const { errors } = validateParams(excerpt.endpoints[q.route!]!.params, q.params);
      expect(errors, `${q.method} ${q.path}`).toEqual({});
    }
  });

  it("every field the double answered is in the schema with PVE's type, and no required field is missing", () => {
    let checked = 0;
    for (const q of double.requests) {
      const returns = excerpt.endpoints[q.route!]!.returns;
      const beyond = BEYOND_SCHEMA[q.route!] ?? [];
      if (typeof returns === "string") {
        expect(valueHasType(parseSpec(returns), q.answer), `${q.route} answer ${JSON.stringify(q.answer)}`).toBe(true);
        checked++;
        continue;
      }
      const table = "array" in returns ? returns.array : returns.object;
      const items = "array" in returns ? (q.answer as unknown[]) : [q.answer];
      expect(Array.isArray(items), q.route!).toBe(true);
      for (const item of items as Array<Record<string, unknown>>) {
        for (const [k, v] of Object.entries(item)) {
          if (beyond.includes(k)) continue;
          const key = specKey(table, k);
          expect(key, `${q.route}: field ${k} is not in the schema`).toBeDefined();
          expect(valueHasType(parseSpec(table[key!]!), v), `${q.route}: field ${k} = ${JSON.stringify(v)}`).toBe(true);
          checked++;
        }
        for (const [k, spec] of Object.entries(table)) {
          if (!k.endsWith("[n]") && !parseSpec(spec).optional) expect(item, `${q.route}: required field ${k}`).toHaveProperty(k);
        }
      }
    }
    expect(checked).toBeGreaterThan(200);
  });
});
