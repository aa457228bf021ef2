// The proxmox adapter against a TEST DOUBLE of a PVE cluster (testing/pve-double.ts): it follows the PVE API schema
// and PVE's behaviour as read in its sources, but it is not a real Proxmox VE. What every adapter must do is the
// contract suite's (proxmox-provider.contract.test.ts); here is what is PVE's own: one call per observation, nodes
// offline or hung, templates per node or on shared storage, the seed ISO or PVE's cloud-init keys, clone and
// delete races, the guest agent, pause and resume, counters.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { HostConfig } from "../../config/types.js";
import type { HostObservation, KnownInstance, TemplateQuery, VmSpec } from "../provider.js";
import type { ProxmoxTemplateSettings } from "./config.js";
import { decodeSshKeys } from "./pve-client.js";
import { ProxmoxProvider, type ProxmoxProviderOptions } from "./proxmox-provider.js";
import { makeClusterCerts, type TestClusterCerts } from "./testing/pve-certs.js";
import type { PveDouble, PveDoubleVm } from "./testing/pve-double.js";
import { TEST_ENV, doubleHost, pveVmSpec, remainsOf, seedTemplate, writeCaFile } from "./testing/pve-harness.js";
import { FakeClock, PROVIDER_PRIVS, startTestCluster, testClient, type TestClusterOptions } from "./testing/pve-test-cluster.js";

const NODES = ["pve1", "pve2", "pve3"];
let certs: TestClusterCerts;
let caFile: string;
beforeAll(() => {
  certs = makeClusterCerts(NODES);
  caFile = writeCaFile(certs);
});
afterAll(() => rmSync(join(caFile, ".."), { recursive: true, force: true }));

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

const local = (node: string, vmid: number, name = "tmpl", extra: Partial<PveDoubleVm> = {}): PveDoubleVm => ({
  node,
  vmid,
  name,
  template: true,
  disk: { storage: "local-lvm", sizeGiB: 4 },
  ...extra,
});

async function cluster(o: TestClusterOptions = {}): Promise<PveDouble> {
  const d = await startTestCluster(certs, { nodes: ["pve1", "pve2", "pve3"], vms: [local("pve1", 9000), local("pve2", 9001)], ...o });
  open.push(d);
  return d;
}

function host(d: PveDouble, node: string, o: Partial<Parameters<typeof doubleHost>[1]> = {}): HostConfig {
  return doubleHost(d, { node, nodes: NODES, caFile, ...o });
}

function provider(d: PveDouble, node: string, o: ProxmoxProviderOptions & { host?: Partial<Parameters<typeof doubleHost>[1]> } = {}): ProxmoxProvider {
  const { host: h, ...options } = o;
  const p = new ProxmoxProvider(host(d, node, h), { env: TEST_ENV, ...options });
  open.push(p);
  return p;
}

const query = (settings: Partial<ProxmoxTemplateSettings> = {}, template = "tmpl"): TemplateQuery => ({ vcpus: 2, memoryMiB: 1024, settings: seedTemplate(template, settings) });

async function observe(p: ProxmoxProvider, q: TemplateQuery = query(), known: ReadonlyMap<string, KnownInstance> = new Map()): Promise<Extract<HostObservation, { status: "ok" }>> {
  const o = await p.observe({ known, templates: new Map([["web", q]]) });
  if (o.status !== "ok") throw new Error(`unreachable: ${o.error}`);
  return o;
}

/** A spec of group web from the adapter's own fit answer, as apply hands it over. */
async function spec(p: ProxmoxProvider, q: TemplateQuery = query(), overrides: Partial<VmSpec> = {}): Promise<VmSpec> {
  const fit = (await observe(p, q)).fits.web!;
  if (!fit.ok) throw new Error(`no fit: ${fit.reason}`);
  return pveVmSpec("web", fit.settings, { vcpus: q.vcpus, memoryMiB: q.memoryMiB, ...overrides });
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure");
}

/** The VM the double holds under a name. */
function vmNamed(d: PveDouble, name: string): { vmid: number; node: string; status: string; config: Readonly<Record<string, string>> } {
  for (const r of d.requests) {
    if (r.route === "POST /nodes/{node}/qemu/{vmid}/clone" && r.params.name === name) {
      const vm = d.inspectVm(Number(r.params.newid));
      if (vm?.config.name === name) return { vmid: Number(r.params.newid), ...vm };
    }
  }
  throw new Error(`no VM ${name}`);
}

describe("observe", () => {
  it("reads the node's capacity, VMs and storages from one /cluster/resources call through the node's own endpoint", async () => {
    const d = await cluster();
    const p = provider(d, "pve2");
    const s = await spec(p);
    await p.createVm(s);
    const known = new Map([[s.name, { uuid: s.uuid, group: "web", lineage: s.lineage, createdAt: s.createdAt }]]);
    const before = d.requests.length;
    const o = await observe(p, query(), known);
    const calls = d.requests.slice(before);
    // The template's config was read by the first observation; state knows the VM: one call.
    expect(calls.map((r) => `${r.server} ${r.method} ${r.path}`)).toEqual(["pve2 GET /cluster/resources"]);
    expect(o.capacity).toMatchObject({ cpus: 8, memoryMiB: 32768, allocatedVcpus: 2 });
    // 2 GiB the node uses itself, 1 GiB the running VM.
    expect(o.capacity.freeMemoryMiB).toBe(32768 - 2048 - 1024);
    expect(o.capacity.resources["storage:local-lvm"]).toMatchObject({ label: 'storage "local-lvm"', unit: "bytes", capacity: 500 * 1024 ** 3 });
    expect(o.capacity.resources["storage:ceph"]).toBeDefined();
    expect(o.capacity.resources["storage:local"]).toBeUndefined(); // takes no VM disks
    expect(o.vms).toEqual([{ name: s.name, uuid: s.uuid, group: "web", lineage: s.lineage, createdAt: s.createdAt, state: "running" }]);
    expect(o.fits.web).toMatchObject({ ok: true, demand: { "storage:local-lvm": 4 * 1024 ** 3 } });
  });

  it("a new adapter reads the marker of a VM state does not know, once, and lists a half-made one (never configured) from it", async () => {
    const d = await cluster();
    const s = await spec(provider(d, "pve1"));
    let died = false;
    await provider(d, "pve1")
      .createVm(s, {
        onStep: (step) => {
          if (step === "configure") throw ((died = true), new Error("died"));
        },
      })
      .catch(() => undefined);
    expect(died).toBe(true);
    const p = provider(d, "pve1");
    const o = await observe(p);
    expect(o.vms).toEqual([{ name: s.name, uuid: s.uuid, group: "web", lineage: s.lineage, createdAt: s.createdAt, state: "stopped" }]);
    const reads = () => d.requests.filter((r) => r.route === "GET /nodes/{node}/qemu/{vmid}/config" && r.path !== "/nodes/pve1/qemu/9000/config").length;
    const n = reads();
    await observe(p);
    expect(reads()).toBe(n);
  });

  it("says a node that is offline is offline (asking the cluster through another node) and skips it", async () => {
    const d = await cluster();
    await d.setOnline("pve2", false);
    const o = await provider(d, "pve2").observe({ known: new Map(), templates: new Map() });
    expect(o).toEqual({
      host: "pve2",
      status: "unreachable",
      error: "PVE node pve2 is offline in cluster test (as its other nodes report): it is skipped (its VMs are left as they are; new VMs go to other hosts)",
    });
  });

  it("a node that hangs stalls only its own host: the other node's observation finishes meanwhile", async () => {
    const d = await cluster();
    d.freeze("pve2");
    const hung = provider(d, "pve2", { callTimeoutMs: 800 });
    const t0 = performance.now();
    let hungDone = 0;
    const slow = hung.observe({ known: new Map(), templates: new Map() }).then((o) => ((hungDone = performance.now() - t0), o));
    const fine = await observe(provider(d, "pve1"));
    const fineMs = performance.now() - t0;
    expect(fine.status).toBe("ok");
    expect(hungDone).toBe(0);
    const o = await slow;
    expect(o.status).toBe("unreachable");
    expect(o.status === "unreachable" && o.error).toMatch(/no answer from node pve2 \(127\.0\.0\.1:\d+\) within 800 ms/);
    expect(fineMs).toBeLessThan(800);
    d.thaw("pve2");
  });

  it("names a node the cluster does not have", async () => {
    const d = await cluster();
    const o = await provider(d, "pve1", { host: { node: "pve9", nodes: ["pve1"] } }).observe({ known: new Map(), templates: new Map() });
    expect(o.status === "unreachable" && o.error).toBe("PVE cluster test has no node pve9 (its nodes: pve1, pve2, pve3); set hosts[].node to one of them");
  });

  it("names the privilege when a token may not audit the nodes (Sys.Audit)", async () => {
    const d = await cluster({ privs: PROVIDER_PRIVS.filter((x) => x !== "Sys.Audit") });
    const o = await provider(d, "pve1").observe({ known: new Map(), templates: new Map() });
    expect(o.status === "unreachable" && o.error).toMatch(/node pve1 is listed without CPU and memory figures; the token premiscale@pve!ci lacks Sys\.Audit on \/nodes\/pve1/);
  });
});

describe("templates and placement", () => {
  it("uses the node's own copy of a local-storage template, and explains a node without one", async () => {
    const d = await cluster();
    const on2 = await observe(provider(d, "pve2"));
    expect(on2.fits.web).toMatchObject({ ok: true, settings: { proxmox: { node: "pve2", template: { node: "pve2", vmid: 9001, name: "tmpl" } } } });
    const on3 = await observe(provider(d, "pve3"));
    expect(on3.fits.web).toEqual({
      ok: false,
      reason:
        'template "tmpl" is on node pve1, not on pve3, and its disk scsi0 is on storage "local-lvm", which is not shared: put a copy of the template on node pve3 (same name), or its disks on shared storage',
    });
  });

  it("clones a template on shared storage from its node onto another node (target), and counts its disk there", async () => {
    const d = await cluster({ vms: [local("pve1", 9000, "shared", { disk: { storage: "ceph", sizeGiB: 8 } })] });
    const p = provider(d, "pve3");
    const o = await observe(p, query({}, "shared"));
    expect(o.fits.web).toMatchObject({ ok: true, demand: { "storage:ceph": 8 * 1024 ** 3 }, settings: { proxmox: { template: { node: "pve1", vmid: 9000 } } } });
    const s = await spec(p, query({}, "shared"));
    await p.createVm(s);
    const clone = d.requests.find((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/clone" && r.status === 200)!;
    expect(clone).toMatchObject({ server: "pve1", path: "/nodes/pve1/qemu/9000/clone", params: expect.objectContaining({ target: "pve3" }) });
    expect(vmNamed(d, s.name)).toMatchObject({ node: "pve3", status: "running" });
  });

  it("finds a template by tag, and says so when none is visible", async () => {
    const d = await cluster({ vms: [local("pve1", 9000, "whatever", { tags: ["web-tmpl"] })] });
    const o = await observe(provider(d, "pve1"), { vcpus: 1, memoryMiB: 512, settings: { ...seedTemplate(), template: { tag: "web-tmpl" } } });
    expect(o.fits.web).toMatchObject({ ok: true, settings: { proxmox: { template: { vmid: 9000, name: "whatever" } } } });
    const none = await observe(provider(d, "pve1"), { vcpus: 1, memoryMiB: 512, settings: { ...seedTemplate(), template: { tag: "nope" } } });
    expect(none.fits.web).toEqual({ ok: false, reason: 'no the template tagged "nope" in PVE cluster test (a token without VM.Audit on it does not see it either)' });
  });

  it("counts a disk grown by diskGiB, and a full clone on its target storage", async () => {
    const d = await cluster();
    const o = await observe(provider(d, "pve1"), query({ clone: "full", storage: "ceph", diskGiB: 20 }));
    expect(o.fits.web).toMatchObject({ ok: true, demand: { "storage:ceph": 20 * 1024 ** 3 }, settings: { proxmox: { full: true, storage: "ceph", diskGiB: 20 } } });
  });

  it("refuses PVE's own cloud-init for a template without a cloud-init drive, naming the qm command", async () => {
    const d = await cluster();
    d.addVm({ node: "pve1", vmid: 9100, name: "bare", template: true, disk: { storage: "local-lvm", sizeGiB: 2 }, cloudInitDrive: false });
    const o = await observe(provider(d, "pve1"), query({ cloudInit: "proxmox" }, "bare"));
    expect(o.fits.web).toEqual({
      ok: false,
      reason: 'template "bare" (VM 9100 on node pve1) has no cloud-init drive, which cloudInit: proxmox needs: add one (`qm set 9100 --ide2 local-lvm:cloudinit`), or use cloudInit: seed',
    });
    // premiscale's own seed needs none.
    expect((await observe(provider(d, "pve1"), query({}, "bare"))).fits.web).toMatchObject({ ok: true });
  });
});

describe("createVm", () => {
  it("clones linked, then sets size, tags and premiscale's seed ISO in place of the template's cloud-init drive, and starts", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const s = await spec(p, query({ diskGiB: 10, searchDomains: ["lab.example"] }), {
      network: { mode: "static", address: "10.0.0.50", prefix: 24, gateway: "10.0.0.1", dns: ["10.0.0.53"] },
      userData: "#cloud-config\nruncmd: [[echo, hello]]\n",
    });
    await p.createVm(s);
    const vm = vmNamed(d, s.name);
    expect(vm.status).toBe("running");
    expect(vm.config).toMatchObject({ cores: "2", sockets: "1", memory: "1024", tags: `premiscale;premiscale-${s.uuid}` });
    expect(vm.config.description).toContain(`premiscale:v1 instance=${s.uuid} group=web lineage=${s.lineage} created=${s.createdAt}`);
    expect(vm.config.ide2).toBe(`local:iso/${s.name}-seed.iso,media=cdrom`);
    expect(vm.config.scsi0).toMatch(/size=10G/);
    const clone = d.requests.find((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/clone")!;
    expect(clone.params.full).toBe("0");
    const iso = d.uploadedBytes("pve1", `local:iso/${s.name}-seed.iso`)!.toString("latin1");
    const mac = /virtio=([0-9A-F:]{17})/.exec(vm.config.net0!)![1]!.toLowerCase();
    expect(iso).toContain(`macaddress: "${mac}"`);
    expect(iso).toContain("addresses: [10.0.0.50/24]");
    expect(iso).toContain("via: 10.0.0.1");
    expect(iso).toContain("search: [lab.example]");
    expect(iso).toContain("runcmd: [[echo, hello]]");
    expect(iso).toContain(`local-hostname: ${s.name}`);
  });

  it("with PVE's own cloud-init: ipconfig0, nameserver, searchdomain, ciuser and sshkeys, and no ISO", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq+0/3zR7 ops@example";
    const s = await spec(p, query({ cloudInit: "proxmox", ciUser: "debian", sshKeys: [key], searchDomains: ["lab.example"] }), {
      userData: "",
      network: { mode: "static", address: "10.0.0.51", prefix: 24, gateway: "10.0.0.1", dns: ["10.0.0.53", "10.0.0.54"] },
    });
    await p.createVm(s);
    const vm = vmNamed(d, s.name);
    expect(vm.config).toMatchObject({ ipconfig0: "ip=10.0.0.51/24,gw=10.0.0.1", nameserver: "10.0.0.53 10.0.0.54", searchdomain: "lab.example", ciuser: "debian" });
    expect(decodeSshKeys(vm.config.sshkeys!)).toEqual([key]);
    expect(vm.config.ide2).toMatch(/cloudinit/);
    expect(d.volumeIds("local")).toEqual([]);
  });

  it("with PVE's own cloud-init, refuses user-data before making anything, saying why and what to do", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const s = await spec(p, query({ cloudInit: "proxmox" }));
    const e = await failure(p.createVm(s));
    expect(e.message).toMatch(/create web-[0-9a-f]{8}: group web's user-data .* cannot reach the guest through PVE's cloud-init drive .*; use cloudInit: seed, or remove the user-data and set readiness\.checkIn: false/);
    expect(d.requests.filter((r) => r.method !== "GET")).toEqual([]);
  });

  it("fully clones into another storage on request", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const s = await spec(p, query({ clone: "full", storage: "ceph" }));
    await p.createVm(s);
    const clone = d.requests.find((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/clone")!;
    expect(clone.params).toMatchObject({ full: "1", storage: "ceph" });
    expect(vmNamed(d, s.name).config.scsi0).toMatch(/^ceph:vm-\d+-disk-0/);
  });

  it("reports a failed clone with node, VM, template and PVE's text, and leaves nothing of it", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const s = await spec(p);
    d.failNextTask("qmclone", "clone failed: storage 'local-lvm' is full", 9000);
    const e = await failure(p.createVm(s));
    expect(e.message).toMatch(/^host pve1: create web-[0-9a-f]{8}: clone of template tmpl \(VM 9000 on node pve1\): task qmclone of VM 9000 on node pve1 failed: clone failed: storage 'local-lvm' is full; see its log: `pvenode task log pve1 UPID:pve1:/);
    expect(remainsOf(d, s.name)).toEqual([]);
  });

  it("refuses to clone when the plan's template id no longer holds that template, making nothing", async () => {
    const d = await cluster();
    d.addVm({ node: "pve1", vmid: 9100, name: "someones-vm", disk: { storage: "local-lvm", sizeGiB: 2 } });
    const p = provider(d, "pve1");
    const s = await spec(p);
    const stale = { ...s, settings: { proxmox: { ...(s.settings.proxmox as object), template: { node: "pve1", vmid: 9100, name: "tmpl" } } } };
    const e = await failure(p.createVm(stale));
    expect(e.message).toMatch(/VM 9100 on node pve1 is no longer template tmpl \(the plan was made before it changed\); run premiscale plan again/);
    expect(d.requests.filter((r) => r.method !== "GET")).toEqual([]);
  });

  it("takes another id when a parallel clone took the one /cluster/nextid gave", async () => {
    const d = await cluster({ workerStartDelayMs: 300 });
    const p = provider(d, "pve1");
    const specs = await Promise.all([spec(p), spec(p), spec(p)]);
    await Promise.all(specs.map((s) => p.createVm(s)));
    const ids = specs.map((s) => vmNamed(d, s.name).vmid);
    expect(new Set(ids).size).toBe(3);
    const asked = d.requests.filter((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/clone").map((r) => r.params.newid);
    expect(asked.length).toBeGreaterThan(3);
  });

  it("waits for the guest agent to report an address and a running system, counted from the clone's end", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now, taskMs: { qmclone: 600_000 } });
    // Clones get the template's guest: booting for three looks, then up.
    let looks = 0;
    d.setGuest(9000, {
      interfaces: [{ name: "lo", "ip-addresses": [{ "ip-address-type": "ipv4", "ip-address": "127.0.0.1", prefix: 8 }] }, { name: "eth0", "ip-addresses": [{ "ip-address-type": "ipv4", "ip-address": "10.0.0.9", prefix: 24 }] }],
      exec: () => (++looks > 3 ? { exitcode: 0, out: "running\n" } : { exitcode: 1, out: "starting\n" }),
    });
    const p = provider(d, "pve1", { clock, host: { taskTimeoutSeconds: 3600 } });
    const s = await spec(p, query({ guestAgent: { timeoutSeconds: 120 } }));
    const t0 = clock.t;
    await p.createVm(s);
    // The 10-minute clone did not count against the guest's 2 minutes.
    expect(clock.t - t0).toBeGreaterThanOrEqual(600_000);
    expect(looks).toBe(4);
    const execs = d.requests.filter((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/agent/exec");
    expect(execs[0]!.params.command).toEqual(["systemctl", "is-system-running"]);
    expect(vmNamed(d, s.name).config.agent).toBe("1");
  });

  it("gives up on a guest agent that never answers, saying what it saw and what to do", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now });
    d.setGuest(9000, { agentRunning: false });
    const p = provider(d, "pve1", { clock });
    const s = await spec(p, query({ guestAgent: { timeoutSeconds: 30 } }));
    const t0 = clock.t;
    const e = await failure(p.createVm(s));
    expect(e.message).toMatch(
      /^host pve1: create web-[0-9a-f]{8} \(VM \d+ on node pve1\): the QEMU guest agent did not report the guest up in time \(counted from the clone's end\): QEMU guest agent is not running; install and enable qemu-guest-agent in the template, or raise guestAgent\.timeoutSeconds$/,
    );
    expect(clock.t - t0).toBeGreaterThanOrEqual(30_000);
    expect(clock.t - t0).toBeLessThan(35_000);
  });
});

describe("destroyVm", () => {
  it("powers off a guest that ignores ACPI after the shutdown timeout, and deletes it with its disks and seed", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const s = await spec(p);
    await p.createVm(s);
    d.setGuest(vmNamed(d, s.name).vmid, { acpiShutdownMs: Infinity });
    const steps: string[] = [];
    await p.destroyVm(s, { shutdownTimeoutMs: 1000, onStep: (x) => steps.push(x) });
    expect(steps).toEqual(["stop", "delete"]);
    expect(d.taskList().filter((t) => ["qmshutdown", "qmstop", "qmdestroy"].includes(t.type)).map((t) => `${t.type} ${t.exitstatus}`)).toEqual([
      "qmshutdown VM quit/powerdown failed - got timeout",
      "qmstop OK",
      "qmdestroy OK",
    ]);
    expect(d.requests.find((r) => r.route === "DELETE /nodes/{node}/qemu/{vmid}")!.params).toMatchObject({ purge: "1", "destroy-unreferenced-disks": "1" });
    expect(remainsOf(d, s.name)).toEqual([]);
  });

  it("retries a delete that races a stop (the VM runs again) until the VM is really gone", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const s = await spec(p);
    await p.createVm(s);
    const vmid = vmNamed(d, s.name).vmid;
    // Between premiscale's stop and its delete, something (HA, a person) starts the VM again.
    d.failNextTask("qmdestroy", `VM ${vmid} is running - destroy failed`, vmid);
    await p.destroyVm(s, { shutdownTimeoutMs: 1000 });
    expect(d.taskList().filter((t) => t.type === "qmdestroy").map((t) => t.exitstatus)).toEqual([`VM ${vmid} is running - destroy failed`, "OK"]);
    expect(remainsOf(d, s.name)).toEqual([]);
  });

  it("never deletes the VM that took over a deleted VM's id before premiscale looked again", async () => {
    const d = await cluster({ taskMs: { qmdestroy: 300 } });
    const p = provider(d, "pve1");
    const s = await spec(p);
    await p.createVm(s);
    const vmid = vmNamed(d, s.name).vmid;
    const destroying = p.destroyVm(s, { shutdownTimeoutMs: 1000 });
    // Someone else's clone takes the id the moment PVE has freed it, while premiscale still waits for its delete task.
    const other = testClient(d, certs, NODES);
    open.push(other);
    while (d.inspectVm(vmid)) await new Promise((r) => setTimeout(r, 5));
    await other.waitTask("pve1", await other.clone("pve1", 9000, { newid: vmid, name: "someone-else" }), { timeoutMs: 5000, pollMs: 10 });
    await destroying;
    expect(d.inspectVm(vmid)).toMatchObject({ config: expect.objectContaining({ name: "someone-else" }) });
    expect(d.requests.filter((r) => r.route === "DELETE /nodes/{node}/qemu/{vmid}")).toHaveLength(1);
  });

  it("needs Datastore.Allocate on the ISO storage to remove the seed, and says so", async () => {
    const d = await cluster({ privs: PROVIDER_PRIVS.filter((x) => x !== "Datastore.Allocate") });
    const p = provider(d, "pve1");
    const s = await spec(p);
    await p.createVm(s);
    const e = await failure(p.destroyVm(s, { shutdownTimeoutMs: 1000 }));
    expect(e.message).toMatch(/destroy web-[0-9a-f]{8}: removing its cloud-init seed: DELETE \/nodes\/pve1\/storage\/local\/content\/local:iso\/web-[0-9a-f]{8}-seed\.iso failed: 403 Permission check failed \(\/storage\/local, Datastore\.Allocate\)/);
  });
});

describe("pause and resume (a paused warm pool)", () => {
  it("pauses in memory with a qmpause task (never todisk), lists the VM paused with its vCPUs and memory still taken, and resumes it with qmresume", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const s = await spec(p);
    await p.createVm(s);
    const steps: string[] = [];
    await p.pauseVm(s, { onStep: (x) => steps.push(x) });
    expect(steps).toEqual(["pause"]);
    const suspend = d.requests.find((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/status/suspend")!;
    expect(suspend.params).not.toHaveProperty("todisk");
    const vmid = vmNamed(d, s.name).vmid;
    expect(d.inspectVm(vmid)).toMatchObject({ status: "running", qmpstatus: "paused" });
    const known = new Map([[s.name, { uuid: s.uuid, group: "web", lineage: s.lineage, createdAt: s.createdAt }]]);
    const o = await observe(p, query(), known);
    expect(o.vms.map((v) => v.state)).toEqual(["paused"]);
    expect(o.capacity).toMatchObject({ allocatedVcpus: 2, freeMemoryMiB: 32768 - 2048 - 1024 });
    await p.startVm(s, { onStep: (x) => steps.push(x) });
    expect(steps).toEqual(["pause", "start"]);
    expect(d.inspectVm(vmid)).toMatchObject({ status: "running", qmpstatus: "running" });
    expect(d.taskList().filter((t) => ["qmpause", "qmresume", "qmstart"].includes(t.type)).map((t) => `${t.type} ${t.exitstatus}`)).toEqual(["qmstart OK", "qmpause OK", "qmresume OK"]);
  });

  it("stops a paused VM by resuming it first (PVE refuses to shut a paused VM down), and destroys one without a shutdown", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const a = await spec(p);
    const b = await spec(p);
    await p.createVm(a);
    await p.createVm(b);
    await p.pauseVm(a);
    await p.pauseVm(b);
    await p.stopVm(a, { shutdownTimeoutMs: 5000 });
    expect(d.inspectVm(vmNamed(d, a.name).vmid)).toMatchObject({ status: "stopped", qmpstatus: "stopped" });
    const aid = String(vmNamed(d, a.name).vmid);
    expect(d.taskList().filter((t) => t.id === aid && ["qmresume", "qmshutdown", "qmstop"].includes(t.type)).map((t) => t.type)).toEqual(["qmresume", "qmshutdown"]);
    const bid = String(vmNamed(d, b.name).vmid);
    await p.destroyVm(b, { shutdownTimeoutMs: 60_000 });
    expect(d.taskList().filter((t) => t.id === bid && ["qmresume", "qmshutdown", "qmstop", "qmdestroy"].includes(t.type)).map((t) => t.type)).toEqual(["qmstop", "qmdestroy"]);
    expect(remainsOf(d, b.name)).toEqual([]);
  });

  it("refuses to pause a stopped VM with not_running, before PVE is asked to", async () => {
    const d = await cluster();
    const p = provider(d, "pve1");
    const s = await spec(p);
    await p.createVm(s);
    await p.stopVm(s, { shutdownTimeoutMs: 1000 });
    const e = await failure(p.pauseVm(s));
    expect(e).toMatchObject({ code: "not_running", message: expect.stringMatching(/^host pve1: pause web-[0-9a-f]{8} \(VM \d+ on node pve1\): the VM is stopped, so it cannot be paused/) });
    expect(d.requests.some((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/status/suspend")).toBe(false);
  });
});

describe("counters", () => {
  it("reads each VM's counters from one call, integrating PVE's CPU fraction into CPU time", async () => {
    const clock = new FakeClock();
    const d = await cluster({ now: clock.now });
    const p = provider(d, "pve1", { clock });
    const s = await spec(p);
    await p.createVm(s);
    const [a] = await p.counters([s.name, "nope-00000000"]);
    clock.t += 10_000;
    const [b] = await p.counters([s.name]);
    expect(a).toMatchObject({ name: s.name, vcpus: 2, blockReadBytes: 0, netRxBytes: 0, balloonCurrentKiB: 1024 * 1024 });
    // The double reports 2 % of 2 vCPUs: 0.04 CPU-seconds per second.
    expect(b!.cpuTimeNs! - a!.cpuTimeNs!).toBe(Math.round(0.02 * 2 * 10 * 1e9));
    expect(b!.at - a!.at).toBe(10_000);
    expect(b!.balloonUsableKiB).toBe(Math.round((1024 * 1024 ** 2 * 0.6) / 1024));
  });
});
