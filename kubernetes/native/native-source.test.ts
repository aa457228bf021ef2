import { describe, expect, it } from "vitest";
import { kubeTestConfig } from "../testing/config.js";
import type { NativeResult } from "./decide-native.js";
import { NATIVE_SOURCE, nativeOptions, nativeSource } from "./native-source.js";
import { emptyMemory } from "./safety.js";

const config = kubeTestConfig({ min: 1, max: 4, kubernetes: "kubeconfig: ./kubeconfig\nmode: native" });
const group = config.groups[0]!;
const members = (...names: string[]) => names.map((name) => ({ name, createdAt: "2026-12-03T10:00:00Z", ready: true }));
const result = (d: Partial<NativeResult["decisions"] extends Map<string, infer D> ? D : never>): NativeResult => ({
  decisions: new Map([["workers", { group: "workers", current: 2, add: 0, remove: [], code: "steady", reason: "2 VMs", ...d }]]),
  unplaceable: [],
  schedulable: [],
  nodes: {},
  stuck: [],
  memory: emptyMemory(),
});

describe("the native decision source", () => {
  it("owns the node groups and keeps their VMs when no scan decided", () => {
    const s = nativeSource(null);
    expect(s.name).toBe(NATIVE_SOURCE);
    expect(s.owns(group)).toBe(true);
    expect(s.decide(group, members("a", "b"))).toMatchObject({ desired: 2, code: "native_idle" });
  });

  it("adds the scan's nodes to the VMs counted", () => {
    expect(nativeSource(result({ add: 2, code: "pending_pods", reason: "3 pods unschedulable (cpu): +2 on workers" })).decide(group, members("a", "b"))).toEqual({
      group: "workers",
      desired: 4,
      code: "pending_pods",
      reason: "3 pods unschedulable (cpu): +2 on workers",
    });
  });

  it("names the VMs to remove, skipping any already gone, and never goes below min", () => {
    const d = nativeSource(result({ remove: ["a", "gone"], code: "unneeded_nodes", reason: "r" })).decide(group, members("a", "b"));
    expect(d).toEqual({ group: "workers", desired: 1, code: "unneeded_nodes", reason: "r", remove: ["a"] });
    const low = nativeSource(result({ remove: ["a"], code: "unneeded_nodes", reason: "r" })).decide(group, members("a"));
    expect(low).toMatchObject({ desired: 1, reason: "r (within min 1 and max 4)" });
  });

  it("turns the config's seconds into the scan's milliseconds", () => {
    const o = nativeOptions(config.kubernetes!.native!);
    expect(o).toMatchObject({ scanIntervalMs: 10_000, delayAfterAddMs: 600_000, delayAfterDeleteMs: 0, delayAfterFailureMs: 180_000, expander: ["least-waste"], scaleDown: { unneededMs: 600_000, budget: "10%", utilizationThreshold: 0.5 } });
  });
});
