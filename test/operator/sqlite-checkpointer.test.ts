/**
 * store/sqlite-checkpointer.ts through the SQLite driver: WAL checkpoints run in a worker thread after
 * every few commits (they completed there, without blocking: busy 0), the writer's own automatic
 * checkpoint is raised to the backstop (so COMMITs on the event loop no longer checkpoint every 1000
 * pages), nothing is lost across close and reopen; with backgroundCheckpoint: false the driver
 * behaves as SQLite does by default. Polls with a generous deadline; no timing assertions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SqliteDriver } from '../../src/operator/store/sqlite-driver.js';
import { BACKSTOP_AUTOCHECKPOINT_PAGES } from '../../src/operator/store/sqlite-checkpointer.js';
import { tempDir } from './helpers.js';

async function autocheckpoint(d: SqliteDriver): Promise<number> {
  return Number((await d.tx((c) => c.all('PRAGMA wal_autocheckpoint')))[0]!['wal_autocheckpoint']);
}

test('SQLite: WAL checkpoints in a worker thread every few commits; the writer only as a backstop; data intact after reopen', async () => {
  const t = tempDir('setls-ckpt-');
  const file = join(t.dir, 'op.db');
  const d = new SqliteDriver(file, { checkpointEveryCommits: 4 });
  try {
    assert.equal(await autocheckpoint(d), BACKSTOP_AUTOCHECKPOINT_PAGES);
    await d.tx((c) => c.run('CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB NOT NULL)'));
    for (let i = 0; i < 24; i++) await d.tx((c) => c.run('INSERT INTO t (b) VALUES (?)', [new Uint8Array(randomBytes(3000))]));
    const ck = d.checkpointer!;
    const deadline = Date.now() + 60_000;
    while (ck.checkpoints === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(ck.checkpoints >= 1, 'a checkpoint completed in the worker');
    assert.equal(ck.last!.busy, 0, 'PASSIVE: it did not have to wait for anyone');
    assert.ok(ck.last!.checkpointed > 0 && ck.last!.checkpointed <= ck.last!.log, JSON.stringify(ck.last));
  } finally {
    await d.close();
  }
  const again = new SqliteDriver(file);
  try {
    assert.equal(Number((await again.get('SELECT COUNT(*) AS n FROM t'))!['n']), 24);
  } finally {
    await again.close();
    t.cleanup();
  }
});

test('SQLite: backgroundCheckpoint false keeps SQLite\'s automatic checkpoint (1000 pages) and starts no worker', async () => {
  const t = tempDir('setls-ckpt-');
  const d = new SqliteDriver(join(t.dir, 'op.db'), { backgroundCheckpoint: false });
  try {
    assert.equal(d.checkpointer, null);
    assert.equal(await autocheckpoint(d), 1000);
  } finally {
    await d.close();
    t.cleanup();
  }
});
