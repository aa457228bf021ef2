import { execFileSync } from "node:child_process";

/** Builds dist/ once so CLI tests run the real `premiscale` binary, never a stale one. */
export default function setup(): void {
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}
