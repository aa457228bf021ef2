import { existsSync, readFileSync } from "node:fs";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { git } from "../state/git.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MetricsReport } from "../cli/metrics-command.js";
import { makeRemote, pushUserCommit, remoteFile, tempDir, userClone } from "../reconciler/testing.js";
import { GitStateStore } from "../state/git-state-store.js";
import { premiscale, projectDir } from "./support/cli.js";
import { ensureBlankBase, leftovers, virsh } from "./support/libvirt.js";
import { freePort, killLeftovers, spawnPremiscale } from "./support/serve.js";
import { startSshd, type SshdHost } from "./support/sshd.js";
import { startTlsLibvirtd, type TlsLibvirtd } from "./support/tls-libvirtd.js";

// Remote hosts for real: the built CLI reaching libvirt through a real sshd (qemu+ssh://, test/support/sshd.ts) and
// through libvirt's own TLS listener (qemu+tls://, test/support/tls-libvirtd.ts), and a host that freezes for real
// (its sshd stopped with SIGSTOP: TCP stays up, nothing answers) in the middle of an apply, under `serve` and under
// `reconcile --watch`. The two ssh hosts reach this machine's one libvirtd through two sshd; which one a VM is on is
// what state says (each group has one host), so both hosts seeing all domains does not matter to the plan. Every
// group name starts with `rmt`, so leftovers can be found and asserted absent.

const BIN = resolve(import.meta.dirname, "../dist/cli/main.js");
const fast = ["--shutdown-timeout", "2s"];
/** The frozen host's timeout: every call to it is cut off after this. */
const FROZEN_TIMEOUT_S = 5;

let sshA: SshdHost;
let sshB: SshdHost;
let tls: TlsLibvirtd;
let base: string;
/** Project directories whose groups afterAll scales to 0 (through the hosts in their config). */
const projects: string[] = [];
/** Bare remotes of the reconcile test, scaled to 0 by a last pass in afterAll. */
const remotes: { remote: string; config: string }[] = [];
const timings: Record<string, number> = {};

interface HostDef {
  name: string;
  uri: string;
  callTimeoutSeconds?: number;
}
interface GroupDef {
  name: string;
  host: string;
  desired: number;
  baseImage?: string;
}

/** A config of several hosts, one group per host entry of `groups` (blank VMs, no check-in), and `extra` YAML. */
function config(hosts: HostDef[], groups: GroupDef[], extra = ""): string {
  const h = hosts.map(
    // Blank VMs need little, but the other libvirt tests' VMs share this host's vCPUs: overcommit plenty.
    (x) =>
      `  - name: ${x.name}\n    kind: libvirt\n    uri: "${x.uri}"\n    pool: default\n    accelerator: qemu\n    cpuOvercommit: 64\n    reservedMemoryMiB: 256\n` +
      `    callTimeoutSeconds: ${x.callTimeoutSeconds ?? 30}\n`,
  );
  const g = groups.map(
    (x) =>
      `  - name: ${x.name}\n    min: 0\n    max: 4\n    desired: ${x.desired}\n    hosts: [${x.host}]\n    readiness:\n      checkIn: false\n` +
      `    template:\n      vcpus: 1\n      memoryMiB: 80\n      disk:\n        baseImage: ${x.baseImage ?? base}\n        sizeGiB: 1\n`,
  );
  return `version: v1alpha1\nstate:\n  path: ./state\nhosts:\n${h.join("")}groups:\n${g.join("")}${extra}`;
}

/** Host a: the one that freezes (a short timeout); host b: healthy (a generous one: it never needs it). */
const twoHosts = (): HostDef[] => [
  { name: "a", uri: sshA.uri, callTimeoutSeconds: FROZEN_TIMEOUT_S },
  { name: "b", uri: sshB.uri, callTimeoutSeconds: 30 },
];

async function project(text: string): Promise<string> {
  const dir = await projectDir(text);
  projects.push(dir);
  return dir;
}

async function setDesired(dir: string, sizes: Record<string, number>): Promise<void> {
  let text = await readFile(join(dir, "premiscale.yaml"), "utf8");
  for (const [group, n] of Object.entries(sizes)) text = text.replace(new RegExp(`(name: ${group}\\n(?:.*\\n)*?    desired: )\\d+`), `$1${n}`);
  await writeFile(join(dir, "premiscale.yaml"), text);
}

const names = (text: string) => text.split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "").filter(Boolean);
const domainsOf = async (group: string, running = false) =>
  names(await virsh("list", ...(running ? [] : ["--all"]), "--name")).filter((n) => n.startsWith(`${group}-`)).sort();

/** Host, state and git agree: each group has exactly its size of running VMs, known to state, and nothing else. */
async function expectConverged(dir: string, sizes: Record<string, number>): Promise<void> {
  const state = await new GitStateStore(join(dir, "state")).read();
  const vols = names(await virsh("vol-list", "default"));
  for (const [group, n] of Object.entries(sizes)) {
    const instances = state?.groups.find((g) => g.name === group)?.instances ?? [];
    expect(instances.map((i) => i.status), group).toEqual(Array(n).fill("running"));
    const inState = instances.map((i) => i.name).sort();
    expect(await domainsOf(group), group).toEqual(inState);
    expect(await domainsOf(group, true), group).toEqual(inState);
    expect(vols.filter((v) => v.startsWith(`${group}-`)).sort(), group).toEqual(inState.flatMap((x) => [`${x}-seed.iso`, `${x}.qcow2`]).sort());
  }
  expect((await git(join(dir, "state"), ["status", "--porcelain", "-uall", "--", "."])).stdout.trim()).toBe("");
  expect((await readdir(join(dir, "state"))).filter((f) => f.includes(".lock") || f.endsWith(".tmp"))).toEqual([]);
  const again = await premiscale(dir, ["plan", "--detailed-exitcode"]);
  expect(again.stdout).toContain("No changes.");
  expect(again.code).toBe(0);
}

/** Scales every group of the project to 0 (the test's VMs burn CPU under TCG) and asserts nothing is left of them. */
async function scaleToZero(dir: string, groups: string[]): Promise<void> {
  await setDesired(dir, Object.fromEntries(groups.map((g) => [g, 0])));
  const r = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
  expect(r.stderr).not.toMatch(/Error:/);
  expect(r.code).toBe(0);
  for (const g of groups) expect(await leftovers(`${g}-`)).toEqual([]);
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const t = Date.now();
  while (!(await ok())) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs `fn` and records how long it took, for the summary printed after the suite (CI time per test). */
async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    timings[name] = Math.round(performance.now() - t);
  }
}

beforeAll(async () => {
  base = await ensureBlankBase();
  // Each kept as soon as it runs, so that afterAll stops those that started when another did not.
  const started = await Promise.allSettled([startSshd().then((h) => (sshA = h)), startSshd().then((h) => (sshB = h)), startTlsLibvirtd().then((t) => (tls = t))]);
  for (const r of started) if (r.status === "rejected") throw r.reason;
});

afterAll(async () => {
  // Every step runs even when one before it failed: the fixtures must stop whatever happened.
  const problems: unknown[] = [];
  const step = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      problems.push(e);
    }
  };
  await step(killLeftovers);
  await step(() => Promise.all([sshA?.thaw(), sshB?.thaw()]));
  for (const dir of projects) {
    await step(async () => {
      await writeFile(join(dir, "premiscale.yaml"), (await readFile(join(dir, "premiscale.yaml"), "utf8")).replace(/desired: \d+/g, "desired: 0"));
      await premiscale(dir, ["apply", "--auto-approve", ...fast]);
    });
  }
  for (const { remote, config: text } of remotes) {
    await step(async () => {
      const zero = text.replace(/desired: \d+/g, "desired: 0");
      if ((await remoteFile(remote, "main", "premiscale.yaml")) !== zero) await pushUserCommit(await userClone(remote), { "premiscale.yaml": zero }, "all to 0");
      const dir = await tempDir("premiscale-rmt-");
      await writeFile(join(dir, "premiscale.yaml"), `${zero}gitops:\n  repo: ${remote}\n  workDir: ./work\n`);
      const r = await premiscale(dir, ["reconcile", "--mode", "auto", ...fast]);
      if (r.code !== 0) throw new Error(`cleanup of ${remote} failed: ${r.stdout}\n${r.stderr}`);
    });
  }
  let tlsLeft: string[] = [];
  await step(async () => (tlsLeft = tls ? await tls.leftovers("rmt") : []));
  await step(() => Promise.all([sshA?.stop(), sshB?.stop(), tls?.stop()]));
  console.log(`remote.libvirt.test.ts timings (ms): ${JSON.stringify(timings)}`);
  expect(problems).toEqual([]);
  expect(await leftovers("rmt")).toEqual([]);
  expect(tlsLeft).toEqual([]);
}, 300_000);

describe("remote libvirt hosts over a real sshd and libvirt's TLS listener", () => {
  it("plans, applies and scales down VMs on a qemu+ssh:// host, validates it over ssh, and leaves nothing behind", () =>
    timed("ssh", async () => {
      const g = "rmts";
      const dir = await project(config([{ name: "kvm", uri: sshA.uri }], [{ name: g, host: "kvm", desired: 2 }]));

      const valid = await premiscale(dir, ["validate", "--check-hosts"]);
      expect(valid.stderr).toBe("");
      expect(valid.stdout).toMatch(/is valid and every host is ready/);
      expect(valid.code).toBe(0);

      const plan = await premiscale(dir, ["plan", "--detailed-exitcode"]);
      expect(plan.stdout).toContain("Plan: 2 to add, 0 to change, 0 to destroy.");
      expect(plan.code).toBe(2);
      const apply = await premiscale(dir, ["apply", "--auto-approve"]);
      expect(apply.stdout).toContain("Apply complete! Resources: 2 added, 0 changed, 0 destroyed.");
      expect(apply.code).toBe(0);
      await expectConverged(dir, { [g]: 2 });

      await setDesired(dir, { [g]: 0 });
      const down = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
      expect(down.stdout).toContain("Apply complete! Resources: 0 added, 0 changed, 2 destroyed.");
      expect(down.code).toBe(0);
      expect(await leftovers(`${g}-`)).toEqual([]);
      // Every CLI run closed its connections: no ssh of ours is left running.
      expect(await sshA.clients()).toEqual([]);
    }));

  it("says which host refused the ssh key and why, at once (libvirt's ssh runs in batch mode with no_tty=1)", () =>
    timed("ssh-refused", async () => {
      const dir = await projectDir(config([{ name: "kvm", uri: sshA.strangerUri }], [{ name: "rmtz", host: "kvm", desired: 0 }]));
      const r = await premiscale(dir, ["validate", "--check-hosts"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^Error: host kvm: unreachable: .*Permission denied \(publickey\)/m);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }));

  it("plans, applies and scales down VMs on a qemu+tls:// host (client certificates, ?pkipath=), and leaves nothing behind", () =>
    timed("tls", async () => {
      const g = "rmtt";
      const dir = await project(config([{ name: "tls", uri: tls.uri }], [{ name: g, host: "tls", desired: 2, baseImage: tls.baseImage }]));
      const valid = await premiscale(dir, ["validate", "--check-hosts"]);
      expect(valid.stdout).toMatch(/is valid and every host is ready/);
      expect(valid.code).toBe(0);

      const apply = await premiscale(dir, ["apply", "--auto-approve"]);
      expect(apply.stdout).toContain("Apply complete! Resources: 2 added, 0 changed, 0 destroyed.");
      expect(apply.code).toBe(0);
      const state = await new GitStateStore(join(dir, "state")).read();
      const inState = (state?.groups.find((x) => x.name === g)?.instances ?? []).map((i) => i.name).sort();
      expect(inState).toHaveLength(2);
      expect(names(await tls.virsh("list", "--name")).filter((n) => n.startsWith(`${g}-`)).sort()).toEqual(inState);
      expect((await premiscale(dir, ["plan", "--detailed-exitcode"])).code).toBe(0);

      await setDesired(dir, { [g]: 0 });
      const down = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
      expect(down.stdout).toContain("Apply complete! Resources: 0 added, 0 changed, 2 destroyed.");
      expect(down.code).toBe(0);
      expect(await tls.leftovers(`${g}-`)).toEqual([]);
    }));

  it("says which host refused the TLS client certificate (signed by a CA the daemon does not trust)", () =>
    timed("tls-refused", async () => {
      const dir = await projectDir(config([{ name: "tls", uri: tls.untrustedUri }], [{ name: "rmtz", host: "tls", desired: 0, baseImage: tls.baseImage }]));
      const r = await premiscale(dir, ["validate", "--check-hosts"]);
      expect(r.code).toBe(1);
      // The client only learns that the server hung up; the daemon says why.
      expect(r.stderr).toMatch(/^Error: host tls: unreachable: .*qemu\+tls:.*failed to connect to the hypervisor; Unable to read TLS confirmation/m);
      expect(tls.daemonLog()).toMatch(/authentication failed: Failed to verify peer's certificate/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }));

  it("isolates a host whose sshd freezes mid-apply: the other host's creates finish first, the frozen host's fail after its timeout naming it, and the next apply converges", () =>
    timed("frozen-apply", async () => {
      const [ga, gb] = ["rmtf", "rmtg"];
      const dir = await project(config(twoHosts(), [{ name: ga, host: "a", desired: 2 }, { name: gb, host: "b", desired: 2 }]));
      try {
        const child = execa("node", [BIN, "apply", "--auto-approve", "--json", ...fast], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, stdin: "ignore" });
        type Ev = { type: string; "@timestamp": string; address?: string; host?: string; error?: string; elapsedMs?: number } & Record<string, unknown>;
        const events: Ev[] = [];
        let frozen = false;
        for await (const line of child) {
          const e = JSON.parse(line) as Ev;
          events.push(e);
          // Host a's creates have begun (the plan was made: its observation went through): freeze its sshd now.
          if (!frozen && e.type === "apply_start" && e.host === "a") {
            await sshA.freeze();
            frozen = true;
          }
        }
        const r = await child;
        expect(frozen).toBe(true);
        expect(r.exitCode).toBe(1);

        const hostOf = new Map(events.filter((e) => e.type === "apply_start").map((e) => [e.address!, e.host!]));
        const of = (type: string, host: string) => events.filter((e) => e.type === type && hostOf.get(e.address!) === host);
        const bDone = of("apply_complete", "b");
        const aFailed = of("apply_errored", "a");
        expect(bDone.map((e) => e.address).sort()).toEqual([...hostOf].filter(([, h]) => h === "b").map(([a]) => a).sort());
        expect(bDone).toHaveLength(2);
        expect(aFailed).toHaveLength(2);
        expect(of("apply_errored", "b")).toEqual([]);
        for (const e of aFailed) {
          expect(e.error).toMatch(new RegExp(`^host a: qemu\\+ssh://root@127\\.0\\.0\\.1:${sshA.port}/system.*: no answer within ${FROZEN_TIMEOUT_S * 1000} ms`));
          expect(e.elapsedMs).toBeGreaterThanOrEqual(FROZEN_TIMEOUT_S * 1000);
        }
        // The healthy host finished before the frozen host's first failure, each in its own time.
        const lastB = Math.max(...bDone.map((e) => Date.parse(e["@timestamp"])));
        const firstAFail = Math.min(...aFailed.map((e) => Date.parse(e["@timestamp"])));
        expect(lastB).toBeLessThan(firstAFail);
        expect(Math.max(...bDone.map((e) => e.elapsedMs!))).toBeLessThan(Math.min(...aFailed.map((e) => e.elapsedMs!)));
        timings["frozen-apply: b's creates (max elapsedMs)"] = Math.max(...bDone.map((e) => e.elapsedMs!));
        timings["frozen-apply: a's failures (min elapsedMs)"] = Math.min(...aFailed.map((e) => e.elapsedMs!));
        const summary = events.find((e) => e.type === "change_summary" && (e.changes as { operation: string }).operation === "apply") as
          | (Ev & { failed: { host: string; error: string }[] })
          | undefined;
        expect(summary?.failed.map((f) => f.host)).toEqual(["a", "a"]);
        expect(await domainsOf(gb, true)).toHaveLength(2);

        // premiscale has exited: nothing of it may still hang on the frozen host (its ssh processes included).
        const stranded = await sshA.clients();
        await sshA.thaw();
        expect(stranded).toEqual([]);

        const again = await premiscale(dir, ["apply", "--auto-approve", ...fast]);
        expect(again.stderr).not.toMatch(/Error:/);
        expect(again.code).toBe(0);
      } finally {
        await sshA.thaw();
      }
      await expectConverged(dir, { [ga]: 2, [gb]: 2 });
      await scaleToZero(dir, [ga, gb]);
      expect(await sshA.clients()).toEqual([]);
    }));

  it("keeps `premiscale serve`'s collector sampling the healthy host while the other's sshd is frozen, and stops cleanly", () =>
    timed("frozen-serve", async () => {
      const [ga, gb] = ["rmtc", "rmtd"];
      const port = await freePort();
      const dir = await project(
        config(twoHosts(), [{ name: ga, host: "a", desired: 1 }, { name: gb, host: "b", desired: 1 }], `server:\n  listen: 127.0.0.1:${port}\nmetrics:\n  intervalSeconds: 2\n`),
      );
      expect((await premiscale(dir, ["apply", "--auto-approve"])).code).toBe(0);
      const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const metric = (text: string, name: string) => Number(new RegExp(`^${name.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
      const samples = (text: string, host: string) => metric(text, `premiscale_collector_samples_total{host="${host}"}`);

      const serve = spawnPremiscale(dir, ["serve"]);
      let text = "";
      try {
        await serve.waitForLog((l) => l.event === "serving");
        await until("both hosts sampled", async () => {
          text = await scrape();
          return samples(text, "a") >= 1 && samples(text, "b") >= 1;
        });
        const bFailures = (t: string) =>
          metric(t, 'premiscale_collector_host_failures_total{host="b",kind="timeout"}') + metric(t, 'premiscale_collector_host_failures_total{host="b",kind="error"}');
        await sshA.freeze();
        const frozenAt = Date.now() / 1000;
        const before = await scrape();
        const bBefore = samples(before, "b");
        const bFailuresBefore = bFailures(before);
        const bLogsBefore = serve.logs().length;
        await until("host a failing and host b sampled, cycle after cycle", async () => {
          text = await scrape();
          return metric(text, 'premiscale_collector_host_failures_total{host="a",kind="timeout"}') >= 3 && samples(text, "b") >= bBefore + 3;
        });
        expect(metric(text, 'premiscale_collector_host_last_success_timestamp_seconds{host="b"}')).toBeGreaterThan(frozenAt);
        // (Its first connection may have missed the one-interval deadline on a busy machine, before the freeze.)
        expect(bFailures(text)).toBe(bFailuresBefore);
        expect(serve.logs().slice(bLogsBefore).filter((l) => l.event === "collector_host_failed" && l.host === "b")).toEqual([]);
        // Each cycle gave up on host a and started a new connection: the abandoned ones must not pile up.
        expect((await sshA.clients()).length).toBeLessThanOrEqual(1);
        expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text()).toBe("ok");
        // Stopped while host a is still frozen: its call in flight must not hold serve up.
        expect((await serve.stop("SIGTERM")).code).toBe(0);
      } finally {
        await serve.stop("SIGKILL");
        await sshA.thaw();
      }
      expect(serve.logs().find((l) => l.event === "collector_host_failed" && l.host === "a")).toMatchObject({ kind: "timeout" });
      // What was collected for the healthy host while the other was frozen is in the store.
      const m = await premiscale(dir, ["metrics", "--group", gb, "--window", "2m", "--json"]);
      expect(m.code).toBe(0);
      const report = JSON.parse(m.stdout) as MetricsReport;
      const cpu = report.groups[0]!.metrics!.find((x) => x.metric === "cpu")!;
      expect(Object.values(cpu.members)[0]).toBeGreaterThan(0);
      await scaleToZero(dir, [ga, gb]);
    }));

  it("keeps `premiscale reconcile --watch` applying changes to the healthy host's groups while the other's sshd is frozen, and catches up once it answers", () =>
    timed("frozen-reconcile", async () => {
      const [ga, gb] = ["rmtw", "rmtx"];
      const userConfig = (a: number, b: number) => config(twoHosts(), [{ name: ga, host: "a", desired: a }, { name: gb, host: "b", desired: b }]);
      const remote = await makeRemote({ "premiscale.yaml": userConfig(1, 1) });
      remotes.push({ remote, config: userConfig(0, 0) });
      const dir = await tempDir("premiscale-rmt-");
      await writeFile(join(dir, "premiscale.yaml"), `${userConfig(1, 1)}gitops:\n  repo: ${remote}\n  workDir: ./work\n  intervalSeconds: 5\n`);
      const logFile = join(dir, "reconcile.log");
      type Line = { event: string; outcome?: string; unreachable?: { host: string }[]; added?: number; failed?: unknown[]; address?: string };
      const log = (): Line[] => (existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Line) : []);
      const stateNames = async (group: string) => {
        const t = await remoteFile(remote, "main", `state/groups/${group}.json`);
        return t ? (JSON.parse(t) as { instances: { name: string }[] }).instances.map((i) => i.name).sort() : [];
      };

      const child = execa("node", [BIN, "reconcile", "--watch", "--mode", "auto", "--log-file", logFile, ...fast], { cwd: dir, reject: false, env: { CI: "true", NO_COLOR: "1" }, stdin: "ignore" });
      try {
        await until("the first pass", () => log().some((l) => l.event === "pass_done"));
        expect(log().find((l) => l.event === "pass_done")?.outcome).toBe("applied");
        expect(await domainsOf(ga)).toHaveLength(1);
        expect(await domainsOf(gb)).toHaveLength(1);

        // Both groups are to grow; only the healthy host's can while the other is frozen.
        await sshA.freeze();
        const frozenFrom = log().length;
        await pushUserCommit(await userClone(remote), { "premiscale.yaml": userConfig(2, 2) }, "both to 2");
        await until("the healthy host's group at 2 in state", async () => (await stateNames(gb)).length === 2, 90_000);
        // State is pushed before the pass logs its end: wait for that line too.
        await until("that pass to end", () => log().slice(frozenFrom).some((l) => l.event === "pass_done" && l.outcome !== "no_changes"));
        const during = log().slice(frozenFrom);
        const plan = during.find((l) => l.event === "plan_ready" && (l.unreachable ?? []).length > 0);
        expect(plan?.unreachable?.map((u) => u.host)).toEqual(["a"]);
        expect(during.find((l) => l.event === "applied")).toMatchObject({ added: 1, failed: [] });
        // The frozen host's group is the pass's shortfall: the pass is partial, and retried.
        expect(during.find((l) => l.event === "pass_done" && l.outcome !== "no_changes")?.outcome).toBe("partial");
        expect(await domainsOf(gb, true)).toEqual(await stateNames(gb));
        expect(await stateNames(ga)).toHaveLength(1);

        // No new commit: a later pass finds the host answering again and adds what it could not.
        await sshA.thaw();
        await until("the group of the host that answers again at 2 in state", async () => (await stateNames(ga)).length === 2, 90_000);
        child.kill("SIGTERM");
        expect((await child).exitCode).toBe(0);
      } finally {
        await sshA.thaw();
        // Stopped gracefully even after a failed assertion: a killed reconciler would keep the remote's lock.
        if (child.exitCode === null) child.kill("SIGTERM");
        await child;
      }
      expect(log().at(-1)?.event).toBe("watch_stopped");
      for (const o of log().filter((l) => l.event === "pass_done").map((l) => l.outcome)) expect(["applied", "no_changes", "partial"]).toContain(o);
      for (const g of [ga, gb]) {
        const inState = await stateNames(g);
        expect(inState).toHaveLength(2);
        expect(await domainsOf(g, true)).toEqual(inState);
      }

      await pushUserCommit(await userClone(remote), { "premiscale.yaml": userConfig(0, 0) }, "both to 0");
      const down = await premiscale(dir, ["reconcile", "--mode", "auto", ...fast]);
      expect(down.stdout).toContain("Apply complete! Resources: 0 added, 0 changed, 4 destroyed.");
      expect(down.code).toBe(0);
      for (const g of [ga, gb]) expect(await leftovers(`${g}-`)).toEqual([]);
    }));
});
