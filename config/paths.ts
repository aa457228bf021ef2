import { isAbsolute, relative, sep } from "node:path";

/**
 * Whether `path` is `root` or lies below it. Both should be absolute (or relative to the same directory). A child
 * whose name merely starts with two dots (`..cache`) is inside; only `..` itself or `../…` leads out.
 */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}
