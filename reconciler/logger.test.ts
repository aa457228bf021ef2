import { readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLogger, logSettings } from "./logger.js";
import { tempDir } from "./testing.js";

describe("logSettings", () => {
  it("takes flags over the environment, and defaults to info on stdout", () => {
    expect(logSettings({}, {})).toEqual({ level: "info", destination: { kind: "stdout" } });
    expect(logSettings({}, { PREMISCALE_LOG_LEVEL: "DEBUG", PREMISCALE_LOG_FILE: "/var/log/p.log" })).toEqual({ level: "debug", destination: { kind: "file", path: "/var/log/p.log" } });
    expect(logSettings({ logLevel: "warn", logFile: "/a.log" }, { PREMISCALE_LOG_LEVEL: "debug", PREMISCALE_LOG_FILE: "/b.log" })).toEqual({ level: "warn", destination: { kind: "file", path: "/a.log" } });
    expect(logSettings({ logStdout: true }, { PREMISCALE_LOG_FILE: "/b.log" }).destination).toEqual({ kind: "stdout" });
  });

  it("names the flag or variable that holds a wrong level, and refuses two destinations", () => {
    expect(() => logSettings({ logLevel: "loud" }, {})).toThrow('--log-level "loud" is not a log level');
    expect(() => logSettings({}, { PREMISCALE_LOG_LEVEL: "loud" })).toThrow('PREMISCALE_LOG_LEVEL "loud" is not a log level');
    expect(() => logSettings({ logFile: "/a", logStdout: true }, {})).toThrow("cannot be used together");
  });
});

describe("createLogger", () => {
  it("writes one JSON object per line with the level as a word, filtered by level", async () => {
    const path = join(await tempDir(), "logs", "premiscale.log");
    const { logger, flush } = createLogger({ level: "info", destination: { kind: "file", path } }, { sync: true, base: { service: "reconcile" } });
    logger.debug({ event: "hidden" }, "not shown");
    logger.info({ event: "plan_ready", add: 2 }, "Plan: 2 to add, 0 to change, 0 to destroy.");
    logger.error({ event: "pass_failed" }, "remote unreachable");
    flush();
    const lines = (await readFile(path, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.level, l.event, l.msg])).toEqual([
      ["info", "plan_ready", "Plan: 2 to add, 0 to change, 0 to destroy."],
      ["error", "pass_failed", "remote unreachable"],
    ]);
    expect(lines[0]).toMatchObject({ pid: process.pid, service: "reconcile", add: 2 });
    expect(new Date(lines[0]!.time as string).toISOString()).toBe(lines[0]!.time);
  });

  it("reopens the file after it was rotated away", async () => {
    const dir = await tempDir();
    const path = join(dir, "p.log");
    const log = createLogger({ level: "info", destination: { kind: "file", path } }, { sync: true });
    log.logger.info("one");
    await rename(path, join(dir, "p.log.1"));
    log.reopen();
    log.logger.info("two");
    log.flush();
    expect(await readFile(join(dir, "p.log.1"), "utf8")).toContain('"msg":"one"');
    expect(await readFile(path, "utf8")).toContain('"msg":"two"');
  });
});
