import { defineConfig } from "vitest/config";

// Three projects: `fast` (pure code, test:///default, temporary git repos), `libvirt` (real qemu:///system) and
// `kubernetes` (a real control plane built by test/kubernetes/build-components.sh). `npm run test:unit` runs only
// the fast set; test/run.sh runs all three.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "fast",
          globalSetup: ["test/global-setup.ts"],
          include: ["**/*.test.ts", "**/*.test.tsx"],
          exclude: ["**/*.libvirt.test.ts", "**/*.kubernetes.test.ts", "node_modules/**", "dist/**"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "libvirt",
          globalSetup: ["test/libvirt-teardown.ts"],
          include: ["**/*.libvirt.test.ts"],
          exclude: ["node_modules/**", "dist/**"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "kubernetes",
          globalSetup: ["test/support/kube-teardown.ts"],
          include: ["**/*.kubernetes.test.ts"],
          exclude: ["node_modules/**", "dist/**"],
          testTimeout: 180_000,
          hookTimeout: 240_000,
          fileParallelism: false,
          // After the other projects, not beside the libvirt tests: two cores cannot boot guests and run a
          // control plane at once without the guests' timings suffering.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
