// ISO 7816-4 logical channels on the emulated card: MANAGE CHANNEL, CLA coding, per-channel state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeCla } from '../../src/protocol/index.js';
import type { EmulatedCard } from '../../src/card/index.js';
import { AID, TestCa, USER_PIN, cmd, newCard, pad, personalise, send, swOf } from './helpers.js';
import { handshakeWith, sessionInfo } from './tls-host.js';

const open = (ch = 0, p2 = 0): Uint8Array => cmd(encodeCla('iso', ch), 0x70, 0x00, p2, new Uint8Array(0), p2 === 0 ? 1 : 0);
const close = (n: number, ch = 0): Uint8Array => cmd(encodeCla('iso', ch), 0x70, 0x80, n);
const select = (ch: number): Uint8Array => cmd(encodeCla('iso', ch), 0xa4, 0x04, 0x00, AID, 256);
const verify = (ch: number, pin = USER_PIN): Uint8Array => cmd(encodeCla('proprietary', ch), 0x20, 0x00, 0x00, pad(pin));
const getState = (ch: number): Uint8Array => cmd(encodeCla('proprietary', ch), 0x19, 0x00, 0x00, new Uint8Array(0), 1);

/** The card as seen through logical channel `ch`: every APDU's CLA is recoded (00→ iso, A0 → proprietary). */
function onChannel(card: EmulatedCard, ch: number, log?: number[]): EmulatedCard {
  return new Proxy(card, {
    get(target, prop) {
      if (prop === 'process')
        return (apdu: Uint8Array): Uint8Array => {
          const b = apdu.slice();
          b[0] = encodeCla(b[0] === 0x00 ? 'iso' : 'proprietary', ch);
          log?.push(ch);
          return target.process(b);
        };
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

test('CLA coding: 00–03/40–4F and A0–A3/E0–EF carry channels 0–19', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 19].map((c) => encodeCla('proprietary', c)), [0xa0, 0xa1, 0xa2, 0xa3, 0xe0, 0xe1, 0xef]);
  assert.deepEqual([0, 3, 4, 19].map((c) => encodeCla('iso', c)), [0x00, 0x03, 0x40, 0x4f]);
  assert.throws(() => encodeCla('iso', 20), RangeError);
});

test('MANAGE CHANNEL: open returns the lowest free channel, P2 = n opens n, close, limits and 6881', () => {
  const { card, cleanup } = newCard();
  try {
    assert.equal(card.maxChannels, 4);
    // a command on a channel that is not open
    assert.equal(swOf(card, select(1)), 0x6881);
    assert.equal(swOf(card, verify(2)), 0x6881);
    assert.equal(swOf(card, cmd(0xe0, 0x20, 0x00, 0x00, pad(USER_PIN))), 0x6881); // channel 4, beyond the 4 the card keeps
    let r = send(card, open());
    assert.deepEqual([r.sw, [...r.data]], [0x9000, [1]]);
    r = send(card, open());
    assert.deepEqual([r.sw, [...r.data]], [0x9000, [2]]);
    assert.equal(swOf(card, open(0, 3)), 0x9000); // P2 = requested channel, no data
    assert.deepEqual(card.openChannels, [0, 1, 2, 3]);
    assert.equal(swOf(card, open()), 0x6a81); // too many
    assert.equal(swOf(card, open(0, 5)), 0x6a81); // beyond the card's channels
    assert.equal(swOf(card, open(0, 20)), 0x6a86); // beyond what CLA can code
    assert.equal(swOf(card, close(0)), 0x6a86); // the basic channel cannot be closed
    assert.equal(swOf(card, close(2)), 0x9000);
    assert.equal(swOf(card, close(2)), 0x6881); // not open
    assert.equal(swOf(card, select(2)), 0x6881);
    assert.equal(swOf(card, open(0, 1)), 0x6a86); // already open
    assert.equal(swOf(card, cmd(0x01, 0x70, 0x40, 0x00)), 0x6a86); // bad P1
    // open from channel 1; close with P2 00 closes the CLA's channel
    r = send(card, open(1));
    assert.deepEqual([r.sw, [...r.data]], [0x9000, [2]]);
    assert.equal(swOf(card, close(0, 2)), 0x9000);
    assert.deepEqual(card.openChannels, [0, 1, 3]);
    // MANAGE CHANNEL under the proprietary class is not a command of the applet
    assert.equal(swOf(card, cmd(0xa0, 0x70, 0x00, 0x00, new Uint8Array(0), 1)), 0x6d00);
    // reset closes every channel but 0
    card.reset();
    assert.deepEqual(card.openChannels, [0]);
    assert.equal(swOf(card, select(1)), 0x6881);
    assert.equal(swOf(card, select(0)), 0x9000);
  } finally {
    card.close();
    cleanup();
  }
});

test('channels: configurable up to 20 (E0–EF address 4–19); the option is checked', () => {
  const { card, cleanup } = newCard({ channels: 20 });
  try {
    for (let n = 1; n < 20; n++) assert.deepEqual([...send(card, open()).data], [n]);
    assert.equal(swOf(card, open()), 0x6a81);
    assert.equal(swOf(card, select(19)), 0x9000);
    assert.equal(send(card, select(19)).data.length > 0, true);
    assert.equal(swOf(card, cmd(0xef, 0x20, 0x00, 0x00, pad(USER_PIN))), 0x9000); // E F = channel 19
    assert.equal(swOf(card, cmd(0xe0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)), 0x6985); // channel 4: nothing selected
  } finally {
    card.close();
    cleanup();
  }
  assert.throws(() => newCard({ channels: 21 }), RangeError);
  assert.throws(() => newCard({ channels: 0 }), RangeError);
});

test('per channel: selection, PIN verification, chains and pending responses are independent; PIN counters are shared', () => {
  const { card, cleanup } = newCard();
  try {
    assert.equal(swOf(card, open()), 0x9000);
    assert.equal(swOf(card, select(0)), 0x9000);
    assert.equal(swOf(card, verify(0)), 0x9000);
    assert.equal(send(card, getState(0)).sw, 0x9000);
    // channel 1: not selected yet, then selected but the PIN verified on channel 0 does not count
    assert.equal(swOf(card, getState(1)), 0x6985);
    assert.equal(swOf(card, select(1)), 0x9000);
    assert.equal(swOf(card, getState(1)), 0x6982);
    assert.equal(swOf(card, cmd(0xa1, 0x20, 0x00, 0x00)), 0x63c3); // Lc = 0 status on channel 1: not verified
    assert.equal(swOf(card, cmd(0xa0, 0x20, 0x00, 0x00)), 0x9000); // channel 0 still verified
    // a wrong PIN on channel 1 spends a try of the shared counter
    assert.equal(swOf(card, verify(1, '9999')), 0x63c2);
    assert.equal(swOf(card, cmd(0xa0, 0x20, 0x00, 0x00)), 0x9000); // channel 0 keeps its verification
    assert.equal(swOf(card, verify(1)), 0x9000);
    assert.equal(swOf(card, cmd(0xa0, 0x20, 0x00, 0x00)), 0x9000);
    assert.equal(swOf(card, getState(1)), 0x9000);
    // pending response on channel 0 survives a command on channel 1
    const info = send(card, cmd(0xa0, 0xca, 0x00, 0x00, new Uint8Array(0), 0)); // Ne = 0 → 61xx
    assert.equal(info.sw >> 8, 0x61);
    assert.equal(swOf(card, getState(1)), 0x9000);
    const rest = send(card, cmd(0x00, 0xc0, 0x00, 0x00, new Uint8Array(0), 256));
    assert.equal(rest.sw, 0x9000);
    assert.equal(rest.data.length, info.sw & 0xff);
    assert.equal(swOf(card, cmd(0x01, 0xc0, 0x00, 0x00, new Uint8Array(0), 256)), 0x6985); // nothing pending on channel 1
    // closing channel 1 drops its verification: reopened, it starts unselected and unverified
    assert.equal(swOf(card, close(1)), 0x9000);
    assert.equal(swOf(card, open(0, 1)), 0x9000);
    assert.equal(swOf(card, getState(1)), 0x6985);
    assert.equal(swOf(card, select(1)), 0x9000);
    assert.equal(swOf(card, getState(1)), 0x6982);
    // opened from channel 1 (selected there): the new channel has the applet selected, PIN not verified
    const r = send(card, open(1));
    assert.equal(r.sw, 0x9000);
    assert.equal(swOf(card, getState(r.data[0]!)), 0x6982);
  } finally {
    card.close();
    cleanup();
  }
});

test('a command chain on channel 1 is not broken by commands on channel 0', async () => {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  try {
    await personalise(card, ca);
    assert.equal(swOf(card, open()), 0x9000);
    assert.equal(swOf(card, select(1)), 0x9000);
    assert.equal(swOf(card, cmd(0xa1, 0x20, 0x00, 0x01, pad('87654321'))), 0x9000);
    // GET-CSR in two segments on channel 1, a GET-STATE on channel 0 in between
    const { csrRequest } = await import('./helpers.js');
    const req = csrRequest('web', 'localhost', ['localhost']);
    assert.equal(swOf(card, cmd(0xa1, 0x4a, 0x01, 0x00, req.subarray(0, 5))), 0x9000);
    assert.equal(swOf(card, getState(0)), 0x9000);
    const r = send(card, cmd(0xa1, 0x4a, 0x00, 0x00, req.subarray(5), 256, true));
    assert.equal(r.sw, 0x9000);
    assert.equal(r.data[0], 0x30);
    // and a broken chain on channel 1 answers 6883 there only
    assert.equal(swOf(card, cmd(0xa1, 0x4a, 0x01, 0x00, req.subarray(0, 5))), 0x9000);
    assert.equal(swOf(card, getState(1)), 0x6883);
    assert.equal(swOf(card, getState(0)), 0x9000);
  } finally {
    card.close();
    cleanup();
  }
});

test('two TLS handshakes interleaved APDU by APDU on channels 0 and 1 both succeed, with independent sessions', async () => {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  try {
    await personalise(card, ca);
    assert.equal(swOf(card, open()), 0x9000);
    assert.equal(swOf(card, select(1)), 0x9000);
    assert.equal(swOf(card, verify(1)), 0x9000);
    const log: number[] = [];
    const c0 = onChannel(card, 0, log);
    const c1 = onChannel(card, 1, log);
    const [s0, s1] = await Promise.all([
      handshakeWith(c0, ca.pem, { maxVersion: 'TLSv1.3' }, { firstId: 0x10 }),
      handshakeWith(c1, ca.pem, { maxVersion: 'TLSv1.3' }, { firstId: 0x70 }),
    ]);
    assert.equal(s0.hs.outcome, 'success');
    assert.equal(s1.hs.outcome, 'success');
    assert.equal(s0.error, undefined);
    assert.equal(s1.error, undefined);
    // interleaved: the channel changed between consecutive APDUs several times
    let switches = 0;
    for (let i = 1; i < log.length; i++) if (log[i] !== log[i - 1]) switches++;
    assert.ok(switches >= 3, `APDUs interleaved (${switches} channel switches in ${log.length} APDUs)`);
    // each channel has its own authenticated session, with its own keys
    assert.equal(swOf(card, getState(0)), 0x9000);
    assert.deepEqual([...send(card, getState(0)).data], [3]);
    assert.deepEqual([...send(card, getState(1)).data], [3]);
    const i0 = await sessionInfo(c0);
    const i1 = await sessionInfo(c1);
    assert.ok(i0.size > 0 && i1.size > 0);
    const msk0 = send(card, cmd(0xa0, 0xa6, 0x00, 0x00, new Uint8Array(0), 64));
    const msk1 = send(card, cmd(0xa1, 0xa6, 0x00, 0x00, new Uint8Array(0), 64));
    assert.equal(msk0.sw, 0x9000);
    assert.equal(msk1.sw, 0x9000);
    assert.notDeepEqual(msk0.data, msk1.data);
    // resetting channel 1's session leaves channel 0's
    assert.equal(swOf(card, cmd(0xa1, 0x19, 0x10, 0x00)), 0x9000);
    assert.deepEqual([...send(card, getState(1)).data], [2]);
    assert.deepEqual([...send(card, getState(0)).data], [3]);
    // closing channel 1 ends its session; channel 0's goes on
    assert.equal(swOf(card, close(1)), 0x9000);
    assert.deepEqual([...send(card, getState(0)).data], [3]);
    s0.client.destroy();
    s1.client.destroy();
  } finally {
    card.close();
    cleanup();
  }
});
