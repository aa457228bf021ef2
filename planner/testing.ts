/** Small builders of configs, observations and states for tests (pure, importable by any test). */
import type { Config, GroupConfig, HostConfig, VmTemplate } from "../config/types.js";
import type { Decision } from "../policies/decision.js";
import { decideWith } from "../policies/decision.js";
import { configSource, decideFromConfig } from "../policies/static.js";
import type { HostCapacity, HostObservation, OwnedVm, TemplateFit } from "../providers/provider.js";
import type { GroupState, Instance, State } from "../state/types.js";
import type { PlanInput } from "./compute-plan.js";
import type { Plan } from "./plan.js";
import { previousFitKey, rolledBackTo } from "./rollback.js";

/** Default lineage of test states. */
export const TEST_LINEAGE = "11111111-1111-4111-8111-111111111111";
/** Default `now` of test plans. */
export const TEST_NOW = new Date("2025-06-01T12:00:00.000Z");
/** One GiB in bytes. */
export const GiB = 1024 ** 3;

/**
 * The planner's tests use a small provider kind of their own, `test`: a host has a disk pool, and a template needs a
 * base image in it and its disk size of its space (as libvirt's does), so fits and their reasons can be tried
 * without any real adapter. `makeInput` asks it about every group, as the pipeline asks real adapters.
 */
export const TEST_KIND = "test";

/** A host config with defaults (kind `test`, 512 MiB reserved, overcommit 4). */
export function makeHost(host: Partial<HostConfig> & { name: string }): HostConfig {
  return {
    kind: TEST_KIND,
    settings: {},
    reservedMemoryMiB: 512,
    cpuOvercommit: 4,
    maxParallel: 4,
    callTimeoutSeconds: 60,
    ...host,
  };
}

/** What a template of the `test` kind says: the disk each VM gets (an overlay on a base image in the pool). */
export interface TestTemplate {
  disk: { baseImage: string; sizeGiB: number };
}

/** A template as the tests write it: the neutral fields, and the `test` kind's disk. */
export type TemplateSpec = Partial<Omit<VmTemplate, "settings">> & { disk?: TestTemplate["disk"] };

/** A 1 vCPU, 128 MiB VM with a 1 GiB disk on base image "base.qcow2". */
export function makeTemplate(template: TemplateSpec = {}): VmTemplate {
  const { disk, ...neutral } = template;
  return {
    vcpus: 1,
    memoryMiB: 128,
    userData: "#cloud-config\n",
    secretEnv: [],
    ...neutral,
    settings: { [TEST_KIND]: { disk: disk ?? { baseImage: "base.qcow2", sizeGiB: 1 } } },
  };
}

/**
 * A normalised config. Hosts may be names; groups default to group "web" of size 1 (min 0, max 10) on every
 * host, round-robin, DHCP, ready once started (no check-in).
 */
export function makeConfig(
  opts: { hosts?: (string | (Partial<HostConfig> & { name: string }))[]; groups?: (Partial<Omit<GroupConfig, "template">> & { template?: TemplateSpec })[] } = {},
): Config {
  const hosts = (opts.hosts ?? ["a"]).map((h) => makeHost(typeof h === "string" ? { name: h } : h));
  const groups = (opts.groups ?? [{}]).map(
    (g): GroupConfig => ({
      name: "web",
      min: 0,
      max: 10,
      desired: 1,
      hosts: hosts.map((h) => h.name),
      placement: "round-robin",
      networking: { mode: "dhcp" },
      readiness: { checkIn: false, timeoutSeconds: 900, heartbeatSeconds: 0, unhealthyAfterSeconds: 180 },
      suspend: false,
      rollout: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0, checkpoints: [], checkpointPauseSeconds: 0, rollback: true },
      lifecycleHooks: [],
      ...g,
      template: makeTemplate(g.template),
    }),
  );
  return { version: "v1alpha1", file: "/test/premiscale.yaml", state: { path: "/test/state" }, server: { host: "127.0.0.1", port: 8970, advertiseUrl: "http://10.0.2.2:8970" },
    metrics: { intervalSeconds: 15, store: { type: "sqlite", path: "/test/state/.premiscale/metrics.db", rawRetentionSeconds: 86400, rollupRetentionSeconds: 2592000 } },
    gitops: { repo: null, branch: "main", path: "premiscale.yaml", mode: "auto", intervalSeconds: 60, workDir: "/var/lib/premiscale/repo", planTtlSeconds: 86400, lock: { ttlSeconds: 300 }, webhook: null }, hosts, groups };
}

/** An instance in state. */
export function makeInstance(name: string, host: string, opts: Partial<Instance> = {}): Instance {
  return { name, uuid: `uuid-${name}`, host, created: "2025-01-01T00:00:00.000Z", status: "running", ...opts };
}

/** A VM of ours as a host reports it, by default running and of the test lineage. */
export function makeDomain(name: string, opts: Partial<OwnedVm> = {}): OwnedVm {
  return {
    name,
    uuid: `uuid-${name}`,
    group: name.replace(/-[^-]*$/, ""),
    lineage: TEST_LINEAGE,
    createdAt: "2025-01-01T00:00:00.000Z",
    state: "running",
    ...opts,
  };
}

/** A test host's capacity as tests write it: the neutral figures, its disk pool and the volumes in it. */
export type TestCapacity = Omit<HostCapacity, "resources"> & {
  pool: { name: string; capacityBytes: number; availableBytes: number } | null;
  volumes: string[];
};

/** An observation of a `test` host: also the volumes of its pool, from which `withFits` answers templates. */
export type TestObservation = HostObservation & { volumes?: string[]; pool?: string };

/**
 * A host observation: 8 CPUs, 16000 MiB free, a 100 GiB pool "default" holding "base.qcow2", unless overridden;
 * `unreachable` makes it an unreachable host. Its `fits` are filled by `makeInput` for the config's groups.
 */
export function makeObservation(
  host: string,
  opts: { domains?: OwnedVm[]; capacity?: Partial<TestCapacity>; unreachable?: string } = {},
): TestObservation {
  if (opts.unreachable !== undefined) return { host, status: "unreachable", error: opts.unreachable };
  const c: TestCapacity = {
    cpus: 8,
    memoryMiB: 16384,
    freeMemoryMiB: 16000,
    allocatedVcpus: 0,
    pool: { name: "default", capacityBytes: 100 * GiB, availableBytes: 100 * GiB },
    volumes: ["base.qcow2"],
    ...opts.capacity,
  };
  const { pool, volumes, ...neutral } = c;
  return {
    host,
    status: "ok",
    capacity: { ...neutral, resources: pool ? { [`pool:${pool.name}`]: { label: `pool "${pool.name}"`, unit: "bytes", available: pool.availableBytes, capacity: pool.capacityBytes } } : {} },
    vms: opts.domains ?? [],
    fits: {},
    volumes,
    pool: pool?.name ?? "default",
  };
}

/**
 * The `test` kind's answer for each group that may use the host (what an adapter's `observe` does), and for the
 * previous template of each group `state` says is rolled back (as the pipeline asks).
 */
export function withFits(obs: HostObservation, config: Config, state: State | null = null): HostObservation {
  if (obs.status !== "ok") return obs;
  const t = obs as TestObservation;
  const pool = t.pool ?? "default";
  const key = `pool:${pool}`;
  const fitOf = (template: Pick<VmTemplate, "settings">): TemplateFit => {
    const disk = (template.settings[TEST_KIND] as TestTemplate | undefined)?.disk;
    if (!disk) return { ok: false, reason: "the template has no test settings" };
    if (!obs.capacity.resources[key]) return { ok: false, reason: `pool "${pool}" not found` };
    if (!(t.volumes ?? []).includes(disk.baseImage)) return { ok: false, reason: `base image "${disk.baseImage}" not in pool "${pool}"` };
    return { ok: true, demand: { [key]: disk.sizeGiB * GiB }, settings: { [TEST_KIND]: { pool, baseImage: disk.baseImage, diskSizeGiB: disk.sizeGiB } } };
  };
  const fits: Record<string, TemplateFit> = {};
  for (const g of config.groups.filter((g) => g.hosts.includes(obs.host))) {
    fits[g.name] = fitOf(g.template);
    const previous = rolledBackTo(g, state?.groups.find((x) => x.name === g.name));
    if (previous) fits[previousFitKey(g.name)] = fitOf(previous);
  }
  return { ...obs, fits: { ...fits, ...obs.fits } };
}

/** A state holding `instances` per group name. */
export function makeState(instances: Record<string, Instance[]> = {}, opts: { lineage?: string; serial?: number } = {}): State {
  return {
    version: 1,
    lineage: opts.lineage ?? TEST_LINEAGE,
    serial: opts.serial ?? 3,
    groups: Object.entries(instances)
      .map(([name, list]) => ({ name, instances: [...list].sort((a, b) => (a.name < b.name ? -1 : 1)) }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

/** Deterministic UUIDs whose first 8 hex digits (and so names and MACs) differ: `00000001-…-000000000001`, … */
export function uuidSequence(start = 1): () => string {
  let n = start;
  return () => {
    const i = n++;
    return `${i.toString(16).padStart(8, "0")}-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
  };
}

/** Decisions that take each group's `desired` from config, clamped: the real static source. */
export const configDecisions = (config: Config): Decision[] => decideFromConfig(config);

/**
 * A full PlanInput with test defaults: observations of every host (each asked about the config's groups, as the
 * pipeline asks adapters), decisions from config, TEST_NOW.
 */
export function makeInput(input: Partial<PlanInput> & { config: Config }): PlanInput {
  const observations = (input.observations ?? input.config.hosts.map((h) => makeObservation(h.name))).map((o) => withFits(o, input.config, input.state ?? null));
  return {
    configDigest: "sha256:test",
    configCommit: null,
    state: null,
    decide: decideWith([configSource]),
    now: TEST_NOW,
    newLineage: "22222222-2222-4222-8222-222222222222",
    newUuid: uuidSequence(),
    ...input,
    observations,
  };
}

/**
 * What the world looks like after a perfect apply of `plan`: created VMs run and are in state (and use host
 * capacity; a stopped warm pool's new VMs are shut off and give it back, a paused pool's are paused and keep it),
 * deleted ones are gone from hosts and state, VMs taken from a warm pool run as members and returned ones wait in it.
 * Roll-out records and the groups' template records are written as apply writes them, and histories kept. Serial
 * goes up by one.
 */
export function simulateApply(plan: Plan, state: State | null, observations: HostObservation[]): { state: State; observations: HostObservation[] } {
  const deleted = new Set(plan.changes.filter((c) => c.action === "delete").map((c) => c.name));
  const known = new Map((state?.groups ?? []).flatMap((g) => g.instances.map((i) => [i.name, i] as const)));
  const byGroup = new Map<string, Instance[]>(
    (state?.groups ?? []).map((g) => [g.name, g.instances.filter((i) => !deleted.has(i.name))]),
  );
  const next = observations.map((o): HostObservation => {
    if (o.status !== "ok") return o;
    const capacity = { ...o.capacity, resources: Object.fromEntries(Object.entries(o.capacity.resources).map(([k, r]) => [k, { ...r }])) };
    // A deleted VM that ran gives its host back what it was recorded with.
    for (const d of o.vms.filter((d) => deleted.has(d.name) && (d.state === "running" || d.state === "paused"))) {
      capacity.freeMemoryMiB += known.get(d.name)?.memoryMiB ?? 0;
      capacity.allocatedVcpus -= known.get(d.name)?.vcpus ?? 0;
    }
    return { ...o, capacity, vms: o.vms.filter((d) => !deleted.has(d.name)) };
  });
  for (const c of plan.changes) {
    if (c.action !== "create") continue;
    byGroup.set(c.group, [
      ...(byGroup.get(c.group) ?? []),
      {
        name: c.name,
        uuid: c.uuid,
        host: c.host,
        created: c.vm.createdAt,
        status: "running",
        vcpus: c.vm.vcpus,
        memoryMiB: c.vm.memoryMiB,
        ...(c.address_v4 ? { address: c.address_v4 } : {}),
        ...(c.template ? { template: c.template } : {}),
        ...(c.ready?.bootBeacon ? { bootBeacon: true } : {}),
        ...(c.pool ? { pool: "warm" as const, poolState: c.pool.state } : {}),
      },
    ]);
    const obs = next.find((o) => o.host === c.host);
    if (obs?.status !== "ok") throw new Error(`plan creates on host ${c.host}, which is not reachable`);
    const stopped = c.pool?.state === "stopped";
    const power = stopped ? "stopped" : c.pool?.state === "paused" ? "paused" : "running";
    obs.vms.push({ name: c.name, uuid: c.uuid, group: c.group, lineage: plan.lineage, createdAt: c.vm.createdAt, state: power });
    if (!stopped) {
      obs.capacity.freeMemoryMiB -= c.vm.memoryMiB;
      obs.capacity.allocatedVcpus += c.vm.vcpus;
    }
    const fit = obs.fits[c.group];
    for (const [k, amount] of Object.entries(fit?.ok ? fit.demand : {})) if (obs.capacity.resources[k]) obs.capacity.resources[k]!.available -= amount;
  }
  for (const c of plan.changes) {
    if (c.action !== "take" && c.action !== "return") continue;
    const list = byGroup.get(c.group) ?? [];
    const i = list.findIndex((x) => x.name === c.name);
    if (i < 0) throw new Error(`plan moves ${c.address}, which is not in state`);
    const { pool: _pool, poolState: _waited, joined: _joined, ...member } = list[i]!;
    list[i] = c.action === "take" ? { ...member, joined: plan.created_at } : { ...member, pool: "warm", poolState: c.stop ? "stopped" : c.pause ? "paused" : "running" };
    const obs = next.find((o) => o.host === c.host);
    if (obs?.status !== "ok") throw new Error(`plan moves a VM on host ${c.host}, which is not reachable`);
    const d = obs.vms.find((v) => v.name === c.name);
    const power = c.action === "take" ? "running" : c.stop ? "stopped" : c.pause ? "paused" : d?.state;
    if (d && power && power !== d.state) {
      // Starting a VM takes its memory and vCPUs from the host; stopping one gives them back. Pausing or resuming
      // changes neither: a paused VM keeps both.
      const holds = (s: string) => s === "running" || s === "paused";
      if (holds(power) !== holds(d.state)) {
        const sign = holds(power) ? -1 : 1;
        obs.capacity.freeMemoryMiB += sign * (member.memoryMiB ?? 0);
        obs.capacity.allocatedVcpus -= sign * (member.vcpus ?? 0);
      }
      obs.vms[obs.vms.indexOf(d)] = { ...d, state: power };
    }
  }
  const groups = Object.fromEntries(byGroup);
  const made = makeState(groups, { lineage: plan.lineage, serial: (state?.serial ?? 0) + 1 });
  made.groups = made.groups.map((g): GroupState => {
    const old = state?.groups.find((x) => x.name === g.name);
    const p = plan.groups.find((x) => x.name === g.name);
    let rollout = old?.rollout;
    const r = p?.rollout;
    if (r) {
      const replaced = r.replaced + plan.changes.filter((c) => c.group === g.name && c.action === "delete" && (c.reason === "replace_drift" || c.reason === "replace_lifetime")).length;
      rollout =
        replaced >= r.total
          ? undefined
          : { template: r.template, total: r.total, replaced, ...(r.config ? { config: r.config } : {}), ...(r.previous ? { previous: r.previous } : {}), ...(r.checkpoint !== undefined ? { checkpointAt: plan.created_at } : {}) };
    }
    const template = p?.template ?? old?.template;
    if (p?.template) rollout = undefined;
    return { ...g, ...(old?.history ? { history: old.history } : {}), ...(rollout ? { rollout } : {}), ...(template && g.instances.length > 0 ? { template } : {}) };
  });
  return { state: made, observations: next };
}
