import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CardClient, EapSession, groupRecords } from '../../src/host/index.js';
import { InProcessTransport, type CardTransport } from '../../src/transport/index.js';
import { parseEapTls } from '../../src/eap/index.js';
import { FakeCard, record, splitRecords, toyOpen, toySeal } from './fake-card.js';

function setup(opts: ConstructorParameters<typeof FakeCard>[0] = {}, extended = true) {
  const card = new FakeCard(opts);
  const t = new InProcessTransport(card.process);
  const transport: CardTransport = extended ? t : { transmit: (a) => t.transmit(a), close: () => t.close(), extendedLength: false };
  const client = new CardClient(transport);
  return { card, client };
}

const hello = record(22, Uint8Array.of(1, 0, 0, 4, 3, 3, 0, 0));
const ccs = record(20, Uint8Array.of(1));
const fin = record(22, Uint8Array.of(20, 0, 0, 32, ...new Uint8Array(32)));

async function ready(client: CardClient) {
  await client.select();
  await client.verifyPin('1234');
  await client.resetState();
}

test('groupRecords: CCS records ride in front of at most one other record', () => {
  const app = record(23, Uint8Array.of(1));
  const g = groupRecords([ccs, fin, app, ccs]);
  assert.deepEqual(g.map((x) => x.map((r) => r[0])), [[20, 22], [23], [20]]);
});

for (const extended of [true, false]) {
  test(`EapSession: full handshake with fragmentation both ways, Identifier echo, time (${extended ? 'extended' : 'short'} APDUs)`, async () => {
    const { card, client } = setup({ flightSize: 40000, cardFragment: 5000 }, extended);
    await ready(client);
    const s = new EapSession(client, { maxFragment: 100, initialId: 250 });
    const bigHello = record(22, new Uint8Array(700).fill(1)); // 705 bytes: 8 host fragments
    const st1 = await s.handshake([bigHello], 1_700_000_000);
    assert.equal(st1.done, false);
    assert.equal(st1.failed, false);
    assert.equal(st1.needMore, true);
    assert.deepEqual(Buffer.from(st1.toClient), Buffer.from(card.flightBytes), 'the whole server flight, reassembled');
    assert.deepEqual(card.times, [1_700_000_000]);
    // host fragments: L on the first, M on all but the last
    const frags = card.eapIn.map((p) => parseEapTls(p)).filter((p) => p.data.length > 0);
    assert.equal(frags.length, 8);
    assert.equal(frags[0]!.flags, 0xc0);
    assert.equal(frags[0]!.tlsLength, 705);
    assert.equal(frags.at(-1)!.flags, 0x00);
    assert.ok(frags.slice(1, -1).every((f) => f.flags === 0x40));
    // host ACKs for the card's 8 fragments (40000 / 5000)
    const acks = card.eapIn.map((p) => parseEapTls(p)).filter((p) => p.flags === 0 && p.data.length === 0);
    assert.equal(acks.length, 7);
    // the identifier ran 250 → wraps; the fake card rejects (7000) any wrong echo
    const st2 = await s.handshake([ccs]);
    assert.equal(st2.needMore, true);
    assert.equal(st2.toClient.length, 0);
    const app = toySeal(23, Buffer.from('early'));
    const st3 = await s.handshake([fin, app]);
    assert.equal(st3.done, true);
    assert.equal(st3.needMore, false);
    assert.deepEqual(st3.remaining, [app]);
    assert.equal(s.phase, 'connected');
    assert.ok(card.times.length === 1, 'time only on the first Response');
    const d = await s.decrypt(st3.remaining[0]!);
    assert.equal(Buffer.from(d.plaintext).toString(), 'early');
    // short APDUs: long commands were P1-More segmented and long answers GET RESPONSE chained
    if (!extended) {
      assert.ok(card.commands.some((c) => c.ins === 0xc0), 'GET RESPONSE used');
    }
  });
}

test('EapSession: a ClientHello spread over two records → needMore, then the flight', async () => {
  const { card, client } = setup();
  await ready(client);
  const s = new EapSession(client);
  const part1 = record(22, Uint8Array.of(1, 0, 0, 9, 0xee));
  const r1 = await s.handshake([part1], 5);
  assert.equal(r1.needMore, true);
  assert.equal(r1.toClient.length, 0);
  const r2 = await s.handshake([record(22, Uint8Array.of(1, 2, 3))]);
  assert.deepEqual(Buffer.from(r2.toClient), Buffer.from(card.flightBytes));
  // one non-CCS record per EAP message
  const r3 = await s.handshake([ccs, ccs, fin]);
  assert.equal(r3.done, true);
  const last = parseEapTls(card.eapIn.at(-1)!);
  assert.deepEqual(splitRecords(last.data).map((r) => r[0]), [20, 20, 22]);
});

test('EapSession: SW 7001 → alert for the client, then ACK → EAP-Failure', async () => {
  const { card, client } = setup();
  await ready(client);
  const s = new EapSession(client);
  const r = await s.handshake([record(22, Uint8Array.of(0xba, 0, 0, 0))], 5);
  assert.equal(r.failed, true);
  assert.equal(r.done, false);
  assert.equal(r.needMore, false);
  assert.deepEqual([...r.toClient], [0x15, 3, 3, 0, 2, 2, 40]);
  assert.equal(s.phase, 'failing');
  await s.acknowledgeFailure();
  assert.equal(s.phase, 'failed');
  assert.equal(card.phase, 'failed');
  const ack = parseEapTls(card.eapIn.at(-1)!);
  assert.equal(ack.flags, 0);
  assert.equal(ack.data.length, 0);
  await assert.rejects(s.handshake([hello]), { code: 'ERR_HOST_STATE' });
  await assert.rejects(s.encrypt(23, Uint8Array.of(1)), { code: 'ERR_HOST_STATE' });
});

test('EapSession: the alert of a 7001 answer is the one the card reports (TLV 2C after the EAP packet, with INFO), even when its record is encrypted', async () => {
  const { client } = setup({ encryptedAlert: true });
  await ready(client);
  const s = new EapSession(client, { sessionInfo: true });
  await s.handshake([hello], 5);
  const r = await s.handshake([ccs, record(22, Uint8Array.of(0xba))]);
  assert.equal(r.failed, true);
  assert.equal(r.toClient[0], 23, 'an encrypted alert record: nothing to read in it');
  assert.equal(r.alert, 40);
  await s.acknowledgeFailure();
  // without INFO the card sends no TLV and the host reports no alert (it does not guess)
  const { client: c2 } = setup({ encryptedAlert: true });
  await ready(c2);
  const s2 = new EapSession(c2);
  const r2 = await s2.handshake([record(22, Uint8Array.of(0xba, 0, 0, 0))], 5);
  assert.equal(r2.failed, true);
  assert.equal(r2.alert, undefined);
});

test('EapSession: bytes beyond the EAP Length of an answer that is neither EAP-Success nor 7001 are a protocol error', async () => {
  const card = new FakeCard();
  const t = new InProcessTransport(card.process);
  // the card appends 2 bytes to the EAP-Request of its server flight (SW 9000)
  const tamper: CardTransport = {
    transmit: async (a) => {
      const r = await t.transmit(a);
      return a[1] === 0x80 && r.length > 10 && r[r.length - 2] === 0x90 ? Uint8Array.from([...r.subarray(0, -2), 0xaa, 0xbb, 0x90, 0x00]) : r;
    },
    close: () => t.close(),
    extendedLength: true,
  };
  const client = new CardClient(tamper);
  await ready(client);
  const s = new EapSession(client, { sessionInfo: true });
  await assert.rejects(s.handshake([hello], 5), { code: 'ERR_HOST_EAP_PROTOCOL' });
});

test('EapSession: bad Finished fails; records after it are returned unconsumed', async () => {
  const { client } = setup();
  await ready(client);
  const s = new EapSession(client);
  await s.handshake([hello], 5);
  const extra = record(23, Uint8Array.of(1, 2));
  const r = await s.handshake([ccs, record(22, Uint8Array.of(0xba)), extra]);
  assert.equal(r.failed, true);
  assert.deepEqual(r.remaining, [extra]);
  await s.acknowledgeFailure();
});

test('EapSession: encrypt/decrypt, close_notify, fatal alerts, validation', async () => {
  const { card, client } = setup({}, false);
  await ready(client);
  const s = new EapSession(client);
  await s.handshake([hello], 5);
  assert.equal((await s.handshake([ccs, fin])).done, true);
  const big = new Uint8Array(16384).map((_, i) => i & 0xff);
  const rec = await s.encrypt(23, big);
  const opened = toyOpen(rec);
  assert.equal(opened.type, 23);
  assert.deepEqual(Buffer.from(opened.plaintext), Buffer.from(big));
  await assert.rejects(s.encrypt(23, new Uint8Array(16385)), RangeError);
  await assert.rejects(s.encrypt(21, Uint8Array.of(2, 40)), RangeError);
  await assert.rejects(s.encrypt(22, Uint8Array.of(1)), RangeError);
  const before = card.commands.length;
  const d = await s.decrypt(toySeal(23, big));
  assert.deepEqual(Buffer.from(d.plaintext), Buffer.from(big));
  const segs = card.commands.slice(before).filter((c) => c.ins === 0x80 && c.data.length > 6); // minus the ACK of the card's 2nd fragment
  assert.equal(segs.length, Math.ceil((16384 + 6 + 10) / 255), 'P1-More segments of 255 bytes');
  assert.ok(segs.slice(0, -1).every((c) => c.p1 === 1 && c.data.length === 255), 'More bit on all but the last');
  assert.equal(d.peerClosed, false);
  const c = await s.decrypt(toySeal(21, Uint8Array.of(1, 0)));
  assert.equal(c.peerClosed, true);
  assert.equal(c.failed, false);
  assert.deepEqual(toyOpen(c.outRecords), { type: 21, plaintext: Uint8Array.of(1, 0) });
  assert.equal(s.phase, 'closed');
  assert.equal(card.phase, 'closed');
  await assert.rejects(s.decrypt(toySeal(23, big)), { code: 'ERR_HOST_STATE' });
});

test('EapSession: a fatal alert from the client and a record the card cannot open', async () => {
  for (const [recIn, sent] of [
    [toySeal(21, Uint8Array.of(2, 42)), false],
    [record(23, Uint8Array.of(1, 2, 3)), true],
  ] as const) {
    const { client } = setup();
    await ready(client);
    const s = new EapSession(client);
    await s.handshake([hello], 5);
    await s.handshake([fin]);
    const d = await s.decrypt(recIn);
    assert.equal(d.failed, true);
    assert.equal(d.outRecords.length > 0, sent);
    assert.equal(d.alert, sent ? 20 : 42);
    assert.equal(s.phase, 'failed');
  }
});

test('EapSession: a card error SW becomes a CardError', async () => {
  const { client } = setup();
  await client.select(); // PIN not verified: 6982
  const s = new EapSession(client);
  await assert.rejects(s.handshake([hello], 5), { code: 'ERR_CARD_SECURITY_NOT_SATISFIED' });
});

test('EapSession endOnClose: DECRYPTs carry END and the close wipes the card session (cardWiped); a card refusing END (6A86) gets the DECRYPT again without it, RESET-STATE stays owed', async () => {
  for (const refuses of [false, true]) {
    const card = new FakeCard();
    const seen: number[] = [];
    const proc = (a: Uint8Array): Uint8Array => {
      if (a[1] === 0x80 && a[3] === 0) seen.push(a[2]!);
      return refuses && a[1] === 0x80 && (a[2]! & 0x08) !== 0 ? Uint8Array.of(0x6a, 0x86) : card.process(a);
    };
    const client = new CardClient(new InProcessTransport(proc));
    await ready(client);
    const s = new EapSession(client, { endOnClose: true, initialId: 1 });
    await s.handshake([hello]);
    assert.equal((await s.handshake([fin])).done, true);
    seen.length = 0;
    const d1 = await s.decrypt(toySeal(23, Buffer.from('hi')));
    assert.equal(Buffer.from(d1.plaintext).toString(), 'hi');
    assert.equal(s.cardWiped, false);
    const d2 = await s.decrypt(toySeal(21, Uint8Array.of(1, 0)));
    assert.equal(d2.peerClosed, true);
    if (refuses) {
      assert.deepEqual(seen, [0x08, 0x00, 0x00], 'refused once, then no END');
      assert.equal(s.cardWiped, false);
      assert.equal(card.phase, 'closed');
    } else {
      assert.deepEqual(seen, [0x08, 0x08]);
      assert.equal(s.cardWiped, true);
      assert.equal(card.phase, 'wantHello', 'the card wiped the session with its answer');
    }
  }
});
