/**
 * The PostgreSQL persist step as ONE autocommitted statement (store/enrol-batch-pg.ts) and the
 * enrolment's named prepared statements (PgDriver `prepare`): a nonce consumed by another
 * transaction while the statement waits for its row makes that whole enrolment fail (nonce replay,
 * nothing written for it: the guard is inside the statement) and the rest of the batch commits; a
 * statement that fails part-way writes nothing of the batch (no BEGIN/COMMIT needed for that); the
 * hot statements are server-side prepared once per connection, and none is with `prepare: false`.
 * PostgreSQL only (SETLS_TEST_PG_URL). imports src/operator/store, pg.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PgDriver, PG_SQL, SqlStore } from '../../src/operator/store/index.js';
import { nonce, persist, setup } from './store-enrol-batch-suite.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';

const unavailable = await pgUnavailable();
const key = (): Uint8Array => new Uint8Array(randomBytes(32));

test('a nonce consumed by another transaction while the persist statement waits for its row: that enrolment fails whole (nonce replay, nothing written), the others commit', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const s = await SqlStore.open(new PgDriver(db.url), PG_SQL);
  const other = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 10_000 });
  await other.connect();
  try {
    const { caId, cards } = await setup(s, 2);
    const [a, b] = cards as [(typeof cards)[0], (typeof cards)[0]];
    const [ea, eb] = await s.openEnrolments([nonce(a.uid), nonce(b.uid)]);
    // Another node consumes a's nonce and holds the row until it commits.
    await other.query('BEGIN');
    await other.query(`UPDATE enrolment SET status = 'refused', error_code = 'ERR_OP_X', finished_at = 1 WHERE id = $1 AND status = 'open'`, [ea!.id]);
    const pending = s.persistEnrolments([persist(caId, a, ea!.id, key()), persist(caId, b, eb!.id, key())]);
    // Wait (generous deadline) until the persist statement is blocked on that row's lock.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await other.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`,
      );
      if ((rows[0] as { n: number }).n > 0) break;
      assert.ok(Date.now() < deadline, 'the persist statement never waited for the row lock');
      await new Promise((r) => setTimeout(r, 20));
    }
    await other.query('COMMIT');
    const out = await pending;
    assert.deepEqual(out.map((o) => (o.ok ? 'ok' : o.refusal)), ['nonce_replay', 'ok']);
    // Nothing of a's enrolment was written; b's is whole.
    assert.equal((await s.enrolmentByNonceHash(ea!.nonceHash))?.status, 'refused');
    assert.equal((await s.certificatesOfCard(a.id)).length, 0);
    assert.equal((await s.identitiesOfCard(a.id)).length, 0);
    assert.equal((await s.cardByUid(a.uid))?.lifecycle, 'manifest');
    assert.equal((await other.query(`SELECT count(*)::int AS n FROM event WHERE card_id = $1 AND kind = 'certificate.issued'`, [a.id])).rows[0].n, 0);
    assert.equal((await s.enrolmentByNonceHash(eb!.nonceHash))?.status, 'succeeded');
    assert.equal((await s.certificatesOfCard(b.id)).length, 1);
    assert.equal((await s.identitiesOfCard(b.id)).length, 1);
    assert.equal((await s.cardByUid(b.uid))?.lifecycle, 'enrolled');
    assert.equal((await other.query(`SELECT count(*)::int AS n FROM event WHERE card_id = $1 AND kind = 'certificate.issued'`, [b.id])).rows[0].n, 1);
  } finally {
    await other.end().catch(() => undefined);
    await s.close();
    await db.drop();
  }
});

test('a persist statement failing part-way (a certificate serial already taken) writes nothing of its batch: nonces still open, no identity, card unchanged', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const s = await SqlStore.open(new PgDriver(db.url), PG_SQL);
  try {
    const { caId, cards } = await setup(s, 3);
    const [a, b, c] = cards as [(typeof cards)[0], (typeof cards)[0], (typeof cards)[0]];
    const [ea, eb, ec] = await s.openEnrolments([nonce(a.uid), nonce(b.uid), nonce(c.uid)]);
    const first = persist(caId, c, ec!.id, key());
    assert.equal((await s.persistEnrolments([first]))[0]!.ok, true);
    const clash = persist(caId, b, eb!.id, key());
    const batch = [persist(caId, a, ea!.id, key()), { ...clash, certificate: { ...clash.certificate, serial: first.certificate.serial } }];
    await assert.rejects(s.persistEnrolments(batch), (e: unknown) => (e as { code?: string }).code === '23505');
    for (const [card, e] of [[a, ea!], [b, eb!]] as const) {
      assert.equal((await s.enrolmentByNonceHash(e.nonceHash))?.status, 'open');
      assert.equal((await s.identitiesOfCard(card.id)).length, 0);
      assert.equal((await s.certificatesOfCard(card.id)).length, 0);
      assert.equal((await s.cardByUid(card.uid))?.lifecycle, 'manifest');
    }
  } finally {
    await s.close();
    await db.drop();
  }
});

test('the enrolment statements are named prepared statements on PostgreSQL (parsed once per connection); prepare: false sends them unnamed, same answers', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  for (const prepare of [true, false]) {
    const db = await createTempDb();
    try {
      // One pooled connection: pg_prepared_statements is per session.
      const d = new PgDriver(db.url, { max: 1, prepare });
      const s = await SqlStore.open(d, PG_SQL);
      try {
        const { caId, cards } = await setup(s, 2);
        for (let round = 0; round < 2; round++) {
          const opened = await s.openEnrolments(cards.map((c) => nonce(c.uid)));
          assert.deepEqual((await s.cardsByUids(cards.map((c) => c.uid))).map((c) => c?.id), cards.map((c) => c.id));
          assert.deepEqual((await s.enrolmentsByNonceHashes(opened.map((e) => e!.nonceHash))).map((e) => e?.id), opened.map((e) => e!.id));
          const out = await s.persistEnrolments(cards.map((c, i) => persist(caId, c, opened[i]!.id, key())));
          assert.deepEqual(out.map((o) => o.ok), [true, true]);
        }
        const names = (await d.all(`SELECT name FROM pg_prepared_statements WHERE name LIKE 'setls_enrol_%' ORDER BY name`)).map((r) => r['name']);
        assert.deepEqual(
          names,
          prepare ? ['setls_enrol_open_v1', 'setls_enrol_persist_v1', 'setls_enrol_read_card_v2', 'setls_enrol_read_enrolment_v2'] : [],
          `prepare: ${prepare}`,
        );
      } finally {
        await s.close();
      }
    } finally {
      await db.drop();
    }
  }
});
