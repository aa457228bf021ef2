// The Provider contract suite, unchanged, against the proxmox adapter on a test double of a PVE cluster: the double
// follows the PVE API schema (testdata/pve-api-excerpt.json) and PVE's behaviour as read in its sources, but it is
// not a real Proxmox VE (see testing/pve-double.ts for what it does not model).
import { describeProviderContract } from "../provider.contract.js";
import { makeClusterCerts } from "./testing/pve-certs.js";
import { proxmoxHarness } from "./testing/pve-harness.js";
import { startTestCluster } from "./testing/pve-test-cluster.js";

describeProviderContract("proxmox on a PVE test double (two nodes)", async () => {
  const nodes = ["pve1", "pve2"];
  const certs = makeClusterCerts(nodes);
  const double = await startTestCluster(certs, { nodes });
  return proxmoxHarness({ double, certs, node: "pve1", nodes, prefix: "pvect" });
});
