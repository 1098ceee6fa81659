/**
 * Wrapped commands and responses between Scp03Host and Scp03Card: property tests of the round
 * trip at every level and logical channel, single-bit tampering, replay/reorder/drop, error status
 * words without R-MAC, logical-channel encodings, extended length, wiping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fromHex, toHex } from '../../src/bytes/index.js';
import {
  claFor,
  encodeCommandApdu,
  parseCommandApdu,
  Scp03Host,
  SecureMessaging,
  type RawCommand,
  type SecurityLevel,
} from '../../src/gp/index.js';
import { openPair, testKeys } from './helpers.js';

const LEVELS = [0x01, 0x03, 0x11, 0x13, 0x33] as const;
const R_MAC_LEVELS = [0x11, 0x13, 0x33] as const;
const hex = (sw: number) => sw.toString(16).padStart(4, '0');

/** A plain command on `channel`: any INS/P1/P2, GP or ISO class, cases 1–4, short or extended. */
function arbCommand(channel: number): fc.Arbitrary<RawCommand> {
  return fc.record({
    proprietary: fc.boolean(),
    ins: fc.integer({ min: 0, max: 255 }),
    p1: fc.integer({ min: 0, max: 255 }),
    p2: fc.integer({ min: 0, max: 255 }),
    data: fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 230, maxLength: 300 }) }),
    ne: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 256 }), fc.integer({ min: 257, max: 65536 })),
    extended: fc.boolean(),
  }).map((r) => ({ cla: claFor(channel, { proprietary: r.proprietary }), ins: r.ins, p1: r.p1, p2: r.p2, data: r.data, ne: r.ne, extended: r.extended }));
}

const arbSw = fc.oneof(
  fc.constant(0x9000),
  fc.integer({ min: 0x6200, max: 0x63ff }),
  fc.constantFrom(0x6a80, 0x6a82, 0x6985, 0x6d00, 0x6f00, 0x9001),
);

test('round trip: host wrap → card unwrap → card wrap response → host unwrap, every level and channel', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...LEVELS),
      fc.integer({ min: 0, max: 19 }),
      fc.constantFrom(16, 24, 32),
      fc.integer({ min: 0, max: 19 }).chain((ch) => fc.array(fc.tuple(arbCommand(ch), fc.uint8Array({ maxLength: 300 }), arbSw), { minLength: 1, maxLength: 4 }).map((cmds) => ({ ch, cmds }))),
      (level, _unused, keyLength, { ch, cmds }) => {
        const { host, card } = openPair({ level, channel: ch, keyLength });
        for (const [plain, respData, sw] of cmds) {
          const wire = host.wrap(encodeCommandApdu(plain));
          const wc = parseCommandApdu(wire)!;
          assert.equal(wc.cla & 0x40 ? 4 + (wc.cla & 0x0f) : wc.cla & 0x03, ch, 'wire keeps the channel');
          const u = card.unwrapCommand(wire);
          assert.ok(u.ok, 'card unwraps');
          assert.equal(u.secured, true);
          assert.equal(u.command.cla, plain.cla);
          assert.deepEqual([u.command.ins, u.command.p1, u.command.p2], [plain.ins, plain.p1, plain.p2]);
          assert.equal(toHex(u.command.data), toHex(plain.data));
          assert.equal(u.command.ne === 0, plain.ne === 0, 'Le present iff it was');
          const resp = card.wrapResponse(respData, sw);
          const r = host.unwrap(resp);
          assert.equal(r.sw, sw);
          const error = !(sw === 0x9000 || sw >> 8 === 0x62 || sw >> 8 === 0x63);
          assert.equal(toHex(r.data), error ? '' : toHex(respData));
          if (error) assert.equal(toHex(resp), hex(sw), 'an error SW goes out bare: no R-MAC, no data');
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('any single-bit flip of a wrapped command is refused and closes the session (6982, then 6985)', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...LEVELS),
      fc.integer({ min: 0, max: 19 }).chain((ch) => fc.tuple(fc.constant(ch), arbCommand(ch))),
      fc.integer({ min: 0, max: 3 }),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      (level, [ch, plain], before, pos, bit) => {
        const { host, card } = openPair({ level, channel: ch });
        for (let n = 0; n < before; n++) {
          assert.ok(card.unwrapCommand(host.wrap(Uint8Array.of(claFor(ch), 0xca, 0x00, 0x66, 0x00))).ok, 'card.unwrapCommand(host.wrap(Uint8Array.of(claFor(ch), 0xca, 0x00, 0x66, 0x00))).ok');
          host.unwrap(card.wrapResponse(fromHex('0102'), 0x9000));
        }
        const wire = host.wrap(encodeCommandApdu(plain));
        const bad = wire.slice();
        bad[pos % bad.length]! ^= 1 << bit;
        const u = card.unwrapCommand(bad);
        assert.equal(u.ok, false, `flip of bit ${bit} at ${pos % bad.length} accepted`);
        assert.equal(hex((u as { sw: number }).sw), '6982');
        assert.equal(card.state, 'aborted');
        const again = card.unwrapCommand(wire);
        assert.equal(again.ok, false);
        assert.equal(hex((again as { sw: number }).sw), '6985', 'a failed session stays failed');
      },
    ),
    { numRuns: 1000 },
  );
});

test('any single-bit flip of an R-MAC protected response (9000/62xx/63xx) is refused off card', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...R_MAC_LEVELS),
      fc.uint8Array({ maxLength: 80 }),
      fc.oneof(fc.constant(0x9000), fc.integer({ min: 0x6200, max: 0x63ff })),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      (level, data, sw, pos, bit) => {
        const { host, card } = openPair({ level });
        assert.ok(card.unwrapCommand(host.wrap(fromHex('80CA006600'))).ok, 'card.unwrapCommand(host.wrap(fromHex("80CA006600"))).ok');
        const resp = card.wrapResponse(data, sw);
        const bad = resp.slice();
        bad[pos % bad.length]! ^= 1 << bit;
        assert.throws(() => host.unwrap(bad), { code: 'ERR_GP_RESPONSE' });
        assert.equal(host.state, 'closed');
      },
    ),
    { numRuns: 1000 },
  );
});

test('commands replayed, reordered, dropped or duplicated are refused from that point on', () => {
  const scenario = (order: number[]) => {
    const { host, card } = openPair({ level: 0x33 });
    const wires = [0, 1, 2].map((n) => host.wrap(fromHex(`80E29${n}0003BF2000`)));
    return order.map((n) => {
      const u = card.unwrapCommand(wires[n]!);
      if (u.ok) card.wrapResponse(new Uint8Array(0), 0x9000);
      return u.ok ? 'ok' : hex(u.sw);
    });
  };
  assert.deepEqual(scenario([0, 1, 2]), ['ok', 'ok', 'ok']);
  assert.deepEqual(scenario([0, 0, 1]), ['ok', '6982', '6985'], 'replay');
  assert.deepEqual(scenario([1, 0, 2]), ['6982', '6985', '6985'], 'reorder');
  assert.deepEqual(scenario([0, 2, 1]), ['ok', '6982', '6985'], 'drop');
});

test('responses swallowed, reordered or duplicated by the relay fail their R-MAC off card', () => {
  const run = (deliver: (r: Uint8Array[]) => Uint8Array[]) => {
    const { host, card } = openPair({ level: 0x11 });
    const responses = [0, 1, 2].map((n) => {
      assert.ok(card.unwrapCommand(host.wrap(fromHex('80CA006600'))).ok, 'card.unwrapCommand(host.wrap(fromHex("80CA006600"))).ok');
      return card.wrapResponse(Uint8Array.of(n), 0x9000);
    });
    const got: string[] = [];
    try {
      for (const r of deliver(responses)) got.push(toHex(host.unwrap(r).data));
    } catch (e) {
      got.push((e as { code: string }).code);
    }
    return got;
  };
  assert.deepEqual(run((r) => r), ['00', '01', '02']);
  assert.deepEqual(run((r) => [r[0]!, r[2]!]), ['00', 'ERR_GP_RESPONSE'], 'swallowed');
  assert.deepEqual(run((r) => [r[1]!, r[0]!]), ['ERR_GP_RESPONSE'], 'reordered');
  assert.deepEqual(run((r) => [r[0]!, r[0]!]), ['00', 'ERR_GP_RESPONSE'], 'duplicated');
});

test('error status words carry no R-MAC and no data; warnings 62xx/63xx do carry an R-MAC', () => {
  const { host, card } = openPair({ level: 0x33 });
  assert.ok(card.unwrapCommand(host.wrap(fromHex('80CA006600'))).ok, 'card.unwrapCommand(host.wrap(fromHex("80CA006600"))).ok');
  assert.equal(toHex(card.wrapResponse(fromHex('deadbeef'), 0x6a88)), '6a88');
  assert.deepEqual(host.unwrap(fromHex('6a88')), { data: new Uint8Array(0), sw: 0x6a88 });

  assert.ok(card.unwrapCommand(host.wrap(fromHex('80F2400002 4F00 00'))).ok, 'card.unwrapCommand(host.wrap(fromHex("80F2400002 4F00 00"))).ok');
  const warn = card.wrapResponse(fromHex('e3 02 4f 00'), 0x6310);
  assert.equal(warn.length, 16 + 8 + 2, 'R-ENC (16) + R-MAC (8) + SW');
  assert.equal(toHex(host.unwrap(warn).data), 'e3024f00');

  // an error SW arriving with data where an R-MAC is expected is refused
  assert.ok(card.unwrapCommand(host.wrap(fromHex('80CA006600'))).ok, 'card.unwrapCommand(host.wrap(fromHex("80CA006600"))).ok');
  card.wrapResponse(new Uint8Array(0), 0x9000);
  assert.throws(() => host.unwrap(fromHex('0102030405060708 6a80')), { code: 'ERR_GP_RESPONSE' });
});

test('C-DECRYPTION: the encryption counter advances on every command, with or without data', () => {
  // Two sessions with identical keys and challenges: the second sends a data-less command first.
  // If the counter did not advance on it, both data commands would be encrypted alike.
  const a = openPair({ level: 0x03, hostChallenge: fromHex('0001020304050607') });
  const b = openPair({ level: 0x03, hostChallenge: fromHex('0001020304050607') });
  const first = a.host.wrap(fromHex('80E2900003BF2000'));
  b.host.wrap(fromHex('80F22002'));
  const second = b.host.wrap(fromHex('80E2900003BF2000'));
  assert.notEqual(toHex(first.subarray(5, 21)), toHex(second.subarray(5, 21)));
  assert.ok(a.card.unwrapCommand(first).ok, 'a.card.unwrapCommand(first).ok');
});

test('the C-MAC ignores the channel bits: the same command on channels 0, 1 and 9 has the same MAC', () => {
  const wires = [0, 1, 9].map((ch) => {
    const { host } = openPair({ level: 0x01, channel: ch, hostChallenge: fromHex('0001020304050607') });
    return host.wrap(Uint8Array.of(claFor(ch), 0xca, 0x00, 0x66, 0x00));
  });
  assert.deepEqual(wires.map((w) => toHex(w.subarray(0, 1))), ['84', '85', 'e5']);
  assert.equal(new Set(wires.map((w) => toHex(w.subarray(1)))).size, 1);
  // ISO class commands get SM too (00 → 04) and keep b8 clear in the MAC
  const { host, card } = openPair({ level: 0x01 });
  const iso = host.wrap(fromHex('00B0000010'));
  assert.equal(toHex(iso.subarray(0, 1)), '04');
  const u = card.unwrapCommand(iso);
  assert.ok(u.ok, 'u.ok');
  // Le travels as 00 (outside the MAC, so the card accepts only 00): the applet sees Ne = 256.
  assert.equal(toHex(u.apdu), '00b0000000');
});

test('a session is bound to its logical channel: the same bytes on another channel are refused', () => {
  const { host, card } = openPair({ level: 0x01, channel: 2 });
  const wire = host.wrap(fromHex('82CA006600'));
  wire[0] = 0x85; // channel 1
  const u = card.unwrapCommand(wire);
  assert.equal(u.ok, false);
  assert.equal((u as { why: string }).why, 'channel');
});

test('commands that cannot be wrapped: chaining, ISO SM, reserved classes, double wrap, malformed', () => {
  const { host } = openPair();
  for (const apdu of ['90CA006600', '88CA006600', 'A0CA006600', '84CA006600', 'FFCA006600', '80CA0066050102']) {
    assert.throws(() => host.wrap(fromHex(apdu)), { code: 'ERR_GP_APDU' }, apdu);
  }
});

test('extended length when the wrapped command outgrows a short APDU, and only if allowed', () => {
  const { host, card } = openPair({ level: 0x33 });
  const fits = encodeCommandApdu({ cla: 0x80, ins: 0xe2, p1: 0x90, p2: 0, data: new Uint8Array(239).fill(7), ne: 256, extended: false });
  const wire = host.wrap(fits);
  assert.equal(wire[4], 240 + 8, '239 bytes pad to 240, plus the MAC: still short');
  assert.ok(card.unwrapCommand(wire).ok, 'card.unwrapCommand(wire).ok');
  host.unwrap(card.wrapResponse(new Uint8Array(0), 0x9000));

  const big = encodeCommandApdu({ cla: 0x80, ins: 0xe2, p1: 0x90, p2: 0, data: new Uint8Array(240).fill(7), ne: 256, extended: false });
  const ext = host.wrap(big);
  assert.equal(toHex(ext.subarray(4, 7)), '000108', 'extended Lc: 256 + 8');
  assert.equal(toHex(ext.subarray(-2)), '0000', 'extended Le');
  const u = card.unwrapCommand(ext);
  assert.ok(u.ok, 'u.ok');
  assert.equal(u.command.data.length, 240);

  const short = openPair({ level: 0x33, allowExtended: false });
  assert.throws(() => short.host.wrap(big), { code: 'ERR_GP_TOO_LONG' });
  // the refused command moved neither the counter nor the chain: the session goes on
  const next = short.card.unwrapCommand(short.host.wrap(fromHex('80E2900003BF2000')));
  assert.ok(next.ok, 'next.ok');
  assert.equal(toHex(next.command.data), 'bf2000');
});

test('the card wraps each response once; a second call throws rather than send data unprotected', () => {
  const { host, card } = openPair();
  assert.ok(card.unwrapCommand(host.wrap(fromHex('80CA006600'))).ok, 'card.unwrapCommand(host.wrap(fromHex("80CA006600"))).ok');
  card.wrapResponse(fromHex('01'), 0x9000);
  assert.throws(() => card.wrapResponse(fromHex('0102'), 0x9000), { code: 'ERR_GP_STATE' });
});

test('outside a session plain commands pass through and SM commands are refused; between IU and EA nothing passes', () => {
  const keys = testKeys();
  const { card } = openPair();
  card.reset();
  const plain = card.unwrapCommand(fromHex('80CA00E000'));
  assert.ok(plain.ok && !plain.secured, 'plain.ok && !plain.secured');
  assert.equal(toHex(card.wrapResponse(fromHex('0102'), 0x9000)), '01029000');
  const sm = card.unwrapCommand(fromHex('84CA00E0080102030405060708'));
  assert.equal(hex((sm as { sw: number }).sw), '6982');
  assert.equal(hex((card.unwrapCommand(fromHex('A0CA00E000')) as { sw: number }).sw), '6e00');
  assert.equal(hex((card.unwrapCommand(fromHex('80CA00E00501')) as { sw: number }).sw), '6700');
  assert.equal(card.state, 'idle');

  const h = new Scp03Host({ keys });
  card.initializeUpdate(h.initializeUpdate(), 1);
  const between = card.unwrapCommand(fromHex('80CA00E000'));
  assert.equal(hex((between as { sw: number }).sw), '6985');
  assert.equal(card.state, 'aborted');
});

test("secrets are zeroed: the host's key copy on close, session keys on SecureMessaging.wipe", () => {
  const keys = testKeys();
  const host = new Scp03Host({ keys });
  const dek = host.dek!;
  assert.notEqual(toHex(dek), '00'.repeat(16));
  host.close();
  assert.equal(toHex(dek), '00'.repeat(16));
  assert.notEqual(toHex(keys.dek), '00'.repeat(16), "the caller's keys are the caller's");
  assert.equal(host.dek, undefined);

  const sk = { sEnc: new Uint8Array(16).fill(1), sMac: new Uint8Array(16).fill(2), sRmac: new Uint8Array(16).fill(3) };
  const sm = new SecureMessaging(sk, 0x33 as SecurityLevel, 8);
  sm.wipe();
  assert.equal(toHex(sk.sEnc) + toHex(sk.sMac) + toHex(sk.sRmac), '00'.repeat(48));
  assert.throws(() => sm.authenticate(new Uint8Array(13)), { code: 'ERR_GP_STATE' });
});
