import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { agentConfig, bootstrapTokenSecret, joinParts, newBootstrapToken, withJoin, type JoinSpec } from "./join-config.js";
import { kubeTestConfig } from "./testing/config.js";

const NOW = new Date("2026-12-03T10:00:00.123Z");
const counter = () => {
  let n = 0;
  return (max: number) => n++ % max;
};

function spec(groupKubernetes: string): JoinSpec {
  const group = kubeTestConfig({ groupKubernetes }).groups[0]!;
  return {
    group,
    nodeName: "workers-5932e08b",
    providerId: "premiscale://workers/5932e08b-4fc5-48dc-9974-8abd3551ecbe",
    token: newBootstrapToken(NOW, 900, counter()),
    apiServerEndpoint: "10.0.0.1:6443",
    caCertHash: `sha256:${"ab".repeat(32)}`,
  };
}

describe("bootstrap tokens", () => {
  it("have a 6-character id and a 16-character secret of [a-z0-9], and expire after the TTL", () => {
    for (let i = 0; i < 50; i++) {
      const t = newBootstrapToken(NOW, 900);
      expect(t.id).toMatch(/^[a-z0-9]{6}$/);
      expect(t.secret).toMatch(/^[a-z0-9]{16}$/);
      expect(t.token).toBe(`${t.id}.${t.secret}`);
      expect(t.expiration.toISOString()).toBe("2026-12-03T10:15:00.123Z");
    }
  });

  it("are Secrets of type bootstrap.kubernetes.io/token in kube-system, for authentication and signing, in the given groups", () => {
    const t = newBootstrapToken(NOW, 900, counter());
    expect(bootstrapTokenSecret(t, { groups: ["system:bootstrappers:kubeadm:default-node-token", "system:bootstrappers:premiscale"], group: "workers", uuid: "u-1", description: "premiscale: workers[w]" })).toEqual({
      apiVersion: "v1",
      kind: "Secret",
      type: "bootstrap.kubernetes.io/token",
      metadata: { name: "bootstrap-token-abcdef", namespace: "kube-system", labels: { "premiscale.io/instance": "u-1", "premiscale.io/group": "workers" } },
      stringData: {
        description: "premiscale: workers[w]",
        "token-id": "abcdef",
        "token-secret": "ghijklmnopqrstuv",
        expiration: "2026-12-03T10:15:00Z",
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token,system:bootstrappers:premiscale",
      },
    });
  });
});

describe("the join in a VM's user-data", () => {
  it("is a kubeadm JoinConfiguration with token discovery pinned to the CA and the providerID as the kubelet's --provider-id", () => {
    const s = spec("labels: { type: kwok }\ntaints: [{ key: dedicated, value: ci, effect: NoSchedule }]\nmaxPods: 50");
    const parts = joinParts(s);
    expect(parts.runcmd).toEqual([["sh", "-c", "kubeadm join --config /etc/premiscale/kubeadm-join.yaml && rm -f /etc/premiscale/kubeadm-join.yaml"]]);
    expect(parts.files.map((f) => [f.path, f.permissions])).toEqual([
      ["/etc/premiscale/provider-id", "0644"],
      ["/etc/premiscale/kubeadm-join.yaml", "0600"],
    ]);
    expect(parse(parts.files[1]!.content)).toEqual({
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "JoinConfiguration",
      discovery: { bootstrapToken: { apiServerEndpoint: "10.0.0.1:6443", token: "abcdef.ghijklmnopqrstuv", caCertHashes: [`sha256:${"ab".repeat(32)}`] } },
      nodeRegistration: {
        name: "workers-5932e08b",
        taints: [{ key: "dedicated", value: "ci", effect: "NoSchedule" }],
        kubeletExtraArgs: [
          { name: "provider-id", value: "premiscale://workers/5932e08b-4fc5-48dc-9974-8abd3551ecbe" },
          { name: "node-labels", value: "type=kwok,premiscale.io/group=workers" },
          { name: "max-pods", value: "50" },
        ],
      },
    });
  });

  it("is a k3s or rke2 agent config as the alternatives", () => {
    const k3s = spec("join: k3s\nserver: https://10.0.0.1:6443\ntaints: [{ key: gpu, effect: NoExecute }]");
    expect(parse(agentConfig(k3s))).toEqual({
      server: "https://10.0.0.1:6443",
      token: "abcdef.ghijklmnopqrstuv",
      "node-name": "workers-5932e08b",
      "kubelet-arg": ["provider-id=premiscale://workers/5932e08b-4fc5-48dc-9974-8abd3551ecbe", "max-pods=110"],
      "node-label": ["premiscale.io/group=workers"],
      "node-taint": ["gpu:NoExecute"],
    });
    expect(joinParts(k3s).files[1]!.path).toBe("/etc/rancher/k3s/config.yaml");
    expect(joinParts(k3s).runcmd[0]!.join(" ")).toContain("systemctl enable --now k3s-agent");
    const rke2 = spec("join: rke2\nserver: https://10.0.0.1:9345");
    expect(joinParts(rke2).files[1]!.path).toBe("/etc/rancher/rke2/config.yaml");
    expect(joinParts(rke2).runcmd[0]!.join(" ")).toContain("systemctl enable --now rke2-agent.service");
    expect(joinParts(spec("join: none")).files.map((f) => f.path)).toEqual(["/etc/premiscale/provider-id"]);
  });

  it("is added to the template's #cloud-config after its own files and commands", () => {
    const userData = "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hi\nruncmd:\n  - [echo, first]\nphone_home: {url: http://x, post: all}\n";
    const out = withJoin(userData, joinParts(spec("labels: {}")));
    expect(out.startsWith("#cloud-config\n")).toBe(true);
    const doc = parse(out);
    expect(doc.write_files.map((f: { path: string }) => f.path)).toEqual(["/etc/motd", "/etc/premiscale/provider-id", "/etc/premiscale/kubeadm-join.yaml"]);
    expect(doc.runcmd[0]).toEqual(["echo", "first"]);
    expect(doc.phone_home).toEqual({ url: "http://x", post: "all" });
    expect(parse(withJoin("", joinParts(spec("labels: {}")))).write_files).toHaveLength(2);
  });

  it("refuses user-data that is not a #cloud-config mapping, saying what to do", () => {
    expect(() => withJoin("#!/bin/sh\necho hi\n- a list", joinParts(spec("labels: {}")))).toThrow(/not a #cloud-config mapping/);
  });
});
