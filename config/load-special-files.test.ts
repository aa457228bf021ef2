import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { libvirtConfig } from "../providers/libvirt/config.js";
import { ConfigError } from "./errors.js";
import { loadConfig as loadWith } from "./load.js";
import type { ProviderConfigFragment } from "./provider-kinds.js";

// Special files as userDataFile: needs `mkfifo`, so it runs in the fast project (the unit project has only Node).
const KINDS: readonly ProviderConfigFragment[] = [libvirtConfig as ProviderConfigFragment];
const loadConfig = (file: string, env: Record<string, string | undefined>, o: { checkEnv?: boolean }) => loadWith(file, env, { ...o, kinds: KINDS });
const NO_CHECK_IN = `version: v1alpha1
hosts:
  - name: local
    uri: qemu:///system
groups:
  - name: web
    max: 3
    hosts: [local]
    readiness: { checkIn: false }
    template:
      memoryMiB: 128
      disk:
        baseImage: base.qcow2
`;

describe("userDataFile", () => {
  it("refuses a userDataFile that is a device, a FIFO or a folder instead of reading it forever", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "premiscale-load-"));
    execFileSync("mkfifo", [path.join(dir, "fifo")]);
    mkdirSync(path.join(dir, "folder"));
    for (const target of ["/dev/zero", "fifo", "folder"]) {
      const file = path.join(dir, "premiscale.yaml");
      writeFileSync(file, NO_CHECK_IN + `      userDataFile: ${target}\n`);
      const err: unknown = await loadConfig(file, {}, { checkEnv: false }).catch((e: unknown) => e);
      expect(err, target).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues, target).toEqual([
        expect.objectContaining({ line: 14, path: "groups[0].template.userDataFile", message: `cannot read user-data file ${path.resolve(dir, target)}: not a regular file` }),
      ]);
    }
  });
});
