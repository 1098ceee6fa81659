/**
 * Confidentiality of admin payloads against the relaying host (design §8.7): the APDU log of a
 * whole enrolment at level 33 — ownership (PUT KEY), GenerateIdentityKey, AttestKey, CreateCSR,
 * PutTrustAnchors, InstallCertificateChain, ActivateIdentity — plus a PIN reset, searched for every
 * secret and every payload it carried: new SCP03 keys and their KCVs, the PIN, the SPKI, the
 * CSR, the attestation statement and signature, the certificates, the nonce. The same enrolment
 * at level 11 (MACs only) shows them in clear: the search does find what is there. On the ISD
 * applet alone and through the real EmulatedCard (whose log holds every APDU on the wire, GET
 * RESPONSE included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { concat } from '../../../src/bytes/index.js';
import { AdminRequest, Field, Fn, KeyAlg, parseAttestKeyResponse, parseFunctionResponse, req } from '../../../src/gp/admin/index.js';
import { aesKcv } from '../../../src/gp/keys.js';
import { CARD_KINDS, type CardKind } from './cards.js';
import { adminSession, operatorKeys, sealedTestCard } from './helpers.js';

const PIN = '24681357';

async function enrol(kind: CardKind, level: number): Promise<{ log: Buffer; secrets: Record<string, Uint8Array> }> {
  const { card, fx } = await sealedTestCard(kind);
  card.log.length = 0;
  const s1 = await adminSession(card, fx.factoryKeys, { level: 0x33 });
  const op = operatorKeys(0x31);
  await s1.putKey(op, 0x30);
  s1.close();
  const s = await adminSession(card, op, { level });
  const nonce = randomBytes(32);
  const pin = Uint8Array.from([...PIN].map((c) => c.charCodeAt(0)));
  const secrets: Record<string, Uint8Array> = {
    'K-ENC': op.enc,
    'K-MAC': op.mac,
    'K-DEK': op.dek,
    'KVN ‖ KCVs': concat(Uint8Array.of(op.kvn), aesKcv(op.enc), aesKcv(op.mac), aesKcv(op.dek)),
    PIN: pin,
    nonce,
  };
  if (level === 0x33) {
    const spki = req(parseFunctionResponse(Fn.generateIdentityKey, await s.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 }))), Field.spki, 'spki');
    const att = parseAttestKeyResponse(await s.call(AdminRequest.attestKey({ slot: 1, nonce })));
    const csr = req(parseFunctionResponse(Fn.createCsr, await s.call(AdminRequest.createCsr({ slot: 1, nonce }))), Field.csr, 'csr');
    await s.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [fx.operatorRoot.cert] }));
    const leaf = await fx.operatorCa.issueForSpki(spki, 'device.example');
    await s.call(AdminRequest.installCertificateChain({ slot: 1, certificates: [leaf, fx.operatorCa.cert] }));
    await s.call(AdminRequest.activateIdentity({ slot: 1 }));
    await s.call(AdminRequest.resetPin({ pin: 'user', newPin: pin }));
    Object.assign(secrets, { SPKI: spki, statement: att.statement, signature: att.signature, CSR: csr, leaf, 'operator CA': fx.operatorCa.cert, 'operator root': fx.operatorRoot.cert });
  } else {
    // level 11: the operator functions are refused, but their requests still cross — in clear
    for (const r of [AdminRequest.attestKey({ slot: 1, nonce }), AdminRequest.resetPin({ pin: 'user', newPin: pin })]) {
      const { sw } = await s.send(concat(Uint8Array.of(0x80, 0xe2, 0x91, 0x00, r.length), r, Uint8Array.of(0)));
      assert.equal(sw, 0x6982);
    }
  }
  const log = Buffer.concat(card.log.flatMap((e) => [Buffer.from(e.c), Buffer.from(e.r)]));
  card.dispose();
  return { log, secrets };
}

/** Windows of `b` to look for: the whole value if short, else every 12-byte window. */
function windows(b: Uint8Array): Uint8Array[] {
  if (b.length <= 16) return [b];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 12 <= b.length; i += 4) out.push(b.subarray(i, i + 12));
  return out;
}

for (const kind of CARD_KINDS) {
test(`${kind}: level 33: the APDU log of an enrolment and a PIN reset holds no key, PIN, certificate or payload byte in clear`, async () => {
  const { log, secrets } = await enrol(kind, 0x33);
  for (const [name, value] of Object.entries(secrets)) {
    for (const w of windows(value)) assert.equal(log.indexOf(Buffer.from(w)), -1, `${name} appears in the APDU log`);
  }
});

test(`${kind}: control: at level 11 (no encryption) the same search finds the PIN and the nonce`, async () => {
  const { log, secrets } = await enrol(kind, 0x11);
  assert.notEqual(log.indexOf(Buffer.from(secrets.PIN!)), -1);
  assert.notEqual(log.indexOf(Buffer.from(secrets.nonce!)), -1);
});
}
