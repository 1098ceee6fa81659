/** verifyClientChain (src/tls/x509/): chain order, anchors, validity, CA flags, EKU, bounds, alerts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { SetlsError } from '../../src/bytes/index.js';
import { alertForError } from '../../src/tls/errors.js';
import { certificateSubjectDer, splitSubjectAltNames, verifyClientChain } from '../../src/tls/x509/index.js';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, makeCa, makeClientLeaf } from './helpers/clientPki.js';

const now = Date.now();

function alertOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SetlsError, String(e));
    return alertForError(e);
  }
  assert.fail('expected a throw');
}

test('x509: leaf → intermediate → root anchor verifies and reports the peer identity', async () => {
  const root = await makeCa('CN=root');
  const inter = await makeCa('CN=inter', root);
  const leaf = await makeClientLeaf(inter);
  const peer = verifyClientChain([leaf.der, inter.der], [root.der], now);
  assert.equal(peer.subject, new X509Certificate(leaf.der).subject);
  assert.deepEqual(peer.subjectAltNames, ['DNS:client.example', 'email:device@example.com']);
  assert.deepEqual(Buffer.from(peer.fingerprint256), createHash('sha256').update(leaf.der).digest());
  assert.deepEqual(Buffer.from(peer.certificate), Buffer.from(leaf.der));
  // the client may also send the root itself
  assert.equal(verifyClientChain([leaf.der, inter.der, root.der], [root.der], now).subject, peer.subject);
  // or the anchor may be the intermediate
  assert.equal(verifyClientChain([leaf.der], [inter.der], now).subject, peer.subject);
});

test('x509: wrong order, missing intermediate and foreign anchors fail with the right alert', async () => {
  const root = await makeCa('CN=root');
  const inter = await makeCa('CN=inter', root);
  const leaf = await makeClientLeaf(inter);
  const other = await makeCa('CN=root');
  assert.equal(alertOf(() => verifyClientChain([inter.der, leaf.der], [root.der], now)), 42); // bad_certificate
  assert.equal(alertOf(() => verifyClientChain([leaf.der], [root.der], now)), 48); // unknown_ca
  assert.equal(alertOf(() => verifyClientChain([leaf.der, inter.der], [other.der], now)), 48); // same name, other key
  assert.equal(alertOf(() => verifyClientChain([leaf.der, inter.der], [], now)), 48);
});

test('x509: validity of leaf, intermediate and anchor against nowMs → certificate_expired', async () => {
  const root = await makeCa('CN=root');
  const leaf = await makeClientLeaf(root, { notAfter: new Date(now - 3600_000) });
  assert.equal(alertOf(() => verifyClientChain([leaf.der], [root.der], now)), 45);
  const fresh = await makeClientLeaf(root);
  assert.equal(alertOf(() => verifyClientChain([fresh.der], [root.der], now + 365 * 86400_000)), 45); // everything expired
  assert.equal(alertOf(() => verifyClientChain([fresh.der], [root.der], now - 7 * 86400_000)), 45); // not yet valid
  const shortInter = await makeCa('CN=inter', root, { notAfter: new Date(now - 1000) });
  const leaf2 = await makeClientLeaf(shortInter);
  assert.equal(alertOf(() => verifyClientChain([leaf2.der, shortInter.der], [root.der], now)), 45);
});

test('x509: a non-CA intermediate or anchor is refused', async () => {
  const root = await makeCa('CN=root');
  const notCa = await makeCa('CN=not-a-ca', root, { ca: false });
  const leaf = await makeClientLeaf(notCa);
  assert.equal(alertOf(() => verifyClientChain([leaf.der, notCa.der], [root.der], now)), 42);
  assert.equal(alertOf(() => verifyClientChain([leaf.der], [notCa.der], now)), 48);
});

test('x509: extendedKeyUsage must allow clientAuth when present', async () => {
  const root = await makeCa('CN=root');
  const serverOnly = await makeClientLeaf(root, { eku: [EKU_SERVER_AUTH] });
  assert.equal(alertOf(() => verifyClientChain([serverOnly.der], [root.der], now)), 43); // unsupported_certificate
  const both = await makeClientLeaf(root, { eku: [EKU_SERVER_AUTH, EKU_CLIENT_AUTH] });
  verifyClientChain([both.der], [root.der], now);
  const none = await makeClientLeaf(root, { eku: undefined });
  verifyClientChain([none.der], [root.der], now);
});

test('x509: chain length ≤ 8, certificate size ≤ 16 KiB, garbage is bad_certificate', async () => {
  let ca = await makeCa('CN=c0');
  const anchor = ca;
  const cas: Awaited<ReturnType<typeof makeCa>>[] = [];
  for (let i = 1; i <= 8; i++) {
    ca = await makeCa(`CN=c${i}`, ca);
    cas.unshift(ca);
  }
  const leaf = await makeClientLeaf(ca);
  verifyClientChain([leaf.der, ...cas.slice(0, 7).map((c) => c.der)], [cas[7]!.der], now); // 8 certificates
  assert.equal(alertOf(() => verifyClientChain([leaf.der, ...cas.map((c) => c.der)], [anchor.der], now)), 42); // 9
  assert.equal(alertOf(() => verifyClientChain([new Uint8Array(16385).fill(0x30)], [anchor.der], now)), 42);
  assert.equal(alertOf(() => verifyClientChain([Uint8Array.of(0x30, 0x03, 1, 2, 3)], [anchor.der], now)), 42);
  assert.equal(alertOf(() => verifyClientChain([], [anchor.der], now)), 42);
});

test('x509: subject DER for certificate_authorities; SAN splitting keeps quoted commas', async () => {
  const root = await makeCa('CN=root,O=Example');
  const dn = certificateSubjectDer(root.der);
  assert.equal(dn[0], 0x30);
  assert.ok(Buffer.from(root.der).includes(Buffer.from(dn)));
  assert.deepEqual(splitSubjectAltNames('DNS:a.example, IP Address:10.0.0.1, URI:"http://x/?a=1, b"'), [
    'DNS:a.example',
    'IP Address:10.0.0.1',
    'URI:"http://x/?a=1, b"',
  ]);
  assert.deepEqual(splitSubjectAltNames(undefined), []);
});
