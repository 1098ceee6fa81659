/**
 * The agent rule on one channel (executeScript / checkScript): stop after the first status word other
 * than 9000 / 61xx / 62xx / 63xx and return what ran; 61xx answered with GET RESPONSE on the agent's
 * channel and returned as one R-APDU; what the agent refuses to relay (SELECT, MANAGE CHANNEL,
 * malformed, unmovable class, extended on a short-only transport).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkScript, continuesAfter, executeScript } from '../../src/agent/execute.js';
import { CardClient } from '../../src/host/card-client.js';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { FakeCard, SD_AID } from './fake-card.js';

const h = (s: string): Uint8Array => fromHex(s);
const swOf = (r: Uint8Array): string => toHex(r.subarray(r.length - 2)).toUpperCase();

function onChannel(n: number, opts: { chunk?: number } = {}): { card: FakeCard; client: CardClient } {
  const card = new FakeCard({ channels: 20, ...opts });
  card.forceOpen(n, SD_AID);
  return { card, client: new CardClient(card.transport(), { channel: n }) };
}

test('stops at the first error status word and returns what ran; 62xx/63xx warnings go on', async () => {
  const { card, client } = onChannel(2);
  const script = [
    h('80500000081122334455667788'), // echo → 9000
    h('80E0631000'), // → 6310 (warning: go on)
    h('80E0628300'), // → 6283 (warning: go on)
    h('80E0698200'), // → 6982: stop here
    h('80F2400002 4F00'.replace(' ', '')), // never sent
  ];
  const r = await executeScript(client, script);
  assert.deepEqual(r.rapdus.map(swOf), ['9000', '6310', '6283', '6982']);
  assert.equal(r.stop, 'sw');
  assert.deepEqual(toHex(r.rapdus[0]!).toUpperCase(), '11223344556677889000');
  assert.equal(card.on(2).length, 4, 'the fifth C-APDU never reached the card');
  for (const sw of [0x9000, 0x6200, 0x62ff, 0x6300, 0x63c2]) assert.equal(continuesAfter(sw), true, sw.toString(16));
  for (const sw of [0x6100, 0x6700, 0x6982, 0x6a80, 0x6d00, 0x6e00, 0x6f00, 0x9001, 0x6c10, 0x6400]) assert.equal(continuesAfter(sw), false, sw.toString(16));
});

test('61xx: the agent fetches the rest with GET RESPONSE on its own channel and returns one R-APDU', async () => {
  for (const n of [3, 7]) {
    const { card, client } = onChannel(n, { chunk: 100 });
    const r = await executeScript(client, [h('80E202BC00'), h('80500000020102')]); // 700 bytes, then an echo
    assert.equal(r.rapdus.length, 2);
    const first = r.rapdus[0]!;
    assert.equal(first.length, 702);
    assert.equal(swOf(first), '9000');
    for (let i = 0; i < 700; i++) assert.equal(first[i], i & 0xff);
    const got = card.on(n);
    // the C-APDU, 6 GET RESPONSEs (700 = 7 × 100), the echo
    assert.equal(got.length, 8);
    for (const gr of got.slice(1, 7)) {
      assert.equal(gr[0], n < 4 ? n : 0x40 | (n - 4), 'GET RESPONSE in the interindustry class of the agent channel');
      assert.equal(gr[1], 0xc0);
    }
    assert.equal(r.sws.length, 2);
  }
});

test('an error SW with data: the R-APDU carries the data and the SW, and the script stops', async () => {
  const card = new FakeCard({ channels: 20 });
  card.forceOpen(1, SD_AID);
  let calls = 0;
  card.applets.set(SD_AID, () => {
    calls++;
    return h('0102036F00');
  });
  const client = new CardClient(card.transport(), { channel: 1 });
  const r = await executeScript(client, [h('80CA000000'), h('80CA000000')]);
  assert.deepEqual(r.rapdus.map((x) => toHex(x).toUpperCase()), ['0102036F00']);
  assert.equal(calls, 1);
});

test('checkScript refuses what the agent may not relay', () => {
  const refuse = (hexes: string[], ext = true): string | undefined => checkScript(hexes.map(h), ext);
  assert.equal(refuse(['80CA9F7F00', '84F280000A4F000011223344556677']), undefined);
  assert.match(refuse(['00A4040008A000000151000000'])!, /SELECT/);
  assert.match(refuse(['0070000001'])!, /MANAGE CHANNEL/);
  assert.match(refuse(['00708001'.padEnd(8, '0')])!, /MANAGE CHANNEL/);
  assert.match(refuse(['80CA9F'])!, /inconsistent|lengths/);
  assert.match(refuse(['80CA9F7F05AA'])!, /inconsistent|lengths/);
  assert.match(refuse(['81CA9F7F00'])!, /class 81/);
  assert.match(refuse(['C0CA9F7F00'])!, /class c0/);
  assert.match(refuse(['0CCA9F7F00'])!, /class 0c/);
  assert.match(refuse(['80E2000000000100'], false)!, /extended/);
  assert.equal(refuse(['80E2000000000100'], true), undefined);
  // A proprietary-class A4/70 is not SELECT/MANAGE CHANNEL.
  assert.equal(refuse(['80A4000000', '8070000000']), undefined);
});
