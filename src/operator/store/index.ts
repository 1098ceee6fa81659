/**
 * operator/store/: the operator's repository (`OperatorStore`) and its back ends: SQLite
 * (better-sqlite3 12, one node) and PostgreSQL (`pg` 8, several nodes), the same `SqlStore`, the
 * same migrations and the same test-suite (test/operator/store-suite.ts). imports the files beside it.
 */
import { SqliteDriver } from './sqlite-driver.js';
import { PgDriver, type PgOptions } from './pg-driver.js';
import { SqlStore, SQLITE_SQL, PG_SQL } from './sql-store.js';
import type { SqlDriver } from './driver.js';
import type { DialectSql } from './sql-store.js';
import type { OperatorStore } from './types.js';

export * from './types.js';
export type { ExpiringCertificate, ExpiringCursor } from './expiring.js';
export type { ExpiringCardsCursor, ExpiringCardsFilter } from './expiring-cards.js';
export { SCHEMA_VERSION, MIGRATIONS } from './schema.js';
export type { SqlDriver, SqlConn, Dialect } from './driver.js';
export { SqlStore, SQLITE_SQL, PG_SQL, JOBS_CHANNEL, type DialectSql } from './sql-store.js';
export { PgDriver, type PgOptions } from './pg-driver.js';

async function openOver(driver: SqlDriver, sql: DialectSql): Promise<OperatorStore> {
  try {
    return await SqlStore.open(driver, sql);
  } catch (e) {
    await driver.close();
    throw e;
  }
}

/** Opens (creating and migrating when needed) the SQLite store at `path`. */
export async function openSqliteStore(path: string): Promise<OperatorStore> {
  return openOver(new SqliteDriver(path), SQLITE_SQL);
}

/** Opens (migrating when needed) the PostgreSQL store at `url` (postgres://user@host:port/db). */
export async function openPgStore(url: string, opts?: PgOptions): Promise<OperatorStore> {
  return openOver(new PgDriver(url, opts), PG_SQL);
}

/** True when `target` names a PostgreSQL database rather than a SQLite file. */
export function isPgUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/** A `postgres://…` URL → PostgreSQL; anything else is the path of a SQLite file. */
export async function openStore(target: string, opts?: PgOptions): Promise<OperatorStore> {
  return isPgUrl(target) ? openPgStore(target, opts) : openSqliteStore(target);
}

/** The URL without its password (for logs and the configuration file). */
export function redactStoreUrl(target: string): string {
  if (!isPgUrl(target)) return target;
  try {
    const u = new URL(target);
    if (u.password) u.password = '';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
