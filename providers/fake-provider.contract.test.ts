import { randomUUID } from "node:crypto";
import { FakeProvider } from "./fake-provider.js";
import { describeProviderContract } from "./provider.contract.js";

// The in-memory fake: one FakeProvider holds the host's VMs, and each adapter the suite opens is a `reopen` of it.
describeProviderContract("FakeProvider", async () => {
  const host = new FakeProvider("contract-fake");
  return {
    open: () => host.reopen({}),
    openHung: (callTimeoutMs) => {
      const p = host.reopen({ callTimeoutMs });
      p.hang = true;
      return p;
    },
    template: { vcpus: 1, memoryMiB: 64, settings: {} },
    vmSpec: (settings) => {
      const uuid = randomUUID();
      return {
        name: `contract-${uuid.slice(0, 8)}`,
        uuid,
        group: "contract",
        lineage: "lineage-contract",
        createdAt: new Date().toISOString(),
        vcpus: 1,
        memoryMiB: 64,
        userData: "#cloud-config\n{}\n",
        network: { mode: "dhcp" },
        settings,
      };
    },
    plantForeign: async (name, uuid) => host.plantForeign(name, uuid),
    remains: async (name) => {
      const vm = [...host.domains.values()].find((v) => v.name === name);
      return [...(vm ? [`vm ${name}: ${vm.state}`] : []), ...host.pieces(name)];
    },
    cleanup: async () => undefined,
  };
});
