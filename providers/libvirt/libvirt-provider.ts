import { readFileSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { ProviderError } from "../../config/errors.js";
import type { HostConfig } from "../../config/types.js";
import type {
  CallOptions,
  HostCapacity,
  HostObservation,
  ObserveRequest,
  OwnedVm,
  Provider,
  TemplateFit,
  VmCounters,
  VmSpec,
} from "../provider.js";
import { libvirtHost, type Accelerator, type LibvirtHostSettings, type LibvirtTemplateSettings } from "./config.js";
import { DOMSTATS_FLAGS, domstatsCommand, parseDomainCounters } from "./domain-stats.js";
import { METADATA_NS, domainXml, parseMetadata, runStateOf, volumesOf, type LibvirtVm } from "./domain-xml.js";
import { macFromUuid, renderNetworkConfig } from "./network.js";
import { kibToMiB, parseDomstats, parseKeyValues, parseUuidNameList, parseVolList } from "./parse.js";
import { seedFiles } from "./seed.js";
import { VirshSession, VirshSessionError, quoteArg as q, type VirshResult, type VirshSessionOptions } from "./virsh-session.js";

/** Options of the libvirt adapter beyond the host's config. */
export interface LibvirtProviderOptions {
  /** Overrides the host's `callTimeoutSeconds` for every call. */
  callTimeoutMs?: number;
  /** Program that writes ISO9660 images. @default "genisoimage" */
  isoTool?: string;
  /** @default "virsh" */
  virshPath?: string;
  /** Where setup-host.sh records which accelerator works here. @default "/var/lib/premiscale/accelerator" */
  acceleratorFile?: string;
  /**
   * Opens the virsh session of one parallel slot. The test driver keeps its world in one connection, so tests that
   * stand several adapters on one test host hand them the same session. @default a new `VirshSession`
   */
  openSession?: (options: VirshSessionOptions) => VirshSession;
}

/** Written by providers/libvirt/setup-host.sh: first line `kvm` or `qemu`, after booting a kernel under KVM. */
export const ACCELERATOR_FILE = "/var/lib/premiscale/accelerator";

/** The accelerator setup-host.sh proved for this machine, or null when it never ran. */
export function provenAccelerator(file = ACCELERATOR_FILE): Accelerator | null {
  try {
    const verdict = readFileSync(file, "utf8").split("\n", 1)[0]?.trim();
    return verdict === "kvm" || verdict === "qemu" ? verdict : null;
  } catch {
    return null;
  }
}

/** The libvirt settings of a VM as the plan carries them (what `observe` answered for its host). */
export interface LibvirtVmSettings {
  pool: string;
  baseImage: string;
  diskSizeGiB: number;
  nic: LibvirtTemplateSettings["nic"];
  boot?: LibvirtTemplateSettings["boot"];
  accelerator: Accelerator;
}

const GiB = 1024 ** 3;

/**
 * The libvirt adapter of the `Provider` port: talks to one host through long-running `virsh` sessions (one per
 * allowed parallel step), so a slow or hung host holds only its own sessions. Ownership marker: a metadata element
 * in premiscale's namespace (instance id, group, lineage, created-at).
 */
export class LibvirtProvider implements Provider {
  readonly kind = "libvirt";
  readonly host: string;
  private readonly settings: LibvirtHostSettings;
  private readonly sessions: VirshSession[] = [];
  private readonly driver: "qemu" | "test";
  private readonly timeoutMs: number;
  private readonly foreign = new Set<string>();

  constructor(
    private readonly config: HostConfig,
    private readonly options: LibvirtProviderOptions = {},
  ) {
    this.host = config.name;
    this.settings = libvirtHost(config);
    this.driver = this.settings.uri.startsWith("test:") ? "test" : "qemu";
    this.timeoutMs = options.callTimeoutMs ?? config.callTimeoutSeconds * 1000;
  }

  /**
   * Picks an idle session, opening one more (up to `maxParallel`) when all are busy, else the least busy: a slow
   * call (a 2 s `destroy`) never holds up another while a session sits idle. The test driver keeps its world per
   * connection, so it gets exactly one.
   */
  private session(): VirshSession {
    const max = this.driver === "test" ? 1 : this.config.maxParallel;
    const idle = this.sessions.find((s) => s.load === 0);
    if (idle) return idle;
    if (this.sessions.length < max) {
      const options: VirshSessionOptions = { uri: this.settings.uri, timeoutMs: this.timeoutMs, virshPath: this.options.virshPath };
      const s = this.options.openSession?.(options) ?? new VirshSession(options);
      this.sessions.push(s);
      return s;
    }
    return this.sessions.reduce((a, b) => (b.load < a.load ? b : a));
  }

  private async batch(commands: string[], timeoutMs?: number): Promise<VirshResult[]> {
    try {
      return await this.session().runMany(commands, timeoutMs);
    } catch (e) {
      if (e instanceof VirshSessionError) {
        throw new ProviderError(
          this.host,
          `${this.settings.uri}: ${e.message}`,
          e.kind === "timeout"
            ? `the host did not answer within ${(timeoutMs ?? this.timeoutMs) / 1000} s; check it, or raise hosts[].callTimeoutSeconds`
            : `check that libvirtd runs there and that \`virsh -c ${this.settings.uri} list\` works from this machine`,
          { cause: e, code: e.kind === "timeout" ? "host_timeout" : "host_unreachable" },
        );
      }
      throw e;
    }
  }

  private async one(command: string, tolerate: RegExp[] = []): Promise<VirshResult> {
    const [r] = await this.batch([command]);
    if (!r!.ok && !tolerate.some((t) => r!.errors.some((e) => t.test(e)))) {
      throw new ProviderError(this.host, `\`${command.split(" ")[0]}\` failed: ${r!.errors.join("; ")}`);
    }
    return r!;
  }

  async observe(request: ObserveRequest): Promise<HostObservation> {
    const known = request.known;
    const pool = this.settings.pool;
    let first: VirshResult[];
    try {
      // One round trip for everything but the metadata of unknown domains.
      first = await this.batch([
        "list --all --uuid --name",
        "domstats --raw --state --vcpu",
        "nodeinfo",
        "nodememstats",
        "freecell",
        `pool-info ${q(pool)} --bytes`,
        `vol-list ${q(pool)}`,
      ]);
    } catch (e) {
      return { host: this.host, status: "unreachable", error: (e as Error).message };
    }
    const [list, stats, node, mem, free, poolInfo, vols] = first as [
      VirshResult, VirshResult, VirshResult, VirshResult, VirshResult, VirshResult, VirshResult,
    ];
    if (!list.ok || !node.ok) {
      return { host: this.host, status: "unreachable", error: [...list.errors, ...node.errors].join("; ") };
    }
    const uuids = parseUuidNameList(list.stdout);
    const domstats = parseDomstats(stats.stdout);

    // Metadata is written once, at define; a domain found without ours stays foreign for this provider's life, so a
    // long-running premiscale reads each foreign domain's metadata once, not on every observation.
    const unknown = [...uuids]
      .filter(([name, uuid]) => known.get(name)?.uuid !== uuid && !this.foreign.has(uuid))
      .map(([name]) => name);
    const metadata = new Map<string, ReturnType<typeof parseMetadata>>();
    if (unknown.length > 0) {
      let results: VirshResult[];
      try {
        results = await this.batch(unknown.map((n) => `metadata ${q(n)} ${q(METADATA_NS)}`));
      } catch (e) {
        return { host: this.host, status: "unreachable", error: (e as Error).message };
      }
      results.forEach((r, i) => {
        const m = r.ok ? parseMetadata(r.stdout) : null;
        metadata.set(unknown[i]!, m);
        if (!m && r.errors.some((e) => /metadata not found/i.test(e))) this.foreign.add(uuids.get(unknown[i]!)!);
      });
    }

    const vms: OwnedVm[] = [];
    let allocatedVcpus = 0;
    for (const [name, uuid] of uuids) {
      const st = domstats.get(name) ?? {};
      const state = runStateOf(Number(st["state.state"] ?? 0));
      if (state === "running" || state === "paused") allocatedVcpus += Number(st["vcpu.current"] ?? 0);
      const k = known.get(name);
      if (k && k.uuid === uuid) {
        vms.push({ name, uuid, group: k.group, lineage: k.lineage, createdAt: k.createdAt, state });
        continue;
      }
      const m = metadata.get(name);
      if (m && m.instance === uuid) vms.push({ name, uuid, group: m.group, lineage: m.lineage, createdAt: m.created, state });
    }

    const n = parseKeyValues(node.stdout);
    const memKv = parseKeyValues(mem.stdout);
    // nodememstats is what the kernel calls free + reclaimable; the test driver lacks it, so use freecell there.
    const freeMemoryMiB = mem.ok
      ? kibToMiB(memKv.get("free")) + kibToMiB(memKv.get("buffers")) + kibToMiB(memKv.get("cached"))
      : kibToMiB(parseKeyValues(free.stdout).get("total"));
    const p = parseKeyValues(poolInfo.stdout);
    const poolKey = `pool:${pool}`;
    const capacity: HostCapacity = {
      cpus: Number.parseInt(n.get("cpu(s)") ?? "0", 10),
      memoryMiB: kibToMiB(n.get("memory size")),
      freeMemoryMiB,
      allocatedVcpus,
      resources: poolInfo.ok
        ? { [poolKey]: { label: `pool "${pool}"`, unit: "bytes", available: Number(p.get("available") ?? 0), capacity: Number(p.get("capacity") ?? 0) } }
        : {},
    };
    let accelerator: Accelerator;
    if (this.settings.accelerator === "auto") {
      const resolved = provenAccelerator(this.options.acceleratorFile);
      if (!resolved) {
        return {
          host: this.host,
          status: "unreachable",
          error: `accelerator auto: KVM was never tested on this machine (${this.options.acceleratorFile ?? ACCELERATOR_FILE} is missing); run providers/libvirt/setup-host.sh, which boots a kernel under KVM, or set accelerator: kvm or qemu`,
        };
      }
      accelerator = resolved;
    } else accelerator = this.settings.accelerator;

    const volumes = vols.ok ? parseVolList(vols.stdout) : [];
    const fits: Record<string, TemplateFit> = {};
    for (const [group, t] of request.templates) {
      const lt = t.settings as LibvirtTemplateSettings | undefined;
      if (!lt) fits[group] = { ok: false, reason: "the group's template has no libvirt settings" };
      else if (!poolInfo.ok) fits[group] = { ok: false, reason: `pool "${pool}" not found` };
      else if (!volumes.includes(lt.disk.baseImage)) fits[group] = { ok: false, reason: `base image "${lt.disk.baseImage}" not in pool "${pool}"` };
      else {
        const vm: LibvirtVmSettings = { pool, baseImage: lt.disk.baseImage, diskSizeGiB: lt.disk.sizeGiB, nic: lt.nic, ...(lt.boot ? { boot: lt.boot } : {}), accelerator };
        // Overlays grow without asking: count the full virtual size.
        fits[group] = { ok: true, demand: { [poolKey]: lt.disk.sizeGiB * GiB }, settings: { libvirt: vm } };
      }
    }
    return { host: this.host, status: "ok", capacity, vms, fits };
  }

  async createVm(spec: VmSpec, options: CallOptions = {}): Promise<void> {
    const vm = libvirtVm(spec);
    const onStep = options.onStep;
    // The plan's pool, as the domain XML uses it: one source for both.
    const pool = q(vm.pool);
    const vols = volumesOf(vm.name);
    const exists = [/exists already/i, /already exists/i];

    options.signal?.throwIfAborted();
    onStep?.("create-disk");
    await this.one(
      `vol-create-as ${pool} ${q(vols.disk)} ${vm.diskSizeGiB}G --format qcow2 --backing-vol ${q(vm.baseImage)} --backing-vol-format qcow2`,
      exists,
    );

    options.signal?.throwIfAborted();
    onStep?.("configure");
    const dir = await mkdtemp(join(tmpdir(), "premiscale-seed-"));
    try {
      const iso = join(dir, "seed.iso");
      const files = seedFiles(vm);
      for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text, { mode: 0o600 });
      await this.buildIso(dir, iso);
      const size = (await stat(iso)).size;
      // A seed from an interrupted attempt may hold other content: replace it.
      await this.one(`vol-delete --pool ${pool} ${q(vols.seed)}`, [/not found/i]);
      await this.one(`vol-create-as ${pool} ${q(vols.seed)} ${size}b --format raw`);
      if (this.driver !== "test") await this.one(`vol-upload --pool ${pool} ${q(vols.seed)} ${q(iso)}`);

      const xmlFile = join(dir, "domain.xml");
      await writeFile(xmlFile, domainXml(vm, this.driver));
      await this.one(`define ${q(xmlFile)}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    options.signal?.throwIfAborted();
    onStep?.("start");
    await this.one(`start ${q(vm.name)}`, [/already active/i]);
  }

  private async buildIso(dir: string, iso: string): Promise<void> {
    const tool = this.options.isoTool ?? "genisoimage";
    try {
      await execa(
        tool,
        ["-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", "user-data", "meta-data", "network-config"],
        { cwd: dir, timeout: 30_000 },
      );
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new ProviderError(
        this.host,
        code === "ENOENT" ? `${tool} is not installed on this machine` : `building the cloud-init seed failed: ${(e as Error).message}`,
        "run providers/libvirt/setup-host.sh, or apt-get install genisoimage",
      );
    }
  }

  /**
   * Looks a domain up and checks it is this instance (its UUID and premiscale's metadata): `absent` when the host has
   * no domain of that name, else its `virsh domstate` word. Throws, touching nothing, for a domain that is not ours.
   */
  private async inspect(vm: { name: string; uuid: string }): Promise<{ absent: true } | { absent: false; state: string }> {
    const name = q(vm.name);
    const [uuidR, metaR, stateR] = await this.batch([`domuuid ${name}`, `metadata ${name} ${q(METADATA_NS)}`, `domstate ${name}`]);
    // Only "no such domain" means gone; any other failure must not be taken as permission to touch its disks.
    if (!uuidR!.ok && uuidR!.errors.some((e) => NO_SUCH_DOMAIN.test(e))) return { absent: true };
    if (!uuidR!.ok) throw new ProviderError(this.host, `cannot look up domain ${vm.name}: ${uuidR!.errors.join("; ")}`);
    const meta = metaR!.ok ? parseMetadata(metaR!.stdout) : null;
    if (uuidR!.stdout.trim() !== vm.uuid || !meta || meta.instance !== vm.uuid) {
      throw new ProviderError(
        this.host,
        `domain ${vm.name} is not the one premiscale created (uuid ${uuidR!.stdout.trim()}, expected ${vm.uuid}); it was left alone`,
        "remove it from state by hand if it was replaced outside premiscale",
        { code: "not_owned" },
      );
    }
    return { absent: false, state: stateR!.stdout.trim() };
  }

  /**
   * ACPI shutdown, waiting up to `shutdownTimeoutMs` for it to be shut off, then forced off. A paused domain is forced
   * off at once: QEMU would keep the ACPI request until the guest runs again and deliver it then.
   */
  private async powerOff(name: string, state: string, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void> {
    options.onStep?.("stop");
    if (state === "paused") {
      await this.one(`destroy ${q(name)}`, [/not running/i, /not found/i]);
      return;
    }
    await this.one(`shutdown ${q(name)}`, [/not running/i]);
    const deadline = Date.now() + options.shutdownTimeoutMs;
    while (Date.now() < deadline) {
      options.signal?.throwIfAborted();
      const r = await this.one(`domstate ${q(name)}`);
      if (r.stdout.trim() === "shut off") return;
      await new Promise((res) => setTimeout(res, 300));
    }
    await this.one(`destroy ${q(name)}`, [/not running/i, /not found/i]);
  }

  async startVm(vm: { name: string; uuid: string }, options: CallOptions = {}): Promise<void> {
    const found = await this.inspect(vm);
    if (found.absent) throw new ProviderError(this.host, `no domain named ${vm.name}`, "run premiscale plan again", { code: "not_found" });
    if (found.state === "running") return;
    options.signal?.throwIfAborted();
    options.onStep?.("start");
    if (found.state === "paused") await this.one(`resume ${q(vm.name)}`, [/not paused/i]);
    else await this.one(`start ${q(vm.name)}`, [/already active/i]);
  }

  async pauseVm(vm: { name: string; uuid: string }, options: CallOptions = {}): Promise<void> {
    const found = await this.inspect(vm);
    if (found.absent) throw new ProviderError(this.host, `no domain named ${vm.name}`, "run premiscale plan again", { code: "not_found" });
    if (found.state === "paused") return;
    if (found.state !== "running") {
      throw new ProviderError(this.host, `domain ${vm.name} is ${found.state}, so it cannot be paused`, "only a running domain can be paused; run premiscale plan again", { code: "not_running" });
    }
    options.signal?.throwIfAborted();
    options.onStep?.("pause");
    // virDomainSuspend: QEMU stops the vCPUs; memory and devices stay, and `resume` continues where it stopped.
    await this.one(`suspend ${q(vm.name)}`);
  }

  async stopVm(vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void> {
    const found = await this.inspect(vm);
    if (found.absent) throw new ProviderError(this.host, `no domain named ${vm.name}`, "run premiscale plan again", { code: "not_found" });
    if (found.state === "shut off") return;
    // The VM is kept: its guest gets to shut down cleanly, so a paused one runs again first.
    if (found.state === "paused") await this.one(`resume ${q(vm.name)}`, [/not paused/i]);
    await this.powerOff(vm.name, "running", options);
  }

  async destroyVm(vm: { name: string; uuid: string }, options: CallOptions & { shutdownTimeoutMs: number }): Promise<void> {
    const onStep = options.onStep;
    const name = q(vm.name);
    const found = await this.inspect(vm);
    const absent = found.absent;
    if (!found.absent) {
      if (found.state !== "shut off") await this.powerOff(vm.name, found.state, options);
      onStep?.("delete");
      const [u] = await this.batch([`undefine ${name} --nvram --managed-save`]);
      if (!u!.ok && u!.errors.some((e) => /unsupported flags/i.test(e))) {
        await this.one(`undefine ${name}`, [/not found/i, /failed to get domain/i]);
      } else if (!u!.ok && !u!.errors.some((e) => /not found|failed to get domain/i.test(e))) {
        throw new ProviderError(this.host, `undefine ${vm.name} failed: ${u!.errors.join("; ")}`);
      }
    }
    if (absent) onStep?.("delete");
    const vols = volumesOf(vm.name);
    const results = await this.batch([
      `vol-delete --pool ${q(this.settings.pool)} ${q(vols.disk)}`,
      `vol-delete --pool ${q(this.settings.pool)} ${q(vols.seed)}`,
    ]);
    for (const r of results) {
      if (!r.ok && !r.errors.some((e) => /not found|failed to get vol/i.test(e))) {
        throw new ProviderError(this.host, `${r.command} failed: ${r.errors.join("; ")}`);
      }
    }
  }

  /**
   * One `domstats` call for the named domains. virsh fails the whole call when one named domain does not exist (it
   * was just destroyed); then the counters of all active domains are read instead (a second call) and filtered, so a
   * sample still costs at most two calls. Once sent, a call is not abandoned: its timeout ends it.
   */
  async counters(names: readonly string[], options: { signal?: AbortSignal } = {}): Promise<VmCounters[]> {
    if (names.length === 0) return [];
    const run = async (command: string) => {
      options.signal?.throwIfAborted();
      const t0 = Date.now();
      const [r] = await this.batch([command]);
      // The host read the counters somewhere between sending and answering: take the middle.
      return { r: r!, at: Math.round((t0 + Date.now()) / 2) };
    };
    let { r, at } = await run(domstatsCommand(names));
    let wanted: Set<string> | undefined;
    if (!r.ok && r.errors.some((e) => NO_SUCH_DOMAIN.test(e))) {
      ({ r, at } = await run(`domstats ${DOMSTATS_FLAGS} --list-active`));
      wanted = new Set(names);
    }
    if (!r.ok) throw new ProviderError(this.host, `domstats failed: ${r.errors.join("; ")}`);
    const counters = parseDomainCounters(r.stdout, at);
    return wanted ? counters.filter((c) => wanted.has(c.name)) : counters;
  }

  async close(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.close()));
    this.sessions.length = 0;
  }
}

const NO_SUCH_DOMAIN = /failed to get domain|domain not found|no domain with matching/i;

/** The spec as the libvirt adapter builds it: its settings from the plan, and the MAC and network-config they imply. */
export function libvirtVm(spec: VmSpec): LibvirtVm {
  const s = spec.settings.libvirt as LibvirtVmSettings | undefined;
  if (!s) throw new ProviderError("(plan)", `the plan has no libvirt settings for ${spec.name}`, "run premiscale plan again");
  const { settings: _settings, network, ...neutral } = spec;
  const mac = macFromUuid(spec.uuid);
  return { ...neutral, ...s, mac, networkConfig: renderNetworkConfig(mac, network) };
}
