import { execFileSync } from "node:child_process";

/**
 * Builds dist/ once so CLI tests run the real `premiscale` binary, never a stale one.
 * PREMISCALE_TEST_PREBUILT=1 skips it when dist/ was just built another way (e.g. with some folders left out).
 */
export default function setup(): void {
  if (process.env.PREMISCALE_TEST_PREBUILT === "1") return;
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}
