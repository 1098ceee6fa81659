/**
 * Zero-touch enrolment on the card (design §3.6 Mode B): while the security domain holds no
 * operator root anchor, GenerateIdentityKey, AttestKey, CreateCSR, InstallCertificateChain and
 * ActivateIdentity also run WITHOUT secure messaging — audited as such, at most 4 key generations
 * per power cycle (6983 beyond) — and are refused (6982) once an anchor exists. CreateCSR embeds the
 * attestation evidence (id-aa-evidence) and the EST challenge text, all signed by the identity key;
 * the request verifies with openssl and the evidence with the manufacturer's attestation certificate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { equalBytes, toHex } from '../../../src/bytes/index.js';
import { AdminClient, AdminRequest, Field, Fn, KeyAlg, SlotStatus, parseCardInfo, parseFunctionResponse, req, sha256, verifyAttestation } from '../../../src/gp/admin/index.js';
import { AuditEvent, OID_AA_EVIDENCE } from '../../../src/gp/admin/constants.js';
import { parseAuditEntry } from '../../../src/gp/admin/audit.js';
import { readCsrExtras } from '../../../src/operator/est/evidence.js';
import { adminSession, rejectsSw, sealedCard, UID } from './helpers.js';
import { checkCsr } from './test-ca.js';
import { requirePeer } from '../../interop/peers.js';

const CHALLENGE = 'setls-est1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.1999999999999.AAAAAAAAAAAAAAAAAAAAAA';

async function plainClient(card: { transmit: (a: Uint8Array) => Uint8Array }): Promise<AdminClient> {
  const c = new AdminClient(card.transmit);
  await c.select();
  return c;
}

function lastEvents(card: Awaited<ReturnType<typeof sealedCard>>['card'], n: number): number[] {
  return card.platform.record().audit.entries.slice(-n).map((e) => parseAuditEntry(e).event);
}

test('plain enrolment before an anchor: key, attestation, CSR with evidence and challenge, chain, activation — audited as plain', async (t) => {
  const { card, fx } = await sealedCard();
  const c = await plainClient(card);
  const gen = parseFunctionResponse(Fn.generateIdentityKey, await c.callPlain(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 })));
  const spki = req(gen, Field.spki, 'spki');
  const nonce = randomBytes(32);
  const csrDer = req(parseFunctionResponse(Fn.createCsr, await c.callPlain(AdminRequest.createCsr({ slot: 1, nonce, challenge: CHALLENGE, evidence: true }))), Field.csr, 'csr');
  const csr = await checkCsr(csrDer); // the identity key's signature over everything, evidence included
  assert.ok(equalBytes(csr.spki, spki));
  assert.ok(csr.attributes.some((a) => a.type === OID_AA_EVIDENCE), 'id-aa-evidence attribute');
  const extras = readCsrExtras(csrDer);
  assert.equal(extras.challenge, CHALLENGE, 'the challenge text is the challengePassword');
  const ev = extras.evidence!;
  assert.deepEqual(ev.chain.map((x) => toHex(x)), fx.manifest.attestationChain.map((x) => toHex(x)), 'the attestation chain travels in certs');
  const st = verifyAttestation(ev.statement, ev.signature, fx.manifest.attestationChain[0]!);
  assert.equal(toHex(st.nonce), toHex(nonce));
  assert.equal(toHex(st.uid), toHex(UID));
  assert.equal(toHex(st.spkiSha256), toHex(sha256(spki)));
  assert.equal(st.generatedInCard, true);
  // a real peer checks the self-signature of the request as the card wrote it
  if (requirePeer(t, 'openssl')) {
    const dir = mkdtempSync(join(tmpdir(), 'setls-csr-'));
    try {
      writeFileSync(join(dir, 'csr.der'), csrDer);
      const out = execFileSync('openssl', ['req', '-inform', 'DER', '-in', join(dir, 'csr.der'), '-verify', '-noout', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
      assert.match(out, /challengePassword\s*:\s*setls-est1\./);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // AttestKey alone, plain, too
  const att = await c.callPlain(AdminRequest.attestKey({ slot: 1, nonce }));
  assert.ok(att.length > 0);

  const leaf = await fx.operatorCa.issueForSpki(spki, 'device.example');
  await c.callPlain(AdminRequest.installCertificateChain({ slot: 1, certificates: [leaf, fx.operatorCa.cert] }));
  const act = parseFunctionResponse(Fn.activateIdentity, await c.callPlain(AdminRequest.activateIdentity({ slot: 1 })));
  assert.equal(req(act, Field.slotStatus, 'status')[0], SlotStatus.active);
  assert.equal(card.platform.tls().identities[1]!.chain[0], toHex(leaf), 'the TLS applet serves the chain');
  // every plain function is audited as plain (CreateCSR with evidence: its attestation entry, then its own)
  const events = card.platform.record().audit.entries.map((e) => parseAuditEntry(e));
  const plain = events.filter((e) => e.event === AuditEvent.plainFunctionExecuted).map((e) => (e.detail[0]! << 8) | e.detail[1]!);
  assert.deepEqual(plain, [Fn.generateIdentityKey, Fn.attestKey, Fn.createCsr, Fn.attestKey, Fn.installCertificateChain, Fn.activateIdentity]);
  assert.deepEqual(lastEvents(card, 1), [AuditEvent.plainFunctionExecuted]);
});

test('plain: only the enrolment functions; refused once the card has an operator root anchor', async () => {
  const { card, fx } = await sealedCard();
  const c = await plainClient(card);
  const info = parseCardInfo(await c.callPlain(AdminRequest.getCardInfo()));
  assert.equal(info.operatorRootSha256, undefined, 'GetCardInfo (read only) answers plain: no operator yet');
  await rejectsSw(c.callPlain(AdminRequest.readAuditLog({ from: 1, max: 1 })), 0x6982, 'ReadAuditLog is not an enrolment function');
  await rejectsSw(c.callPlain(AdminRequest.deleteKey({ slot: 1 })), 0x6982, 'DeleteKey is not an enrolment function');
  await rejectsSw(c.callPlain(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert] })), 0x6982, 'nor is PutTrustAnchors');
  await c.callPlain(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 }));

  const s = await adminSession(card, fx.factoryKeys);
  await s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert] }));
  s.close();
  const p = await plainClient(card);
  await rejectsSw(p.callPlain(AdminRequest.generateIdentityKey({ slot: 2, algorithm: KeyAlg.p256 })), 0x6982, 'anchor: no plain key generation');
  await rejectsSw(p.callPlain(AdminRequest.createCsr({ slot: 1, nonce: randomBytes(32), evidence: true })), 0x6982, 'anchor: no plain CSR');
  await rejectsSw(p.callPlain(AdminRequest.attestKey({ slot: 1, nonce: randomBytes(32) })), 0x6982, 'anchor: no plain attestation');
  await rejectsSw(p.callPlain(AdminRequest.activateIdentity({ slot: 1 })), 0x6982, 'anchor: no plain activation');
  await rejectsSw(p.callPlain(AdminRequest.getCardInfo()), 0x6982, 'anchor: no plain card info');
  assert.equal(card.platform.tls().identities[2], undefined, 'nothing generated');
});

test('plain key generations are rate-limited per power cycle (6983), failed ones do not count, power-on resets', async () => {
  const { card } = await sealedCard();
  let c = await plainClient(card);
  for (let slot = 1; slot <= 4; slot++) await c.callPlain(AdminRequest.generateIdentityKey({ slot, algorithm: KeyAlg.p256 }));
  await rejectsSw(c.callPlain(AdminRequest.generateIdentityKey({ slot: 5, algorithm: KeyAlg.p256 })), 0x6983, 'fifth plain generation');
  assert.equal(card.platform.tls().identities[5], undefined);
  // the other plain functions still run
  await c.callPlain(AdminRequest.createCsr({ slot: 4, nonce: randomBytes(32), evidence: true }));
  card.powerCycle();
  c = await plainClient(card);
  await rejectsSw(c.callPlain(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 })), 0x6a89, 'occupied slot');
  for (let slot = 5; slot <= 8; slot++) await c.callPlain(AdminRequest.generateIdentityKey({ slot, algorithm: KeyAlg.p256 }));
  assert.ok(card.platform.tls().identities[8], 'the refused generation did not use up the budget');
});

test('CreateCSR: evidence needs a nonce; a challenge must be printable ASCII ≤ 127 bytes', async () => {
  const { card } = await sealedCard();
  const c = await plainClient(card);
  await c.callPlain(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 }));
  await rejectsSw(c.callPlain(AdminRequest.createCsr({ slot: 1, evidence: true })), 0x6a80, 'evidence without nonce');
  await rejectsSw(c.callPlain(AdminRequest.createCsr({ slot: 1, nonce: randomBytes(32), challenge: 'x'.repeat(128) })), 0x6a80, 'long challenge');
  await rejectsSw(c.callPlain(AdminRequest.createCsr({ slot: 1, nonce: randomBytes(32), challenge: 'a b' })), 0x6a80, 'space in challenge');
});
