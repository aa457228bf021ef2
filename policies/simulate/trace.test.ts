import { describe, expect, it } from "vitest";
import { TraceError } from "./errors.js";
import { detectFormat, parseTrace, parseTime } from "./trace.js";

/** The TraceError `f` throws (fails the test when it throws nothing or something else). */
function traceError(f: () => unknown): TraceError {
  try {
    f();
  } catch (e) {
    if (e instanceof TraceError) return e;
    throw e;
  }
  throw new Error("expected a TraceError");
}

describe("parseTrace: CSV", () => {
  it("reads a group trace with sizes, skipping comments and blank lines", () => {
    const t = parseTrace("# made by hand\ntime,size,cpu\n2025-06-02T12:00:00Z,3,50\n\n2025-06-02T12:01:00Z,4,\n2025-06-02T12:02:00Z,4,61.5\n", { file: "t.csv" });
    expect(t).toMatchObject({ format: "csv", shape: "group", metrics: ["cpu"], hasSize: true, intervalSeconds: 60 });
    expect(t.rows.map((r) => [r.line, r.size, r.values.cpu])).toEqual([
      [3, 3, 50],
      [5, 4, undefined],
      [6, 4, 61.5],
    ]);
    expect(t.start).toBe(Date.parse("2025-06-02T12:00:00Z"));
    expect(t.end).toBe(Date.parse("2025-06-02T12:02:00Z"));
  });

  it("accepts epoch seconds, offsets, a space instead of T, timestamp as the column name, CRLF and quoted fields", () => {
    const t = parseTrace('TIMESTAMP,member,cpu\r\n1748865600,"web,1",10\r\n2025-06-02 14:00:30+02:00,"web,1",20\r\n', { file: "t.csv" });
    expect(t.shape).toBe("member");
    expect(t.rows.map((r) => [r.at, r.member])).toEqual([
      [Date.parse("2025-06-02T12:00:00Z"), "web,1"],
      [Date.parse("2025-06-02T12:00:30Z"), "web,1"],
    ]);
  });

  it("sorts member rows that interleave by a second, and takes the interval per member", () => {
    const t = parseTrace("time,member,cpu\n100,a,1\n102,b,1\n101,c,1\n115,a,1\n116,c,1\n117,b,1\n", { file: "t.csv" });
    expect(t.rows.map((r) => r.at / 1000)).toEqual([100, 101, 102, 115, 116, 117]);
    expect(t.intervalSeconds).toBe(15);
  });

  it("names the line, row and column of every bad cell", () => {
    const text = ["time,size,cpu", "2025-06-02T12:00:00Z,3,50", "2025-06-02T12:01:00Z,3,abc", "2025-06-02T12:02:00Z,0,50", "2025-06-02T12:03:00Z,3,150", "2025-06-02T12:04:00Z,3,-1"].join("\n");
    const e = traceError(() => parseTrace(text, { file: "bad.csv" }));
    expect(e.code).toBe("trace_invalid");
    expect(e.issues.map((i) => [i.line, i.row, i.field])).toEqual([
      [3, 2, "cpu"],
      [4, 3, "size"],
      [5, 4, "cpu"],
      [6, 5, "cpu"],
    ]);
    expect(e.message.split("\n")[0]).toBe('bad.csv:3 (row 2): cpu: not a number: "abc" (leave the cell empty when there is no value)');
    expect(e.hint).toMatch(/README/);
  });

  it("refuses an unknown metric with a suggestion, and a header without time", () => {
    const e = traceError(() => parseTrace("when,cpuu\n1,2\n", { file: "h.csv" }));
    expect(e.issues.map((i) => i.field)).toEqual(["when", "cpuu", "time", ""]);
    expect(e.message).toContain("h.csv:1: cpuu: unknown column (did you mean cpu?)");
    expect(e.message).toContain("h.csv:1: time: no time column");
  });

  it("refuses times out of order, repeated, without a zone, impossible, or in milliseconds", () => {
    const order = traceError(() => parseTrace("time,cpu\n2025-06-02T12:01:00Z,1\n2025-06-02T12:00:00Z,1\n", { file: "o.csv" }));
    expect(order.issues[0]).toMatchObject({ line: 3, row: 2, field: "time" });
    expect(order.message).toMatch(/before the previous row's 2025-06-02T12:01:00.000Z \(line 2\): sort the trace by time/);
    const twice = traceError(() => parseTrace("time,cpu\n100,1\n100,2\n", { file: "d.csv" }));
    expect(twice.message).toMatch(/d\.csv:3 \(row 2\): time: .* appears twice \(also line 2\)/);
    expect(parseTime("2025-06-02T12:00:00")).toMatch(/has no time zone/);
    expect(parseTime("2025-02-30T12:00:00Z")).toMatch(/not a real time/);
    expect(parseTime("1748865600000")).toMatch(/looks like milliseconds/);
    expect(parseTime("2025-06-02T14:00:00+0200")).toBe(Date.parse("2025-06-02T12:00:00Z"));
  });

  it("refuses rows with the wrong number of fields, empty traces and a single time", () => {
    expect(traceError(() => parseTrace("time,cpu\n100,1,2\n200,1\n", { file: "f.csv" })).message).toBe("f.csv:2 (row 1): has 3 fields, the header has 2");
    expect(traceError(() => parseTrace("", { file: "e.csv" })).message).toMatch(/^e\.csv: is empty/);
    expect(traceError(() => parseTrace("time,cpu\n", { file: "e.csv" })).message).toMatch(/^e\.csv: has no rows/);
    expect(traceError(() => parseTrace("time,cpu\n100,1\n", { file: "o.csv" })).message).toMatch(/has only one time/);
  });

  it("refuses size together with member, and a member row without a member", () => {
    expect(traceError(() => parseTrace("time,size,member,cpu\n1,2,a,3\n", { file: "s.csv" })).issues[0]?.field).toBe("size");
    expect(traceError(() => parseTrace("time,member,cpu\n1,,3\n2,a,3\n", { file: "m.csv" })).issues[0]).toMatchObject({ line: 2, field: "member" });
  });
});

describe("parseTrace: JSON lines", () => {
  it("reads objects with null for missing values, and takes the metrics from every line", () => {
    const t = parseTrace('{"time": "2025-06-02T12:00:00Z", "size": 2, "cpu": 40}\n{"time": "2025-06-02T12:01:00Z", "size": 2, "cpu": null, "memory": 50}\n', { file: "t.jsonl" });
    expect(t).toMatchObject({ format: "jsonl", shape: "group", metrics: ["cpu", "memory"] });
    expect(t.rows.map((r) => r.values)).toEqual([{ cpu: 40 }, { memory: 50 }]);
  });

  it("names the line and field of bad JSON, strings where numbers belong and unknown fields", () => {
    const text = ['{"time": 100, "cpu": 1}', "{not json", '{"time": 200, "cpu": "5"}', '{"time": 300, "cpu": 1, "disk": 4}', "[1]"].join("\n");
    const e = traceError(() => parseTrace(text, { file: "bad.jsonl" }));
    expect(e.issues.map((i) => [i.line, i.row, i.field])).toEqual([
      [2, 2, ""],
      [5, 5, ""],
      [4, 4, "disk"],
    ]);
    const types = traceError(() => parseTrace('{"time": 100, "cpu": 1}\n{"time": 200, "cpu": "5"}\n', { file: "b.jsonl" }));
    expect(types.message).toBe('b.jsonl:2 (row 2): cpu: must be a number or null, got "5"');
  });

  it("detects the format from the name, else from the first record", () => {
    expect(detectFormat("time,cpu", { file: "x.ndjson" })).toBe("jsonl");
    expect(detectFormat('# c\n{"time": 1}', {})).toBe("jsonl");
    expect(detectFormat("time,cpu", {})).toBe("csv");
    expect(detectFormat("{", { file: "x.csv" })).toBe("csv");
  });
});
