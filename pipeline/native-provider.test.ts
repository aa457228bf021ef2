import { describe, expect, it } from "vitest";
import type { LifecycleHook } from "../applier/lifecycle.js";
import { withDrain } from "./native-provider.js";

const hook = (name: string, point: LifecycleHook["point"], step: string): LifecycleHook => ({ name, point, step, defaultResult: "continue", timeoutMs: () => 1000, run: async () => ({ result: "continue" }) });

describe("native mode's hooks", () => {
  const nodeHooks = [hook("kubernetes-join", "before-create", "join-token"), hook("kubernetes-node", "until-ready", "node-ready"), hook("kubernetes-node", "before-destroy", "node-cordon"), hook("kubernetes-node", "after-destroy", "node-delete")];

  it("drain instead of the node hooks' cordon, so a drain that gives up can uncordon the node it cordoned", () => {
    const drain = hook("kubernetes-drain", "before-destroy", "node-drain");
    expect(withDrain(nodeHooks, drain).map((h) => h.step)).toEqual(["join-token", "node-ready", "node-delete", "node-drain"]);
  });

  it("keep the cordon when there is no drain", () => {
    expect(withDrain(nodeHooks, undefined).map((h) => h.step)).toEqual(["join-token", "node-ready", "node-cordon", "node-delete"]);
  });
});
