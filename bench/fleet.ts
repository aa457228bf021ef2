import type { Config } from "../config/types.js";
import type { HostObservation, OwnedVm } from "../providers/provider.js";
import type { GroupState, State } from "../state/types.js";

/** A fleet for benchmarks: `groups` groups of `perGroup` running instances, each group on `hostsPerGroup` of `hosts` hosts. */
export interface Fleet {
  config: Config;
  state: State;
  observations: HostObservation[];
}

const uuid = (g: number, i: number) => `${g.toString(16).padStart(8, "0")}-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
const LINEAGE = "11111111-1111-4111-8111-111111111111";

/** Builds the fleet deterministically. */
export function makeFleet(groups: number, perGroup: number, hosts: number, hostsPerGroup = 10): Fleet {
  const hostNames = Array.from({ length: hosts }, (_, h) => `kvm${h}`);
  const domains = new Map<string, OwnedVm[]>(hostNames.map((h) => [h, []]));
  const groupStates: GroupState[] = [];
  const config: Config = {
    version: "v1alpha1",
    file: "/bench/premiscale.yaml",
    state: { path: "/bench/state" },
    server: { host: "127.0.0.1", port: 8970, advertiseUrl: "http://10.0.2.2:8970" },
    metrics: { intervalSeconds: 15, store: { type: "sqlite", path: "/test/state/.premiscale/metrics.db", rawRetentionSeconds: 86400, rollupRetentionSeconds: 2592000 } },
    gitops: { repo: null, branch: "main", path: "premiscale.yaml", mode: "auto", intervalSeconds: 60, workDir: "/var/lib/premiscale/repo", planTtlSeconds: 86400, lock: { ttlSeconds: 300 }, webhook: null },
    hosts: hostNames.map((name) => ({
      name,
      kind: "libvirt",
      settings: { uri: `qemu+ssh://root@${name}/system`, pool: "default", accelerator: "kvm" },
      reservedMemoryMiB: 1024,
      cpuOvercommit: 8,
      maxParallel: 4,
      callTimeoutSeconds: 60,
    })),
    groups: [],
  };
  for (let g = 0; g < groups; g++) {
    const name = `g${g}`;
    const gHosts = Array.from({ length: hostsPerGroup }, (_, k) => hostNames[(g * hostsPerGroup + k) % hosts]!);
    // Half the groups want one more VM and half one fewer, so placement and victim choice both run.
    config.groups.push({
      name, min: 0, max: perGroup + 10, desired: perGroup + (g % 2 ? 1 : -1), hosts: gHosts, placement: "round-robin",
      template: { vcpus: 1, memoryMiB: 512, userData: "#cloud-config\n", secretEnv: [], settings: { libvirt: { disk: { baseImage: "base.qcow2", sizeGiB: 10 }, nic: { type: "user" } } } },
      networking: { mode: "dhcp" },
      readiness: { checkIn: false, timeoutSeconds: 900, heartbeatSeconds: 0, unhealthyAfterSeconds: 180 },
      suspend: false,
      rollout: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0, checkpoints: [], checkpointPauseSeconds: 0, rollback: true },
      lifecycleHooks: [],
    });
    const instances = [];
    for (let i = 0; i < perGroup; i++) {
      const u = uuid(g, i);
      const inst = { name: `${name}-${u.slice(0, 8)}${i}`, uuid: u, host: gHosts[i % gHosts.length]!, created: "2026-01-01T00:00:00.000Z", status: "running" as const };
      instances.push(inst);
      domains.get(inst.host)!.push({ name: inst.name, uuid: u, group: name, lineage: LINEAGE, createdAt: inst.created, state: "running" });
    }
    instances.sort((a, b) => (a.name < b.name ? -1 : 1));
    groupStates.push({ name, instances });
  }
  groupStates.sort((a, b) => (a.name < b.name ? -1 : 1));
  // What the libvirt adapter answers for each group placing on a host: 10 GiB of its pool per VM.
  const fitsOn = (h: string) =>
    Object.fromEntries(
      config.groups.filter((g) => g.hosts.includes(h)).map((g) => [g.name, { ok: true as const, demand: { "pool:default": 10 * 2 ** 30 }, settings: { libvirt: { pool: "default", baseImage: "base.qcow2", diskSizeGiB: 10, nic: { type: "user" }, accelerator: "kvm" } } }]),
    );
  const observations: HostObservation[] = hostNames.map((h) => ({
    host: h,
    status: "ok",
    capacity: {
      cpus: 64,
      memoryMiB: 512 * 1024,
      freeMemoryMiB: 256 * 1024,
      allocatedVcpus: 100,
      resources: { "pool:default": { label: 'pool "default"', unit: "bytes", available: 2 ** 41, capacity: 2 ** 42 } },
    },
    vms: domains.get(h)!,
    fits: fitsOn(h),
  }));
  return { config, state: { version: 1, lineage: LINEAGE, serial: 7, groups: groupStates }, observations };
}
