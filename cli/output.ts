import { createInterface } from "node:readline/promises";

/** Where the CLI writes: results to stdout, progress and diagnostics to stderr (so stdout can be piped). */
export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** Colours on stdout are wanted (a terminal, and NO_COLOR unset). */
  color: boolean;
  /** stdin and stderr are a terminal, so a question can be asked. */
  interactive: boolean;
  /** Asks a question on the terminal; resolves to the trimmed answer. */
  ask(question: string): Promise<string>;
}

/** The process's own terminal. */
export function processOutput(): Output {
  return {
    out: (t) => process.stdout.write(t.endsWith("\n") ? t : t + "\n"),
    err: (t) => process.stderr.write(t.endsWith("\n") ? t : t + "\n"),
    color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb",
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY) && !process.env.CI,
    async ask(question) {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return (await rl.question(question)).trim();
      } finally {
        rl.close();
      }
    },
  };
}

/** ANSI styles, or plain text when colour is off. */
export function styles(color: boolean) {
  const wrap = (code: number) => (s: string) => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { bold: wrap(1), red: wrap(31), green: wrap(32), yellow: wrap(33), dim: wrap(2) };
}
