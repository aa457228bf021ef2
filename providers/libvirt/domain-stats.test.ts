import { afterAll, describe, expect, it } from "vitest";
import { domstatsCommand, parseDomainCounters } from "./domain-stats.js";
import { LibvirtProvider } from "./libvirt-provider.js";

// Captured from libvirt 9.0 (qemu:///system, TCG), with a second disk and two interfaces added to the first domain.
const OUT = `Domain: 'web-1a2b3c4d'
  state.state=1
  state.reason=1
  cpu.time=583388000
  cpu.user=289539000
  cpu.system=293849000
  balloon.current=65536
  balloon.maximum=65536
  balloon.available=60000
  balloon.unused=20000
  balloon.usable=30000
  balloon.last-update=1795469435
  balloon.rss=45300
  vcpu.current=2
  vcpu.maximum=2
  vcpu.0.state=1
  vcpu.0.time=190000000
  net.count=2
  net.0.name=vnet0
  net.0.rx.bytes=1000
  net.0.tx.bytes=200
  net.1.name=vnet1
  net.1.rx.bytes=24
  net.1.tx.bytes=6
  block.count=2
  block.0.name=vda
  block.0.rd.reqs=1
  block.0.rd.bytes=512
  block.0.wr.reqs=0
  block.0.wr.bytes=0
  block.1.name=hdc
  block.1.rd.reqs=3
  block.1.rd.bytes=2048
  block.1.wr.reqs=2
  block.1.wr.bytes=4096

Domain: 'web-deadbeef'
  state.state=5
  state.reason=0

Domain: 'web-0000beef'
  state.state=1
  state.reason=1
  cpu.time=1000
  balloon.current=65536
  balloon.last-update=0
  balloon.rss=40000
  vcpu.current=1
  net.count=1
  block.count=0
`;

describe("domain counters from domstats --raw", () => {
  it("keeps cumulative counters, summing disks and interfaces", () => {
    const [a] = parseDomainCounters(OUT, 42);
    expect(a).toEqual({
      name: "web-1a2b3c4d",
      at: 42,
      cpuTimeNs: 583388000,
      vcpus: 2,
      blockReadBytes: 2560,
      blockWriteBytes: 4096,
      blockReadReqs: 4,
      blockWriteReqs: 2,
      netRxBytes: 1024,
      netTxBytes: 206,
      balloonCurrentKiB: 65536,
      balloonAvailableKiB: 60000,
      balloonUnusedKiB: 20000,
      balloonUsableKiB: 30000,
      balloonRssKiB: 45300,
    });
  });

  it("leaves out a shut-off domain and fields the host did not report (never 0)", () => {
    const all = parseDomainCounters(OUT, 42);
    expect(all.map((c) => c.name)).toEqual(["web-1a2b3c4d", "web-0000beef"]);
    // An interface without per-interface entries (user networking) and no disks: no byte counters at all.
    expect(all[1]).toEqual({ name: "web-0000beef", at: 42, cpuTimeNs: 1000, vcpus: 1, balloonCurrentKiB: 65536, balloonRssKiB: 40000 });
  });

  it("asks for the owned domains by name, quoted for virsh", () => {
    expect(domstatsCommand(["web-1", "odd name"])).toBe(
      `domstats --raw --cpu-total --balloon --vcpu --block --interface --state --nowait web-1 "odd name"`,
    );
  });
});

describe("counters on libvirt's test driver", () => {
  const provider = new LibvirtProvider({ name: "t", kind: "libvirt", settings: { uri: "test:///default", pool: "default-pool", accelerator: "qemu" }, reservedMemoryMiB: 0, cpuOvercommit: 4, maxParallel: 1, callTimeoutSeconds: 10 });
  afterAll(() => provider.close());

  it("makes no call for a host without owned domains (domstats without names means every domain)", async () => {
    await expect(provider.counters([])).resolves.toEqual([]);
  });

  it("still answers when a named domain no longer exists, instead of failing the host's whole sample", async () => {
    // The test driver reports only states, so no domain has counters; what matters is that the call succeeds.
    await expect(provider.counters(["test", "no-such-domain"])).resolves.toEqual([]);
  });

  it("does not start a call once the collector gave up", async () => {
    await expect(provider.counters(["test"], { signal: AbortSignal.abort(new Error("gave up")) })).rejects.toThrow("gave up");
  });
});
