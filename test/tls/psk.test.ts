/**
 * External PSKs in TLS 1.3 (RFC 8446 §4.2.11, §2.2): config.findPsk, psk_dhe_ke with Node's client
 * (pskCallback), psk_ke with `openssl s_client -allow_no_dhe_kex` through a TCP bridge to the engine,
 * binder key "ext binder", hash binding, unknown identities.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { once } from 'node:events';
import type { TlsPsk, TlsServerConfig } from '../../src/tls/api.js';
import { createTlsServer } from '../../src/tls/index.js';
import { makePki, type TestPki } from './helpers/pki.js';
import { connectPeer, waitFor } from './helpers/nodePeer.js';
import { requirePeer } from '../interop/peers.js';
import { waitUntil } from '../wait.js';

let pki: TestPki;
const KEY = new Uint8Array(randomBytes(32));
const ID = 'device-7';
const enc = (s: string) => new TextEncoder().encode(s);

before(async () => {
  pki = await makePki();
});

function findPsk(map: Record<string, TlsPsk>): (identity: Uint8Array) => TlsPsk | undefined {
  return (identity) => map[new TextDecoder().decode(identity)];
}

/** Node's client with (identity, key) against a server that knows ID → KEY. */
function nodePsk(identity: string, key: Uint8Array, extra: Partial<TlsServerConfig> = {}, ciphers = 'TLS_AES_128_GCM_SHA256') {
  return connectPeer(
    { selectIdentity: () => pki.identity, findPsk: findPsk({ [ID]: { identity: enc(ID), key: KEY } }), ...extra },
    { ciphers, pskCallback: () => ({ identity, psk: Buffer.from(key) }), checkServerIdentity: () => undefined },
  );
}

test('psk: Node client with an external PSK (psk_dhe_ke) → resumption "psk", no certificate', async () => {
  const p = nodePsk(ID, KEY);
  await waitFor(() => p.server.state === 'connected' || p.alert() !== undefined || p.clientError !== undefined);
  assert.equal(p.alert(), undefined, String(p.clientError));
  assert.equal(p.server.info?.resumption, 'psk');
  assert.deepEqual(p.server.info?.pskIdentity, enc(ID));
  assert.notEqual(p.server.info?.group, 0); // psk_dhe_ke: ECDHE too
  assert.equal(p.server.info?.signatureScheme, 0);
  p.client.write('psk data');
  await waitFor(() => p.received().toString() === 'psk data');
  p.client.destroy();
});

test('psk: a wrong key for a known identity → decrypt_error (binder)', async () => {
  const p = nodePsk(ID, new Uint8Array(randomBytes(32)));
  await waitFor(() => p.alert() !== undefined);
  assert.deepEqual(p.alert(), { description: 51, sentByUs: true });
  p.client.destroy();
});

test('psk: an unknown identity with the certificate path offered → full handshake', async () => {
  const p = connectPeer(
    { selectIdentity: () => pki.identity, findPsk: () => undefined },
    { ca: pki.caPem, ciphers: 'TLS_AES_128_GCM_SHA256', pskCallback: () => ({ identity: 'nobody', psk: Buffer.from(KEY) }) },
  );
  await waitFor(() => p.server.state === 'connected' || p.alert() !== undefined);
  assert.equal(p.alert(), undefined);
  assert.equal(p.server.info?.resumption, undefined);
  assert.equal(p.server.info?.signatureScheme, 0x0403);
  p.client.destroy();
});

test('psk: a SHA-384 PSK is not usable with a SHA-256 suite (skipped → full handshake)', async () => {
  const p = connectPeer(
    { selectIdentity: () => pki.identity, findPsk: findPsk({ [ID]: { identity: enc(ID), key: KEY, hash: 'sha384' } }) },
    { ca: pki.caPem, ciphers: 'TLS_AES_128_GCM_SHA256', pskCallback: () => ({ identity: ID, psk: Buffer.from(KEY) }) },
  );
  await waitFor(() => p.server.state === 'connected' || p.alert() !== undefined);
  assert.equal(p.server.info?.resumption, undefined);
  p.client.destroy();
});

/** openssl s_client through a TCP bridge that pumps bytes through the engine. */
async function opensslPsk(args: string[], config: Partial<TlsServerConfig>) {
  const server = createTlsServer({
    entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() },
    selectIdentity: () => pki.identity,
    ...config,
  });
  const received: Buffer[] = [];
  const alerts: number[] = [];
  const tcp = net.createServer((sock) => {
    sock.on('data', (d) => {
      const out = server.receive(new Uint8Array(d));
      if (out.records.length) sock.write(out.records);
      for (const pt of out.plaintext) received.push(Buffer.from(pt));
      if (out.alert) alerts.push(out.alert.description);
      if (out.handshakeComplete) sock.write(server.encrypt(23, enc('hello from the card\n')));
      if (out.peerClosed || out.alert) sock.end();
    });
    sock.on('error', () => {});
  });
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const port = (tcp.address() as net.AddressInfo).port;
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_3', '-ign_eof', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stdout += d));
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  try {
    // the handshake ends: openssl printed the card's greeting (so it is in its read loop), or the
    // engine failed/closed, or openssl gave up
    await waitUntil(() => stdout.includes('hello from the card') || server.state === 'failed' || server.state === 'closed' || exited(), 'the openssl handshake to end');
    if (stdout.includes('hello from the card')) {
      child.stdin.end('from openssl\n');
      await waitUntil(() => received.length > 0 || server.state !== 'connected' || exited(), "openssl's data to reach the engine");
    }
  } finally {
    child.kill();
    tcp.close();
  }
  return { server, stdout, received: Buffer.concat(received).toString(), alerts };
}

test('psk: openssl s_client psk_dhe_ke (real peer over TCP)', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const hex = Buffer.from(KEY).toString('hex');
  const r = await opensslPsk(['-psk', hex, '-psk_identity', ID, '-ciphersuites', 'TLS_AES_128_GCM_SHA256'], {
    findPsk: findPsk({ [ID]: { identity: enc(ID), key: KEY } }),
  });
  assert.deepEqual(r.alerts, []);
  assert.equal(r.server.info?.resumption, 'psk');
  assert.notEqual(r.server.info?.group, 0);
  assert.match(r.stdout, /hello from the card/);
  assert.equal(r.received, 'from openssl\n');
});

test('psk: openssl s_client psk_ke (-allow_no_dhe_kex, only a P-384 share the card lacks): no ECDHE, group 0', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const hex = Buffer.from(KEY).toString('hex');
  const args = ['-psk', hex, '-psk_identity', ID, '-allow_no_dhe_kex', '-groups', 'P-384', '-ciphersuites', 'TLS_AES_128_GCM_SHA256'];
  const r = await opensslPsk(args, {
    findPsk: findPsk({ [ID]: { identity: enc(ID), key: KEY } }),
  });
  assert.deepEqual(r.alerts, []);
  assert.equal(r.server.info?.resumption, 'psk');
  assert.equal(r.server.info?.group, 0);
  assert.match(r.stdout, /hello from the card/);
  assert.equal(r.received, 'from openssl\n');
});

test('psk: no group in common and a wrong psk_ke key → decrypt_error; no PSK at all → handshake_failure', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const args = (hex: string) => ['-psk', hex, '-psk_identity', ID, '-allow_no_dhe_kex', '-groups', 'P-384', '-ciphersuites', 'TLS_AES_128_GCM_SHA256'];
  const wrong = await opensslPsk(args(randomBytes(32).toString('hex')), { findPsk: findPsk({ [ID]: { identity: enc(ID), key: KEY } }) });
  assert.deepEqual(wrong.alerts, [51]);
  const none = await opensslPsk(args(Buffer.from(KEY).toString('hex')), { findPsk: () => undefined });
  assert.deepEqual(none.alerts, [40]);
});
