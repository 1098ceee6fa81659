/**
 * TLS 1.3 session tickets and resumption (RFC 8446 §4.6.1, §4.2.11, §2.2) with Node's TLS client:
 * NewSessionTicket after the handshake, resumption with psk_dhe_ke, key rotation, and every reason a
 * ticket falls back to a full handshake; a bad binder is decrypt_error. Plus sealTicket/openTicket.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { TicketKey, TlsIdentity, TlsServerConfig } from '../../src/tls/api.js';
import { openTicket, sealTicket } from '../../src/tls/tickets.js';
import { makePki, type TestPki } from './helpers/pki.js';
import { makeCa, makeClientLeaf } from './helpers/clientPki.js';
import { connectPeer, waitFor, type Peer } from './helpers/nodePeer.js';

let pki: TestPki;
const key = (id: string): TicketKey => ({ id: new TextEncoder().encode(id), key: new Uint8Array(randomBytes(32)) });
const K1 = key('TKT1');
const K2 = key('TKT2');

before(async () => {
  pki = await makePki();
});

function config(extra: Partial<TlsServerConfig> = {}, id: TlsIdentity = pki.identity): Partial<TlsServerConfig> & Pick<TlsServerConfig, 'selectIdentity'> {
  return { selectIdentity: () => id, ticketKeys: { current: K1 }, ...extra };
}

/** A full handshake that yields Node's session (with our ticket). */
async function firstSession(extra: Partial<TlsServerConfig> = {}, clientOpts = {}, id?: TlsIdentity): Promise<{ session: Buffer; peer: Peer }> {
  const p = connectPeer(config(extra, id), { ca: pki.caPem, ...clientOpts });
  let session: Buffer | undefined;
  p.client.on('session', (s: Buffer) => (session ??= s));
  await waitFor(() => session !== undefined || p.alert() !== undefined);
  assert.equal(p.alert(), undefined);
  assert.equal(p.server.info?.resumption, undefined);
  p.client.destroy();
  return { session: session!, peer: p };
}

async function second(session: Buffer, extra: Partial<TlsServerConfig>, clientOpts = {}, tap?: (c: Buffer, i: number) => Buffer): Promise<Peer> {
  const p = connectPeer(config(extra), { ca: pki.caPem, session, ...clientOpts }, tap);
  await waitFor(() => p.server.state === 'connected' || p.alert() !== undefined);
  return p;
}

test('tickets: sealTicket/openTicket round trip, key rotation, unknown id and tampering', () => {
  const entropy = { random: (n: number) => new Uint8Array(randomBytes(n)) };
  const state = new TextEncoder().encode('session state');
  const t = sealTicket(K1, state, entropy);
  assert.deepEqual(t.subarray(0, 4), K1.id);
  assert.equal(t.length, 4 + 12 + state.length + 16);
  assert.deepEqual(openTicket({ current: K1 }, t), state);
  assert.deepEqual(openTicket({ current: K2, previous: [K1] }, t), state);
  assert.equal(openTicket({ current: K2 }, t), undefined);
  for (const i of [0, 5, 20, t.length - 1]) {
    const bad = t.slice();
    bad[i]! ^= 1;
    assert.equal(openTicket({ current: K1 }, bad), undefined, `byte ${i}`);
  }
  assert.equal(openTicket({ current: K1 }, t.subarray(0, 31)), undefined);
});

test('tickets: the first connection gets a ticket; the second resumes it (no certificate sent)', async () => {
  const { session, peer: first } = await firstSession({ ticketCount: 2, alpnProtocols: ['h2'] }, { ALPNProtocols: ['h2'] });
  // the NewSessionTickets came in the same receive() that completed the handshake
  const done = first.outputs.find((o) => o.handshakeComplete);
  assert.ok(done && done.records.length > 0);
  const p = await second(session, { alpnProtocols: ['h2'] }, { ALPNProtocols: ['h2'] });
  assert.equal(p.alert(), undefined);
  assert.equal(p.client.isSessionReused(), true);
  assert.equal(p.server.info?.resumption, 'ticket');
  assert.equal(p.server.info?.signatureScheme, 0); // no CertificateVerify
  assert.equal(p.server.info?.alpn, 'h2');
  // the engine's flight is much smaller than the certificate one
  const firstFlight = first.toClient[0]!.length;
  assert.ok(p.toClient[0]!.length < firstFlight - pki.identity.certificateChain[0]!.length, `${p.toClient[0]!.length} vs ${firstFlight}`);
  p.client.write('resumed');
  await waitFor(() => p.received().toString() === 'resumed');
  p.client.destroy();
});

test('tickets: a ticket sealed under a key now in `previous` still resumes; an unknown key id does not', async () => {
  const { session } = await firstSession();
  const rotated = await second(session, { ticketKeys: { current: K2, previous: [K1] } });
  assert.equal(rotated.server.info?.resumption, 'ticket');
  assert.equal(rotated.client.isSessionReused(), true);
  rotated.client.destroy();
  const unknown = await second(session, { ticketKeys: { current: K2 } });
  assert.equal(unknown.alert(), undefined);
  assert.equal(unknown.server.info?.resumption, undefined);
  assert.equal(unknown.client.isSessionReused(), false);
  unknown.client.destroy();
});

test('tickets: past its lifetime (entropy.now() advanced) → full handshake', async () => {
  const { session } = await firstSession({ ticketLifetimeSeconds: 60 });
  const later = await second(session, { entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() + 61_000 } });
  assert.equal(later.alert(), undefined);
  assert.equal(later.server.info?.resumption, undefined);
  assert.equal(later.client.isSessionReused(), false);
  later.client.destroy();
  // within the lifetime but the ages disagree by more than the skew tolerance → full handshake too
  const { session: s2 } = await firstSession({ ticketLifetimeSeconds: 600 });
  const skewed = await second(s2, { entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() + 30_000 } });
  assert.equal(skewed.server.info?.resumption, undefined);
  skewed.client.destroy();
  // and a ticket of another SNI is not resumed
  const { session: s3 } = await firstSession();
  const other = await second(s3, { selectIdentity: () => pki.identity }, { servername: 'other.example', checkServerIdentity: () => undefined });
  assert.equal(other.server.info?.resumption, undefined);
  other.client.destroy();
});

test('tickets: a tampered ticket → full handshake', async () => {
  const { session } = await firstSession();
  const at = session.indexOf(Buffer.from(K1.id));
  assert.ok(at > 0, 'ticket key id inside the session');
  const bad = Buffer.from(session);
  bad[at + 30]! ^= 0x55; // inside the AES-GCM ciphertext
  const p = await second(bad, {});
  assert.equal(p.alert(), undefined);
  assert.equal(p.server.info?.resumption, undefined);
  assert.equal(p.client.isSessionReused(), false);
  p.client.destroy();
});

test('tickets: a bad binder → decrypt_error', async () => {
  const { session } = await firstSession();
  // pre_shared_key is the last extension of the ClientHello, so its last byte is the last binder byte.
  const p = await second(session, {}, {}, (chunk, i) => {
    if (i !== 0) return chunk;
    const c = Buffer.from(chunk);
    c[c.length - 1]! ^= 0x01;
    return c;
  });
  assert.deepEqual(p.alert(), { description: 51, sentByUs: true });
  p.client.destroy();
});

test('tickets: the client identity of a mutual-TLS session is restored on resumption', async () => {
  const root = await makeCa('CN=root');
  const leaf = await makeClientLeaf(root);
  const id: TlsIdentity = { ...pki.identity, clientAuth: 'required', trustAnchors: [root.der] };
  const { session, peer: first } = await firstSession({}, { cert: leaf.pem, key: leaf.keyPem }, id);
  assert.ok(first.server.info?.peer);
  const p = connectPeer(config({}, id), { ca: pki.caPem, session, cert: leaf.pem, key: leaf.keyPem });
  await waitFor(() => p.server.state === 'connected' || p.alert() !== undefined);
  assert.equal(p.server.info?.resumption, 'ticket');
  assert.deepEqual(p.server.info?.peer, first.server.info?.peer);
  p.client.destroy();
});

test('tickets: bad ticket settings are refused at creation', async () => {
  const { createTlsServer } = await import('../../src/tls/index.js');
  const base = { entropy: { random: (n: number) => new Uint8Array(n), now: () => 0 }, selectIdentity: () => undefined };
  assert.throws(() => createTlsServer({ ...base, ticketLifetimeSeconds: 604801 }), { code: 'ERR_TLS_ARGUMENT' });
  assert.throws(() => createTlsServer({ ...base, ticketKeys: { current: { id: new Uint8Array(3), key: new Uint8Array(32) } } }), { code: 'ERR_TLS_ARGUMENT' });
});
