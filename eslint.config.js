// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

// planner/ and policies/ are pure: `(config, observed, metrics, history, now) → plan`. Which modules they may import
// is .dependency-cruiser.mjs's business; these rules catch what an import rule cannot see: reading the clock or
// drawing random numbers inline. Their tests and fixtures may do either.
const PURE = "planner/ and policies/ are pure";
const CLOCK = `${PURE}: take the time as an argument (\`now: Date\`) instead of reading the clock`;
const RANDOM = `${PURE}: take randomness as an argument (a seeded generator, e.g. planner/random.ts seededRng) instead of drawing it`;

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: [
      "planner/**",
      "policies/**",
      // Native mode's pure core (kubernetes/README.md): the loop, the reader, drain, leader election and the tests'
      // fixtures are its shell.
      "kubernetes/native/**",
    ],
    ignores: ["**/*.test.ts", "**/*.test.tsx", "**/testdata/**", "kubernetes/native/native-loop.ts", "kubernetes/native/cluster-reader.ts", "kubernetes/native/testing.ts", "kubernetes/native/drain*.ts", "kubernetes/native/leader-election*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [{ group: ["node:fs*", "node:child_process", "fs", "child_process"], message: "see the folder README: only edges do I/O" }],
          paths: ["node:crypto", "crypto"].map((name) => ({
            name,
            importNames: ["randomUUID", "randomBytes", "randomInt", "randomFillSync", "getRandomValues"],
            message: RANDOM,
          })),
        },
      ],
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: CLOCK },
        { object: "performance", property: "now", message: CLOCK },
        { object: "process", property: "hrtime", message: CLOCK },
        { object: "Math", property: "random", message: RANDOM },
        { object: "crypto", property: "randomUUID", message: RANDOM },
        { object: "crypto", property: "getRandomValues", message: RANDOM },
      ],
      "no-restricted-syntax": [
        "error",
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: `new Date() reads the clock. ${CLOCK}` },
        { selector: "CallExpression[callee.name='Date']", message: `Date() reads the clock. ${CLOCK}` },
      ],
    },
  },
);
