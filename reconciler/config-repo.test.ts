import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigRepo } from "./config-repo.js";
import { git } from "../state/git.js";
import { commitFiles, makeRemote, pushUserCommit, remoteFile, remoteRef, tempDir, userClone } from "./testing.js";

async function repoOf(remote: string, branch = "main"): Promise<ConfigRepo> {
  return new ConfigRepo({ source: remote, branch, workDir: join(await tempDir(), "work") });
}

describe("ConfigRepo", () => {
  it("clones a local path, tells the tracked commit and whether it moved", async () => {
    const remote = await makeRemote({ "premiscale.yaml": "a: 1\n" });
    const repo = await repoOf(remote);
    const first = await repo.sync();
    expect(first).toMatchObject({ commit: await remoteRef(remote, "refs/heads/main"), previous: null, moved: true, unpushed: 0 });
    expect(await readFile(join(repo.dir, "premiscale.yaml"), "utf8")).toBe("a: 1\n");
    expect((await repo.sync()).moved).toBe(false);

    const user = await userClone(remote);
    const pushed = await pushUserCommit(user, { "premiscale.yaml": "a: 2\n" }, "change a");
    const third = await repo.sync();
    expect(third).toMatchObject({ commit: pushed, previous: first.commit, moved: true });
    expect(await readFile(join(repo.dir, "premiscale.yaml"), "utf8")).toBe("a: 2\n");
  });

  it("pushes local commits as a fast-forward", async () => {
    const remote = await makeRemote({ "premiscale.yaml": "a: 1\n" });
    const repo = await repoOf(remote);
    await repo.sync();
    expect(await repo.push()).toMatchObject({ status: "up_to_date" });
    const sha = await commitFiles(repo.dir, { "state/state.json": "{}\n" }, "state");
    expect(await repo.push()).toEqual({ status: "pushed", commit: sha });
    expect(await remoteRef(remote, "refs/heads/main")).toBe(sha);
    // Our own push is not reported as the remote moving.
    expect((await repo.sync()).moved).toBe(false);
  });

  it("when the remote moved, fetches, replays the local commit on top and says so; never forces", async () => {
    const remote = await makeRemote({ "premiscale.yaml": "a: 1\n" });
    const repo = await repoOf(remote);
    await repo.sync();
    await commitFiles(repo.dir, { "state/state.json": "{\"serial\":1}\n" }, "state 1");
    const user = await pushUserCommit(await userClone(remote), { "premiscale.yaml": "a: 2\n" }, "user change");

    const r = await repo.push();
    expect(r.status).toBe("remote_moved");
    if (r.status !== "remote_moved") throw new Error();
    expect(r.remote).toBe(user);
    // The local commit now sits on the user's; the remote is unchanged until the caller pushes again.
    expect((await git(repo.dir, ["rev-parse", "HEAD~1"])).stdout.trim()).toBe(user);
    expect(await remoteRef(remote, "refs/heads/main")).toBe(user);
    expect(await readFile(join(repo.dir, "premiscale.yaml"), "utf8")).toBe("a: 2\n");

    expect(await repo.push()).toMatchObject({ status: "pushed", commit: r.commit });
    expect(await remoteFile(remote, "main", "state/state.json")).toBe("{\"serial\":1}\n");
    expect((await git(remote, ["merge-base", "--is-ancestor", user, "main"], { allowFail: true })).exitCode).toBe(0);
  });

  it("keeps uncommitted state files across a sync", async () => {
    const remote = await makeRemote({ "premiscale.yaml": "a: 1\n" });
    const repo = await repoOf(remote);
    await repo.sync();
    await mkdir(join(repo.dir, "state"), { recursive: true });
    await writeFile(join(repo.dir, "state/state.json"), "{\"serial\":7}\n");
    await git(repo.dir, ["add", "state/state.json"]);
    await pushUserCommit(await userClone(remote), { "premiscale.yaml": "a: 2\n" }, "user change");
    await repo.sync();
    expect(await readFile(join(repo.dir, "state/state.json"), "utf8")).toBe("{\"serial\":7}\n");
    expect(await readFile(join(repo.dir, "premiscale.yaml"), "utf8")).toBe("a: 2\n");
  });

  it("refuses with a conflict, and pushes the local commits to a rescue branch, when state was changed on the remote too", async () => {
    const remote = await makeRemote({ "state/state.json": "{\"serial\":0}\n" });
    const repo = await repoOf(remote);
    await repo.sync();
    const mine = await commitFiles(repo.dir, { "state/state.json": "{\"serial\":1}\n" }, "mine");
    await pushUserCommit(await userClone(remote), { "state/state.json": "{\"serial\":5}\n" }, "theirs");
    const err = await repo.push().catch((e: Error) => e);
    expect(err).toMatchObject({ name: "PushRejectedError", code: "state_conflict" });
    expect((err as unknown as { hint: string }).hint).toContain(`premiscale/rescue/${mine.slice(0, 12)}`);
    expect(await remoteRef(remote, `refs/heads/premiscale/rescue/${mine.slice(0, 12)}`)).toBe(mine);
    expect(await remoteFile(remote, "main", "state/state.json")).toBe("{\"serial\":5}\n");
  });

  it("publishes files on a new branch on top of the tracked branch without touching the work tree", async () => {
    const remote = await makeRemote({ "premiscale.yaml": "a: 1\n" });
    const repo = await repoOf(remote);
    const { commit } = await repo.sync();
    const r = await repo.publishBranch("premiscale/plan/abc", { ".premiscale/plan.json": "{}\n", ".premiscale/plan.md": "# plan\n" }, "premiscale plan abc");
    expect(r.status).toBe("pushed");
    expect(await remoteFile(remote, "premiscale/plan/abc", ".premiscale/plan.md")).toBe("# plan\n");
    expect(await remoteFile(remote, "premiscale/plan/abc", "premiscale.yaml")).toBe("a: 1\n");
    expect((await git(remote, ["rev-parse", "premiscale/plan/abc~1"])).stdout.trim()).toBe(commit);
    expect((await git(repo.dir, ["status", "--porcelain"])).stdout).toBe("");
    expect((await repo.publishBranch("premiscale/plan/abc", { x: "y" }, "again")).status).toBe("exists");
  });

  it("commits a removal that push then sends", async () => {
    const remote = await makeRemote({ "premiscale.yaml": "a: 1\n", ".premiscale/plan.json": "{}\n" });
    const repo = await repoOf(remote);
    await repo.sync();
    expect(await repo.commitRemoval([".premiscale/plan.json", ".premiscale/plan.md"], "remove plan")).toMatch(/^[0-9a-f]{40}$/);
    expect(await repo.commitRemoval([".premiscale/plan.json"], "again")).toBeNull();
    await repo.push();
    expect(await remoteFile(remote, "main", ".premiscale/plan.json")).toBeNull();
  });

  it("gives clear errors: unreachable remote, missing branch, a work directory of another repository, a refused push", async () => {
    const gone = join(await tempDir(), "gone.git");
    await expect((await repoOf(gone)).sync()).rejects.toMatchObject({ code: "remote_unreachable", message: expect.stringContaining(gone) });
    await expect(new ConfigRepo({ source: "http://u:tok@127.0.0.1:9/x.git", workDir: join(await tempDir(), "w") }).sync()).rejects.toSatisfy(
      (e: Error & { code: string }) => e.code === "remote_unreachable" && !e.message.includes("tok"),
    );

    const remote = await makeRemote({ "premiscale.yaml": "a: 1\n" });
    await expect((await repoOf(remote, "prod")).sync()).rejects.toMatchObject({ code: "branch_missing", message: expect.stringContaining("branch prod does not exist") });

    const repo = await repoOf(remote);
    await repo.sync();
    const other = await makeRemote({ "x": "y\n" });
    await expect(new ConfigRepo({ source: other, workDir: repo.dir }).sync()).rejects.toMatchObject({ code: "workdir_mismatch" });

    await writeFile(join(remote, "hooks", "pre-receive"), "#!/bin/sh\necho 'protected branch' >&2\nexit 1\n", { mode: 0o755 });
    await commitFiles(repo.dir, { "state/state.json": "{}\n" }, "state");
    await expect(repo.push()).rejects.toMatchObject({ name: "PushRejectedError", code: "push_rejected", message: expect.stringContaining("refused the push to main") });
  });

  it("explains that a non-bare local repository refuses pushes to its checked-out branch", async () => {
    const plain = await userClone(await makeRemote({ "premiscale.yaml": "a: 1\n" }));
    const repo = new ConfigRepo({ source: plain, workDir: join(await tempDir(), "w") });
    await repo.sync();
    await commitFiles(repo.dir, { "state/state.json": "{}\n" }, "state");
    await expect(repo.push()).rejects.toMatchObject({ hint: expect.stringContaining("receive.denyCurrentBranch updateInstead") });
  });
});
