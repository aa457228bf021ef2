import { describe, expect, it } from "vitest";
import { libvirtConfig } from "../providers/libvirt/config.js";
import { ConfigError } from "./errors.js";
import { KUBEADM_TOKEN_GROUP } from "./kubernetes-config.js";
import { parseConfig } from "./load.js";
import type { ProviderConfigFragment } from "./provider-kinds.js";

const KINDS: readonly ProviderConfigFragment[] = [libvirtConfig as ProviderConfigFragment];

function config(top: string, group: string, extra = "") {
  return `version: v1alpha1
${top}
${extra}
hosts:
  - name: local
    kind: libvirt
    uri: qemu:///system
groups:
  - name: workers
    max: 3
    hosts: [local]
    readiness: { timeoutSeconds: 300 }
    template:
      memoryMiB: 512
      disk: { baseImage: base.qcow2 }
${group}
`;
}
const TOP = "kubernetes:\n  kubeconfig: ./ca.kubeconfig";
const GROUP = "    kubernetes:\n      labels: { type: kwok }";

const parse = (text: string) => parseConfig(text, "/cfg/premiscale.yaml", {}, () => "", { kinds: KINDS });
function issues(text: string): string[] {
  try {
    parse(text);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.line}:${i.path}: ${i.message}${i.fix ? ` (${i.fix})` : ""}`);
    throw e;
  }
  return [];
}

describe("the kubernetes blocks", () => {
  it("fill their defaults: listener on 127.0.0.1:8972, kubeadm joins in kubeadm's token group, CA's provision time past premiscale's", () => {
    const c = parse(config(TOP, GROUP));
    expect(c.kubernetes).toEqual({
      kubeconfig: "/cfg/ca.kubeconfig",
      callTimeoutSeconds: 10,
      externalGrpc: { host: "127.0.0.1", port: 8972, tls: null },
      debounceMs: 200,
      resyncSeconds: 60,
      leaderElection: { enabled: false, leaseName: "premiscale", leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 },
    });
    expect(c.groups[0]!.kubernetes).toEqual({
      join: "kubeadm",
      labels: { type: "kwok" },
      taints: [],
      maxPods: 110,
      reservedCpuMillis: 0,
      reservedMemoryMiB: 0,
      tokenGroups: [KUBEADM_TOKEN_GROUP],
      tokenTtlSeconds: 300,
      autoscaling: { maxNodeProvisionSeconds: 360 },
    });
  });

  it("take the credentials from the pod's service account when kubeconfig is unset", () => {
    const c = parse(config("kubernetes: {}", GROUP));
    expect(c.kubernetes!.kubeconfig).toBeUndefined();
  });

  it("fill leader election with client-go's defaults and refuse timing that lets two replicas lead at once", () => {
    const c = parse(config(`${TOP}\n  leaderElection: { enabled: true, namespace: premiscale }`, GROUP));
    expect(c.kubernetes!.leaderElection).toEqual({ enabled: true, namespace: "premiscale", leaseName: "premiscale", leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 });
    expect(issues(config(`${TOP}\n  leaderElection: { enabled: true, leaseDurationSeconds: 10 }`, GROUP))).toEqual([
      "4:kubernetes.leaderElection.renewDeadlineSeconds: renewDeadlineSeconds (10) must be less than leaseDurationSeconds (10): the leader must give up before another replica may take over (keep client-go's defaults (15, 10, 2), or lower renewDeadlineSeconds)",
    ]);
    expect(issues(config(`${TOP}\n  leaderElection: { retryPeriodSeconds: 9 }`, GROUP))[0]).toMatch(/^4:kubernetes\.leaderElection\.retryPeriodSeconds: renewDeadlineSeconds \(10\) must be greater than 1\.2 × retryPeriodSeconds \(9\)/);
    expect(issues(config(`${TOP}\n  leaderElection: { leaseName: "Not A Name" }`, GROUP)).join("\n")).toMatch(/kubernetes\.leaderElection\.leaseName/);
  });

  it("fill the leader's endpoint with its defaults, and refuse one no leader could write or cluster-autoscaler could reach, at its line", () => {
    const grpc = "  externalGrpc:\n    listen: 0.0.0.0:8972\n    tls: { cert: s.crt, key: s.key, clientCa: ca.crt }";
    const c = parse(config(`${TOP}\n${grpc}\n  leaderElection:\n    enabled: true\n    endpoint: { service: premiscale-leader }`, GROUP));
    expect(c.kubernetes!.leaderElection!.endpoint).toEqual({ service: "premiscale-leader", addressEnv: "POD_IP", portName: "externalgrpc" });
    const own = parse(config(`${TOP}\n${grpc}\n  leaderElection:\n    enabled: true\n    endpoint: { service: ca, namespace: ops, addressEnv: MY_IP, portName: "" }`, GROUP));
    expect(own.kubernetes!.leaderElection!.endpoint).toEqual({ service: "ca", namespace: "ops", addressEnv: "MY_IP", portName: "" });
    expect(issues(config(`${TOP}\n  leaderElection:\n    enabled: true\n    endpoint: { service: premiscale-leader }`, GROUP))).toEqual([
      "6:kubernetes.leaderElection.endpoint: externalGrpc listens on 127.0.0.1:8972, a loopback address: the leader's Service would send cluster-autoscaler to a port only this machine reaches (listen on 0.0.0.0 with kubernetes.externalGrpc.tls, or remove endpoint)",
    ]);
    expect(issues(config(`${TOP}\n${grpc}\n  leaderElection:\n    endpoint: { service: premiscale-leader }`, GROUP))).toEqual([
      "8:kubernetes.leaderElection.endpoint: kubernetes.leaderElection.endpoint is set, but leader election is off, so no leader writes it (set kubernetes.leaderElection.enabled: true, or remove endpoint)",
    ]);
    expect(issues(config(`${TOP}\n  mode: native\n  leaderElection:\n    enabled: true\n    endpoint: { service: premiscale-leader }`, GROUP))).toEqual([
      "7:kubernetes.leaderElection.endpoint: native mode has no externalgrpc listener for the Service to point at (remove kubernetes.leaderElection.endpoint (or use mode: cluster-autoscaler))",
    ]);
    expect(issues(config(`${TOP}\n${grpc}\n  leaderElection:\n    enabled: true\n    endpoint: { service: Leader_Svc, addressEnv: "1X" }`, GROUP)).join("\n")).toMatch(
      /kubernetes\.leaderElection\.endpoint\.service[\s\S]*kubernetes\.leaderElection\.endpoint\.addressEnv|kubernetes\.leaderElection\.endpoint\.addressEnv[\s\S]*kubernetes\.leaderElection\.endpoint\.service/,
    );
    expect(issues(config(`${TOP}\n${grpc}\n  leaderElection:\n    enabled: true\n    endpoint: {}`, GROUP)).join("\n")).toMatch(/kubernetes\.leaderElection\.endpoint.*service/);
  });

  it("resolve the TLS files against the config file's directory", () => {
    const c = parse(config(`${TOP}\n  externalGrpc:\n    listen: 10.0.0.5:8972\n    tls: { cert: tls/s.crt, key: tls/s.key, clientCa: tls/ca.crt, allowedClients: [cluster-autoscaler] }`, GROUP));
    expect(c.kubernetes!.externalGrpc).toEqual({ host: "10.0.0.5", port: 8972, tls: { cert: "/cfg/tls/s.crt", key: "/cfg/tls/s.key", clientCa: "/cfg/tls/ca.crt", allowedClients: ["cluster-autoscaler"] } });
  });

  it("refuse a plaintext listener that is not on loopback", () => {
    expect(issues(config(`${TOP}\n  externalGrpc: { listen: 0.0.0.0:8972 }`, GROUP))).toEqual([
      "4:kubernetes.externalGrpc.listen: externalGrpc listens on 0.0.0.0:8972 without tls: cluster-autoscaler's calls change the cluster's size, so plaintext is allowed only on a loopback address (set kubernetes.externalGrpc.tls (cert, key, clientCa: the files cluster-autoscaler's cloud-config names as cert, key and cacert), or listen on 127.0.0.1)",
    ]);
    expect(issues(config(`${TOP}\n  externalGrpc: { listen: "[::1]:8972" }`, GROUP))).toEqual([]);
  });

  it("refuse a node group without the top-level block, and desired or scaling on a node group", () => {
    expect(issues(config("", GROUP))).toEqual([
      "16:groups[0].kubernetes: the group is a Kubernetes node group, but the config has no top-level kubernetes block (add kubernetes: {kubeconfig: …} at the top level (the cluster and cluster-autoscaler's externalgrpc listener))",
    ]);
    expect(issues(config(TOP, `${GROUP}\n    desired: 2`))).toEqual(["19:groups[0].desired: cluster-autoscaler decides the size of a Kubernetes node group (remove desired (the group starts at min, or at the VMs it has))"]);
    expect(issues(config(TOP, `${GROUP}\n    scaling: { policies: [{ type: target-tracking, metric: cpu, target: 50 }] }`))[0]).toMatch(/^19:groups\[0\]\.scaling: cluster-autoscaler decides the size of a Kubernetes node group; scaling policies cannot also decide it/);
  });

  it("refuse a node group in a review-mode GitOps config: cluster-autoscaler cannot wait for a pull request", () => {
    expect(issues(config(TOP, GROUP, "gitops:\n  mode: review"))).toEqual([
      "18:groups[0].kubernetes: gitops.mode is review, but cluster-autoscaler changes this group's size at any moment and waits seconds, not a pull request, for the VMs (use gitops.mode: auto, or remove the group's kubernetes block)",
    ]);
    expect(issues(config(TOP, GROUP, "gitops:\n  mode: auto"))).toEqual([]);
  });

  it("want a server URL for k3s and rke2 joins, and label keys and token groups Kubernetes accepts", () => {
    expect(issues(config(TOP, "    kubernetes:\n      join: rke2"))).toEqual(["18:groups[0].kubernetes.join: join: rke2 needs the server URL its agents register with (add kubernetes.server: https://<server>:9345)"]);
    expect(issues(config(TOP, "    kubernetes:\n      labels: { 'bad key!': x }")).join("\n")).toMatch(/groups\[0\]\.kubernetes\.labels/);
    expect(issues(config(TOP, "    kubernetes:\n      tokenGroups: [system:masters]")).join("\n")).toMatch(/groups\[0\]\.kubernetes\.tokenGroups\[0\]/);
  });

  it("turn on native mode with cluster-autoscaler's defaults, priorities highest first", () => {
    const c = parse(config(`${TOP}\n  mode: native\n  native:\n    expander: [priority, least-waste]\n    priorities: { "1": [".*"], "10": ["^web-", "^api-"] }`, GROUP));
    expect(c.kubernetes!.native).toEqual({
      scanIntervalSeconds: 10,
      expander: ["priority", "least-waste"],
      priorities: [
        { priority: 10, patterns: ["^web-", "^api-"] },
        { priority: 1, patterns: [".*"] },
      ],
      scaleDown: { enabled: true, utilizationThreshold: 0.5, unneededSeconds: 600, delayAfterAddSeconds: 600, delayAfterDeleteSeconds: 0, delayAfterFailureSeconds: 180, budget: "10%", budgets: [] },
      maxTotalUnreadyPercentage: 45,
      okTotalUnreadyCount: 3,
      batchIdleMs: 1000,
      batchMaxMs: 10_000,
      pollMs: 500,
    });
    expect(parse(config(`${TOP}\n  mode: native`, GROUP)).kubernetes!.native!.expander).toEqual(["least-waste"]);
    expect(parse(config(TOP, GROUP)).kubernetes!.native).toBeUndefined();
  });

  it("refuse a native block that cannot work, naming the line and the field", () => {
    expect(issues(config(`${TOP}\n  mode: native\n  native:\n    expander: [priority]`, GROUP))).toEqual([
      "6:kubernetes.native.expander: the priority expander needs priorities (add kubernetes.native.priorities (e.g. 10: [\"^web-\"]), or remove priority from the chain)",
    ]);
    expect(issues(config(`${TOP}\n  mode: native\n  native:\n    priorities:\n      "5": ["web-("]`, GROUP))[0]).toMatch(/^7:kubernetes\.native\.priorities\.5\[0\]: "web-\(" is not a regular expression/);
    expect(issues(config(`${TOP}\n  native: { pollMs: 500 }`, GROUP))).toEqual([
      "4:kubernetes.native: kubernetes.native is set, but kubernetes.mode is cluster-autoscaler (the default), so nothing reads it (set kubernetes.mode: native, or remove kubernetes.native)",
    ]);
    expect(issues(config(`${TOP}\n  mode: native\n  native: { scaleDown: { budget: lots } }`, GROUP)).join("\n")).toMatch(/kubernetes\.native\.scaleDown\.budget/);
    expect(issues(config(`${TOP}\n  mode: native\n  native: { batch: { idleMs: 5000, maxMs: 1000 } }`, GROUP))[0]).toMatch(/^5:kubernetes\.native\.batch\.maxMs: batch\.maxMs 1000 is shorter than batch\.idleMs 5000/);
  });

  it("read disruption budgets on a schedule, globally and per group, with their durations in seconds", () => {
    const top = `${TOP}\n  mode: native\n  native:\n    scaleDown:\n      budgets:\n        - { nodes: "0", schedule: "0 9 * * 1-5", duration: 8h }`;
    const group = `${GROUP}\n      autoscaling:\n        disruptionBudgets:\n          - { nodes: "50%", schedule: "@weekly", timezone: Europe/Berlin, duration: 1h30m }`;
    const c = parse(config(top, group));
    expect(c.kubernetes!.native!.scaleDown.budgets).toEqual([{ nodes: "0", schedule: "0 9 * * 1-5", timezone: "UTC", duration: "8h", durationSeconds: 28_800 }]);
    expect(c.groups[0]!.kubernetes!.autoscaling.disruptionBudgets).toEqual([{ nodes: "50%", schedule: "@weekly", timezone: "Europe/Berlin", duration: "1h30m", durationSeconds: 5400 }]);
    expect(parse(config(`${TOP}\n  mode: native`, GROUP)).kubernetes!.native!.scaleDown.budgets).toEqual([]);
  });

  it("refuse a scheduled budget whose cron, time zone or duration is wrong, at its line and column", () => {
    const withIssues = (text: string) => {
      try {
        parse(text);
      } catch (e) {
        if (e instanceof ConfigError) return e.issues.map((i) => `${i.line}:${i.column}:${i.path}: ${i.message}${i.fix ? ` (${i.fix})` : ""}`);
        throw e;
      }
      return [];
    };
    const top = (budget: string) => `${TOP}\n  mode: native\n  native:\n    scaleDown:\n      budgets:\n        - nodes: "0"\n${budget}`;
    expect(withIssues(config(top(`          schedule: "0 25 * * *"\n          duration: 8h`), GROUP))).toEqual([
      '9:21:kubernetes.native.scaleDown.budgets[0].schedule: invalid cron "0 25 * * *": Invalid value for hour: 25 (five fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5")',
    ]);
    expect(withIssues(config(top(`          schedule: "0 9 * * 1-5"\n          duration: 8 hours`), GROUP))).toEqual([
      '10:21:kubernetes.native.scaleDown.budgets[0].duration: duration "8 hours" is not hours and minutes up to a year (write e.g. 8h, 30m or 1h30m (Karpenter\'s form; more than zero, at most 8784h))',
    ]);
    expect(withIssues(config(top(`          schedule: "0 9 * * 1-5"\n          duration: 0h\n          timezone: Mars/Olympus`), GROUP))).toEqual([
      '10:21:kubernetes.native.scaleDown.budgets[0].duration: duration "0h" is not hours and minutes up to a year (write e.g. 8h, 30m or 1h30m (Karpenter\'s form; more than zero, at most 8784h))',
      '11:21:kubernetes.native.scaleDown.budgets[0].timezone: unknown time zone "Mars/Olympus" (use an IANA name such as Europe/Berlin, or leave timezone out for UTC)',
    ]);
    expect(withIssues(config(top("          schedule: \"0 9 * * 1-5\""), GROUP)).join("\n")).toMatch(/kubernetes\.native\.scaleDown\.budgets\[0\].*duration/);
    expect(withIssues(config(top(`          schedule: "0 9 * * 1-5"\n          duration: 99999999999999999999h`), GROUP))[0]).toMatch(/^10:21:kubernetes\.native\.scaleDown\.budgets\[0\]\.duration: duration "9+h" is not hours and minutes up to a year/);
    // A value of thousands of characters is cut in the message.
    const long = withIssues(config(top(`          schedule: "${"1".repeat(5000)} * * * *"\n          duration: 8h`), GROUP))[0]!;
    expect(long).toMatch(/invalid cron "1{80}"… \(5,008 characters\)/);
    expect(long.length).toBeLessThan(600);
    expect(withIssues(config(TOP, `${GROUP}\n      autoscaling:\n        disruptionBudgets: [{ nodes: "1", schedule: "0 0 31 2 *", duration: 1h }]`))[0]).toMatch(/^20:53:groups\[0\]\.kubernetes\.autoscaling\.disruptionBudgets\[0\]\.schedule: "0 0 31 2 \*" never runs/);
  });
});
