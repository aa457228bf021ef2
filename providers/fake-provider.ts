import type { HostObservation, KnownInstance, OwnedDomain, Provider, ProviderStep, VmSpec } from "./provider.js";

/**
 * An in-memory `Provider` for tests of code that drives providers (the applier). It keeps domains in a map,
 * records the highest number of calls in flight, and can be told to fail or delay.
 */
export class FakeProvider implements Provider {
  readonly domains = new Map<string, OwnedDomain>();
  inFlight = 0;
  maxInFlight = 0;
  readonly calls: string[] = [];
  /** Names whose create fails after the disk step. */
  failCreate = new Set<string>();
  /** Names whose destroy fails. */
  failDestroy = new Set<string>();
  delayMs = 5;

  constructor(readonly host: string) {}

  async observe(_known: ReadonlyMap<string, KnownInstance>): Promise<HostObservation> {
    return {
      host: this.host,
      status: "ok",
      capacity: { cpus: 64, memoryMiB: 1 << 20, freeMemoryMiB: 1 << 20, allocatedVcpus: 0, pool: { name: "p", capacityBytes: 2 ** 50, availableBytes: 2 ** 50 }, volumes: ["base.qcow2"] },
      domains: [...this.domains.values()],
    };
  }

  private async busy<T>(fn: () => T): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, this.delayMs));
      return fn();
    } finally {
      this.inFlight--;
    }
  }

  async createVm(spec: VmSpec, onStep?: (step: ProviderStep) => void): Promise<void> {
    this.calls.push(`create ${spec.name}`);
    await this.busy(() => {
      onStep?.("disk");
      if (this.failCreate.has(spec.name)) throw new Error(`disk of ${spec.name} failed`);
      this.domains.set(spec.name, { name: spec.name, uuid: spec.uuid, group: spec.group, lineage: spec.lineage, createdAt: spec.createdAt, state: "running" });
    });
  }

  async destroyVm(vm: { name: string; uuid: string }, _o: { shutdownTimeoutMs: number }, onStep?: (step: ProviderStep) => void): Promise<void> {
    this.calls.push(`destroy ${vm.name}`);
    await this.busy(() => {
      onStep?.("destroy");
      if (this.failDestroy.has(vm.name)) throw new Error(`destroy of ${vm.name} failed`);
      this.domains.delete(vm.name);
    });
  }

  async close(): Promise<void> {}
}
