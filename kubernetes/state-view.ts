/**
 * The VMs of each node group as cluster-autoscaler must see them: state as the applier last wrote it (every create
 * is recorded `creating` before its first host call, every destroy `deleting`), plus the creates of the apply in
 * flight that have not written their record yet; a warm pool's VMs are left out. State is re-read only when `state.json` changed (its serial is
 * rewritten on every write), so a burst of calls costs one `stat` each.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { GitStateStore } from "../state/git-state-store.js";
import { membersOf, type State } from "../state/types.js";
import type { InstanceView, ViewInstance } from "./cloud-provider.js";

/** An `InstanceView` over a state directory. */
export class StateInstanceView implements InstanceView {
  private cached: { key: string; state: State | null } | null = null;
  private readonly store: GitStateStore;

  /** `inFlight`: per group, the creates of the apply running now (the loop keeps it). */
  constructor(
    readonly stateDir: string,
    private readonly inFlight: () => ReadonlyMap<string, readonly ViewInstance[]> = () => new Map(),
  ) {
    this.store = new GitStateStore(stateDir);
  }

  private async state(): Promise<State | null> {
    let key = "none";
    try {
      const s = await stat(join(this.stateDir, "state.json"));
      key = `${s.ino}:${s.mtimeMs}:${s.size}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (this.cached?.key !== key) this.cached = { key, state: await this.store.read() };
    return this.cached.state;
  }

  async instances(group: string): Promise<ViewInstance[]> {
    const state = await this.state();
    // A warm pool's VMs are not nodes of the group (they join when a scale-out takes them).
    const recorded = membersOf(state?.groups.find((g) => g.name === group)).map((i): ViewInstance => ({ uuid: i.uuid, name: i.name, status: i.status }));
    const known = new Set(recorded.map((i) => i.uuid));
    return [...recorded, ...(this.inFlight().get(group) ?? []).filter((i) => !known.has(i.uuid))];
  }
}
