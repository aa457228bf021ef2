#!/usr/bin/env node
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import { PremiscaleError } from "../config/errors.js";
import { VERSION } from "../config/version.js";
import { processOutput, type Output } from "./output.js";
import { parseDuration, parseWholeNumber } from "./parse.js";
import { registerMetricsCommand } from "./metrics-command.js";
import { registerReconcileCommand, runRemoteForceUnlock } from "./reconcile.js";
import { registerServeCommand } from "./serve.js";
import { registerSimulateCommand } from "./simulate.js";

export { parseDuration } from "./parse.js";


/** The commands behind plan/apply/…, loaded when one runs: `serve` and `metrics` then do not carry the TUI (Ink, React). */
const commands = () => import("./commands.js");

/** Exit codes (documented in the README). */
export const EXIT = { ok: 0, error: 1, changes: 2 } as const;


/** Builds the command line; `io` lets tests run it in-process. Resolves to the exit code. */
export function buildProgram(io: Output, setExit: (code: number) => void): Command {
  const program = new Command("premiscale")
    .description(
      "Autoscaling for self-hosted virtual machines: plans and applies VM counts per group on libvirt hosts, " +
        "with state kept in git. Read the plan before you apply it.",
    )
    .version(VERSION, "--version")
    .option("-c, --config <file>", "config file (env PREMISCALE_CONFIG_PATH)", undefined)
    .option("--validate", "validate the config and exit (same as `premiscale validate`)")
    .showHelpAfterError("(run premiscale --help for usage)")
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, "")), writeErr: (s) => io.err(s.replace(/\n$/, "")) })
    .exitOverride();

  const cfg = () => program.opts<{ config?: string }>().config;

  program.action(async (opts: { validate?: boolean }) => {
    if (opts.validate) setExit(await (await commands()).runValidate(io, cfg(), {}));
    else program.help({ error: false });
  });

  program
    .command("validate")
    .description("Check the config file: syntax, schema, and the rules between fields. Contacts no host unless --check-hosts.")
    .option("--check-hosts", "also connect to every host: pool, base images, pool size for max")
    .option("--json", "print the result as JSON")
    .action(async (opts: { checkHosts?: boolean; json?: boolean }) => setExit(await (await commands()).runValidate(io, cfg(), opts)));

  program
    .command("plan")
    .description(
      "Observe the hosts and show what apply would do: VMs to create and destroy per group, drift first. " +
        "Exit codes: 0 success, 1 error, 2 (with --detailed-exitcode) success with changes.",
    )
    .option("-o, --out <file>", "save the plan to a file for `premiscale apply FILE`")
    .option("--json", "print the plan as JSON on stdout (same as --format json)")
    .addOption(new Option("--format <format>", "text, json, or markdown (for a pull-request comment)").choices(["text", "json", "markdown"]))
    .option("--detailed-exitcode", "exit 2 when the plan has changes")
    .option("--target <group...>", "plan only these groups (others stay as they are)")
    .option("--replace <address...>", "replace these now through the roll-out path: GROUP[NAME] or a whole GROUP (also protected ones)")
    .option("--refresh-only", "only show what state would record to match the hosts (VMs gone, stopped by hand, left by an interrupted apply); no VM is changed")
    .addOption(new Option("--ttl <duration>", "how long a saved plan stays valid").default("1h"))
    .action(async (opts: { out?: string; json?: boolean; format?: string; detailedExitcode?: boolean; target?: string[]; replace?: string[]; refreshOnly?: boolean; ttl: string }) =>
      setExit(await (await commands()).runPlan(io, cfg(), { ...opts, ttlMs: parseDuration(opts.ttl) })),
    );

  program
    .command("apply")
    .argument("[planfile]", "a plan saved by `premiscale plan --out`; applying it counts as approval")
    .description(
      "Make the hosts match the config: plan, show the plan, ask, then create and destroy VMs in parallel and " +
        "commit the new state to git. Without a terminal, --auto-approve is required. " +
        "Exit codes: 0 success, 1 error, 3 partial (every change that could be made was made, but a group stays " +
        "short because no host has room).",
    )
    .option("--auto-approve", "apply without asking")
    .addOption(new Option("--parallelism <n>", "changes in flight at once (each host also has maxParallel)").default(10).argParser(parseWholeNumber("--parallelism", 1)))
    .addOption(new Option("--lock-timeout <duration>", "how long to wait for the state lock").default("0s"))
    .addOption(new Option("--shutdown-timeout <duration>", "how long a VM gets to shut down before it is destroyed").default("60s"))
    .option("--target <group...>", "apply only these groups")
    .option("--replace <address...>", "replace these now through the roll-out path: GROUP[NAME] or a whole GROUP (also protected ones)")
    .option("--refresh-only", "record in state what the hosts have (forget VMs removed by hand, mark stopped ones, adopt leftovers of ours) in one commit, changing no VM")
    .option("--json", "print one JSON event per line on stdout")
    .action(
      async (
        planfile: string | undefined,
        opts: { autoApprove?: boolean; parallelism: number; lockTimeout: string; shutdownTimeout: string; target?: string[]; replace?: string[]; refreshOnly?: boolean; json?: boolean },
      ) =>
        setExit(
          await (await commands()).runApply(io, cfg(), planfile, {
            ...opts,
            lockTimeoutMs: parseDuration(opts.lockTimeout),
            shutdownTimeoutMs: parseDuration(opts.shutdownTimeout),
          }),
        ),
    );

  program
    .command("show")
    .argument("<planfile>", "a saved plan")
    .description("Show a saved plan (after checking it was not altered).")
    .option("--json", "print it as JSON")
    .action(async (planfile: string, opts: { json?: boolean }) => setExit(await (await commands()).runShow(io, planfile, opts)));

  for (const off of [false, true]) {
    program
      .command(off ? "unprotect" : "protect")
      .argument("<address...>", "instances as GROUP[NAME] (see premiscale state list)")
      .description(
        off
          ? "Remove scale-in protection from instances (one state commit)."
          : "Protect instances from scale-in and from replacement for age or an old template; only `apply --replace` replaces them (one state commit).",
      )
      .addOption(new Option("--lock-timeout <duration>", "how long to wait for the state lock").default("0s"))
      .action(async (addresses: string[], opts: { lockTimeout: string }) =>
        setExit(await (await commands()).runProtect(io, cfg(), addresses, { off, lockTimeoutMs: parseDuration(opts.lockTimeout) })),
      );
  }

  const state = program.command("state").description("Inspect the git-tracked state.");
  state
    .command("list")
    .description("List the instances premiscale owns, per group.")
    .option("--json", "print as JSON")
    .action(async (opts: { json?: boolean }) => setExit(await (await commands()).runStateList(io, cfg(), opts)));

  program
    .command("force-unlock")
    .argument("<id>", "the lock ID shown in the lock error")
    .description("Remove a state lock left by a premiscale that died. Only when you are sure it is not running.")
    .option("--force", "do not ask for confirmation")
    .option("--remote", "remove the reconciler's lock ref on the config repository's remote (refs/premiscale/lock) instead")
    .action(async (id: string, opts: { force?: boolean; remote?: boolean }) =>
      setExit(await (opts.remote ? runRemoteForceUnlock(io, cfg(), id, opts) : (await commands()).runForceUnlock(io, cfg(), id, opts))),
    );

  registerReconcileCommand(program, io, setExit, cfg);
  registerServeCommand(program, io, setExit, cfg);
  registerMetricsCommand(program, io, setExit, cfg);
  registerSimulateCommand(program, io, setExit, cfg);
  return program;
}

/**
 * Terraform's single-dash long options (`-replace=web[web-1]`, `-target web`, `-refresh-only`) as ours, so habits
 * carry over. Only these names: anything else with one dash stays a short flag.
 */
export function terraformStyle(argv: readonly string[]): string[] {
  const long = ["replace", "target", "refresh-only", "auto-approve", "detailed-exitcode", "out", "json", "parallelism", "lock-timeout"];
  return argv.map((a) => {
    const m = /^-([a-z][a-z-]+)(=.*)?$/.exec(a);
    return m && long.includes(m[1]!) ? `-${a}` : a;
  });
}

/** Runs the CLI with these arguments; resolves to the exit code. Never throws. */
export async function main(argv: string[], io: Output = processOutput()): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync(terraformStyle(argv), { from: "user" });
    return code;
  } catch (e) {
    return reportError(io, e);
  }
}

/** Prints an error the way users should see it and returns its exit code. */
export function reportError(io: Output, e: unknown): number {
  if (e instanceof CommanderError) {
    return e.exitCode === 0 ? EXIT.ok : EXIT.error;
  }
  if (e instanceof PremiscaleError) {
    io.err(`Error: ${e.message}`);
    if (e.hint && !e.message.includes(e.hint)) io.err(`  ${e.hint}`);
    return EXIT.error;
  }
  const err = e as Error;
  io.err(`Error: internal error: ${err?.message ?? String(e)}`);
  io.err("  This is a bug in premiscale; please report it with the command you ran. Set PREMISCALE_DEBUG=1 for details.");
  if (process.env.PREMISCALE_DEBUG) io.err(String(err?.stack));
  return EXIT.error;
}

function invokedDirectly(): boolean {
  try {
    return Boolean(process.argv[1]) && realpathSync(process.argv[1]!) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

// Run when executed (also through npm's bin symlink), not when imported by tests.
if (invokedDirectly()) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
