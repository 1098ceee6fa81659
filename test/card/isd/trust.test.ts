/**
 * The card's trust state through the security domain: PutTrustAnchors, PutRevocationList (a number
 * that never goes back), PutTimeAnchor (operator-root signature, UID, single-use counter; moves the
 * clock back too) and ResetPin (new PIN, unblock only, format).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromHex, toHex } from '../../../src/bytes/index.js';
import { AdminRequest, Field, Fn, parseCardInfo, parseFunctionResponse, req, sha256, signTimeAnchor } from '../../../src/gp/admin/index.js';
import { isdView } from '../../../src/card/applets/isd/index.js';
import { adminSession, rejectsSw, sealedCard, UID } from './helpers.js';

test('PutRevocationList: replaces the list, refuses an older or equal number, serials compared canonically', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  const r = parseFunctionResponse(Fn.putRevocationList, await s.call(AdminRequest.putRevocationList({ number: 5, serials: [fromHex('00c0ffee'), fromHex('01')] })));
  assert.equal(toHex(req(r, Field.number, 'n')), '00000005');
  let v = isdView(card.platform.record());
  assert.ok(v.isRevoked(fromHex('c0ffee')) && v.isRevoked(fromHex('0000c0ffee')) && v.isRevoked(fromHex('01')));
  assert.ok(!v.isRevoked(fromHex('02')));
  const before = card.platform.store.bytes.slice();
  await rejectsSw(s.call(AdminRequest.putRevocationList({ number: 5, serials: [] })), 0x6985, 'same number');
  await rejectsSw(s.call(AdminRequest.putRevocationList({ number: 4, serials: [] })), 0x6985, 'older number');
  assert.ok(Buffer.from(card.platform.store.bytes).equals(before), 'refused: nothing written');
  await s.call(AdminRequest.putRevocationList({ number: 6, serials: [fromHex('02')] }));
  v = isdView(card.platform.record());
  assert.ok(v.isRevoked(fromHex('02')) && !v.isRevoked(fromHex('01')));
  assert.equal(parseCardInfo(await s.call(AdminRequest.getCardInfo())).revocationNumber, 6);
});

test('PutTrustAnchors: operator root and client CAs must be CA certificates', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  const leaf = await fx.operatorCa.issueForSpki(await spkiOf(fx.operatorCa.cert), 'not a CA');
  await rejectsSw(s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [leaf] })), 0x6a80, 'an end-entity certificate');
  await rejectsSw(s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert, fx.operatorCa.cert] })), 0x6a80, 'one root');
  const r = parseFunctionResponse(Fn.putTrustAnchors, await s.call(AdminRequest.putTrustAnchors({ role: 'client-ca', certificates: [fx.operatorCa.cert, fx.manufacturer.cert] })));
  assert.equal(toHex(req(r, Field.digest, 'd')), toHex(sha256(new Uint8Array([...fx.operatorCa.cert, ...fx.manufacturer.cert]))));
  assert.equal(isdView(card.platform.record()).clientCas.length, 2);
  await s.call(AdminRequest.putTrustAnchors({ role: 'client-ca', certificates: [] }));
  assert.equal(isdView(card.platform.record()).clientCas.length, 0);
});

async function spkiOf(certDer: Uint8Array): Promise<Uint8Array> {
  const { X509Certificate } = await import('node:crypto');
  return new Uint8Array(new X509Certificate(certDer).publicKey.export({ format: 'der', type: 'spki' }));
}

test('PutTimeAnchor: needs the operator root, checks UID, signature and counter; moves the floor forward and back', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  const t0 = 1_760_000_000;
  const a1 = signTimeAnchor({ uid: UID, time: t0, counter: 1 }, fx.operatorRoot.key);
  await rejectsSw(s.call(AdminRequest.putTimeAnchor(a1)), 0x6985, 'no operator root yet');
  await s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert] }));
  await s.call(AdminRequest.putTimeAnchor(a1));
  assert.equal(card.platform.tls().floor, t0);
  await rejectsSw(s.call(AdminRequest.putTimeAnchor(a1)), 0x6985, 'replayed anchor (same counter)');
  const back = signTimeAnchor({ uid: UID, time: t0 - 86_400, counter: 2 }, fx.operatorRoot.key);
  await s.call(AdminRequest.putTimeAnchor(back));
  assert.equal(card.platform.tls().floor, t0 - 86_400, 'the only way back: a newer anchor with an older time');
  const otherCard = signTimeAnchor({ uid: new Uint8Array(16), time: t0, counter: 3 }, fx.operatorRoot.key);
  await rejectsSw(s.call(AdminRequest.putTimeAnchor(otherCard)), 0x6a80, 'for another UID');
  const wrongKey = signTimeAnchor({ uid: UID, time: t0, counter: 3 }, fx.operatorCa.key);
  await rejectsSw(s.call(AdminRequest.putTimeAnchor(wrongKey)), 0x6a80, 'not signed by the operator root');
  const tampered = { content: a1.content.slice(), signature: a1.signature };
  tampered.content[tampered.content.length - 1] = 9; // counter 1 → 9, signature of the old bytes
  await rejectsSw(s.call(AdminRequest.putTimeAnchor(tampered)), 0x6a80, 'altered content');
  const info = parseCardInfo(await s.call(AdminRequest.getCardInfo()));
  assert.deepEqual(info.timeAnchor, { time: t0 - 86_400, counter: 2 });
});

test('ResetPin: a new user PIN (unblocked), an operator PIN unblock, a malformed PIN refused', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  const pad = (p: string) => Uint8Array.from([...p].map((c) => c.charCodeAt(0)).concat(Array(8 - p.length).fill(0xff)));
  await s.call(AdminRequest.resetPin({ pin: 'user', newPin: pad('24681357') }));
  assert.deepEqual(card.platform.tls().pins.user, { value: '24681357', tries: 3 });
  card.platform.tls().pins.operator.tries = 0; // blocked (in RAM of the fake)
  await s.call(AdminRequest.resetPin({ pin: 'operator' }));
  assert.deepEqual(card.platform.tls().pins.operator, { value: '5678', tries: 3 });
  await rejectsSw(s.call(AdminRequest.resetPin({ pin: 'user', newPin: pad('12a4') })), 0x6a80);
  await rejectsSw(s.call(AdminRequest.resetPin({ pin: 'user', newPin: pad('123') })), 0x6a80);
  assert.equal(card.platform.tls().pins.user.value, '24681357');
});
