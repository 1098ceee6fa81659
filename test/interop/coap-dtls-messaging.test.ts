/**
 * RFC 7252 messaging units (coap/udp-messaging.ts) without DTLS: piggybacked ACK, CON deduplication
 * (the ACK is re-sent, the handler runs once), NON deduplication, CoAP ping → RST, malformed CON → RST,
 * CON notifications retransmitted and the observation dropped after MAX_RETRANSMIT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoapUdpEndpoint, createCoapServer, decodeUdp, encodeUdp, type CoapMessage } from '../../src/coap/index.js';

const GET = 0x01;

/** Polls `cond` until it holds (a generous deadline; no fixed sleep decides an outcome). */
async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 5));
  }
}

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
  await until(() => sent.length >= 1);
  ep.receive(req('CON', 0x1234));
  await until(() => sent.length >= 2);
  // a later request: the request layer handles requests in order, so once it is answered a
  // (wrongly) processed duplicate would have been counted
  ep.receive(req('CON', 0x1300, 'marker'));
  await until(() => sent.some((m) => m.messageId === 0x1300));
  assert.equal(calls(), 2, 'the original and the marker, not the duplicate');
  assert.equal(sent.length, 3);
  for (const m of sent.slice(0, 2)) {
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
  ep.receive(req('NON', 8, 'marker'));
  await until(() => sent.some((m) => new TextDecoder().decode(m.payload) === 'hello /marker'));
  assert.equal(calls(), 2, 'the original and the marker, not the duplicate');
  assert.deepEqual(sent.map((m) => [m.type, new TextDecoder().decode(m.payload)]), [['NON', 'hello /a'], ['NON', 'hello /marker']]);
  ep.close();
});

test('CoAP ping (Empty CON) → RST; a malformed CON (TKL 9) → RST; garbage NON dropped', async () => {
  const { ep, sent } = setup();
  ep.receive(encodeUdp({ type: 'CON', messageId: 9, code: 0, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) }));
  ep.receive(Uint8Array.of(0x49, 0x01, 0x00, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8, 9));
  ep.receive(Uint8Array.of(0x59, 0x01, 0x00, 0x0b));
  ep.receive(req('CON', 0x0c, 'marker')); // answered after anything the garbage could have caused
  await until(() => sent.some((m) => m.messageId === 0x0c));
  assert.deepEqual(sent.map((m) => [m.type, m.messageId]), [['RST', 9], ['RST', 10], ['ACK', 0x0c]]);
  ep.close();
});

test('slow handler: empty ACK first, then the response as a CON, retransmitted until ACKed', async () => {
  const server = createCoapServer((req, res) => {
    if (req.pathname === '/late') setTimeout(() => res.end('late'), 80);
    // '/never' is not answered: its empty ACK, then nothing
  });
  const sent: CoapMessage[] = [];
  const ep = new CoapUdpEndpoint(server, (d) => sent.push(decodeUdp(d)), { piggybackMs: 20, ackTimeoutMs: 40, random: () => 0 });
  ep.receive(req('CON', 0x42, 'late'));
  const cons = (): CoapMessage[] => sent.filter((m) => m.type === 'CON');
  await until(() => cons().length >= 2);
  assert.equal(sent[0]!.type, 'ACK');
  assert.equal(sent[0]!.code, 0);
  const con = cons();
  assert.ok(con.every((m) => m.messageId === con[0]!.messageId && new TextDecoder().decode(m.payload) === 'late'));
  ep.receive(encodeUdp({ type: 'ACK', messageId: con[0]!.messageId!, code: 0, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) }));
  assert.equal(ep.outstandingCount, 0, 'the ACK stopped the retransmission timer');
  const n = cons().length;
  // re-check once more than a retransmission period has surely gone by: a second slow exchange
  // started now has been retransmitted by then
  ep.receive(req('CON', 0x43, 'late'));
  await until(() => sent.filter((m) => m.type === 'CON' && m.messageId !== con[0]!.messageId).length >= 2);
  assert.equal(sent.filter((m) => m.messageId === con[0]!.messageId && m.type === 'CON').length, n, 'no retransmission after the ACK');
  ep.close();
});
