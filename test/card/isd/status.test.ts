/**
 * Lifecycle and access through the security domain: GET STATUS, SET STATUS (applet and identity
 * lock, card lock, termination), public GET DATA without secure messaging, the level-33 rule for
 * every operator command, and STORE DATA block sequencing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concat, fromHex, parseBerTlvs, toHex } from '../../../src/bytes/index.js';
import { AdminClient, AdminRequest, CardLifecycle, GetDataTag, KeyAlg, parseCardInfo, parseAuditLogResponse } from '../../../src/gp/admin/index.js';
import { buildStoreData } from '../../../src/gp/store-data.js';
import { isdView } from '../../../src/card/applets/isd/index.js';
import { TLS_AID } from './fake-platform.js';
import { adminSession, rejectsSw, sealedCard, sw, UID } from './helpers.js';

function entries(data: Uint8Array): { aid: string; lifecycle: number }[] {
  return parseBerTlvs(data).map((e) => {
    const f = parseBerTlvs(e.value);
    return { aid: toHex(f.find((t) => t.tag === 0x4f)!.value), lifecycle: f.find((t) => t.tag === 0x9f70)!.value[0]! };
  });
}

test('GET DATA: public items without secure messaging', async () => {
  const { card, fx } = await sealedCard();
  const c = new AdminClient(card.transmit);
  await c.select();
  assert.equal(toHex(await c.getData(GetDataTag.uid)), 'df5010' + toHex(UID));
  const chain = parseBerTlvs(await c.getData(GetDataTag.attestationChain))[0]!.value;
  assert.equal(toHex(chain), toHex(concat(...fx.manifest.attestationChain)));
  const counter = card.platform.record().sequenceCounter;
  assert.equal(toHex(await c.getData(GetDataTag.sequenceCounter)), 'df5204' + counter.toString(16).padStart(8, '0'));
  assert.equal(toHex(await c.getData(GetDataTag.keyInformation)), 'e012' + 'c00401308810c00402308810c00403308810');
  assert.match(toHex(await c.getData(GetDataTag.cardData)), /^6630732e/);
  assert.equal(sw(card.transmit(fromHex('80CADF9900'))), 0x6a88);
});

test('every operator command needs a session at level 33; lower levels and no session get 6982', async () => {
  const { card, fx } = await sealedCard();
  // (GetCardInfo and the enrolment functions also answer plain while the card has no operator root
  // anchor: zero-touch enrolment, plain-enrolment.test.ts; every other command does not.)
  const plain = [...buildStoreData(AdminRequest.readAuditLog()), ...buildStoreData(AdminRequest.deleteKey({ slot: 1 })), fromHex('80F28002024F0000'), fromHex('80F0807F')];
  const c = new AdminClient(card.transmit);
  await c.select();
  for (const p of plain) assert.equal(sw(card.transmit(p)), 0x6982, toHex(p));
  for (const level of [0x01, 0x03, 0x11, 0x13]) {
    const s = await adminSession(card, fx.factoryKeys, { level });
    await rejectsSw(s.call(AdminRequest.getCardInfo()), 0x6982, `level ${level}`);
    await rejectsSw(s.getStatus(0x80), 0x6982, `level ${level}`);
    assert.equal(card.isd.sessionState(0), 'open', 'refused, but the session goes on');
    s.close();
  }
});

test('SET STATUS: applet lock, identity lock, card lock, termination (irreversible, wipes identity keys)', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  await s.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 }));
  assert.deepEqual(entries(await s.getStatus(0x40)), [{ aid: toHex(TLS_AID), lifecycle: 0x07 }]);
  await s.setStatus(0x40, 0x80, TLS_AID);
  assert.deepEqual(entries(await s.getStatus(0x40)), [{ aid: toHex(TLS_AID), lifecycle: 0x87 }]);
  assert.ok(isdView(card.platform.record()).appletLocked(TLS_AID));
  await s.setStatus(0x40, 0x00, TLS_AID);
  assert.ok(!isdView(card.platform.record()).appletLocked(TLS_AID));
  await s.setStatus(0x40, 0x80, concat(TLS_AID, Uint8Array.of(1)));
  assert.ok(isdView(card.platform.record()).identityLocked(1), 'SET STATUS on AID ‖ slot locks one identity');
  await rejectsSw(s.setStatus(0x40, 0x80, fromHex('A000000099')), 0x6a88);

  await s.setStatus(0x80, CardLifecycle.cardLocked);
  assert.equal(entries(await s.getStatus(0x80))[0]!.lifecycle, 0x7f);
  assert.ok(isdView(card.platform.record()).cardLocked);
  await rejectsSw(s.setStatus(0x80, CardLifecycle.cardLocked), 0x6985, 'already locked');
  await s.setStatus(0x80, CardLifecycle.secured);
  assert.ok(!isdView(card.platform.record()).cardLocked);

  await s.setStatus(0x80, CardLifecycle.terminated);
  assert.deepEqual(card.platform.tls().identities, {}, 'identity keys wiped');
  assert.equal(card.platform.tls().legacyIdentities, 0);
  assert.equal(card.platform.record().slots.length, 0);
  await rejectsSw(s.setStatus(0x80, CardLifecycle.secured), 0x6985, 'terminated for good');
  await rejectsSw(s.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 })), 0x6985);
  await rejectsSw(s.putKey(fx.factoryKeys), 0x6985);
  // reads still work, and a new session still opens (forensics)
  s.close();
  const t = await adminSession(card, fx.factoryKeys);
  assert.equal(parseCardInfo(await t.call(AdminRequest.getCardInfo())).lifecycle, CardLifecycle.terminated);
  assert.ok(parseAuditLogResponse(await t.call(AdminRequest.readAuditLog())).entries.length > 0);
});

test('STORE DATA: blocks in order only; a broken sequence is forgotten; a long request in many blocks works', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  const blocks = buildStoreData(AdminRequest.putTrustAnchors({ role: 'client-ca', certificates: [fx.operatorCa.cert, fx.manufacturer.cert, fx.operatorRoot.cert] }), { blockSize: 100 });
  assert.ok(blocks.length >= 4);
  // skip block 1: refused, and block 2 then is refused too (the sequence was forgotten)
  assert.equal((await s.send(blocks[0]!)).sw, 0x9000);
  assert.equal((await s.send(blocks[2]!)).sw, 0x6a86);
  assert.equal((await s.send(blocks[3]!)).sw, 0x6a86);
  for (const b of blocks) assert.equal((await s.send(b)).sw, 0x9000);
  assert.equal(isdView(card.platform.record()).clientCas.length, 3);
});
