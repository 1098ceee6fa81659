/** TLS 1.2 client authentication with Node's client: CertificateRequest, chain verification, CertificateVerify. */
import 'reflect-metadata';
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { makePki, type TestPki } from './helpers/pki.js';
import { connectNode, waitFor, type Harness } from './helpers/nodeClient.js';
import type { TlsIdentity, TlsServerConfig } from '../../src/tls/api.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

interface ClientPki {
  caDer: Uint8Array;
  certPem: string;
  keyPem: string;
}

async function makeClientPki(kind: 'ecdsa' | 'rsa'): Promise<ClientPki> {
  const subtle = webcrypto.subtle;
  const ec = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const leafAlg = kind === 'rsa' ? ({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) } as const) : ec;
  const caKeys = (await subtle.generateKey(ec, true, ['sign', 'verify'])) as CryptoKeyPair;
  const leafKeys = (await subtle.generateKey(leafAlg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 86400_000);
  const notAfter = new Date(Date.now() + 86400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=client CA',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ec,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    subject: 'CN=device-42',
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ec,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'device-42.example' }]),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  const pkcs8 = Buffer.from(await subtle.exportKey('pkcs8', leafKeys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
  return { caDer: new Uint8Array(ca.rawData), certPem: leaf.toString('pem'), keyPem };
}

let server: TestPki;
let client: ClientPki;
let clientRsa: ClientPki;
let other: ClientPki;
before(async () => {
  server = await makePki('ecdsa');
  client = await makeClientPki('ecdsa');
  clientRsa = await makeClientPki('rsa');
  other = await makeClientPki('ecdsa');
});

function withAuth(clientAuth: 'optional' | 'required', anchors: Uint8Array[]): TlsIdentity {
  return { ...server.identity, clientAuth, trustAnchors: anchors };
}

function connect(identity: TlsIdentity, opts: { cert?: string; key?: string }, cfg: Partial<TlsServerConfig> = {}): Harness {
  return connectNode(identity, server.caPem, cfg, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...opts });
}

for (const [label, pki] of [
  ['ECDSA', () => client],
  ['RSA', () => clientRsa],
] as const) {
  test(`TLS 1.2 mTLS: trusted ${label} client certificate → info.peer`, async () => {
    const c = pki();
    const h = connect(withAuth('required', [c.caDer]), { cert: c.certPem, key: c.keyPem });
    await once(h.client, 'secureConnect');
    await waitFor(() => h.server.state === 'connected');
    const peer = h.server.info?.peer;
    assert.ok(peer);
    assert.match(peer.subject, /CN=device-42/);
    assert.deepEqual(peer.subjectAltNames, ['DNS:device-42.example']);
    h.client.destroy();
  });
}

async function expectAlert(h: Harness, description: number): Promise<void> {
  h.client.on('error', () => {});
  await waitFor(() => h.server.state === 'failed');
  assert.deepEqual(h.outputs.find((o) => o.alert)?.alert, { description, sentByUs: true });
}

test('TLS 1.2 mTLS: untrusted client certificate → unknown_ca', async () => {
  await expectAlert(connect(withAuth('required', [other.caDer]), { cert: client.certPem, key: client.keyPem }), 48);
});

test('TLS 1.2 mTLS: expired relative to entropy.now() → certificate_expired', async () => {
  const entropy = { random: (n: number) => new Uint8Array(randomBytes(n)), now: () => Date.now() + 10 * 86400_000 };
  await expectAlert(connect(withAuth('required', [client.caDer]), { cert: client.certPem, key: client.keyPem }, { entropy }), 45);
});

test('TLS 1.2 mTLS: no certificate under required → handshake_failure; under optional → connected without peer', async () => {
  await expectAlert(connect(withAuth('required', [client.caDer]), {}), 40);
  const h = connect(withAuth('optional', [client.caDer]), {});
  await once(h.client, 'secureConnect');
  await waitFor(() => h.server.state === 'connected');
  assert.equal(h.server.info?.peer, undefined);
  h.client.destroy();
});

test('TLS 1.2 mTLS: peer identity survives session-ID resumption', async () => {
  const m = new Map<string, Uint8Array>();
  const k = (id: Uint8Array) => Buffer.from(id).toString('hex');
  const sessionCache = { get: (id: Uint8Array) => m.get(k(id)), set: (id: Uint8Array, s: Uint8Array) => void m.set(k(id), s), delete: (id: Uint8Array) => void m.delete(k(id)) };
  const id = withAuth('required', [client.caDer]);
  const h = connect(id, { cert: client.certPem, key: client.keyPem }, { sessionCache });
  const [session] = (await once(h.client, 'session')) as [Buffer];
  await waitFor(() => h.server.state === 'connected');
  h.client.destroy();
  const h2 = connectNode(id, server.caPem, { sessionCache }, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', cert: client.certPem, key: client.keyPem, session });
  await once(h2.client, 'secureConnect');
  await waitFor(() => h2.server.state === 'connected');
  assert.equal(h2.server.info?.resumption, 'session-id');
  assert.match(h2.server.info?.peer?.subject ?? '', /CN=device-42/);
  h2.client.destroy();
});
