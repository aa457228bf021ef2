/** A config with one Kubernetes node group on libvirt's test driver, for the kubernetes/ unit tests. */
import { parseConfig } from "../../config/load.js";
import type { Config } from "../../config/types.js";
import { configFragments } from "../../providers/index.js";

/** Options of {@link kubeTestConfig}. */
export interface KubeTestConfigOptions {
  group?: string;
  min?: number;
  max?: number;
  vcpus?: number;
  memoryMiB?: number;
  /** YAML lines of the group's kubernetes block (indented by the caller's convention: none). */
  groupKubernetes?: string;
  /** YAML lines of the top-level kubernetes block. */
  kubernetes?: string;
  timeoutSeconds?: number;
  /** Extra top-level YAML. */
  extra?: string;
}

/** The YAML text of the test config (`/cfg/premiscale.yaml`). */
export function kubeTestConfigText(o: KubeTestConfigOptions = {}): string {
  const indent = (text: string, n: number) => text.trim().split("\n").map((l) => " ".repeat(n) + l).join("\n");
  return `version: v1alpha1
kubernetes:
${indent(o.kubernetes ?? "kubeconfig: ./kubeconfig", 2)}
${o.extra ?? ""}
hosts:
  - name: h1
    kind: libvirt
    uri: test:///default
groups:
  - name: ${o.group ?? "workers"}
    min: ${o.min ?? 0}
    max: ${o.max ?? 5}
    hosts: [h1]
    readiness: { checkIn: false, timeoutSeconds: ${o.timeoutSeconds ?? 120} }
    template:
      vcpus: ${o.vcpus ?? 2}
      memoryMiB: ${o.memoryMiB ?? 2048}
      disk: { baseImage: base.qcow2 }
    kubernetes:
${indent(o.groupKubernetes ?? "labels: { type: kwok }", 6)}
`;
}

/** The test config, parsed as premiscale parses it. */
export function kubeTestConfig(o: KubeTestConfigOptions = {}): Config {
  return parseConfig(kubeTestConfigText(o), "/cfg/premiscale.yaml", {}, () => "", { kinds: configFragments });
}
