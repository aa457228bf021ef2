import { describe, expect, it } from "vitest";
import { chooseMode, isCI } from "./mode.js";

describe("chooseMode", () => {
  it("uses the live view only on a terminal outside CI", () => {
    expect(chooseMode({ isTTY: true, ci: false })).toBe("tui");
    expect(chooseMode({ isTTY: false, ci: false })).toBe("plain");
    expect(chooseMode({ isTTY: undefined, ci: false })).toBe("plain");
    expect(chooseMode({ isTTY: true, ci: true })).toBe("plain");
    expect(chooseMode({ isTTY: true, ci: false, term: "dumb" })).toBe("plain");
  });

  it("gives --json precedence over everything", () => {
    expect(chooseMode({ json: true, isTTY: true, ci: false })).toBe("json");
    expect(chooseMode({ json: true, isTTY: false, ci: true })).toBe("json");
  });
});

describe("isCI", () => {
  it("reads CI and CONTINUOUS_INTEGRATION as Ink does, ignoring 0 and false", () => {
    expect(isCI({})).toBe(false);
    expect(isCI({ CI: "true" })).toBe(true);
    expect(isCI({ CI: "1" })).toBe(true);
    expect(isCI({ CI: "" })).toBe(true);
    expect(isCI({ CI: "false" })).toBe(false);
    expect(isCI({ CI: "0" })).toBe(false);
    expect(isCI({ CONTINUOUS_INTEGRATION: "yes" })).toBe(true);
  });
});
