import { defineConfig } from "vitest/config";

// Two projects: `fast` (pure code, test:///default, temporary git repos) and `libvirt` (real qemu:///system).
// `npm run test:unit` runs only the fast set; test/run.sh runs both.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "fast",
          globalSetup: ["test/global-setup.ts"],
          include: ["**/*.test.ts", "**/*.test.tsx"],
          exclude: ["**/*.libvirt.test.ts", "node_modules/**", "dist/**"],
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
    ],
  },
});
