/**
 * Every cipher suite × group with Node's TLS client (OpenSSL), data both ways; server preference;
 * CCM_8 only when configured; RSA-PSS identities.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { makePki, type TestPki } from './helpers/pki.js';
import { connectNode, waitFor, type Harness } from './helpers/nodeClient.js';
import type { TlsServerConfig } from '../../src/tls/api.js';
import type { ConnectionOptions } from 'node:tls';

let pki: TestPki;
let rsa: TestPki;
before(async () => {
  pki = await makePki();
  rsa = await makePki('rsa');
});

const SUITES = [
  { id: 0x1301, name: 'TLS_AES_128_GCM_SHA256' },
  { id: 0x1302, name: 'TLS_AES_256_GCM_SHA384' },
  { id: 0x1303, name: 'TLS_CHACHA20_POLY1305_SHA256' },
  { id: 0x1304, name: 'TLS_AES_128_CCM_SHA256' },
  { id: 0x1305, name: 'TLS_AES_128_CCM_8_SHA256' },
] as const;
const GROUPS = [
  { id: 0x001d, curve: 'X25519', keyInfo: { type: 'ECDH', name: 'X25519', size: 253 } },
  { id: 0x0017, curve: 'P-256', keyInfo: { type: 'ECDH', name: 'prime256v1', size: 256 } },
] as const;

async function roundTrip(h: Harness): Promise<void> {
  await waitFor(() => h.server.state === 'connected');
  const chunks: Buffer[] = [];
  h.client.on('data', (d: Buffer) => chunks.push(d));
  // server → client, several records (one of them exactly 2^14)
  const down = randomBytes(40_000);
  h.toClient(h.server.encrypt(23, down));
  await waitFor(() => Buffer.concat(chunks).length >= down.length);
  assert.ok(Buffer.concat(chunks).equals(down), 'server → client data intact');
  // client → server, echoed back
  chunks.length = 0;
  h.echo = true;
  const up = randomBytes(30_000);
  h.client.write(up);
  await waitFor(() => Buffer.concat(chunks).length >= up.length);
  assert.ok(h.received().equals(up), 'client → server data intact');
  assert.ok(Buffer.concat(chunks).equals(up), 'echo intact');
  const ctx = Buffer.from('ctx');
  assert.equal(
    Buffer.from(h.server.exportKeyingMaterial('EXPORTER-setls', ctx, 64)).toString('hex'),
    h.client.exportKeyingMaterial(64, 'EXPORTER-setls', ctx).toString('hex'),
    'exporter agrees (hash of the suite)',
  );
  h.client.end();
  await h.ended;
  assert.equal(h.server.state, 'closed');
}

for (const s of SUITES) {
  for (const g of GROUPS) {
    test(`Node client: ${s.name} over ${g.curve}: handshake, data both ways, exporter, session info`, async () => {
      const cfg: Partial<TlsServerConfig> = s.id === 0x1305 ? { cipherSuites: [0x1305] } : {};
      const h = connectNode(pki.identity, pki.caPem, cfg, { ciphers: s.name, ecdhCurve: g.curve });
      await once(h.client, 'secureConnect');
      assert.equal(h.client.authorized, true, String(h.client.authorizationError));
      assert.equal(h.client.getCipher().standardName, s.name);
      assert.deepEqual(h.client.getEphemeralKeyInfo(), g.keyInfo);
      await waitFor(() => h.server.state === 'connected');
      assert.deepEqual(h.server.info, { version: 0x0304, cipherSuite: s.id, group: g.id, signatureScheme: 0x0403, serverName: 'localhost' });
      await roundTrip(h);
    });
  }
}

test('server preference wins over the client order (config.cipherSuites and config.groups)', async () => {
  const clientSuites = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
  const h = connectNode(pki.identity, pki.caPem, { cipherSuites: [0x1303, 0x1302, 0x1301], groups: [0x0017, 0x001d] }, {
    ciphers: clientSuites,
    ecdhCurve: 'X25519:P-256', // OpenSSL sends only an X25519 share
  });
  await once(h.client, 'secureConnect');
  assert.equal(h.client.getCipher().standardName, 'TLS_CHACHA20_POLY1305_SHA256');
  // The client's only share is X25519; secp256r1 is preferred but costs a round trip: the share wins.
  assert.equal(h.server.info?.group, 0x001d);
  h.client.end();
  await h.ended;

  // default preference: AES-128-GCM first even when the client lists it last
  const d = connectNode(pki.identity, pki.caPem, {}, { ciphers: 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256' });
  await once(d.client, 'secureConnect');
  assert.equal(d.client.getCipher().standardName, 'TLS_AES_128_GCM_SHA256');
  d.client.end();
  await d.ended;
});

test('CCM_8 is not negotiated by default: a CCM_8-only client gets handshake_failure', async () => {
  const h = connectNode(pki.identity, pki.caPem, {}, { ciphers: 'TLS_AES_128_CCM_8_SHA256' });
  const [err] = (await once(h.client, 'error')) as [Error & { code?: string }];
  assert.match(String(err.message) + String(err.code), /handshake.failure|HANDSHAKE_FAILURE/i);
  assert.deepEqual(h.outputs.at(-1)!.alert, { description: 40, sentByUs: true });
});

const RSA_CASES: { sigalgs: string; want: number; ciphersuites?: string }[] = [
  { sigalgs: 'rsa_pss_rsae_sha256', want: 0x0804 },
  { sigalgs: 'rsa_pss_rsae_sha384:rsa_pss_rsae_sha256', want: 0x0805, ciphersuites: 'TLS_AES_256_GCM_SHA384' },
  { sigalgs: 'rsa_pss_rsae_sha256:rsa_pss_rsae_sha512', want: 0x0806 },
];
for (const c of RSA_CASES) {
  test(`RSA identity [0x0806, 0x0805, 0x0804]: client sigalgs ${c.sigalgs} → 0x${c.want.toString(16)} (identity order wins)`, async () => {
    const id = { ...rsa.identity, signatureSchemes: [0x0806, 0x0805, 0x0804] };
    const h = connectNode(id, rsa.caPem, {}, { sigalgs: c.sigalgs, ...(c.ciphersuites ? { ciphers: c.ciphersuites } : {}) } as ConnectionOptions);
    await once(h.client, 'secureConnect');
    assert.equal(h.client.authorized, true, String(h.client.authorizationError));
    assert.equal(h.server.info?.signatureScheme, c.want);
    await roundTrip(h);
  });
}

test('RSA identity, client offers only ECDSA → handshake_failure', async () => {
  const h = connectNode(rsa.identity, rsa.caPem, {}, { sigalgs: 'ecdsa_secp256r1_sha256' } as ConnectionOptions);
  const [err] = (await once(h.client, 'error')) as [Error & { code?: string }];
  assert.match(String(err.message) + String(err.code), /handshake.failure|HANDSHAKE_FAILURE/i);
  assert.deepEqual(h.outputs.at(-1)!.alert, { description: 40, sentByUs: true });
});
