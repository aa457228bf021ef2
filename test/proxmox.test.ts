// The built `premiscale` against a Proxmox VE cluster, end to end: the CLI in its own process, the cluster a TEST
// DOUBLE started in this process on 127.0.0.1 (providers/proxmox/testing/pve-double.ts). The double follows the PVE
// API schema field for field and PVE's behaviour as read in its sources, but it is not a real Proxmox VE: no guest
// boots on it, so readiness is off in these tests, except in one where the test plays the guest and posts the
// check-in that the seed ISO's cloud-init phone_home would.
import { rmSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { PveClient } from "../providers/proxmox/pve-client.js";
import type { PveVmResource } from "../providers/proxmox/pve-types.js";
import { makeClusterCerts, type TestClusterCerts } from "../providers/proxmox/testing/pve-certs.js";
import type { PveDouble, PveDoubleVm } from "../providers/proxmox/testing/pve-double.js";
import { blackHole, writeCaFile } from "../providers/proxmox/testing/pve-harness.js";
import {
  PROVIDER_PRIVS,
  TEST_SECRET,
  TEST_SECRET_ENV,
  startTestCluster,
  testClient,
  type TestClusterOptions,
} from "../providers/proxmox/testing/pve-test-cluster.js";
import { premiscale, projectDir, type CliRun } from "./support/cli.js";
import { freePort, spawnPremiscale } from "./support/serve.js";

const BIN = resolve(import.meta.dirname, "../dist/cli/main.js");
const ENV = { [TEST_SECRET_ENV]: TEST_SECRET };
const NODES = ["pve1", "pve2", "pve3"];
const TEMPLATE = "debian-12-cloud";

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

/** A double of `nodes`, the template on each of `templatesOn` (local storage: one copy per node, same name). */
async function cluster(o: TestClusterOptions & { templatesOn?: string[] } = {}): Promise<PveDouble> {
  const nodes = o.nodes ?? ["pve1", "pve2"];
  const vms: PveDoubleVm[] = (o.templatesOn ?? nodes).map((node, i) => ({
    node,
    vmid: 9000 + i,
    name: TEMPLATE,
    template: true,
    disk: { storage: "local-lvm", sizeGiB: 4 },
  }));
  const d = await startTestCluster(certs, { taskMs: { qmclone: 200, qmstart: 50, qmdestroy: 50 }, ...o, nodes, vms: o.vms ?? vms });
  open.push(d);
  return d;
}

function client(d: PveDouble, nodes: string[]): PveClient {
  const c = testClient(d, certs, nodes);
  open.push(c);
  return c;
}

interface ConfigOptions {
  /** Premiscale hosts, one per node. */
  hosts: string[];
  /** Nodes with an endpoint in `api`. @default every node of the double */
  endpoints?: string[];
  desired: number;
  max?: number;
  /** Per node: replaces its endpoint's url (an unreachable port) or adds a fingerprint (then no caFile). */
  url?: Record<string, string>;
  fingerprint?: Record<string, string>;
  callTimeoutSeconds?: number;
  /** The check-in server; absent: readiness off. */
  checkIn?: { port: number };
  parallel?: number;
}

function configText(d: PveDouble, o: ConfigOptions, nodes = ["pve1", "pve2"]): string {
  const eps = (o.endpoints ?? nodes).map((n) => {
    const url = o.url?.[n] ?? `https://127.0.0.1:${d.endpoint(n).port}`;
    return `        - { node: ${n}, url: "${url}"${o.fingerprint?.[n] ? `, fingerprint: "${o.fingerprint[n]}"` : ""} }`;
  });
  const hostLines = o.hosts.map((h, i) =>
    i === 0
      ? `  - name: ${h}
    kind: proxmox
    api: &test
      cluster: test
      endpoints:
${eps.join("\n")}
      tokenId: premiscale@pve!ci
      tokenSecretEnv: ${TEST_SECRET_ENV}
${o.fingerprint ? "" : `      caFile: ${caFile}\n`}    callTimeoutSeconds: ${o.callTimeoutSeconds ?? 5}
    maxParallel: ${o.parallel ?? 4}
    taskTimeoutSeconds: 60`
      : `  - name: ${h}
    kind: proxmox
    api: *test
    callTimeoutSeconds: ${o.callTimeoutSeconds ?? 5}
    maxParallel: ${o.parallel ?? 4}
    taskTimeoutSeconds: 60`,
  );
  return `version: v1alpha1
state:
  path: ./state
${o.checkIn ? `server:\n  listen: 127.0.0.1:${o.checkIn.port}\n  advertiseUrl: http://127.0.0.1:${o.checkIn.port}\n` : ""}hosts:
${hostLines.join("\n")}
groups:
  - name: web
    min: 0
    max: ${o.max ?? 8}
    desired: ${o.desired}
    hosts: [${o.hosts.join(", ")}]
    readiness:
      checkIn: ${o.checkIn ? "true\n      timeoutSeconds: 60" : "false"}
    template:
      vcpus: 1
      memoryMiB: 512
      userData: |
        #cloud-config
        runcmd: [[touch, /tmp/premiscale-was-here]]
      proxmox:
        template: ${TEMPLATE}
`;
}

const run = (dir: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> => premiscale(dir, args, { ...ENV, ...env }, { timeoutMs: 90_000 });
const noStackTrace = (s: string) => expect(s).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

async function setDesired(dir: string, n: number): Promise<void> {
  const file = join(dir, "premiscale.yaml");
  await writeFile(file, (await readFile(file, "utf8")).replace(/desired: \d+/, `desired: ${n}`));
}

interface StateInstance {
  name: string;
  uuid: string;
  host: string;
  status: string;
}

async function stateInstances(dir: string): Promise<StateInstance[]> {
  const r = await run(dir, ["state", "list", "--json"]);
  expect(r.code, r.stderr).toBe(0);
  const s = JSON.parse(r.stdout) as { groups: Array<{ instances: StateInstance[] }> };
  return s.groups.flatMap((g) => g.instances);
}

/**
 * The cluster holds exactly what state says and nothing else of premiscale's: every state instance is a running VM
 * on its node with premiscale's tags, every other VM is a template, and every disk and seed ISO belongs to a VM
 * that exists.
 */
async function expectConverged(d: PveDouble, dir: string, desired: number, nodes = ["pve1", "pve2"]): Promise<StateInstance[]> {
  const instances = await stateInstances(dir);
  expect(instances.map((i) => i.status)).toEqual(Array(desired).fill("running"));
  const vms = (await client(d, nodes).clusterResources("vm")).filter((r): r is PveVmResource => r.type === "qemu");
  const made = vms.filter((v) => v.template !== 1);
  expect(made.map((v) => `${v.name} on ${v.node}: ${v.status}`).sort()).toEqual(instances.map((i) => `${i.name} on ${i.host}: running`).sort());
  for (const i of instances) {
    const vm = made.find((v) => v.name === i.name)!;
    expect(vm.tags?.split(";").sort()).toEqual(["premiscale", `premiscale-${i.uuid}`]);
  }
  const volumes = ["local-lvm", "local"].flatMap((s) => d.volumeIds(s));
  for (const v of volumes) {
    const disk = /:(?:vm|base)-(\d+)-disk-\d+$/.exec(v);
    if (disk) expect(vms.map((x) => x.vmid), `volume ${v}`).toContain(Number(disk[1]));
    const seed = /:iso\/(.+)-seed\.iso$/.exec(v);
    if (seed) expect(instances.map((i) => i.name), `volume ${v}`).toContain(seed[1]);
  }
  expect(volumes.filter((v) => v.endsWith("-seed.iso"))).toHaveLength(desired);
  return instances;
}

describe("a group on a two-node Proxmox VE cluster (test double)", () => {
  it("validates against the live cluster, plans across both nodes, applies, shows no changes after, and scales down to nothing", async () => {
    const d = await cluster();
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 4 }));

    const check = await run(dir, ["validate", "--check-hosts"]);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/every host is ready/);

    const plan = await run(dir, ["plan"]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout.match(/\+ web\[web-[0-9a-f]{8}\] on host pve1/g)).toHaveLength(2);
    expect(plan.stdout.match(/\+ web\[web-[0-9a-f]{8}\] on host pve2/g)).toHaveLength(2);

    const t0 = performance.now();
    const apply = await run(dir, ["apply", "--auto-approve"]);
    const applyMs = performance.now() - t0;
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/Resources: 4 added, 0 changed, 0 destroyed/);
    const made = await expectConverged(d, dir, 4);
    expect(made.map((i) => i.host).sort()).toEqual(["pve1", "pve1", "pve2", "pve2"]);
    // Each node cloned its own copy of the template (local storage), through its own endpoint. Two parallel clones
    // may get the same id from /cluster/nextid (it reserves nothing; the race test below forces it): the loser's task
    // fails and it clones again under a new id. So: clone tasks that ended OK, and only id races among the others.
    const clones = d.requests.filter((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/clone" && r.status === 200);
    expect([...new Set(clones.map((r) => `${r.server}:${r.path}`))].sort()).toEqual(["pve1:/nodes/pve1/qemu/9000/clone", "pve2:/nodes/pve2/qemu/9001/clone"]);
    const cloneTasks = d.taskList().filter((t) => t.type === "qmclone");
    expect(cloneTasks.filter((t) => t.exitstatus === "OK").map((t) => `${t.node}:${t.id}`).sort()).toEqual(["pve1:9000", "pve1:9000", "pve2:9001", "pve2:9001"]);
    for (const t of cloneTasks.filter((x) => x.exitstatus !== "OK")) expect(t.exitstatus).toMatch(/config file already exists|can't lock file|File exists/);
    expect(clones).toHaveLength(cloneTasks.length);
    // The seed ISO carries the group's user-data and the instance id.
    const one = made[0]!;
    const iso = d.uploadedBytes(one.host, `local:iso/${one.name}-seed.iso`)!.toString("latin1");
    expect(iso).toMatch(/cidata/i);
    expect(iso).toContain("/tmp/premiscale-was-here");
    expect(iso).toContain(`instance-id: ${one.uuid}`);

    const again = await run(dir, ["plan", "--detailed-exitcode"]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(/No changes/);

    await setDesired(dir, 1);
    const down = await run(dir, ["apply", "--auto-approve"]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toMatch(/Resources: 0 added, 0 changed, 3 destroyed/);
    await expectConverged(d, dir, 1);

    await setDesired(dir, 0);
    expect((await run(dir, ["apply", "--auto-approve"])).code).toBe(0);
    await expectConverged(d, dir, 0);
    // Only the templates' disks are left.
    expect(d.volumeIds("local-lvm").sort()).toEqual(["local-lvm:base-9000-disk-0", "local-lvm:base-9001-disk-0"]);
    console.log(`apply of 4 VMs on the PVE double: ${Math.round(applyMs)} ms (CLI process included)`);
  }, 120_000);

  it("survives a race on /cluster/nextid: parallel clones that got the same id retry with another, and every VM is made once", async () => {
    // The worker starts half a second after the request, so parallel creates on one node all get the same id.
    const d = await cluster({ workerStartDelayMs: 500, taskMs: { qmclone: 100 } });
    const dir = await projectDir(configText(d, { hosts: ["pve1"], desired: 3 }));
    const apply = await run(dir, ["apply", "--auto-approve"]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    const instances = await expectConverged(d, dir, 3, ["pve1", "pve2"]);
    expect(instances.every((i) => i.host === "pve1")).toBe(true);
    const asked = d.requests.filter((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/clone").map((r) => Number(r.params.newid));
    // More clone requests than VMs, because ids were asked for again after losing the race.
    expect(asked.length).toBeGreaterThan(3);
    expect(new Set(asked).size).toBeLessThan(asked.length);
    const lost = d.taskList().filter((t) => t.type === "qmclone" && t.exitstatus !== "OK");
    expect(lost.length).toBeGreaterThan(0);
    for (const t of lost) expect(t.exitstatus).toMatch(/config file already exists|can't lock file|File exists/);
  }, 90_000);

  it("reports a clone task that fails, naming node, VM and template, leaks nothing, and the next apply converges", async () => {
    const d = await cluster();
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 2 }));
    d.failNextTask("qmclone", "clone failed: lvcreate 'pve/vm-100-disk-0' error: Volume group \"pve\" has insufficient free space", 9001);
    const apply = await run(dir, ["apply", "--auto-approve"]);
    expect(apply.code).toBe(1);
    const out = apply.stdout + apply.stderr;
    expect(out).toMatch(/host pve2: create web-[0-9a-f]{8}: clone of template debian-12-cloud \(VM 9001 on node pve2\): task qmclone of VM 9001 on node pve2 failed: clone failed: lvcreate .* insufficient free space/);
    expect(out).toMatch(/pvenode task log pve2 UPID:pve2:/);
    noStackTrace(out);
    // Nothing of the failed VM is left: PVE removed the half-made clone, premiscale checked.
    const vms = (await client(d, ["pve1", "pve2"]).clusterResources("vm")).filter((r) => r.type === "qemu" && r.template !== 1);
    expect(vms.map((v) => (v as PveVmResource).node)).toEqual(["pve1"]);
    expect(d.volumeIds("local").filter((v) => v.endsWith("-seed.iso"))).toHaveLength(1);

    const again = await run(dir, ["apply", "--auto-approve"]);
    expect(again.code, again.stderr).toBe(0);
    await expectConverged(d, dir, 2);
  }, 90_000);

  it("skips a node that goes offline in the middle of an apply and says so, and converges once it is back", async () => {
    // Three nodes, so that the two left keep quorum (PVE refuses every write without it); premiscale uses two.
    const nodes = ["pve1", "pve2", "pve3"];
    const d = await cluster({ nodes, templatesOn: ["pve1", "pve2"], taskMs: { qmclone: 1500, qmstart: 50, qmdestroy: 50 } });
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 4 }, nodes));
    const apply = execa("node", [BIN, "apply", "--auto-approve"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1", ...ENV }, input: "" });
    await until(() => d.requests.some((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/clone" && r.server === "pve2"), 30_000);
    await d.setOnline("pve2", false);
    const first = await apply;
    expect(first.exitCode).toBe(1);
    // pve1's VMs were made; pve2's creates failed naming the node.
    expect(first.stdout + first.stderr).toMatch(/host pve2: create web-[0-9a-f]{8}.*(cannot reach node pve2|595|node pve2)/);
    noStackTrace(first.stdout + first.stderr);

    const plan = await run(dir, ["plan"]);
    expect(plan.stderr).toMatch(/host pve2 \(node pve2 of PVE cluster test, https:\/\/127\.0\.0\.1:\d+\) could not be observed: .*PVE node pve2 is offline in cluster test/);
    expect(plan.stderr).toMatch(/its VMs were left as they are; check that node pve2 is online/);

    await d.setOnline("pve2", true);
    const again = await run(dir, ["apply", "--auto-approve"]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    await until(async () => d.taskList().every((t) => t.phase === "stopped"), 10_000);
    const settle = await run(dir, ["apply", "--auto-approve"]);
    expect(settle.code, settle.stdout + settle.stderr).toBe(0);
    await expectConverged(d, dir, 4, nodes);
  }, 120_000);

  it("converges after apply is killed with SIGKILL in the middle of its clones", async () => {
    const d = await cluster({ taskMs: { qmclone: 1000, qmstart: 50, qmdestroy: 50 } });
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 4 }));
    const apply = execa("node", [BIN, "apply", "--auto-approve"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1", ...ENV }, input: "" });
    await until(() => d.requests.filter((r) => r.route === "POST /nodes/{node}/qemu/{vmid}/clone").length >= 3, 30_000);
    apply.kill("SIGKILL");
    expect((await apply).signal).toBe("SIGKILL");
    // The clones premiscale started keep running on PVE; once they ended, one apply removes what was half-made and
    // makes the group whole.
    await until(() => d.taskList().every((t) => t.phase === "stopped"), 10_000);
    const again = await run(dir, ["apply", "--auto-approve"]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stderr + again.stdout).toMatch(/interrupted|half|creating|replace/i);
    await expectConverged(d, dir, 4);
    const plan = await run(dir, ["plan", "--detailed-exitcode"]);
    expect(plan.code, plan.stdout).toBe(0);
  }, 120_000);

  it("waits for the guest's check-in from the seed ISO (the test plays the guest, posting what cloud-init's phone_home would)", async () => {
    const d = await cluster();
    const hole = await blackHole(); // only to get a free port for the check-in server
    const port = hole.port;
    await hole.close();
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 2, checkIn: { port } }));
    const apply = execa("node", [BIN, "apply", "--auto-approve"], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1", ...ENV }, input: "" });
    const answered = new Set<string>();
    // The guest: once its VM runs, read its seed (as cloud-init does) and phone home to the URL in its user-data.
    await until(async () => {
      for (const node of ["pve1", "pve2"]) {
        for (const volid of d.volumeIds("local").filter((v) => v.endsWith("-seed.iso"))) {
          const bytes = d.uploadedBytes(node, volid);
          if (!bytes || answered.has(volid)) continue;
          const text = bytes.toString("latin1");
          const id = /instance-id: ([0-9a-f-]{36})/.exec(text)?.[1];
          const url = /url: (http:\/\/127\.0\.0\.1:\d+\/phone-home\/\$INSTANCE_ID\/\S+)/.exec(text)?.[1];
          if (!id || !url) continue;
          const r = await fetch(url.replace("$INSTANCE_ID", id), { method: "POST", body: new URLSearchParams({ instance_id: id, hostname: volid.slice(9, -9) }) }).catch(() => null);
          if (r?.ok) answered.add(volid);
        }
      }
      return answered.size === 2;
    }, 60_000);
    const r = await apply;
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/waiting for check-in|checked in|ready/i);
    await expectConverged(d, dir, 2);
  }, 120_000);
});

describe("metrics from Proxmox VE (test double)", () => {
  it("serve's collector reads the VMs' counters from the PVE API, so premiscale metrics (and policies) see them", async () => {
    const d = await cluster();
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 2 }).replace("groups:\n", `metrics:\n  intervalSeconds: 1\nserver:\n  listen: 127.0.0.1:${await freePort()}\ngroups:\n`));
    expect((await run(dir, ["apply", "--auto-approve"])).code).toBe(0);
    const serve = spawnPremiscale(dir, ["serve"], ENV);
    try {
      let cpu: Record<string, number> = {};
      await until(async () => {
        const r = await run(dir, ["metrics", "--json"]);
        const m = JSON.parse(r.stdout) as { groups: Array<{ metrics: Array<{ metric: string; members: Record<string, number | null> }> | null }> };
        // Until the store has samples, the group has no metrics yet.
        const members = m.groups[0]?.metrics?.find((x) => x.metric === "cpu")?.members ?? {};
        cpu = Object.fromEntries(Object.entries(members).filter((e): e is [string, number] => e[1] !== null));
        return Object.keys(cpu).length === 2;
      }, 30_000);
      // The double reports each VM at 2 % of its vCPUs; premiscale integrates that into CPU time and back.
      expect(Object.values(cpu).map((v) => Math.round(v * 10) / 10)).toEqual([2, 2]);
      // One /cluster/resources call per node and sample, through the node's own endpoint.
      const samples = d.requests.filter((r) => r.path === "/cluster/resources" && r.params.type === "vm");
      expect(samples.length).toBeGreaterThanOrEqual(4);
    } finally {
      await serve.stop();
    }
  }, 90_000);
});

describe("bad input on Proxmox VE (test double)", () => {
  const nothingMade = async (d: PveDouble) => {
    const vms = (await client(d, ["pve1", "pve2"]).clusterResources("vm", { audit: "ignore" })).filter((r) => r.type === "qemu" && r.template !== 1);
    expect(vms).toEqual([]);
    expect(d.volumeIds("local")).toEqual([]);
  };

  it("a token without Sys.Audit: plan names the privilege, the path and the pveum commands, and makes nothing", async () => {
    const d = await cluster({ privs: PROVIDER_PRIVS.filter((p) => p !== "Sys.Audit") });
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 2 }));
    const r = await run(dir, ["plan"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/host pve1 .*could not be observed: .*node pve1 is listed without CPU and memory figures/);
    expect(r.stderr).toMatch(/lacks Sys\.Audit on \/nodes\/pve1.*pveum acl modify \/nodes\/pve1 --tokens 'premiscale@pve!ci'/);
    noStackTrace(r.stderr);
    await nothingMade(d);
  });

  it("a token without VM.Clone: apply fails each create naming VM.Clone on the template, and leaks nothing", async () => {
    const d = await cluster({ privs: PROVIDER_PRIVS.filter((p) => p !== "VM.Clone") });
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 2 }));
    const r = await run(dir, ["apply", "--auto-approve"]);
    expect(r.code).toBe(1);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/host pve1: create web-[0-9a-f]{8}: clone of template debian-12-cloud \(VM 9000 on node pve1\): POST \/nodes\/pve1\/qemu\/9000\/clone failed: 403 Permission check failed \(\/vms\/9000, VM\.Clone\); the token premiscale@pve!ci lacks VM\.Clone on \/vms\/9000/);
    noStackTrace(out);
    await nothingMade(d);
    expect(await stateInstances(dir)).toEqual([]);
  });

  it("a template that is not on a node: validate --check-hosts and plan say which node lacks it and what to do", async () => {
    const d = await cluster({ templatesOn: ["pve1"] });
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 2 }));
    const check = await run(dir, ["validate", "--check-hosts"]);
    expect(check.code).toBe(1);
    expect(check.stdout + check.stderr).toMatch(
      /host pve2: group web: template "debian-12-cloud" is on node pve1, not on pve2, and its disk scsi0 is on storage "local-lvm", which is not shared: put a copy of the template on node pve2 \(same name\), or its disks on shared storage/,
    );
    const plan = await run(dir, ["plan"]);
    expect(plan.code, plan.stderr).toBe(0);
    // Both VMs go to the node that has the template.
    expect(plan.stdout.match(/\+ web\[web-[0-9a-f]{8}\] on host pve1/g)).toHaveLength(2);
    await nothingMade(d);
  });

  it("a wrong fingerprint: names the node, the pinned and the seen fingerprint, and sends the token nowhere", async () => {
    const d = await cluster();
    const wrong = certs.impostor.fingerprint256;
    const dir = await projectDir(configText(d, { hosts: ["pve1"], endpoints: ["pve1"], desired: 1, fingerprint: { pve1: wrong } }));
    const r = await run(dir, ["plan"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`TLS certificate of node pve1 \\(127\\.0\\.0\\.1:\\d+\\) does not match the pinned fingerprint: expected ${wrong}, seen ${certs.nodes.pve1!.fingerprint256}`));
    noStackTrace(r.stderr);
    expect(d.requests).toEqual([]);
  });

  it("an unreachable node: names the node and its address, and the other node's part of the plan goes on", async () => {
    const d = await cluster();
    const hole = await blackHole();
    const closed = hole.port;
    await hole.close();
    const dir = await projectDir(configText(d, { hosts: ["pve1", "pve2"], desired: 2, url: { pve2: `https://127.0.0.1:${closed}` }, callTimeoutSeconds: 2 }));
    const r = await run(dir, ["plan"]);
    expect(r.stderr).toMatch(new RegExp(`host pve2 \\(node pve2 of PVE cluster test, https://127\\.0\\.0\\.1:${closed}\\) could not be observed: .*cannot reach node pve2 at 127\\.0\\.0\\.1:${closed}: ECONNREFUSED`));
    expect(r.stderr).toMatch(/cluster test still lists node pve2 online: its API, pveproxy, does not answer/);
    expect(r.stdout).toMatch(/\+ web\[web-[0-9a-f]{8}\] on host pve1/);
    noStackTrace(r.stderr);
  });

  it("a missing token secret: names the variable and the token, and how to set it", async () => {
    const d = await cluster();
    const dir = await projectDir(configText(d, { hosts: ["pve1"], desired: 1 }));
    const r = await premiscale(dir, ["plan"], { [TEST_SECRET_ENV]: "" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/environment variable PREMISCALE_TEST_PVE_SECRET \(the secret of API token premiscale@pve!ci\) is not set; export PREMISCALE_TEST_PVE_SECRET=/);
    noStackTrace(r.stderr);
    expect(d.requests).toEqual([]);
  });
});

/** Polls `condition` until it holds; fails after `ms`. */
async function until(condition: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
