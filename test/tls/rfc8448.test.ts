/** RFC 8448 §3 "Simple 1-RTT Handshake", reproduced byte for byte by the server engine. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concat, toHex } from '../../src/bytes/index.js';
import { trace, traceGroup, traceServer, flightMessages } from './helpers/rfc8448.js';

const hex = toHex;

test('RFC 8448 §3: server flight, secrets, Finished, application data and close_notify', () => {
  const { conn, secrets, identity, names } = traceServer();
  assert.equal(conn.state, 'handshaking');

  const r1 = conn.receive(trace('clientHelloRecord'));
  assert.equal(r1.alert, undefined, `unexpected alert ${JSON.stringify(r1.alert)}`);
  assert.deepEqual(names, ['server'], 'SNI "server" passed to selectIdentity');

  // Every key-schedule secret of the trace.
  for (const [label, value] of Object.entries(traceGroup('secrets'))) {
    assert.equal(hex(secrets.get(label) ?? new Uint8Array()), hex(value), label);
  }
  for (const [label, value] of Object.entries(traceGroup('keys'))) {
    if (label.startsWith('c_ap')) continue; // derived when the client Finished arrives
    assert.equal(hex(secrets.get(label) ?? new Uint8Array()), hex(value), label);
  }
  assert.equal(hex(secrets.get('server_verify_data')!), hex(trace('serverVerifyData')));

  // CertificateVerify content = 64 spaces || context || 0 || Transcript-Hash(CH..Certificate).
  assert.equal(identity.signedData.length, 1);
  assert.equal(identity.signedData[0]!.length, 64 + 33 + 1 + 32);

  // Exact server flight bytes: ServerHello record, then EE..Finished in one protected record. No CCS
  // (the ClientHello's legacy_session_id is empty).
  const expected = concat(trace('serverHelloRecord'), trace('serverFlightRecord'));
  assert.equal(hex(r1.records), hex(expected));
  assert.equal(r1.handshakeComplete, false);
  assert.equal(conn.state, 'handshaking');
  assert.deepEqual(conn.info, { version: 0x0304, cipherSuite: 0x1301, group: 0x001d, signatureScheme: 0x0804, serverName: 'server' });

  // Client Finished.
  const r2 = conn.receive(trace('clientFinishedRecord'));
  assert.equal(r2.alert, undefined);
  assert.equal(r2.handshakeComplete, true);
  assert.equal(r2.records.length, 0);
  assert.equal(conn.state, 'connected');
  const keys = traceGroup('keys');
  assert.equal(hex(secrets.get('c_ap_key')!), hex(keys.c_ap_key!));
  assert.equal(hex(secrets.get('c_ap_iv')!), hex(keys.c_ap_iv!));

  // Client application data (client seq 0).
  const r3 = conn.receive(trace('clientDataRecord'));
  assert.equal(r3.plaintext.length, 1);
  assert.equal(hex(r3.plaintext[0]!), hex(trace('appPayload')));

  // The trace's server sent a NewSessionTicket at seq 0 (we do not issue tickets), so spend seq 0 on
  // a record of the same size, then the echo at seq 1 must equal the trace's record exactly.
  const first = conn.encrypt(23, new Uint8Array(10));
  assert.equal(first.length, 5 + 10 + 1 + 16);
  assert.equal(hex(conn.encrypt(23, trace('appPayload'))), hex(trace('serverDataRecord')));

  // Client close_notify (client seq 1) → our close_notify at server seq 2, byte-equal to the trace.
  const r4 = conn.receive(trace('clientAlertRecord'));
  assert.equal(r4.peerClosed, true);
  assert.equal(r4.alert, undefined);
  assert.equal(hex(r4.records), hex(trace('serverAlertRecord')));
  assert.equal(conn.state, 'closed');
  assert.throws(() => conn.encrypt(23, new Uint8Array(1)), { code: 'ERR_TLS_STATE' });
});

test('RFC 8448 §3: flight fed one byte at a time gives the same bytes', () => {
  const { conn } = traceServer();
  const ch = trace('clientHelloRecord');
  const parts: Uint8Array[] = [];
  for (const b of ch) parts.push(conn.receive(Uint8Array.of(b)).records);
  assert.equal(hex(concat(...parts)), hex(concat(trace('serverHelloRecord'), trace('serverFlightRecord'))));
  const fin = trace('clientFinishedRecord');
  let done = false;
  for (const b of fin) done = conn.receive(Uint8Array.of(b)).handshakeComplete || done;
  assert.equal(done, true);
  assert.equal(conn.state, 'connected');
});

test('RFC 8448 §3: ClientHello split across two handshake records is reassembled', () => {
  const { conn } = traceServer();
  const ch = trace('clientHelloRecord').subarray(5);
  const rec = (b: Uint8Array) => concat(Uint8Array.of(22, 3, 1, b.length >> 8, b.length & 255), b);
  const r = conn.receive(concat(rec(ch.subarray(0, 50)), rec(ch.subarray(50))));
  assert.equal(hex(r.records), hex(concat(trace('serverHelloRecord'), trace('serverFlightRecord'))));
});

test('RFC 8448 §3: the fixture itself is consistent (flight messages, ClientHello length)', () => {
  assert.equal(trace('clientHelloRecord').length, 201);
  assert.deepEqual(flightMessages().map((m) => m[0]), [8, 11, 15, 20]);
});

test('RFC 8448 §3: exporter is available once connected and is deterministic', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  assert.throws(() => conn.exportKeyingMaterial('EXPORTER-test', new Uint8Array(0), 32), { code: 'ERR_TLS_STATE' });
  conn.receive(trace('clientFinishedRecord'));
  const a = conn.exportKeyingMaterial('EXPORTER-test', new Uint8Array(0), 32);
  const b = conn.exportKeyingMaterial('EXPORTER-test', new Uint8Array(0), 32);
  const c = conn.exportKeyingMaterial('EXPORTER-test', Uint8Array.of(1), 32);
  assert.equal(hex(a), hex(b));
  assert.notEqual(hex(a), hex(c));
  conn.dispose();
  assert.equal(conn.state, 'closed');
  assert.throws(() => conn.exportKeyingMaterial('EXPORTER-test', new Uint8Array(0), 32), { code: 'ERR_TLS_STATE' });
});
