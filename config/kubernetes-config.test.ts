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
});
