/**
 * Mutual TLS 1.3 (RFC 8446 §4.3.2, §4.4.2–4.4.3) with Node's TLS client (OpenSSL) as the peer:
 * CertificateRequest per identity.clientAuth, chain verification against trustAnchors, client
 * CertificateVerify, info.peer, and the alerts for each failure.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import type { TlsIdentity } from '../../src/tls/api.js';
import { makePki, type TestPki } from './helpers/pki.js';
import { makeCa, makeClientLeaf, type Issued } from './helpers/clientPki.js';
import { connectPeer, waitFor, type Peer } from './helpers/nodePeer.js';
import { aes128Keys } from './helpers/keys.js';
import { openRecord, sealRecord } from './helpers/records.js';

let pki: TestPki;
let root: Issued;
let inter: Issued;
let leaf: Issued;

before(async () => {
  pki = await makePki();
  root = await makeCa('CN=device root,O=setls test');
  inter = await makeCa('CN=device issuing CA,O=setls test', root);
  leaf = await makeClientLeaf(inter, { subject: 'CN=device-42,O=setls test' });
});

function identity(clientAuth: 'none' | 'optional' | 'required', anchors = [root.der]): TlsIdentity {
  return { ...pki.identity, clientAuth, trustAnchors: anchors };
}

function connect(id: TlsIdentity, client: { cert?: string; key?: string; ciphers?: string }, tap?: (c: Buffer, i: number) => Buffer): Peer {
  return connectPeer({ selectIdentity: () => id }, { ca: pki.caPem, ...client }, tap);
}

test('mTLS: a chain from a trusted CA authenticates the client; info.peer carries its identity', async () => {
  const p = connect(identity('required'), { cert: [leaf.pem, inter.pem].join('\n'), key: leaf.keyPem });
  await waitFor(() => p.server.state === 'connected' || p.alert() !== undefined);
  assert.equal(p.alert(), undefined);
  const peer = p.server.info?.peer;
  assert.ok(peer);
  const x = new X509Certificate(leaf.der);
  assert.equal(peer.subject, x.subject);
  assert.deepEqual(peer.subjectAltNames, ['DNS:client.example', 'email:device@example.com']);
  assert.equal(Buffer.from(peer.fingerprint256).toString('hex'), x.fingerprint256.replaceAll(':', '').toLowerCase());
  assert.deepEqual(Buffer.from(peer.certificate), Buffer.from(leaf.der));
  assert.equal(p.server.info?.resumption, undefined);
  // application data flows both ways after client auth
  p.client.write('ping');
  await waitFor(() => p.received().toString() === 'ping');
  p.client.destroy();
});

test('mTLS: a client chain from an unknown CA → unknown_ca', async () => {
  const otherRoot = await makeCa('CN=other root');
  const stranger = await makeClientLeaf(otherRoot);
  const p = connect(identity('required'), { cert: stranger.pem, key: stranger.keyPem });
  await waitFor(() => p.alert() !== undefined);
  assert.deepEqual(p.alert(), { description: 48, sentByUs: true });
  assert.equal(p.server.state, 'failed');
  p.client.destroy();
});

test('mTLS: an expired client certificate (against entropy.now()) → certificate_expired', async () => {
  const old = await makeClientLeaf(inter, { notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
  const p = connect(identity('optional'), { cert: [old.pem, inter.pem].join('\n'), key: old.keyPem });
  await waitFor(() => p.alert() !== undefined);
  assert.deepEqual(p.alert(), { description: 45, sentByUs: true });
  p.client.destroy();
});

test("mTLS: no client certificate under 'required' → certificate_required (the client sees the alert)", async () => {
  const p = connect(identity('required'), {});
  await waitFor(() => p.alert() !== undefined && p.clientError !== undefined);
  assert.deepEqual(p.alert(), { description: 116, sentByUs: true });
  assert.match(p.clientError?.code ?? '', /CERTIFICATE_REQUIRED/);
  p.client.destroy();
});

test("mTLS: no client certificate under 'optional' → connected without a peer", async () => {
  const p = connect(identity('optional'), {});
  await waitFor(() => p.server.state === 'connected' || p.alert() !== undefined);
  assert.equal(p.alert(), undefined);
  assert.equal(p.server.info?.peer, undefined);
  p.client.write('hi');
  await waitFor(() => p.received().toString() === 'hi');
  p.client.destroy();
});

test("mTLS: 'none' (default) sends no CertificateRequest: a client with a certificate does not send it", async () => {
  const p = connect(identity('none'), { cert: [leaf.pem, inter.pem].join('\n'), key: leaf.keyPem });
  await waitFor(() => p.server.state === 'connected' || p.alert() !== undefined);
  assert.equal(p.server.info?.peer, undefined);
  p.client.destroy();
});

/**
 * Flips the last signature byte of the client's CertificateVerify, re-encrypting its handshake records
 * under the client handshake traffic key from Node's key log. Records may span chunks: whole records
 * are passed on, a partial one is held back.
 */
function tamperCertificateVerify(p: () => Peer): (chunk: Buffer, index: number) => Buffer {
  let seq = 0;
  let pending = Buffer.alloc(0);
  return (chunk, index) => {
    if (index === 0) return chunk; // ClientHello
    const secret = p().keylog.get('CLIENT_HANDSHAKE_TRAFFIC_SECRET');
    if (!secret || seq > 8) return chunk;
    const { key, iv } = aes128Keys(secret);
    pending = Buffer.concat([pending, chunk]);
    const out: Buffer[] = [];
    let o = 0;
    while (o + 5 <= pending.length && o + 5 + pending.readUInt16BE(o + 3) <= pending.length) {
      const r = new Uint8Array(pending.subarray(o, o + 5 + pending.readUInt16BE(o + 3)));
      o += r.length;
      if (r[0] !== 23) {
        out.push(Buffer.from(r));
        continue;
      }
      const inner = openRecord(key, iv, seq, r);
      let end = inner.length - 1;
      while (inner[end] === 0) end--;
      const content = Buffer.from(inner.subarray(0, end));
      for (let m = 0; m + 4 <= content.length; ) {
        const len = content.readUIntBE(m + 1, 3);
        if (content[m] === 15 && m + 4 + len <= content.length) content[m + 4 + len - 1]! ^= 0x01;
        m += 4 + len;
      }
      out.push(Buffer.from(sealRecord(key, iv, seq, inner[end]!, content)));
      seq++;
    }
    pending = pending.subarray(o);
    return Buffer.concat(out);
  };
}

test('mTLS: a tampered client CertificateVerify → decrypt_error', async () => {
  let peer: Peer | undefined;
  peer = connect(identity('required'), { cert: [leaf.pem, inter.pem].join('\n'), key: leaf.keyPem, ciphers: 'TLS_AES_128_GCM_SHA256' }, tamperCertificateVerify(() => peer!));
  const p = peer;
  await waitFor(() => p.alert() !== undefined);
  assert.deepEqual(p.alert(), { description: 51, sentByUs: true });
  p.client.destroy();
});

test('mTLS: the same handshake without tampering (control for the test above) succeeds', async () => {
  const peer = connect(identity('required'), { cert: [leaf.pem, inter.pem].join('\n'), key: leaf.keyPem, ciphers: 'TLS_AES_128_GCM_SHA256' });
  await waitFor(() => peer!.server.state === 'connected' || peer!.alert() !== undefined);
  assert.equal(peer.alert(), undefined);
  assert.equal(Buffer.from(peer.server.info!.peer!.fingerprint256).toString('hex'), createHash('sha256').update(leaf.der).digest('hex'));
  peer.client.destroy();
});
