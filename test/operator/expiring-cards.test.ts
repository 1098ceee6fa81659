/**
 * store/expiring-cards.ts (listExpiringCards) on SQLite and on PostgreSQL: the cards whose earliest
 * good certificate ends before T, soonest first by (not_after, card id); a card with several good
 * certificates appears once (at its earliest, ties on not_after between its own certificates
 * included); revoked and superseded certificates are ignored; keyset pages neither repeat nor skip
 * across ties on not_after between cards; lifecycle and label filters combine with it; the set of
 * cards equals listCards({ expiringBefore }) (the UID-order listing). imports src/operator/store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPgStore, openSqliteStore } from '../../src/operator/store/index.js';
import type { CardLifecycle, CertificateStatus, ExpiringCard, ExpiringCardsCursor, OperatorStore } from '../../src/operator/store/index.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';
import { tempDir } from './helpers.js';
import { fill, T0, DAY, type Fleet } from './expiring-cards-fill.js';

const show = (f: Fleet, xs: readonly ExpiringCard[]): string[] => xs.map((x) => `${f.name.get(x.card.id)}@${(x.notAfter - T0) / DAY}`);

async function all(s: OperatorStore, before: number, filter: { lifecycle?: CardLifecycle; label?: string } = {}, pageSize = 100): Promise<ExpiringCard[]> {
  const out: ExpiringCard[] = [];
  let after: ExpiringCardsCursor | null = null;
  for (let pages = 0; ; pages++) {
    assert.ok(pages <= 100, 'the pages end (a cursor that repeats its last row never would)');
    const page = await s.listExpiringCards({ before, ...filter }, after, pageSize);
    assert.ok(page.length <= pageSize);
    out.push(...page);
    if (page.length < pageSize) return out;
    const last = page[page.length - 1]!;
    after = { notAfter: last.notAfter, cardId: last.card.id };
  }
}

async function behaviour(s: OperatorStore): Promise<void> {
  const f = await fill(s, {
    a: { certs: [[6, 'good']] },
    b: { certs: [[2, 'good'], [4, 'good']] }, // two good certificates: once, at day 2
    c: { certs: [[1, 'revoked'], [5, 'good']] }, // the revoked one on day 1 is ignored: at day 5
    d: { certs: [[1, 'superseded'], [30, 'good']] }, // only a superseded one in the window: absent
    e: { certs: [[3, 'good'], [3, 'good']] }, // two good certificates ending at the same instant: once
    f: { certs: [[-2, 'good']] }, // already ended, still good: first
    g: { certs: [[10, 'good'], [4, 'good']] }, // the earliest is the second inserted: at day 4
    h: { certs: [] }, // no certificate
    i: { certs: [[8, 'good']] }, // after the bound
  });
  const got = await s.listExpiringCards({ before: T0 + 7 * DAY }, null, 100);
  assert.deepEqual(show(f, got), ['f@-2', 'b@2', 'e@3', 'g@4', 'c@5', 'a@6'], 'earliest good certificate before T, soonest first, each card once');
  // the same cards as the UID-order listing (which also counts any good certificate before T)
  const byUid = await s.listCards({ expiringBefore: T0 + 7 * DAY }, null, 100);
  assert.deepEqual(byUid.map((c) => f.name.get(c.id)).sort(), ['a', 'b', 'c', 'e', 'f', 'g']);
  // the bound is strict: a certificate ending exactly at T is not "before T"
  assert.deepEqual(show(f, await s.listExpiringCards({ before: T0 + 6 * DAY }, null, 100)), ['f@-2', 'b@2', 'e@3', 'g@4', 'c@5']);
  // pages of one and of two give the same rows in the same order
  assert.deepEqual(show(f, await all(s, T0 + 7 * DAY, {}, 1)), show(f, got));
  assert.deepEqual(show(f, await all(s, T0 + 7 * DAY, {}, 2)), show(f, got));
  // revoked / superseded later: the card moves to its next good certificate, or leaves the listing
  assert.ok(await s.revokeCertificate(f.serials.get('b')![0]!, 'keyCompromise', T0));
  assert.ok(await s.supersedeCertificate(f.serials.get('g')![1]!, T0));
  assert.deepEqual(show(f, await s.listExpiringCards({ before: T0 + 7 * DAY }, null, 100)), ['f@-2', 'e@3', 'b@4', 'c@5', 'a@6']);
}

async function ties(s: OperatorStore): Promise<void> {
  // twelve cards whose certificates end at the same instant, three at another, one card with two at that instant
  const spec: Record<string, { certs: [number, CertificateStatus][] }> = {};
  for (let i = 0; i < 12; i++) spec[`t${String(i).padStart(2, '0')}`] = { certs: [[3, 'good']] };
  for (let i = 0; i < 3; i++) spec[`u${i}`] = { certs: [[1, 'good'], [5, 'good']] };
  spec['v'] = { certs: [[3, 'good'], [3, 'good'], [3, 'revoked']] };
  const f = await fill(s, spec);
  const one = await s.listExpiringCards({ before: T0 + 7 * DAY }, null, 100);
  assert.equal(one.length, 16, 'each card once');
  assert.equal(new Set(one.map((x) => x.card.id)).size, 16);
  assert.deepEqual(one.map((x) => (x.notAfter - T0) / DAY), [1, 1, 1, ...Array<number>(13).fill(3)]);
  // within a tie on not_after: by card id (the keyset's second key)
  const tie = one.filter((x) => x.notAfter === T0 + 3 * DAY).map((x) => x.card.id);
  assert.deepEqual(tie, [...tie].sort());
  for (const size of [1, 2, 5, 7]) {
    const paged = await all(s, T0 + 7 * DAY, {}, size);
    assert.deepEqual(show(f, paged), show(f, one), `pages of ${size}: no repeat, no skip across the tie`);
  }
  // a cursor in the middle of the tie continues after that card only
  const mid = one[7]!;
  const rest = await s.listExpiringCards({ before: T0 + 7 * DAY }, { notAfter: mid.notAfter, cardId: mid.card.id }, 100);
  assert.deepEqual(show(f, rest), show(f, one.slice(8)));
}

async function filters(s: OperatorStore): Promise<void> {
  const f = await fill(s, {
    a: { certs: [[1, 'good']], lifecycle: 'active', labels: { site: 'x' } },
    b: { certs: [[2, 'good']], lifecycle: 'locked', labels: { site: 'x' } },
    c: { certs: [[3, 'good']], lifecycle: 'active', labels: { site: 'y' } },
    d: { certs: [[4, 'good']], lifecycle: 'active' },
    e: { certs: [[5, 'good'], [2, 'revoked']], lifecycle: 'active', labels: { site: 'x' } },
    g: { certs: [[9, 'good']], lifecycle: 'active', labels: { site: 'x' } },
  });
  const names = async (filter: { lifecycle?: CardLifecycle; label?: string }, size = 100): Promise<string[]> => show(f, await all(s, T0 + 7 * DAY, filter, size));
  assert.deepEqual(await names({ lifecycle: 'active' }), ['a@1', 'c@3', 'd@4', 'e@5']);
  assert.deepEqual(await names({ label: 'site' }), ['a@1', 'b@2', 'c@3', 'e@5']);
  assert.deepEqual(await names({ label: 'site=x' }), ['a@1', 'b@2', 'e@5']);
  assert.deepEqual(await names({ lifecycle: 'active', label: 'site=x' }), ['a@1', 'e@5']);
  assert.deepEqual(await names({ lifecycle: 'active', label: 'site=x' }, 1), ['a@1', 'e@5'], 'pages of one with both filters');
  assert.deepEqual(await names({ lifecycle: 'locked', label: 'site=y' }), []);
}

async function onBoth(name: string, fn: (s: OperatorStore) => Promise<void>): Promise<void> {
  test(`expiring cards on SQLite: ${name}`, async () => {
    const tmp = tempDir();
    const s = await openSqliteStore(`${tmp.dir}/op.db`);
    try {
      await fn(s);
    } finally {
      await s.close();
      tmp.cleanup();
    }
  });
  test(`expiring cards on PostgreSQL: ${name}`, async (t) => {
    if (!skipOrFail(t, unavailable)) return;
    const db = await createTempDb();
    const s = await openPgStore(db.url);
    try {
      await fn(s);
    } finally {
      await s.close();
      await db.drop();
    }
  });
}

const unavailable = await pgUnavailable();
await onBoth('earliest good certificate, soonest first, each card once, revoked/superseded ignored', behaviour);
await onBoth('keyset pages across ties on not_after', ties);
await onBoth('lifecycle and label filters combined', filters);
