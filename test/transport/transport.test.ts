import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InProcessTransport, TracingTransport, formatCommand, formatResponse } from '../../src/transport/index.js';
import { fromHex } from '../../src/bytes/index.js';

test('InProcessTransport: fresh copies both ways', async () => {
  let seen: Uint8Array | undefined;
  const slab = Buffer.alloc(64, 0xaa); // returned arrays must not be views on a bigger buffer
  const t = new InProcessTransport((apdu) => {
    seen = apdu;
    assert.equal(apdu.byteOffset, 0);
    assert.equal(apdu.buffer.byteLength, apdu.length);
    return slab.subarray(10, 12).fill(0).map((_, i) => (i === 0 ? 0x90 : 0x00));
  });
  const pooled = Buffer.from('A0190000FFFF', 'hex').subarray(0, 4); // a view on a larger pool slab
  const sent = new Uint8Array(pooled);
  const p = t.transmit(pooled);
  pooled[0] = 0x00; // mutating after transmit() must not change what the card sees
  sent.fill(0);
  const res = await p;
  assert.deepEqual([...seen!], [0xa0, 0x19, 0x00, 0x00]);
  assert.equal(res.byteOffset, 0);
  assert.equal(res.buffer.byteLength, 2);
  assert.deepEqual([...res], [0x90, 0x00]);
  assert.equal(t.extendedLength, true);
});

test('InProcessTransport: the response is a copy the card cannot change later', async () => {
  const cardBuf = Uint8Array.of(1, 2, 0x90, 0);
  const t = new InProcessTransport(() => cardBuf);
  const res = await t.transmit(Uint8Array.of(0xa0, 0xca, 0, 0, 0));
  cardBuf[0] = 99;
  assert.equal(res[0], 1);
  assert.notEqual(res.buffer, cardBuf.buffer);
});

test('InProcessTransport: serialises calls (one APDU at a time)', async () => {
  let inside = 0;
  let maxInside = 0;
  const order: number[] = [];
  const t = new InProcessTransport(async (apdu) => {
    inside++;
    maxInside = Math.max(maxInside, inside);
    await new Promise((r) => setTimeout(r, 5 - apdu[2]!));
    order.push(apdu[2]!);
    inside--;
    return Uint8Array.of(0x90, 0);
  });
  await Promise.all([0, 1, 2, 3, 4].map((i) => t.transmit(Uint8Array.of(0xa0, 0x19, i, 0))));
  assert.equal(maxInside, 1);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
});

test('InProcessTransport: validation, errors and close', async () => {
  const t = new InProcessTransport((a) => (a[1] === 0xff ? (undefined as unknown as Uint8Array) : Uint8Array.of(0x90, 0)));
  await assert.rejects(t.transmit(Uint8Array.of(1, 2)), /shorter than a header/);
  await assert.rejects(t.transmit('x' as unknown as Uint8Array), TypeError);
  await assert.rejects(t.transmit(Uint8Array.of(0xa0, 0xff, 0, 0)), { code: 'ERR_APDU_RESPONSE' });
  // a failed call does not block later ones
  assert.deepEqual([...(await t.transmit(Uint8Array.of(0xa0, 0x19, 0, 0)))], [0x90, 0]);
  await t.close();
  await assert.rejects(t.transmit(Uint8Array.of(0xa0, 0x19, 0, 0)), { code: 'ERR_APDU_TRANSPORT_CLOSED' });
});

test('TracingTransport: annotated hex both ways, secrets redacted', async () => {
  const lines: string[] = [];
  const inner = new InProcessTransport((a) => (a[1] === 0xa6 ? new Uint8Array(66).fill(7).map((v, i) => (i === 64 ? 0x90 : i === 65 ? 0 : v)) : a[1] === 0x20 ? Uint8Array.of(0x63, 0xc2) : Uint8Array.of(0x01, 0x08, 0x00, 0x06, 0x0d, 0x00, 0x90, 0x00)));
  const t = new TracingTransport(inner, (l) => lines.push(l));
  assert.equal(t.extendedLength, true);
  await t.transmit(fromHex('A0 80 01 00 06 02 07 00 06 0D 00'));
  await t.transmit(fromHex('A0 20 00 00 08 31 32 33 34 FF FF FF FF'));
  await t.transmit(fromHex('A0 A6 00 00 40'));
  assert.equal(lines[0], '>> A0 80 01 00 06 02 07 00 06 0D 00  PROCESS-EAP (More) [11 bytes]');
  assert.equal(lines[1], '<< 01 08 00 06 0D 00 90 00  9000 OK [6 bytes]');
  assert.match(lines[2]!, /^>> A0 20 00 00 08 \*\* \*\* \(redacted\)  VERIFY-PIN\(user\)/);
  assert.doesNotMatch(lines[2]!, /31 32/);
  assert.equal(lines[3], '<< 63 C2  63C2 wrong PIN, 2 tries left');
  assert.match(lines[5]!, /^<< \*\* \(64 secret bytes redacted\) 90 00  9000 OK/);
  assert.doesNotMatch(lines[5]!, /07 07/);
});

test('formatCommand/formatResponse: names, elision, SW descriptions', () => {
  const long = new Uint8Array(300).fill(0xab);
  long.set([0xa0, 0x80, 0x00, 0x97]);
  assert.match(formatCommand(long, { maxBytes: 8 }), /^>> A0 80 00 97 AB AB AB AB …  PROCESS-EAP-ENCRYPT \[300 bytes\]$/);
  assert.match(formatCommand(fromHex('00 A4 04 00 07 F0 73 65 74 6C 73 01')), /SELECT/);
  assert.match(formatCommand(fromHex('A0 19 10 00')), /RESET-STATE/);
  assert.match(formatCommand(fromHex('A0 80 02 00 06 02 07 00 06 0D 00')), /  PROCESS-EAP\(START\) \[/);
  assert.match(formatCommand(fromHex('A0 80 08 00 06 02 07 00 06 0D 00')), /  PROCESS-EAP\(END\) \[/);
  assert.match(formatCommand(fromHex('A0 80 00 00 06 02 07 00 06 0D 00')), /  PROCESS-EAP \[/);
  assert.match(formatCommand(fromHex('A0 C0 00 00 00')), /GET-RESPONSE/);
  assert.match(formatResponse(fromHex('01 02 61 10')), /6110 16 more bytes/);
  assert.match(formatResponse(fromHex('70 01')), /7001 authentication failure/);
  assert.match(formatResponse(fromHex('6C 20')), /wrong Le, use 32/);
  assert.equal(formatCommand(long, { maxBytes: 0 }).includes('…'), false);
});

test('TracingTransport: a throwing sink never breaks the exchange', async () => {
  const t = new TracingTransport(new InProcessTransport(() => Uint8Array.of(0x90, 0)), () => {
    throw new Error('sink broke');
  });
  assert.deepEqual([...(await t.transmit(Uint8Array.of(0xa0, 0x19, 0, 0)))], [0x90, 0]);
});
