import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { berTagSize, DecodeError, encodeBerTlv, encodeBerTlvs, fromHex, isConstructedTag, parseBerTlvs, toHex } from '../../src/bytes/index.js';

test('BER-TLV: two-byte constructed tags with nested TLVs (a GP STORE DATA function request)', () => {
  const inner = encodeBerTlvs([
    { tag: 0x80, value: fromHex('01') },
    { tag: 0x81, value: fromHex('01') },
  ]);
  const req = encodeBerTlv(0xbf21, inner);
  assert.equal(toHex(req), 'bf2106800101810101');
  const [outer] = parseBerTlvs(req);
  assert.equal(outer!.tag, 0xbf21);
  assert.ok(isConstructedTag(outer!.tag), 'isConstructedTag(outer!.tag)');
  assert.deepEqual(parseBerTlvs(outer!.value).map((t) => [t.tag, toHex(t.value)]), [[0x80, '01'], [0x81, '01']]);
  // pySim's GetEID response: BF3E { 5A <EID 16> }
  const eid = parseBerTlvs(fromHex('bf3e125a1089882119900000000000000000000005'));
  assert.equal(eid[0]!.tag, 0xbf3e);
  assert.equal(toHex(parseBerTlvs(eid[0]!.value)[0]!.value), '89882119900000000000000000000005');
});

test('BER-TLV: lengths 1, 2 and 3 bytes, shortest form only', () => {
  assert.equal(toHex(encodeBerTlv(0x5a, new Uint8Array(0x7f))).slice(0, 4), '5a7f');
  assert.equal(toHex(encodeBerTlv(0x5a, new Uint8Array(0x80))).slice(0, 6), '5a8180');
  assert.equal(toHex(encodeBerTlv(0x5a, new Uint8Array(0x100))).slice(0, 8), '5a820100');
  assert.throws(() => parseBerTlvs(fromHex('5a8105' + '00'.repeat(5))), DecodeError);
  assert.throws(() => parseBerTlvs(fromHex('5a820080' + '00'.repeat(0x80))), DecodeError);
  assert.throws(() => parseBerTlvs(fromHex('5a83000001' + '00')), DecodeError);
  assert.throws(() => encodeBerTlv(0x5a, new Uint8Array(0x10000)), RangeError);
});

test('BER-TLV: tags of 1 to 3 bytes; 4-byte, truncated and invalid tags refused', () => {
  assert.equal(berTagSize(0x4f), 1);
  assert.equal(berTagSize(0x9f70), 2);
  assert.equal(berTagSize(0x9f8101), 3);
  assert.equal(toHex(encodeBerTlv(0x9f8101, fromHex('aa'))), '9f810101aa');
  assert.equal(parseBerTlvs(fromHex('9f810101aa'))[0]!.tag, 0x9f8101);
  for (const bad of [0x1f, 0x9f81, 0x5f1f81, 0x1000000]) assert.throws(() => berTagSize(bad), RangeError, bad.toString(16));
  assert.throws(() => parseBerTlvs(fromHex('9f81818101aa')), /longer than 3 bytes/);
  assert.throws(() => parseBerTlvs(fromHex('9f')), DecodeError);
  assert.throws(() => parseBerTlvs(fromHex('5a')), DecodeError);
  assert.throws(() => parseBerTlvs(fromHex('5a05aabb')), DecodeError);
  assert.throws(() => parseBerTlvs(fromHex('5a00'.repeat(3)), 2), /more than 2 items/);
});

test('BER-TLV: parse(encode(x)) = x for random tags and values', () => {
  const arbTag = fc.oneof(
    fc.integer({ min: 0, max: 0xff }).filter((t) => (t & 0x1f) !== 0x1f),
    fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0x7f })).map(([hi, lo]) => (((hi << 5) | 0x1f) << 8) | lo),
    fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0x80, max: 0xff }), fc.integer({ min: 0, max: 0x7f })).map(([hi, mid, lo]) => (((hi << 5) | 0x1f) << 16) | (mid << 8) | lo),
  );
  fc.assert(
    fc.property(fc.array(fc.record({ tag: arbTag, value: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 5 }), (items) => {
      const back = parseBerTlvs(encodeBerTlvs(items));
      assert.deepEqual(back.map((t) => [t.tag, toHex(t.value)]), items.map((t) => [t.tag, toHex(t.value)]));
    }),
  );
});
