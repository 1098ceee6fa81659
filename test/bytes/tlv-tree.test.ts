/**
 * bytes/tlv-tree: the nested TLV writer and strict reader shared by the card state and the ISD
 * record — round trips of random trees, shortest-form lengths at every boundary, schema checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeTlvTree, parseStrictTlvs, readTlvFields, type TlvNode } from '../../src/bytes/tlv-tree.js';

const fail = (why: string): Error => new Error(`TEST: ${why}`);

const leafArb = fc.record({ tag: fc.integer({ min: 0, max: 0x7f }), parts: fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 3 }) });
const nodeArb: fc.Arbitrary<TlvNode> = fc.letrec<{ node: TlvNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    fc.record({ tag: fc.integer({ min: 0x80, max: 0xff }), children: fc.array(tie('node'), { maxLength: 4 }) }),
  ),
})).node;

/** Reference encoding, built the slow obvious way. */
function reference(n: TlvNode): number[] {
  const value = 'parts' in n ? n.parts.flatMap((p) => [...p]) : n.children.flatMap(reference);
  const L = value.length;
  const len = L < 0x80 ? [L] : L <= 0xff ? [0x81, L] : L <= 0xffff ? [0x82, L >> 8, L & 0xff] : [0x83, L >> 16, (L >> 8) & 0xff, L & 0xff];
  return [n.tag, ...len, ...value];
}

test('encodeTlvTree writes what the reference writes, with the prefix, and parseStrictTlvs reads it back', () => {
  fc.assert(
    fc.property(fc.array(nodeArb, { maxLength: 4 }), (nodes) => {
      const out = encodeTlvTree(nodes, fail, Uint8Array.of(0x04));
      assert.deepEqual([...out], [0x04, ...nodes.flatMap(reference)]);
      const items = parseStrictTlvs(out.subarray(1), 'tree', fail);
      assert.deepEqual(items.map((i) => i.tag), nodes.map((n) => n.tag));
    }),
    { numRuns: 200 },
  );
});

test('lengths at the form boundaries (127/128, 255/256, 65535/65536) round trip; non-minimal forms are refused', () => {
  for (const n of [0, 127, 128, 255, 256, 65535, 65536]) {
    const out = encodeTlvTree([{ tag: 1, parts: [new Uint8Array(n).fill(7)] }], fail);
    const [item] = parseStrictTlvs(out, 'x', fail);
    assert.equal(item!.value.length, n);
  }
  assert.throws(() => parseStrictTlvs(Uint8Array.of(1, 0x81, 0x05, 1, 2, 3, 4, 5), 'x', fail), /TEST: x: tag 01 length 5 is not in its shortest form/);
  assert.throws(() => parseStrictTlvs(Uint8Array.of(1, 0x84, 0, 0, 0, 1, 9), 'x', fail), /unsupported length form/);
  assert.throws(() => parseStrictTlvs(Uint8Array.of(1, 3, 9), 'x', fail), /needs 3 bytes, 1 left/);
  assert.throws(() => parseStrictTlvs(Uint8Array.of(1), 'x', fail), /truncated TLV header/);
  assert.throws(() => encodeTlvTree([{ tag: 1, parts: [new Uint8Array(0x1000000)] }], fail), /TEST: tag 01 value of 16777216 bytes is too long/);
});

test('readTlvFields enforces order, counts and sizes through the caller\'s error', () => {
  const schema = [{ tag: 1, name: 'one', minLen: 1, maxLen: 1 }, { tag: 2, min: 0, max: 2 }];
  const items = (b: number[]) => parseStrictTlvs(Uint8Array.from(b), 'r', fail);
  assert.deepEqual(readTlvFields(items([1, 1, 9, 2, 0, 2, 1, 5]), schema, 'r', fail).get(2)!.length, 2);
  assert.throws(() => readTlvFields(items([2, 0]), schema, 'r', fail), /TEST: r: one \(tag 01\) is missing/);
  assert.throws(() => readTlvFields(items([1, 2, 9, 9]), schema, 'r', fail), /has 2 bytes, not 1/);
  assert.throws(() => readTlvFields(items([1, 1, 9, 2, 0, 2, 0, 2, 0]), schema, 'r', fail), /tag 02 occurs more than 2 times/);
  assert.throws(() => readTlvFields(items([2, 0, 1, 1, 9]), schema, 'r', fail), /one \(tag 01\) is missing/);
  assert.throws(() => readTlvFields(items([1, 1, 9, 3, 0]), schema, 'r', fail), /unknown tag 03 at item 1/);
  assert.throws(() => readTlvFields(items([1, 1, 9, 2, 0, 1, 1, 9]), schema, 'r', fail), /out of order tag 01 at item 2/);
});
