import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter, fromHex, toHex, freshCopy, ctEqual, wipe, encodeTlvs, parseTlvs, findTlv, DecodeError } from '../../src/bytes/index.js';

test('length-prefixed blocks must be consumed exactly', () => {
  const w = new ByteWriter().u8(1).block(2, (b) => b.u16(0xabcd).vec(1, fromHex('0102'))).u24(5);
  const bytes = w.finish();
  assert.equal(toHex(bytes), '01' + '0005' + 'abcd' + '020102' + '000005');
  const r = new ByteReader(bytes);
  assert.equal(r.u8(), 1);
  assert.throws(() => r.block(2, (b) => b.u16()), DecodeError);
  const r2 = new ByteReader(bytes);
  r2.u8();
  assert.deepEqual(
    r2.block(2, (b) => [b.u16(), toHex(b.vec(1))]),
    [0xabcd, '0102'],
  );
  assert.equal(r2.u24(), 5);
  r2.end();
  assert.throws(() => new ByteReader(fromHex('0005aa')).vec(2), /needs 5 more bytes/);
});

test('freshCopy never shares a pooled slab', () => {
  const pooled = Buffer.from('hello world'); // a view on Node's shared 8 KiB pool
  assert.notEqual(pooled.buffer.byteLength, pooled.length);
  const c = freshCopy(pooled);
  assert.equal(c.byteOffset, 0);
  assert.equal(c.buffer.byteLength, c.length);
  pooled[0] = 0;
  assert.equal(c[0], 'h'.charCodeAt(0));
});

test('ctEqual and wipe', () => {
  assert.ok(ctEqual(fromHex('0102'), fromHex('0102')));
  assert.ok(!ctEqual(fromHex('0102'), fromHex('0103')));
  assert.ok(!ctEqual(fromHex('0102'), fromHex('010203')));
  const s = fromHex('ffff');
  wipe(s, undefined);
  assert.equal(toHex(s), '0000');
});

test('TLV round-trips short and long values', () => {
  fc.assert(
    fc.property(fc.array(fc.record({ tag: fc.integer({ min: 0, max: 255 }), value: fc.uint8Array({ maxLength: 700 }) }), { maxLength: 5 }), (items) => {
      const back = parseTlvs(encodeTlvs(items));
      assert.deepEqual(back.map((t) => [t.tag, [...t.value]]), items.map((t) => [t.tag, [...t.value]]));
    }),
  );
  assert.equal(toHex(findTlv(parseTlvs(fromHex('0102aabb 1081 03 010203')), 0x10)!), '010203');
  assert.throws(() => parseTlvs(fromHex('0105aa')), DecodeError);
  assert.throws(() => parseTlvs(fromHex('0183000001')), DecodeError);
});
