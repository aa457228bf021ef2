import { describe, expect, it } from "vitest";
import { isInside } from "./paths.js";

describe("isInside", () => {
  it("counts the root itself and anything below it as inside", () => {
    expect(isInside("/srv/repo", "/srv/repo")).toBe(true);
    expect(isInside("/srv/repo", "/srv/repo/state")).toBe(true);
    expect(isInside("/srv/repo/", "/srv/repo/a/b/../c")).toBe(true);
  });

  it("counts a folder whose name starts with two dots as inside: only `..` leads out", () => {
    expect(isInside("/srv/repo", "/srv/repo/..cache")).toBe(true);
    expect(isInside("/srv/repo", "/srv/repo/...")).toBe(true);
    expect(isInside("/srv/repo", "/srv/repo/..cache/work")).toBe(true);
  });

  it("counts the parent, siblings and unrelated paths as outside", () => {
    expect(isInside("/srv/repo", "/srv")).toBe(false);
    expect(isInside("/srv/repo", "/srv/repo-work")).toBe(false);
    expect(isInside("/srv/repo", "/srv/repo/../other")).toBe(false);
    expect(isInside("/srv/repo", "/var/lib/premiscale")).toBe(false);
  });
});
