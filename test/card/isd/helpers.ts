/**
 * Shared set-up of the security domain's tests: a card personalised through the real factory
 * sequence (src/factory) — snapshotted once, so each test starts from a copy of that store — and
 * operator sessions through AdminClient.
 */
import assert from 'node:assert/strict';
import { fromHex } from '../../../src/bytes/index.js';
import { AdminClient } from '../../../src/gp/admin/client.js';
import { staticKeys, type StaticKeys } from '../../../src/gp/keys.js';
import { factoryKeySet, personalise, type ManifestEntry } from '../../../src/factory/personalise.js';
import { FakePlatform, FakeStore } from './fake-platform.js';
import { MiniCard } from './harness.js';
import { blankCard, cardFromSnapshot, type CardKind, type IsdTestCard } from './cards.js';
import { makeCa, type TestCa } from './test-ca.js';

export const UID = fromHex('5e71500000000000000000000000c0de');
export const MASTER = fromHex('000102030405060708090a0b0c0d0e0f');

export function operatorKeys(kvn = 0x31): StaticKeys {
  const k = (b: number) => Uint8Array.from({ length: 16 }, (_, i) => (b + kvn + i) & 0xff);
  return staticKeys(kvn, k(0x10), k(0x40), k(0x70));
}

export interface Fixture {
  readonly manufacturer: TestCa;
  readonly operatorRoot: TestCa;
  readonly operatorCa: TestCa;
  readonly factoryKeys: StaticKeys;
  readonly manifest: ManifestEntry;
  /** Snapshot of the freshly sealed card (counter already advanced by the factory's check session). */
  readonly sealed: Uint8Array;
}

interface Cas {
  readonly manufacturer: TestCa;
  readonly operatorRoot: TestCa;
  readonly operatorCa: TestCa;
}

let cas: Promise<Cas> | undefined;
function getCas(): Promise<Cas> {
  cas ??= (async () => {
    const manufacturer = await makeCa('setls test manufacturer');
    const operatorRoot = await makeCa('setls test operator root');
    const operatorCa = await operatorRoot.subordinate('setls test operator CA');
    return { manufacturer, operatorRoot, operatorCa };
  })();
  return cas;
}

const fixtures = new Map<CardKind, Promise<Fixture>>();

/** The shared set-up for cards of `kind`: one card personalised through the real factory sequence, snapshotted. */
export function getFixture(kind: CardKind = 'fake'): Promise<Fixture> {
  let f = fixtures.get(kind);
  if (!f) {
    f = (async () => {
      const { manufacturer, operatorRoot, operatorCa } = await getCas();
      const factoryKeys = factoryKeySet(MASTER, UID);
      const card = blankCard(kind);
      const manifest = await personalise(card.transmit, {
        uid: UID,
        factoryKeys,
        manufacturerCa: async ({ csr }) => [await manufacturer.issueFromCsr(csr), manufacturer.cert],
      });
      const sealed = card.snapshot();
      card.dispose();
      return { manufacturer, operatorRoot, operatorCa, factoryKeys, manifest, sealed };
    })();
    fixtures.set(kind, f);
  }
  return f;
}

/** A new card from the sealed snapshot. */
export async function sealedCard(): Promise<{ card: MiniCard; fx: Fixture }> {
  const fx = await getFixture();
  return { card: new MiniCard(new FakePlatform(new FakeStore(fx.sealed.slice()))), fx };
}

/** A new card of `kind` from its sealed snapshot (the fake, or the real EmulatedCard). */
export async function sealedTestCard(kind: CardKind): Promise<{ card: IsdTestCard; fx: Fixture }> {
  const fx = await getFixture(kind);
  return { card: cardFromSnapshot(kind, fx.sealed), fx };
}

/** An admin session at level 33 with `keys` (default the factory keys) on `channel`. */
export async function adminSession(card: { transmit: (apdu: Uint8Array) => Uint8Array }, keys: StaticKeys, opts: { channel?: number; level?: number } = {}): Promise<AdminClient> {
  const c = new AdminClient(card.transmit, { channel: opts.channel ?? 0 });
  await c.select();
  await c.open(keys, opts.level ?? 0x33);
  return c;
}

export function sw(r: Uint8Array): number {
  assert.ok(r.length >= 2);
  return (r[r.length - 2]! << 8) | r[r.length - 1]!;
}

/** Asserts that a promise rejects with an AdminSwError of `sw`. */
export async function rejectsSw(p: Promise<unknown>, expected: number, what?: string): Promise<void> {
  await assert.rejects(p, (e: { code?: string; sw?: number }) => {
    assert.equal(e.code, 'ERR_ADMIN_SW', what);
    assert.equal(e.sw?.toString(16), expected.toString(16), what);
    return true;
  });
}
