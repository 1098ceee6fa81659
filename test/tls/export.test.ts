/**
 * exportSession() for TLS 1.3 (TLS-Tandem): after a handshake with Node's client the traffic keys
 * leave the engine; the test then plays the host with node:crypto alone — seals a record Node's
 * client accepts and opens a record Node's client sent.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ExportedSession } from '../../src/tls/api.js';
import { makePki, type TestPki } from './helpers/pki.js';
import { connectPeer, waitFor } from './helpers/nodePeer.js';
import { aes128Keys } from './helpers/keys.js';
import { openRecord, sealRecord } from './helpers/records.js';

let pki: TestPki;
before(async () => {
  pki = await makePki();
});

test('exportSession: exported keys carry the session on; the engine is wiped and closed', async () => {
  // tickets on, so the server write sequence is 1 at export (one NewSessionTicket went out)
  const p = connectPeer(
    { selectIdentity: () => pki.identity, ticketKeys: { current: { id: Uint8Array.of(1, 2, 3, 4), key: new Uint8Array(randomBytes(32)) } } },
    { ca: pki.caPem, ciphers: 'TLS_AES_128_GCM_SHA256' },
  );
  const clientData: Buffer[] = [];
  p.client.on('data', (d: Buffer) => clientData.push(d));
  await waitFor(() => p.server.state === 'connected' && p.keylog.has('CLIENT_TRAFFIC_SECRET_0'));
  p.client.write('before');
  await waitFor(() => p.received().toString() === 'before');

  const ex: ExportedSession = p.server.exportSession!();
  assert.equal(p.server.state, 'closed');
  assert.throws(() => p.server.encrypt(23, new Uint8Array(1)), { code: 'ERR_TLS_STATE' });
  assert.throws(() => p.server.exportSession!(), { code: 'ERR_TLS_STATE' });
  assert.equal(ex.version, 0x0304);
  assert.equal(ex.cipherSuite, 0x1301);
  assert.equal(ex.readSequence, 1n);
  assert.equal(ex.writeSequence, 1n);
  // the secrets are the ones Node logged, and the keys/IVs derive from them
  assert.deepEqual(Buffer.from(ex.clientTrafficSecret), p.keylog.get('CLIENT_TRAFFIC_SECRET_0'));
  assert.deepEqual(Buffer.from(ex.serverTrafficSecret), p.keylog.get('SERVER_TRAFFIC_SECRET_0'));
  assert.deepEqual(aes128Keys(ex.serverTrafficSecret), { key: ex.serverKey, iv: ex.serverIv });
  assert.deepEqual(aes128Keys(ex.clientTrafficSecret), { key: ex.clientKey, iv: ex.clientIv });

  // host → client with the exported server key at the exported write sequence
  p.push(sealRecord(ex.serverKey, ex.serverIv, Number(ex.writeSequence), 23, new TextEncoder().encode('from the host')));
  await waitFor(() => Buffer.concat(clientData).toString() === 'from the host');

  // client → host: the engine no longer reads; the host opens the record itself
  p.feed = false;
  const before = p.fromClient.length;
  p.client.write('to the host');
  await waitFor(() => p.fromClient.length > before);
  const record = new Uint8Array(Buffer.concat(p.fromClient.slice(before)));
  const inner = openRecord(ex.clientKey, ex.clientIv, Number(ex.readSequence), record);
  assert.equal(Buffer.from(inner).toString(), 'to the host\x17');
  p.client.destroy();
});

test('exportSession: only in connected', async () => {
  const p = connectPeer({ selectIdentity: () => pki.identity }, { ca: pki.caPem });
  assert.throws(() => p.server.exportSession!(), { code: 'ERR_TLS_STATE' }); // handshaking
  await waitFor(() => p.server.state === 'connected');
  p.server.dispose();
  assert.throws(() => p.server.exportSession!(), { code: 'ERR_TLS_STATE' });
  p.client.destroy();
});
