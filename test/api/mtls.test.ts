// Mutual TLS through createServer (import 'setls'): the card verifies the client's chain against a
// trust anchor installed with CardClient (setls/host) over openCard (setls/card), and the socket
// handed to the handler reports it as a tls.TLSSocket would: `authorized`, getPeerCertificate()
// (subject, subjectaltname, fingerprint256 of the client's certificate), alpnProtocol, servername;
// without a certificate: authorized false and getPeerCertificate() `{}`.
import 'reflect-metadata';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { webcrypto, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import { createServer, asSeTlsSocket, type SetlsServer } from 'setls';
import { initCard, openCard } from 'setls/card';
import { CardClient } from 'setls/host';
import { openLocalCa } from '../../src/pki/local-ca.js';
import { within } from '../wait.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const root = mkdtempSync(join(tmpdir(), 'setls-api-mtls-'));
const cardDir = join(root, 'card');
let ca = '';
let client: { cert: string; key: string; fingerprint256: string };
let server: SetlsServer;
let port = 0;
const seen: unknown[] = [];

before(async () => {
  const init = await initCard({ cardDir });
  ca = readFileSync(init.caCertPath, 'utf8');
  // A client CA of our own, and a client certificate from it.
  const clientCa = await openLocalCa(join(root, 'client-ca'), 'api test client CA');
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=device-42', keys, signingAlgorithm: EC });
  const der = await clientCa.sign(new Uint8Array(csr.rawData), { dnsNames: ['device-42.local'], ipAddresses: [] });
  const cert = new X509Certificate(der);
  client = {
    cert: cert.toString(),
    key: x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
    fingerprint256: cert.fingerprint256,
  };
  // The operator trusts that CA for the card's identity; a client certificate is optional.
  const card = await openCard({ cardDir });
  try {
    const c = new CardClient(card.transport);
    await c.select();
    const { operatorPin } = JSON.parse(readFileSync(`${cardDir}.admin.json`, 'utf8')) as { operatorPin: string };
    await c.verifyPin(operatorPin, 'operator');
    await c.putTrustAnchor('default', new Uint8Array(clientCa.certificate.rawData));
    await c.putIdentityPolicy({ label: 'default', clientAuth: 'optional' });
  } finally {
    await card.close();
  }
  server = createServer({ cardDir }, (req, res) => {
    const s = asSeTlsSocket(req.socket)!;
    seen.push({ authorized: s.authorized, peer: s.getPeerCertificate(), alpn: s.alpnProtocol, servername: s.servername });
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), 'listening');
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await within(new Promise<void>((resolve) => server.close(() => resolve())), 'close');
  rmSync(root, { recursive: true, force: true });
});

function get(extra: tls.ConnectionOptions): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'], ...extra }, () => {
        s.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    }),
    'a request through the card',
  );
}

test('a client certificate the card verified: authorized, getPeerCertificate() names it (subject, subjectaltname, fingerprint256)', async () => {
  const reply = await get({ cert: client.cert, key: client.key });
  assert.match(reply, /^HTTP\/1\.1 200/);
  assert.deepEqual(seen.at(-1), {
    authorized: true,
    peer: { subject: { CN: 'device-42' }, subjectaltname: 'DNS:device-42.local', fingerprint256: client.fingerprint256 },
    alpn: 'http/1.1',
    servername: 'localhost',
  });
});

test('no client certificate (policy optional): authorized false, getPeerCertificate() is {}', async () => {
  const reply = await get({});
  assert.match(reply, /^HTTP\/1\.1 200/);
  assert.deepEqual(seen.at(-1), { authorized: false, peer: {}, alpn: 'http/1.1', servername: 'localhost' });
});
