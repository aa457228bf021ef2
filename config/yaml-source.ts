/**
 * The parsed YAML of a config file with its line table: turns a path into the data (`groups[0].max`) into the
 * line:column of the field, so every issue found at any stage can point at what the user wrote.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type Pair, type YAMLMap } from "yaml";
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

  /**
   * Each mapping's pairs by key, built on first use: a file can hold one mapping with 100,000 keys and an issue for
   * each (unknown fields), and a scan per issue made that quadratic (minutes).
   */
  private readonly keyIndex = new WeakMap<object, Map<string, Pair>>();

  private pairOf(map: YAMLMap, seg: Seg): Pair | undefined {
    let index = this.keyIndex.get(map);
    if (!index) {
      index = new Map();
      // The first pair of a repeated key wins, as the scan did.
      for (const p of map.items) if (isScalar(p.key) && !index.has(String(p.key.value))) index.set(String(p.key.value), p as Pair);
      this.keyIndex.set(map, index);
    }
    return index.get(String(seg));
  }

  /** The node at `segs`, or the nearest ancestor that exists (defaults have no node); `key` prefers the field's key. */
  node(segs: readonly Seg[], key = false): Node | undefined {
    let node: unknown = this.doc.contents;
    let found: Node | undefined = node as Node | undefined;
    for (const [i, seg] of segs.entries()) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = this.pairOf(node, seg);
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

/** yaml's message for a repeated key, which `duplicateKeys` reports in its place. */
export const DUPLICATE_KEY = "Map keys must be unique";

/**
 * Offsets of keys that repeat an earlier scalar key of the same mapping, by yaml's own rule (equal scalar values).
 * Documents are parsed with `uniqueKeys: false` and checked here instead, because yaml compares every key with all
 * those before it: 4 s for a mapping of 20,000 keys, minutes for 100,000. A loop, not a recursion, and aliases are
 * not followed, so neither deep nesting nor alias bombs reach it.
 */
export function duplicateKeys(doc: Document): number[] {
  const found: number[] = [];
  const stack: unknown[] = [doc.contents];
  while (stack.length) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Set<unknown>();
      for (const { key, value } of node.items) {
        // NaN is never equal to itself in yaml's check; a Set would call two of them the same.
        if (isScalar(key) && !Number.isNaN(key.value)) {
          if (seen.has(key.value) && key.range) found.push(key.range[0]);
          seen.add(key.value);
        }
        stack.push(key, value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return found;
}
