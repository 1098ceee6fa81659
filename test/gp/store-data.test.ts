/** STORE DATA block chaining: the off-card splitter, the card-side assembler, through SCP03 at level 33. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBerTlv, encodeBerTlvs, fromHex, parseBerTlvs, toHex } from '../../src/bytes/index.js';
import { buildStoreData, parseCommandApdu, StoreDataAssembler } from '../../src/gp/index.js';
import { openPair } from './helpers.js';

test('600 bytes of BER-TLV travel in blocks of 239 with P1 10/10/91 and P2 00/01/02', () => {
  const data = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
  const cmds = buildStoreData(data).map((c) => parseCommandApdu(c)!);
  assert.deepEqual(cmds.map((c) => [c.cla, c.ins, c.p1, c.p2, c.data.length, c.ne]), [
    [0x80, 0xe2, 0x10, 0, 239, 0],
    [0x80, 0xe2, 0x10, 1, 239, 0],
    [0x80, 0xe2, 0x91, 2, 122, 256],
  ]);
  assert.equal(toHex(buildStoreData(fromHex('bf3e035c015a'))[0]!), '80e2910006bf3e035c015a00', "pySim's GetEID");
  assert.equal(toHex(buildStoreData(fromHex('0102'), { structure: 'dgi', responseExpected: false, channel: 5 })[0]!), 'c1e2880002' + '0102');
  assert.throws(() => buildStoreData(new Uint8Array(257 * 10), { blockSize: 10 }), RangeError);
});

test('the assembler wants consecutive blocks, one structure, a bounded size', () => {
  const a = new StoreDataAssembler(300);
  assert.deepEqual(a.accept(0x10, 0, fromHex('01')), { done: false });
  assert.ok(a.pending, 'a.pending');
  const done = a.accept(0x91, 1, fromHex('02'));
  assert.ok('done' in done && done.done, '"done" in done && done.done');
  assert.equal(toHex((done as { data: Uint8Array }).data), '0102');
  assert.ok(!a.pending, '!a.pending');

  const sw = (r: ReturnType<StoreDataAssembler['accept']>) => ('error' in r ? r.sw.toString(16) : 'accepted');
  assert.equal(sw(a.accept(0x10, 1, fromHex('01'))), '6a86', 'first block must be 00');
  a.accept(0x10, 0, fromHex('01'));
  assert.equal(sw(a.accept(0x10, 2, fromHex('01'))), '6a86', 'a block skipped');
  assert.ok(!a.pending, 'an error forgets the sequence');
  a.accept(0x10, 0, fromHex('01'));
  assert.equal(sw(a.accept(0x88, 1, fromHex('01'))), '6a86', 'structure changed');
  a.accept(0x10, 0, new Uint8Array(200));
  assert.equal(sw(a.accept(0x90, 1, new Uint8Array(101))), '6a84', 'over 300 bytes');
});

test('a BER-TLV function request chained over STORE DATA through an SCP03 session at level 33', () => {
  const { host, card } = openPair({ level: 0x33 });
  const request = encodeBerTlv(0xbf24, encodeBerTlvs([
    { tag: 0x84, value: fromHex('01') },
    { tag: 0x88, value: new Uint8Array(700).fill(0x30) },
  ]));
  const assembler = new StoreDataAssembler();
  let result: Uint8Array | undefined;
  for (const plain of buildStoreData(request)) {
    const wire = host.wrap(plain);
    assert.ok(wire.length <= 261, 'every wrapped block still fits a short APDU');
    const u = card.unwrapCommand(wire);
    assert.ok(u.ok, 'u.ok');
    const step = assembler.accept(u.command.p1, u.command.p2, u.command.data);
    assert.ok(!('error' in step), '!("error" in step)');
    if (step.done) result = step.data;
    const r = host.unwrap(card.wrapResponse(step.done ? fromHex('9000') : new Uint8Array(0), 0x9000));
    assert.equal(r.sw, 0x9000);
  }
  const [req] = parseBerTlvs(result!);
  assert.equal(req!.tag, 0xbf24);
  assert.equal(parseBerTlvs(req!.value)[1]!.value.length, 700);
});
