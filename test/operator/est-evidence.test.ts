/**
 * The operator's reader of a zero-touch CSR's extras (est/evidence.ts) on hand-made requests: no
 * attributes at all, a challengePassword that is not UTF-8 (ERR_OP_CSR_INVALID, not a 500), an
 * id-aa-evidence value that is not EvidenceBundles (ERR_OP_ATTESTATION_FORMAT), two challenges.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { der, oid } from '../../src/card/applets/isd/der.js';
import { OID_AA_EVIDENCE } from '../../src/gp/admin/constants.js';
import { readCsrExtras } from '../../src/operator/est/evidence.js';

function csrWith(attributes: Uint8Array[]): Uint8Array {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
  const subject = der(0x30, der(0x31, der(0x30, oid('2.5.4.3'), der(0x0c, new TextEncoder().encode('x')))));
  const info = der(0x30, der(0x02, Uint8Array.of(0)), subject, spki, der(0xa0, ...attributes));
  const sig = new Uint8Array(sign('sha256', info, { key: privateKey, dsaEncoding: 'der' }));
  return der(0x30, info, der(0x30, oid('1.2.840.10045.4.3.2')), der(0x03, Uint8Array.of(0), sig));
}

const challengeAttr = (value: Uint8Array): Uint8Array => der(0x30, oid('1.2.840.113549.1.9.7'), der(0x31, value));

test('readCsrExtras: nothing, bad UTF-8, a broken evidence value, two challenges', () => {
  assert.deepEqual(readCsrExtras(csrWith([])), { challenge: undefined, evidence: undefined });
  assert.equal(readCsrExtras(csrWith([challengeAttr(der(0x0c, new TextEncoder().encode('setls-est1.x')))])).challenge, 'setls-est1.x');
  assert.throws(() => readCsrExtras(csrWith([challengeAttr(der(0x0c, Uint8Array.of(0xff, 0xfe)))])), (e: { code?: string }) => e.code === 'ERR_OP_CSR_INVALID');
  const twice = challengeAttr(der(0x0c, new TextEncoder().encode('a')));
  assert.throws(() => readCsrExtras(csrWith([twice, challengeAttr(der(0x0c, new TextEncoder().encode('b')))])), (e: { code?: string }) => e.code === 'ERR_OP_CSR_INVALID');
  const broken = der(0x30, oid(OID_AA_EVIDENCE), der(0x31, der(0x30, der(0x04, Uint8Array.of(1)))));
  assert.throws(() => readCsrExtras(csrWith([broken])), (e: { code?: string }) => e.code === 'ERR_OP_ATTESTATION_FORMAT');
  assert.throws(() => readCsrExtras(Uint8Array.of(0x30, 0x00)), (e: { code?: string }) => e.code === 'ERR_OP_CSR_INVALID');
});
