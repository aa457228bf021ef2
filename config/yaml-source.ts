/**
 * The parsed YAML of a config file with its line table: turns a path into the data (`groups[0].max`) into the
 * line:column of the field, so every issue found at any stage can point at what the user wrote.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from "yaml";
import type { ConfigIssue } from "./errors.js";

/** One step of a path into the config: a field name or a list index. */
export type Seg = string | number;

/** A 1-based line and column. */
export interface Pos {
  line: number;
  column: number;
}

/** Dot path as shown to users: `groups[0].template.memoryMiB`. */
export function fmtPath(segs: readonly Seg[]): string {
  return segs.reduce<string>((acc, s) => (typeof s === "number" ? `${acc}[${s}]` : acc ? `${acc}.${s}` : s), "");
}

/** The parsed YAML with its line table: turns data paths into line:column. */
export class Source {
  readonly lines: string[];
  constructor(
    readonly file: string,
    readonly text: string,
    readonly doc: Document,
    readonly lc: LineCounter,
  ) {
    this.lines = text.split(/\r?\n/);
  }

  /** The node at `segs`, or the nearest ancestor that exists (defaults have no node); `key` prefers the field's key. */
  node(segs: readonly Seg[], key = false): Node | undefined {
    let node: unknown = this.doc.contents;
    let found: Node | undefined = node as Node | undefined;
    for (const [i, seg] of segs.entries()) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        if ((key && i === segs.length - 1) || !pair.value) return pair.key as Node;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === "number" && node.items[seg]) {
        node = node.items[seg];
      } else break;
      found = node as Node;
    }
    return found;
  }

  pos(offset: number): Pos {
    const { line, col } = this.lc.linePos(offset);
    return { line, column: col };
  }

  at(segs: readonly Seg[], key = false): Pos {
    const range = this.node(segs, key)?.range;
    return range ? this.pos(range[0]) : { line: 1, column: 1 };
  }

  issue(segs: readonly Seg[], message: string, fix?: string, key = false): ConfigIssue {
    return { file: this.file, ...this.at(segs, key), path: fmtPath(segs), message, ...(fix ? { fix } : {}) };
  }
}
