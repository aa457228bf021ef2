#!/usr/bin/env node
// A stand-in for `virsh` in batch mode, for session tests: echoes each input line after a `virsh # ` prompt, then
// runs its `;`-separated commands. `echo X` prints X (no newline), `echo --err X` prints `error: X` on stderr,
// `hang` never answers, `hang-with-child FILE` starts a child (as virsh starts ssh), writes its pid to FILE and never
// answers, `die` exits, `fail` prints an error, anything else prints `out:<command>`.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";

const rl = createInterface({ input: process.stdin });
process.stdout.write("virsh # ");
let hung = false;
rl.on("line", (line) => {
  if (hung) return;
  process.stdout.write(`${line}\n`);
  for (const raw of line.split(" ; ")) {
    const cmd = raw.trim();
    const echo = /^echo (--err )?"(.*)"$/.exec(cmd);
    if (echo) {
      if (echo[1]) process.stderr.write(`error: ${echo[2]}\n`);
      else process.stdout.write(echo[2]);
    } else if (cmd === "hang") {
      hung = true;
      return;
    } else if (cmd.startsWith("hang-with-child ")) {
      const child = spawn("sleep", ["300"], { stdio: "ignore" });
      writeFileSync(cmd.slice("hang-with-child ".length), String(child.pid));
      hung = true;
      return;
    } else if (cmd === "die") {
      process.stderr.write("error: the connection went away\n");
      process.exit(1);
    } else if (cmd === "fail") {
      process.stderr.write("error: failed to get domain 'x'\n");
    } else {
      process.stdout.write(`out:${cmd}\n`);
    }
  }
  process.stdout.write("virsh # ");
});
