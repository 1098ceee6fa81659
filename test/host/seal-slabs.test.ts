// The slab pool of exported sessions (src/host/seal-slabs.ts): a slab given back is handed out again
// (warm memory), never twice at once even when given back twice, a stale reference seals nothing
// more into it, and the pool keeps a bounded number.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { giveSlab, keptSlabs, takeSlab, SLAB_BYTES } from '../../src/host/seal-slabs.js';

test('a slab given back is reused; given back twice it is still handed out once', () => {
  while (keptSlabs() > 0) takeSlab(); // an empty pool whatever ran before
  const a = takeSlab();
  assert.equal(a.used, 0);
  assert.equal(a.buf.length, SLAB_BYTES);
  a.used = 100;
  giveSlab(a);
  assert.equal(a.used, SLAB_BYTES, 'the stale reference has no room left');
  giveSlab(a); // a second report of the same write
  assert.equal(keptSlabs(), 1);
  const b = takeSlab();
  assert.equal(b.buf, a.buf, 'the same memory again');
  assert.equal(b.used, 0);
  const c = takeSlab();
  assert.notEqual(c.buf, b.buf, 'never the same slab to two batches');
  giveSlab(b);
  giveSlab(c);
});

test('the pool keeps at most 64 slabs', () => {
  const many = Array.from({ length: 80 }, () => takeSlab());
  for (const s of many) giveSlab(s);
  assert.equal(keptSlabs(), 64);
});
