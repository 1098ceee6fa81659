/**
 * TLS 1.2 resumption with Node's client: session IDs (config.sessionCache) and RFC 5077 tickets
 * (config.ticketKeys); non-EMS sessions are never stored; renegotiation attempts are refused.
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
before(async () => {
  ec = await makePki('ecdsa');
});

function mapCache(): NonNullable<TlsServerConfig['sessionCache']> & { m: Map<string, Uint8Array> } {
  const m = new Map<string, Uint8Array>();
  const k = (id: Uint8Array) => Buffer.from(id).toString('hex');
  return { m, get: (id) => m.get(k(id)), set: (id, s) => void m.set(k(id), s), delete: (id) => void m.delete(k(id)) };
}

function connect12(cfg: Partial<TlsServerConfig>, opts: tls.ConnectionOptions = {}): Harness {
  return connectNode(ec.identity, ec.caPem, cfg, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...opts });
}

/** Full handshake; resolves with the session Node saved. */
async function firstSession(cfg: Partial<TlsServerConfig>, opts: tls.ConnectionOptions = {}): Promise<{ h: Harness; session: Buffer }> {
  const h = connect12(cfg, opts);
  const sessionP = once(h.client, 'session') as Promise<[Buffer]>;
  await once(h.client, 'secureConnect');
  await waitFor(() => h.server.state === 'connected');
  const [session] = await sessionP;
  return { h, session };
}

async function roundTrip(h: Harness): Promise<void> {
  const msg = randomBytes(3000);
  h.client.write(msg);
  await waitFor(() => h.received().length >= msg.length);
  const chunks: Buffer[] = [];
  h.client.on('data', (d: Buffer) => chunks.push(d));
  h.toClient(h.server.encrypt(23, msg));
  await waitFor(() => Buffer.concat(chunks).length >= msg.length);
  assert.ok(Buffer.concat(chunks).equals(msg));
}

test('TLS 1.2 session-ID resumption with Node (abbreviated handshake)', async () => {
  const cache = mapCache();
  const cfg = { sessionCache: cache };
  const { h, session } = await firstSession(cfg, { ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
  assert.equal(h.server.info?.resumption, 'full');
  assert.equal(cache.m.size, 1, 'session stored');
  const full = h.server.exportKeyingMaterial('EXPORTER-x', new Uint8Array(0), 16);
  h.client.destroy();

  const h2 = connect12(cfg, { session, ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
  await once(h2.client, 'secureConnect');
  await waitFor(() => h2.server.state === 'connected');
  assert.equal(h2.client.isSessionReused(), true);
  assert.equal(h2.server.info?.resumption, 'session-id');
  assert.equal(h2.server.info?.cipherSuite, 0xc02c);
  // No Certificate / ServerKeyExchange in the abbreviated flight.
  const types = beforeCcs(h2.toClientLog).map((m) => m.type);
  assert.deepEqual(types, [2]);
  assert.equal(
    Buffer.from(h2.server.exportKeyingMaterial('EXPORTER-x', Buffer.from('c'), 16)).toString('hex'),
    h2.client.exportKeyingMaterial(16, 'EXPORTER-x', Buffer.from('c')).toString('hex'),
  );
  assert.notDeepEqual(full, h2.server.exportKeyingMaterial('EXPORTER-x', new Uint8Array(0), 16), 'fresh randoms, fresh keys');
  await roundTrip(h2);
  h2.client.destroy();
});

test('TLS 1.2 ticket resumption with Node (RFC 5077), ticket key id in clear', async () => {
  const ticketKeys = { current: { id: Uint8Array.of(1, 2, 3, 4), key: new Uint8Array(randomBytes(32)) } };
  const cfg = { ticketKeys };
  const { h, session } = await firstSession(cfg);
  const nst = beforeCcs(h.toClientLog).find((m) => m.type === 4)!;
  assert.equal(nst.body.readUInt32BE(0), 7200, 'lifetime hint');
  assert.deepEqual([...nst.body.subarray(6, 10)], [1, 2, 3, 4], 'ticket key id in clear');
  assert.equal(h.server.info?.resumption, 'full');
  h.client.destroy();

  const h2 = connect12(cfg, { session });
  await once(h2.client, 'secureConnect');
  await waitFor(() => h2.server.state === 'connected');
  assert.equal(h2.client.isSessionReused(), true);
  assert.equal(h2.server.info?.resumption, 'ticket');
  await roundTrip(h2);
  h2.client.destroy();

  // A different ticket key: full handshake (and a new ticket).
  const h3 = connect12({ ticketKeys: { current: { id: Uint8Array.of(9, 9, 9, 9), key: new Uint8Array(32) } } }, { session });
  await once(h3.client, 'secureConnect');
  assert.equal(h3.client.isSessionReused(), false);
  await waitFor(() => h3.server.state === 'connected');
  assert.equal(h3.server.info?.resumption, 'full');
  h3.client.destroy();
});

test('TLS 1.2 ticket: previous keys still open tickets; expired sessions are not resumed', async () => {
  const old = { id: Uint8Array.of(7, 7, 7, 7), key: new Uint8Array(randomBytes(32)) };
  let now = Date.now();
  const entropy = { random: (n: number) => new Uint8Array(randomBytes(n)), now: () => now };
  const { h, session } = await firstSession({ ticketKeys: { current: old }, entropy });
  h.client.destroy();
  const rotated = { ticketKeys: { current: { id: Uint8Array.of(8, 8, 8, 8), key: new Uint8Array(randomBytes(32)) }, previous: [old] }, entropy };
  const h2 = connect12(rotated, { session });
  await once(h2.client, 'secureConnect');
  assert.equal(h2.client.isSessionReused(), true);
  h2.client.destroy();
  now += 7201_000;
  const h3 = connect12(rotated, { session });
  await once(h3.client, 'secureConnect');
  assert.equal(h3.client.isSessionReused(), false);
  h3.client.destroy();
});

test('TLS 1.2 without extended_master_secret: accepted, but never stored or resumed', async () => {
  const cache = mapCache();
  const ticketKeys = { current: { id: Uint8Array.of(1, 1, 1, 1), key: new Uint8Array(randomBytes(32)) } };
  // SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3: bit 0)
  const h = connect12({ sessionCache: cache, ticketKeys }, { secureOptions: 1 });
  await once(h.client, 'secureConnect');
  await waitFor(() => h.server.state === 'connected');
  const ch = h.fromClient[0]!;
  assert.ok(!hasExtension(ch, 23), 'Node did not offer EMS');
  const sh = plaintextHandshakeMessages(h.toClientLog).find((m) => m.type === 2)!;
  assert.equal(sh.body[34], 0, 'no session id issued');
  assert.equal(cache.m.size, 0);
  assert.equal(beforeCcs(h.toClientLog).filter((m) => m.type === 4).length, 0, 'no ticket');
  await roundTrip(h);
  h.client.destroy();
});

test('TLS 1.2 renegotiation attempt: warning no_renegotiation, the connection stays up', async () => {
  const h = connect12({});
  await once(h.client, 'secureConnect');
  await waitFor(() => h.server.state === 'connected');
  const before = h.outputs.length;
  h.client.on('error', () => {});
  h.client.renegotiate({}, () => {});
  await waitFor(() => h.outputs.length > before);
  const out = h.outputs[before]!;
  assert.equal(out.alert, undefined);
  assert.equal(out.records[0], 21, 'an alert record (protected warning no_renegotiation)');
  assert.equal(h.server.state, 'connected');
  h.client.destroy();
});

/** Whether the ClientHello in the first client record carries extension `type`. */
function hasExtension(rec: Buffer, type: number): boolean {
  const body = rec.subarray(5 + 4);
  let o = 2 + 32;
  o += 1 + body[o]!;
  o += 2 + body.readUInt16BE(o);
  o += 1 + body[o]!;
  const end = o + 2 + body.readUInt16BE(o);
  for (o += 2; o < end; ) {
    if (body.readUInt16BE(o) === type) return true;
    o += 4 + body.readUInt16BE(o + 2);
  }
  return false;
}

/** Plaintext handshake messages the engine sent before its ChangeCipherSpec. */
function beforeCcs(log: Buffer[]): { type: number; body: Buffer }[] {
  const all = Buffer.concat(log);
  let o = 0;
  while (o + 5 <= all.length && all[o] !== 20) o += 5 + all.readUInt16BE(o + 3);
  return plaintextHandshakeMessages([all.subarray(0, o)]);
}
