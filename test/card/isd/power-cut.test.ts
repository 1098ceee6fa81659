/**
 * Power cuts at every persistent write of PUT KEY, InstallCertificateChain, ActivateIdentity,
 * PutRevocationList, PutTimeAnchor (and INITIALIZE UPDATE's counter): the card, powered on again
 * from its store, holds the old state or the new one — byte for byte — never a mixture, and an
 * admin session works afterwards. Each command is exactly one write (one transaction); a cut
 * before the write keeps the old state, a cut after it (the answer never sent) the new one.
 * A failed write without a power loss leaves the old state and the card keeps working.
 * On the ISD applet alone ('fake': cut before / after its one write) and through the real
 * EmulatedCard and its sealed store ('card': cut at each step of the atomic write — before the temp
 * file, after it, after the rename — through StoreHooks, then the card reopened from its folder).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { concat, equalBytes, fromHex } from '../../../src/bytes/index.js';
import { AdminRequest, Field, Fn, ISD_AID, KeyAlg, parseCardInfo, parseFunctionResponse, req, signTimeAnchor } from '../../../src/gp/admin/index.js';
import { Scp03Host } from '../../../src/gp/host.js';
import { buildPutKey } from '../../../src/gp/put-key.js';
import { buildStoreData } from '../../../src/gp/store-data.js';
import { PowerCut } from './fake-platform.js';
import { CARD_KINDS, cardFromSnapshot, type CardKind, type IsdTestCard } from './cards.js';
import { adminSession, getFixture, operatorKeys, sealedTestCard, UID, type Fixture } from './helpers.js';

const SELECT = concat(fromHex('00A4040008'), ISD_AID, fromHex('00'));

/** A card with slot 1 generated and staged, slot 2 generated, the operator root installed. */
const bases = new Map<CardKind, Promise<{ snapshot: Uint8Array; slot2Spki: Uint8Array }>>();
function baseState(kind: CardKind): Promise<{ snapshot: Uint8Array; slot2Spki: Uint8Array }> {
  let base = bases.get(kind);
  if (base) return base;
  base = (async () => {
    const { card, fx } = await sealedTestCard(kind);
    let slot2Spki: Uint8Array = new Uint8Array(0);
    const s = await adminSession(card, fx.factoryKeys);
    await s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert] }));
    for (const slot of [1, 2]) {
      const spki = req(parseFunctionResponse(Fn.generateIdentityKey, await s.call(AdminRequest.generateIdentityKey({ slot, algorithm: KeyAlg.p256 }))), Field.spki, 'spki');
      if (slot === 1) await s.call(AdminRequest.installCertificateChain({ slot, certificates: [await fx.operatorCa.issueForSpki(spki, 'one'), fx.operatorCa.cert] }));
      else slot2Spki = spki;
    }
    s.close();
    const snapshot = card.snapshot();
    card.dispose();
    return { snapshot, slot2Spki };
  })();
  bases.set(kind, base);
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
function session(kind: CardKind, start: Uint8Array, fx: Fixture): { card: IsdTestCard; host: Scp03Host } {
  const card = cardFromSnapshot(kind, start);
  card.transmit(SELECT);
  let n = 0;
  const host = new Scp03Host({ keys: fx.factoryKeys, sdAid: ISD_AID, random: (k) => createHash('sha256').update(`pc${n++}`).digest().subarray(0, k) });
  host.processInitializeUpdateResponse(card.transmit(host.initializeUpdate()));
  host.processExternalAuthenticateResponse(card.transmit(host.externalAuthenticate(0x33)));
  return { card, host };
}

for (const kind of CARD_KINDS) {
  for (const [name, plain] of Object.entries(COMMANDS)) {
    test(`${kind}: power cut at every write of ${name}: old or new state, never neither`, async () => {
      const fx = await getFixture(kind);
      const { snapshot: start, slot2Spki } = await baseState(kind);
      const leaf = await fx.operatorCa.issueForSpki(slot2Spki, 'two');
      // the reference run: the state before and after, and the writes the command makes
      const ref = session(kind, start, fx);
      const old = ref.card.stateBytes();
      const w0 = ref.card.writes;
      for (const c of plain(ref.host, fx, leaf)) assert.equal(ref.host.unwrap(ref.card.transmit(ref.host.wrap(c))).sw, 0x9000);
      const writes = ref.card.writes - w0;
      const fresh = ref.card.stateBytes();
      ref.card.dispose();
      assert.equal(writes, 1, `${name} commits in one write`);
      assert.ok(!equalBytes(old, fresh));
      for (let k = 1; k <= writes; k++) {
        for (const cut of ref.card.cutPoints) {
          const { card, host } = session(kind, start, fx);
          const cmds = plain(host, fx, leaf);
          card.cutAt(k, cut.when);
          assert.throws(() => {
            for (const c of cmds) host.unwrap(card.transmit(host.wrap(c)));
          }, PowerCut);
          card.restart();
          const now = card.stateBytes();
          assert.ok(equalBytes(now, cut.expect === 'old' ? old : fresh), `${name}, cut ${cut.when} write ${k}: ${cut.expect} state expected`);
          // the card works on: a new session, and the command's effect is there or not at all
          const keys = name === 'PUT KEY' && cut.expect === 'new' ? operatorKeys(0x31) : fx.factoryKeys;
          const s = await adminSession(card, keys);
          const info = parseCardInfo(await s.call(AdminRequest.getCardInfo()));
          assert.deepEqual(info.kvns, name === 'PUT KEY' && cut.expect === 'new' ? [0x31] : [0x30]);
          card.dispose();
        }
      }
    });
  }

  test(`${kind}: power cut at the INITIALIZE UPDATE counter write: no challenge goes out; the counter is old or new`, async () => {
    const { card } = await sealedTestCard(kind);
    const c0 = card.record().sequenceCounter;
    for (const cut of card.cutPoints) {
      card.transmit(SELECT);
      const before = card.record().sequenceCounter;
      card.cutAt(1, cut.when);
      assert.throws(() => card.transmit(concat(fromHex('8050300008'), new Uint8Array(8), fromHex('00'))), PowerCut);
      card.restart();
      assert.equal(card.record().sequenceCounter, cut.expect === 'old' ? before : before + 1, cut.when);
    }
    assert.equal(card.record().sequenceCounter, c0 + 1);
    card.dispose();
  });

  test(`${kind}: a failed write without a power loss: the old state stays, the session ends, the card goes on`, async () => {
    const fx = await getFixture(kind);
    const { snapshot: start } = await baseState(kind);
    const { card, host } = session(kind, start, fx);
    const old = card.stateBytes();
    card.cutAt(1, card.cutPoints[0]!.when);
    assert.throws(() => host.unwrap(card.transmit(host.wrap(buildStoreData(AdminRequest.putRevocationList({ number: 3, serials: [] }))[0]!))), PowerCut);
    assert.ok(equalBytes(card.stateBytes(), old));
    assert.equal(card.record().revocationNumber, 0, 'the committed record is the old one');
    assert.equal(card.sessionState(0), 'idle', 'the session ended');
    const s = await adminSession(card, fx.factoryKeys);
    await s.call(AdminRequest.putRevocationList({ number: 3, serials: [] }));
    assert.equal(card.record().revocationNumber, 3);
    card.dispose();
  });
}
