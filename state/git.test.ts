import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { git, GitError } from "./git.js";

const tempDir = () => mkdtemp(join(tmpdir(), "premiscale-git-"));

describe("git", () => {
  it("runs git without prompts or a pager, with C messages", async () => {
    const dir = await tempDir();
    const r = await git(dir, ["-c", "alias.env=!printenv GIT_TERMINAL_PROMPT GIT_PAGER LC_ALL", "env"]);
    expect(r).toEqual({ stdout: "0\ncat\nC\n", stderr: "", exitCode: 0 });
  });

  it("throws a GitError with git's own error line, or hands the failure back with allowFail", async () => {
    const dir = await tempDir();
    await git(dir, ["init", "--quiet"]);
    await expect(git(dir, ["rev-parse", "--verify", "nope"])).rejects.toThrow(
      expect.objectContaining({ name: "GitError", code: "git_failed", message: `git rev-parse failed in ${dir}: fatal: Needed a single revision` }),
    );
    const r = await git(dir, ["rev-parse", "--verify", "nope"], { allowFail: true });
    expect(r.exitCode).toBe(128);
  });

  it("stops a git that hangs at its timeout, and says so", async () => {
    const dir = await tempDir();
    const fifo = join(dir, "never-written");
    await execa("mkfifo", [fifo]);
    // Opening a FIFO nobody writes blocks git itself: nothing is left behind once it is killed.
    const started = Date.now();
    const r = await git(dir, ["hash-object", fifo], { timeoutMs: 300, allowFail: true });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.exitCode).toBe(124);
    expect(r.stderr).toContain("fatal: git hash-object timed out after 300 ms");
    await expect(git(dir, ["hash-object", fifo], { timeoutMs: 300 })).rejects.toThrow(/^git hash-object failed in .*: fatal: git hash-object timed out after 300 ms$/);
  });

  it("says how to fix a git that cannot start, even with allowFail", async () => {
    const dir = await tempDir();
    const missing = git(dir, ["status"], { env: { PATH: join(dir, "no-bin") }, allowFail: true });
    await expect(missing).rejects.toThrow(GitError);
    await expect(missing).rejects.toMatchObject({ code: "git_unavailable", hint: expect.stringContaining("install git") });
    await expect(git(join(dir, "gone"), ["status"], { allowFail: true })).rejects.toMatchObject({ code: "git_unavailable" });
  });
});
