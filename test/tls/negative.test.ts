/** Malformed, hostile and unsupported input: each ends in the right fatal alert and a failed connection. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { concat, toHex } from '../../src/bytes/index.js';
import { createTlsServer } from '../../src/tls/index.js';
import type { TlsOutput, TlsServerConfig, TlsServerConnection } from '../../src/tls/api.js';
import { clientHelloMessage, clientHelloRecord, record, x25519Public, type ChOptions } from './helpers/clientHello.js';
import { openRecord, sealRecord, splitRecords } from './helpers/records.js';
import { trace, traceGroup, traceServer } from './helpers/rfc8448.js';

const keys = traceGroup('keys');
const PLAIN = (d: number) => [21, 3, 3, 0, 2, 2, d];

function server(extra: Partial<TlsServerConfig> = {}): TlsServerConnection {
  return createTlsServer({
    entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0 },
    selectIdentity: (name) =>
      name === undefined || name === 'example.com'
        ? { certificateChain: [Uint8Array.of(0x30, 0)], signatureSchemes: [0x0403], sign: () => new Uint8Array(70) }
        : undefined,
    ...extra,
  });
}

function assertFailedWith(conn: TlsServerConnection, out: TlsOutput, description: number): void {
  assert.deepEqual(out.alert, { description, sentByUs: true });
  assert.equal(conn.state, 'failed');
  // A failed connection stays failed.
  const again = conn.receive(clientHelloRecord());
  assert.equal(again.records.length, 0);
  assert.equal(again.alert, undefined);
  assert.equal(conn.state, 'failed');
  assert.throws(() => conn.encrypt(23, new Uint8Array(1)), { code: 'ERR_TLS_STATE' });
  assert.throws(() => conn.exportKeyingMaterial('x', new Uint8Array(0), 8), { code: 'ERR_TLS_STATE' });
}

function expectPlainAlert(opts: ChOptions | Uint8Array, description: number, cfg: Partial<TlsServerConfig> = {}): void {
  const conn = server(cfg);
  const out = conn.receive(opts instanceof Uint8Array ? opts : clientHelloRecord(opts));
  assert.deepEqual([...out.records], PLAIN(description));
  assertFailedWith(conn, out, description);
}

test('a well-formed synthetic ClientHello gets a flight (baseline for the negative cases)', () => {
  const conn = server();
  const out = conn.receive(clientHelloRecord({ sni: 'example.com', sessionId: Uint8Array.of(1, 2, 3, 4, 5) }));
  assert.equal(out.alert, undefined);
  const recs = splitRecords(out.records);
  assert.equal(recs[0]![0], 22);
  // ServerHello echoes the 5-byte session id; a CCS follows because it was non-empty.
  assert.deepEqual([...recs[0]!.subarray(5 + 4 + 2 + 32, 5 + 4 + 2 + 32 + 6)], [5, 1, 2, 3, 4, 5]);
  assert.deepEqual([...recs[1]!], [20, 3, 3, 0, 1, 1]);
  assert.equal(recs[2]![0], 23);
  assert.equal(conn.state, 'handshaking');
});

test('empty session id: no CCS', () => {
  const recs = splitRecords(server().receive(clientHelloRecord()).records);
  assert.deepEqual(recs.map((r) => r[0]), [22, 23]);
});

test('truncated ClientHello: partial record waits, inconsistent lengths → decode_error', () => {
  const conn = server();
  const full = clientHelloRecord();
  const out = conn.receive(full.subarray(0, full.length - 7));
  assert.equal(out.records.length, 0);
  assert.equal(conn.state, 'handshaking');
  // A ClientHello whose message length is honest but whose body is cut short inside.
  const msg = clientHelloMessage().slice(0, 60);
  msg[1] = 0;
  msg[2] = 0;
  msg[3] = 56;
  expectPlainAlert(record(22, msg), 50);
});

test('garbage records: unknown content type → unexpected_message; bad version → decode_error', () => {
  expectPlainAlert(Uint8Array.from([0x63, 3, 3, 0, 1, 0]), 10);
  expectPlainAlert(Uint8Array.from([22, 0x99, 3, 0, 1, 0]), 50);
  expectPlainAlert(record(23, new Uint8Array(30)), 10); // protected data before ClientHello
  expectPlainAlert(record(22, new Uint8Array(0)), 10); // empty handshake record
  expectPlainAlert(record(20, Uint8Array.of(1)), 10); // CCS before ClientHello
  expectPlainAlert(record(22, Uint8Array.of(2, 0, 0, 0)), 10); // ServerHello from a client
});

test('TLS 1.2-only ClientHello → protocol_version (server limited to TLS 1.3)', () => {
  expectPlainAlert({ versions: null }, 70, { versions: [0x0304] });
  expectPlainAlert({ versions: [0x0303, 0x0302] }, 70, { versions: [0x0304] });
});

test('compression other than [null] → illegal_parameter', () => {
  expectPlainAlert({ compression: [1, 0] }, 47);
  expectPlainAlert({ compression: [0, 1] }, 47);
});

test('no common group → handshake_failure; bad shares → illegal_parameter; missing key_share → missing_extension', () => {
  // secp384r1 / x448 only: nothing in common with {x25519, secp256r1} → no HelloRetryRequest either.
  expectPlainAlert({ groups: [0x0018], shares: [{ group: 0x0018, key: new Uint8Array(97).fill(4) }] }, 40);
  expectPlainAlert({ groups: [0x001e, 0x0018], shares: [] }, 40);
  expectPlainAlert({ groups: [0x0017], shares: [] }, 40, { groups: [0x001d] }); // server limited to x25519
  // secp256r1 is supported now: a 65-byte share that is not a curve point is illegal_parameter.
  expectPlainAlert({ groups: [0x0017, 0x001d], shares: [{ group: 0x0017, key: new Uint8Array(65).fill(4) }] }, 47);
  expectPlainAlert({ groups: [0x0017], shares: [{ group: 0x0017, key: new Uint8Array(65).fill(4) }] }, 47);
  expectPlainAlert({ shares: null }, 109);
  expectPlainAlert({ sigalgs: null }, 109);
  expectPlainAlert({ shares: [{ group: 0x001d, key: new Uint8Array(31) }] }, 47); // wrong length
  expectPlainAlert({ shares: [{ group: 0x001d, key: new Uint8Array(32) }] }, 47); // low-order point: zero secret
  expectPlainAlert({ groups: [0x0017], shares: [{ group: 0x001d, key: x25519Public() }] }, 47); // share for unoffered group
});

test('no suite / signature scheme in common → handshake_failure', () => {
  expectPlainAlert({ suites: [0x13ff, 0x00ff] }, 40);
  expectPlainAlert({ suites: [0x1305] }, 40); // CCM_8 is implemented but only negotiated when configured
  expectPlainAlert({ suites: [0x1301] }, 40, { cipherSuites: [0x1302, 0x1303] });
  expectPlainAlert({ sigalgs: [0x0401, 0x0201] }, 40);
});

test('unknown SNI with selectIdentity → undefined → unrecognized_name', () => {
  expectPlainAlert({ sni: 'nope.example' }, 112);
});

test('ALPN without overlap → no_application_protocol; with overlap → server preference', () => {
  expectPlainAlert({ alpn: ['h2', 'spdy/3'] }, 120, { alpnProtocols: ['http/1.1'] });
  const conn = server({ alpnProtocols: ['h2', 'http/1.1'] });
  conn.receive(clientHelloRecord({ alpn: ['http/1.1', 'h2'] }));
  assert.equal(conn.info?.alpn, 'h2');
});

test('malformed extensions: duplicate → illegal_parameter, record_size_limit < 64 → illegal_parameter, SNI with a control byte → illegal_parameter, empty SNI list → decode_error', () => {
  expectPlainAlert({ extra: [{ type: 43, data: Uint8Array.of(2, 3, 4) }] }, 47);
  expectPlainAlert({ recordSizeLimit: 63 }, 47);
  expectPlainAlert({ sni: 'bad\u0001name' }, 47);
  expectPlainAlert({ sni: 'bad\u00e9name' }, 47);
  expectPlainAlert({ extra: [{ type: 0, data: Uint8Array.of(0, 0) }] }, 50);
  expectPlainAlert({ extra: [{ type: 41, data: new Uint8Array(4) }, { type: 99, data: new Uint8Array(0) }] }, 47); // psk not last
});

test('record_size_limit from the client is honoured for protected records and echoed as 0x4001', () => {
  const conn = server();
  const out = conn.receive(clientHelloRecord({ recordSizeLimit: 64 }));
  assert.equal(out.alert, undefined);
  const recs = splitRecords(out.records);
  assert.ok(recs.length > 3, 'flight split into several records');
  for (const r of recs.slice(1)) assert.ok(r.length - 5 <= 64 + 16, `protected record of ${r.length - 5} bytes`);
});

test('oversized records → record_overflow', () => {
  // plaintext record longer than 2^14
  expectPlainAlert(record(22, new Uint8Array(16385)), 22);
  // header announcing more than 2^14 + 256
  expectPlainAlert(Uint8Array.from([22, 3, 1, 0x41, 0x01]), 22);
  // protected record whose TLSInnerPlaintext exceeds 2^14 + 1 (after the handshake)
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  conn.receive(trace('clientFinishedRecord'));
  const out = conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 23, new Uint8Array(16385)));
  assert.equal(out.alert?.description, 22);
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, out.records)), '021615');
  assertFailedWith(conn, out, 22);
});

test('bad client Finished → decrypt_error (alert encrypted under the server application key)', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  const bad = concat(Uint8Array.of(20, 0, 0, 32), new Uint8Array(32).fill(0xaa));
  const out = conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 22, bad));
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, out.records)), '023315');
  assertFailedWith(conn, out, 51);
});

test('Finished of the wrong length → decode_error', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  const out = conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 22, Uint8Array.of(20, 0, 0, 1, 0)));
  assertFailedWith(conn, out, 50);
});

test('tampered ciphertext → bad_record_mac', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  const fin = trace('clientFinishedRecord').slice();
  fin[20]! ^= 1;
  const out = conn.receive(fin);
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, out.records)), '021415');
  assertFailedWith(conn, out, 20);
});

test('padded TLSInnerPlaintext is accepted; all-zero inner plaintext → unexpected_message', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  const fin = concat(Uint8Array.of(20, 0, 0, 32), trace('clientVerifyData'));
  const ok = conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 22, fin, 100));
  assert.equal(ok.handshakeComplete, true);
  const out = conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 0, new Uint8Array(0), 10));
  assertFailedWith(conn, out, 10);
});

test('CCS: exactly 01 between ClientHello and Finished is ignored; anything else → unexpected_message', () => {
  const ccs = record(20, Uint8Array.of(1), 0x0303);
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  assert.equal(conn.receive(ccs).records.length, 0);
  const r = conn.receive(concat(ccs, trace('clientFinishedRecord')));
  assert.equal(r.handshakeComplete, true);
  const after = conn.receive(ccs); // after Finished
  assertFailedWith(conn, after, 10);

  const b = traceServer().conn;
  b.receive(trace('clientHelloRecord'));
  assertFailedWith(b, b.receive(record(20, Uint8Array.of(2), 0x0303)), 10);
  const c = traceServer().conn;
  c.receive(trace('clientHelloRecord'));
  assertFailedWith(c, c.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 20, Uint8Array.of(1))), 10); // encrypted CCS
});

test('handshake data must not straddle a key change', () => {
  const { conn } = traceServer();
  const ch = trace('clientHelloRecord').subarray(5);
  const out = conn.receive(record(22, concat(ch, Uint8Array.of(20, 0, 0))));
  assert.equal(out.alert?.description, 10);
  assert.equal(conn.state, 'failed');
});

test('handshake message longer than 64 KiB → decode_error', () => {
  expectPlainAlert(record(22, Uint8Array.of(1, 0x01, 0x00, 0x01, 3, 3)), 50);
});

test('application data before the client Finished → unexpected_message', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  assertFailedWith(conn, conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 23, Uint8Array.of(1))), 10);
});

test('post-handshake messages other than KeyUpdate → unexpected_message', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  conn.receive(trace('clientFinishedRecord'));
  // a NewSessionTicket from the client
  assertFailedWith(conn, conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 22, Uint8Array.of(4, 0, 0, 1, 0))), 10);
});

test('a received fatal alert → failed, reported as not sent by us, nothing sent back', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  const out = conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 21, Uint8Array.of(2, 42)));
  assert.deepEqual(out.alert, { description: 42, sentByUs: false });
  assert.equal(out.records.length, 0);
  assert.equal(conn.state, 'failed');
  // plaintext fatal alert before ClientHello
  const c2 = server();
  const o2 = c2.receive(record(21, Uint8Array.of(2, 40)));
  assert.deepEqual(o2.alert, { description: 40, sentByUs: false });
  assert.equal(c2.state, 'failed');
  // malformed alert → decode_error
  const c3 = server();
  assertFailedWith(c3, c3.receive(record(21, Uint8Array.of(2, 40, 0))), 50);
});

test('encrypt() before the handshake and with a bad content type throws', () => {
  const conn = server();
  assert.throws(() => conn.encrypt(23, new Uint8Array(1)), { code: 'ERR_TLS_STATE' });
  const { conn: c } = traceServer();
  c.receive(trace('clientHelloRecord'));
  c.receive(trace('clientFinishedRecord'));
  assert.throws(() => c.encrypt(22, new Uint8Array(1)), { code: 'ERR_TLS_ARGUMENT' });
  // our own close_notify via encrypt(21): then no more sending, receiving still works
  const cn = c.encrypt(21, Uint8Array.of(1, 0));
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, cn)), '010015');
  assert.throws(() => c.encrypt(23, new Uint8Array(1)), { code: 'ERR_TLS_STATE' });
  const r = c.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 23, Uint8Array.of(9)));
  assert.deepEqual(r.plaintext.map((p) => [...p]), [[9]]);
});

test('dispose() wipes and closes', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  conn.receive(trace('clientFinishedRecord'));
  conn.dispose();
  assert.equal(conn.state, 'closed');
  assert.throws(() => conn.encrypt(23, new Uint8Array(1)), { code: 'ERR_TLS_STATE' });
  assert.equal(conn.receive(trace('clientDataRecord')).plaintext.length, 0);
});

test('record limits: TLSCiphertext of exactly 2^14+256 is not an overflow, +1 is; config.recordSizeLimit is announced and enforced', () => {
  // 2^14 + 256 bytes of garbage after the handshake: framing accepts it, authentication fails.
  const a = traceServer().conn;
  a.receive(trace('clientHelloRecord'));
  a.receive(trace('clientFinishedRecord'));
  const max = 16384 + 256;
  assert.equal(a.receive(concat(Uint8Array.of(23, 3, 3, max >> 8, max & 255), new Uint8Array(max))).alert?.description, 20);
  const b = traceServer().conn;
  b.receive(trace('clientHelloRecord'));
  b.receive(trace('clientFinishedRecord'));
  assert.equal(b.receive(Uint8Array.of(23, 3, 3, (max + 1) >> 8, (max + 1) & 255)).alert?.description, 22);

  // recordSizeLimit 100 (the trace's client sends record_size_limit, so we announce ours).
  const { conn } = traceServer({ recordSizeLimit: 100 });
  const flight = conn.receive(trace('clientHelloRecord')).records;
  const recs = splitRecords(flight);
  const ee = openRecord(keys.s_hs_key!, keys.s_hs_iv!, 0, recs[1]!);
  assert.ok(toHex(ee).includes('001c00020064'), 'EncryptedExtensions carries record_size_limit 100');
  // TLSInnerPlaintext of exactly 100 bytes (a warning user_canceled + type + 97 zeros) is accepted…
  assert.equal(conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 21, Uint8Array.of(1, 90), 97)).alert, undefined);
  // …101 bytes is record_overflow even though most of it is padding.
  const out = conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 1, 21, Uint8Array.of(1, 90), 98));
  assert.equal(out.alert?.description, 22);
  assert.throws(() => server({ recordSizeLimit: 63 }), { code: 'ERR_TLS_ARGUMENT' });
  assert.throws(() => server({ recordSizeLimit: 16386 }), { code: 'ERR_TLS_ARGUMENT' });
});

test('RecordFramer returns records that own their memory, even when fed Node Buffers', async () => {
  const { RecordFramer } = await import('../../src/tls/record/framing.js');
  const input = Buffer.from([0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb]);
  const [rec] = new RecordFramer().push(input);
  assert.ok(rec);
  assert.equal(rec.byteOffset, 0);
  assert.equal(rec.buffer.byteLength, rec.length);
  input[5] = 0;
  assert.equal(rec[5], 0xaa);
});

test('RecordFramer: a header no record may have is handed on alone, then the framing stops (bounded memory)', async () => {
  const { RecordFramer, MAX_FRAMED_FRAGMENT } = await import('../../src/tls/record/framing.js');
  // A whole record, then a header claiming 65 535 bytes: the record, then the lone header.
  const f = new RecordFramer();
  const out = f.push(Uint8Array.of(0x17, 3, 3, 0, 1, 0xaa, 0x17, 3, 3, 0xff, 0xff, 1, 2, 3));
  assert.deepEqual(out.map((r) => [...r]), [[0x17, 3, 3, 0, 1, 0xaa], [0x17, 3, 3, 0xff, 0xff]]);
  assert.equal(f.ended, true);
  assert.equal(f.pending, 0);
  assert.deepEqual(f.push(new Uint8Array(70000)), []);
  assert.equal(f.pending, 0);
  // Unknown content type and bad version: the same.
  assert.deepEqual(new RecordFramer().push(Uint8Array.of(25, 3, 3, 0, 3, 1, 2, 3)).map((r) => [...r]), [[25, 3, 3, 0, 3]]);
  assert.deepEqual(new RecordFramer().push(Uint8Array.of(22, 2, 0, 0, 1, 1)).map((r) => [...r]), [[22, 2, 0, 0, 1]]);
  // 2^14 + 2048 (the TLS 1.2 bound) is still framed whole, in pieces.
  const g = new RecordFramer();
  const big = new Uint8Array(5 + MAX_FRAMED_FRAGMENT);
  big.set([0x17, 3, 3, MAX_FRAMED_FRAGMENT >> 8, MAX_FRAMED_FRAGMENT & 0xff]);
  assert.deepEqual(g.push(big.subarray(0, 1000)), []);
  const [whole] = g.push(big.subarray(1000));
  assert.equal(whole?.length, big.length);
  assert.equal(g.ended, false);
});

test('the engine judges a lone header: length > 2^14 + 256 → record_overflow, unknown type → unexpected_message (under the current keys)', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  conn.receive(trace('clientFinishedRecord'));
  const out = conn.receive(Uint8Array.of(23, 3, 3, 0xff, 0xff));
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, out.records)), '021615');
  assertFailedWith(conn, out, 22);
  const b = traceServer().conn;
  b.receive(trace('clientHelloRecord'));
  b.receive(trace('clientFinishedRecord'));
  assertFailedWith(b, b.receive(Uint8Array.of(25, 3, 3, 0, 3)), 10);
});

test('zero-length alert records → unexpected_message (RFC 8446 §5.4): plaintext, and protected with or without padding', () => {
  expectPlainAlert(record(21, new Uint8Array(0)), 10);
  for (const padding of [0, 7]) {
    const { conn } = traceServer();
    conn.receive(trace('clientHelloRecord'));
    assertFailedWith(conn, conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 21, new Uint8Array(0), padding)), 10);
  }
});

test('an empty application_data record between ClientHello fragments → unexpected_message (RFC 8446 §5.1), not skipped', () => {
  const ch = clientHelloMessage({ sni: 'example.com' });
  const conn = server();
  assert.equal(conn.receive(record(22, ch.subarray(0, 30))).records.length, 0);
  assertFailedWith(conn, conn.receive(record(23, new Uint8Array(0), 0x0303)), 10);
});

test('legacy_version 0x0300 → protocol_version even with TLS 1.3 in supported_versions; TLS_FALLBACK_SCSV below our best → inappropriate_fallback', () => {
  const m = clientHelloMessage({ versions: [0x0304, 0x0303] });
  m[4] = 3;
  m[5] = 0;
  expectPlainAlert(record(22, m), 70);
  expectPlainAlert(record(22, clientHelloMessage({ versions: [0x0303], suites: [0xc02b, 0x5600], shares: null })), 86);
  // GREASE in supported_versions does not count as a higher version.
  expectPlainAlert(record(22, clientHelloMessage({ versions: [0x0a0a, 0x0303], suites: [0xc02b, 0x5600], shares: null })), 86);
  // TLS 1.3 offered: no fallback.
  const ok = server().receive(clientHelloRecord({ suites: [0x1301, 0x5600] }));
  assert.equal(ok.alert, undefined);
});
