import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CardClient, CardError, encodeChain, ipToBytes, encodePin, parseSessionInfo } from '../../src/host/index.js';
import { InProcessTransport, type CardTransport } from '../../src/transport/index.js';
import { encodeResponse, parseCommand } from '../../src/apdu/index.js';
import { FakeCard } from './fake-card.js';

function shortTransport(card: FakeCard): CardTransport {
  const t = new InProcessTransport(card.process);
  return { transmit: (a) => t.transmit(a), close: () => t.close(), extendedLength: false };
}

test('CardClient: select, PIN errors map to stable codes with triesLeft', async () => {
  const card = new FakeCard({ pin: '1234' });
  const c = new CardClient(new InProcessTransport(card.process));
  assert.equal(await c.select(), 'setls/1');
  await assert.rejects(c.select(Uint8Array.of(1, 2, 3, 4, 5)), (e: CardError) => e.code === 'ERR_CARD_APPLET_NOT_FOUND' && /6A82/.test(e.message));
  await assert.rejects(c.resetState(), { code: 'ERR_CARD_SECURITY_NOT_SATISFIED' });
  await assert.rejects(c.verifyPin('0000'), (e: CardError) => e.code === 'ERR_CARD_PIN_WRONG' && e.triesLeft === 2 && e.sw === 0x63c2 && /63C2/.test(e.message));
  assert.deepEqual(await c.pinStatus(), { verified: false, triesLeft: 2 });
  await assert.rejects(c.verifyPin('0001'), (e: CardError) => e.code === 'ERR_CARD_PIN_WRONG' && e.triesLeft === 1);
  await c.verifyPin('1234');
  assert.deepEqual(await c.pinStatus(), { verified: true });
  card.tries = 0;
  await assert.rejects(c.verifyPin('1234'), (e: CardError) => e.code === 'ERR_CARD_PIN_BLOCKED' && e.triesLeft === 0 && /6983/.test(e.message));
  await assert.rejects(c.verifyPin('12a4'), { code: 'ERR_HOST_PIN_FORMAT' });
  await assert.rejects(c.verifyPin('1234', 'admin' as 'user'), TypeError);
});

test('CardClient: PIN is FF-padded; CHANGE/UNBLOCK layouts', async () => {
  const seen: Uint8Array[] = [];
  const c = new CardClient(new InProcessTransport((a) => (seen.push(a), encodeResponse(new Uint8Array(0), 0x9000))), { extended: false });
  await c.verifyPin('1234', 'operator');
  await c.changePin('1234', '98765432');
  await c.unblockPin('11112222', '5555', 'user');
  assert.deepEqual([...seen[0]!], [0xa0, 0x20, 0, 1, 8, 0x31, 0x32, 0x33, 0x34, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual([...seen[1]!.subarray(0, 5)], [0xa0, 0x24, 0, 0, 16]);
  assert.deepEqual([...seen[1]!.subarray(13, 21)], [...Buffer.from('98765432')]);
  assert.deepEqual([...seen[2]!.subarray(5, 13)], [...encodePin('5555')]);
  assert.deepEqual([...seen[2]!.subarray(13, 21)], [...Buffer.from('11112222')]);
});

test('CardClient: 61xx chaining with short APDUs, 9Fxx, and 6Cxx', async () => {
  for (const use9F of [false, true]) {
    const card = new FakeCard({ use9F, maxBlock: 10, wrongLeFor: [0xca] });
    const c = new CardClient(shortTransport(card));
    assert.equal(c.extended, false);
    const info = await c.cardInfo();
    assert.equal(info.version, 'setls/1');
    assert.equal(info.serial, '0102030405060708');
    assert.deepEqual(info.identities, ['web', 'iot']);
    assert.equal(info.lastTime, 0x65000001);
    assert.equal(info.state, 2);
    const ins = card.commands.map((x) => x.ins);
    assert.equal(ins[0], 0xca);
    assert.equal(ins[1], 0xca, '6Cxx repeats the command');
    assert.ok(ins.slice(2).every((i) => i === (use9F ? 0x12 : 0xc0)), `follow-up ${ins}`);
    assert.ok(ins.length > 4);
  }
});

test('CardClient: P1-More segmentation of long commands (short APDUs)', async () => {
  const card = new FakeCard();
  const c = new CardClient(shortTransport(card));
  const certs = [new Uint8Array(700).fill(1), new Uint8Array(300).fill(2)];
  await c.putChain('web', certs);
  const segs = card.commands.filter((x) => x.ins === 0xda);
  assert.equal(segs.length, Math.ceil(encodeChain('web', certs).length / 255));
  assert.ok(segs.slice(0, -1).every((s) => s.p1 === 1 && s.data.length === 255));
  assert.equal(segs.at(-1)!.p1, 0);
});

test('CardClient: every non-9000 SW is a CardError with the SW in the message', async () => {
  const sws = [0x6985, 0x6a80, 0x6a88, 0x6d00, 0x6f00, 0x6700, 0x6883, 0x6a86, 0x1234];
  const codes = ['ERR_CARD_CONDITIONS_NOT_SATISFIED', 'ERR_CARD_WRONG_DATA', 'ERR_CARD_DATA_NOT_FOUND', 'ERR_CARD_INS_NOT_SUPPORTED', 'ERR_CARD_INTERNAL', 'ERR_CARD_WRONG_LENGTH', 'ERR_CARD_CHAIN_BROKEN', 'ERR_CARD_WRONG_P1P2', 'ERR_CARD_STATUS'];
  for (let i = 0; i < sws.length; i++) {
    const c = new CardClient(new InProcessTransport(() => encodeResponse(new Uint8Array(0), sws[i]!)));
    await assert.rejects(c.setIdentity('web'), (e: CardError) => e instanceof CardError && e.code === codes[i] && e.message.includes(sws[i]!.toString(16).toUpperCase()) && e.sw === sws[i]);
  }
});

test('CardClient: command encodings (identity, CSR, key, session key, state)', async () => {
  const seen: ReturnType<typeof parseCommand>[] = [];
  const answers: Record<number, Uint8Array> = {
    0x19: Uint8Array.of(3),
    0xa6: new Uint8Array(64).fill(9),
    0x46: Uint8Array.of(0x30, 0x59),
    0x4a: Uint8Array.of(0x30, 0x82),
    0xca: Uint8Array.of(0x10, 1, 1, 0x11, 2, 0x30, 0, 0x12, 1, 0xaa, 0x12, 1, 0xbb),
  };
  const c = new CardClient(
    new InProcessTransport((a) => {
      const cmd = parseCommand(a);
      seen.push(cmd);
      return encodeResponse(answers[cmd.ins] ?? new Uint8Array(0), 0x9000);
    }),
  );
  assert.equal(await c.getState(), 3);
  assert.equal((await c.getSessionKey(64)).length, 64);
  assert.deepEqual([...(await c.generateKey('web'))], [0x30, 0x59]);
  await c.getCsr({ label: 'web', commonName: 'card', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
  const id = await c.identityInfo('web');
  await c.setIdentity('web');
  assert.deepEqual(id.certificates.map((x) => x[0]), [0xaa, 0xbb]);
  assert.equal(id.keyType, 1);
  const csr = seen.find((x) => x.ins === 0x4a)!;
  assert.equal(Buffer.from(csr.data).toString('hex'), '8003776562' + '810463617264' + '82096c6f63616c686f7374' + '83047f000001' + '8310' + '0'.repeat(31) + '1');
  const gk = seen.find((x) => x.ins === 0x46)!;
  assert.equal(gk.p1, 1);
  const si = seen.find((x) => x.ins === 0x16)!;
  assert.equal(si.p2, 0x80);
  await assert.rejects(c.getSessionKey(32 as 64), RangeError);
  await assert.rejects(c.setIdentity(''), { code: 'ERR_HOST_LABEL' });
  await assert.rejects(c.getCsr({ label: 'web', commonName: 'x', ipAddresses: ['300.1.1.1'] }), { code: 'ERR_HOST_IP' });
});

test('ipToBytes and parseSessionInfo', () => {
  assert.deepEqual([...ipToBytes('10.0.0.1')], [10, 0, 0, 1]);
  assert.equal(Buffer.from(ipToBytes('2001:db8::1')).toString('hex'), '20010db8000000000000000000000001');
  assert.equal(Buffer.from(ipToBytes('::ffff:1.2.3.4')).toString('hex'), '00000000000000000000ffff01020304');
  const si = parseSessionInfo(Uint8Array.of(0x20, 2, 3, 4, 0x21, 2, 0x13, 1, 0x22, 2, 0, 0x1d, 0x23, 2, 4, 3, 0x25, 2, 0x68, 0x32));
  assert.deepEqual(si, { version: 0x304, cipherSuite: 0x1301, group: 0x1d, signatureScheme: 0x403, alpn: 'h2' });
  assert.throws(() => parseSessionInfo(Uint8Array.of(0x20, 1, 3)), { code: 'ERR_CARD_RESPONSE' });
});

test('CardClient: the card deadline', async () => {
  const c = new CardClient(new InProcessTransport(() => new Promise<Uint8Array>(() => undefined)), { apduTimeoutMs: 50 });
  await assert.rejects(c.resetState(), (e: Error & { code?: string }) => e.code === 'ERR_CARD_TIMEOUT' && /^RESET-STATE.*: no answer within 50 ms$/.test(e.message));
});

test('CardClient: a card answering synchronously (in-process) costs no deadline timer per APDU; an asynchronous one keeps its deadline', async () => {
  const { createHook } = await import('node:async_hooks');
  let timers = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'Timeout') timers++;
    },
  });
  const card = new FakeCard({ pin: '1234' });
  const sync = new CardClient(new InProcessTransport(card.process));
  const slow = new CardClient(new InProcessTransport((a) => Promise.resolve(card.process(a))));
  await sync.select();
  await slow.select();
  hook.enable();
  try {
    for (let i = 0; i < 20; i++) await sync.verifyPin('1234');
    assert.equal(timers, 0, 'no timer for synchronous answers');
    for (let i = 0; i < 20; i++) await slow.verifyPin('1234');
    assert.equal(timers, 20, 'one deadline per APDU of an asynchronous card');
  } finally {
    hook.disable();
  }
});
