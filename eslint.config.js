// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["node:fs*", "node:child_process", "fs", "child_process"], message: "see the folder README: only edges do I/O" }] },
      ],
    },
  },
  {
    // Edges may do I/O; planner/ and policies/ stay pure.
    files: ["cli/**", "config/**", "providers/**", "state/**", "applier/**", "server/**", "metrics/**", "reconciler/**", "test/**", "bench/**", "**/*.test.ts", "**/*.test.tsx"],
    rules: { "no-restricted-imports": "off" },
  },
);
