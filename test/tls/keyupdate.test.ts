/**
 * KeyUpdate (RFC 8446 §4.6.3, §7.2) both ways. Node 20 exposes no API to make OpenSSL send a KeyUpdate,
 * so client KeyUpdates are built here with the RFC 8448 trace keys and next-generation keys derived
 * independently (helpers/keys.ts); OpenSSL is used for the engine's own KeyUpdates (it follows them
 * transparently, and answers update_requested).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { concat, toHex } from '../../src/bytes/index.js';
import type { TlsServerConnection } from '../../src/tls/api.js';
import { trace, traceGroup, traceServer } from './helpers/rfc8448.js';
import { openRecord, sealRecord, splitRecords } from './helpers/records.js';
import { aes128Keys, nextSecret } from './helpers/keys.js';
import { makePki, type TestPki } from './helpers/pki.js';
import { connectNode, plaintextHandshakeMessages, waitFor } from './helpers/nodeClient.js';

const keys = traceGroup('keys');
const secrets = traceGroup('secrets');
const KU = (v: number) => Uint8Array.of(24, 0, 0, 1, v);

/** Client and server application keys of generation n (0 = from the handshake). */
function gen(side: 'c' | 's', n: number): { key: Uint8Array; iv: Uint8Array } {
  let s = side === 'c' ? secrets.c_ap_traffic! : secrets.s_ap_traffic!;
  for (let i = 0; i < n; i++) s = nextSecret('sha256', s);
  return aes128Keys(s);
}

function connected(extra = {}): TlsServerConnection {
  const { conn } = traceServer(extra);
  conn.receive(trace('clientHelloRecord'));
  assert.equal(conn.receive(trace('clientFinishedRecord')).handshakeComplete, true);
  return conn;
}

test('test helper agrees with the trace: generation 0 keys are the RFC 8448 application keys', () => {
  assert.equal(toHex(gen('c', 0).key), toHex(keys.c_ap_key!));
  assert.equal(toHex(gen('s', 0).iv), toHex(keys.s_ap_iv!));
});

test('client KeyUpdate(update_not_requested): read key ratchets, nothing is sent, old key no longer opens', () => {
  const conn = connected();
  const out = conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 22, KU(0)));
  assert.equal(out.alert, undefined);
  assert.equal(out.records.length, 0);
  const c1 = gen('c', 1);
  const data = conn.receive(sealRecord(c1.key, c1.iv, 0, 23, Uint8Array.of(1, 2, 3)));
  assert.deepEqual(data.plaintext.map((p) => [...p]), [[1, 2, 3]]);
  // our write key did not change
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, conn.encrypt(23, Uint8Array.of(7)))), '0717');
  // a record under the client's old key is now bad_record_mac
  const bad = conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 1, 23, Uint8Array.of(9)));
  assert.equal(bad.alert?.description, 20);
});

test('client KeyUpdate(update_requested): our KeyUpdate(update_not_requested) is in records of that call; then next-generation keys', () => {
  const conn = connected();
  const out = conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 22, KU(1)));
  assert.equal(out.alert, undefined);
  const recs = splitRecords(out.records);
  assert.equal(recs.length, 1);
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, recs[0]!)), '180000010016', 'KeyUpdate(0), type handshake');
  const s1 = gen('s', 1);
  assert.equal(toHex(openRecord(s1.key, s1.iv, 0, conn.encrypt(23, Uint8Array.of(0xab)))), 'ab17', 'data under generation 1');
  const c1 = gen('c', 1);
  assert.deepEqual(conn.receive(sealRecord(c1.key, c1.iv, 0, 23, Uint8Array.of(5))).plaintext.map((p) => [...p]), [[5]]);
  // the exporter is unaffected by KeyUpdate
  assert.equal(conn.exportKeyingMaterial('x', new Uint8Array(0), 8).length, 8);
});

test('two update_requested KeyUpdates in one receive() call are answered with a single KeyUpdate', () => {
  const conn = connected();
  const c1 = gen('c', 1);
  const out = conn.receive(concat(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 22, KU(1)), sealRecord(c1.key, c1.iv, 0, 22, KU(1))));
  assert.equal(out.alert, undefined);
  assert.equal(splitRecords(out.records).length, 1);
  const c2 = gen('c', 2);
  assert.equal(conn.receive(sealRecord(c2.key, c2.iv, 0, 23, Uint8Array.of(1))).plaintext.length, 1);
});

test('KeyUpdate with request_update 2 → illegal_parameter; of length 2 → decode_error (alerts under the server key)', () => {
  const a = connected();
  const out = a.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 22, KU(2)));
  assert.deepEqual(out.alert, { description: 47, sentByUs: true });
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, out.records)), '022f15');
  assert.equal(a.state, 'failed');
  const b = connected();
  const o2 = b.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 22, Uint8Array.of(24, 0, 0, 2, 0, 0)));
  assert.equal(o2.alert?.description, 50);
});

test('KeyUpdate before the handshake ends → unexpected_message', () => {
  const { conn } = traceServer();
  conn.receive(trace('clientHelloRecord'));
  const out = conn.receive(sealRecord(keys.c_hs_key!, keys.c_hs_iv!, 0, 22, KU(0)));
  assert.deepEqual(out.alert, { description: 10, sentByUs: true });
  const fresh = traceServer().conn;
  assert.equal(fresh.receive(Uint8Array.of(22, 3, 1, 0, 5, ...KU(0))).alert?.description, 10);
});

test('KeyUpdate followed by more data in the same record (straddles the key change) → unexpected_message', () => {
  const conn = connected();
  const out = conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 22, concat(KU(0), KU(0))));
  assert.equal(out.alert?.description, 10);
});

test('requestKeyUpdate(): returns the KeyUpdate record and switches the write key; refused before the handshake / after close', () => {
  const { conn: early } = traceServer();
  assert.throws(() => early.requestKeyUpdate!(false), { code: 'ERR_TLS_STATE' });
  const conn = connected();
  const r0 = conn.requestKeyUpdate!(false);
  assert.equal(toHex(openRecord(keys.s_ap_key!, keys.s_ap_iv!, 0, r0)), '180000010016');
  const r1 = conn.requestKeyUpdate!(true);
  const s1 = gen('s', 1);
  assert.equal(toHex(openRecord(s1.key, s1.iv, 0, r1)), '180000010116', 'KeyUpdate(update_requested) under generation 1');
  const s2 = gen('s', 2);
  assert.equal(toHex(openRecord(s2.key, s2.iv, 0, conn.encrypt(23, Uint8Array.of(1)))), '0117');
  // the client still uses its old key until its KeyUpdate arrives; its answer needs no reply from us
  assert.equal(conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 0, 23, Uint8Array.of(2))).plaintext.length, 1);
  const ans = conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 1, 22, KU(0)));
  assert.equal(ans.records.length, 0);
  conn.encrypt(21, Uint8Array.of(1, 0));
  assert.throws(() => conn.requestKeyUpdate!(false), { code: 'ERR_TLS_STATE' });
});

test('keyUpdateAfterRecords: own KeyUpdate after N records written; update_requested after N records read', () => {
  const conn = connected({ keyUpdateAfterRecords: 3 });
  const s0 = gen('s', 0);
  for (let i = 0; i < 3; i++) {
    const r = conn.encrypt(23, Uint8Array.of(i));
    assert.equal(splitRecords(r).length, 1);
    assert.equal(toHex(openRecord(s0.key, s0.iv, i, r)), `0${i}17`);
  }
  const [ku, data] = splitRecords(conn.encrypt(23, Uint8Array.of(3)));
  assert.equal(toHex(openRecord(s0.key, s0.iv, 3, ku!)), '180000010016');
  const s1 = gen('s', 1);
  assert.equal(toHex(openRecord(s1.key, s1.iv, 0, data!)), '0317');

  // read side: the third client record triggers KeyUpdate(update_requested) in that call, once
  for (let i = 0; i < 5; i++) {
    const out = conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, i, 23, Uint8Array.of(i)));
    assert.equal(out.plaintext.length, 1);
    if (i === 2) assert.equal(toHex(openRecord(s1.key, s1.iv, 1, out.records)), '180000010116');
    else assert.equal(out.records.length, 0, `record ${i}`);
  }
  const s2 = gen('s', 2);
  // the client answers with KeyUpdate(update_not_requested): we switch, no reply
  assert.equal(conn.receive(sealRecord(keys.c_ap_key!, keys.c_ap_iv!, 5, 22, KU(0))).records.length, 0);
  const c1 = gen('c', 1);
  assert.equal(conn.receive(sealRecord(c1.key, c1.iv, 0, 23, Uint8Array.of(1))).plaintext.length, 1);
  assert.equal(toHex(openRecord(s2.key, s2.iv, 0, conn.encrypt(23, Uint8Array.of(9)))), '0917');
  assert.throws(() => connected({ keyUpdateAfterRecords: 0 }), { code: 'ERR_TLS_ARGUMENT' });
});

let pki: TestPki;
before(async () => {
  pki = await makePki();
});

for (const ciphers of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
  test(`Node client (${ciphers}), keyUpdateAfterRecords 5: 50 records each way stay intact across many KeyUpdates`, async () => {
    const h = connectNode(pki.identity, pki.caPem, { keyUpdateAfterRecords: 5 }, { ciphers });
    await once(h.client, 'secureConnect');
    await waitFor(() => h.server.state === 'connected');
    const chunks: Buffer[] = [];
    h.client.on('data', (d: Buffer) => chunks.push(d));
    // server → client: 50 records (separate encrypt() calls)
    const down = Array.from({ length: 50 }, (_, i) => randomBytes(100 + i));
    for (const d of down) h.toClient(h.server.encrypt(23, d));
    const all = Buffer.concat(down);
    await waitFor(() => Buffer.concat(chunks).length >= all.length);
    assert.ok(Buffer.concat(chunks).equals(all));
    // client → server: 50 writes; the engine asks OpenSSL to update (update_requested) every 5 records
    const up = Array.from({ length: 50 }, (_, i) => randomBytes(50 + i));
    for (const u of up) {
      h.client.write(u);
      await new Promise((r) => setImmediate(r));
    }
    const upAll = Buffer.concat(up);
    await waitFor(() => h.received().length >= upAll.length);
    assert.ok(h.received().equals(upAll));
    // After the handshake (no echo here), the only records receive() produces are our
    // KeyUpdate(update_requested). We ask again only after OpenSSL's KeyUpdate switched our read key,
    // so several requests prove OpenSSL answered and the engine followed its key changes.
    const done = h.outputs.findIndex((o) => o.handshakeComplete);
    const requests = h.outputs.slice(done + 1).filter((o) => o.records.length > 0);
    for (const r of requests) assert.equal(r.records.length, 5 + 5 + 1 + (ciphers === 'TLS_AES_128_CCM_8_SHA256' ? 8 : 16));
    assert.ok(requests.length >= 8, `engine sent KeyUpdate(update_requested) ${requests.length} times`);
    h.client.end();
    await h.ended;
    assert.equal(h.server.state, 'closed');
  });
}

test('Node client: requestKeyUpdate(true) mid-stream; OpenSSL answers and data keeps flowing', async () => {
  const h = connectNode(pki.identity, pki.caPem, {}, {});
  await once(h.client, 'secureConnect');
  await waitFor(() => h.server.state === 'connected');
  const chunks: Buffer[] = [];
  h.client.on('data', (d: Buffer) => chunks.push(d));
  h.echo = true;
  for (let i = 0; i < 3; i++) {
    h.toClient(h.server.requestKeyUpdate!(true));
    const msg = randomBytes(1000);
    chunks.length = 0;
    h.client.write(msg);
    await waitFor(() => Buffer.concat(chunks).length >= msg.length);
    assert.ok(Buffer.concat(chunks).equals(msg));
  }
  assert.equal(plaintextHandshakeMessages(h.fromClient).filter((m) => m.type === 24).length, 0, 'client KeyUpdates are encrypted');
  h.client.end();
  await h.ended;
});
