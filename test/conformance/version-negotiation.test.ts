/**
 * Negative conformance, version and ClientHello negotiation: a real `setls serve https` (emulated
 * card, real TCP port) driven with hand-built ClientHellos over a raw socket; each case asserts the
 * exact alert (level and description).
 *
 * - RFC 8446 Appendix D.5 (D.2 for TLS 1.2): ClientHello.legacy_version 0x0300 or lower →
 *   protocol_version, even when supported_versions offers TLS 1.3.
 * - RFC 7507 §3: TLS_FALLBACK_SCSV from a client whose highest version is below the server's highest
 *   enabled version → inappropriate_fallback; no alert when the card enables nothing higher.
 * - RFC 7627 §5.3: resuming (session ID or ticket) an extended_master_secret session with a
 *   ClientHello without the extension → the server aborts (handshake_failure).
 * - RFC 6066 §3: an SNI host name with a control character → illegal_parameter
 *   (docs/architecture.md, "TLS engine choices").
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ContentType } from '../../src/tls/api.js';
import { A, FATAL, RawConn, plainAlert, record } from './raw-conn.js';
import { startServer, type ConformanceServer } from './server.js';
import { ECDHE_ECDSA_AES128_GCM, Tls12Client } from './tls12-client.js';
import { Tls13Client } from './tls13-client.js';

const SCSV = 0x5600;
const TLS13 = 0x0304;
const TLS12 = 0x0303;

/** Sets ClientHello.legacy_version of a ClientHello message (4-byte header included). */
function withLegacyVersion(ch: Uint8Array, v: number): Uint8Array {
  const m = ch.slice();
  m[4] = v >> 8;
  m[5] = v & 0xff;
  return m;
}

/** The first record of the server's answer: its type and, for a handshake record, the message type. */
async function firstAnswer(c: RawConn): Promise<{ type: number; msg?: number }> {
  const r = await c.record();
  if (!r) throw new Error('the server closed without answering');
  return r[0] === ContentType.handshake ? { type: r[0], msg: r[5]! } : { type: r[0]! };
}

describe('version negotiation: a card with TLS 1.3 and TLS 1.2 enabled (the default)', () => {
  let server: ConformanceServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.close();
  });

  test('positive control: legacy_version 0x0303 with supported_versions [1.3] completes and serves /status', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    await c.handshake();
    assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  test('positive control: a TLS 1.2 ClientHello (no supported_versions) completes and serves /status', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    await c.handshake();
    assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  for (const legacy of [0x0300, 0x0200]) {
    test(`legacy_version 0x${legacy.toString(16).padStart(4, '0')} offering TLS 1.3 in supported_versions → protocol_version (RFC 8446 D.5)`, async (t) => {
      const c = await Tls13Client.connect(server.port, t);
      c.conn.send(record(ContentType.handshake, withLegacyVersion(c.clientHello({ versions: [TLS13, TLS12] }), legacy), 0x0301));
      assert.deepEqual(plainAlert(await c.conn.record()), { level: FATAL, description: A.protocolVersion });
    });
  }

  test('legacy_version 0x0300 offering only TLS 1.2 in supported_versions → protocol_version', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    c.sendClientHello({ legacyVersion: 0x0300, versions: [TLS12] });
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.protocolVersion });
  });

  test('an SSL 3.0 ClientHello (legacy_version 0x0300, no supported_versions) → protocol_version (RFC 8446 D.2)', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    c.sendClientHello({ legacyVersion: 0x0300 });
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.protocolVersion });
  });

  test('TLS_FALLBACK_SCSV from a TLS 1.2 client (no supported_versions) → inappropriate_fallback (RFC 7507 §3)', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    c.sendClientHello({ suites: [ECDHE_ECDSA_AES128_GCM, SCSV] });
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.inappropriateFallback });
  });

  test('TLS_FALLBACK_SCSV with supported_versions [1.2] → inappropriate_fallback', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    c.sendClientHello({ suites: [ECDHE_ECDSA_AES128_GCM, SCSV], versions: [TLS12] });
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.inappropriateFallback });
  });

  test('TLS_FALLBACK_SCSV from a client offering TLS 1.3 is no fallback: the handshake completes', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    await c.handshake({ suites: [0x1301, SCSV] });
    assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  test('an SNI host name with a control character → illegal_parameter', async (t) => {
    for (const sni of ['local\u0001host', 'local host', 'localhost\u007f']) {
      const c = await RawConn.open(server.port, t);
      const hello = new Tls13Client(c).clientHello({ sni });
      c.send(record(ContentType.handshake, hello, 0x0301));
      assert.deepEqual(plainAlert(await c.record()), { level: FATAL, description: A.illegalParameter }, JSON.stringify(sni));
    }
  });

  describe('TLS 1.2 resumption and extended_master_secret (RFC 7627 §5.3)', () => {
    let session: { sessionId: Uint8Array; ticket: Uint8Array | undefined; master: Uint8Array };
    before(async () => {
      const c = await Tls12Client.connect(server.port);
      try {
        session = await c.handshake();
        assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
      } finally {
        c.conn.close();
      }
      assert.equal(session.sessionId.length, 32, 'the full handshake gave a session ID');
      assert.ok(session.ticket && session.ticket.length > 0, 'the full handshake gave a ticket');
    });

    test('positive control: the session resumes by session ID with extended_master_secret', async (t) => {
      const c = await Tls12Client.connect(server.port, t);
      c.sendClientHello({ sessionId: session.sessionId, ticket: null });
      await c.readServerFlight(session);
      assert.equal(c.resumed, true);
      await c.finish();
      assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
    });

    test('positive control: the session resumes by ticket with extended_master_secret', async (t) => {
      const c = await Tls12Client.connect(server.port, t);
      c.sendClientHello({ sessionId: new Uint8Array(randomBytes(32)), ticket: session.ticket! });
      await c.readServerFlight(session);
      assert.equal(c.resumed, true);
      await c.finish();
      assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
    });

    test('resumption by session ID without extended_master_secret → handshake_failure', async (t) => {
      const c = await Tls12Client.connect(server.port, t);
      c.sendClientHello({ sessionId: session.sessionId, ticket: null, ems: false });
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.handshakeFailure });
    });

    test('resumption by ticket without extended_master_secret → handshake_failure', async (t) => {
      const c = await Tls12Client.connect(server.port, t);
      c.sendClientHello({ sessionId: new Uint8Array(randomBytes(32)), ticket: session.ticket!, ems: false });
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.handshakeFailure });
    });

    test('an unknown session ID without extended_master_secret gets a full handshake (nothing to abort)', async (t) => {
      const c = await RawConn.open(server.port, t);
      const hello = new Tls12Client(c).clientHello({ sessionId: new Uint8Array(randomBytes(32)), ticket: null, ems: false });
      c.send(record(ContentType.handshake, hello, 0x0301));
      assert.deepEqual(await firstAnswer(c), { type: ContentType.handshake, msg: 2 });
    });
  });
});

describe('version negotiation: a card whose policy enables TLS 1.2 only', () => {
  let server: ConformanceServer;
  before(async () => {
    server = await startServer({ policy: { versions: [TLS12] } });
  });
  after(async () => {
    await server?.close();
  });

  test('TLS_FALLBACK_SCSV from a TLS 1.2 client is no fallback here: the handshake completes', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    await c.handshake({ suites: [ECDHE_ECDSA_AES128_GCM, SCSV] });
    assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  test('a TLS 1.3-only ClientHello gets protocol_version (the policy is in force)', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    c.sendClientHello(c.clientHello({ versions: [TLS13] }));
    assert.deepEqual(plainAlert(await c.conn.record()), { level: FATAL, description: A.protocolVersion });
  });
});
