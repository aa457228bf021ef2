import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError, PremiscaleError, type ConfigIssue } from "./errors.js";
import { configFragments } from "../providers/index.js";
import { libvirtConfig } from "../providers/libvirt/config.js";
import { closest, configNotices, loadConfig as loadWith, parseConfig, substituteEnv } from "./load.js";
import type { ProviderConfigFragment } from "./provider-kinds.js";

const KINDS: readonly ProviderConfigFragment[] = [libvirtConfig as ProviderConfigFragment];
const loadConfig = (file: string, env: Record<string, string | undefined> = {}, o: { checkEnv?: boolean } = {}) => loadWith(file, env, { ...o, kinds: KINDS });

const FILE = "/cfg/premiscale.yaml";

// Line numbers below refer to this text: 7 is `max`, 8 `hosts`, 10 `memoryMiB`.
const BASE = `version: v1alpha1
hosts:
  - name: local
    uri: qemu:///system
groups:
  - name: web
    max: 3
    hosts: [local]
    template:
      memoryMiB: 128
      disk:
        baseImage: base.qcow2
`;

/** BASE for a group that does not wait for check-ins, so its user-data need not be #cloud-config. */
const NO_CHECK_IN = BASE.replace("    template:", "    readiness: { checkIn: false }\n    template:");

function parse(text: string, env: Record<string, string> = {}, files: Record<string, string> = {}) {
  return parseConfig(
    text,
    FILE,
    env,
    (p) => {
      const content = files[p];
      if (content === undefined) throw new Error(`ENOENT: no such file or directory, open '${p}'`);
      return content;
    },
    { kinds: KINDS },
  );
}

function issues(text: string, env: Record<string, string> = {}, files: Record<string, string> = {}): ConfigIssue[] {
  try {
    parse(text, env, files);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

/** The only issue, for tests that break one rule. */
function only(text: string, env: Record<string, string> = {}, files: Record<string, string> = {}): ConfigIssue {
  const all = issues(text, env, files);
  expect(all).toHaveLength(1);
  return all[0] as ConfigIssue;
}

/** BASE with `userData` added to the template, indented as a literal block. */
function withUserData(userData: string): string {
  return NO_CHECK_IN + "      userData: |\n" + userData.split("\n").map((l) => (l ? "        " + l : l)).join("\n");
}

describe("parseConfig", () => {
  it("fills every default and resolves state.path against the config file's directory", () => {
    expect(parse(BASE)).toEqual({
      version: "v1alpha1",
      file: FILE,
      state: { path: "/cfg/premiscale-state" },
      server: { host: "127.0.0.1", port: 8970, advertiseUrl: "http://10.0.2.2:8970" },
      metrics: { intervalSeconds: 15, store: { type: "sqlite", path: "/cfg/premiscale-state/.premiscale/metrics.db", rawRetentionSeconds: 86400, rollupRetentionSeconds: 2592000 } },
      gitops: { repo: null, branch: "main", path: "premiscale.yaml", mode: "auto", intervalSeconds: 60, workDir: "/var/lib/premiscale/repo", planTtlSeconds: 86400, lock: { ttlSeconds: 300 }, webhook: null },
      hosts: [
        {
          name: "local",
          kind: "libvirt",
          reservedMemoryMiB: 512,
          cpuOvercommit: 4,
          maxParallel: 4,
          callTimeoutSeconds: 60,
          settings: { uri: "qemu:///system", pool: "default", accelerator: "kvm" },
        },
      ],
      groups: [
        {
          name: "web",
          min: 0,
          max: 3,
          desired: 0,
          hosts: ["local"],
          placement: "round-robin",
          template: { vcpus: 1, memoryMiB: 128, userData: "", secretEnv: [], settings: { libvirt: { disk: { baseImage: "base.qcow2", sizeGiB: 4 }, nic: { type: "user" } } } },
          networking: { mode: "dhcp" },
          readiness: { checkIn: true, timeoutSeconds: 900, heartbeatSeconds: 0, unhealthyAfterSeconds: 180 },
          suspend: false,
          rollout: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0, checkpoints: [], checkpointPauseSeconds: 0, rollback: true },
          lifecycleHooks: [],
        },
      ],
    });
  });

  it("accepts a reconcile bootstrap with only gitops.repo, and otherwise requires hosts and groups", () => {
    const c = parse("version: v1alpha1\ngitops:\n  repo: https://git.example.com/ops/vms.git\n");
    expect(c).toMatchObject({ hosts: [], groups: [], gitops: { repo: "https://git.example.com/ops/vms.git", path: "premiscale.yaml" } });
    expect(issues("version: v1alpha1\n").map((i) => i.message)).toEqual(expect.arrayContaining([expect.stringMatching(/hosts/), expect.stringMatching(/groups/)]));
  });

  it("reads a group's roll-out settings, and names a malformed surge", () => {
    const g = parse(BASE.replace("    hosts: [local]", "    hosts: [local]\n    rollout: {maxSurge: 25%, checkpoints: [50, 20]}\n    maxInstanceLifetimeSeconds: 86400")).groups[0]!;
    expect(g.rollout).toEqual({ strategy: "rolling", maxSurge: "25%", maxUnavailable: 0, checkpoints: [20, 50], checkpointPauseSeconds: 0, rollback: true });
    expect(g.maxInstanceLifetimeSeconds).toBe(86400);
    expect(only(BASE.replace("    hosts: [local]", "    hosts: [local]\n    rollout: {maxSurge: lots}"))).toMatchObject({
      path: "groups[0].rollout.maxSurge",
      message: 'must be a number of vms or a percentage of the group\'s size, e.g. 25%, got "lots"',
    });
  });

  it("reads a group's warm pool with its defaults and its three states, and refuses size together with maxPrepared or an unknown state", () => {
    const withPool = (pool: string) => BASE.replace("    hosts: [local]", `    hosts: [local]\n    warmPool: ${pool}`);
    expect(parse(withPool("{size: 2}")).groups[0]!.warmPool).toEqual({ size: 2, state: "stopped", reuseOnScaleIn: false });
    expect(parse(withPool("{maxPrepared: 3, state: running, reuseOnScaleIn: true}")).groups[0]!.warmPool).toEqual({ maxPrepared: 3, state: "running", reuseOnScaleIn: true });
    expect(parse(withPool("{}")).groups[0]!.warmPool).toEqual({ state: "stopped", reuseOnScaleIn: false });
    expect(parse(BASE).groups[0]!.warmPool).toBeUndefined();
    expect(only(withPool("{size: 2, maxPrepared: 3}"))).toMatchObject({ path: "groups[0].warmPool.maxPrepared", message: "size and maxPrepared are mutually exclusive" });
    expect(parse(withPool("{size: 1, state: paused, reuseOnScaleIn: true}")).groups[0]!.warmPool).toEqual({ size: 1, state: "paused", reuseOnScaleIn: true });
    expect(only(withPool("{state: hibernated}"))).toMatchObject({ path: "groups[0].warmPool.state" });
  });

  it("accepts accelerator auto for a host on this machine and refuses it for a remote one", () => {
    expect(parse(BASE.replace("uri: qemu:///system", "uri: qemu:///system\n    accelerator: auto")).hosts[0]?.settings.accelerator).toBe("auto");
    expect(only(BASE.replace("uri: qemu:///system", "uri: qemu+ssh://admin@kvm1/system\n    accelerator: auto"))).toMatchObject({
      path: "hosts[0].accelerator",
      message: expect.stringMatching(/only for hosts on this machine/),
    });
  });

  describe("scaling", () => {
    const scaling = (body: string) => BASE + "    scaling:\n" + body;

    it("loads policies as written", () => {
      const g = parse(scaling("      policies:\n        - type: target-tracking\n          metric: cpu\n          target: 60\n")).groups[0]!;
      expect(g.scaling).toEqual({ mode: "on", warmupSeconds: 60, policies: [{ type: "target-tracking", metric: "cpu", target: 60, tolerance: 0.1, disableScaleIn: false, windowSeconds: 60 }] });
    });

    it("names an unknown metric at its line and column, with the metrics it knows", () => {
      const issue = only(scaling("      policies:\n        - type: target-tracking\n          metric: cpux\n          target: 60\n"));
      expect(issue).toMatchObject({ path: "groups[0].scaling.policies[0].metric", line: 16, column: 19 });
      expect(issue.message).toMatch(/cpu/);
    });

    it("refuses overlapping step bounds, pointing at the step", () => {
      const issue = only(
        scaling("      policies:\n        - type: step\n          metric: cpu\n          steps:\n            - {lower: 0, upper: 20, adjustment: 1}\n            - {lower: 10, adjustment: 2}\n"),
      );
      expect(issue.path).toMatch(/^groups\[0\]\.scaling\.policies\[0\]\.steps\[1\]/);
      expect(issue.line).toBe(19);
      expect(issue.message).toMatch(/overlap/);
    });

    it("refuses an invalid cron and an unknown time zone", () => {
      const found = issues(scaling('      policies:\n        - type: schedule\n          cron: "61 * * * *"\n          minSize: 1\n        - type: schedule\n          cron: "@daily"\n          timezone: Mars/Olympus\n          minSize: 1\n'));
      expect(found.map((i) => [i.path, i.line])).toEqual([
        ["groups[0].scaling.policies[0].cron", 16],
        ["groups[0].scaling.policies[1].timezone", 20],
      ]);
      expect(found[0]!.message).toMatch(/invalid cron "61 \* \* \* \*"/);
      expect(found[1]!.fix).toMatch(/IANA/);
    });

    it("refuses desired together with policies", () => {
      const issue = only(scaling("      policies: [{type: target-tracking, metric: cpu, target: 50}]\n").replace("max: 3", "max: 3\n    desired: 2"));
      expect(issue).toMatchObject({ path: "groups[0].desired", message: "desired is decided by the group's scaling policies" });
    });
  });

  it("reads a Prometheus metrics source and a gitops block with a webhook", () => {
    const c = parse(BASE + "metrics:\n  store:\n    type: prometheus\n    url: http://127.0.0.1:8428\ngitops:\n  mode: review\n  webhook:\n    secretEnv: HOOK_SECRET\n");
    expect(c.metrics.store).toEqual({ type: "prometheus", url: "http://127.0.0.1:8428", queries: {}, memberLabel: "domain", stepSeconds: 15, rateWindow: "1m", timeoutSeconds: 10 });
    expect(c.gitops).toMatchObject({ mode: "review", webhook: { host: "127.0.0.1", port: 8971, provider: "github", secretEnv: "HOOK_SECRET" } });
    expect(only(BASE + "metrics:\n  store:\n    type: influxdb\n    url: http://x:8086\n")).toMatchObject({ path: "metrics.store.database", message: expect.stringMatching(/database/) });
  });

  it("refuses check-ins for user-data that is not #cloud-config, pointing at the user-data", () => {
    const issue = only(BASE + "      userData: |\n        #!/bin/sh\n        echo hi\n");
    expect(issue).toMatchObject({ path: "groups[0].template.userData", line: 13 });
    expect(issue.message).toMatch(/readiness.checkIn needs #cloud-config user-data/);
    expect(issue.fix).toMatch(/readiness.checkIn: false/);
  });

  it("reads the server's listen address and derives the URL guests use", () => {
    expect(parse(BASE + "server:\n  listen: 0.0.0.0:9000\n").server).toEqual({ host: "0.0.0.0", port: 9000, advertiseUrl: "http://10.0.2.2:9000" });
    expect(parse(BASE + "server:\n  listen: 127.0.0.1:9000\n  advertiseUrl: http://192.168.1.5:9000/\n").server.advertiseUrl).toBe("http://192.168.1.5:9000");
    expect(only(BASE + "server:\n  listen: 127.0.0.1:70000\n")).toMatchObject({ path: "server.listen", message: "port 70000 is not between 1 and 65535" });
  });

  it("makes a relative file name absolute and defaults desired to min", () => {
    const config = parseConfig(BASE.replace("max: 3", "max: 3\n    min: 2"), "rel/premiscale.yaml", {}, () => "", { kinds: KINDS });
    expect(config.file).toBe(path.resolve("rel/premiscale.yaml"));
    expect(config.groups[0]?.desired).toBe(2);
  });

  it("reports a YAML syntax error with its line and column", () => {
    const issue = only(BASE.replace("hosts: [local]", "hosts: [local"));
    expect(issue).toMatchObject({ file: FILE, line: 9, path: "" });
    expect(issue.message).toMatch(/flow sequence/i);
  });

  it("refuses a file with several YAML documents", () => {
    expect(only(BASE + "---\n" + BASE)).toMatchObject({ line: 13, message: "the file holds more than one YAML document; premiscale reads one" });
  });

  it("explains the name rule and offers a valid name", () => {
    expect(only(BASE.replace("name: web", "name: Web_1"))).toMatchObject({ path: "groups[0].name", fix: 'e.g. "web-1"' });
  });

  it("names an unknown field, points at its key and suggests the near typo", () => {
    const issue = only(BASE.replace("memoryMiB: 128", "memoryMiB: 128\n      memoryMib: 64"));
    expect(issue).toMatchObject({ line: 11, column: 7, path: "groups[0].template.memoryMib", message: 'unknown field "memoryMib"' });
    expect(issue.fix).toMatch(/^did you mean "memoryMiB"\? allowed fields: vcpus, memoryMiB, userData, userDataFile, disk, nic, boot$/);
  });

  it("says which type a field needs and what it got", () => {
    expect(only(BASE.replace("max: 3", "max: three"))).toMatchObject({ line: 7, column: 10, path: "groups[0].max", message: 'must be an integer, got "three"' });
  });

  it("lists the allowed values of an enum and suggests the closest", () => {
    const issue = only(BASE.replace("    uri:", "    accelerator: kvn\n    uri:"));
    expect(issue).toMatchObject({ line: 4, column: 18, path: "hosts[0].accelerator", message: 'must be one of "kvm", "qemu", "auto", got "kvn"', fix: 'did you mean "kvm"?' });
  });

  it("names a missing required field at its parent", () => {
    expect(only(BASE.replace("        baseImage: base.qcow2\n", "        sizeGiB: 2\n"))).toMatchObject({
      line: 12,
      column: 9,
      path: "groups[0].template.disk.baseImage",
      message: 'missing required field "baseImage"',
      fix: "add baseImage (Name of a qcow2 volume in the host's pool, used as the backing image.)",
    });
  });

  it("collects every schema issue, ordered by line", () => {
    const all = issues(BASE.replace("version: v1alpha1", "version: v1").replace("max: 3", "max: 0").replace("memoryMiB: 128", "memoryMiB: 32"));
    expect(all.map((i) => [i.line, i.path, i.message])).toEqual([
      [1, "version", 'must be "v1alpha1", got "v1"'],
      [7, "groups[0].max", "must be >= 1, got 0"],
      [10, "groups[0].template.memoryMiB", "must be >= 64, got 32"],
    ]);
  });

  it("refuses min greater than max", () => {
    expect(only(BASE.replace("max: 3", "max: 3\n    min: 4"))).toMatchObject({ line: 8, column: 10, path: "groups[0].min", message: "min (4) is greater than max (3)" });
  });

  it("refuses desired outside min..max", () => {
    expect(only(BASE.replace("max: 3", "max: 3\n    desired: 5"))).toMatchObject({ path: "groups[0].desired", message: "desired (5) must be between min (0) and max (3)" });
  });

  it("accepts any min <= desired <= max and rejects every other triple", () => {
    fc.assert(
      fc.property(fc.nat(20), fc.nat(20), fc.integer({ min: 1, max: 20 }), (min, desired, max) => {
        const text = BASE.replace("max: 3", `max: ${max}\n    min: ${min}\n    desired: ${desired}`);
        const ok = min <= desired && desired <= max;
        if (ok) expect(parse(text).groups[0]).toMatchObject({ min, desired, max });
        else expect(issues(text).map((i) => i.path)).toEqual([min > max ? "groups[0].min" : "groups[0].desired"]);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses a group host that is not declared, suggesting the closest", () => {
    const issue = only(BASE.replace("hosts: [local]", "hosts: [locl]"));
    expect(issue).toMatchObject({ line: 8, column: 13, path: "groups[0].hosts[0]", message: 'unknown host "locl"', fix: 'did you mean "local"? known hosts: local' });
  });

  it.each([
    ["qemu+shh://admin@kvm1/system", /unknown libvirt URI scheme "qemu\+shh"/],
    ["qemu:/system", /is not a libvirt URI/],
    ["qemu:///systen", /must be \/system or \/session/],
    ["test://host/default", /test URIs must be/],
    ["test:///", /test URIs must be/],
  ])("refuses the libvirt URI %s", (uri, message) => {
    const issue = only(BASE.replace("qemu:///system", uri));
    expect(issue).toMatchObject({ line: 4, column: 10, path: "hosts[0].uri" });
    expect(issue.message).toMatch(message);
  });

  it.each(["qemu:///system", "qemu:///session", "qemu+ssh://admin@kvm1:2222/system?keyfile=/k", "qemu+tls://kvm1/system", "test:///default", "test:///srv/node.xml"])(
    "accepts the libvirt URI %s",
    (uri) => {
      expect(parse(BASE.replace("qemu:///system", uri)).hosts[0]?.settings.uri).toBe(uri);
    },
  );

  it("refuses duplicate host and group names", () => {
    const text = BASE.replace("groups:", "  - name: local\n    uri: test:///default\ngroups:") + BASE.slice(BASE.indexOf("  - name: web"));
    expect(issues(text).map((i) => [i.line, i.path, i.message])).toEqual([
      [5, "hosts[1].name", 'host name "local" is already used by hosts[0]'],
      [15, "groups[1].name", 'group name "web" is already used by groups[0]'],
    ]);
  });

  it("reads userDataFile relative to the config file and collects its placeholders", () => {
    const text = NO_CHECK_IN + "      userDataFile: ./ud/web.yaml\n";
    const config = parse(text, { B: "1", A_1: "2" }, { "/cfg/ud/web.yaml": "#!/bin/sh\necho ${env:B} ${env:A_1} ${env:B}\n" });
    expect(config.groups[0]?.template).toMatchObject({ userData: "#!/bin/sh\necho ${env:B} ${env:A_1} ${env:B}\n", secretEnv: ["A_1", "B"] });
  });

  it("points at userDataFile when the file cannot be read", () => {
    const issue = only(BASE + "      userDataFile: ./missing.yaml\n");
    expect(issue).toMatchObject({ line: 13, column: 21, path: "groups[0].template.userDataFile" });
    expect(issue.message).toBe("cannot read user-data file /cfg/missing.yaml: ENOENT: no such file or directory");
  });

  it("cuts a user-data path of thousands of characters in its message", () => {
    const issue = only(BASE + `      userDataFile: ${"a".repeat(3000)}\n`);
    expect(issue.path).toBe("groups[0].template.userDataFile");
    expect(issue.message).toMatch(/^cannot read user-data file \/cfg\/a{195}… \(3,005 characters\): /);
    expect(issue.message.length).toBeLessThan(400);
  });

  it("refuses userData together with userDataFile", () => {
    expect(only(withUserData("hi\n") + "      userDataFile: x\n")).toMatchObject({ path: "groups[0].template.userDataFile", message: "userData and userDataFile are mutually exclusive" });
  });

  it("names an unset environment variable and the field using it, at its line in the block", () => {
    const issue = only(withUserData("#!/bin/sh\necho ${env:TOKEN}\n"));
    expect(issue).toMatchObject({ line: 16, column: 14, path: "groups[0].template.userData", message: "environment variable TOKEN is not set (used in groups[0].template.userData)" });
    expect(issue.fix).toMatch(/export TOKEN=/);
  });

  it("refuses placeholders whose name is not an environment variable name", () => {
    expect(only(withUserData("echo ${env:token}\n")).message).toMatch(/invalid placeholder "\$\{env:token\}"/);
  });

  it("refuses literal passwords in cloud-config without repeating them", () => {
    const text = withUserData(`#cloud-config
password: hunter2
users:
  - name: web
    plain_text_passwd: hunter3
  - name: ok
    plain_text_passwd: \${env:OK_PASSWORD}
chpasswd:
  users:
    - name: web
      password: hunter4
  list: |
    root:hunter5
    web:RANDOM
`);
    const all = issues(text, { OK_PASSWORD: "x" });
    expect(all.map((i) => [i.line, i.column, i.message])).toEqual([
      [16, 19, "password is a literal value; secrets must be $ENV references, e.g. ${env:WEB_PASSWORD}"],
      [19, 32, "plain_text_passwd is a literal value; secrets must be $ENV references, e.g. ${env:WEB_PASSWORD}"],
      [25, 25, "chpasswd password is a literal value; secrets must be $ENV references, e.g. ${env:WEB_PASSWORD}"],
      [26, 17, "chpasswd.list is a literal value; secrets must be $ENV references, e.g. ${env:WEB_PASSWORD}"],
    ]);
    expect(JSON.stringify(all)).not.toMatch(/hunter/);
  });

  it("accepts cloud-config secrets that are placeholders and reports where in a user-data file a literal is", () => {
    const ud = "#cloud-config\nusers:\n  - name: web\n    passwd: $6$hash\n    password: ${env:WEB_PASSWORD}\n";
    expect(parse(withUserData(ud), { WEB_PASSWORD: "x" }).groups[0]?.template.secretEnv).toEqual(["WEB_PASSWORD"]);
    const issue = only(BASE + "      userDataFile: ud.yaml\n", {}, { "/cfg/ud.yaml": ud.replace("${env:WEB_PASSWORD}", "hunter2") });
    expect(issue).toMatchObject({ line: 13, column: 21, path: "groups[0].template.userDataFile" });
    expect(issue.message).toMatch(/^users password is a literal value; .* \(ud.yaml:5:15\)$/);
  });

  it("leaves user-data that is not cloud-config unscanned", () => {
    expect(parse(withUserData("#!/bin/sh\necho 'password: hunter2'\n")).groups[0]?.template.userData).toContain("hunter2");
  });

  describe("static networking", () => {
    const net = (body: string): string => BASE + "    networking:\n      mode: static\n" + body;

    it("loads a static pool", () => {
      expect(parse(net('      addresses: ["10.0.0.10-10.0.0.11", 10.0.0.20]\n      prefix: 24\n      gateway: 10.0.0.1\n')).groups[0]?.networking).toEqual({
        mode: "static",
        addresses: ["10.0.0.10-10.0.0.11", "10.0.0.20"],
        prefix: 24,
        gateway: "10.0.0.1",
        dns: [],
      });
    });

    it("refuses a pool with fewer addresses than max", () => {
      expect(only(net("      addresses: [10.0.0.10-10.0.0.11, 10.0.0.11]\n      prefix: 24\n"))).toMatchObject({
        line: 15,
        column: 18,
        path: "groups[0].networking.addresses",
        message: "the pool has 2 addresses but max is 3",
      });
    });

    it("refuses a gateway outside the addresses' subnet", () => {
      expect(only(net("      addresses: [10.0.0.10-10.0.0.12]\n      prefix: 24\n      gateway: 10.0.1.1\n"))).toMatchObject({
        line: 17,
        column: 16,
        path: "groups[0].networking.gateway",
        message: "gateway 10.0.1.1 is not in the same /24 subnet as 10.0.0.10-10.0.0.12",
      });
    });

    it("refuses malformed addresses, reversed ranges and a missing prefix", () => {
      expect(issues(net("      addresses: [10.0.0.300, 10.0.0.9-10.0.0.1]\n")).map((i) => i.message)).toEqual(['missing required field "prefix"']);
      expect(issues(net("      addresses: [10.0.0.300, 10.0.0.9-10.0.0.1, 10.0.0.3]\n      prefix: 24\n      dns: [x]\n")).map((i) => [i.path, i.message])).toEqual([
        ["groups[0].networking.addresses[0]", '"10.0.0.300" is not an IPv4 address or range'],
        ["groups[0].networking.addresses[1]", 'range "10.0.0.9-10.0.0.1" starts after it ends'],
        ["groups[0].networking.dns[0]", '"x" is not an IPv4 address'],
      ]);
    });

    it("refuses two groups sharing an address", () => {
      const second = "  - name: db\n    max: 1\n    hosts: [local]\n    template: {memoryMiB: 128, disk: {baseImage: b}}\n    networking: {mode: static, prefix: 24, addresses: [10.0.0.12-10.0.0.20]}\n";
      expect(only(net("      addresses: [10.0.0.10-10.0.0.12]\n      prefix: 24\n") + second)).toMatchObject({
        line: 21,
        path: "groups[1].networking.addresses[0]",
        message: "10.0.0.12 is also in the pool of groups[0] (web)",
      });
    });

    it("refuses static fields under dhcp and a source on a user NIC", () => {
      const text = BASE + "      nic: {type: user, source: br0}\n    networking: {mode: dhcp, prefix: 24}\n";
      expect(issues(text).map((i) => i.path)).toEqual(["groups[0].template.nic.source", "groups[0].networking.prefix"]);
    });
  });
});

describe("host kinds", () => {
  /** A second kind, so fields on the wrong kind can be tried while premiscale has one. */
  const other: ProviderConfigFragment = {
    kind: "other",
    description: "a test kind",
    host: { properties: { endpoint: { type: "string" } }, required: ["endpoint"], normalise: (f) => ({ endpoint: f.endpoint }) },
    template: { properties: { image: { type: "string" } }, required: ["image"], normalise: (f) => ({ image: f.image }) },
  };
  const TWO = [...KINDS, other];
  const parseTwo = (text: string) => parseConfig(text, FILE, {}, () => "", { kinds: TWO });
  const issuesTwo = (text: string): ConfigIssue[] => {
    try {
      parseTwo(text);
    } catch (err) {
      if (err instanceof ConfigError) return err.issues;
      throw err;
    }
    throw new Error("expected a ConfigError");
  };

  it("takes a host without kind as libvirt and says so", () => {
    const config = parse(BASE);
    expect(config.hosts[0]?.kind).toBe("libvirt");
    expect(configNotices(config)).toEqual([
      expect.objectContaining({ line: 3, path: "hosts[0]", message: "host local does not say its kind: libvirt is assumed", fix: "write kind: libvirt" }),
    ]);
    expect(configNotices(parse(BASE.replace("  - name: local", "  - name: local\n    kind: libvirt")))).toEqual([]);
  });

  it("refuses an unknown kind, naming the kinds there are", () => {
    const issue = only(BASE.replace("  - name: local", "  - name: local\n    kind: libvrt"));
    expect(issue).toMatchObject({ line: 4, path: "hosts[0].kind", message: 'must be one of "libvirt", got "libvrt"', fix: 'did you mean "libvirt"?' });
  });

  it("refuses a field of another kind on a host, pointing at it", () => {
    const text = BASE.replace("  - name: local\n    uri: qemu:///system", "  - name: local\n    kind: other\n    endpoint: https://pve1:8006\n    pool: default").replace("        baseImage: base.qcow2", "        baseImage: base.qcow2\n      image: debian");
    const found = issuesTwo(text);
    expect(found).toEqual([
      expect.objectContaining({ line: 6, column: 5, path: "hosts[0].pool", message: '"pool" is a field of libvirt hosts, and this host is kind other', fix: "remove it, or set kind: libvirt" }),
      expect.objectContaining({ path: "groups[0].template.disk", message: '"disk" is a field of libvirt templates, and none of the group\'s hosts is of that kind (other)' }),
    ]);
  });

  it("requires each kind's own fields, on hosts and on the templates of groups placed on them", () => {
    const text = BASE.replace("  - name: local\n    uri: qemu:///system", "  - name: local\n    uri: qemu:///system\n  - name: pve\n    kind: other").replace("hosts: [local]", "hosts: [local, pve]");
    expect(issuesTwo(text).map((i) => [i.path, i.message])).toEqual([
      ["hosts[1].endpoint", 'missing required field "endpoint" (other hosts need it)'],
      ["groups[0].template.image", 'missing required field "image" (the group has other hosts)'],
    ]);
  });

  it("gives each kind of a group's hosts its own settings from the template", () => {
    const text = BASE.replace("  - name: local\n    uri: qemu:///system", "  - name: local\n    uri: qemu:///system\n  - name: pve\n    kind: other\n    endpoint: https://pve1:8006").replace("hosts: [local]", "hosts: [local, pve]").replace("        baseImage: base.qcow2", "        baseImage: base.qcow2\n      image: debian");
    const config = parseTwo(text);
    expect(config.hosts.map((h) => [h.kind, h.settings])).toEqual([
      ["libvirt", { uri: "qemu:///system", pool: "default", accelerator: "kvm" }],
      ["other", { endpoint: "https://pve1:8006" }],
    ]);
    expect(config.groups[0]?.template.settings).toEqual({ libvirt: { disk: { baseImage: "base.qcow2", sizeGiB: 4 }, nic: { type: "user" } }, other: { image: "debian" } });
  });
});

describe("large files", () => {
  it("reports a list of 60,000 wrong items, one issue each, in seconds rather than minutes", () => {
    const text = BASE.replace("hosts: [local]", `hosts: [${Array.from({ length: 60_000 }, (_, i) => i).join(", ")}]`);
    const started = performance.now();
    const found = issues(text);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(found).toHaveLength(60_000);
    expect(found[59_999]).toMatchObject({ path: "groups[0].hosts[59999]", message: "must be a string, got 59999" });
  });

  it("suggests a name for one of 200,000 characters with a long run of dashes inside, in seconds rather than minutes", () => {
    const name = "a" + "-".repeat(200_000) + "B";
    const started = performance.now();
    const found = issues(BASE.replace("name: web", `name: ${name}`));
    expect(performance.now() - started).toBeLessThan(5_000);
    // The suggestion is a valid name: at most 40 characters (a group name's limit), no dash at either end.
    expect(found.find((i) => i.path === "groups[0].name" && i.fix?.startsWith("e.g."))?.fix).toBe('e.g. "a"');
  });

  it("cuts a long value in a message to its start and its length, so a 1 MB value is not a 1 MB error", () => {
    const value = "x\u0000y".repeat(100_000);
    const found = issues(BASE.replace("    uri:", `    accelerator: "${value}"\n    uri:`));
    const issue = found.find((i) => i.path === "hosts[0].accelerator");
    expect(issue?.message).toBe(`must be one of "kvm", "qemu", "auto", got ${JSON.stringify("x\u0000y".repeat(40).slice(0, 80))}… (300,000 characters)`);
    const name = issues(BASE.replace("name: web", `name: "${"Web_".repeat(50_000)}"`)).filter((i) => i.path === "groups[0].name");
    expect(name.map((i) => i.message.length).every((n) => n < 300)).toBe(true);
    expect(name.find((i) => i.fix)?.fix).toBe(`e.g. "${"web-".repeat(10).slice(0, 39)}"`);
  });

  it("cuts any issue's message or fix over 1,000 characters, whatever rule wrote it (a 2,000-character path, say)", () => {
    const long = "/cfg/" + "a".repeat(2_000);
    const e = new ConfigError([{ file: FILE, line: 3, column: 5, path: "hosts[0].api.caFile", message: `${long} does not exist`, fix: `copy it; the path is relative to ${long}` }]);
    expect(e.issues[0]!.message).toBe(`${`${long} does not exist`.slice(0, 1_000)}… (2,020 characters)`);
    expect(e.issues[0]!.fix!.length).toBeLessThan(1_050);
    expect(e.message.length).toBeLessThan(1_100);
    const short = new ConfigError([{ file: FILE, line: 1, column: 1, path: "", message: "m", fix: "f" }]);
    expect(short.issues[0]).toEqual({ file: FILE, line: 1, column: 1, path: "", message: "m", fix: "f" });
  });

  it("keeps a YAML syntax error to one short line when the file's lines end in CR alone", () => {
    const text = BASE.replace("hosts: [local]", "hosts: [local").replace(/\n/g, "\r") + "# " + "z".repeat(100_000) + "\r";
    const found = issues(text);
    expect(found.length).toBeGreaterThan(0);
    for (const i of found) expect(i.message.length).toBeLessThanOrEqual(201);
  });

  it("checks user-data holding 40,000 unclosed ${env: or 40,000 bad placeholders on their own lines in seconds", () => {
    const started = performance.now();
    expect(parse(withUserData("${env:".repeat(40_000) + "\n")).groups[0]?.template.secretEnv).toEqual([]);
    const found = issues(withUserData("${env:a}\n".repeat(40_000)));
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(found).toHaveLength(40_000);
    // Line 14 holds `userData: |`, so the last placeholder is on line 14 + 40,000, after the block's indentation.
    expect(found[39_999]).toMatchObject({ line: 40_014, column: 9, message: expect.stringMatching(/^invalid placeholder "\$\{env:a\}"/) });
  });

  it("refuses mappings of 100,000 keys, in the file and in #cloud-config user-data, in time linear in their size", () => {
    const keys = (n: number) => Array.from({ length: n }, (_, i) => `k${i}: ${i}`).join(", ");
    const both = (n: number) => {
      const started = performance.now();
      expect(issues(BASE.replace("version: v1alpha1", `version: {${keys(n)}}`))[0]).toMatchObject({ line: 1, path: "version", message: "must be a string, got a mapping" });
      expect(issues(withUserData(`#cloud-config\nwrite_files: {${keys(n)}, k7: 7}\n`).replace("readiness: { checkIn: false }", "readiness: { checkIn: true }"))).toEqual([
        expect.objectContaining({ path: "groups[0].template.userData", message: `user-data starts with #cloud-config but is not valid YAML: Map keys must be unique at line 2, column ${"write_files: {".length + keys(n).length + ", ".length + 1}:` }),
      ]);
      return performance.now() - started;
    };
    // Five times the keys in the same run: linear work takes ~5x as long, the quadratic lookup this guards against
    // (an issue per key, a scan per issue: 90 s) ~25x. A ratio, not a limit in seconds: the machine's load cancels out.
    const small = both(20_000);
    const large = both(100_000);
    expect(large / small).toBeLessThan(12);
  }, 120_000);
});

describe("YAML keys", () => {
  it("refuses a key given twice in one mapping at the second one's line and column, and allows it in two mappings", () => {
    const twice = BASE.replace("    max: 3\n", "    max: 3\n    min: 0\n    max: 4\n");
    expect(issues(twice)).toEqual([expect.objectContaining({ line: 9, column: 5, path: "", message: "Map keys must be unique", fix: "fix the YAML syntax" })]);
    expect(issues(BASE + "    nope: {a: 1, b: {a: 2}, 1: x, '1': y, .nan: 1, .NaN: 2}\n")).toEqual([expect.objectContaining({ path: "groups[0].nope", message: 'unknown field "nope"' })]);
  });
});

describe("YAML aliases", () => {
  it("refuses an alias bomb at the line and column of its first alias", () => {
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]", "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]", "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]", ""].join("\n");
    expect(issues(bomb + BASE)).toEqual([
      expect.objectContaining({ line: 2, column: 8, path: "", message: expect.stringMatching(/alias/i), fix: "use fewer YAML aliases" }),
    ]);
  });
});

describe("loadConfig", () => {
  it("says a missing config file does not exist", async () => {
    const err: unknown = await loadConfig("/nonexistent/premiscale.yaml").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe("/nonexistent/premiscale.yaml:0:0: config file does not exist");
    expect((err as ConfigError).hint).toMatch(/examples\/basic.yaml/);
  });

  it("reads userDataFile from disk next to the config", async () => {
    const file = fileURLToPath(new URL("./testdata/with-user-data-file.yaml", import.meta.url));
    const config = await loadConfig(file, { WEB_PASSWORD: "x" });
    expect(config.groups[0]?.template.userData).toMatch(/plain_text_passwd: \$\{env:WEB_PASSWORD\}/);
    expect(config.state.path).toBe(path.join(path.dirname(file), "premiscale-state"));
  });


  it("loads every example in examples/", async () => {
    const dir = fileURLToPath(new URL("../examples/", import.meta.url));
    const examples = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
    expect(examples).toEqual(expect.arrayContaining(["basic.yaml", "static-network.yaml"]));
    for (const f of examples) {
      // Every kind premiscale has: examples/proxmox.yaml is a Proxmox VE one.
      const config = await loadWith(path.join(dir, f), new Proxy({}, { get: () => "example" }), { kinds: configFragments });
      expect(config.groups.length, f).toBeGreaterThan(0);
    }
  });
});

describe("substituteEnv", () => {
  it("fills placeholders and refuses unset variables", () => {
    expect(substituteEnv("a=${env:A} b=${env:A}", { A: "1" })).toBe("a=1 b=1");
    expect(() => substituteEnv("${env:B}", {})).toThrow(PremiscaleError);
  });

  it("fills exactly what the regex /\\$\\{env:([^}]*)\\}/g it replaced found", () => {
    const env = new Proxy({}, { get: (_, name) => (typeof name === "string" && /^[A-Z_][A-Z0-9_]*$/.test(name) ? `<${name}>` : undefined) }) as Record<string, string | undefined>;
    const byRegex = (text: string) => text.replace(/\$\{env:([^}]*)\}/g, (_, name: string) => env[name] ?? "<unset>");
    const pieces = fc.constantFrom("${env:", "${", "$", "{", "}", "env:", "A", "B_1", "a", "\n", " ", "$$", "${env:}");
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 20 }).map((p) => p.join("")), (text) => {
        let ours: string;
        try {
          ours = substituteEnv(text, env);
        } catch {
          ours = "<unset>";
        }
        expect(ours === "<unset>" ? byRegex(text).includes("<unset>") : ours === byRegex(text)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("closest", () => {
  it("suggests only plausible typos", () => {
    expect(closest("hsots", ["hosts", "groups"])).toBe("hosts");
    expect(closest("zzzzzz", ["hosts", "groups"])).toBeUndefined();
  });
});
