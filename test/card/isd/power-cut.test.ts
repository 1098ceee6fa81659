/**
 * Power cuts at every persistent write of PUT KEY, InstallCertificateChain, ActivateIdentity,
 * PutRevocationList, PutTimeAnchor (and INITIALIZE UPDATE's counter): the card, powered on again
 * from its store, holds the old state or the new one — byte for byte — never a mixture, and an
 * admin session works afterwards. Each command is exactly one write (one transaction); a cut
 * before the write keeps the old state, a cut after it (the answer never sent) the new one.
 * A failed write without a power loss leaves the old state and the card keeps working.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { concat, equalBytes, fromHex } from '../../../src/bytes/index.js';
import { AdminRequest, Field, Fn, ISD_AID, KeyAlg, parseCardInfo, parseFunctionResponse, req, signTimeAnchor } from '../../../src/gp/admin/index.js';
import { Scp03Host } from '../../../src/gp/host.js';
import { buildPutKey } from '../../../src/gp/put-key.js';
import { buildStoreData } from '../../../src/gp/store-data.js';
import { FakePlatform, FakeStore, PowerCut } from './fake-platform.js';
import { MiniCard } from './harness.js';
import { adminSession, getFixture, operatorKeys, sealedCard, UID, type Fixture } from './helpers.js';

const SELECT = concat(fromHex('00A4040008'), ISD_AID, fromHex('00'));

/** A card with slot 1 generated and staged, slot 2 generated, the operator root installed. */
let base: Promise<Uint8Array> | undefined;
function baseState(): Promise<Uint8Array> {
  base ??= (async () => {
    const { card, fx } = await sealedCard();
    const s = await adminSession(card, fx.factoryKeys);
    await s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert] }));
    for (const slot of [1, 2]) {
      const spki = req(parseFunctionResponse(Fn.generateIdentityKey, await s.call(AdminRequest.generateIdentityKey({ slot, algorithm: KeyAlg.p256 }))), Field.spki, 'spki');
      if (slot === 1) await s.call(AdminRequest.installCertificateChain({ slot, certificates: [await fx.operatorCa.issueForSpki(spki, 'one'), fx.operatorCa.cert] }));
    }
    s.close();
    return card.platform.store.bytes.slice();
  })();
  return base;
}

type Plain = (host: Scp03Host, fx: Fixture, slot2Leaf: Uint8Array) => Uint8Array[];

const COMMANDS: Record<string, Plain> = {
  'PUT KEY': (h) => [buildPutKey(h.dek!, operatorKeys(0x31), { replaceKvn: 0x30 })],
  InstallCertificateChain: (_h, fx, leaf) => buildStoreData(AdminRequest.installCertificateChain({ slot: 2, certificates: [leaf, fx.operatorCa.cert] })),
  ActivateIdentity: () => buildStoreData(AdminRequest.activateIdentity({ slot: 1 })),
  PutRevocationList: () => buildStoreData(AdminRequest.putRevocationList({ number: 3, serials: [fromHex('0badcafe'), fromHex('01')] })),
  PutTimeAnchor: (_h, fx) => buildStoreData(AdminRequest.putTimeAnchor(signTimeAnchor({ uid: UID, time: 1_750_000_000, counter: 1 }, fx.operatorRoot.key))),
};

/** Opens a deterministic session on a card from `start`; returns the card and the host. */
function session(start: Uint8Array, fx: Fixture): { card: MiniCard; host: Scp03Host } {
  const card = new MiniCard(new FakePlatform(new FakeStore(start.slice())));
  card.transmit(SELECT);
  let n = 0;
  const host = new Scp03Host({ keys: fx.factoryKeys, sdAid: ISD_AID, random: (k) => createHash('sha256').update(`pc${n++}`).digest().subarray(0, k) });
  host.processInitializeUpdateResponse(card.transmit(host.initializeUpdate()));
  host.processExternalAuthenticateResponse(card.transmit(host.externalAuthenticate(0x33)));
  return { card, host };
}

async function slot2Leaf(start: Uint8Array, fx: Fixture): Promise<Uint8Array> {
  const p = new FakePlatform(new FakeStore(start.slice()));
  return fx.operatorCa.issueForSpki(p.identities().key(2)!.spki, 'two');
}

for (const [name, plain] of Object.entries(COMMANDS)) {
  test(`power cut at every write of ${name}: old or new state, never neither`, async () => {
    const fx = await getFixture();
    const start = await baseState();
    const leaf = await slot2Leaf(start, fx);
    // the reference run: the state before and after, and the writes the command makes
    const ref = session(start, fx);
    const old = ref.card.platform.store.bytes.slice();
    const w0 = ref.card.platform.store.writes;
    for (const c of plain(ref.host, fx, leaf)) assert.equal(ref.host.unwrap(ref.card.transmit(ref.host.wrap(c))).sw, 0x9000);
    const writes = ref.card.platform.store.writes - w0;
    const fresh = ref.card.platform.store.bytes.slice();
    assert.equal(writes, 1, `${name} commits in one write`);
    assert.ok(!equalBytes(old, fresh));
    for (let k = 1; k <= writes; k++) {
      for (const when of ['before', 'after'] as const) {
        const { card, host } = session(start, fx);
        const cmds = plain(host, fx, leaf);
        card.platform.store.cutAt(k, when);
        assert.throws(() => {
          for (const c of cmds) host.unwrap(card.transmit(host.wrap(c)));
        }, PowerCut);
        card.restart();
        const now = card.platform.store.bytes;
        assert.ok(equalBytes(now, when === 'before' ? old : fresh), `${name}, cut ${when} write ${k}: ${when === 'before' ? 'old' : 'new'} state expected`);
        // the card works on: a new session, and the command's effect is there or not at all
        const keys = name === 'PUT KEY' && when === 'after' ? operatorKeys(0x31) : fx.factoryKeys;
        const s = await adminSession(card, keys);
        const info = parseCardInfo(await s.call(AdminRequest.getCardInfo()));
        assert.deepEqual(info.kvns, name === 'PUT KEY' && when === 'after' ? [0x31] : [0x30]);
      }
    }
  });
}

test('power cut at the INITIALIZE UPDATE counter write: no challenge goes out; the counter is old or new', async () => {
  const { card } = await sealedCard();
  const c0 = card.platform.record().sequenceCounter;
  for (const when of ['before', 'after'] as const) {
    card.transmit(SELECT);
    const before = card.platform.record().sequenceCounter;
    card.platform.store.cutAt(1, when);
    assert.throws(() => card.transmit(concat(fromHex('8050300008'), new Uint8Array(8), fromHex('00'))), PowerCut);
    card.restart();
    assert.equal(card.platform.record().sequenceCounter, when === 'before' ? before : before + 1);
  }
  assert.equal(card.platform.record().sequenceCounter, c0 + 1);
});

test('a failed write without a power loss: the old state stays, the session ends, the card goes on', async () => {
  const fx = await getFixture();
  const start = await baseState();
  const { card, host } = session(start, fx);
  const old = card.platform.store.bytes.slice();
  card.platform.store.cutAt(1, 'before');
  assert.throws(() => host.unwrap(card.transmit(host.wrap(buildStoreData(AdminRequest.putRevocationList({ number: 3, serials: [] }))[0]!))), PowerCut);
  assert.ok(equalBytes(card.platform.store.bytes, old));
  assert.equal(card.platform.record().revocationNumber, 0, 'the committed record is the old one');
  assert.equal(card.isd.sessionState(0), 'idle', 'the session ended');
  const s = await adminSession(card, fx.factoryKeys);
  await s.call(AdminRequest.putRevocationList({ number: 3, serials: [] }));
  assert.equal(card.platform.record().revocationNumber, 3);
});
