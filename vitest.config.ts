import { defineConfig } from "vitest/config";

// What a test needs beyond Node decides its project; every test file is in exactly one, and test/run.sh runs them all.
//   unit        nothing but Node (while they run, PATH holds only `node`): `npm run test:unit`, on a bare clone, in seconds
//   fast        this machine's tools (the files listed below): git, virsh with test:///default, tmux, the metrics
//               stores, the built CLI (dist/ is built once, by test/global-setup.ts)
//   libvirt     the real qemu:///system libvirtd (`*.libvirt.test.ts`), one file at a time
//   kubernetes  a real control plane built by test/kubernetes/build-components.sh (`*.kubernetes.test.ts`), after
//               unit and fast
//   kubernetes-vms  a real control plane AND real VMs on qemu:///system (the files KUBERNETES_WITH_VMS lists)
// test/run.sh runs them in two lanes at once: the VM lane (libvirt, kubernetes-vms: one file at a time, since VMs
// share the host's vCPU budget) and the other lane (unit, fast, kubernetes). Each lane uses about one core.
const NEEDS_TOOLS = [
  // git: state is a git repository, the reconciler follows a remote (the TUI tests apply a demo plan, state included)
  "applier/apply-plan.test.ts",
  "applier/apply-refresh.test.ts",
  "applier/warm-pool.test.ts",
  "applier/rollback.test.ts",
  "applier/lifecycle.test.ts",
  "cli/metrics-command.test.ts",
  "cli/reconcile.test.ts",
  "cli/tui/apply-reporter.test.ts",
  "cli/tui/apply-view.test.tsx",
  "pipeline/prepare-apply.test.ts",
  "pipeline/autoscaler-provider.test.ts",
  "reconciler/backtest.test.ts",
  "reconciler/config-repo.test.ts",
  "reconciler/reconcile.test.ts",
  "reconciler/remote-lock.test.ts",
  "reconciler/watch-webhook.test.ts",
  "state/git-state-store.test.ts",
  "state/git.test.ts",
  // sh and coreutils: users' hook commands are real programs
  "hooks/command-hook.test.ts",
  // virsh, on libvirt's test:///default driver
  "providers/libvirt/*.test.ts",
  // openssl, for the Proxmox VE double's TLS certificate and the externalgrpc server's mTLS certificates
  "providers/proxmox/*.test.ts",
  "kubernetes/grpc-server.test.ts",
  // Prometheus and promtool, VictoriaMetrics, InfluxDB (metrics/setup-stores.sh)
  "metrics/influxdb-source.test.ts",
  "metrics/prometheus-source.test.ts",
  // the built `premiscale` in its own process (and tmux, for the real-terminal test)
  "cli/tui/apply.tmux.test.ts",
  "test/*.test.ts",
  // mkfifo: special files as userDataFile
  "config/load-special-files.test.ts",
  // the fuzz tests: 10,000 cases each, half a minute or more (and the config one also runs the built CLI)
  "**/*.fuzz.test.ts",
];
const LIBVIRT = "**/*.libvirt.test.ts";
const KUBERNETES = "**/*.kubernetes.test.ts";
// Kubernetes files that also boot real VMs: in the VM lane, never beside a libvirt file. installGuest() refuses to
// run outside that lane (PREMISCALE_TEST_VMS), so a new file that boots VMs fails at once until it is listed here.
const KUBERNETES_WITH_VMS = [
  "test/cluster-autoscaler.kubernetes.test.ts",
  "test/native-mode.kubernetes.test.ts",
  "test/native-replicas.kubernetes.test.ts",
  "test/node-groups.kubernetes.test.ts",
];
const NOT_TESTS = ["node_modules/**", "dist/**"];

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          setupFiles: ["test/unit-setup.ts"],
          include: ["**/*.test.ts", "**/*.test.tsx"],
          exclude: [LIBVIRT, KUBERNETES, ...NEEDS_TOOLS, ...NOT_TESTS],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "fast",
          globalSetup: ["test/global-setup.ts"],
          include: NEEDS_TOOLS,
          exclude: [LIBVIRT, KUBERNETES, ...NOT_TESTS],
          // These start real processes (the built CLI, git, metrics stores): in CI three CLI tests that take 5-10 s
          // alone passed 30 s while the config fuzz held a core (2026-12-03). A bound for hangs, not a speed check.
          testTimeout: 90_000,
        },
      },
      {
        test: {
          name: "libvirt",
          globalSetup: ["test/libvirt-teardown.ts"],
          include: [LIBVIRT],
          exclude: NOT_TESTS,
          env: { PREMISCALE_TEST_VMS: "1" },
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "kubernetes",
          // global-setup builds dist/: the serve tests run the built `premiscale serve`.
          globalSetup: ["test/global-setup.ts", "test/support/kube-teardown.ts"],
          include: [KUBERNETES],
          exclude: [...KUBERNETES_WITH_VMS, ...NOT_TESTS],
          testTimeout: 180_000,
          hookTimeout: 240_000,
          // One control plane at a time, after unit and fast (in the same lane).
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: "kubernetes-vms",
          globalSetup: ["test/global-setup.ts", "test/support/kube-teardown.ts"],
          include: KUBERNETES_WITH_VMS,
          exclude: NOT_TESTS,
          env: { PREMISCALE_TEST_VMS: "1" },
          testTimeout: 180_000,
          hookTimeout: 240_000,
          // With the libvirt files, one file at a time: their VMs share the host's vCPU budget.
          fileParallelism: false,
        },
      },
    ],
  },
});
