/**
 * Negative conformance, alerts: a real `setls serve https` (emulated card, real TCP port) driven with
 * hand-built records over a raw socket; each case asserts the exact alert (level and description)
 * the server sends back, decrypted under the server's keys where it is protected.
 *
 * RFC 8446 §5.4 (and RFC 5246 §6.2.1): a zero-length Alert — plaintext before keys, protected under
 * handshake or application keys, padded or not — is unexpected_message, not decode_error; an alert of
 * another wrong length is decode_error. RFC 8446 §4.6: a post-handshake handshake message other than
 * NewSessionTicket/KeyUpdate/CertificateRequest from the client is unexpected_message.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ContentType } from '../../src/tls/api.js';
import { A, FATAL, RawConn, plainAlert, record } from './raw-conn.js';
import { startServer, type ConformanceServer } from './server.js';
import { Tls12Client } from './tls12-client.js';
import { Tls13Client } from './tls13-client.js';

const EMPTY = new Uint8Array(0);

describe('alerts: a setls server with the record layer in the card', () => {
  let server: ConformanceServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.close();
  });

  test('positive control: a hand-built TLS 1.3 handshake and GET /status complete (a dead server cannot pass)', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    await c.handshake();
    const res = await c.get('/status');
    assert.match(res, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(res, /"device":"setls demo plug"/);
  });

  test('positive control: a hand-built TLS 1.2 handshake and GET /status complete', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    await c.handshake();
    assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  test('TLS 1.3: a zero-length plaintext alert before keys → unexpected_message (RFC 8446 §5.4)', async (t) => {
    const c = await RawConn.open(server.port, t);
    c.send(record(ContentType.alert, EMPTY));
    assert.deepEqual(plainAlert(await c.record()), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.3: a zero-length alert under the client handshake keys → unexpected_message', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    c.conn.send(c.sealHs(ContentType.alert, EMPTY));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.3: a zero-length alert with padding under the client handshake keys → unexpected_message', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    c.conn.send(c.sealHs(ContentType.alert, EMPTY, 32));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.3: a zero-length alert under the application keys → unexpected_message', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    await c.handshake();
    c.conn.send(c.sealAp(ContentType.alert, EMPTY));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.3: a zero-length alert with padding under the application keys → unexpected_message', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    await c.handshake();
    c.conn.send(c.sealAp(ContentType.alert, EMPTY, 100));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.3: an alert of 3 bytes is decode_error (the zero-length rule is specific)', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    await c.handshake();
    c.conn.send(c.sealAp(ContentType.alert, Uint8Array.of(1, 0, 0)));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.decodeError });
  });

  test('TLS 1.2: a zero-length plaintext alert before keys → unexpected_message (RFC 5246 §6.2.1)', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    c.conn.send(record(ContentType.alert, EMPTY));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.2: a zero-length alert under the application keys → unexpected_message', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    await c.handshake();
    c.conn.send(c.seal(ContentType.alert, EMPTY));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.3: a handshake message after the client Finished that is not KeyUpdate → unexpected_message', async (t) => {
    // A ClientHello and a NewSessionTicket from the client, each on a fresh connection.
    for (const msg of [Uint8Array.of(1, 0, 0, 2, 3, 3), Uint8Array.of(4, 0, 0, 1, 0)]) {
      const c = await Tls13Client.connect(server.port, t);
      await c.handshake();
      c.conn.send(c.sealAp(ContentType.handshake, msg));
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage }, `handshake type ${msg[0]}`);
    }
  });
});

describe('alerts: a setls server with the record layer exported to the host (TLS-Tandem)', () => {
  let server: ConformanceServer;
  before(async () => {
    server = await startServer({ recordLayer: 'host' });
  });
  after(async () => {
    await server?.close();
  });

  test('positive control: a hand-built TLS 1.3 handshake and GET /status complete', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    await c.handshake();
    assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  test('TLS 1.3: a zero-length alert (padded) under the application keys → unexpected_message from the host', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    await c.handshake();
    c.conn.send(c.sealAp(ContentType.alert, EMPTY, 10));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.2: a zero-length alert under the application keys → unexpected_message from the host', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    await c.handshake();
    c.conn.send(c.seal(ContentType.alert, EMPTY));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });
});
