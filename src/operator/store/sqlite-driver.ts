/**
 * operator/store/sqlite-driver: `SqlDriver` over better-sqlite3 12 (13 needs Node 22). imports
 * store/driver and the better-sqlite3 package.
 *
 * One file `operator.db` in WAL mode, synchronous=NORMAL, foreign keys on, busy_timeout 5 s.
 * Two connections: ONE writer (every write and every transaction, serialised by an async mutex, so
 * a transaction may await between statements without another write slipping in) and one reader for
 * reads outside transactions (WAL lets it read the last commit while the writer works). Another
 * writer on the file (the CLI's `token`, a second `serve`, a second store in this process) makes
 * BEGIN IMMEDIATE fail with SQLITE_BUSY: it is retried asynchronously (the writer has no
 * busy_timeout: a synchronous busy wait would block this event loop, and with it a transaction of
 * this process that the other one waits for) for up to `busyTimeoutMs`.
 * Blobs come back as fresh `Uint8Array`s (never a Buffer view), bound as Buffers.
 * WAL checkpoints run in a worker thread (store/sqlite-checkpointer.ts) after every few commits,
 * not inside a COMMIT on the event loop; the writer's automatic checkpoint is only a backstop.
 */
import Database from 'better-sqlite3';
import type { Dialect, SqlConn, SqlDriver, SqlRow, SqlValue } from './driver.js';
import { BACKSTOP_AUTOCHECKPOINT_PAGES, SQLITE_DEFAULT_AUTOCHECKPOINT_PAGES, WalCheckpointer } from './sqlite-checkpointer.js';

export const SQLITE_DIALECT: Dialect = {
  name: 'sqlite',
  types: { bytes: 'BLOB', int64: 'INTEGER', json: 'TEXT', text: 'TEXT', serialPk: 'INTEGER PRIMARY KEY' },
  migrationLock: null,
};

type Db = Database.Database;
type Stmt = Database.Statement;

function bind(params: readonly SqlValue[] | undefined): unknown[] {
  if (!params) return [];
  return params.map((v) => (v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
}

function convert(row: Record<string, unknown> | undefined): SqlRow | undefined {
  if (!row) return undefined;
  const out: Record<string, SqlValue> = {};
  for (const [k, v] of Object.entries(row)) {
    if (v instanceof Uint8Array) out[k] = new Uint8Array(v); // a fresh copy, plain Uint8Array
    else if (typeof v === 'bigint') out[k] = Number(v);
    else out[k] = v as SqlValue;
  }
  return out;
}

class Conn implements SqlConn {
  private readonly cache = new Map<string, Stmt>();
  constructor(readonly db: Db) {}
  private stmt(sql: string): Stmt {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      if (this.cache.size > 500) this.cache.clear();
      this.cache.set(sql, s);
    }
    return s;
  }
  allSync(sql: string, params?: readonly SqlValue[]): SqlRow[] {
    return (this.stmt(sql).all(...bind(params)) as Record<string, unknown>[]).map((r) => convert(r)!);
  }
  getSync(sql: string, params?: readonly SqlValue[]): SqlRow | undefined {
    return convert(this.stmt(sql).get(...bind(params)) as Record<string, unknown> | undefined);
  }
  runSync(sql: string, params?: readonly SqlValue[]): { changes: number } {
    return { changes: this.stmt(sql).run(...bind(params)).changes };
  }
  async all(sql: string, params?: readonly SqlValue[]): Promise<SqlRow[]> {
    return this.allSync(sql, params);
  }
  async get(sql: string, params?: readonly SqlValue[]): Promise<SqlRow | undefined> {
    return this.getSync(sql, params);
  }
  async run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    return this.runSync(sql, params);
  }
}

/** An async mutex: one holder at a time, FIFO. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  async lock<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

export interface SqliteOptions {
  readonly busyTimeoutMs?: number;
  /** WAL checkpoints in a worker thread (default true; false: inside COMMITs, SQLite's default). */
  readonly backgroundCheckpoint?: boolean;
  /** Commits between two background checkpoints (default 32). */
  readonly checkpointEveryCommits?: number;
}

export class SqliteDriver implements SqlDriver {
  readonly dialect = SQLITE_DIALECT;
  private readonly writer: Conn;
  private readonly reader: Conn;
  private readonly mutex = new Mutex();
  private readonly busyMs: number;
  private closed = false;
  /** The background WAL checkpointer (null: checkpoints inside COMMITs). */
  readonly checkpointer: WalCheckpointer | null;

  /** BEGIN IMMEDIATE, retried without blocking the event loop while another connection writes. */
  private async begin(): Promise<void> {
    const deadline = Date.now() + this.busyMs;
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      try {
        this.writer.db.exec('BEGIN IMMEDIATE');
        return;
      } catch (e) {
        if ((e as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  constructor(readonly path: string, opts: SqliteOptions = {}) {
    const busy = opts.busyTimeoutMs ?? 5000;
    this.busyMs = busy;
    const w = new Database(path, { timeout: busy });
    w.pragma('journal_mode = WAL');
    w.pragma('synchronous = NORMAL');
    w.pragma('foreign_keys = ON');
    w.pragma('busy_timeout = 0');
    this.writer = new Conn(w);
    if (opts.backgroundCheckpoint ?? true) {
      w.pragma(`wal_autocheckpoint = ${BACKSTOP_AUTOCHECKPOINT_PAGES}`);
      const restore = (): void => {
        if (!this.closed) w.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT_PAGES}`);
      };
      this.checkpointer = new WalCheckpointer(path, restore, opts.checkpointEveryCommits);
    } else {
      this.checkpointer = null;
    }
    const r = new Database(path, { readonly: true, fileMustExist: true });
    r.pragma(`busy_timeout = ${busy}`);
    r.pragma('foreign_keys = ON');
    this.reader = new Conn(r);
  }

  async all(sql: string, params?: readonly SqlValue[]): Promise<SqlRow[]> {
    return this.reader.allSync(sql, params);
  }
  async get(sql: string, params?: readonly SqlValue[]): Promise<SqlRow | undefined> {
    return this.reader.getSync(sql, params);
  }
  async run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    return this.tx(async (c) => c.run(sql, params));
  }

  async tx<T>(fn: (c: SqlConn) => Promise<T>): Promise<T> {
    return this.mutex.lock(async () => {
      await this.begin();
      try {
        const out = await fn(this.writer);
        this.writer.db.exec('COMMIT');
        this.checkpointer?.committed();
        return out;
      } catch (e) {
        if (this.writer.db.inTransaction) this.writer.db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  async execScript(sql: string): Promise<void> {
    await this.mutex.lock(async () => {
      await this.begin();
      try {
        this.writer.db.exec(sql);
        this.writer.db.exec('COMMIT');
        this.checkpointer?.committed();
      } catch (e) {
        if (this.writer.db.inTransaction) this.writer.db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.checkpointer?.close();
    await this.mutex.lock(async () => {
      this.reader.db.close();
      this.writer.db.close();
    });
  }
}
