import { ProviderError } from "../config/errors.js";
import type {
  CallOptions,
  HostCapacity,
  HostObservation,
  ObserveRequest,
  OwnedVm,
  Provider,
  ProviderStep,
  TemplateFit,
  VmCounters,
  VmSpec,
} from "./provider.js";

/** What the fake host holds of one VM: the pieces made so far, and whether it is premiscale's. */
interface FakeVm {
  vm: OwnedVm;
  /** Steps of its create that have finished. */
  made: Set<ProviderStep>;
  /** A VM premiscale did not make (no marker): listed to nobody, refused by destroy. */
  foreign: boolean;
}

/**
 * An in-memory `Provider` for tests of code that drives providers (the applier, the pipeline, the collector) and the
 * first adapter the Provider contract suite runs on. It keeps VMs in a map and can be told to fail a create or a
 * destroy, to hang (every call then ends at its timeout, like a frozen host), or to hold calls at a gate so tests
 * can see how many run at once without timing anything.
 */
export class FakeProvider implements Provider {
  readonly kind = "fake";
  /** The host's VMs: shared with the adapters `reopen` makes, as one host is shared by the processes that open it. */
  private vms = new Map<string, FakeVm>();
  inFlight = 0;
  maxInFlight = 0;
  /** The changes asked of it, in order: `create NAME`, `destroy NAME`, `start NAME`, `pause NAME`, `stop NAME`. */
  readonly calls: string[] = [];
  /** How many times it was observed. */
  observes = 0;
  /** Names whose create fails after the disk step. */
  failCreate = new Set<string>();
  /** Names whose destroy fails. */
  failDestroy = new Set<string>();
  /** Names whose start fails. */
  failStart = new Set<string>();
  /** Names whose pause fails. */
  failPause = new Set<string>();
  /** Every call hangs until its timeout. */
  hang = false;
  /** Time each call takes, ms (0: a turn of the event loop). */
  delayMs = 0;
  /** Time each step of a create or destroy takes, ms (for the terminal demo). */
  stepDelayMs = 0;
  /** When set, every call waits for it before doing anything (tests release it). */
  gate: Promise<void> | null = null;
  capacity: HostCapacity = { cpus: 64, memoryMiB: 1 << 20, freeMemoryMiB: 1 << 20, allocatedVcpus: 0, resources: {} };

  constructor(
    readonly host: string,
    private readonly options: { callTimeoutMs?: number } = {},
  ) {}

  /**
   * Another adapter for the same fake host, as a new premiscale process would open it: it sees the same VMs and
   * shares nothing else (failures, `hang`, counts and `gate` are its own).
   */
  reopen(options: { callTimeoutMs?: number } = this.options): FakeProvider {
    const p = new FakeProvider(this.host, options);
    p.vms = this.vms;
    return p;
  }

  /** The VMs premiscale made that are here now (whatever their state), by name. */
  get domains(): ReadonlyMap<string, OwnedVm> {
    return new Map([...this.vms].filter(([, v]) => !v.foreign).map(([n, v]) => [n, v.vm]));
  }

  /** Puts a VM of ours on the host as if it had been made (e.g. by an earlier apply). */
  plant(vm: OwnedVm): void {
    this.vms.set(vm.name, { vm, made: new Set(["create-disk", "configure", "start"]), foreign: false });
  }

  /** Puts a running VM on the host that premiscale did not make (it has its disk and configuration too). */
  plantForeign(name: string, uuid: string): void {
    this.vms.set(name, {
      vm: { name, uuid, group: "", lineage: "", createdAt: "", state: "running" },
      made: new Set(["create-disk", "configure", "start"]),
      foreign: true,
    });
  }

  /** Sets a VM's run state, as something outside premiscale would (stopping it by hand). */
  setState(name: string, state: OwnedVm["state"]): void {
    const v = this.vms.get(name);
    if (v) v.vm = { ...v.vm, state };
  }

  /** Pieces of a VM that exist (a create cut short leaves some). */
  pieces(name: string): ProviderStep[] {
    return [...(this.vms.get(name)?.made ?? [])];
  }

  private async busy<T>(what: string, fn: () => T | Promise<T>): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const work = (async () => {
        if (this.gate) await this.gate;
        if (this.hang) await new Promise<never>(() => undefined);
        await new Promise((r) => (this.delayMs > 0 ? setTimeout(r, this.delayMs) : setImmediate(r)));
        return fn();
      })();
      const ms = this.options.callTimeoutMs;
      if (ms === undefined) return await work;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ProviderError(this.host, `${what}: no answer within ${ms / 1000} s`, "check the host", { code: "host_timeout" })), ms);
      });
      try {
        return await Promise.race([work, timeout]);
      } finally {
        clearTimeout(timer);
      }
    } finally {
      this.inFlight--;
    }
  }

  async observe(request: ObserveRequest): Promise<HostObservation> {
    this.observes++;
    try {
      return await this.busy("observe", () => {
        const fits: Record<string, TemplateFit> = {};
        for (const group of request.templates.keys()) fits[group] = { ok: true, demand: {}, settings: { fake: {} } };
        // A VM state records (same name and UUID) is ours without its marker, as the port says; its data comes from state.
        const vms = [...this.vms.values()].flatMap((v) => {
          const k = request.known.get(v.vm.name);
          if (k && k.uuid === v.vm.uuid) return [{ ...v.vm, group: k.group, lineage: k.lineage, createdAt: k.createdAt }];
          return v.foreign ? [] : [{ ...v.vm }];
        });
        return { host: this.host, status: "ok" as const, capacity: { ...this.capacity, resources: { ...this.capacity.resources } }, vms, fits };
      });
    } catch (e) {
      return { host: this.host, status: "unreachable", error: (e as Error).message };
    }
  }

  async createVm(spec: VmSpec, options: CallOptions = {}): Promise<void> {
    this.calls.push(`create ${spec.name}`);
    await this.busy(`create ${spec.name}`, async () => {
      const existing = this.vms.get(spec.name);
      if (existing?.foreign || (existing && existing.vm.uuid !== spec.uuid)) {
        throw new ProviderError(this.host, `a VM named ${spec.name} exists and is not this instance`, "remove it by hand", { code: "not_owned" });
      }
      const v: FakeVm = existing ?? {
        vm: { name: spec.name, uuid: spec.uuid, group: spec.group, lineage: spec.lineage, createdAt: spec.createdAt, state: "stopped" },
        made: new Set(),
        foreign: false,
      };
      this.vms.set(spec.name, v);
      for (const step of ["create-disk", "configure", "start"] as const) {
        options.signal?.throwIfAborted();
        options.onStep?.(step);
        await this.step();
        if (step === "configure" && this.failCreate.has(spec.name)) throw new ProviderError(this.host, `disk of ${spec.name} failed`);
        v.made.add(step);
      }
      v.vm = { ...v.vm, state: "running" };
    });
  }

  async destroyVm(vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void> {
    this.calls.push(`destroy ${vm.name}`);
    await this.busy(`destroy ${vm.name}`, async () => {
      const v = this.vms.get(vm.name);
      if (!v) return;
      if (v.foreign || v.vm.uuid !== vm.uuid) {
        throw new ProviderError(this.host, `VM ${vm.name} is not the one premiscale created; it was left alone`, "remove it from state by hand", { code: "not_owned" });
      }
      if (v.vm.state === "running" || v.vm.state === "paused") {
        options.onStep?.("stop");
        await this.step();
        v.vm = { ...v.vm, state: "stopped" };
      }
      options.onStep?.("delete");
      await this.step();
      if (this.failDestroy.has(vm.name)) throw new ProviderError(this.host, `destroy of ${vm.name} failed`);
      this.vms.delete(vm.name);
    });
  }

  /** The VM of ours asked for, or why not (no VM of that name, or not this instance). */
  private owned(vm: { name: string; uuid: string }): FakeVm {
    const v = this.vms.get(vm.name);
    if (!v) throw new ProviderError(this.host, `no VM named ${vm.name}`, "run premiscale plan again", { code: "not_found" });
    if (v.foreign || v.vm.uuid !== vm.uuid) {
      throw new ProviderError(this.host, `VM ${vm.name} is not the one premiscale created; it was left alone`, "remove it from state by hand", { code: "not_owned" });
    }
    return v;
  }

  async startVm(vm: { name: string; uuid: string }, options: CallOptions = {}): Promise<void> {
    this.calls.push(`start ${vm.name}`);
    await this.busy(`start ${vm.name}`, async () => {
      const v = this.owned(vm);
      if (v.vm.state === "running") return;
      options.onStep?.("start");
      await this.step();
      if (this.failStart.has(vm.name)) throw new ProviderError(this.host, `start of ${vm.name} failed`);
      v.vm = { ...v.vm, state: "running" };
    });
  }

  async pauseVm(vm: { name: string; uuid: string }, options: CallOptions = {}): Promise<void> {
    this.calls.push(`pause ${vm.name}`);
    await this.busy(`pause ${vm.name}`, async () => {
      const v = this.owned(vm);
      if (v.vm.state === "paused") return;
      if (v.vm.state !== "running") {
        throw new ProviderError(this.host, `VM ${vm.name} is ${v.vm.state}, so it cannot be paused`, "only a running VM can be paused; run premiscale plan again", { code: "not_running" });
      }
      options.onStep?.("pause");
      await this.step();
      if (this.failPause.has(vm.name)) throw new ProviderError(this.host, `pause of ${vm.name} failed`);
      v.vm = { ...v.vm, state: "paused" };
    });
  }

  async stopVm(vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void> {
    this.calls.push(`stop ${vm.name}`);
    await this.busy(`stop ${vm.name}`, async () => {
      const v = this.owned(vm);
      if (v.vm.state === "stopped") return;
      options.onStep?.("stop");
      await this.step();
      v.vm = { ...v.vm, state: "stopped" };
    });
  }

  private async step(): Promise<void> {
    if (this.stepDelayMs > 0) await new Promise((r) => setTimeout(r, this.stepDelayMs));
  }

  async counters(names: readonly string[]): Promise<VmCounters[]> {
    if (names.length === 0) return [];
    return this.busy("counters", () =>
      names.flatMap((name) => {
        const v = this.vms.get(name);
        return v && !v.foreign && v.vm.state === "running" ? [{ name, at: 0, cpuTimeNs: 0, vcpus: 1 }] : [];
      }),
    );
  }

  async close(): Promise<void> {}
}
