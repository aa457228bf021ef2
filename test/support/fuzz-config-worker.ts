/**
 * The loader under fuzz, in a worker thread so the test can time each case out and terminate a case that hangs
 * (the loader's core is synchronous; only another thread can stop it). See `startLoaderWorker`.
 * Receives a case, writes its bytes to the config file, calls `loadConfig`, and answers with plain data.
 */
import { writeFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { Ajv } from "ajv";
import { parseDocument } from "yaml";
import { ConfigError, PremiscaleError } from "../../config/errors.js";
import { configSchema as schemaFor } from "../../config/schema.js";
import { loadConfig } from "../../pipeline/config.js";
import { configFragments } from "../../providers/index.js";

const configSchema = schemaFor(configFragments);
import type { LoaderRequest, LoaderResult, LoadStage } from "./fuzz-config-loader.js";

const { file } = workerData as { file: string };
const validate = new Ajv({ allErrors: true, useDefaults: true }).compile(configSchema);

/** Files larger than this are judged from the loader's own issues: parsing them twice would double the run. */
const INDEPENDENT_CHECK_BYTES = 64 * 1024;

/**
 * How far the loader's stages get with this text, found independently of the loader: the YAML parser and the
 * schema validator run again on their own (the loader's issues only say which stage refused the file).
 */
function stageOf(text: string, r: Pick<LoaderResult, "outcome" | "issues">): LoadStage {
  if (text.length > INDEPENDENT_CHECK_BYTES) {
    const fix = r.issues?.[0]?.fix;
    return fix === "fix the YAML syntax" ? "yaml" : fix === "use fewer YAML aliases" ? "alias" : r.outcome === "config" ? "rules" : "schema";
  }
  const doc = parseDocument(text);
  if (doc.errors.length) return "yaml";
  let data: unknown;
  try {
    data = doc.toJS();
  } catch {
    return "alias";
  }
  return validate(data) ? "rules" : "schema";
}

parentPort!.on("message", (req: LoaderRequest) => {
  writeFileSync(file, req.bytes);
  const started = performance.now();
  const reply = (r: Omit<LoaderResult, "id" | "ms" | "stage">) => {
    const ms = performance.now() - started;
    parentPort!.postMessage({ id: req.id, ms, stage: stageOf(Buffer.from(req.bytes).toString("utf8"), r), ...r } satisfies LoaderResult);
  };
  loadConfig(file, req.env, { checkEnv: req.checkEnv }).then(
    (config) => {
      let json = true;
      try {
        JSON.stringify(config);
      } catch {
        json = false;
      }
      reply({ outcome: "config", groups: config.groups.length, hosts: config.hosts.length, configFile: config.file, serialisable: json });
    },
    (e: unknown) => {
      const err = e as Error;
      reply({
        outcome: e instanceof ConfigError ? "config-error" : e instanceof PremiscaleError ? "premiscale-error" : "other-error",
        name: err?.name ?? typeof e,
        message: err?.message ?? String(e),
        stack: err?.stack,
        hint: e instanceof PremiscaleError ? e.hint : undefined,
        issues: e instanceof ConfigError ? e.issues.map((i) => ({ ...i })) : undefined,
      });
    },
  );
});
