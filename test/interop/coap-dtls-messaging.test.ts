/**
 * RFC 7252 messaging units (coap/udp-messaging.ts) without DTLS: piggybacked ACK, CON deduplication
 * (the ACK is re-sent, the handler runs once), NON deduplication, CoAP ping → RST, malformed CON → RST,
 * CON notifications retransmitted and the observation dropped after MAX_RETRANSMIT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoapUdpEndpoint, createCoapServer, decodeUdp, encodeUdp, type CoapMessage } from '../../src/coap/index.js';

const GET = 0x01;
const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

function setup(opts = {}) {
  let calls = 0;
  const server = createCoapServer((req, res) => {
    calls++;
    res.end(`hello ${req.url}`);
  });
  const sent: CoapMessage[] = [];
  const ep = new CoapUdpEndpoint(server, (d) => sent.push(decodeUdp(d)), opts);
  return { server, ep, sent, calls: () => calls };
}

const req = (type: 'CON' | 'NON', mid: number, path = 'a'): Uint8Array =>
  encodeUdp({ type, messageId: mid, code: GET, token: Uint8Array.of(mid & 0xff), options: [{ number: 11, value: new TextEncoder().encode(path) }], payload: new Uint8Array(0) });

test('CON: piggybacked 2.05 in the ACK; a duplicate gets the same ACK and is not processed again', async () => {
  const { ep, sent, calls } = setup();
  ep.receive(req('CON', 0x1234));
  await tick();
  ep.receive(req('CON', 0x1234));
  await tick();
  assert.equal(calls(), 1);
  assert.equal(sent.length, 2);
  for (const m of sent) {
    assert.equal(m.type, 'ACK');
    assert.equal(m.messageId, 0x1234);
    assert.equal(m.code, 0x45);
    assert.equal(new TextDecoder().decode(m.payload), 'hello /a');
  }
  ep.close();
});

test('NON: answered with NON; a duplicate is dropped', async () => {
  const { ep, sent, calls } = setup();
  ep.receive(req('NON', 7));
  ep.receive(req('NON', 7));
  await tick();
  assert.equal(calls(), 1);
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.type, 'NON');
  ep.close();
});

test('CoAP ping (Empty CON) → RST; a malformed CON (TKL 9) → RST; garbage NON dropped', async () => {
  const { ep, sent } = setup();
  ep.receive(encodeUdp({ type: 'CON', messageId: 9, code: 0, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) }));
  ep.receive(Uint8Array.of(0x49, 0x01, 0x00, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8, 9));
  ep.receive(Uint8Array.of(0x59, 0x01, 0x00, 0x0b));
  await tick();
  assert.deepEqual(sent.map((m) => [m.type, m.messageId]), [['RST', 9], ['RST', 10]]);
  ep.close();
});

test('slow handler: empty ACK first, then the response as a CON, retransmitted until ACKed', async () => {
  const server = createCoapServer((_req, res) => {
    setTimeout(() => res.end('late'), 80);
  });
  const sent: CoapMessage[] = [];
  const ep = new CoapUdpEndpoint(server, (d) => sent.push(decodeUdp(d)), { piggybackMs: 20, ackTimeoutMs: 40, random: () => 0 });
  ep.receive(req('CON', 0x42));
  await tick(200);
  assert.equal(sent[0]!.type, 'ACK');
  assert.equal(sent[0]!.code, 0);
  const con = sent.filter((m) => m.type === 'CON');
  assert.ok(con.length >= 2, 'retransmitted');
  assert.ok(con.every((m) => m.messageId === con[0]!.messageId && new TextDecoder().decode(m.payload) === 'late'));
  ep.receive(encodeUdp({ type: 'ACK', messageId: con[0]!.messageId!, code: 0, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) }));
  const n = sent.length;
  await tick(300);
  assert.equal(sent.length, n, 'no retransmission after the ACK');
  assert.equal(ep.outstandingCount, 0);
  ep.close();
});
