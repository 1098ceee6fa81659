/** HelloRetryRequest with a stateless cookie (RFC 8446 §4.1.4, §4.2.2, §4.4.1): Node interop and hostile ClientHello2s. */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes, createECDH } from 'node:crypto';
import { concat, toHex } from '../../src/bytes/index.js';
import { createTlsServer } from '../../src/tls/index.js';
import type { TlsOutput, TlsServerConfig, TlsServerConnection } from '../../src/tls/api.js';
import { clientHelloRecord, record, x25519Public, type ChOptions } from './helpers/clientHello.js';
import { splitRecords } from './helpers/records.js';
import { makePki, type TestPki } from './helpers/pki.js';
import { connectNode, plaintextHandshakeMessages, waitFor } from './helpers/nodeClient.js';

const HRR_RANDOM = 'cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c';
let pki: TestPki;
before(async () => {
  pki = await makePki();
});

function p256Public(): Uint8Array {
  const e = createECDH('prime256v1');
  e.generateKeys();
  return new Uint8Array(e.getPublicKey());
}

function server(extra: Partial<TlsServerConfig> = {}): TlsServerConnection {
  return createTlsServer({
    entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0 },
    selectIdentity: () => ({ certificateChain: [Uint8Array.of(0x30, 0)], signatureSchemes: [0x0403], sign: () => new Uint8Array(70) }),
    ...extra,
  });
}

interface ParsedServerHello {
  random: string;
  sessionId: Uint8Array;
  suite: number;
  extensions: Map<number, Uint8Array>;
}

/** Parses a ServerHello record independently of the engine's codecs. */
function parseServerHelloRecord(rec: Uint8Array): ParsedServerHello {
  assert.equal(rec[0], 22, 'handshake record');
  assert.equal(rec[5], 2, 'ServerHello');
  let o = 5 + 4 + 2;
  const random = toHex(rec.subarray(o, o + 32));
  o += 32;
  const sessionId = rec.slice(o + 1, o + 1 + rec[o]!);
  o += 1 + rec[o]!;
  const suite = (rec[o]! << 8) | rec[o + 1]!;
  o += 3;
  const end = o + 2 + ((rec[o]! << 8) | rec[o + 1]!);
  o += 2;
  const extensions = new Map<number, Uint8Array>();
  while (o < end) {
    const type = (rec[o]! << 8) | rec[o + 1]!;
    const len = (rec[o + 2]! << 8) | rec[o + 3]!;
    extensions.set(type, rec.slice(o + 4, o + 4 + len));
    o += 4 + len;
  }
  return { random, sessionId, suite, extensions };
}

const CH1: ChOptions = { groups: [0x0017, 0x001d], shares: [], suites: [0x1302, 0x1301] };

/** Sends a ClientHello without usable shares; returns the connection, the HRR and its cookie extension body. */
function startRetry(cfg: Partial<TlsServerConfig> = {}, ch1: ChOptions = CH1) {
  const conn = server(cfg);
  const out = conn.receive(clientHelloRecord(ch1));
  assert.equal(out.alert, undefined, JSON.stringify(out.alert));
  const recs = splitRecords(out.records);
  const hrr = parseServerHelloRecord(recs[0]!);
  assert.equal(hrr.random, HRR_RANDOM);
  return { conn, out, recs, hrr, cookieExt: hrr.extensions.get(44)! };
}

function expectAlert(conn: TlsServerConnection, out: TlsOutput, description: number): void {
  assert.deepEqual(out.alert, { description, sentByUs: true });
  assert.deepEqual([...out.records], [21, 3, 3, 0, 2, 2, description], 'plaintext fatal alert');
  assert.equal(conn.state, 'failed');
}

test('HRR: shape (special random, suite, supported_versions, key_share selected_group, cookie), then ClientHello2 completes', () => {
  const { conn, hrr, cookieExt, recs } = startRetry();
  assert.equal(recs.length, 1, 'no CCS: empty session id');
  assert.equal(hrr.suite, 0x1301, 'server preference among the offered suites');
  assert.equal(toHex(hrr.extensions.get(43)!), '0304');
  assert.equal(toHex(hrr.extensions.get(51)!), '001d', 'server-preferred group the client supports');
  assert.ok(cookieExt.length > 2 + 12 + 16 + 32);
  assert.deepEqual([...hrr.extensions.keys()], [43, 51, 44]);
  assert.equal(conn.state, 'handshaking');
  const infoBefore = conn.info;
  assert.equal(infoBefore, undefined, 'no session info before ClientHello2');

  const out = conn.receive(clientHelloRecord({ ...CH1, shares: [{ group: 0x001d, key: x25519Public() }], extra: [{ type: 44, data: cookieExt }] }));
  assert.equal(out.alert, undefined, JSON.stringify(out.alert));
  const sh = parseServerHelloRecord(splitRecords(out.records)[0]!);
  assert.notEqual(sh.random, HRR_RANDOM, 'a real ServerHello now');
  assert.equal(sh.suite, 0x1301);
  assert.equal(conn.info?.group, 0x001d);
});

test('HRR: config.groups order picks the group; secp256r1 retry completes; CCS after the HRR only (session id set)', () => {
  const sid = new Uint8Array(32).fill(9);
  const { conn, hrr, cookieExt, recs } = startRetry({ groups: [0x0017, 0x001d] }, { ...CH1, sessionId: sid });
  assert.equal(toHex(hrr.extensions.get(51)!), '0017');
  assert.deepEqual([...hrr.sessionId], [...sid]);
  assert.deepEqual([...recs[1]!], [20, 3, 3, 0, 1, 1], 'middlebox CCS right after the HRR');
  // A client CCS between the two ClientHellos is dropped.
  const ccs = record(20, Uint8Array.of(1), 0x0303);
  assert.equal(conn.receive(ccs).records.length, 0);
  const out = conn.receive(clientHelloRecord({ ...CH1, sessionId: sid, shares: [{ group: 0x0017, key: p256Public() }], extra: [{ type: 44, data: cookieExt }] }));
  assert.equal(out.alert, undefined, JSON.stringify(out.alert));
  const types = splitRecords(out.records).map((r) => r[0]);
  assert.deepEqual(types.slice(0, 2), [22, 23], 'no second CCS after the ServerHello');
  assert.equal(conn.info?.group, 0x0017);
});

test('HRR: cookie tampering → illegal_parameter; cookie from another engine → illegal_parameter', () => {
  const share = [{ group: 0x001d, key: x25519Public() }];
  for (const i of [2, 5, 20, -1]) {
    const { conn, cookieExt } = startRetry();
    const bad = cookieExt.slice();
    bad[i < 0 ? bad.length + i : i]! ^= 0x40;
    expectAlert(conn, conn.receive(clientHelloRecord({ ...CH1, shares: share, extra: [{ type: 44, data: bad }] })), 47);
  }
  const a = startRetry();
  const b = startRetry();
  expectAlert(b.conn, b.conn.receive(clientHelloRecord({ ...CH1, shares: share, extra: [{ type: 44, data: a.cookieExt }] })), 47);
  // a fixed config.cookieKey makes cookies portable between engines sharing it
  const key = new Uint8Array(32).fill(3);
  const c = startRetry({ cookieKey: key });
  const d = startRetry({ cookieKey: key });
  const ok = d.conn.receive(clientHelloRecord({ ...CH1, shares: share, extra: [{ type: 44, data: c.cookieExt }] }));
  assert.equal(ok.alert, undefined);
});

test('HRR: ClientHello2 without cookie → missing_extension', () => {
  const { conn } = startRetry();
  expectAlert(conn, conn.receive(clientHelloRecord({ ...CH1, shares: [{ group: 0x001d, key: x25519Public() }] })), 109);
});

test('HRR: ClientHello2 with a share for another group, two shares, no share, suite dropped, session id changed, early_data → illegal_parameter', () => {
  const cases: ((cookie: Uint8Array) => ChOptions)[] = [
    (c) => ({ ...CH1, shares: [{ group: 0x0017, key: p256Public() }], extra: [{ type: 44, data: c }] }),
    (c) => ({ ...CH1, shares: [{ group: 0x001d, key: x25519Public() }, { group: 0x0017, key: p256Public() }], extra: [{ type: 44, data: c }] }),
    (c) => ({ ...CH1, shares: [], extra: [{ type: 44, data: c }] }), // no second HRR: illegal_parameter
    (c) => ({ ...CH1, suites: [0x1302], shares: [{ group: 0x001d, key: x25519Public() }], extra: [{ type: 44, data: c }] }),
    (c) => ({ ...CH1, sessionId: Uint8Array.of(1), shares: [{ group: 0x001d, key: x25519Public() }], extra: [{ type: 44, data: c }] }),
    (c) => ({ ...CH1, shares: [{ group: 0x001d, key: x25519Public() }], extra: [{ type: 44, data: c }, { type: 42, data: new Uint8Array(0) }] }),
    (c) => ({ ...CH1, groups: [0x0017], shares: [], extra: [{ type: 44, data: c }] }),
  ];
  for (const [i, mk] of cases.entries()) {
    const { conn, cookieExt } = startRetry();
    const out = conn.receive(clientHelloRecord(mk(cookieExt)));
    assert.deepEqual(out.alert, { description: 47, sentByUs: true }, `case ${i}`);
    assert.equal(conn.state, 'failed');
  }
});

test('HRR: a non-ClientHello after the HRR → unexpected_message; application data → unexpected_message', () => {
  const a = startRetry();
  expectAlert(a.conn, a.conn.receive(record(22, Uint8Array.of(20, 0, 0, 0))), 10);
  const b = startRetry();
  expectAlert(b.conn, b.conn.receive(record(23, new Uint8Array(20))), 10);
});

test('HRR: 0-RTT data after a ClientHello1 offering early_data is skipped up to the budget', () => {
  const { conn, cookieExt } = startRetry({}, { ...CH1, extra: [{ type: 42, data: new Uint8Array(0) }] });
  assert.equal(conn.receive(record(23, new Uint8Array(100), 0x0303)).records.length, 0);
  assert.equal(conn.state, 'handshaking');
  const out = conn.receive(clientHelloRecord({ ...CH1, shares: [{ group: 0x001d, key: x25519Public() }], extra: [{ type: 44, data: cookieExt }] }));
  assert.equal(out.alert, undefined);
});

test('HRR: dispose() wipes the cookie key (a cookie cannot be opened afterwards)', () => {
  const key = new Uint8Array(32).fill(5);
  const { conn } = startRetry({ cookieKey: key });
  conn.dispose();
  assert.deepEqual([...key], new Array(32).fill(5), "the caller's key is copied, never wiped");
  assert.throws(() => server({ cookieKey: new Uint8Array(16) }), { code: 'ERR_TLS_ARGUMENT' });
});

const NODE_HRR = [
  { ecdhCurve: 'X448:P-256', group: 0x0017, ciphers: 'TLS_AES_128_GCM_SHA256' },
  { ecdhCurve: 'X448:X25519', group: 0x001d, ciphers: 'TLS_AES_256_GCM_SHA384' },
  { ecdhCurve: 'X448:P-256', group: 0x0017, ciphers: 'TLS_CHACHA20_POLY1305_SHA256' },
] as const;
for (const c of NODE_HRR) {
  test(`Node client ecdhCurve ${c.ecdhCurve} (${c.ciphers}): x448 share only → HRR → completes on 0x${c.group.toString(16)}`, async () => {
    const h = connectNode(pki.identity, pki.caPem, {}, { ecdhCurve: c.ecdhCurve, ciphers: c.ciphers });
    await once(h.client, 'secureConnect');
    assert.equal(h.client.authorized, true, String(h.client.authorizationError));
    assert.equal(h.client.getCipher().standardName, c.ciphers);
    await waitFor(() => h.server.state === 'connected');
    assert.equal(h.server.info?.group, c.group);

    // Two ClientHellos from the client, two ServerHellos from us: the first is the HRR.
    const chs = plaintextHandshakeMessages(h.fromClient).filter((m) => m.type === 1);
    assert.equal(chs.length, 2, 'ClientHello1 and ClientHello2');
    const shs = plaintextHandshakeMessages(h.toClientLog).filter((m) => m.type === 2);
    assert.equal(shs.length, 2, 'HelloRetryRequest and ServerHello');
    assert.equal(toHex(shs[0]!.body.subarray(2, 34)), HRR_RANDOM);
    assert.notEqual(toHex(shs[1]!.body.subarray(2, 34)), HRR_RANDOM);
    // OpenSSL (middlebox compatibility) sends a CCS before ClientHello2; the engine dropped it.
    assert.ok(h.fromClient.some((b) => b[0] === 20), 'client CCS seen');

    const chunks: Buffer[] = [];
    h.client.on('data', (d: Buffer) => chunks.push(d));
    h.echo = true;
    const up = randomBytes(20_000);
    h.client.write(up);
    await waitFor(() => Buffer.concat(chunks).length >= up.length);
    assert.ok(Buffer.concat(chunks).equals(up));
    h.client.end();
    await h.ended;
  });
}

test('Node client with x448 only → no common group → handshake_failure (no HRR)', async () => {
  const h = connectNode(pki.identity, pki.caPem, {}, { ecdhCurve: 'X448' });
  const [err] = (await once(h.client, 'error')) as [Error & { code?: string }];
  assert.match(String(err.message) + String(err.code), /handshake.failure|HANDSHAKE_FAILURE/i);
  assert.deepEqual(h.outputs.at(-1)!.alert, { description: 40, sentByUs: true });
  assert.equal(concat(...h.toClientLog).length, 7, 'only the alert');
});
