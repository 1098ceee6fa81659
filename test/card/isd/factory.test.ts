/**
 * Factory personalisation (src/factory/personalise.ts against the ISD applet): the sequence from
 * OP_READY to SECURED, what it leaves on the card, and that the factory functions are refused
 * for ever afterwards — with and without an SCP03 session.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { equalBytes, fromHex, parseBerTlvs, toHex } from '../../../src/bytes/index.js';
import { AdminClient, AdminRequest, CardLifecycle, GetDataTag, parseCardInfo } from '../../../src/gp/admin/index.js';
import { buildStoreData } from '../../../src/gp/store-data.js';
import { buildInitializeUpdate } from '../../../src/gp/handshake.js';
import { personalise } from '../../../src/factory/personalise.js';
import { FakePlatform } from './fake-platform.js';
import { MiniCard } from './harness.js';
import { adminSession, getFixture, sealedCard, sw, UID } from './helpers.js';

test('personalise: OP_READY → SECURED with UID, attestation key certified by the manufacturer, factory keys KVN 30', async () => {
  const fx = await getFixture();
  assert.equal(toHex(fx.manifest.uid), toHex(UID));
  assert.equal(fx.manifest.kvn, 0x30);
  const leaf = new X509Certificate(fx.manifest.attestationChain[0]!);
  assert.ok(leaf.checkIssued(new X509Certificate(fx.manufacturer.cert)));
  assert.match(leaf.subject, new RegExp(`CN=${toHex(UID)}`));
  const { card } = await sealedCard();
  const c = new AdminClient(card.transmit);
  await c.select();
  const lc = parseBerTlvs(parseBerTlvs(await c.getData(GetDataTag.lifecycle))[0]!.value);
  assert.deepEqual([...lc.find((t) => t.tag === 0x9f70)!.value], [CardLifecycle.secured]);
  const rec = card.platform.record();
  assert.equal(rec.keySets.length, 1);
  assert.equal(rec.keySets[0]!.kvn, 0x30);
  // the attestation key was generated in the card: the certificate is for the SPKI the card holds
  assert.ok(equalBytes(new Uint8Array(leaf.publicKey.export({ format: 'der', type: 'spki' })), rec.attestation!.spki));
  assert.equal(rec.audit.seq, 2, 'sealed, then the factory check session');
});

test('factory functions and the seal are refused once SECURED, plain or inside a level-33 session', async () => {
  const { card, fx } = await sealedCard();
  const c = new AdminClient(card.transmit);
  await c.select();
  for (const req of [AdminRequest.factorySetUid(new Uint8Array(16)), AdminRequest.factoryGenerateAttestationKey(), AdminRequest.factoryPutKeys(new Uint8Array(49))]) {
    for (const b of buildStoreData(req)) assert.equal(sw(card.transmit(b)), 0x6982, 'plain: no session');
  }
  assert.equal(sw(card.transmit(fromHex('80F0800F'))), 0x6982);
  const s = await adminSession(card, fx.factoryKeys);
  for (const req of [AdminRequest.factorySetUid(new Uint8Array(16)), AdminRequest.factoryGenerateAttestationKey()]) {
    await assert.rejects(s.call(req), (e: { sw?: number }) => e.sw === 0x6985);
  }
  assert.equal(parseCardInfo(await s.call(AdminRequest.getCardInfo())).lifecycle, CardLifecycle.secured);
  // a second personalisation stops at the lifecycle check
  await assert.rejects(
    personalise(card.transmit, { uid: UID, factoryKeys: fx.factoryKeys, manufacturerCa: () => [fx.manufacturer.cert] }),
    /not OP_READY/,
  );
});

test('OP_READY: no secure channel, no operator function, no seal before the factory data is complete', async () => {
  const card = new MiniCard(FakePlatform.blank());
  const c = new AdminClient(card.transmit);
  await c.select();
  assert.equal(sw(card.transmit(buildInitializeUpdate(0x30, new Uint8Array(8)))), 0x6985);
  for (const b of buildStoreData(AdminRequest.getCardInfo())) assert.equal(sw(card.transmit(b)), 0x6985);
  assert.equal(sw(card.transmit(fromHex('80F0800F'))), 0x6985, 'seal without UID, attestation, keys');
  for (const b of buildStoreData(AdminRequest.factorySetUid(UID))) assert.equal(sw(card.transmit(b)), 0x9000);
  assert.equal(sw(card.transmit(fromHex('80F0800F'))), 0x6985, 'seal without attestation and keys');
  assert.equal(card.platform.record().lifecycle, CardLifecycle.opReady);
});
