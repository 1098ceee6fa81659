/** TLS 1.2 negotiation edge cases with synthetic ClientHellos (no supported_versions = a TLS 1.2 client). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createTlsServer } from '../../src/tls/index.js';
import type { TlsServerConfig } from '../../src/tls/api.js';
import { clientHelloRecord, record, type ChOptions } from './helpers/clientHello.js';
import { splitRecords } from './helpers/records.js';

const ECDSA_ID = { certificateChain: [Uint8Array.of(0x30, 0)], signatureSchemes: [0x0403], sign: () => new Uint8Array(70) };

function server(extra: Partial<TlsServerConfig> = {}) {
  return createTlsServer({
    entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0 },
    selectIdentity: () => ECDSA_ID,
    ...extra,
  });
}

const ch12 = (o: ChOptions = {}) => clientHelloRecord({ versions: null, shares: null, suites: [0xc02b], ...o });

function alertFor(o: ChOptions, cfg: Partial<TlsServerConfig> = {}): number | undefined {
  const conn = server(cfg);
  const out = conn.receive(ch12(o));
  if (out.alert) {
    assert.deepEqual([...out.records], [21, 3, 3, 0, 2, 2, out.alert.description]);
    assert.equal(conn.state, 'failed');
  }
  return out.alert?.description;
}

/** ServerHello body and its extensions from a flight. */
function serverHello(records: Uint8Array): { body: Uint8Array; ext: Map<number, Uint8Array> } {
  const r = splitRecords(records)[0]!;
  const body = r.subarray(9, 9 + ((r[6]! << 16) | (r[7]! << 8) | r[8]!));
  let o = 34;
  o += 1 + body[o]! + 3;
  const end = o + 2 + ((body[o]! << 8) | body[o + 1]!);
  const ext = new Map<number, Uint8Array>();
  for (o += 2; o < end; ) {
    const t = (body[o]! << 8) | body[o + 1]!;
    const l = (body[o + 2]! << 8) | body[o + 3]!;
    ext.set(t, body.subarray(o + 4, o + 4 + l));
    o += 4 + l;
  }
  return { body, ext };
}

test('TLS 1.2 baseline: ServerHello, Certificate, ServerKeyExchange, ServerHelloDone in plaintext', () => {
  const conn = server();
  const out = conn.receive(ch12());
  assert.equal(out.alert, undefined);
  const sh = serverHello(out.records);
  assert.deepEqual([...sh.body.subarray(0, 2)], [3, 3]);
  assert.deepEqual([...sh.body.subarray(26, 34)], [0x44, 0x4f, 0x57, 0x4e, 0x47, 0x52, 0x44, 0x01]);
  assert.equal(conn.state, 'handshaking');
  assert.equal(conn.info?.version, 0x0303);
});

test('TLS 1.2 with a 1.2-only supported_versions list and legacy_version 0x0303', () => {
  assert.equal(alertFor({ versions: [0x0303] }), undefined);
  assert.equal(alertFor({ versions: [0x0302] }), 70);
});

test('renegotiation_info: SCSV or empty RI → empty RI echoed; RI with data → handshake_failure', () => {
  const scsv = serverHello(server().receive(ch12({ suites: [0xc02b, 0x00ff] })).records);
  assert.deepEqual([...scsv.ext.get(0xff01)!], [0]);
  const empty = serverHello(server().receive(ch12({ extra: [{ type: 0xff01, data: Uint8Array.of(0) }] })).records);
  assert.deepEqual([...empty.ext.get(0xff01)!], [0]);
  const none = serverHello(server().receive(ch12()).records);
  assert.equal(none.ext.has(0xff01), false);
  assert.equal(alertFor({ extra: [{ type: 0xff01, data: Uint8Array.of(3, 1, 2, 3) }] }), 40);
});

test('compression list without null → illegal_parameter; with null among others → fine', () => {
  assert.equal(alertFor({ compression: [1] }), 47);
  assert.equal(alertFor({ compression: [1, 0] }), undefined);
});

test('CBC-only or TLS 1.3-suite-only client → handshake_failure', () => {
  assert.equal(alertFor({ suites: [0xc013, 0xc014, 0x002f, 0x0035] }), 40);
  assert.equal(alertFor({ suites: [0x1301] }), 40);
});

test('suite selection: server preference, identity key type, PSK only with findPsk, CCM_8 only when listed', () => {
  const pick = (o: ChOptions, cfg: Partial<TlsServerConfig> = {}) => {
    const conn = server(cfg);
    const out = conn.receive(ch12(o));
    return out.alert ? -out.alert.description : conn.info!.cipherSuite;
  };
  assert.equal(pick({ suites: [0xcca9, 0xc02c, 0xc02b] }), 0xc02b);
  assert.equal(pick({ suites: [0xc02f, 0xc030] }), -40, 'RSA suites need an RSA identity');
  assert.equal(pick({ suites: [0xc0ae] }), -40, 'CCM_8 only when listed');
  assert.equal(pick({ suites: [0xc0ae] }, { cipherSuites12: [0xc0ae] }), 0xc0ae);
  assert.equal(pick({ suites: [0x00a8] }, { cipherSuites12: [0x00a8] }), -40, 'PSK needs findPsk');
  assert.equal(pick({ suites: [0x00a8] }, { cipherSuites12: [0x00a8], findPsk: () => undefined }), 0x00a8);
  assert.equal(pick({ sigalgs: [0x0804] }), -40, 'no ECDSA scheme offered');
  assert.equal(pick({ groups: [0x0018] }), -40, 'no common group');
});

test('max_fragment_length: echoed and enforced; illegal value → illegal_parameter; record_size_limit wins', () => {
  const conn = server();
  const out = conn.receive(ch12({ extra: [{ type: 1, data: Uint8Array.of(2) }] }));
  const sh = serverHello(out.records);
  assert.deepEqual([...sh.ext.get(1)!], [2]);
  for (const r of splitRecords(out.records)) assert.ok(r.length - 5 <= 1024, 'records ≤ 2^10');
  assert.equal(alertFor({ extra: [{ type: 1, data: Uint8Array.of(5) }] }), 47);
  assert.equal(alertFor({ extra: [{ type: 1, data: Uint8Array.of(0) }] }), 47);
  const both = serverHello(server().receive(ch12({ recordSizeLimit: 512, extra: [{ type: 1, data: Uint8Array.of(1) }] })).records);
  assert.equal(both.ext.has(1), false);
  assert.deepEqual([...both.ext.get(28)!], [0x40, 0x00]);
  // A plaintext record above the negotiated fragment length is record_overflow.
  const c2 = server();
  c2.receive(ch12({ extra: [{ type: 1, data: Uint8Array.of(1) }] }));
  const big = c2.receive(record(22, new Uint8Array(600), 0x0303));
  assert.equal(big.alert?.description, 22);
});

test('ec_point_formats without uncompressed → illegal_parameter; with it → echoed', () => {
  assert.equal(alertFor({ extra: [{ type: 11, data: Uint8Array.of(1, 1) }] }), 47);
  const sh = serverHello(server().receive(ch12({ extra: [{ type: 11, data: Uint8Array.of(2, 0, 1) }] })).records);
  assert.deepEqual([...sh.ext.get(11)!], [1, 0]);
});

test('out-of-order messages and early CCS / application data → unexpected_message', () => {
  const conn = server();
  conn.receive(ch12());
  assert.equal(conn.receive(record(20, Uint8Array.of(1), 0x0303)).alert?.description, 10);
  const c2 = server();
  c2.receive(ch12());
  assert.equal(c2.receive(record(22, Uint8Array.of(20, 0, 0, 12, ...new Array(12).fill(0)), 0x0303)).alert?.description, 10);
  const c3 = server();
  c3.receive(ch12());
  assert.equal(c3.receive(record(23, new Uint8Array(20), 0x0303)).alert?.description, 10);
  // A bad ECDHE point in ClientKeyExchange → illegal_parameter
  const c4 = server();
  c4.receive(ch12({ groups: [0x0017] }));
  const cke = Uint8Array.of(16, 0, 0, 66, 65, 4, ...new Array(64).fill(1));
  assert.equal(c4.receive(record(22, cke, 0x0303)).alert?.description, 47);
});

test('config: versions without 1.2 or 1.3 is an argument error; requestKeyUpdate is a state error in TLS 1.2', () => {
  assert.throws(() => server({ versions: [0x0302] }), { code: 'ERR_TLS_ARGUMENT' });
  const conn = server();
  conn.receive(ch12());
  assert.throws(() => conn.requestKeyUpdate!(false), { code: 'ERR_TLS_STATE' });
  assert.throws(() => conn.exportSession!(), { code: 'ERR_TLS_STATE' });
  conn.dispose();
  assert.equal(conn.state, 'closed');
});

test('TLS 1.3 max_fragment_length: protected flight records bounded; illegal value → illegal_parameter', () => {
  const out = server().receive(clientHelloRecord({ extra: [{ type: 1, data: Uint8Array.of(1) }] }));
  assert.equal(out.alert, undefined);
  const recs = splitRecords(out.records).filter((r) => r[0] === 23);
  assert.ok(recs.length >= 1);
  for (const r of recs) assert.ok(r.length <= 5 + 512 + 1 + 16, `record of ${r.length} bytes`);
  const bad = server().receive(clientHelloRecord({ extra: [{ type: 1, data: Uint8Array.of(9) }] }));
  assert.equal(bad.alert?.description, 47);
});
