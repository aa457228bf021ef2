import { chmod, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { libvirtConfig } from "../providers/libvirt/config.js";
import { ConfigError, type ConfigIssue } from "./errors.js";
import { resolveHookProgram } from "./lifecycle-hooks.js";
import { parseConfig } from "./load.js";
import type { ProviderConfigFragment } from "./provider-kinds.js";

const KINDS: readonly ProviderConfigFragment[] = [libvirtConfig as ProviderConfigFragment];

// Real files in a real directory: the loader checks that hook programs exist and may be run.
let dir: string;
let bin: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "premiscale-hooks-config-"));
  bin = path.join(dir, "bin");
  await mkdir(path.join(dir, "hooks"));
  await mkdir(bin);
  await writeFile(path.join(dir, "hooks", "lb.sh"), "#!/bin/sh\nexit 0\n");
  await chmod(path.join(dir, "hooks", "lb.sh"), 0o755);
  await writeFile(path.join(dir, "hooks", "notes.txt"), "not a program\n");
  await writeFile(path.join(bin, "register-vm"), "#!/bin/sh\nexit 0\n");
  await chmod(path.join(bin, "register-vm"), 0o755);
});

/** A config whose one group has these hooks (YAML lines, indented under `lifecycleHooks:`); line 10 is the first hook. */
function text(hooks: string): string {
  return `version: v1alpha1
hosts:
  - name: local
    uri: qemu:///system
groups:
  - name: web
    max: 3
    hosts: [local]
    lifecycleHooks:
${hooks.trim().split("\n").map((l) => `      ${l}`).join("\n")}
    template:
      memoryMiB: 128
      disk: { baseImage: base.qcow2 }
`;
}

const parse = (hooks: string, env: Record<string, string> = { PATH: bin }) =>
  parseConfig(text(hooks), path.join(dir, "premiscale.yaml"), env, () => "", { kinds: KINDS, checkEnv: false });

function issues(hooks: string, env?: Record<string, string>): ConfigIssue[] {
  try {
    parse(hooks, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("groups[].lifecycleHooks", () => {
  it("keeps commands as written and fills timeoutSeconds 300 and defaultResult abandon", () => {
    const c = parse(`
- name: lb
  on: launching
  command: [./hooks/lb.sh, --pool, web]
- name: registry
  on: terminating
  http: { url: "https://registry.example.net/hook", secretEnv: REGISTRY_HOOK_SECRET }
  timeoutSeconds: 30
  defaultResult: continue
- name: path-lookup
  on: terminating
  command: [register-vm]`);
    expect(c.groups[0]!.lifecycleHooks).toEqual([
      { name: "lb", on: "launching", command: ["./hooks/lb.sh", "--pool", "web"], timeoutSeconds: 300, defaultResult: "abandon" },
      { name: "registry", on: "terminating", http: { url: "https://registry.example.net/hook", secretEnv: "REGISTRY_HOOK_SECRET" }, timeoutSeconds: 30, defaultResult: "continue" },
      { name: "path-lookup", on: "terminating", command: ["register-vm"], timeoutSeconds: 300, defaultResult: "abandon" },
    ]);
  });

  it("refuses a command whose program does not exist, naming the field, the path it looked at and the directory", () => {
    const [i, ...rest] = issues("- { name: lb, on: launching, command: [./hooks/missing.sh] }");
    expect(rest).toEqual([]);
    expect(i).toMatchObject({
      line: 10,
      path: "groups[0].lifecycleHooks[0].command[0]",
      message: `hook program ${path.join(dir, "hooks", "missing.sh")} does not exist`,
      fix: `check the path; a relative path is relative to the config file's directory, ${dir}`,
    });
    expect(i!.column).toBeGreaterThan(40); // at the program, not at the hook
  });

  it("refuses a program that is not executable or is a directory, and a bare name that is not on PATH", () => {
    expect(issues("- { name: a, on: launching, command: [hooks/notes.txt] }")[0]).toMatchObject({
      path: "groups[0].lifecycleHooks[0].command[0]",
      message: `hook program ${path.join(dir, "hooks", "notes.txt")} is not executable`,
      fix: `chmod +x ${path.join(dir, "hooks", "notes.txt")}, or run it through its interpreter (command: [bash, hooks/notes.txt])`,
    });
    expect(issues(`- { name: a, on: launching, command: [${dir}/hooks] }`)[0]).toMatchObject({ message: `hook program ${dir}/hooks is a directory` });
    expect(issues("- { name: a, on: launching, command: [lb-register] }", { PATH: `${bin}:/nonexistent` })[0]).toMatchObject({
      message: `hook program "lb-register" is not on PATH (${bin}:/nonexistent)`,
      fix: `install it, or give its path (./lb-register is relative to ${dir})`,
    });
  });

  it("needs exactly one of command and http, and unique names within the group", () => {
    const all = issues(`
- { name: lb, on: launching }
- { name: lb, on: terminating, command: [register-vm], http: { url: "http://127.0.0.1:9/", secretEnv: S } }`);
    expect(all.map((i) => [i.path, i.message])).toEqual([
      ["groups[0].lifecycleHooks[0]", 'hook "lb" has neither command nor http'],
      ["groups[0].lifecycleHooks[1].name", 'hook name "lb" is already used by lifecycleHooks[0] of this group'],
      ["groups[0].lifecycleHooks[1].http", "a hook runs a command or makes an HTTP call, not both"],
    ]);
  });

  it("refuses the name of premiscale's own check-in hook", () => {
    expect(issues("- { name: check-in, on: launching, command: [register-vm] }")).toMatchObject([
      { path: "groups[0].lifecycleHooks[0].name", message: `hook name "check-in" is premiscale's own (the wait for the VM's check-in)` },
    ]);
  });

  it("refuses a URL that is not http(s) or carries credentials, and a secretEnv that is not a variable name", () => {
    expect(issues('- { name: a, on: launching, http: { url: "ftp://x/", secretEnv: S } }')[0]).toMatchObject({ path: "groups[0].lifecycleHooks[0].http.url", message: 'must match ^https?://, got "ftp://x/"' });
    expect(issues('- { name: a, on: launching, http: { url: "https://u:p@lb.example.net/", secretEnv: S } }')[0]).toMatchObject({
      path: "groups[0].lifecycleHooks[0].http.url",
      message: "the URL carries credentials, and secrets never go in the config",
    });
    expect(issues('- { name: a, on: launching, http: { url: "https://lb.example.net/", secretEnv: lb-secret } }')[0]).toMatchObject({
      path: "groups[0].lifecycleHooks[0].http.secretEnv",
      fix: 'e.g. "LB_SECRET"',
    });
    expect(issues('- { name: a, on: launching, http: { url: "https://lb.example.net/" } }')[0]).toMatchObject({ path: "groups[0].lifecycleHooks[0].http.secretEnv" });
    expect(issues("- { name: a, on: booting, command: [register-vm] }")[0]).toMatchObject({ message: 'must be one of "launching", "terminating", got "booting"' });
  });
});

describe("resolveHookProgram", () => {
  it("resolves a path against the config's directory and a bare name on PATH, in PATH order", () => {
    expect(resolveHookProgram("hooks/lb.sh", dir, "")).toEqual({ ok: true, path: path.join(dir, "hooks", "lb.sh") });
    expect(resolveHookProgram("register-vm", "/", `/nonexistent:${bin}`)).toEqual({ ok: true, path: path.join(bin, "register-vm") });
    expect(resolveHookProgram("sh", "/", undefined)).toMatchObject({ ok: true, path: expect.stringMatching(/\/sh$/) });
  });
});
