// The same manufacturer manifest imported through two operator nodes at the same instant (two
// stores on one PostgreSQL database): one import registers the cards, the other finds them
// present; neither fails on the unique card UID (it used to surface as a 500). SQLite serialises
// its writers, so the race needs PostgreSQL (test/operator/pg-helpers.ts; skipped locally without
// one, a failure in CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { openPgStore } from '../../src/operator/store/index.js';
import { importManifest } from '../../src/operator/services/manifests.js';
import { fingerprintHex } from '../../src/operator/pki/x509.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { makeManufacturer, SoftCard } from './helpers.js';

const unavailable = await pgUnavailable();

test('postgres: one manifest imported through two nodes at once — imported once, present for the other, no error', async (t) => {
  if (!skipOrFail(t, unavailable)) return;
  const db = await createTempDb();
  const a = await openPgStore(db.url, { max: 4 });
  const b = await openPgStore(db.url, { max: 4 });
  try {
    const m = await makeManufacturer();
    await a.addManufacturerCa({ id: randomUUID(), name: m.name, certDer: m.caDer, fingerprint: fingerprintHex(m.caDer), notAfter: m.cert.notAfter.getTime(), createdAt: Date.now() });
    // Several rounds, each a fresh batch: the two transactions interleave differently each time.
    for (let round = 0; round < 6; round++) {
      const cards = await Promise.all(Array.from({ length: 12 }, () => SoftCard.create(m)));
      const doc = { name: `race-${round}`, cards: cards.map((c) => c.manifestEntry()) };
      const [ra, rb] = await Promise.all([importManifest(a, doc, 'node-a'), importManifest(b, doc, 'node-b')]);
      assert.equal(ra.imported.length + rb.imported.length, 12, `round ${round}: every card imported exactly once`);
      assert.equal(ra.alreadyPresent.length + rb.alreadyPresent.length, 12, `round ${round}: the other import found them present`);
      for (const c of cards) assert.ok(await a.cardByUid(c.uid), 'registered');
    }
  } finally {
    await a.close();
    await b.close();
    await db.drop();
  }
});
