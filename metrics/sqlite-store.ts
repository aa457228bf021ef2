import Database from "better-sqlite3";
import type { CounterSink } from "./collector.js";
import { countersWentDown, samplesFromCounters, type CounterRow } from "./rates.js";
import { MetricsError, type DomainCounters, type GroupMetrics, type GroupMetricsQuery, type MetricsSource } from "./types.js";

/** Options of the embedded store. Every duration has a default; see the README's table. */
export interface SqliteStoreOptions {
  /** The database file (created if missing), or `:memory:`. */
  path: string;
  /** Raw rows (one per domain and collection) are dropped after this. @default 86400 (24 h) */
  rawRetentionSeconds?: number;
  /** Length of a roll-up bucket. @default 60 */
  rollupSeconds?: number;
  /** Roll-up rows are dropped after this. @default 2592000 (30 days) */
  rollupRetentionSeconds?: number;
  /** Windows longer than this read roll-ups (and raw rows only after the newest roll-up). @default 3600 */
  rawQueryMaxSeconds?: number;
  /** Two readings further apart than this give no rate. @default 300 */
  maxGapSeconds?: number;
}

/** The store's defaults, in seconds. */
export const SQLITE_DEFAULTS = {
  rawRetentionSeconds: 24 * 3600,
  rollupSeconds: 60,
  rollupRetentionSeconds: 30 * 24 * 3600,
  rawQueryMaxSeconds: 3600,
  maxGapSeconds: 300,
} as const;

const COLUMNS = [
  ["cpu_ns", "cpuTimeNs"],
  ["vcpus", "vcpus"],
  ["rd_bytes", "blockReadBytes"],
  ["wr_bytes", "blockWriteBytes"],
  ["rd_reqs", "blockReadReqs"],
  ["wr_reqs", "blockWriteReqs"],
  ["rx_bytes", "netRxBytes"],
  ["tx_bytes", "netTxBytes"],
  ["mem_current", "balloonCurrentKiB"],
  ["mem_available", "balloonAvailableKiB"],
  ["mem_unused", "balloonUnusedKiB"],
  ["mem_usable", "balloonUsableKiB"],
  ["mem_rss", "balloonRssKiB"],
] as const satisfies readonly (readonly [string, keyof DomainCounters])[];

/** Guest-reported memory figures: averaged over a roll-up bucket (the counters keep their last value). */
const GAUGES = new Set<keyof DomainCounters>(["balloonCurrentKiB", "balloonAvailableKiB", "balloonUnusedKiB", "balloonUsableKiB", "balloonRssKiB"]);

type DbRow = { name: string; at: number; reset?: number } & Record<string, number | null>;

const columnList = COLUMNS.map(([c]) => c).join(", ");
const table = (name: string, extra: string) =>
  `CREATE TABLE IF NOT EXISTS ${name} (name TEXT NOT NULL, at INTEGER NOT NULL, ${COLUMNS.map(([c]) => `${c} REAL`).join(", ")}${extra}, PRIMARY KEY (name, at)) WITHOUT ROWID`;

/**
 * The embedded metrics store: SQLite through better-sqlite3 (synchronous, WAL). Holds raw counters, rolls them up
 * into per-minute rows, forgets both after their retention, and answers window queries with rates computed from
 * consecutive counters at query time.
 *
 * Roll-ups and retention run inside `ingest` whenever the newest reading enters a new bucket (the readings' own
 * time is the clock), or when `compact(now)` is called.
 */
export class SqliteStore implements MetricsSource, CounterSink {
  private readonly db: Database.Database;
  private readonly o: Required<Omit<SqliteStoreOptions, "path">>;
  private readonly insertRaw: Database.Statement;
  private readonly insertRollup: Database.Statement;
  private readonly selectRaw: Database.Statement;
  private readonly selectRollup: Database.Statement;
  private readonly insertMany: (rows: readonly DomainCounters[]) => void;
  private lastBucket = -1;

  constructor(private readonly options: SqliteStoreOptions) {
    this.o = { ...SQLITE_DEFAULTS, ...stripUndefined(options) };
    for (const [k, v] of Object.entries(this.o)) {
      if (k !== "path" && !(typeof v === "number" && v > 0)) throw new RangeError(`${k} must be a number above 0, got ${String(v)}`);
    }
    try {
      this.db = new Database(options.path);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = NORMAL");
      this.db.exec(table("raw", ""));
      this.db.exec(table("rollup", ", reset INTEGER NOT NULL DEFAULT 0"));
      // Roll-ups and retention select by time alone; without these they would scan every row each minute.
      this.db.exec("CREATE INDEX IF NOT EXISTS raw_at ON raw (at)");
      this.db.exec("CREATE INDEX IF NOT EXISTS rollup_at ON rollup (at)");
      this.db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)");
    } catch (e) {
      throw this.error(`cannot open the database: ${(e as Error).message}`, "check that the directory exists and is writable", e);
    }
    const params = COLUMNS.map(() => "?").join(", ");
    this.insertRaw = this.db.prepare(`INSERT OR REPLACE INTO raw (name, at, ${columnList}) VALUES (?, ?, ${params})`);
    this.insertRollup = this.db.prepare(`INSERT OR REPLACE INTO rollup (name, at, ${columnList}, reset) VALUES (?, ?, ${params}, ?)`);
    this.selectRaw = this.db.prepare(`SELECT name, at, ${columnList} FROM raw WHERE name = ? AND at > ? AND at <= ? ORDER BY at`);
    this.selectRollup = this.db.prepare(`SELECT name, at, ${columnList}, reset FROM rollup WHERE name = ? AND at > ? AND at < ? ORDER BY at`);
    this.insertMany = this.db.transaction((rows: readonly DomainCounters[]) => {
      for (const c of rows) this.insertRaw.run(c.name, c.at, ...COLUMNS.map(([, f]) => c[f] ?? null));
    });
  }

  /** Adds raw counters (one transaction), then rolls up and forgets when a new bucket began. */
  ingest(counters: readonly DomainCounters[]): void {
    if (counters.length === 0) return;
    this.insertMany(counters);
    let newest = -Infinity;
    for (const c of counters) if (c.at > newest) newest = c.at;
    const bucket = Math.floor(newest / (this.o.rollupSeconds * 1000));
    if (bucket > this.lastBucket) {
      this.lastBucket = bucket;
      this.compact(new Date(newest));
    }
  }

  /**
   * Rolls every complete bucket not yet rolled up into one row per domain (last counters; mean memory figures; a
   * reset flag when a counter went down inside), then drops raw and roll-up rows past their retention.
   */
  compact(now: Date): void {
    const size = this.o.rollupSeconds * 1000;
    const target = Math.floor(now.getTime() / size) * size;
    const tx = this.db.transaction(() => {
      let from = this.rolledUntil();
      if (from === undefined) {
        const oldest = (this.db.prepare("SELECT min(at) AS at FROM raw").get() as { at: number | null }).at;
        if (oldest === null) return;
        from = Math.floor(oldest / size) * size;
      }
      from = Math.max(from, target - this.o.rawRetentionSeconds * 1000);
      // An hour of buckets per pass keeps memory bounded after a long pause.
      for (let start = from; start < target; start += 60 * size) {
        const end = Math.min(target, start + 60 * size);
        this.rollUp(start, end, size);
      }
      this.db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('rolled_until', ?)").run(Math.max(target, from));
      this.db.prepare("DELETE FROM raw WHERE at < ?").run(now.getTime() - this.o.rawRetentionSeconds * 1000);
      this.db.prepare("DELETE FROM rollup WHERE at < ?").run(now.getTime() - this.o.rollupRetentionSeconds * 1000);
    });
    tx();
  }

  private rollUp(start: number, end: number, size: number): void {
    // One bucket before `start` gives each domain's first row its predecessor (to see a restart across the edge).
    // INDEXED BY: ordered by the primary key, SQLite would rather scan the whole table than sort these rows.
    const rows = this.db
      .prepare(`SELECT name, at, ${columnList} FROM raw INDEXED BY raw_at WHERE at >= ? AND at < ? ORDER BY name, at`)
      .all(start - size, end) as DbRow[];
    let prev: CounterRow | undefined;
    let bucketRows: CounterRow[] = [];
    let reset = false;
    const flush = () => {
      if (bucketRows.length === 0) return;
      const last = bucketRows[bucketRows.length - 1]!;
      const values = COLUMNS.map(([, f]) => {
        if (!GAUGES.has(f)) return last[f] ?? null;
        const xs = bucketRows.map((r) => r[f]).filter((v): v is number => v !== undefined);
        return xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
      });
      this.insertRollup.run(last.name, last.at, ...values, reset ? 1 : 0);
      bucketRows = [];
      reset = false;
    };
    for (const db of rows) {
      const row = fromDb(db);
      if (prev && prev.name !== row.name) {
        flush();
        prev = undefined;
      }
      if (row.at >= start) {
        if (bucketRows.length > 0 && Math.floor(row.at / size) !== Math.floor(bucketRows[0]!.at / size)) flush();
        if (prev && countersWentDown(prev, row)) reset = true;
        bucketRows.push(row);
      }
      prev = row;
    }
    flush();
  }

  private rolledUntil(): number | undefined {
    const r = this.db.prepare("SELECT value FROM meta WHERE key = 'rolled_until'").get() as { value: number } | undefined;
    return r?.value;
  }

  async groupMetrics(q: GroupMetricsQuery): Promise<GroupMetrics> {
    const toMs = q.now.getTime();
    const fromMs = toMs - q.windowSeconds * 1000;
    const maxGapMs = this.o.maxGapSeconds * 1000;
    const lookback = fromMs - maxGapMs;
    try {
      const rolled = this.rolledUntil() ?? -Infinity;
      const rawCovers = q.windowSeconds <= this.o.rawQueryMaxSeconds && fromMs >= toMs - this.o.rawRetentionSeconds * 1000;
      const out: GroupMetrics = { members: {} };
      for (const name of q.members) {
        let rows: DbRow[];
        if (rawCovers || rolled <= lookback) {
          rows = this.selectRaw.all(name, lookback, toMs) as DbRow[];
        } else {
          // Roll-ups up to where they end, raw rows after: a roll-up row ends on the same reading as the raw rows.
          rows = [
            ...(this.selectRollup.all(name, lookback, rolled) as DbRow[]),
            ...(this.selectRaw.all(name, Math.max(lookback, rolled - 1), toMs) as DbRow[]),
          ];
          rows = dedupe(rows);
        }
        out.members[name] = samplesFromCounters(rows.map(fromDb), { fromMs, toMs, maxGapMs, metrics: q.metrics });
      }
      return out;
    } catch (e) {
      throw this.error(`query failed: ${(e as Error).message}`, undefined, e);
    }
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private error(message: string, hint?: string, cause?: unknown): MetricsError {
    return new MetricsError(this.options.path, message, hint, { cause, code: "metrics_store_failed" });
  }
}

function fromDb(r: DbRow): CounterRow {
  const c: CounterRow = { name: r.name, at: r.at };
  for (const [col, field] of COLUMNS) {
    const v = r[col];
    if (v !== null && v !== undefined) c[field] = v;
  }
  if (r.reset) c.reset = true;
  return c;
}

/** Rows sorted by time with one row per time (a roll-up row and the raw row it ended on share it). */
function dedupe(rows: DbRow[]): DbRow[] {
  const out: DbRow[] = [];
  for (const r of rows.sort((a, b) => a.at - b.at)) if (out.length === 0 || out[out.length - 1]!.at !== r.at) out.push(r);
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
