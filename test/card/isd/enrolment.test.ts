/**
 * The operator's enrolment of a card through the security domain (design §3.6 Mode A), function by
 * function at level 33: take ownership (PUT KEY), GenerateIdentityKey, AttestKey, CreateCSR,
 * PutTrustAnchors, InstallCertificateChain, ActivateIdentity; then rotation, SetPolicy, LockIdentity,
 * DeleteKey — each checked on the card's state and on what the off-card side can verify.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { concat, equalBytes, fromHex, toHex } from '../../../src/bytes/index.js';
import { buildStoreData } from '../../../src/gp/store-data.js';
import { buildPutKey } from '../../../src/gp/put-key.js';
import { TLS_AID } from './fake-platform.js';
import {
  AdminRequest,
  KeyAlg,
  SlotStatus,
  Field,
  parseAttestKeyResponse,
  parseCardInfo,
  parseFunctionResponse,
  sha256,
  verifyAttestation,
  encodePolicy,
  Fn,
  req,
  AdminClient,
} from '../../../src/gp/admin/index.js';
import { isdView } from '../../../src/card/applets/isd/index.js';
import { adminSession, operatorKeys, rejectsSw, sealedCard, UID } from './helpers.js';
import { checkCsr } from './test-ca.js';

const POLICY = { exportAllowed: false, clientAuth: 'required' } as const;

test('enrolment: ownership, key in the card, attestation, CSR, chain checked against the operator root, activation', async () => {
  const { card, fx } = await sealedCard();
  let s = await adminSession(card, fx.factoryKeys);
  // take ownership: KVN 30 replaced by the operator's 31
  const op = operatorKeys(0x31);
  await s.putKey(op, 0x30);
  assert.deepEqual(card.platform.record().keySets.map((k) => k.kvn), [0x31]);
  s.close();
  const old = new AdminClient(card.transmit);
  await assert.rejects(old.open(fx.factoryKeys), /ERR_GP_INIT_UPDATE|answered 6a88/, 'the old KVN is gone');
  s = await adminSession(card, op);

  const gen = parseFunctionResponse(Fn.generateIdentityKey, await s.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256, policy: POLICY })));
  const spki = req(gen, Field.spki, 'spki');
  assert.ok(equalBytes(spki, fromHex(card.platform.tls().identities[1]!.spki)), 'the TLS applet holds the key');
  await rejectsSw(s.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 })), 0x6a89, 'occupied slot');

  const nonce = randomBytes(32);
  const att = parseAttestKeyResponse(await s.call(AdminRequest.attestKey({ slot: 1, nonce })));
  const st = verifyAttestation(att.statement, att.signature, fx.manifest.attestationChain[0]!);
  assert.equal(toHex(st.uid), toHex(UID));
  assert.equal(st.slot, 1);
  assert.equal(st.algorithm, KeyAlg.p256);
  assert.equal(toHex(st.spkiSha256), toHex(sha256(spki)));
  assert.equal(st.policy, encodePolicy(POLICY));
  assert.equal(st.generatedInCard, true);
  assert.equal(toHex(st.nonce), toHex(nonce));
  assert.equal(st.counter, card.platform.record().audit.seq, 'the counter is the attestation\'s own audit entry');
  // a statement altered by the relay no longer verifies
  const forged = att.statement.slice();
  forged[forged.length - 1] = forged[forged.length - 1]! ^ 1;
  assert.throws(() => verifyAttestation(forged, att.signature, fx.manifest.attestationChain[0]!), /ERR_ADMIN_SIGNATURE|does not verify/);

  const subject = fromHex('3019311730150603550403130e6465766963652e6578616d706c65'); // CN=device.example (PrintableString)
  const csrResp = parseFunctionResponse(Fn.createCsr, await s.call(AdminRequest.createCsr({ slot: 1, subject, nonce })));
  const csr = await checkCsr(req(csrResp, Field.csr, 'csr'));
  assert.ok(equalBytes(csr.spki, spki), 'the CSR is for the attested key');
  assert.equal(csr.subject, 'CN=device.example');
  assert.ok(csr.attributes.some((a) => a.type === '1.2.840.113549.1.9.7'), 'the nonce travels as challengePassword');

  await s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert] }));
  const leaf = await fx.operatorCa.issueForSpki(spki, 'device.example');
  // a chain for another key, and a chain that does not end at the operator root, are refused
  const other = await fx.operatorCa.issueForSpki(new Uint8Array(new X509Certificate(fx.manufacturer.cert).publicKey.export({ format: 'der', type: 'spki' })), 'x');
  await rejectsSw(s.call(AdminRequest.installCertificateChain({ slot: 1, certificates: [other, fx.operatorCa.cert] })), 0x6a80, 'leaf for another key');
  const stranger = await fx.manufacturer.issueForSpki(spki, 'device.example');
  await rejectsSw(s.call(AdminRequest.installCertificateChain({ slot: 1, certificates: [stranger] })), 0x6a80, 'not under the operator root');
  await rejectsSw(s.call(AdminRequest.activateIdentity({ slot: 1 })), 0x6985, 'nothing staged yet');

  const inst = parseFunctionResponse(Fn.installCertificateChain, await s.call(AdminRequest.installCertificateChain({ slot: 1, certificates: [leaf, fx.operatorCa.cert] })));
  assert.equal(req(inst, Field.slotStatus, 'status')[0], SlotStatus.staged);
  assert.deepEqual(card.platform.tls().identities[1]!.chain, [], 'staged, not served');
  const act = parseFunctionResponse(Fn.activateIdentity, await s.call(AdminRequest.activateIdentity({ slot: 1 })));
  assert.equal(req(act, Field.slotStatus, 'status')[0], SlotStatus.active);
  assert.deepEqual(card.platform.tls().identities[1]!.chain, [toHex(leaf), toHex(fx.operatorCa.cert)], 'now served');
  assert.ok(isdView(card.platform.record()).identityServable(1));

  const info = parseCardInfo(await s.call(AdminRequest.getCardInfo()));
  assert.equal(toHex(info.uid), toHex(UID));
  assert.deepEqual(info.kvns, [0x31]);
  assert.equal(info.slots.length, 1);
  assert.deepEqual({ ...info.slots[0]!, spkiSha256: toHex(info.slots[0]!.spkiSha256) }, {
    slot: 1,
    algorithm: KeyAlg.p256,
    status: SlotStatus.active,
    policy: encodePolicy(POLICY),
    locked: false,
    spkiSha256: toHex(sha256(spki)),
  });
  assert.equal(toHex(info.operatorRootSha256!), toHex(sha256(fx.operatorRoot.cert)));
});

test('rotation, policy, lock and delete', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  await s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert] }));
  const enrol = async (slot: number) => {
    const spki = req(parseFunctionResponse(Fn.generateIdentityKey, await s.call(AdminRequest.generateIdentityKey({ slot, algorithm: KeyAlg.p256 }))), Field.spki, 'spki');
    await s.call(AdminRequest.installCertificateChain({ slot, certificates: [await fx.operatorCa.issueForSpki(spki, `slot${slot}`), fx.operatorCa.cert] }));
  };
  await enrol(1);
  await s.call(AdminRequest.activateIdentity({ slot: 1 }));
  await enrol(2);
  // one transaction: slot 2 active, slot 1 retired and no longer served
  await s.call(AdminRequest.activateIdentity({ slot: 2, retireSlot: 1 }));
  const v = isdView(card.platform.record());
  assert.ok(v.identityServable(2));
  assert.ok(!v.identityServable(1));
  assert.deepEqual(card.platform.tls().identities[1]!.chain, []);
  assert.equal(card.platform.record().slots.find((x) => x.slot === 1)!.status, SlotStatus.retired);

  await s.call(AdminRequest.setPolicy({ slot: 2, policy: { exportAllowed: true, clientAuth: 'optional' } }));
  assert.deepEqual(card.platform.tls().identities[2]!.policy, { exportAllowed: true, clientAuth: 'optional' });
  await rejectsSw(s.call(AdminRequest.setPolicy({ slot: 5, policy: { exportAllowed: true, clientAuth: 'none' } })), 0x6a88);

  await s.call(AdminRequest.lockIdentity({ slot: 2, lock: true }));
  assert.ok(!isdView(card.platform.record()).identityServable(2), 'a locked identity serves no new handshake');
  assert.ok(isdView(card.platform.record()).identityLocked(2));
  await s.call(AdminRequest.lockIdentity({ slot: 2, lock: false }));
  assert.ok(isdView(card.platform.record()).identityServable(2));

  await s.call(AdminRequest.deleteKey({ slot: 1 }));
  assert.equal(card.platform.tls().identities[1], undefined);
  assert.equal(card.platform.record().slots.some((x) => x.slot === 1), false);
  await rejectsSw(s.call(AdminRequest.deleteKey({ slot: 1 })), 0x6a88);
  await rejectsSw(s.call(AdminRequest.generateIdentityKey({ slot: 9, algorithm: KeyAlg.p256 })), 0x6a80, 'slot out of range');
  await rejectsSw(s.call(AdminRequest.generateIdentityKey({ slot: 3, algorithm: 7 })), 0x6a80, 'unknown algorithm');
});

test('an admin session on channel 1 while channel 0 serves the TLS applet', async () => {
  const { card, fx } = await sealedCard();
  // channel 0: the TLS applet is selected and keeps answering
  assert.equal(toHex(card.transmit(concat(fromHex('00A4040007'), TLS_AID, fromHex('00')))), '9000');
  const ch = card.transmit(fromHex('0070000001'));
  assert.equal(toHex(ch), '019000');
  const s = new AdminClient(card.transmit, { channel: 1 });
  await s.select();
  await s.open(fx.factoryKeys);
  const gen = s.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 }));
  assert.equal(toHex(card.transmit(fromHex('80CA006600'))), '6d00', 'channel 0 still routes to the TLS applet');
  await gen;
  assert.equal(card.isd.sessionState(1), 'open');
  assert.equal(card.isd.sessionState(0), 'idle');
  // the session is bound to channel 1: its commands moved to channel 0 reach no session
  const w = s.session!.wrap(buildStoreData(AdminRequest.getCardInfo(), { channel: 1 })[0]!);
  const moved = w.slice();
  moved[0] = moved[0]! & ~0x03;
  assert.equal(toHex(card.transmit(moved)), '6d00', 'channel 0: the TLS applet');
  // closing channel 1 ends the session
  assert.equal(toHex(card.transmit(fromHex('01708001'))), '9000');
  assert.equal(card.isd.sessionState(1), 'idle');
});

test('PUT KEY: add, replace, KCV checked, bounded; KVN 00 opens the first key set', async () => {
  const { card, fx } = await sealedCard();
  const s = await adminSession(card, fx.factoryKeys);
  await s.putKey(operatorKeys(0x31));
  await rejectsSw(s.putKey(operatorKeys(0x31)), 0x6a80, 'exists already');
  await rejectsSw(s.putKey(operatorKeys(0x36), 0x35), 0x6a88, 'nothing to replace');
  // a key check value that does not match its key: refused, nothing written
  const before = card.platform.store.bytes.slice();
  const cmd = buildPutKey(s.session!.dek!, operatorKeys(0x33));
  cmd[5 + 1 + 3 + 16 + 1] = cmd[5 + 1 + 3 + 16 + 1]! ^ 0xff; // first byte of the K-ENC KCV
  assert.equal((await s.send(cmd)).sw, 0x6a80);
  assert.ok(equalBytes(card.platform.store.bytes, before));
  await s.putKey(operatorKeys(0x32));
  await s.putKey(operatorKeys(0x33));
  await rejectsSw(s.putKey(operatorKeys(0x34)), 0x6a84, 'at most 4 key sets');
  assert.deepEqual(card.platform.record().keySets.map((k) => k.kvn), [0x30, 0x31, 0x32, 0x33]);
  s.close();
  // KVN 00: the card picks its first key set (30) and says so
  const c = new AdminClient(card.transmit);
  await c.select();
  await c.open(fx.factoryKeys, 0x33, 0x00);
  assert.equal(c.session!.cardInfo!.kvn, 0x30);
  // and every added set opens its own session
  await (await adminSession(card, operatorKeys(0x33))).call(AdminRequest.getCardInfo());
});
