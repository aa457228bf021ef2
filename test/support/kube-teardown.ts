import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const DIR = /\/premiscale-kube-[A-Za-z0-9]{6}\//;

// The lane this run is (test/run.sh runs two vitest processes at once, each with a control plane at times): a cluster
// process inherits PREMISCALE_TEST_LANE from the test that started it.
function laneOf(pid: string): string | undefined {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    return env.find((e) => e.startsWith("PREMISCALE_TEST_LANE="))?.slice("PREMISCALE_TEST_LANE=".length);
  } catch {
    return undefined;
  }
}

// Processes whose command line names a test cluster's directory (etcd --data-dir=/tmp/premiscale-kube-…, the API
// server's certificate flags, KWOK's kubeconfig), with that directory.
function kubeProcesses(): { pid: string; argv: string[]; dir: string }[] {
  const found: { pid: string; argv: string[]; dir: string }[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone meanwhile
    }
    const hit = argv.map((a) => DIR.exec(a)?.[0]).find(Boolean);
    if (hit) found.push({ pid, argv, dir: hit.slice(1, -1) });
  }
  return found;
}

/**
 * vitest globalSetup of the `kubernetes` project. After its tests: fails the run if a cluster process is left, and
 * removes cluster directories that no process uses and that are older than ten minutes (a test process killed
 * with SIGKILL runs no exit hook: its components die with it through setpriv's parent-death signal, its directory
 * stays).
 */
export default function kubeSetup(): () => void {
  return () => {
    const all = kubeProcesses();
    const used = new Set(all.map((p) => p.dir));
    // Only this lane's: the other lane's clusters may still be running.
    const lane = process.env.PREMISCALE_TEST_LANE;
    const procs = lane === undefined ? all : all.filter((p) => laneOf(p.pid) === lane);
    for (const d of readdirSync(tmpdir()).filter((n) => /^premiscale-kube-[A-Za-z0-9]{6}$/.test(n) && !used.has(n))) {
      const path = join(tmpdir(), d);
      try {
        if (Date.now() - statSync(path).mtimeMs > 600_000) rmSync(path, { recursive: true, force: true });
      } catch {
        // removed meanwhile
      }
    }
    if (procs.length > 0) {
      throw new Error(`the kubernetes tests left test-cluster processes running: ${procs.map((p) => `${p.pid} ${p.argv.slice(0, 2).join(" ")}`).join("; ")}`);
    }
  };
}
