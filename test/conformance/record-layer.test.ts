/**
 * Negative conformance, record layer: a real `setls serve https` (emulated card, real TCP port)
 * driven with hand-built records over a raw socket; each case asserts the exact alert (level and
 * description), decrypted under the server's keys where it is protected.
 *
 * - RFC 8446 §5.2: a TLSCiphertext longer than 2^14 + 256, or a TLSInnerPlaintext longer than
 *   2^14 + 1, is record_overflow — under handshake and application keys, with the record layer in the
 *   card and exported to the host; a header claiming 65 535 bytes is judged by its header (the host
 *   never buffers it). RFC 5246 §6.2.3: TLS 1.2's bound is 2^14 + 2048 (below it, a garbage record
 *   is bad_record_mac).
 * - RFC 8446 §5.1: nothing may come between the fragments of a handshake message (an empty
 *   application_data record between ClientHello fragments → unexpected_message); an unknown content
 *   type → unexpected_message.
 * - TLS 1.2: a record failing authentication → bad_record_mac; a ChangeCipherSpec that is not the
 *   single byte 01 → unexpected_message (docs/architecture.md, "TLS engine choices").
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ContentType } from '../../src/tls/api.js';
import { A, FATAL, RawConn, plainAlert, record } from './raw-conn.js';
import { startServer, type ConformanceServer } from './server.js';
import { Tls12Client } from './tls12-client.js';
import { Tls13Client } from './tls13-client.js';
import { clientHelloMessage } from '../tls/helpers/clientHello.js';

/** A record whose header announces `length` bytes, followed by `body` bytes (default: all of them) of zeros. */
function bigRecord(type: number, length: number, body = length): Uint8Array {
  const r = new Uint8Array(5 + body);
  r.set([type, 3, 3, length >> 8, length & 0xff]);
  return r;
}

const OVER_13 = 16384 + 256 + 1; // 16 641
const OVER_12 = 16384 + 2048 + 1; // 18 433

function recordLayerSuite(mode: 'card' | 'host'): void {
  describe(`record layer: a setls server with the record layer in the ${mode}`, () => {
    let server: ConformanceServer;
    before(async () => {
      server = await startServer({ recordLayer: mode });
    });
    after(async () => {
      await server?.close();
    });

    test('positive control: a hand-built TLS 1.3 handshake and GET /status complete (a dead server cannot pass)', async (t) => {
      const c = await Tls13Client.connect(server.port, t);
      await c.handshake();
      assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
    });

    test('positive control: a hand-built TLS 1.2 handshake and GET /status complete', async (t) => {
      const c = await Tls12Client.connect(server.port, t);
      await c.handshake();
      assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
    });

    test('TLS 1.3: a 16 641-byte ciphertext record under the application keys → record_overflow', async (t) => {
      const c = await Tls13Client.connect(server.port, t);
      await c.handshake();
      c.conn.send(bigRecord(ContentType.applicationData, OVER_13));
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.recordOverflow });
    });

    test('TLS 1.3: a header claiming 65 535 bytes is judged by its header → record_overflow', async (t) => {
      const c = await Tls13Client.connect(server.port, t);
      await c.handshake();
      // Only 100 of the 65 535 bytes follow: the alert must not wait for the rest.
      c.conn.send(bigRecord(ContentType.applicationData, 0xffff, 100));
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.recordOverflow });
    });

    test('TLS 1.3: application data whose TLSInnerPlaintext is 2^14 + 2 bytes → record_overflow', async (t) => {
      const c = await Tls13Client.connect(server.port, t);
      await c.handshake();
      c.conn.send(c.sealAp(ContentType.applicationData, new Uint8Array(16384), 1));
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.recordOverflow });
    });

    test('TLS 1.2: an 18 433-byte ciphertext record after the handshake → record_overflow', async (t) => {
      const c = await Tls12Client.connect(server.port, t);
      await c.handshake();
      c.conn.send(bigRecord(ContentType.applicationData, OVER_12));
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.recordOverflow });
    });

    test('TLS 1.2: a 17 000-byte record (within 2^14 + 2048) that fails authentication → bad_record_mac', async (t) => {
      const c = await Tls12Client.connect(server.port, t);
      await c.handshake();
      c.conn.send(bigRecord(ContentType.applicationData, 17000));
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.badRecordMac });
    });

    test('TLS 1.2: application data with a bad MAC → bad_record_mac', async (t) => {
      const c = await Tls12Client.connect(server.port, t);
      await c.handshake();
      const r = c.seal(ContentType.applicationData, new TextEncoder().encode('GET /status HTTP/1.1\r\n\r\n'));
      r[r.length - 1]! ^= 0x01;
      c.conn.send(r);
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.badRecordMac });
    });

    test('TLS 1.3: a record of unknown content type 25 after the handshake → unexpected_message', async (t) => {
      const c = await Tls13Client.connect(server.port, t);
      await c.handshake();
      c.conn.send(record(25, Uint8Array.of(1, 2, 3)));
      assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
    });
  });
}

recordLayerSuite('card');
recordLayerSuite('host');

describe('record layer during the handshake (the card)', () => {
  let server: ConformanceServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.close();
  });

  test('positive control: a ClientHello in two fragments completes the handshake', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    const ch = c.clientHello();
    c.noteClientHello(ch);
    c.conn.send(record(ContentType.handshake, ch.subarray(0, 40), 0x0301), record(ContentType.handshake, ch.subarray(40), 0x0301));
    await c.readServerFlight();
    c.conn.send(c.sealHs(ContentType.handshake, c.finishedMessage()));
    assert.match(await c.get('/status'), /^HTTP\/1\.1 200 OK\r\n/);
  });

  test('a zero-length application_data record between ClientHello fragments → unexpected_message', async (t) => {
    const c = await RawConn.open(server.port, t);
    const ch = clientHelloMessage({ sni: 'localhost' });
    c.send(record(ContentType.handshake, ch.subarray(0, 40), 0x0301), record(ContentType.applicationData, new Uint8Array(0)), record(ContentType.handshake, ch.subarray(40), 0x0301));
    assert.deepEqual(plainAlert(await c.record()), { level: FATAL, description: A.unexpectedMessage });
  });

  test('a zero-length application_data record after the first ClientHello fragment is answered at once → unexpected_message', async (t) => {
    const c = await RawConn.open(server.port, t);
    const ch = clientHelloMessage({ sni: 'localhost' });
    c.send(record(ContentType.handshake, ch.subarray(0, 40), 0x0301), record(ContentType.applicationData, new Uint8Array(0)));
    assert.deepEqual(plainAlert(await c.record()), { level: FATAL, description: A.unexpectedMessage });
  });

  test('an application_data record between the fragments of the client Finished → unexpected_message', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    const fin = c.finishedMessage();
    c.conn.send(c.sealHs(ContentType.handshake, fin.subarray(0, 10)), c.sealHs(ContentType.applicationData, Uint8Array.of(1)), c.sealHs(ContentType.handshake, fin.subarray(10)));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('a record of unknown content type before the ClientHello → unexpected_message', async (t) => {
    const c = await RawConn.open(server.port, t);
    c.send(record(25, Uint8Array.of(1, 2, 3)));
    assert.deepEqual(plainAlert(await c.record()), { level: FATAL, description: A.unexpectedMessage });
  });

  test('a header claiming 65 535 bytes before the ClientHello → a plaintext record_overflow (the client has no keys yet)', async (t) => {
    const c = await RawConn.open(server.port, t);
    c.send(bigRecord(ContentType.handshake, 0xffff, 100));
    assert.deepEqual(plainAlert(await c.record()), { level: FATAL, description: A.recordOverflow });
  });

  test('TLS 1.3: a 16 641-byte ciphertext record under the handshake keys → record_overflow', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    c.conn.send(bigRecord(ContentType.applicationData, OVER_13));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.recordOverflow });
  });

  test('TLS 1.3: a client Finished padded to a 16 588-byte TLSInnerPlaintext → record_overflow', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    const fin = c.finishedMessage();
    c.conn.send(c.sealHs(ContentType.handshake, fin, 16588 - fin.length - 1));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.recordOverflow });
  });

  test('TLS 1.3: a client Finished padded past 2^14 + 256 bytes of ciphertext → record_overflow', async (t) => {
    const c = await Tls13Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    const fin = c.finishedMessage();
    c.conn.send(c.sealHs(ContentType.handshake, fin, OVER_13 - 16 - fin.length - 1));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.recordOverflow });
  });

  test('TLS 1.2: a ChangeCipherSpec of two bytes → unexpected_message', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    c.conn.send(c.clientKeyExchange(), record(ContentType.changeCipherSpec, Uint8Array.of(1, 1)));
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.unexpectedMessage });
  });

  test('TLS 1.2: a client Finished that fails authentication → bad_record_mac', async (t) => {
    const c = await Tls12Client.connect(server.port, t);
    c.sendClientHello();
    await c.readServerFlight();
    const cke = c.clientKeyExchange();
    const fin = c.seal(ContentType.handshake, c.finishedMessage());
    fin[10]! ^= 0x80;
    c.conn.send(cke, record(ContentType.changeCipherSpec, Uint8Array.of(1)), fin);
    assert.deepEqual(await c.readAlert(), { level: FATAL, description: A.badRecordMac });
  });
});
