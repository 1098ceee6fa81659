/**
 * PostgreSQL for tests: the server named by SETLS_TEST_PG_URL (a role allowed to CREATE DATABASE),
 * a throw-away database per test (created, then dropped WITH (FORCE)), and the reason to skip when
 * there is no server (under CI that reason fails the test: test/ci.ts). .ci/run starts the local
 * cluster and exports the URL. Imports: pg, node:crypto.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL_ENV = 'SETLS_TEST_PG_URL';

/** undefined when the server answers, else why not (for skipOrFail). */
export async function pgUnavailable(): Promise<string | undefined> {
  const url = process.env[PG_URL_ENV];
  if (!url) return `${PG_URL_ENV} is not set (e.g. postgres://setls:setls@127.0.0.1:5432/postgres; .ci/run sets it)`;
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return undefined;
  } catch (e) {
    return `PostgreSQL at ${redact(url)} is unreachable: ${(e as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return '(bad URL)';
  }
}

export interface TempDb {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: process.env[PG_URL_ENV], connectionTimeoutMillis: 10_000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * DROP DATABASE … WITH (FORCE), or — when the role may not signal some backend of that database
 * (42501: an autovacuum worker runs as the superuser, and CI's role is not one) — this role's own
 * sessions there terminated and a plain DROP DATABASE, which stops autovacuum workers itself;
 * retried while another session is still leaving (55006).
 */
async function dropDatabase(c: pg.Client, name: string): Promise<void> {
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    return;
  } catch (e) {
    if ((e as { code?: string }).code !== '42501') throw e;
  }
  for (let attempt = 1; ; attempt++) {
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()', [name]);
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== '55006' || attempt >= 10) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** A fresh empty database on the test server; `drop()` removes it (closing what is still connected). */
export async function createTempDb(prefix = 'setls_t'): Promise<TempDb> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(process.env[PG_URL_ENV]!);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    drop: () => admin((c) => dropDatabase(c, name)),
  };
}
