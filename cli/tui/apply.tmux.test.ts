/**
 * The apply view in a real terminal: tmux runs the demo (applyPlan with delayed fake hosts) in a 110×40 pane,
 * and the test reads the screen while it runs and after. Needs tmux (`bash cli/tui/setup-tmux.sh`).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const SESSION = "apply";
let dir = "";
/** Our own tmux server (its socket in a temporary folder): never anyone else's sessions. */
const tmux = (...args: string[]) => execa("tmux", ["-S", join(dir, "tmux.sock"), "-f", "/dev/null", ...args]);

/** The pane's text including what scrolled off, without trailing blank lines. */
async function screen(): Promise<string> {
  return (await tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", SESSION)).stdout.trimEnd();
}

async function waitForScreen(what: string, ok: (s: string) => boolean, timeoutMs = 30_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < until) {
    last = await screen();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the terminal never showed ${what}; last screen:\n${last}`);
}

const SPINNER = /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] web\[web-\d+\]\s+\+ create on kvm\d\s+\d+s\s+(creating disk|configuring|starting)/;

describe("apply in a real terminal (tmux)", () => {
  beforeAll(async () => {
    const found = await execa("tmux", ["-V"], { reject: false });
    if (found.exitCode !== 0) throw new Error("tmux is not installed: run bash cli/tui/setup-tmux.sh");
    dir = await mkdtemp(join(tmpdir(), "premiscale-tmux-"));
    // CI unset: the demo must pick the live view by itself, as the CLI does on a terminal.
    const demo =
      `cd ${ROOT} && env -u CI -u CONTINUOUS_INTEGRATION NO_COLOR= node_modules/.bin/tsx cli/tui/testing/apply-demo.ts ` +
      `--adds 6 --destroys 2 --step-ms 300 --fail web-00000003; echo DEMO-EXIT=$?; sleep 600`;
    await tmux("new-session", "-d", "-s", SESSION, "-x", "110", "-y", "40", demo);
  });

  afterAll(async () => {
    if (!dir) return;
    await tmux("kill-server").catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it("shows spinner rows with the step and per-host progress while applying, then the summary", async () => {
    const HOSTS = [/^ {2}kvm1 [█░]{12} [0-4]\/4/m, /^ {2}kvm2 [█░]{12} [0-4]\/4/m];
    const TOTALS = /[0-8]\/8 finished · \d running · \d waiting · \d failed\s+\d+s/;
    // A whole frame: a redraw may be caught half-way, so wait for one with every part.
    const live = await waitForScreen("a running row with a spinner", (s) => SPINNER.test(s) && HOSTS.every((h) => h.test(s)) && TOTALS.test(s));
    expect(live).toContain("Plan: 6 to add, 0 to change, 2 to destroy.");
    expect(live).toContain("Applying 8 changes: 6 to add, 2 to destroy");
    expect(live).toMatch(/[0-7]\/8 finished · [1-4] running/);

    const end = await waitForScreen("the exit of the demo", (s) => s.includes("DEMO-EXIT="));
    expect(end).toContain("DEMO-EXIT=1");
    expect(end).toContain("8/8 finished · 0 running · 0 waiting · 1 failed");
    expect(end).toMatch(/✖ web\[web-00000003\]\s+\+ create on kvm1\s+\d+s\s+failed: host kvm1: disk of web-00000003 failed/);
    expect(end).toMatch(/✔ batch\[batch-00000000\]\s+- destroy on kvm1\s+\d+s\s+destroyed/);
    expect(end).toContain("Apply failed: 1 of 8 changes failed. Resources: 5 added, 0 changed, 2 destroyed.");
    // Redrawn in place: one view on screen, not a frame per update, and no spinner left behind.
    expect(end.split("Applying 8 changes").length - 1).toBe(1);
    expect(end).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
  });
});
