import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeCommand, parseCommand, ApduError, SW, transceive, segmentCommand, PendingResponse, encodeResponse, parseResponse, describeSw } from '../../src/apdu/index.js';
import { fromHex, toHex } from '../../src/bytes/index.js';

test('short cases 1-4 encode as ISO 7816-4 says', () => {
  const h = { cla: 0xa0, ins: 0x19, p1: 0x10, p2: 0 };
  assert.equal(toHex(encodeCommand({ ...h, data: new Uint8Array(0), ne: 0 })), 'a0191000');
  assert.equal(toHex(encodeCommand({ ...h, data: new Uint8Array(0), ne: 256 })), 'a019100000');
  assert.equal(toHex(encodeCommand({ ...h, data: fromHex('0102'), ne: 0 })), 'a0191000020102');
  assert.equal(toHex(encodeCommand({ ...h, data: fromHex('0102'), ne: 1 })), 'a019100002010201');
});

test('extended cases encode with a 00 marker and two-byte lengths', () => {
  const h = { cla: 0xa0, ins: 0x80, p1: 0, p2: 0 };
  const data = new Uint8Array(300).fill(7);
  const e = encodeCommand({ ...h, data, ne: 65536 });
  assert.equal(toHex(e.subarray(0, 7)), 'a0800000' + '00012c');
  assert.equal(toHex(e.subarray(e.length - 2)), '0000');
  assert.equal(e.length, 4 + 3 + 300 + 2);
  assert.equal(toHex(encodeCommand({ ...h, data: new Uint8Array(0), ne: 1000, extended: true })), 'a080000000' + '03e8');
});

test('parse(encode(x)) round-trips every valid APDU', () => {
  fc.assert(
    fc.property(
      fc.record({
        cla: fc.integer({ min: 0, max: 255 }),
        ins: fc.integer({ min: 0, max: 255 }),
        p1: fc.integer({ min: 0, max: 255 }),
        p2: fc.integer({ min: 0, max: 255 }),
        data: fc.uint8Array({ maxLength: 600 }),
        ne: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 256 }), fc.integer({ min: 257, max: 65536 })),
        extended: fc.boolean(),
      }),
      (c) => {
        const p = parseCommand(encodeCommand(c));
        assert.equal(p.cla, c.cla);
        assert.equal(p.ins, c.ins);
        assert.deepEqual([...p.data], [...c.data]);
        assert.equal(p.ne, c.ne);
      },
    ),
  );
});

test('malformed APDUs are rejected with 6700, never accepted', () => {
  for (const hex of ['a080', 'a08000', 'a0800000030102', 'a080000002010203ff', 'a08000000001', 'a08000000000', 'a080000000000301']) {
    assert.throws(
      () => parseCommand(fromHex(hex)),
      (e: unknown) => e instanceof ApduError && e.sw === SW.wrongLength && e.code === 'ERR_APDU_LENGTH',
      hex,
    );
  }
});

test('arbitrary bytes either parse consistently or fail with 6700', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      try {
        const c = parseCommand(b);
        assert.ok(c.data.length <= b.length);
      } catch (e) {
        assert.ok(e instanceof ApduError && e.sw === SW.wrongLength);
      }
    }),
  );
});

test('segmentCommand sets P1 More on all segments but the last, Ne only on the last', () => {
  const segs = segmentCommand({ cla: 0xa0, ins: 0x80, p1: 0, p2: 0x97, data: new Uint8Array(600), ne: 256 }, 240);
  assert.deepEqual(segs.map((s) => [s.p1, s.data.length, s.ne, s.p2]), [
    [1, 240, 0, 0x97],
    [1, 240, 0, 0x97],
    [0, 120, 256, 0x97],
  ]);
});

test('transceive follows 6Cxx, 61xx and 9Fxx (GET RESPONSE and FETCH) and segments commands', async () => {
  const body = new Uint8Array(700).map((_, i) => i & 0xff);
  const seen: string[] = [];
  let pending: PendingResponse | undefined;
  let useFetch = false;
  const card = async (apdu: Uint8Array): Promise<Uint8Array> => {
    const c = parseCommand(apdu);
    seen.push(toHex(apdu.subarray(0, 4)));
    if (c.ins === 0x80) {
      if (c.p1 & 1) return encodeResponse(new Uint8Array(0), SW.ok);
      if (c.ne !== 256) return encodeResponse(new Uint8Array(0), SW.wrongLe | 0x00);
      pending = new PendingResponse(body);
      const r = pending.take(c.ne);
      return encodeResponse(r.data, useFetch ? SW.moreDataEap | (r.sw & 0xff) : r.sw);
    }
    if (c.ins === 0xc0 || c.ins === 0x12) {
      const r = pending!.take(c.ne);
      return encodeResponse(r.data, useFetch && r.sw !== SW.ok ? SW.moreDataEap | (r.sw & 0xff) : r.sw);
    }
    return encodeResponse(new Uint8Array(0), SW.insNotSupported);
  };
  const cmd = { cla: 0xa0, ins: 0x80, p1: 0, p2: 0, data: new Uint8Array(300), ne: 256 };
  const r = await transceive(card, cmd);
  assert.equal(r.sw, SW.ok);
  assert.deepEqual(r.data, body);
  assert.deepEqual(seen, ['a0800100', 'a0800000', 'a0c00000', 'a0c00000']);
  seen.length = 0;
  useFetch = true;
  const r2 = await transceive(card, cmd);
  assert.deepEqual(r2.data, body);
  assert.deepEqual(seen, ['a0800100', 'a0800000', 'a0120000', 'a0120000']);
});

test('transceive repeats a command answered 6Cxx with the right Le', async () => {
  const calls: number[] = [];
  const card = async (apdu: Uint8Array): Promise<Uint8Array> => {
    const c = parseCommand(apdu);
    calls.push(c.ne);
    return c.ne === 4 ? encodeResponse(fromHex('61626364'), SW.ok) : encodeResponse(new Uint8Array(0), 0x6c04);
  };
  const r = await transceive(card, { cla: 0xa0, ins: 0x18, p1: 0, p2: 0, data: new Uint8Array(0), ne: 256 });
  assert.equal(toHex(r.data), '61626364');
  assert.deepEqual(calls, [256, 4]);
});

test('transceive bounds the total response size', async () => {
  const card = async (): Promise<Uint8Array> => encodeResponse(new Uint8Array(256), 0x6100);
  await assert.rejects(
    transceive(card, { cla: 0xa0, ins: 0x80, p1: 0, p2: 0, data: new Uint8Array(1), ne: 256 }, { maxResponse: 4096 }),
    { code: 'ERR_APDU_RESPONSE_TOO_LARGE' },
  );
});

test('responses and status word names', () => {
  assert.deepEqual(parseResponse(fromHex('01029000')), { data: fromHex('0102'), sw: 0x9000 });
  assert.throws(() => parseResponse(fromHex('90')), { code: 'ERR_APDU_RESPONSE' });
  assert.equal(describeSw(0x63c2), 'wrong PIN, 2 tries left');
  assert.equal(describeSw(0x6100), '256 more bytes');
  assert.equal(describeSw(0x6983), 'authentication method blocked');
});
