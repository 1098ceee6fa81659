/** APDU layer robustness: CLA/INS/P1P2/lengths, chaining, response chaining, fresh copies. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTlvs, findTlv } from '../../src/bytes/index.js';
import { AID, SELECT, USER_PIN, a0, cmd, newCard, send, swOf, verify, xcv, pad, OPERATOR_PIN } from './helpers.js';
import type { EmulatedCard } from '../../src/card/index.js';

function stillWorks(card: EmulatedCard): void {
  const s = send(card, SELECT);
  assert.equal(s.sw, 0x9000);
  assert.deepEqual(parseTlvs(s.data), [{ tag: 1, value: new TextEncoder().encode('setls/1') }]);
  assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
}

test('every response is a fresh array with its own buffer', () => {
  const { card, cleanup } = newCard();
  try {
    for (const apdu of [SELECT, cmd(0xa0, 0xca, 0, 0, new Uint8Array(0), 256), Uint8Array.of(1), cmd(0xa0, 0xff, 0, 0)]) {
      const big = new Uint8Array(apdu.length + 20);
      big.set(apdu, 10);
      const r = card.process(big.subarray(10, 10 + apdu.length));
      assert.equal(r.byteOffset, 0);
      assert.equal(r.buffer.byteLength, r.length);
      assert.ok(r.length >= 2);
    }
  } finally {
    cleanup();
  }
});

test('SELECT: our AID answers the version TLV, other AIDs and other SELECT forms 6A82, before SELECT 6985', () => {
  const { card, cleanup } = newCard();
  try {
    assert.equal(swOf(card, verify(USER_PIN)), 0x6985);
    assert.equal(swOf(card, cmd(0xa0, 0xca, 0, 0, new Uint8Array(0), 256)), 0x6985);
    assert.equal(swOf(card, cmd(0x00, 0xa4, 0x04, 0x00, Uint8Array.of(0xa0, 0, 0, 0, 0x63, 0x50, 0x4b, 0x43, 0x53, 0x2d, 0x31, 0x35), 256)), 0x6a82);
    assert.equal(swOf(card, cmd(0x00, 0xa4, 0x00, 0x0c, Uint8Array.of(0x3f, 0x00))), 0x6a82); // OpenSC: MF by FID
    assert.equal(swOf(card, cmd(0x00, 0xa4, 0x08, 0x0c, Uint8Array.of(0x50, 0x15))), 0x6a82); // by path
    assert.equal(swOf(card, cmd(0x00, 0xa4, 0x04, 0x00, AID.subarray(0, 6), 256)), 0x6a82);
    assert.equal(swOf(card, cmd(0x00, 0xa4, 0x04, 0x05, AID, 256)), 0x6a86);
    assert.equal(swOf(card, verify(USER_PIN)), 0x6985); // still not selected
    const s = send(card, cmd(0x00, 0xa4, 0x04, 0x0c, AID));
    assert.deepEqual([s.sw, s.data.length], [0x9000, 0]);
    stillWorks(card);
    // a failed SELECT keeps the applet selected
    assert.equal(swOf(card, cmd(0x00, 0xa4, 0x04, 0x00, Uint8Array.of(1, 2, 3, 4, 5), 256)), 0x6a82);
    assert.equal(swOf(card, verify('', 0).subarray(0, 4)), 0x9000);
  } finally {
    cleanup();
  }
});

test('wrong CLA 6E00, unknown INS 6D00, bad P1/P2 6A86, and the card keeps working', () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    const cases: [Uint8Array, number][] = [
      [cmd(0x80, 0x20, 0x00, 0x00, pad(USER_PIN)), 0x6e00],
      [cmd(0xa1, 0x20, 0x00, 0x00, pad(USER_PIN)), 0x6881], // A1 = channel 1 (ISO 7816-4 logical channels), not open
      [cmd(0xb0, 0xca, 0x00, 0x00, new Uint8Array(0), 256), 0x6e00],
      [cmd(0xa0, 0x01, 0x00, 0x00), 0x6d00],
      [cmd(0xa0, 0xa4, 0x04, 0x00, AID), 0x6d00],
      [cmd(0x00, 0x20, 0x00, 0x00, pad(USER_PIN)), 0x6d00],
      [cmd(0xa0, 0x20, 0x01, 0x00, pad(USER_PIN)), 0x6a86],
      [cmd(0xa0, 0x20, 0x00, 0x02, pad(USER_PIN)), 0x6a86],
      [cmd(0xa0, 0xca, 0x02, 0x00, new Uint8Array(0), 256), 0x6a86],
      [cmd(0xa0, 0x19, 0x20, 0x00), 0x6a86],
      [cmd(0xa0, 0x46, 0x03, 0x00, Uint8Array.of(0x41)), 0x6a86], // key types: 01 P-256, 02 RSA-2048
      [cmd(0xa0, 0x46, 0x00, 0x00, Uint8Array.of(0x41)), 0x6a86],
      [cmd(0xa0, 0xdc, 0x01, 0x00, Uint8Array.of(0x32, 1, 0)), 0x6a86],
      [cmd(0xa0, 0x80, 0x20, 0x00, Uint8Array.of(2, 0, 0, 6, 13, 0)), 0x6a86], // P1 flags: 01 More, 02 START, 04 INFO, 08 END, 10 FOLD
      [cmd(0xa0, 0x80, 0x10, 0x97, Uint8Array.of(2, 0, 0, 6, 13, 0)), 0x6a86], // FOLD not with ENCRYPT
      [cmd(0xa0, 0x80, 0x08, 0x97, Uint8Array.of(2, 0, 0, 6, 13, 0)), 0x6a86], // END not with ENCRYPT
      [cmd(0xa0, 0x80, 0x02, 0x97, Uint8Array.of(2, 0, 0, 6, 13, 0)), 0x6a86], // START/INFO not with ENCRYPT
      [cmd(0xa0, 0x80, 0x04, 0x97, Uint8Array.of(2, 0, 0, 6, 13, 0)), 0x6a86],
      [cmd(0xa0, 0x80, 0x00, 0x96, Uint8Array.of(2, 0, 0, 6, 13, 0)), 0x6a86],
      [cmd(0xa0, 0xc0, 0x01, 0x00, new Uint8Array(0), 256), 0x6a86],
    ];
    for (const [apdu, sw] of cases) {
      assert.equal(swOf(card, apdu).toString(16), sw.toString(16), `APDU ${Buffer.from(apdu).toString('hex')}`);
      stillWorks(card);
    }
  } finally {
    cleanup();
  }
});

test('malformed APDUs answer 6700: truncated header, Lc mismatch (short and extended)', () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    const bad = [
      Uint8Array.of(),
      Uint8Array.of(0xa0),
      Uint8Array.of(0xa0, 0x20, 0x00),
      Uint8Array.of(0xa0, 0x20, 0x00, 0x00, 0x08, 0x31, 0x32), // Lc 8, 2 bytes
      Uint8Array.of(0xa0, 0x20, 0x00, 0x00, 0x02, 0x31, 0x32, 0x33, 0x34), // Lc 2, 4 bytes
      Uint8Array.of(0xa0, 0x20, 0x00, 0x00, 0x00, 0x00), // truncated extended length
      Uint8Array.of(0xa0, 0x20, 0x00, 0x00, 0x00, 0x00, 0x08, 0x31, 0x32), // extended Lc 8, 2 bytes
      Uint8Array.of(0xa0, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x31), // extended Lc 0
    ];
    for (const apdu of bad) {
      assert.equal(swOf(card, apdu), 0x6700, `APDU ${Buffer.from(apdu).toString('hex')}`);
      stillWorks(card);
    }
    // consistent but wrong sizes for the command
    assert.equal(swOf(card, cmd(0xa0, 0x20, 0x00, 0x00, Uint8Array.of(0x31, 0x32, 0x33, 0x34))), 0x6700);
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x00, 0x00, Uint8Array.of(1), 1)), 0x6700);
    assert.equal(swOf(card, cmd(0xa0, 0x86, 0x00, 0x00, Uint8Array.of(0x10, 0x10), 256)), 0x6700);
    // extended encoding of a valid VERIFY works
    assert.equal(swOf(card, cmd(0xa0, 0x20, 0x00, 0x00, pad(USER_PIN), 0, true)), 0x9000);
    // not a Uint8Array
    assert.equal(swOf(card, 'A0200000' as unknown as Uint8Array), 0x6700);
    stillWorks(card);
  } finally {
    cleanup();
  }
});

test('command chaining: intermediate 9000, broken chain 6883, oversize chain 6700, non-chainable commands', () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    stillWorks(card);
    const seg = (p1: number, data: Uint8Array, ins = 0xda, p2 = 0, cla = 0xa0) => cmd(cla, ins, p1, p2, data, 0, data.length > 255);
    // broken by another INS
    assert.equal(swOf(card, seg(1, new Uint8Array(100))), 0x9000);
    assert.equal(swOf(card, verify(USER_PIN)), 0x6883);
    stillWorks(card);
    // broken by another P2 / another CLA / GET RESPONSE
    for (const breaker of [seg(0, new Uint8Array(10), 0xda, 1), seg(0, new Uint8Array(10), 0xda, 0, 0x00), cmd(0xa0, 0xc0, 0, 0, new Uint8Array(0), 256), SELECT]) {
      assert.equal(swOf(card, seg(1, new Uint8Array(100))), 0x9000);
      assert.equal(swOf(card, breaker), 0x6883);
      stillWorks(card);
    }
    // the chain was discarded: a lone last segment is judged alone
    assert.equal(swOf(card, seg(1, new Uint8Array(100))), 0x9000);
    assert.equal(swOf(card, SELECT), 0x6883);
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    assert.equal(swOf(card, seg(0, Uint8Array.of(3, 0x61, 0x62, 0x63, 0, 0, 1, 0x30))), 0x6a88); // unknown identity "abc"
    // oversize: 70 000 bytes max
    const chunk = new Uint8Array(30_000);
    assert.equal(swOf(card, seg(1, chunk)), 0x9000);
    assert.equal(swOf(card, seg(1, chunk)), 0x9000);
    assert.equal(swOf(card, seg(1, chunk)), 0x6700);
    assert.equal(swOf(card, seg(0, Uint8Array.of(3, 0x61, 0x62, 0x63, 0, 0, 1, 0x30))), 0x6a88); // chain gone
    assert.equal(swOf(card, seg(1, chunk)), 0x9000);
    assert.equal(swOf(card, seg(1, chunk)), 0x9000);
    assert.equal(swOf(card, seg(0, chunk)), 0x6700);
    stillWorks(card);
    // P1 bit 0 is not "More" for GENERATE-KEY (P1 01 = P-256): no chain is opened
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    assert.equal(send(card, cmd(0xa0, 0x46, 0x01, 0x00, new TextEncoder().encode('k'), 256)).sw, 0x9000);
    assert.equal(swOf(card, SELECT), 0x9000);
    // a bad P1/P2 on a segment drops the chain
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    assert.equal(swOf(card, seg(1, new Uint8Array(10))), 0x9000);
    assert.equal(swOf(card, cmd(0xa0, 0xda, 0x03, 0x00, new Uint8Array(10))), 0x6a86);
    assert.equal(swOf(card, seg(0, Uint8Array.of(3, 0x61, 0x62, 0x63, 0, 0, 1, 0x30))), 0x6a88);
    // a chain needs the access right of its command on every segment
    card.reset();
    send(card, SELECT);
    assert.equal(swOf(card, seg(1, new Uint8Array(10))), 0x6982);
    stillWorks(card);
  } finally {
    cleanup();
  }
});

test('response chaining: Ne bytes + 61xx, GET RESPONSE C0 / FETCH 12, 6Cxx without Le, 6985 with nothing pending', async () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, cmd(0xa0, 0xc0, 0, 0, new Uint8Array(0), 256)), 0x6985);
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    const full = await xcv(card, a0(0x46, 0x01, 0x00, new TextEncoder().encode('id1'), 256));
    assert.equal(full.sw, 0x9000);
    const n = full.data.length; // SPKI DER, 91 bytes
    assert.equal(n, 91);
    const info = await xcv(card, a0(0xca, 0x01, 0x00, new TextEncoder().encode('id1')));
    const total = info.data.length;
    assert.deepEqual(findTlv(parseTlvs(info.data), 0x11), full.data);
    // Ne = 10: 10 bytes + 61xx, then GET RESPONSE and FETCH alike
    let r = send(card, cmd(0xa0, 0xca, 0x01, 0x00, new TextEncoder().encode('id1'), 10));
    assert.equal(r.data.length, 10);
    assert.equal(r.sw, 0x6100 | (total - 10));
    const parts = [r.data];
    r = send(card, cmd(0xa0, 0x12, 0, 0, new Uint8Array(0), 20));
    assert.equal(r.sw, 0x6100 | (total - 30));
    parts.push(r.data);
    // no Le: 6Cxx tells the length, the data stays pending
    r = send(card, cmd(0xa0, 0xc0, 0, 0));
    assert.equal(r.sw, 0x6c00 | (total - 30));
    r = send(card, cmd(0x00, 0xc0, 0, 0, new Uint8Array(0), 256));
    assert.equal(r.sw, 0x9000);
    parts.push(r.data);
    assert.deepEqual(Buffer.concat(parts), Buffer.from(info.data));
    assert.equal(swOf(card, cmd(0xa0, 0xc0, 0, 0, new Uint8Array(0), 256)), 0x6985);
    // no Le on a command with response data: 61xx (T=0 style)
    r = send(card, cmd(0xa0, 0xca, 0x00, 0x00));
    assert.equal(r.data.length, 0);
    assert.equal(r.sw >> 8, 0x61);
    // a new command discards unread data
    assert.equal(swOf(card, SELECT), 0x9000);
    assert.equal(swOf(card, cmd(0xa0, 0xc0, 0, 0, new Uint8Array(0), 256)), 0x6985);
    // 256 or more left: 6100; extended Ne returns everything at once
    const bigCmd = cmd(0xa0, 0xca, 0x01, 0x00, new TextEncoder().encode('id1'), 1);
    assert.equal(send(card, bigCmd).sw, 0x6100 | (total - 1 >= 256 ? 0 : total - 1));
    const ext = send(card, cmd(0xa0, 0xca, 0x01, 0x00, new TextEncoder().encode('id1'), 65536, true));
    assert.deepEqual([ext.sw, ext.data.length], [0x9000, total]);
    stillWorks(card);
  } finally {
    cleanup();
  }
});

test('commands needing a PIN answer 6982 before VERIFY; GET-DATA needs none', () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    const label = new TextEncoder().encode('x');
    for (const apdu of [
      cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1),
      cmd(0xa0, 0x19, 0x10, 0x00),
      cmd(0xa0, 0x16, 0x00, 0x80, label),
      cmd(0xa0, 0x80, 0x00, 0x00, Uint8Array.of(2, 0, 0, 6, 13, 0)),
      cmd(0xa0, 0xa6, 0x00, 0x00, new Uint8Array(0), 64),
      cmd(0xa0, 0x86, 0x00, 0x00, Uint8Array.of(0x10), 256),
      cmd(0xa0, 0x46, 0x01, 0x00, label, 256),
      cmd(0xa0, 0x4a, 0x00, 0x00, label, 256),
      cmd(0xa0, 0xda, 0x00, 0x00, label),
    ]) {
      assert.equal(swOf(card, apdu), 0x6982, Buffer.from(apdu).toString('hex'));
    }
    assert.equal(send(card, cmd(0xa0, 0xca, 0x00, 0x00, new Uint8Array(0), 256)).sw, 0x9000);
    // the user PIN does not open operator commands
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(swOf(card, cmd(0xa0, 0x46, 0x01, 0x00, label, 256)), 0x6982);
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)), 0x9000);
    // and the operator PIN does not open user commands
    card.reset();
    send(card, SELECT);
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)), 0x6982);
  } finally {
    cleanup();
  }
});
