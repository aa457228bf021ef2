/** Small builders of configs, observations and states for tests (pure, importable by any test). */
import type { Config, GroupConfig, HostConfig, VmTemplate } from "../config/types.js";
import type { Decision } from "../policies/decision.js";
import { decideFromConfig } from "../policies/static.js";
import type { HostCapacity, HostObservation, OwnedDomain } from "../providers/provider.js";
import type { Instance, State } from "../state/types.js";
import type { PlanInput } from "./compute-plan.js";
import type { Plan } from "./plan.js";

/** Default lineage of test states. */
export const TEST_LINEAGE = "11111111-1111-4111-8111-111111111111";
/** Default `now` of test plans. */
export const TEST_NOW = new Date("2025-06-01T12:00:00.000Z");
/** One GiB in bytes. */
export const GiB = 1024 ** 3;

/** A host config with defaults (`test:///<name>`, pool "default", kvm, 512 MiB reserved, overcommit 4). */
export function makeHost(host: Partial<HostConfig> & { name: string }): HostConfig {
  return {
    uri: `test:///${host.name}`,
    pool: "default",
    accelerator: "kvm",
    reservedMemoryMiB: 512,
    cpuOvercommit: 4,
    maxParallel: 4,
    callTimeoutSeconds: 60,
    ...host,
  };
}

/** A 1 vCPU, 128 MiB, 1 GiB VM on base image "base.qcow2" with user networking. */
export function makeTemplate(template: Partial<VmTemplate> = {}): VmTemplate {
  return {
    vcpus: 1,
    memoryMiB: 128,
    disk: { baseImage: "base.qcow2", sizeGiB: 1 },
    nic: { type: "user" },
    userData: "#cloud-config\n",
    secretEnv: [],
    ...template,
  };
}

/**
 * A normalised config. Hosts may be names; groups default to group "web" of size 1 (min 0, max 10) on every
 * host, round-robin, DHCP, ready once started (no check-in).
 */
export function makeConfig(
  opts: { hosts?: (string | (Partial<HostConfig> & { name: string }))[]; groups?: (Partial<Omit<GroupConfig, "template">> & { template?: Partial<VmTemplate> })[] } = {},
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

/** A domain of ours as a host reports it, by default running and of the test lineage. */
export function makeDomain(name: string, opts: Partial<OwnedDomain> = {}): OwnedDomain {
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

/**
 * A host observation: 8 CPUs, 16000 MiB free, a 100 GiB pool "default" holding "base.qcow2", unless overridden;
 * `unreachable` makes it an unreachable host.
 */
export function makeObservation(
  host: string,
  opts: { domains?: OwnedDomain[]; capacity?: Partial<HostCapacity>; unreachable?: string } = {},
): HostObservation {
  if (opts.unreachable !== undefined) return { host, status: "unreachable", error: opts.unreachable };
  return {
    host,
    status: "ok",
    capacity: {
      cpus: 8,
      memoryMiB: 16384,
      freeMemoryMiB: 16000,
      allocatedVcpus: 0,
      pool: { name: "default", capacityBytes: 100 * GiB, availableBytes: 100 * GiB },
      volumes: ["base.qcow2"],
      ...opts.capacity,
    },
    domains: opts.domains ?? [],
  };
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

/** A full PlanInput with test defaults: observations of every host, decisions from config, TEST_NOW. */
export function makeInput(input: Partial<PlanInput> & { config: Config }): PlanInput {
  return {
    configDigest: "sha256:test",
    configCommit: null,
    state: null,
    observations: input.config.hosts.map((h) => makeObservation(h.name)),
    decisions: configDecisions(input.config),
    now: TEST_NOW,
    newLineage: "22222222-2222-4222-8222-222222222222",
    newUuid: uuidSequence(),
    ...input,
  };
}

/**
 * What the world looks like after a perfect apply of `plan`: created VMs run and are in state (and use host
 * capacity), deleted ones are gone from hosts and state. Serial goes up by one.
 */
export function simulateApply(plan: Plan, state: State | null, observations: HostObservation[]): { state: State; observations: HostObservation[] } {
  const deleted = new Set(plan.changes.filter((c) => c.action === "delete").map((c) => c.name));
  const known = new Map((state?.groups ?? []).flatMap((g) => g.instances.map((i) => [i.name, i] as const)));
  const byGroup = new Map<string, Instance[]>(
    (state?.groups ?? []).map((g) => [g.name, g.instances.filter((i) => !deleted.has(i.name))]),
  );
  const next = observations.map((o): HostObservation => {
    if (o.status !== "ok") return o;
    const capacity = { ...o.capacity, pool: o.capacity.pool && { ...o.capacity.pool } };
    // A deleted VM that ran gives its host back what it was recorded with.
    for (const d of o.domains.filter((d) => deleted.has(d.name) && (d.state === "running" || d.state === "paused"))) {
      capacity.freeMemoryMiB += known.get(d.name)?.memoryMiB ?? 0;
      capacity.allocatedVcpus -= known.get(d.name)?.vcpus ?? 0;
    }
    return { ...o, capacity, domains: o.domains.filter((d) => !deleted.has(d.name)) };
  });
  for (const c of plan.changes) {
    if (c.action !== "create") continue;
    byGroup.set(c.group, [
      ...(byGroup.get(c.group) ?? []),
      { name: c.name, uuid: c.uuid, host: c.host, created: c.vm.createdAt, status: "running", vcpus: c.vm.vcpus, memoryMiB: c.vm.memoryMiB, ...(c.address_v4 ? { address: c.address_v4 } : {}) },
    ]);
    const obs = next.find((o) => o.host === c.host);
    if (obs?.status !== "ok") throw new Error(`plan creates on host ${c.host}, which is not reachable`);
    obs.domains.push({ name: c.name, uuid: c.uuid, group: c.group, lineage: plan.lineage, createdAt: c.vm.createdAt, state: "running" });
    obs.capacity.freeMemoryMiB -= c.vm.memoryMiB;
    obs.capacity.allocatedVcpus += c.vm.vcpus;
    if (obs.capacity.pool) obs.capacity.pool.availableBytes -= c.vm.diskSizeGiB * GiB;
  }
  const groups = Object.fromEntries(byGroup);
  return { state: makeState(groups, { lineage: plan.lineage, serial: (state?.serial ?? 0) + 1 }), observations: next };
}
