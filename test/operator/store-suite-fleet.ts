/**
 * The store contract's cases for the console's fleet query (store/fleet-sql.ts), run on SQLite and
 * PostgreSQL by test/operator/store-suite.ts: UID-prefix ranges (even and odd length, bytes 0x00 and
 * 0xff at the edges — bytes compare unsigned on both), with a lifecycle, with a label, and keyset
 * pagination after a UID.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fromHex, toHex } from '../../src/bytes/index.js';
import type { CardLifecycle, OperatorStore } from '../../src/operator/store/types.js';
import type { StoreFactory } from './store-factory.js';

const CARDS: readonly [string, CardLifecycle, Record<string, string>][] = [
  ['00ff', 'active', {}],
  ['7f00', 'active', { site: 'a' }],
  ['7fff', 'locked', { site: 'b' }],
  ['80', 'active', { site: 'a' }],
  ['8000', 'active', {}],
  ['80ff', 'locked', { site: 'a' }],
  ['81', 'active', {}],
  ['ff', 'active', {}],
  ['ff00', 'manifest', {}],
  ['ffff', 'active', { site: 'a' }],
];

export function fleetCases(factory: StoreFactory): void {
  test('fleetPage: UID prefix ranges (odd length, 0x00 and 0xff edges), with lifecycle and label, keyset after a UID', async () => {
    const { store, dispose } = await factory.create();
    try {
      for (const [hex, lifecycle, labels] of CARDS) {
        await store.insertCard({ id: randomUUID(), uid: fromHex(hex), batchId: null, attestCertDer: Uint8Array.of(1), attestSpkiSha256: new Uint8Array(32), lifecycle, kvn: 1, transportKeyId: null, labels, profile: {}, createdAt: 1 });
      }
      const page = async (f: Parameters<OperatorStore['fleetPage']>[0], after: string | null = null, limit = 100) =>
        (await store.fleetPage(f, after === null ? null : fromHex(after), limit)).map((c) => toHex(c.uid));
      assert.deepEqual(await page({}), CARDS.map((c) => c[0]), 'all, in unsigned byte order');
      assert.deepEqual(await page({ uidPrefix: '7f' }), ['7f00', '7fff']);
      assert.deepEqual(await page({ uidPrefix: '8' }), ['80', '8000', '80ff', '81'], 'odd length: the half byte');
      assert.deepEqual(await page({ uidPrefix: '80' }), ['80', '8000', '80ff']);
      assert.deepEqual(await page({ uidPrefix: '80f' }), ['80ff']);
      assert.deepEqual(await page({ uidPrefix: 'ff' }), ['ff', 'ff00', 'ffff'], 'all-f prefix: no upper bound');
      assert.deepEqual(await page({ uidPrefix: 'fff' }), ['ffff']);
      assert.deepEqual(await page({ uidPrefix: '0' }), ['00ff']);
      assert.deepEqual(await page({ uidPrefix: '1' }), []);
      assert.deepEqual(await page({ uidPrefix: '8', lifecycle: 'active' }), ['80', '8000', '81']);
      assert.deepEqual(await page({ uidPrefix: '8', label: 'site=a' }), ['80', '80ff']);
      assert.deepEqual(await page({ label: 'site' }), ['7f00', '7fff', '80', '80ff', 'ffff']);
      assert.deepEqual(await page({ uidPrefix: '8' }, '8000', 2), ['80ff', '81'], 'keyset after a UID, limited');
      assert.deepEqual(await page({ lifecycle: 'active' }, '81'), ['ff', 'ffff']);
    } finally {
      await dispose();
    }
  });
}
