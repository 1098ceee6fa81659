/**
 * TLS 1.2 interop: Node's TLS client (OpenSSL) limited to TLS 1.2 against the engine, every suite,
 * both groups, data both ways, RFC 5705 exporter equal to OpenSSL's, EMS, downgrade sentinel.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import type * as tls from 'node:tls';
import { makePki, type TestPki } from './helpers/pki.js';
import { connectNode, plaintextHandshakeMessages, waitFor, type Harness } from './helpers/nodeClient.js';
import type { TlsServerConfig } from '../../src/tls/api.js';

let ec: TestPki;
let rsa: TestPki;
before(async () => {
  ec = await makePki('ecdsa');
  rsa = await makePki('rsa');
});

const SENTINEL = Buffer.from('444f574e47524401', 'hex');
const PSK_ID = Buffer.from('client-1');
const PSK_KEY = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const pskConfig: Partial<TlsServerConfig> = {
  findPsk: (id) => (Buffer.from(id).equals(PSK_ID) ? { identity: PSK_ID, key: PSK_KEY } : undefined),
};

function connect12(pki: TestPki, cfg: Partial<TlsServerConfig>, opts: tls.ConnectionOptions): Harness {
  return connectNode(pki.identity, pki.caPem, cfg, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...opts });
}

/** Handshake, data both ways, exporter equal to Node's; returns the harness (connected). */
async function roundTrip(h: Harness, expectSuite: number): Promise<void> {
  await once(h.client, 'secureConnect');
  await waitFor(() => h.server.state === 'connected');
  assert.equal(h.client.getProtocol(), 'TLSv1.2');
  assert.equal(h.server.info?.version, 0x0303);
  assert.equal(h.server.info?.cipherSuite, expectSuite);
  const ctx = Buffer.from('ctx12');
  assert.equal(
    Buffer.from(h.server.exportKeyingMaterial('EXPORTER-setls', ctx, 40)).toString('hex'),
    h.client.exportKeyingMaterial(40, 'EXPORTER-setls', ctx).toString('hex'),
  );
  // server → client (several records)
  const big = randomBytes(40000);
  const chunks: Buffer[] = [];
  h.client.on('data', (d: Buffer) => chunks.push(d));
  h.toClient(h.server.encrypt(23, big));
  await waitFor(() => Buffer.concat(chunks).length >= big.length);
  assert.ok(Buffer.concat(chunks).equals(big));
  // client → server
  const up = randomBytes(20000);
  h.client.write(up);
  await waitFor(() => h.received().length >= up.length);
  assert.ok(h.received().equals(up));
  // close_notify from the client: the engine answers and closes
  h.client.end();
  await h.ended;
  await waitFor(() => h.server.state === 'closed');
}

const ecdsaSuites: [string, number][] = [
  ['ECDHE-ECDSA-AES128-GCM-SHA256', 0xc02b],
  ['ECDHE-ECDSA-AES256-GCM-SHA384', 0xc02c],
  ['ECDHE-ECDSA-CHACHA20-POLY1305', 0xcca9],
  ['ECDHE-ECDSA-AES128-CCM8', 0xc0ae],
];
const rsaSuites: [string, number][] = [
  ['ECDHE-RSA-AES128-GCM-SHA256', 0xc02f],
  ['ECDHE-RSA-AES256-GCM-SHA384', 0xc030],
  ['ECDHE-RSA-CHACHA20-POLY1305', 0xcca8],
];
const ALL12 = [0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8, 0xc0ae, 0xc0a8, 0x00a8];

for (const [name, id] of ecdsaSuites) {
  // RFC 8422 §5.1: the client must list P-256 (the certificate's curve) for ECDSA suites.
  for (const curve of ['X25519:P-256', 'P-256']) {
    test(`TLS 1.2 ${name} over ${curve.split(':')[0]} with Node (ECDSA identity)`, async () => {
      const h = connect12(ec, { cipherSuites12: ALL12 }, { ciphers: `${name}:@SECLEVEL=0`, ecdhCurve: curve });
      await roundTrip(h, id);
      assert.equal(h.server.info?.group, curve === 'P-256' ? 0x0017 : 0x001d);
      assert.equal(h.server.info?.signatureScheme, 0x0403);
      assert.equal(h.server.info?.resumption, 'full');
    });
  }
}

for (const [name, id] of rsaSuites) {
  test(`TLS 1.2 ${name} with Node (RSA identity, rsa_pss_rsae_sha256)`, async () => {
    const h = connect12(rsa, {}, { ciphers: name, ecdhCurve: 'P-256:X25519' });
    await roundTrip(h, id);
    assert.equal(h.server.info?.signatureScheme, 0x0804);
  });
}

for (const [name, id] of [
  ['PSK-AES128-CCM8', 0xc0a8],
  ['PSK-AES128-GCM-SHA256', 0x00a8],
] as const) {
  test(`TLS 1.2 ${name} with Node's pskCallback`, async () => {
    const h = connect12(ec, { ...pskConfig, cipherSuites12: ALL12 }, {
      ciphers: `${name}:@SECLEVEL=0`,
      pskCallback: () => ({ psk: PSK_KEY, identity: PSK_ID.toString() }),
      checkServerIdentity: () => undefined,
    });
    await roundTrip(h, id);
    assert.equal(h.server.info?.resumption, 'psk');
    assert.deepEqual(Buffer.from(h.server.info!.pskIdentity!), PSK_ID);
  });
}

test('TLS 1.2 ECDSA identity, client without secp256r1 (X25519 only) → handshake_failure', async () => {
  const h = connect12(ec, {}, { ecdhCurve: 'X25519' });
  await once(h.client, 'error');
  assert.deepEqual(h.outputs.at(-1)!.alert, { description: 40, sentByUs: true });
});

test('TLS 1.2 RSA identity with an X25519-only client: x25519', async () => {
  const h = connect12(rsa, {}, { ecdhCurve: 'X25519' });
  await roundTrip(h, 0xc02f);
  assert.equal(h.server.info?.group, 0x001d);
});

test('TLS 1.2 unknown PSK identity → unknown_psk_identity (115)', async () => {
  const h = connect12(ec, { ...pskConfig, cipherSuites12: [0x00a8] }, {
    ciphers: 'PSK-AES128-GCM-SHA256',
    pskCallback: () => ({ psk: PSK_KEY, identity: 'someone-else' }),
    checkServerIdentity: () => undefined,
  });
  await once(h.client, 'error');
  await waitFor(() => h.server.state === 'failed');
  assert.deepEqual(h.outputs.at(-1)!.alert, { description: 115, sentByUs: true });
});

test('TLS 1.2: EMS negotiated with Node, downgrade sentinel present, ALPN, SNI ack, RI echoed', async () => {
  const h = connect12(ec, { alpnProtocols: ['h2', 'http/1.1'] }, { ALPNProtocols: ['http/1.1'] });
  await once(h.client, 'secureConnect');
  assert.equal(h.client.alpnProtocol, 'http/1.1');
  const sh = plaintextHandshakeMessages(h.toClientLog).find((m) => m.type === 2)!;
  assert.ok(sh.body.subarray(2 + 24, 2 + 32).equals(SENTINEL), 'downgrade sentinel');
  const ext = parseExts(sh.body);
  assert.ok(ext.has(23), 'extended_master_secret echoed');
  assert.deepEqual([...ext.get(0xff01)!], [0], 'empty renegotiation_info');
  assert.ok(ext.has(0), 'server_name ack');
  await waitFor(() => h.server.state === 'connected');
  assert.equal(h.server.info?.alpn, 'http/1.1');
  assert.equal(h.server.info?.serverName, 'localhost');
  h.client.destroy();
});

test('TLS 1.2 only (versions=[0x0303]): no downgrade sentinel; a TLS 1.3-only client → protocol_version', async () => {
  const h = connect12(ec, { versions: [0x0303] }, {});
  await once(h.client, 'secureConnect');
  const sh = plaintextHandshakeMessages(h.toClientLog).find((m) => m.type === 2)!;
  assert.ok(!sh.body.subarray(2 + 24, 2 + 32).equals(SENTINEL));
  h.client.destroy();
  const h13 = connectNode(ec.identity, ec.caPem, { versions: [0x0303] }, { minVersion: 'TLSv1.3' });
  await once(h13.client, 'error');
  assert.deepEqual(h13.outputs.at(-1)!.alert, { description: 70, sentByUs: true });
});

test('default versions: a 1.2+1.3 Node client still gets TLS 1.3', async () => {
  const h = connectNode(ec.identity, ec.caPem, {}, { minVersion: 'TLSv1.2' });
  await once(h.client, 'secureConnect');
  assert.equal(h.client.getProtocol(), 'TLSv1.3');
  h.client.destroy();
});

test('TLS 1.2 exportSession: key-block keys and sequence numbers; secrets gone afterwards', async () => {
  const h = connect12(ec, {}, { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  await once(h.client, 'secureConnect');
  await waitFor(() => h.server.state === 'connected');
  h.client.write('ping');
  await waitFor(() => h.received().length >= 4);
  const s = h.server.exportSession!();
  assert.equal(s.version, 0x0303);
  assert.equal(s.cipherSuite, 0xc02b);
  assert.equal(s.clientKey.length, 16);
  assert.equal(s.clientIv.length, 4);
  assert.equal(s.serverIv.length, 4);
  assert.equal(s.readSequence, 2n); // Finished + "ping"
  assert.equal(s.writeSequence, 1n); // Finished
  assert.equal(s.clientTrafficSecret.length, 0);
  assert.equal(h.server.state, 'closed');
  assert.throws(() => h.server.encrypt(23, new Uint8Array(1)), { code: 'ERR_TLS_STATE' });
  assert.throws(() => h.server.exportKeyingMaterial('x', new Uint8Array(0), 8), { code: 'ERR_TLS_STATE' });
  h.client.destroy();
});

export function parseExts(serverHelloBody: Buffer): Map<number, Buffer> {
  let o = 2 + 32;
  o += 1 + serverHelloBody[o]!;
  o += 3;
  const end = o + 2 + serverHelloBody.readUInt16BE(o);
  o += 2;
  const m = new Map<number, Buffer>();
  while (o < end) {
    const t = serverHelloBody.readUInt16BE(o);
    const l = serverHelloBody.readUInt16BE(o + 2);
    m.set(t, serverHelloBody.subarray(o + 4, o + 4 + l));
    o += 4 + l;
  }
  return m;
}
