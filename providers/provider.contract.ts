import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { HostObservation, KnownInstance, OwnedVm, Provider, ProviderSettings, ProviderStep, TemplateQuery, VmSpec } from "./provider.js";

/**
 * What an adapter's test file gives the contract suite: a host of its kind, and the few things only the adapter's
 * own tests know how to do there (plant a VM behind premiscale's back, look at what is left of one, freeze the host).
 * Everything else the suite does through the `Provider` port alone, as the planner and the applier do.
 */
export interface ProviderHarness {
  /** A new adapter for the host, as a new premiscale process would open it: nothing cached. The suite closes it. */
  open(): Provider;
  /**
   * A new adapter for the same host, on which every call to the host hangs (a frozen host), each bounded by
   * `callTimeoutMs` instead of the host's `callTimeoutSeconds`. The suite closes it.
   */
  openHung(callTimeoutMs: number): Provider;
  /** The template of a small VM that fits on the host, as the kind's config fragment would give it. */
  template: TemplateQuery;
  /**
   * A spec for a new VM of `template` with a name and UUID no other test uses, carrying `settings` as the plan would:
   * the suite passes what the adapter's own `observe` answered in `fits` for `template`.
   */
  vmSpec(settings: ProviderSettings): VmSpec;
  /** Puts a running VM on the host that premiscale did not make (no ownership marker), under this name and UUID. */
  plantForeign(name: string, uuid: string): Promise<void>;
  /**
   * Everything on the host that belongs to the VM named `name`, whoever made it (the VM with its run state, its disks,
   * its seed…), one line each in the kind's own words: `[]` when nothing is left.
   */
  remains(name: string): Promise<string[]>;
  /** Removes whatever the suite made or planted; runs after all tests, also after a failed one. Rejects when it cannot. */
  cleanup(): Promise<void>;
}

const GROUP = "contract";
const CREATE_STEPS: readonly ProviderStep[] = ["create-disk", "configure", "start"];
const DESTROY_STEPS: readonly ProviderStep[] = ["stop", "delete"];
/** ACPI shutdown gets this long before a destroy forces the VM off (the suite's VMs need not run an OS). */
const SHUTDOWN_TIMEOUT_MS = 1000;
/** The call timeout of a hung adapter, and the bound within which its calls must have given up. */
const HUNG_CALL_TIMEOUT_MS = 1000;
const HUNG_BOUND_MS = 6000;

/** What `onStep` throws to stop a create half-way, as if the process died there. */
class Crash extends Error {
  override name = "Crash";
}

/** True when `steps` are some of `order`, each at most once, in that order. */
function inOrder(steps: readonly ProviderStep[], order: readonly ProviderStep[]): boolean {
  let at = 0;
  for (const s of steps) {
    const i = order.indexOf(s, at);
    if (i < 0) return false;
    at = i + 1;
  }
  return true;
}

/**
 * The behaviour every `Provider` adapter must have, as `provider.ts` states it; run it against each adapter with a
 * harness for a host of its kind (see `ProviderHarness`). `makeHarness` runs once, before the first test.
 */
export function describeProviderContract(name: string, makeHarness: () => Promise<ProviderHarness>): void {
  describe(`Provider contract: ${name}`, () => {
    let h: ProviderHarness | undefined;
    const opened: Provider[] = [];
    const harness = (): ProviderHarness => {
      if (!h) throw new Error("the harness was not made (see the error of beforeAll)");
      return h;
    };
    const open = (): Provider => {
      const p = harness().open();
      opened.push(p);
      return p;
    };
    const openHung = (): Provider => {
      const p = harness().openHung(HUNG_CALL_TIMEOUT_MS);
      opened.push(p);
      return p;
    };
    const closeAll = () => Promise.all(opened.splice(0).map((p) => p.close()));

    beforeAll(async () => {
      h = await makeHarness();
    });
    afterEach(closeAll);
    afterAll(async () => {
      await closeAll();
      await h?.cleanup();
    });

    const observe = (p: Provider, known: ReadonlyMap<string, KnownInstance> = new Map()): Promise<HostObservation> =>
      p.observe({ known, templates: new Map([[GROUP, harness().template]]) });
    const observeOk = async (p: Provider, known?: ReadonlyMap<string, KnownInstance>) => {
      const obs = await observe(p, known);
      if (obs.status !== "ok") throw new Error(`host ${p.host} is unreachable: ${obs.error}`);
      return obs;
    };
    /** A spec whose settings come from the adapter's fit answer, as the planner gets them. */
    const newSpec = async (p: Provider): Promise<VmSpec> => {
      const fit = (await observeOk(p)).fits[GROUP];
      if (!fit?.ok) throw new Error(`the harness's template does not fit on host ${p.host}: ${fit ? fit.reason : "no answer in fits"}`);
      return harness().vmSpec(fit.settings);
    };
    /** The listed VMs that are this one, by name or by UUID. */
    const listed = async (p: Provider, vm: { name: string; uuid: string }): Promise<OwnedVm[]> =>
      (await observeOk(p)).vms.filter((v) => v.name === vm.name || v.uuid === vm.uuid);
    const destroy = (p: Provider, vm: { name: string; uuid: string }, onStep?: (s: ProviderStep) => void) =>
      p.destroyVm({ name: vm.name, uuid: vm.uuid }, { shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS, ...(onStep ? { onStep } : {}) });
    const foreignName = () => harness().vmSpec({}).name;
    /** Runs `call` and returns how long it took to settle, ms. */
    const timed = async <T>(call: () => Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> => {
      const t0 = performance.now();
      const [result] = await Promise.allSettled([call()]);
      return { ms: performance.now() - t0, result: result! };
    };

    describe("observe", () => {
      it("reports some CPUs and memory, no more memory free than there is, and resources that add up", async () => {
        const { capacity } = await observeOk(open());
        expect(capacity.cpus).toBeGreaterThan(0);
        expect(capacity.memoryMiB).toBeGreaterThan(0);
        expect(capacity.freeMemoryMiB).toBeGreaterThanOrEqual(0);
        expect(capacity.freeMemoryMiB).toBeLessThanOrEqual(capacity.memoryMiB);
        expect(capacity.allocatedVcpus).toBeGreaterThanOrEqual(0);
        for (const [key, r] of Object.entries(capacity.resources)) {
          expect(r.available, key).toBeGreaterThanOrEqual(0);
          if (r.capacity !== undefined) expect(r.available, key).toBeLessThanOrEqual(r.capacity);
        }
      });

      it("answers the template it is asked about: it fits with a demand on the host's resources and settings, or why not", async () => {
        const obs = await observeOk(open());
        const fit = obs.fits[GROUP];
        expect(fit).toBeDefined();
        if (fit?.ok) {
          for (const [key, amount] of Object.entries(fit.demand)) {
            expect(obs.capacity.resources, `demand on ${key}`).toHaveProperty([key]);
            expect(amount, key).toBeGreaterThanOrEqual(0);
          }
          expect(typeof fit.settings).toBe("object");
          expect(JSON.parse(JSON.stringify(fit.settings))).toEqual(fit.settings); // plain JSON: the plan carries it
        } else {
          expect(fit?.reason).toMatch(/\S/);
        }
      });

      it("lists a VM it created, read from the host alone, with its uuid, group, lineage, creation time and state running", async () => {
        const creator = open();
        const spec = await newSpec(creator);
        await creator.createVm(spec);
        const vms = await listed(open(), spec);
        expect(vms).toEqual([
          { name: spec.name, uuid: spec.uuid, group: spec.group, lineage: spec.lineage, createdAt: spec.createdAt, state: "running" },
        ]);
        await destroy(open(), spec);
      });

      it("lists a VM that state records under the same name and uuid without needing its marker", async () => {
        const name = foreignName();
        const uuid = randomUUID();
        await harness().plantForeign(name, uuid);
        const known = new Map([[name, { uuid, group: "recorded", lineage: "lineage-recorded", createdAt: "2026-11-23T00:00:00.000Z" }]]);
        const obs = await observeOk(open(), known);
        expect(obs.vms.filter((v) => v.name === name)).toEqual([
          { name, uuid, group: "recorded", lineage: "lineage-recorded", createdAt: "2026-11-23T00:00:00.000Z", state: "running" },
        ]);
      });

      it("never lists a VM premiscale did not make, also not when state records that name with another uuid", async () => {
        const name = foreignName();
        const uuid = randomUUID();
        await harness().plantForeign(name, uuid);
        const p = open();
        const otherUuid = new Map([[name, { uuid: randomUUID(), group: GROUP, lineage: "l", createdAt: "2026-11-23T00:00:00.000Z" }]]);
        // Twice each: a second observation may answer from what the first learned.
        for (const known of [new Map(), new Map(), otherUuid, otherUuid]) {
          const obs = await observeOk(p, known);
          expect(obs.vms.filter((v) => v.name === name || v.uuid === uuid)).toEqual([]);
        }
      });
    });

    describe("createVm", () => {
      it("creates a running VM and reports its steps in order, some of create-disk, configure, start", async () => {
        const p = open();
        const spec = await newSpec(p);
        const steps: ProviderStep[] = [];
        await p.createVm(spec, { onStep: (s) => steps.push(s) });
        expect(steps.length).toBeGreaterThan(0);
        expect(inOrder(steps, CREATE_STEPS), `steps ${steps.join(", ")}`).toBe(true);
        expect((await listed(open(), spec)).map((v) => v.state)).toEqual(["running"]);
        await destroy(open(), spec);
      });

      it("creating the same VM again leaves exactly one VM, running", async () => {
        const p = open();
        const spec = await newSpec(p);
        await p.createVm(spec);
        await p.createVm(spec);
        await open().createVm(spec);
        expect(await listed(open(), spec)).toEqual([expect.objectContaining({ name: spec.name, uuid: spec.uuid, state: "running" })]);
        await destroy(open(), spec);
      });
    });

    describe("destroyVm", () => {
      it("destroys a VM and everything it owns, and reports its steps in order, some of stop, delete", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        expect(await harness().remains(spec.name)).not.toEqual([]);
        const steps: ProviderStep[] = [];
        await destroy(open(), spec, (s) => steps.push(s));
        expect(inOrder(steps, DESTROY_STEPS), `steps ${steps.join(", ")}`).toBe(true);
        expect(await harness().remains(spec.name)).toEqual([]);
        expect(await listed(open(), spec)).toEqual([]);
      });

      it("destroying a VM that is already gone resolves and leaves nothing", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        await destroy(open(), spec);
        await destroy(open(), spec);
        const never = harness().vmSpec({});
        await destroy(open(), never);
        expect(await harness().remains(spec.name)).toEqual([]);
        expect(await harness().remains(never.name)).toEqual([]);
      });

      it("refuses to destroy a VM premiscale did not make under the name asked, and leaves it as it was", async () => {
        const name = foreignName();
        const uuid = randomUUID();
        await harness().plantForeign(name, uuid);
        const before = await harness().remains(name);
        expect(before).not.toEqual([]);
        const p = open();
        await expect(destroy(p, { name, uuid })).rejects.toThrow(p.host);
        expect(await harness().remains(name)).toEqual(before);
      });

      it("refuses to destroy a VM of ours when asked with another uuid, and leaves it running", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        const before = await harness().remains(spec.name);
        const p = open();
        await expect(destroy(p, { name: spec.name, uuid: randomUUID() })).rejects.toThrow(p.host);
        expect(await harness().remains(spec.name)).toEqual(before);
        expect((await listed(open(), spec)).map((v) => v.state)).toEqual(["running"]);
        await destroy(open(), spec);
      });
    });

    describe("startVm and stopVm", () => {
      const stop = (p: Provider, vm: { name: string; uuid: string }, onStep?: (s: ProviderStep) => void) =>
        p.stopVm({ name: vm.name, uuid: vm.uuid }, { shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS, ...(onStep ? { onStep } : {}) });

      it("stops a VM it created and keeps everything it owns, then starts it again, each reporting its one step", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        const steps: ProviderStep[] = [];
        await stop(open(), spec, (s) => steps.push(s));
        expect(steps).toEqual(["stop"]);
        expect((await listed(open(), spec)).map((v) => v.state)).toEqual(["stopped"]);
        const kept = await harness().remains(spec.name);
        expect(kept).not.toEqual([]);
        steps.length = 0;
        await open().startVm({ name: spec.name, uuid: spec.uuid }, { onStep: (s) => steps.push(s) });
        expect(steps).toEqual(["start"]);
        expect((await listed(open(), spec)).map((v) => v.state)).toEqual(["running"]);
        await destroy(open(), spec);
        expect(await harness().remains(spec.name)).toEqual([]);
      });

      it("starting a running VM and stopping a stopped one change nothing, and a stopped VM is destroyed like any other", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        const steps: ProviderStep[] = [];
        await open().startVm({ name: spec.name, uuid: spec.uuid }, { onStep: (s) => steps.push(s) });
        expect(steps).toEqual([]);
        expect((await listed(open(), spec)).map((v) => v.state)).toEqual(["running"]);
        await stop(open(), spec);
        await stop(open(), spec, (s) => steps.push(s));
        expect(steps).toEqual([]);
        expect((await listed(open(), spec)).map((v) => v.state)).toEqual(["stopped"]);
        await destroy(open(), spec);
        expect(await harness().remains(spec.name)).toEqual([]);
      });

      it("refuses to start or stop a VM premiscale did not make, or one of ours asked with another uuid, and leaves them as they were", async () => {
        const name = foreignName();
        const uuid = randomUUID();
        await harness().plantForeign(name, uuid);
        const before = await harness().remains(name);
        const p = open();
        await expect(stop(p, { name, uuid })).rejects.toMatchObject({ code: "not_owned", message: expect.stringContaining(p.host) });
        await expect(p.startVm({ name, uuid })).rejects.toMatchObject({ code: "not_owned" });
        expect(await harness().remains(name)).toEqual(before);
        const spec = await newSpec(open());
        await open().createVm(spec);
        await expect(stop(p, { name: spec.name, uuid: randomUUID() })).rejects.toMatchObject({ code: "not_owned" });
        expect((await listed(open(), spec)).map((v) => v.state)).toEqual(["running"]);
        await destroy(open(), spec);
      });

      it("refuses to start or stop a VM that does not exist, naming the host", async () => {
        const p = open();
        const ghost = harness().vmSpec({});
        await expect(p.startVm({ name: ghost.name, uuid: ghost.uuid })).rejects.toMatchObject({ code: "not_found", message: expect.stringContaining(p.host) });
        await expect(stop(p, ghost)).rejects.toMatchObject({ code: "not_found" });
        expect(await harness().remains(ghost.name)).toEqual([]);
      });
    });

    describe("pauseVm", () => {
      const pause = (p: Provider, vm: { name: string; uuid: string }, onStep?: (s: ProviderStep) => void) =>
        p.pauseVm({ name: vm.name, uuid: vm.uuid }, onStep ? { onStep } : {});
      const states = async (p: Provider, vm: { name: string; uuid: string }) => (await listed(p, vm)).map((v) => v.state);

      it("pauses a running VM it created (step pause), lists it paused with everything kept, and startVm resumes it (step start)", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        const steps: ProviderStep[] = [];
        await pause(open(), spec, (s) => steps.push(s));
        expect(steps).toEqual(["pause"]);
        expect(await states(open(), spec)).toEqual(["paused"]);
        expect(await harness().remains(spec.name)).not.toEqual([]);
        steps.length = 0;
        await open().startVm({ name: spec.name, uuid: spec.uuid }, { onStep: (s) => steps.push(s) });
        expect(steps).toEqual(["start"]);
        expect(await states(open(), spec)).toEqual(["running"]);
        await destroy(open(), spec);
        expect(await harness().remains(spec.name)).toEqual([]);
      });

      it("pausing a paused VM changes nothing, and a paused VM is stopped like a running one (kept, stopped)", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        await pause(open(), spec);
        const steps: ProviderStep[] = [];
        await pause(open(), spec, (s) => steps.push(s));
        expect(steps).toEqual([]);
        expect(await states(open(), spec)).toEqual(["paused"]);
        await open().stopVm({ name: spec.name, uuid: spec.uuid }, { shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS, onStep: (s) => steps.push(s) });
        expect(steps).toEqual(["stop"]);
        expect(await states(open(), spec)).toEqual(["stopped"]);
        expect(await harness().remains(spec.name)).not.toEqual([]);
        await destroy(open(), spec);
        expect(await harness().remains(spec.name)).toEqual([]);
      });

      it("destroys a paused VM at once, without waiting for a shutdown its guest cannot run", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        await pause(open(), spec);
        const steps: ProviderStep[] = [];
        const { ms, result } = await timed(() => open().destroyVm({ name: spec.name, uuid: spec.uuid }, { shutdownTimeoutMs: 30_000, onStep: (s) => steps.push(s) }));
        expect(result.status).toBe("fulfilled");
        expect(ms).toBeLessThan(15_000);
        expect(inOrder(steps, DESTROY_STEPS)).toBe(true);
        expect(await harness().remains(spec.name)).toEqual([]);
      });

      it("refuses to pause a stopped VM, a VM that does not exist, a VM premiscale did not make, or one of ours asked with another uuid, leaving each as it was", async () => {
        const p = open();
        const spec = await newSpec(open());
        await open().createVm(spec);
        await open().stopVm({ name: spec.name, uuid: spec.uuid }, { shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS });
        await expect(pause(p, spec)).rejects.toMatchObject({ code: "not_running", message: expect.stringContaining(p.host) });
        expect(await states(open(), spec)).toEqual(["stopped"]);
        await open().startVm({ name: spec.name, uuid: spec.uuid });
        await expect(pause(p, { name: spec.name, uuid: randomUUID() })).rejects.toMatchObject({ code: "not_owned" });
        expect(await states(open(), spec)).toEqual(["running"]);
        const ghost = harness().vmSpec({});
        await expect(pause(p, ghost)).rejects.toMatchObject({ code: "not_found", message: expect.stringContaining(p.host) });
        expect(await harness().remains(ghost.name)).toEqual([]);
        const name = foreignName();
        const uuid = randomUUID();
        await harness().plantForeign(name, uuid);
        const before = await harness().remains(name);
        await expect(pause(p, { name, uuid })).rejects.toMatchObject({ code: "not_owned" });
        expect(await harness().remains(name)).toEqual(before);
        await destroy(open(), spec);
      });
    });

    describe("a create that dies half-way", () => {
      for (const step of CREATE_STEPS) {
        for (const then of ["destroy", "create"] as const) {
          const title =
            then === "destroy"
              ? `a create that dies as "${step}" starts is destroyed by a new adapter, leaving nothing`
              : `a create that dies as "${step}" starts is created again by a new adapter, to exactly one running VM`;
          it(title, async ({ skip }) => {
            const dying = open();
            const spec = await newSpec(dying);
            const crash = new Crash(`died at ${step}`);
            let reached = false;
            const outcome = await dying
              .createVm(spec, {
                onStep: (s) => {
                  if (s !== step) return;
                  reached = true;
                  throw crash;
                },
              })
              .then(
                () => null,
                (e: unknown) => e,
              );
            if (!reached) {
              await destroy(open(), spec);
              skip(`this adapter never reports "${step}"`);
            }
            // The adapter stops where onStep threw, and the error comes out unchanged.
            expect(outcome).toBe(crash);

            const next = open();
            if (then === "destroy") {
              await destroy(next, spec);
              expect(await harness().remains(spec.name)).toEqual([]);
              expect(await listed(open(), spec)).toEqual([]);
            } else {
              await next.createVm(spec);
              expect(await listed(open(), spec)).toEqual([expect.objectContaining({ name: spec.name, uuid: spec.uuid, state: "running" })]);
              await destroy(open(), spec);
              expect(await harness().remains(spec.name)).toEqual([]);
            }
          });
        }
      }
    });

    describe("a destroy that dies half-way", () => {
      for (const step of DESTROY_STEPS) {
        it(`a destroy that dies as "${step}" starts is finished by a new adapter, leaving nothing`, async ({ skip }) => {
          const spec = await newSpec(open());
          await open().createVm(spec);
          const crash = new Crash(`died at ${step}`);
          let reached = false;
          const outcome = await destroy(open(), spec, (s) => {
            if (s !== step) return;
            reached = true;
            throw crash;
          }).then(
            () => null,
            (e: unknown) => e,
          );
          if (!reached) {
            expect(await harness().remains(spec.name)).toEqual([]);
            skip(`this adapter never reports "${step}" for a running VM`);
          }
          expect(outcome).toBe(crash);
          await destroy(open(), spec);
          expect(await harness().remains(spec.name)).toEqual([]);
          expect(await listed(open(), spec)).toEqual([]);
        });
      }
    });

    describe("a host that hangs", () => {
      const expectGaveUpInTime = (ms: number) => {
        // A timer may fire a millisecond early by rounding; a call that did not wait for its timeout fails this.
        expect(ms).toBeGreaterThanOrEqual(HUNG_CALL_TIMEOUT_MS - 5);
        expect(ms).toBeLessThan(HUNG_BOUND_MS);
      };
      const expectRejectedNamingHost = (p: Provider, result: PromiseSettledResult<unknown>) => {
        expect(result.status).toBe("rejected");
        expect(String((result as PromiseRejectedResult).reason?.message)).toContain(p.host);
      };

      it("observe reports the host unreachable, naming the timeout, once its call timeout has passed", async () => {
        const p = openHung();
        const { ms, result } = await timed(() => observe(p));
        expectGaveUpInTime(ms);
        expect(result).toMatchObject({ status: "fulfilled", value: { host: p.host, status: "unreachable" } });
        const error = (result as PromiseFulfilledResult<HostObservation & { status: "unreachable" }>).value.error;
        expect(error).toMatch(/within [\d.]+ ?m?s\b|timed? ?out/i);
      });

      it("createVm rejects, naming the host, once its call timeout has passed", async () => {
        const spec = await newSpec(open());
        const p = openHung();
        const { ms, result } = await timed(() => p.createVm(spec));
        expectGaveUpInTime(ms);
        expectRejectedNamingHost(p, result);
        // Whatever the hung call did or did not do, a working adapter removes it.
        await destroy(open(), spec);
        expect(await harness().remains(spec.name)).toEqual([]);
      });

      it("destroyVm rejects, naming the host, once its call timeout has passed", async () => {
        const p = openHung();
        const { ms, result } = await timed(() => destroy(p, { name: foreignName(), uuid: randomUUID() }));
        expectGaveUpInTime(ms);
        expectRejectedNamingHost(p, result);
      });

      it("startVm, pauseVm and stopVm reject, naming the host, once their call timeout has passed", async () => {
        const p = openHung();
        const vm = { name: foreignName(), uuid: randomUUID() };
        for (const call of [() => p.startVm(vm), () => p.pauseVm(vm), () => p.stopVm(vm, { shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS })]) {
          const { ms, result } = await timed(call);
          expectGaveUpInTime(ms);
          expectRejectedNamingHost(p, result);
        }
      });

      it("counters rejects, naming the host, once its call timeout has passed", async () => {
        const p = openHung();
        const { ms, result } = await timed(() => p.counters([foreignName()]));
        expectGaveUpInTime(ms);
        expectRejectedNamingHost(p, result);
      });
    });

    describe("counters", () => {
      it("asking for no VMs makes no call to the host and resolves to none", async () => {
        // On a hung host any call would last its whole timeout.
        const p = openHung();
        const { ms, result } = await timed(() => p.counters([]));
        expect(result).toEqual({ status: "fulfilled", value: [] });
        expect(ms).toBeLessThan(HUNG_CALL_TIMEOUT_MS / 2);
      });

      it("leaves out VMs that do not exist, without failing", async () => {
        const spec = await newSpec(open());
        await open().createVm(spec);
        const ghost = harness().vmSpec({});
        const counters = await open().counters([spec.name, ghost.name]);
        for (const c of counters) {
          expect(c.name).toBe(spec.name);
          expect(Number.isFinite(c.at)).toBe(true);
        }
        expect(await open().counters([ghost.name])).toEqual([]);
        await destroy(open(), spec);
      });
    });
  });
}
