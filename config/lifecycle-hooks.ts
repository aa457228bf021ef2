/**
 * The rules of `groups[].lifecycleHooks` that the schema cannot say: unique names (and not a built-in hook's),
 * exactly one of command and http, a command whose program exists and may be run, a URL that parses and carries no
 * credentials. The hooks' secrets (`http.secretEnv`) are read only by apply (pipeline/prepare-apply.ts), like
 * user-data's.
 */
import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";
import type { ConfigIssue } from "./errors.js";
import { quote } from "./schema-issues.js";
import type { LifecycleHookConfig } from "./types.js";
import type { Seg, Source } from "./yaml-source.js";
import type { PremiscaleConfig } from "./schema-types.js";

/** A hook as written, after the schema filled in its defaults. */
export type RawLifecycleHook = NonNullable<PremiscaleConfig["groups"]>[number]["lifecycleHooks"][number];

/** Names of built-in hooks (applier/apply-plan.ts `readinessHooks`): a user's hook of that name would pass for one. */
const RESERVED_NAMES = ["check-in"];

/** Where `PATH` is unset, what a login shell on Debian would search. */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A hook program found, or why not (with what to do). */
export type ResolvedProgram = { ok: true; path: string } | { ok: false; message: string; fix: string };

/**
 * Where a hook's program is: a path with a `/` resolves against the config file's directory `dir`, a bare name is
 * looked up on `pathVar` (PATH) like a shell would. Validation and apply both call it, so what `validate` checked is
 * what apply runs.
 */
export function resolveHookProgram(program: string, dir: string, pathVar: string | undefined): ResolvedProgram {
  if (program.includes("/")) {
    const abs = path.resolve(dir, program);
    const why = unrunnable(abs);
    if (!why) return { ok: true, path: abs };
    const rel = path.isAbsolute(program) ? "" : `; a relative path is relative to the config file's directory, ${dir}`;
    if (why === "missing") return { ok: false, message: `hook program ${abs} does not exist`, fix: `check the path${rel}` };
    if (why === "directory") return { ok: false, message: `hook program ${abs} is a directory`, fix: "name the program to run" };
    return { ok: false, message: `hook program ${abs} is not executable`, fix: `chmod +x ${abs}, or run it through its interpreter (command: [bash, ${program}])` };
  }
  const dirs = (pathVar ?? DEFAULT_PATH).split(":").filter(Boolean);
  for (const d of dirs) {
    const candidate = path.resolve(dir, d, program);
    if (!unrunnable(candidate)) return { ok: true, path: candidate };
  }
  return {
    ok: false,
    message: `hook program ${quote(program)} is not on PATH (${dirs.join(":")})`,
    fix: program.length <= 80 ? `install it, or give its path (./${program} is relative to ${dir})` : `install it, or give its path (./name is relative to ${dir})`,
  };
}

function unrunnable(file: string): "missing" | "directory" | "not-executable" | null {
  try {
    if (statSync(file).isDirectory()) return "directory";
  } catch {
    return "missing";
  }
  try {
    accessSync(file, constants.X_OK);
    return null;
  } catch {
    return "not-executable";
  }
}

/**
 * Checks a group's hooks (at `gs`, e.g. `["groups", 0]`) and returns them normalised, with every rule they break.
 * `pathVar` is the PATH bare program names are looked up on.
 */
export function lifecycleHookIssues(
  src: Source,
  gs: Seg[],
  raw: RawLifecycleHook[],
  dir: string,
  pathVar: string | undefined,
): { hooks: LifecycleHookConfig[]; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const hooks: LifecycleHookConfig[] = [];
  const names = raw.map((h) => h.name);
  raw.forEach((h, i) => {
    const at: Seg[] = [...gs, "lifecycleHooks", i];
    const first = names.indexOf(h.name);
    if (first !== i) issues.push(src.issue([...at, "name"], `hook name ${JSON.stringify(h.name)} is already used by lifecycleHooks[${first}] of this group`, "give every hook of a group its own name"));
    if (RESERVED_NAMES.includes(h.name)) {
      issues.push(src.issue([...at, "name"], `hook name ${JSON.stringify(h.name)} is premiscale's own (the wait for the VM's check-in)`, "give the hook another name"));
    }
    const base = { name: h.name, on: h.on, timeoutSeconds: h.timeoutSeconds, defaultResult: h.defaultResult };
    if (h.command && h.http) {
      issues.push(src.issue([...at, "http"], "a hook runs a command or makes an HTTP call, not both", "keep one of command and http", true));
    } else if (h.command) {
      const found = resolveHookProgram(h.command[0]!, dir, pathVar);
      if (!found.ok) issues.push(src.issue([...at, "command", 0], found.message, found.fix));
      hooks.push({ ...base, command: [...h.command] });
    } else if (h.http) {
      let url: URL | null = null;
      try {
        url = new URL(h.http.url);
      } catch {
        issues.push(src.issue([...at, "http", "url"], `${JSON.stringify(h.http.url)} is not a URL`, "write e.g. https://lb.example.net/premiscale-hook"));
      }
      if (url && (url.username || url.password)) {
        issues.push(src.issue([...at, "http", "url"], "the URL carries credentials, and secrets never go in the config", "remove them: requests are signed with the secret in http.secretEnv"));
      }
      hooks.push({ ...base, http: { url: h.http.url, secretEnv: h.http.secretEnv } });
    } else {
      issues.push(src.issue(at, `hook ${JSON.stringify(h.name)} has neither command nor http`, "add command: [program, args…] or http: { url, secretEnv }"));
    }
  });
  return { hooks, issues };
}
