/**
 * Shows the apply views on this terminal with fake hosts (no libvirt):
 *   npx tsx cli/tui/testing/apply-demo.ts [--adds 6] [--destroys 2] [--step-ms 400] [--fail web-00000003] [--mode tui|plain|json]
 * The mode defaults to what the CLI would pick here. The plan goes to stdout, progress to stderr, then the summary.
 */
import { parseArgs } from "node:util";
import { applySucceeded, chooseMode, createApplyReporter, isCI, writePlan, type ReporterMode } from "../index.js";
import { demoPlan, runDemoApply } from "./demo-apply.js";

const { values } = parseArgs({
  options: {
    adds: { type: "string", default: "6" },
    destroys: { type: "string", default: "2" },
    "step-ms": { type: "string", default: "400" },
    fail: { type: "string", multiple: true, default: [] },
    mode: { type: "string" },
  },
});
const mode = (values.mode as ReporterMode | undefined) ?? chooseMode({ isTTY: process.stderr.isTTY, ci: isCI(process.env), term: process.env.TERM });
const plan = demoPlan({ adds: Number(values.adds), destroys: Number(values.destroys) });
const color = mode === "tui" && !process.env.NO_COLOR;
writePlan({ mode, sink: process.stdout, plan, color });
const reporter = createApplyReporter({ mode, stream: mode === "json" ? process.stdout : process.stderr, out: process.stdout, plan, color, statePath: "(temporary)" });
const result = await runDemoApply(plan, { stepDelayMs: Number(values["step-ms"]), failNames: values.fail, onEvent: (e) => reporter.onEvent(e) });
await reporter.finish(result);
process.exitCode = applySucceeded(result) ? 0 : 1;
