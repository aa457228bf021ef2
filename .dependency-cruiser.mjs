// @ts-check
/**
 * The import rules of the folders (`npm run lint` runs them; `npx depcruise .` alone too). Each folder README's
 * "May import" line says in words what the rules below enforce; change both together.
 *
 * The stages, bottom to top. A folder may import its own files and those of folders below it, never one above:
 * data flows up the list, calls flow down.
 * Tests (`*.test.ts`), fixtures (`testdata/`), `test/`, `bench/` and `examples/` may import anything.
 *
 * @type {import("dependency-cruiser").IConfiguration}
 */

const LAYERS = [
  "config",
  "state",
  "providers",
  "metrics",
  "policies",
  "planner",
  "server",
  "applier",
  "hooks",
  "kubernetes",
  "pipeline",
  "reconciler",
  "cli",
];

/** Test code, which may import anything: test files and fixtures anywhere, and the folders of tests and benchmarks. */
const TEST_CODE = ["\\.test\\.tsx?$", "(^|/)testdata/", "^(test|bench|examples)/"];

const folder = (names) => `^(${names.join("|")})/`;

/** One rule per stage: nothing of the stages above it. */
const layerRules = LAYERS.slice(0, -1).map((name, i) => ({
  name: `layer-${name}`,
  severity: "error",
  comment:
    i === 0
      ? `${name}/ is the first stage: it imports no other folder.`
      : `${name}/ is stage ${i + 1} of ${LAYERS.length}: it may import only the stages below it (${LAYERS.slice(0, i).map((l) => `${l}/`).join(", ")}), never one above.`,
  from: { path: `^${name}/`, pathNot: TEST_CODE },
  to: { path: folder(LAYERS.slice(i + 1)) },
}));

/** Node built-ins that the pure core may use: hashing (plan checksums) only; the clock and randomness are eslint's. */
const PURE_BUILTINS = ["crypto"];
/** npm packages the pure core may reach: croner (through config/cron.ts) computes dates, it never starts a timer. */
const PURE_PACKAGES = ["croner"];

export default {
  forbidden: [
    ...layerRules,
    {
      name: "no-circular",
      severity: "error",
      comment: "No import cycle, between folders or inside one: the stages form a ladder, and so do the files of a stage.",
      from: {},
      to: { circular: true },
    },
    {
      name: "pure-core",
      severity: "error",
      comment:
        "planner/ and policies/ are pure: nothing they import, directly or through other modules (type imports " +
        `included), is a Node built-in other than ${PURE_BUILTINS.join(", ")} or an npm package other than ${PURE_PACKAGES.join(", ")}. ` +
        "The clock, randomness and I/O come in as arguments.",
      from: { path: folder(["planner", "policies"]), pathNot: TEST_CODE },
      to: {
        reachable: true,
        path: ["^[a-z_/]+$", "(^|/)node_modules/"],
        pathNot: [`^(node:)?(${PURE_BUILTINS.join("|")})$`, `(^|/)node_modules/(${PURE_PACKAGES.join("|")})/`],
      },
    },
    {
      name: "adapters-behind-the-port",
      severity: "error",
      comment:
        "A provider adapter (providers/<kind>/) is imported only inside providers/: every other folder uses the port " +
        "(providers/provider.ts) and the registry that picks the adapter by kind (providers/index.ts).",
      from: { pathNot: ["^providers/", ...TEST_CODE] },
      to: { path: "^providers/[^/]+/" },
    },
    {
      name: "metrics-provider-port-only",
      severity: "error",
      comment: "metrics/ reads counters through the Provider port (providers/provider.ts); it never builds providers.",
      from: { path: "^metrics/", pathNot: TEST_CODE },
      to: { path: "^providers/", pathNot: "^providers/provider\\.ts$" },
    },
    {
      name: "server-shell-knows-no-stage",
      severity: "error",
      comment:
        "The check-in server itself (check-in-server.ts, instance-token.ts, parse-check-in.ts) takes from other " +
        "folders only config/errors.ts: the caller passes a TokenVerifier and reads check-ins back.",
      from: { path: "^server/(check-in-server|instance-token|parse-check-in)\\.ts$" },
      to: { path: folder(LAYERS.filter((l) => l !== "server")), pathNot: "^config/errors\\.ts$" },
    },
    {
      name: "applier-follows-the-plan",
      severity: "error",
      comment: "applier/ takes the plan as data (planner/plan.ts) and follows its changes; it never computes or renders one.",
      from: { path: "^applier/", pathNot: TEST_CODE },
      to: { path: "^planner/", pathNot: "^planner/plan\\.ts$" },
    },
    {
      name: "no-test-code-in-the-product",
      severity: "error",
      comment: "What ships imports no test, fixture, benchmark or example.",
      from: { path: folder(LAYERS), pathNot: TEST_CODE },
      to: { path: TEST_CODE },
    },
    {
      name: "no-unresolvable",
      severity: "error",
      comment: "An import that resolves to no file is a typo or a missing dependency.",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // node_modules is a symlink in some work trees; keep its path so the package rules match either way.
    preserveSymlinks: true,
    doNotFollow: { path: "(^|/)node_modules/" },
    exclude: { path: "^(dist|coverage)/" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".tsx", ".js", ".d.ts"],
    },
  },
};
