import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";

const BIN = resolve(import.meta.dirname, "../../dist/cli/main.js");

/** What a CLI run printed and returned. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `premiscale` as a user would: its own process, no terminal, CI=true; killed after `timeoutMs` (170 s). */
export async function premiscale(cwd: string, args: string[], env: Record<string, string> = {}, options: { timeoutMs?: number } = {}): Promise<CliRun> {
  const r = await execa("node", [BIN, ...args], {
    cwd,
    reject: false,
    env: { CI: "true", NO_COLOR: "1", ...env },
    input: "",
    timeout: options.timeoutMs ?? 170_000,
  });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh directory holding `premiscale.yaml` with the given text. */
export async function projectDir(configText: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "premiscale-cli-"));
  await writeFile(join(dir, "premiscale.yaml"), configText);
  return dir;
}

/** A one-host, one-group config; `state.path` stays inside the project dir. VMs boot a blank disk, so by default the group does not wait for check-ins. */
export function configText(o: { uri?: string; desired?: number; max?: number; baseImage?: string; group?: string; memoryMiB?: number; checkIn?: boolean } = {}): string {
  return `version: v1alpha1
state:
  path: ./state
hosts:
  - name: local
    uri: ${o.uri ?? "qemu:///system"}
    pool: default
    accelerator: qemu
    callTimeoutSeconds: 20
groups:
  - name: ${o.group ?? "web"}
    min: 0
    max: ${o.max ?? 4}
    desired: ${o.desired ?? 2}
    hosts: [local]
    readiness:
      checkIn: ${o.checkIn ?? false}
    template:
      vcpus: 1
      memoryMiB: ${o.memoryMiB ?? 80}
      disk:
        baseImage: ${o.baseImage ?? "premiscale-blank.qcow2"}
        sizeGiB: 1
`;
}
