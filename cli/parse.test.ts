import { describe, expect, it } from "vitest";
import { parseDuration, parseWholeNumber } from "./parse.js";

describe("parseDuration", () => {
  it("reads ms, s, m, h and plain seconds as milliseconds", () => {
    expect(["250ms", "30s", "1.5s", "5m", "1h", "60", " 2m "].map(parseDuration)).toEqual([250, 30_000, 1_500, 300_000, 3_600_000, 60_000, 120_000]);
  });

  it("refuses anything else, saying how to write one", () => {
    for (const bad of ["", "five", "-1s", "1d", "1 h", "s"]) {
      expect(() => parseDuration(bad)).toThrow(expect.objectContaining({ code: "usage", message: `"${bad}" is not a duration`, hint: "write it like 30s, 5m or 1h" }));
    }
  });
});

describe("parseWholeNumber", () => {
  it("accepts whole numbers from its minimum on", () => {
    expect(["0", "3", "10"].map(parseWholeNumber("--start-size", 0))).toEqual([0, 3, 10]);
    expect(parseWholeNumber("--parallelism", 1)("1")).toBe(1);
  });

  it("refuses fractions, words and numbers below the minimum, naming the option", () => {
    const parallelism = parseWholeNumber("--parallelism", 1);
    for (const bad of ["0", "-2", "1.5", "two", ""]) {
      expect(() => parallelism(bad)).toThrow(expect.objectContaining({ code: "usage", message: `--parallelism must be a whole number ≥ 1, got "${bad}"` }));
    }
  });
});
