/**
 * operator/store/driver: the small SQL driver interface the repository (`SqlStore`) is written
 * against, so that SQLite (better-sqlite3, `sqlite-driver.ts`) and later PostgreSQL (`pg`) differ
 * only in a driver and a dialect. imports nothing.
 *
 * SQL given to a driver uses `?` placeholders in order; a PostgreSQL driver rewrites them to `$n`.
 * Values are strings, numbers (int64 as JS numbers: epoch ms, counters), `Uint8Array` or null.
 */
export type SqlValue = string | number | Uint8Array | null;
export type SqlRow = { readonly [column: string]: SqlValue };
/** PostgreSQL only: a parameter bound as an array (for `unnest($n::type[])`, `= ANY($n)`). */
export type SqlArrayValue = readonly (string | number | boolean | Uint8Array | null)[];
export type SqlParam = SqlValue | SqlArrayValue;

/** Per-statement hints a driver may ignore (SQLite caches its prepared statements by text anyway). */
export interface SqlQueryOptions {
  /** PostgreSQL: a named prepared statement (parsed and planned once per connection); the same
   *  name must always carry the same SQL text. Off when the driver was opened with `prepare: false`. */
  readonly name?: string;
}

export interface SqlConn {
  all(sql: string, params?: readonly SqlParam[], opts?: SqlQueryOptions): Promise<SqlRow[]>;
  get(sql: string, params?: readonly SqlParam[], opts?: SqlQueryOptions): Promise<SqlRow | undefined>;
  run(sql: string, params?: readonly SqlParam[], opts?: SqlQueryOptions): Promise<{ changes: number }>;
}

/** The column types a migration may use, spelled per dialect. */
export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /** DDL type names substituted for {bytes}, {int64}, {json}, {text}, {serial_pk}. */
  readonly types: { readonly bytes: string; readonly int64: string; readonly json: string; readonly text: string; readonly serialPk: string };
  /** Run first in each migration transaction so that two processes never migrate at once
   *  (PostgreSQL: an advisory transaction lock; SQLite: null, its writer lock suffices). */
  readonly migrationLock: string | null;
}

export interface SqlDriver extends SqlConn {
  readonly dialect: Dialect;
  /** One transaction; commits when fn resolves. SQLite serialises it with every other write of the
   *  process; PostgreSQL runs it at READ COMMITTED concurrently with others and may re-run `fn`
   *  after a deadlock or serialization failure (so `fn` touches nothing but the database). */
  tx<T>(fn: (c: SqlConn) => Promise<T>): Promise<T>;
  /** Several DDL statements (migrations), in one transaction. */
  execScript(sql: string): Promise<void>;
  close(): Promise<void>;
  /** Change notifications (PostgreSQL LISTEN); absent where there is no such thing (SQLite). */
  listen?(channel: string, fn: () => void): Promise<() => Promise<void>>;
}

/** DDL with dialect placeholders → concrete DDL. */
export function ddl(dialect: Dialect, sql: string): string {
  return sql
    .replace(/\{bytes\}/g, dialect.types.bytes)
    .replace(/\{int64\}/g, dialect.types.int64)
    .replace(/\{json\}/g, dialect.types.json)
    .replace(/\{text\}/g, dialect.types.text)
    .replace(/\{serial_pk\}/g, dialect.types.serialPk);
}

/**
 * A write refused by a UNIQUE constraint, on either back end (PostgreSQL 23505, SQLite
 * SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY): what two nodes inserting the same row at once meet.
 */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
