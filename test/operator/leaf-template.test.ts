/**
 * The enrolment hot path's PKI (pki/leaf-template.ts, pki/csr-check.ts) against the high-level
 * @peculiar/x509 path it replaces: the same TBSCertificate byte for byte and field by field for the
 * same request, a certificate node:crypto, @peculiar/x509 and openssl accept (x509 -text, verify),
 * and the same CSR results and refusal codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { webcrypto, X509Certificate } from 'node:crypto';
import { OperatorCa, type LeafRequest } from '../../src/operator/pki/issuing-ca.js';
import { derChildren } from '../../src/operator/pki/der.js';
import { checkCsr } from '../../src/operator/pki/csr.js';
import { checkCsrDer } from '../../src/operator/pki/csr-check.js';
import { OpError } from '../../src/operator/errors.js';
import { toPem, x509 } from '../../src/operator/pki/x509.js';
import { makeCsr, tempDir } from './helpers.js';
import { requirePeer } from '../interop/peers.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function p256Spki(): Promise<Uint8Array> {
  const k = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  return new Uint8Array(await webcrypto.subtle.exportKey('spki', k.publicKey));
}

async function requests(): Promise<LeafRequest[]> {
  const spki = await p256Spki();
  const now = Date.parse('2026-12-06T23:00:00.123Z');
  return [
    { spkiDer: spki, serial: Uint8Array.from([0x41, ...new Array(15).fill(7)]), subject: 'CN=00112233445566778899aabbccddeeff', dnsNames: ['localhost', 'card.example'], ipAddresses: ['127.0.0.1', '::1', '2001:db8::17'], notBefore: new Date(now), notAfter: new Date(now + 365 * 86400_000), crlUrl: 'https://op.example:9443/v1/ca/crl' },
    // no SAN, no CRL URL, server auth only, a GeneralizedTime notAfter, a serial whose top bit is set
    { spkiDer: spki, serial: Uint8Array.of(0x9f, 1, 2, 3), subject: 'CN=card', dnsNames: [], ipAddresses: [], notBefore: new Date(now), notAfter: new Date('2051-01-01T00:00:00Z'), clientAuth: false },
    { spkiDer: await p256Spki(), serial: Uint8Array.of(0x00, 0x00, 0x7f), subject: 'CN=a b.c', dnsNames: ['x'], ipAddresses: [], notBefore: new Date(now), notAfter: new Date(now + 86400_000), serverAuth: false },
  ];
}

function tbsOf(der: Uint8Array): Buffer {
  return Buffer.from(derChildren(der)[0]!);
}

test('template issuance gives the TBSCertificate of @peculiar/x509, field by field and byte for byte; the certificate verifies', async () => {
  const { ca } = await OperatorCa.generate('CN=Scale Test CA', 3650);
  for (const r of await requests()) {
    const slow = await ca.issue(r);
    const fast = await ca.issueFast(r);
    const a = new x509.X509Certificate(new Uint8Array(slow));
    const b = new x509.X509Certificate(new Uint8Array(fast));
    assert.equal(b.serialNumber, a.serialNumber);
    assert.equal(b.subject, a.subject);
    assert.equal(b.issuer, a.issuer);
    assert.equal(b.notBefore.getTime(), a.notBefore.getTime());
    assert.equal(b.notAfter.getTime(), a.notAfter.getTime());
    assert.deepEqual(b.signatureAlgorithm, a.signatureAlgorithm);
    assert.deepEqual(Buffer.from(b.publicKey.rawData), Buffer.from(a.publicKey.rawData));
    assert.deepEqual(
      b.extensions.map((e) => [e.type, e.critical, Buffer.from(e.value).toString('hex')]),
      a.extensions.map((e) => [e.type, e.critical, Buffer.from(e.value).toString('hex')]),
    );
    assert.deepEqual(tbsOf(fast), tbsOf(slow));
    assert.ok(await b.verify({ publicKey: ca.certificate.publicKey, signatureOnly: true }), '@peculiar/x509 verifies the signature');
    const n = new X509Certificate(fast);
    assert.ok(n.checkIssued(ca.nodeCert) && n.verify(ca.nodeCert.publicKey), 'node:crypto verifies it');
  }
});

test('openssl reads (x509 -text) and verifies (verify -CAfile) a template certificate', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const { ca } = await OperatorCa.generate('CN=Scale Test CA', 3650);
  const r = (await requests())[0]!;
  const now = Date.now();
  const der = await ca.issueFast({ ...r, notBefore: new Date(now - 60_000), notAfter: new Date(now + 86400_000) });
  const tmp = tempDir();
  try {
    writeFileSync(join(tmp.dir, 'ca.pem'), ca.certPem);
    writeFileSync(join(tmp.dir, 'leaf.pem'), toPem(der, 'CERTIFICATE'));
    const text = execFileSync('openssl', ['x509', '-in', join(tmp.dir, 'leaf.pem'), '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, /DNS:localhost, DNS:card\.example, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
    assert.match(text, /URI:https:\/\/op\.example:9443\/v1\/ca\/crl/);
    assert.match(text, /Subject: CN ?= ?00112233445566778899aabbccddeeff/);
    const v = execFileSync('openssl', ['verify', '-CAfile', join(tmp.dir, 'ca.pem'), '-purpose', 'sslserver', join(tmp.dir, 'leaf.pem')], { encoding: 'utf8' });
    assert.match(v, /leaf\.pem: OK/);
  } finally {
    tmp.cleanup();
  }
});

test('a subject the template does not cover goes to the high-level path (same certificate)', async () => {
  const { ca } = await OperatorCa.generate('CN=Scale Test CA', 3650);
  const r = { ...(await requests())[0]!, subject: 'CN=card, O=Example' };
  const fast = new x509.X509Certificate(new Uint8Array(await ca.issueFast(r)));
  assert.equal(fast.subject, 'CN=card, O=Example');
});

async function codeOf(p: () => unknown): Promise<string> {
  try {
    await p();
  } catch (e) {
    assert.ok(e instanceof OpError, String(e));
    return e.code;
  }
  return 'accepted';
}

test('the hot-path CSR check gives the high-level result and the same refusal codes', async () => {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const other = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const good = await makeCsr(keys);
  assert.deepEqual(checkCsrDer(good), await checkCsr(good));
  const rsaKeys = (await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const rsa = new Uint8Array((await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=card', keys: rsaKeys, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } })).rawData);
  assert.deepEqual(checkCsrDer(rsa), await checkCsr(rsa));
  assert.equal(checkCsrDer(rsa).alg, 'rsa2048');
  const p384 = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as EcKeyGenParams, true, ['sign', 'verify'])) as CryptoKeyPair;
  const weak = new Uint8Array((await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=card', keys: p384, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } })).rawData);
  const flipped = good.slice();
  flipped[flipped.length - 5]! ^= 1;
  const cases: [string, Uint8Array][] = [
    ['garbage', Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00)],
    ['truncated', good.subarray(0, good.length - 3)],
    ['other signer', await makeCsr(keys, other)],
    ['signature bit flipped', flipped],
    ['P-384 key', weak],
  ];
  for (const [name, der] of cases) {
    assert.equal(await codeOf(() => checkCsrDer(der)), await codeOf(() => checkCsr(der)), name);
    assert.notEqual(await codeOf(() => checkCsrDer(der)), 'accepted', name);
  }
  // Stricter than the high-level parser, which ignores bytes after the request.
  assert.equal(await codeOf(() => checkCsrDer(Uint8Array.from([...good, 0]))), 'ERR_OP_CSR_INVALID');
});
