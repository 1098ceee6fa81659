/**
 * The agent changes no byte but the channel bits of CLA: the class rule itself (every movable class,
 * channels 1–19, both codings, the SCP03 MAC class unchanged, agreement with the card's and GP's own
 * codings), and end to end through executeScript and a card that records what it received (fast-check
 * over random scripts and channels 1–19).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { channelOfCla, isMovableCla, moveCla } from '../../src/agent/cla.js';
import { executeScript } from '../../src/agent/execute.js';
import { CardClient } from '../../src/host/card-client.js';
import { claFor as gpClaFor, macCla, parseCla } from '../../src/gp/cla.js';
import { encodeCla as hostClaFor } from '../../src/protocol/cla.js';
import { encodeCommand } from '../../src/apdu/index.js';
import { FakeCard, SD_AID } from './fake-card.js';

const MOVABLE = Array.from({ length: 256 }, (_, c) => c).filter(isMovableCla);

test('the movable basic-channel classes are exactly the documented ones', () => {
  assert.deepEqual(
    MOVABLE.map((c) => c.toString(16).padStart(2, '0')),
    ['00', '04', '08', '10', '14', '18', '80', '84', '88', '90', '94', '98', 'a0', 'b0'],
  );
  for (const c of [0x01, 0x03, 0x0c, 0x8c, 0x20, 0x24, 0x40, 0x4f, 0x60, 0xa4, 0xa1, 0xc0, 0xe0, 0xff]) assert.equal(isMovableCla(c), false, c.toString(16));
});

test('moveCla: only the channel indication changes; the card reads the channel; the C-MAC class is unchanged', () => {
  for (const cla of MOVABLE) {
    for (let n = 0; n <= 19; n++) {
      const m = moveCla(cla, n);
      assert.equal(channelOfCla(m), n, `${cla.toString(16)} on ${n}`);
      assert.equal(m & 0x80, cla & 0x80, 'b8 (interindustry/proprietary) kept');
      assert.equal(m & 0x10, cla & 0x10, 'b5 (command chaining) kept');
      assert.equal(macCla(m), macCla(cla), 'the class GP MACs is the same');
      if (n < 4) assert.equal(m ^ cla, n, 'channels 0–3: only b2 b1 differ');
      else {
        assert.equal(m & 0x40, 0x40, 'further interindustry coding');
        assert.equal((m & 0x20) !== 0, (cla & 0x2c) !== 0, 'SM / proprietary indication kept in b6');
      }
    }
  }
});

test("moveCla agrees with the host CardClient (setls A0/00 classes) and with GP SCP03 classes (80/84) on every channel", () => {
  for (let n = 0; n <= 19; n++) {
    assert.equal(moveCla(0x00, n), hostClaFor('iso', n));
    assert.equal(moveCla(0xa0, n), hostClaFor('proprietary', n));
    assert.equal(moveCla(0x80, n), gpClaFor(n, { proprietary: true }));
    assert.equal(moveCla(0x84, n), gpClaFor(n, { proprietary: true, sm: true }));
    const info = parseCla(moveCla(0x84, n));
    assert.deepEqual(info, { channel: n, sm: true, proprietary: true, further: n >= 4 });
  }
});

/** A random well-formed short C-APDU with a movable class; INS avoids SELECT, MANAGE CHANNEL, GET RESPONSE and the fake's special INS. */
const capdu = fc
  .record({
    cla: fc.constantFrom(...MOVABLE),
    ins: fc.integer({ min: 0, max: 255 }).filter((i) => ![0x70, 0xa4, 0xc0, 0xe0, 0xe2, 0xe4].includes(i) && (i & 0xf0) !== 0x60 && (i & 0xf0) !== 0x90),
    p1: fc.integer({ min: 0, max: 255 }),
    p2: fc.integer({ min: 0, max: 255 }),
    data: fc.uint8Array({ maxLength: 200 }),
    ne: fc.integer({ min: 0, max: 256 }),
  })
  .map((c) => encodeCommand({ cla: c.cla, ins: c.ins, p1: c.p1, p2: c.p2, data: c.data, ne: c.ne }));

test('end to end: on channels 1–19, every byte the card receives equals the script byte, except the CLA channel bits', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 19 }), fc.array(capdu, { minLength: 1, maxLength: 8 }), async (n, script) => {
      const card = new FakeCard({ channels: 20 });
      card.forceOpen(n, SD_AID);
      const client = new CardClient(card.transport(), { channel: n });
      const r = await executeScript(client, script);
      assert.equal(r.rapdus.length, script.length, 'the echo applet answers 9000 to everything');
      const got = card.on(n);
      assert.equal(got.length, script.length);
      for (let i = 0; i < script.length; i++) {
        const sent = script[i]!;
        const arrived = got[i]!;
        assert.equal(arrived.length, sent.length);
        assert.equal(arrived[0], moveCla(sent[0]!, n));
        assert.deepEqual(arrived.subarray(1), sent.subarray(1), `APDU ${i}: bytes after CLA unchanged`);
      }
      assert.equal(card.log.length, script.length, 'nothing else was sent (no other channel touched)');
    }),
    { numRuns: 150 },
  );
});
