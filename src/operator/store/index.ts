/**
 * operator/store/: the operator's repository (`OperatorStore`) and its back ends. SQLite
 * (better-sqlite3 12) now; PostgreSQL (issue #17) adds a driver and a `DialectSql` behind the same
 * interface and runs the same test-suite (test/operator/store-suite.ts). imports the files beside it.
 */
import { SqliteDriver } from './sqlite-driver.js';
import { SqlStore, SQLITE_SQL } from './sql-store.js';
import type { OperatorStore } from './types.js';

export * from './types.js';
export { SCHEMA_VERSION, MIGRATIONS } from './schema.js';
export type { SqlDriver, SqlConn, Dialect } from './driver.js';
export { SqlStore, SQLITE_SQL, type DialectSql } from './sql-store.js';

/** Opens (creating and migrating when needed) the SQLite store at `path`. */
export async function openSqliteStore(path: string): Promise<OperatorStore> {
  const driver = new SqliteDriver(path);
  try {
    return await SqlStore.open(driver, SQLITE_SQL);
  } catch (e) {
    await driver.close();
    throw e;
  }
}
