import { readdirSync, readFileSync } from "node:fs";

// A process whose command line names a test cluster's directory (etcd --data-dir=/tmp/premiscale-kube-…, the API
// server's certificate flags, KWOK's kubeconfig) belongs to a cluster some test did not stop.
function strayKubeProcesses(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone meanwhile
    }
    if (argv.some((a) => /\/premiscale-kube-[A-Za-z0-9]{6}\//.test(a))) found.push(`${pid} ${argv.slice(0, 2).join(" ")}`);
  }
  return found;
}

/** vitest globalSetup of the `kubernetes` project: after its tests, fails the run if a cluster process is left. */
export default function kubeSetup(): () => void {
  return () => {
    const left = strayKubeProcesses();
    if (left.length > 0) throw new Error(`the kubernetes tests left test-cluster processes running: ${left.join("; ")}`);
  };
}
