// Which way of talking to libvirt: a `virsh` process per call, or one long-running `virsh` session per host?
// This is the measurement behind providers/libvirt (see providers/README.md). Same command, same run, both ways.
import { execa } from "execa";
import { VirshSession } from "../providers/libvirt/virsh-session.js";
import { median, ratioLine, timeRuns } from "./common.js";

const N = Number(process.env.BENCH_N ?? 30);
const uris = ["test:///default", ...(process.env.BENCH_NO_SYSTEM ? [] : ["qemu:///system"])];

for (const uri of uris) {
  console.log(`\n# ${uri}: \`list --all --name\`, median of ${N}`);
  const perProcess = median(await timeRuns(N, () => execa("virsh", ["-q", "-c", uri, "list", "--all", "--name"])));
  const session = new VirshSession({ uri, timeoutMs: 10_000 });
  await session.run("list --all --name"); // connect once, as a provider does
  const viaSession = median(await timeRuns(N, () => session.run("list --all --name")));
  await session.close();
  ratioLine("session call (premiscale)", viaSession, "virsh process per call", perProcess);
}
