/**
 * Runs `loadConfig` on fuzz cases in a worker thread (fuzz-config-worker.ts) with a time limit per case: a case
 * that takes longer is a hang, the worker is terminated (which stops even a synchronous loop) and a new one started.
 */
import { Worker } from "node:worker_threads";
import type { ConfigIssue } from "../../config/errors.js";

/** How far the loader's stages get, judged by the worker independently of the loader. */
export type LoadStage = "yaml" | "alias" | "schema" | "rules";

/** One case for the worker. */
export interface LoaderRequest {
  id: number;
  bytes: Uint8Array;
  env: Record<string, string>;
  checkEnv: boolean;
}

/** What the loader did with a case, as plain data. */
export interface LoaderResult {
  id: number;
  ms: number;
  stage: LoadStage;
  outcome: "config" | "config-error" | "premiscale-error" | "other-error";
  // outcome "config":
  groups?: number;
  hosts?: number;
  configFile?: string;
  serialisable?: boolean;
  // the others:
  name?: string;
  message?: string;
  stack?: string | undefined;
  hint?: string | undefined;
  issues?: ConfigIssue[] | undefined;
}

/** A case the worker did not answer in time. */
export interface LoaderHang {
  id: number;
  hang: true;
  ms: number;
}

/** The worker and its per-case time limit. */
export interface LoaderWorker {
  run(req: LoaderRequest, timeoutMs: number): Promise<LoaderResult | LoaderHang>;
  close(): Promise<void>;
}

const WORKER = new URL("./fuzz-config-worker.ts", import.meta.url).href;

/** Process warnings the loader caused (yaml warns through `process.emitWarning`), by their first line. */
export const workerWarnings = new Map<string, number>();

function spawn(file: string): Worker {
  // Worker threads do not inherit the TypeScript loader the test runs under; tsx registers one for this thread.
  const boot = `import { register } from "tsx/esm/api"; register(); await import(${JSON.stringify(WORKER)});`;
  const worker = new Worker(boot, { eval: true, workerData: { file }, stderr: true });
  // Thousands of identical warnings would bury the test's report: counted here, listed in the summary.
  worker.stderr.setEncoding("utf8").on("data", (text: string) => {
    for (const line of text.split("\n")) {
      const m = /Warning: (.{0,80})/.exec(line);
      if (m) workerWarnings.set(m[1]!, (workerWarnings.get(m[1]!) ?? 0) + 1);
    }
  });
  return worker;
}

/** Starts the worker; `file` is the config file every case is written to. */
export function startLoaderWorker(file: string): LoaderWorker {
  let worker = spawn(file);
  return {
    run(req, timeoutMs) {
      const started = performance.now();
      return new Promise((resolve, reject) => {
        const current = worker;
        const done = () => {
          clearTimeout(timer);
          current.off("message", onMessage).off("error", onError);
        };
        const onMessage = (r: LoaderResult) => {
          if (r.id !== req.id) return;
          done();
          resolve(r);
        };
        const onError = (e: Error) => {
          done();
          reject(e);
        };
        // The first case also pays for starting the worker and compiling the loader; a hang is judged from the
        // worker's own start of the case when it answers, so only a case that never answers is cut off here.
        const timer = setTimeout(() => {
          done();
          void current.terminate();
          worker = spawn(file);
          resolve({ id: req.id, hang: true, ms: performance.now() - started });
        }, timeoutMs);
        current.on("message", onMessage).on("error", onError);
        current.postMessage(req);
      });
    },
    async close() {
      await worker.terminate();
    },
  };
}
