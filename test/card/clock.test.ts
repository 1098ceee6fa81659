/**
 * The card's time floor (src/card/clock.ts): bounded forward jumps per accepted time and per
 * power-on, a year-2100 host time that cannot brick real-time handshakes, and SET-CLOCK (operator PIN).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTlv, parseTlvs, readU32, u32 } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { CardClock } from '../../src/card/clock.js';
import { Limits } from '../../src/card/constants.js';
import { OPERATOR_PIN, SELECT, TestCa, USER_PIN, cmd, eapResponse, newCard, personalise, send, swOf, verify } from './helpers.js';
import { ClientPipe, connectClient, driveHandshake, once } from './tls-host.js';

const YEAR_2100 = 4_102_444_800; // 2100-01-01T00:00:00Z
const now = (): number => Math.floor(Date.now() / 1000);
const floorOf = (c: EmulatedCard): number => readU32(findTlv(parseTlvs(send(c, cmd(0xa0, 0xca, 0, 0, new Uint8Array(0), 256)).data), 0x07)!, 0);
const setClock = (t: number | undefined): Uint8Array => cmd(0xa0, 0xd6, 0x00, 0x00, t === undefined ? new Uint8Array(0) : u32(t));
const resetState = (c: EmulatedCard): void => assert.equal(swOf(c, cmd(0xa0, 0x19, 0x10, 0x00)), 0x9000);

/** The first Response of a session carrying host time `t` only (no handshake): its SW. */
async function sendTime(card: EmulatedCard, ca: TestCa, t: number): Promise<number> {
  resetState(card);
  const pipe = new ClientPipe();
  const client = connectClient(pipe, ca.pem);
  const hello = await pipe.nextRecord();
  client.destroy();
  return send(card, cmd(0xa0, 0x80, 0x00, 0x00, eapResponse(1, hello, { time: t }), 65536, true)).sw;
}

/** A whole TLS 1.3 handshake with a real client (it checks the card's certificate at real time) whose host time is `t`. */
async function handshakeAt(card: EmulatedCard, ca: TestCa, t: number): Promise<'success' | 'failure' | number> {
  resetState(card);
  const pipe = new ClientPipe();
  const client = connectClient(pipe, ca.pem);
  client.on('error', () => undefined);
  const connected = once(client, 'secureConnect');
  connected.catch(() => undefined);
  try {
    const hs = await driveHandshake(card, pipe, { time: t });
    if (hs.outcome === 'success') await connected;
    return hs.outcome;
  } catch (e) {
    const m = /answered ([0-9a-f]{4})/.exec((e as Error).message);
    if (m) return parseInt(m[1]!, 16);
    throw e;
  } finally {
    client.destroy();
  }
}

async function clockCard(ms: () => number) {
  const ca = await TestCa.create();
  const c = newCard({ monotonicMs: ms });
  await personalise(c.card, ca); // leaves the user and operator PINs verified
  return { ...c, ca };
}

test('CardClock: a time moves the floor only when corroborated, by at most +300 s (+ card seconds) per time and +1 h (+ card seconds) per power-on', () => {
  let ms = 0;
  const floor0 = 1_700_000_000;
  // bogus times among real ones: the floor never gets more than 300 s beyond real time
  let clock = new CardClock(floor0, () => ms);
  let f = clock.accept(floor0 + 10, floor0);
  assert.equal(f, floor0, 'the first time of a power-on has nothing to corroborate it');
  f = clock.accept(YEAR_2100, f);
  assert.equal(f, floor0 + 300, 'bounded by the previous time + 300 s and by the floor + 300 s');
  f = clock.accept(floor0 + 20, f); // real time: accepted, leaves the floor
  assert.equal(f, floor0 + 300);
  f = clock.accept(YEAR_2100, f);
  assert.equal(f, floor0 + 320, 'the previous (real) time bounds it');
  assert.throws(() => clock.accept(f - 301, f), { code: 'ERR_CARD_TIME_ROLLBACK' });
  assert.equal(clock.accept(f - 300, f), f, 'within the 300 s tolerance');
  // a run of bogus times in one power-on: never beyond the power-on floor + 1 h
  for (let i = 0; i < 100; i++) f = clock.accept(YEAR_2100, f);
  assert.equal(f, floor0 + Limits.timeAdvancePerPowerOn);
  // 1000 s of the card's own time later: 1000 s more, no more
  ms += 1_000_000;
  for (let i = 0; i < 10; i++) f = clock.accept(YEAR_2100, f);
  assert.equal(f, floor0 + Limits.timeAdvancePerPowerOn + 1000);
  // sessions without time bytes use the latest host time, not the floor
  assert.equal(clock.now(f), YEAR_2100);
  // a new power-on (restart): its first bogus time moves nothing, a run moves at most 1 h
  clock = new CardClock(f, () => ms);
  assert.equal(clock.accept(YEAR_2100, f), f);
  let g = f;
  for (let i = 0; i < 100; i++) g = clock.accept(YEAR_2100, g);
  assert.equal(g, f + Limits.timeAdvancePerPowerOn);
  // SET-CLOCK restarts the bounds from the new floor, which corroborates the next time
  clock.set(floor0);
  assert.equal(clock.accept(YEAR_2100, floor0), floor0 + 300);
  // an unset floor takes the first time as it is
  const fresh = new CardClock(0, () => ms);
  assert.equal(fresh.accept(floor0, 0), floor0);
  assert.equal(fresh.accept(YEAR_2100, floor0), floor0 + 300);
});

test('one year-2100 host time moves the floor by 300 s only: real-time handshakes keep working, also after a restart', async () => {
  const ms = 0;
  const { card, ca, dir, masterKey, cleanup } = await clockCard(() => ms);
  try {
    const t = now();
    assert.equal(swOf(card, setClock(t)), 0x9000);
    assert.equal(floorOf(card), t);
    assert.equal(await sendTime(card, ca, YEAR_2100), 0x9000);
    assert.equal(floorOf(card), t + 300);
    assert.equal(await handshakeAt(card, ca, now()), 'success');
    // the lazily persisted floor is still t: a restart does not make things worse either
    card.close();
    const again = EmulatedCard.open({ dir, masterKey, monotonicMs: () => ms });
    try {
      send(again, SELECT);
      assert.equal(swOf(again, verify(USER_PIN)), 0x9000);
      const persisted = floorOf(again);
      assert.ok(persisted <= t + 300, 'at most 300 s ahead');
      assert.equal(await sendTime(again, ca, YEAR_2100), 0x9000);
      assert.equal(floorOf(again), persisted, 'the first time of a power-on moves nothing');
      assert.equal(await handshakeAt(again, ca, now()), 'success');
    } finally {
      again.close();
    }
  } finally {
    cleanup();
  }
});

test('many year-2100 times in one power-on push the floor at most 1 h ahead: real time is refused at most until it catches up, or until SET-CLOCK', async () => {
  let ms = 0;
  const { card, ca, dir, masterKey, cleanup } = await clockCard(() => ms);
  try {
    const t = now();
    assert.equal(swOf(card, setClock(t)), 0x9000);
    for (let i = 0; i < 40; i++) assert.equal(await sendTime(card, ca, YEAR_2100), 0x9000);
    assert.equal(floorOf(card), t + Limits.timeAdvancePerPowerOn, 'the per-power-on bound');
    assert.equal(await handshakeAt(card, ca, t), 0x6a80, 'real time is now more than 300 s below the floor');
    assert.equal(card.lastError?.code, 'ERR_CARD_TIME_ROLLBACK');
    // an hour of the card's own time later, real time (an hour on) is served again
    ms += 3600_000;
    assert.equal(await handshakeAt(card, ca, t + 3600), 'success');
    // and a restart gives a new power-on bound, from the floor as persisted
    card.close();
    const again = EmulatedCard.open({ dir, masterKey, monotonicMs: () => ms });
    try {
      send(again, SELECT);
      assert.equal(swOf(again, verify(USER_PIN)), 0x9000);
      const base = floorOf(again);
      assert.ok(base <= t + 3600, `persisted floor ${base - t} s ahead of t`);
      for (let i = 0; i < 40; i++) assert.equal(await sendTime(again, ca, YEAR_2100), 0x9000);
      assert.equal(floorOf(again), base + Limits.timeAdvancePerPowerOn, 'a new power-on: again at most 1 h');
    } finally {
      again.close();
    }
  } finally {
    cleanup();
  }
});

test('a card whose unset floor took a year-2100 time refuses real time, across restarts, until the operator-PIN SET-CLOCK; then serves real-time clients', async () => {
  const ms = 0;
  const { card, ca, dir, masterKey, cleanup } = await clockCard(() => ms);
  try {
    assert.equal(floorOf(card), 0);
    assert.equal(await sendTime(card, ca, YEAR_2100), 0x9000);
    assert.equal(floorOf(card), YEAR_2100);
    assert.equal(await handshakeAt(card, ca, now()), 0x6a80);
    card.close();
    const again = EmulatedCard.open({ dir, masterKey, monotonicMs: () => ms });
    try {
      send(again, SELECT);
      assert.equal(swOf(again, verify(USER_PIN)), 0x9000);
      assert.equal(floorOf(again), YEAR_2100, 'the first time was persisted at once');
      assert.equal(await handshakeAt(again, ca, now()), 0x6a80);
      // the user PIN is not enough; the operator PIN resets the clock
      assert.equal(swOf(again, setClock(now())), 0x6982);
      assert.equal(swOf(again, verify(OPERATOR_PIN, 1)), 0x9000);
      const t = now();
      assert.equal(swOf(again, setClock(t)), 0x9000);
      assert.equal(floorOf(again), t);
      assert.equal(await handshakeAt(again, ca, now()), 'success');
    } finally {
      again.close();
    }
    const third = EmulatedCard.open({ dir, masterKey });
    try {
      send(third, SELECT);
      assert.ok(floorOf(third) <= now() && floorOf(third) > 0, 'SET-CLOCK is written at once');
    } finally {
      third.close();
    }
  } finally {
    cleanup();
  }
});

test('SET-CLOCK: operator PIN, 4 bytes or none (unset), P1/P2 00 00; status words', async () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, setClock(1_700_000_000)), 0x6982, 'no PIN verified');
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(swOf(card, setClock(1_700_000_000)), 0x6982, 'the user PIN is not enough');
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    assert.equal(swOf(card, cmd(0xa0, 0xd6, 0x00, 0x00, Uint8Array.of(1, 2, 3))), 0x6700);
    assert.equal(swOf(card, cmd(0xa0, 0xd6, 0x01, 0x00, u32(1))), 0x6a86);
    assert.equal(swOf(card, setClock(1_700_000_000)), 0x9000);
    assert.equal(floorOf(card), 1_700_000_000);
    // backwards is allowed (the operator's word), and "none" unsets the floor
    assert.equal(swOf(card, setClock(1_600_000_000)), 0x9000);
    assert.equal(floorOf(card), 1_600_000_000);
    assert.equal(swOf(card, setClock(undefined)), 0x9000);
    assert.equal(floorOf(card), 0);
  } finally {
    card.close();
    cleanup();
  }
});
