// The OperatorStore contract on SQLite (better-sqlite3 12, WAL): test/operator/store-suite.ts, the
// suite a PostgreSQL store will run too; plus what is SQLite-specific (pragmas, file layout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/operator/store/index.js';
import type { OperatorStore } from '../../src/operator/store/types.js';
import { storeSuite } from './store-suite.js';
import { tempDir } from './helpers.js';

storeSuite('sqlite', {
  async create() {
    const t = tempDir('setls-store-');
    const path = join(t.dir, 'operator.db');
    const opened: OperatorStore[] = [];
    const store = await openSqliteStore(path);
    opened.push(store);
    return {
      store,
      reopen: async () => {
        const s = await openSqliteStore(path);
        opened.push(s);
        return s;
      },
      dispose: async () => {
        for (const s of opened) await s.close();
        t.cleanup();
      },
    };
  },
});

test('sqlite: WAL journal, foreign keys enforced, schema_migrations recorded', async () => {
  const t = tempDir('setls-store-');
  try {
    const path = join(t.dir, 'operator.db');
    const s = await openSqliteStore(path);
    // a job for a card that does not exist is refused by the foreign key
    await assert.rejects(
      s.insertJob({ id: 'j', cardId: 'no-such-card', kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: null, createdAt: 1 }),
      /FOREIGN KEY/,
    );
    await s.close();
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.deepEqual(db.prepare('SELECT version FROM schema_migrations').all(), [{ version: 1 }]);
    db.close();
  } finally {
    t.cleanup();
  }
});
