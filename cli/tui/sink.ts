/** Where text goes: anything with `write`, e.g. process.stdout, a PassThrough in tests, or `outputSink(io.out)`. */
export type TextSink = { write(text: string): unknown };

/** A sink over a line printer such as the CLI's `io.out` / `io.err` (which add the final newline themselves). */
export function outputSink(print: (text: string) => void): TextSink {
  return { write: (text: string) => print(text.replace(/\n$/, "")) };
}
