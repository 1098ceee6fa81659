/**
 * DTLS 1.2 engine and framing units: the 64-record anti-replay window, handshake fragmentation and
 * reassembly (out of order, duplicates), and the engine's silence on garbage (no alert, no state change).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ReplayWindow, createDtlsServer } from '../../src/tls/dtls/index.js';
import {
  DtlsHandshakeReassembler,
  encodeDtlsHandshake,
  encodeDtlsRecord,
  fragmentDtlsHandshake,
  parseDtlsHandshakeFragments,
  parseDtlsRecords,
  packDatagrams,
} from '../../src/tls/record/dtls-framing.js';

test('replay window: new, duplicate, within 64, too old, far ahead', () => {
  const w = new ReplayWindow();
  assert.ok(w.check(0));
  w.accept(0);
  assert.ok(!w.check(0));
  w.accept(5);
  assert.ok(w.check(3) && w.check(4));
  w.accept(3);
  assert.ok(!w.check(3));
  w.accept(100);
  assert.ok(!w.check(36), '100 - 36 = 64: outside the window');
  assert.ok(w.check(37));
  assert.ok(!w.check(5));
  w.accept(1000);
  assert.ok(!w.check(100) && w.check(999) && !w.check(1000));
});

test('framing: a message fragmented, shuffled and duplicated reassembles once, in order', () => {
  const body = new Uint8Array(randomBytes(3000));
  const msg = encodeDtlsHandshake(11, 2, body.length, 0, body);
  const frags = fragmentDtlsHandshake(msg, 500);
  assert.ok(frags.length >= 7 && frags.every((f) => f.length <= 500));
  const r = new DtlsHandshakeReassembler(2);
  const order = [...frags.keys()].reverse();
  for (const i of [...order, 0, 3]) {
    const [f] = parseDtlsHandshakeFragments(frags[i]!)!;
    assert.equal(r.push(f!), 'ok');
  }
  const m = r.take()!;
  assert.equal(m.messageSeq, 2);
  assert.deepEqual(m.raw, msg);
  assert.equal(r.take(), undefined);
  const [again] = parseDtlsHandshakeFragments(frags[0]!)!;
  assert.equal(r.push(again!), 'duplicate');
});

test('framing: records split from a datagram; garbage after them is ignored; packing respects the MTU', () => {
  const a = encodeDtlsRecord(22, 0, 7, new Uint8Array(100));
  const b = encodeDtlsRecord(23, 1, 2 ** 40 + 3, new Uint8Array(50));
  const rs = parseDtlsRecords(new Uint8Array([...a, ...b, 1, 2, 3]));
  assert.equal(rs.length, 2);
  assert.equal(rs[1]!.epoch, 1);
  assert.equal(rs[1]!.seq, 2 ** 40 + 3);
  assert.deepEqual(packDatagrams([a, b, a], 200).map((d) => d.length), [a.length + b.length, a.length]);
});

test('engine: garbage, unknown epochs and application data before keys are dropped silently', () => {
  const e = createDtlsServer({ entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: Date.now }, selectIdentity: () => undefined });
  const outs = [
    e.receive(new Uint8Array(randomBytes(64))),
    e.receive(encodeDtlsRecord(23, 0, 1, new Uint8Array(20))),
    e.receive(encodeDtlsRecord(22, 3, 1, new Uint8Array(20))),
    e.receive(encodeDtlsRecord(22, 0, 1, Uint8Array.of(1, 0, 0))), // truncated handshake header
    e.receive(encodeDtlsRecord(21, 0, 2, Uint8Array.of(2))),
  ];
  for (const o of outs) {
    assert.equal(o.records.length, 0);
    assert.equal(o.alert, undefined);
  }
  assert.equal(e.state, 'handshaking');
});

test('engine: a ClientHello it cannot serve ends in one fatal alert record (epoch 0)', () => {
  const e = createDtlsServer({ entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: Date.now }, selectIdentity: () => undefined, cipherSuites12: [0xc0ae] });
  const body = new Uint8Array([0xfe, 0xfd, ...randomBytes(32), 0, 0, 0, 2, 0x00, 0x2f, 1, 0]);
  const out = e.receive(encodeDtlsRecord(22, 0, 0, encodeDtlsHandshake(1, 0, body.length, 0, body)));
  assert.equal(out.alert?.sentByUs, true);
  const [r] = parseDtlsRecords(out.records);
  assert.equal(r!.type, 21);
  assert.equal(r!.epoch, 0);
  assert.equal(e.state, 'failed');
});
