import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { GitStateStore } from "../state/git-state-store.js";
import { configText, premiscale, projectDir } from "./support/cli.js";

// The built CLI in its own process, as a user runs it; nothing here needs a hypervisor.

const noStackTrace = (s: string) => expect(s).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

describe("premiscale validate", () => {
  it("accepts a valid config and says so", async () => {
    const dir = await projectDir(configText());
    const r = await premiscale(dir, ["validate"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Success! .*premiscale\.yaml is valid: 1 host\(s\), 1 group\(s\)/);
  });

  it("says that a host without kind is taken as libvirt, and refuses an unknown kind and another kind's field", async () => {
    const dir = await projectDir(configText());
    const r = await premiscale(dir, ["validate"]);
    expect(r.stderr).toMatch(/Note: .*premiscale\.yaml:\d+:\d+: host local does not say its kind: libvirt is assumed \(write kind: libvirt\)/);
    const unknown = await projectDir(configText().replace("  - name: local\n", "  - name: local\n    kind: hyperv\n"));
    const bad = await premiscale(unknown, ["validate"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/premiscale\.yaml:\d+:\d+: hosts\[0\]\.kind: must be one of "libvirt", "proxmox", got "hyperv"/);
    noStackTrace(bad.stderr);
    const other = await projectDir(configText().replace("  - name: local\n", "  - name: local\n    kind: proxmox\n"));
    const wrong = await premiscale(other, ["validate"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/hosts\[0\]\.uri: "uri" is a field of libvirt hosts, and this host is kind proxmox/);
  });

  it("reports a bad field with file, line, column and the field's path, exits 1, and prints no stack trace", async () => {
    const dir = await projectDir(configText({ desired: 9, max: 4 }));
    const r = await premiscale(dir, ["validate"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/premiscale\.yaml:\d+:\d+: groups\[0\]\.desired/);
    noStackTrace(r.stderr);
  });

  it("reports malformed YAML with its position", async () => {
    const dir = await projectDir("version: v1alpha1\nhosts: [\n");
    const r = await premiscale(dir, ["validate"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/premiscale\.yaml:\d+:\d+:/);
    noStackTrace(r.stderr);
  });

  it("finds the config through -c, PREMISCALE_CONFIG_PATH and the --validate flag", async () => {
    const dir = await projectDir(configText());
    await writeFile(join(dir, "other.yaml"), configText());
    expect((await premiscale(dir, ["-c", "other.yaml", "validate"])).stdout).toMatch(/other\.yaml is valid/);
    expect((await premiscale(dir, ["validate"], { PREMISCALE_CONFIG_PATH: "other.yaml" })).stdout).toMatch(/other\.yaml is valid/);
    const flag = await premiscale(dir, ["--validate", "-c", "other.yaml"]);
    expect(flag.code).toBe(0);
    expect(flag.stdout).toMatch(/other\.yaml is valid/);
  });

  it("says what to do when the config file does not exist", async () => {
    const dir = await projectDir(configText());
    const r = await premiscale(dir, ["-c", "nope.yaml", "validate"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nope\.yaml.*does not exist/);
  });

  it("prints machine-readable issues with --json", async () => {
    const dir = await projectDir(configText({ desired: 9, max: 4 }));
    const r = await premiscale(dir, ["validate", "--json"]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.valid).toBe(false);
    expect(out.issues[0]).toMatchObject({ path: "groups[0].desired" });
  });
});

describe("premiscale plan and apply without a reachable host", () => {
  const unreachable = configText({ uri: "qemu+tcp://127.0.0.1:1/system" });

  it("plan fails naming the group and the unreachable host, and writes no state", async () => {
    const dir = await projectDir(unreachable);
    const r = await premiscale(dir, ["plan"]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/group web: 2 of 2 new VMs cannot be made yet: host local: unreachable/);
    await expect(readFile(join(dir, "state", "state.json"))).rejects.toThrow();
  });

  it("apply without a terminal refuses to run without --auto-approve", async () => {
    const dir = await projectDir(unreachable);
    const r = await premiscale(dir, ["apply"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needs approval.*no terminal/);
    expect(r.stderr).toMatch(/--auto-approve/);
  });

  it("rejects an unknown --target group, listing the groups there are", async () => {
    const dir = await projectDir(unreachable);
    const r = await premiscale(dir, ["plan", "--target", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--target nope: no group of that name/);
    expect(r.stderr).toMatch(/groups are: web/);
  });
});

describe("secrets and unreachable hosts", () => {
  const withSecret = configText({ uri: "qemu+tcp://127.0.0.1:1/system", desired: 0 }) +
    "      userData: |\n        #cloud-config\n        password: ${env:WEB_PW}\n";

  it("validate passes without the secrets apply needs, and names them", async () => {
    const dir = await projectDir(withSecret);
    const r = await premiscale(dir, ["validate"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/apply will need the environment variable WEB_PW/);
  });

  it("apply refuses to start without a secret the user-data needs", async () => {
    const dir = await projectDir(withSecret);
    const r = await premiscale(dir, ["apply", "--auto-approve"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/environment variable WEB_PW is not set/);
  });

  it("plan fails when a host cannot be observed, even if nothing needs placing there", async () => {
    const dir = await projectDir(withSecret);
    const r = await premiscale(dir, ["plan"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Error: host local \(qemu\+tcp:\/\/127\.0\.0\.1:1\/system\) could not be observed/);
    noStackTrace(r.stderr);
  });
});

describe("premiscale show and apply PLANFILE", () => {
  it("refuses a plan file that is not JSON, or was altered", async () => {
    const dir = await projectDir(configText());
    await writeFile(join(dir, "bad.json"), "not json");
    const bad = await premiscale(dir, ["show", "bad.json"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/bad\.json: plan file is not valid JSON/);

    const plan = {
      format_version: "3.0",
      based_on: { lineage: null, serial: 0, config_digest: "x", config_commit: null },
      lineage: "l",
      created_at: "2026-01-01T00:00:00.000Z",
      expires_at: "2026-01-01T01:00:00.000Z",
      targets: null,
      drift: [],
      warnings: [],
      errors: [],
      shortfalls: [],
      groups: [],
      changes: [],
      summary: { add: 0, change: 0, destroy: 0 },
      checksum: "0".repeat(64),
    };
    await writeFile(join(dir, "altered.json"), JSON.stringify(plan));
    const altered = await premiscale(dir, ["apply", "altered.json"]);
    expect(altered.code).toBe(1);
    expect(altered.stderr).toMatch(/plan file was altered after it was written/);
    await writeFile(join(dir, "old.json"), JSON.stringify({ ...plan, format_version: "1.1" }));
    const old = await premiscale(dir, ["apply", "old.json"]);
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/plan format 1\.x was written by an older premiscale .*run premiscale plan again/);
  });
});

describe("premiscale state and force-unlock", () => {
  it("state list says there is no state yet", async () => {
    const dir = await projectDir(configText());
    const r = await premiscale(dir, ["state", "list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/No state yet/);
  });

  it("force-unlock on an unlocked state is a clear error", async () => {
    const dir = await projectDir(configText());
    const r = await premiscale(dir, ["force-unlock", "abc", "--force"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not locked/);
  });

  it("protect and unprotect record scale-in protection in state, one commit each, and name what they cannot find", async () => {
    const dir = await projectDir(configText({ uri: "test:///default", desired: 2 }));
    // State as two applies would have left it (the test driver keeps no VM between processes).
    const lock = await new GitStateStore(join(dir, "state")).lock("apply", 1000);
    await lock.init("lin");
    const names = ["web-0000000a", "web-0000000b"];
    for (const name of names) await lock.putInstance("web", { name, uuid: `${name}-uuid`, host: "local", created: "2026-01-01T00:00:00.000Z", status: "running" });
    await lock.commit("two instances");
    await lock.release();
    const on = await premiscale(dir, ["protect", `web[${names[0]}]`]);
    expect(on.code).toBe(0);
    expect(on.stdout).toContain(`web[${names[0]}]: protected from scale-in and replacement`);
    expect((await premiscale(dir, ["state", "list"])).stdout).toMatch(new RegExp(`web\\s+${names[0]}\\s.*\\syes\\s`));
    expect((await premiscale(dir, ["protect", `web[${names[0]}]`])).stdout).toContain("(already)");
    const off = await premiscale(dir, ["unprotect", `web[${names[0]}]`]);
    expect(off.stdout).toContain("not protected");
    expect(JSON.parse((await premiscale(dir, ["state", "list", "--json"])).stdout).groups[0].instances[0].protected).toBeUndefined();
    const missing = await premiscale(dir, ["protect", "web[web-nope]"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/web\[web-nope\]: no such instance in state.*instances: web\[/s);
  });

  it("--replace and -replace refuse a group or instance that does not exist, naming what does", async () => {
    const dir = await projectDir(configText({ uri: "test:///default", desired: 0 }));
    const group = await premiscale(dir, ["plan", "--replace", "db"]);
    expect(group.code).toBe(1);
    expect(group.stderr).toMatch(/--replace db: no group of that name.*groups: web/s);
    const inst = await premiscale(dir, ["plan", "-replace=web[web-1]"]);
    expect(inst.code).toBe(1);
    expect(inst.stderr).toMatch(/--replace web\[web-1\]: group web has no instance web-1/);
  });

  it("plan --refresh-only shows what state would forget, apply --refresh-only records it in one commit, and saved refresh plans apply too", async () => {
    const dir = await projectDir(configText({ uri: "test:///default", desired: 0 }));
    // State says two VMs exist; the test host has neither (as if removed by hand).
    const lock = await new GitStateStore(join(dir, "state")).lock("apply", 1000);
    await lock.init("lin");
    const names = ["web-0000000a", "web-0000000b"];
    for (const name of names) await lock.putInstance("web", { name, uuid: `${name}-uuid`, host: "local", created: "2026-01-01T00:00:00.000Z", status: "running" });
    await lock.commit("two instances");
    await lock.release();
    const normal = await premiscale(dir, ["plan"]);
    expect(normal.stdout).toContain("To accept them into state, changing no VM: premiscale apply --refresh-only");
    const plan = await premiscale(dir, ["plan", "-refresh-only", "--detailed-exitcode", "--out", "refresh.plan"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(`  ~ web[${names[0]}] on host local: forget it (no longer exists on the host)`);
    expect(plan.stdout).toContain("Refresh-only: 2 updates to record in state; no VM is changed.");
    expect((await premiscale(dir, ["apply", "--refresh-only", "refresh.plan"])).stderr).toMatch(/--refresh-only cannot be used with a saved plan/);
    const applied = await premiscale(dir, ["apply", "refresh.plan"]);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain("Apply complete! 2 updates recorded in state; no VM was changed.");
    expect(JSON.parse((await premiscale(dir, ["state", "list", "--json"])).stdout).groups).toEqual([]);
    const again = await premiscale(dir, ["apply", "--refresh-only", "--auto-approve"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("No changes. Your infrastructure still matches the configuration.");
    expect((await premiscale(dir, ["plan", "--refresh-only", "--replace", "web"])).stderr).toMatch(/--replace cannot be used with --refresh-only/);
  });

  it("--help explains each command", async () => {
    const dir = await projectDir(configText());
    const r = await premiscale(dir, ["apply", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--auto-approve/);
    expect(r.stdout).toMatch(/--parallelism/);
    expect(r.stdout).toMatch(/--lock-timeout/);
    expect(r.stdout).toMatch(/--refresh-only/);
    expect((await premiscale(dir, ["plan", "--help"])).stdout).toMatch(/--refresh-only/);
  });
});

describe("premiscale simulate, the built CLI", () => {
  it("explains the trace format in --help and writes an SVG chart", async () => {
    const dir = await projectDir(
      "version: v1alpha1\nhosts:\n  - name: local\n    uri: qemu:///system\ngroups:\n  - name: web\n    min: 2\n    max: 12\n    hosts: [local]\n" +
        "    template:\n      memoryMiB: 128\n      disk: { baseImage: base.qcow2 }\n    scaling:\n      policies:\n        - {type: target-tracking, metric: cpu, target: 60}\n",
    );
    await writeFile(join(dir, "day.csv"), readFileSync(resolve(import.meta.dirname, "../examples/traces/web-day.csv")));
    const help = await premiscale(dir, ["simulate", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Trace \(CSV with a header, or JSON lines\): time/m);
    expect(help.stdout).toMatch(/^ {2}premiscale simulate --trace web-day\.csv --compare-config base\.yaml/m);
    const r = await premiscale(dir, ["simulate", "--trace", "day.csv", "--start-size", "6", "-o", "day.svg"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^web: 6 → 2 VMs .*\nWrote the simulation \(svg\) to day\.svg\.$/);
    expect((await readFile(join(dir, "day.svg"), "utf8")).startsWith("<svg ")).toBe(true);
  });
});
