/**
 * The card's DTLS session (docs/apdu-protocol.md §8) at the APDU level: RESET-STATE P2 01 selects
 * DTLS (other P2 → 6A86), one DTLS record per EAP-Response (two → 6A80), bytes that are not a DTLS
 * record are dropped with the empty EAP-Request, ENCRYPT before the handshake → 6985. The full
 * handshakes (every suite, openssl and libcoap, loss) are in test/interop/coap-dtls*.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cmd, eapResponse, newCard, selectAndVerify, send, swOf } from './helpers.js';

const record = (type: number, epoch: number, body: Uint8Array): Uint8Array => {
  const r = new Uint8Array(13 + body.length);
  r.set([type, 0xfe, 0xfd, epoch >> 8, epoch & 0xff, 0, 0, 0, 0, 0, 1, body.length >> 8, body.length & 0xff]);
  r.set(body, 13);
  return r;
};

test('RESET-STATE P2 01 opens a DTLS session; garbage is dropped, two records refused, ENCRYPT refused', () => {
  const { card, cleanup } = newCard();
  try {
    selectAndVerify(card);
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x10, 0x02)), 0x6a86);
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x10, 0x01)), 0x9000);
    // not a DTLS record: the empty EAP-Request (card needs more), session unchanged
    const r1 = send(card, cmd(0xa0, 0x80, 0x00, 0x00, eapResponse(7, Uint8Array.of(1, 2, 3, 4, 5, 6), { time: Math.floor(Date.now() / 1000) }), 256));
    assert.equal(r1.sw, 0x9000);
    assert.deepEqual([...r1.data], [0x01, 8, 0x00, 0x06, 0x0d, 0x00]);
    // two records in one Response: 6A80
    const ccs = record(20, 0, Uint8Array.of(1));
    assert.equal(swOf(card, cmd(0xa0, 0x80, 0x00, 0x00, eapResponse(8, new Uint8Array([...ccs, ...ccs])), 256)), 0x6a80);
    // a lone CCS before any ClientHello: dropped by the engine
    const r2 = send(card, cmd(0xa0, 0x80, 0x00, 0x00, eapResponse(8, ccs), 256));
    assert.equal(r2.sw, 0x9000);
    assert.deepEqual([...r2.data], [0x01, 9, 0x00, 0x06, 0x0d, 0x00]);
    assert.equal(swOf(card, cmd(0xa0, 0x80, 0x00, 0x97, eapResponse(9, Uint8Array.of(0x41)), 256)), 0x6985);
    const st = send(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1));
    assert.deepEqual([...st.data], [0x01]); // still handshaking (01: this bare card has no identity with a chain)
    // back to TLS
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x10, 0x00)), 0x9000);
  } finally {
    card.close();
    cleanup();
  }
});
