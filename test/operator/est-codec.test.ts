// EST bodies (src/operator/est/codec.ts) and the /csrattrs challenge (est/challenge.ts), read and
// written by openssl, which nobody here wrote: certs-only CMS both ways, CsrAttrs through
// `openssl asn1parse`, base64 CSRs as `openssl req | base64` makes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { requirePeer } from '../interop/peers.js';
import {
  certsOnly,
  decodeBase64Body,
  decodeCsrAttrs,
  derOid,
  derUtf8,
  encodeBase64Body,
  encodeCsrAttrs,
  EstOid,
  readCertsOnly,
  type CsrAttrItem,
} from '../../src/operator/est/codec.js';
import { checkChallenge, issueChallenge } from '../../src/operator/est/challenge.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'setls-est-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function openssl(args: string[], input?: Uint8Array | string): Buffer {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** A self-signed P-256 certificate made by openssl: DER. */
function opensslCert(dir: string, cn: string): Uint8Array {
  const key = join(dir, `${cn}.key`);
  const crt = join(dir, `${cn}.der`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/CN=${cn}`, '-days', '2', '-outform', 'DER', '-out', crt]);
  return new Uint8Array(readFileSync(crt));
}

test('certs-only answer: openssl pkcs7 -print_certs reads every certificate, in order, from the base64 body', (t) => {
  if (!requirePeer(t, 'openssl')) return;
  withDir((dir) => {
    const a = opensslCert(dir, 'est-ca');
    const b = opensslCert(dir, 'est-leaf');
    const body = encodeBase64Body(certsOnly([b, a]));
    assert.ok(body.split('\r\n').every((l) => l.length <= 64), 'lines of at most 64 characters');
    writeFileSync(join(dir, 'answer.b64'), body);
    const der = openssl(['base64', '-d', '-in', join(dir, 'answer.b64')]);
    const printed = openssl(['pkcs7', '-inform', 'DER', '-print_certs', '-noout'], der).toString();
    const subjects = [...printed.matchAll(/subject=\s*CN\s*=\s*(\S+)/g)].map((m) => m[1]);
    assert.deepEqual(subjects, ['est-leaf', 'est-ca'], printed);
    // The structure is SignedData with no signer infos (certs-only), as RFC 5272 §4.2 says.
    const parsed = openssl(['asn1parse', '-inform', 'DER'], der).toString();
    assert.match(parsed, /:pkcs7-signedData/);
  });
});

test('certs-only from openssl crl2pkcs7 is read back certificate for certificate; an empty list is refused', (t) => {
  if (!requirePeer(t, 'openssl')) return;
  withDir((dir) => {
    const a = opensslCert(dir, 'one');
    const b = opensslCert(dir, 'two');
    const pems = [a, b].map((d, i) => {
      const p = join(dir, `c${i}.pem`);
      openssl(['x509', '-inform', 'DER', '-in', join(dir, i === 0 ? 'one.der' : 'two.der'), '-out', p]);
      return p;
    });
    const p7 = openssl(['crl2pkcs7', '-nocrl', '-certfile', pems[0]!, '-certfile', pems[1]!, '-outform', 'DER']);
    const certs = readCertsOnly(new Uint8Array(p7));
    assert.equal(certs.length, 2);
    assert.deepEqual(Buffer.from(certs[0]!), Buffer.from(a));
    assert.deepEqual(Buffer.from(certs[1]!), Buffer.from(b));
    assert.deepEqual(readCertsOnly(certsOnly([a, b])).map((c) => Buffer.from(c)), [Buffer.from(a), Buffer.from(b)]);
    assert.throws(() => certsOnly([]), RangeError);
  });
});

test('CSR attributes: openssl asn1parse shows the signature OID, the P-256 key attribute and the challenge', (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const challenge = issueChallenge(new Uint8Array(32).fill(7), 1_700_000_000_000);
  const der = encodeCsrAttrs([
    { oid: EstOid.ecdsaWithSha256 },
    { type: EstOid.ecPublicKey, values: [derOid(EstOid.secp256r1)] },
    { type: EstOid.challengePassword, values: [derUtf8(challenge.text)] },
  ]);
  const parsed = openssl(['asn1parse', '-inform', 'DER'], der).toString();
  const lines = parsed.trim().split('\n');
  assert.match(lines[0]!, /d=0 .*cons: SEQUENCE/);
  assert.match(lines[1]!, /d=1 .*OBJECT\s+:ecdsa-with-SHA256/);
  assert.match(parsed, /d=2 .*OBJECT\s+:id-ecPublicKey/);
  assert.match(parsed, /d=3 .*OBJECT\s+:prime256v1/);
  assert.match(parsed, /d=2 .*OBJECT\s+:challengePassword/);
  assert.ok(parsed.includes(`UTF8STRING        :${challenge.text}`), parsed);
  // An empty answer is a valid CsrAttrs too (SIZE 0..MAX).
  assert.deepEqual(Buffer.from(encodeCsrAttrs([])), Buffer.from([0x30, 0x00]));
});

test('CSR attributes round-trip (random OIDs and attribute values; SET OF values in DER order); malformed input is refused', () => {
  const arcs = fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { maxLength: 6 }));
  const oid = arcs.map(([a, b, rest]) => [a, b, ...rest].join('.'));
  const item: fc.Arbitrary<CsrAttrItem> = fc.oneof(
    oid.map((o) => ({ oid: o })),
    fc.tuple(oid, fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 3 })).map(([type, vs]) => ({ type, values: vs.map((v) => derUtf8(v.slice(0, 40))) })),
  );
  fc.assert(
    fc.property(fc.array(item, { maxLength: 6 }), (items) => {
      const back = decodeCsrAttrs(encodeCsrAttrs(items));
      assert.deepEqual(
        back.map((i) => ('oid' in i ? i : { type: i.type, values: i.values.map((v) => Buffer.from(v).toString('hex')) })),
        // DER sorts a SET OF: the values come back in byte order
        items.map((i) => ('oid' in i ? i : { type: i.type, values: i.values.map((v) => Buffer.from(v).toString('hex')).sort() })),
      );
    }),
  );
  assert.throws(() => encodeCsrAttrs([{ oid: 'x.1' }]), /not an OID/);
  assert.throws(() => encodeCsrAttrs([{ type: '1.2.3', values: [] }]), /no value/);
  assert.throws(() => encodeCsrAttrs([{ type: '1.2.3', values: [Uint8Array.of(0x0c, 0x05, 0x41)] }]), /not one DER element/);
  for (const bad of ['', '3001', '300306012a00', '3003020101', '31020500', '3000ff']) {
    assert.throws(() => decodeCsrAttrs(Buffer.from(bad, 'hex')), RangeError, bad);
  }
});

test('base64 bodies: a CSR from `openssl req | base64` (76-column lines) decodes to its DER; junk, empty and oversized bodies are refused', (t) => {
  if (!requirePeer(t, 'openssl') || !requirePeer(t, 'base64')) return;
  withDir((dir) => {
    const key = join(dir, 'k.pem');
    const csr = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=device-1', '-outform', 'DER']);
    const b64 = execFileSync('base64', [], { input: csr }).toString();
    assert.ok(b64.includes('\n'), 'base64(1) wraps its lines');
    assert.deepEqual(Buffer.from(decodeBase64Body(b64)), csr);
    assert.deepEqual(Buffer.from(decodeBase64Body(encodeBase64Body(csr))), csr);
  });
  assert.throws(() => decodeBase64Body(''), /empty/);
  assert.throws(() => decodeBase64Body(' \r\n'), /empty/);
  assert.throws(() => decodeBase64Body('AAAA*AAA'), /not base64/);
  assert.throws(() => decodeBase64Body('AAA'), /not base64/);
  assert.throws(() => decodeBase64Body('AA=A'), /not base64/);
  assert.throws(() => decodeBase64Body(Buffer.alloc(3000).toString('base64'), 2048), /over 2048 bytes/);
  assert.equal(decodeBase64Body(Buffer.alloc(2048).toString('base64'), 2048).length, 2048);
});

test('challenges: accepted until they expire, only under the key that issued them; any changed character is refused', () => {
  const key = new Uint8Array(32).fill(1);
  const other = new Uint8Array(32).fill(2);
  const t0 = 1_700_000_000_000;
  const c = issueChallenge(key, t0, 60_000);
  assert.ok(c.text.length <= 127, 'fits a short UTF8String');
  const ok = checkChallenge(key, c.text, t0 + 60_000);
  assert.ok(ok.ok);
  assert.deepEqual(Buffer.from(ok.nonce), Buffer.from(c.nonce));
  assert.deepEqual(checkChallenge(key, c.text, t0 + 60_001), { ok: false, why: 'expired' });
  assert.deepEqual(checkChallenge(other, c.text, t0), { ok: false, why: 'mac' });
  assert.notDeepEqual(Buffer.from(issueChallenge(key, t0).nonce), Buffer.from(c.nonce), 'fresh nonces');
  assert.throws(() => issueChallenge(new Uint8Array(16), t0), RangeError);
  // Every single-character change of the text: refused (malformed or bad MAC), never accepted.
  const alphabet = 'AZaz09-_.1';
  for (let i = 0; i < c.text.length; i++) {
    for (const ch of alphabet) {
      if (c.text[i] === ch) continue;
      const changed = c.text.slice(0, i) + ch + c.text.slice(i + 1);
      const r = checkChallenge(key, changed, t0);
      assert.equal(r.ok, false, `changed at ${i} to ${ch}: ${changed}`);
    }
  }
  for (const bad of ['', 'setls-est1', 'setls-est1...', `${c.text}.x`, c.text.replace('setls-est1', 'setls-est2')]) {
    assert.deepEqual(checkChallenge(key, bad, t0), { ok: false, why: 'malformed' });
  }
});
