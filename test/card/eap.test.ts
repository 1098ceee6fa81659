/** PROCESS-EAP framing, identifiers, failures, fragmentation both ways and the host's clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concat, findTlv, parseTlvs, readU32 } from '../../src/bytes/index.js';
import { EapTlsFlag, parseEapTls } from '../../src/eap/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import type { TlsServerConfig, TlsServerConnection, TlsOutput } from '../../src/tls/api.js';
import { SELECT, TestCa, cmd, eapAck, eapResponse, newCard, personalise, send, swOf, verify, USER_PIN } from './helpers.js';
import { ClientPipe, connectClient, driveHandshake, once, sendEap } from './tls-host.js';

const reset = (card: EmulatedCard) => assert.equal(swOf(card, cmd(0xa0, 0x19, 0x10, 0x00)), 0x9000);
const stateOf = (card: EmulatedCard) => send(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)).data[0];
const eap = (card: EmulatedCard, data: Uint8Array, p2 = 0) => send(card, cmd(0xa0, 0x80, 0x00, p2, data, 65536, true));
const now = () => Math.floor(Date.now() / 1000);

async function fullHandshake(card: EmulatedCard, ca: TestCa, opts: Parameters<typeof driveHandshake>[2] = {}): Promise<void> {
  const pipe = new ClientPipe();
  const client = connectClient(pipe, ca.pem);
  const ok = once(client, 'secureConnect');
  const hs = await driveHandshake(card, pipe, opts);
  assert.equal(hs.outcome, 'success');
  await ok;
  client.destroy();
}

async function personalised(extra: Parameters<typeof newCard>[0] = {}) {
  const ca = await TestCa.create();
  const c = newCard(extra);
  await personalise(c.card, ca);
  return { ...c, ca };
}

test('malformed EAP packets: 6A80 for framing, 7000 for discarded packets; the session is unchanged', async () => {
  const { card, ca, cleanup } = await personalised();
  try {
    reset(card);
    const cases: [Uint8Array, number][] = [
      [Uint8Array.of(0x02, 0x01, 0x00), 0x6a80], // shorter than a header
      [Uint8Array.of(0x02, 0x01, 0x00, 0x20, 0x0d, 0x00), 0x6a80], // Length > data
      [Uint8Array.of(0x02, 0x01, 0x00, 0x03, 0x0d, 0x00), 0x6a80], // Length < 4
      [Uint8Array.of(0x02, 0x01, 0x00, 0x04), 0x6a80], // Response without Type
      [Uint8Array.of(0x02, 0x01, 0x00, 0x05, 0x0d), 0x6a80], // EAP-TLS without Flags (Length < 6)
      [Uint8Array.of(0x02, 0x01, 0x00, 0x06, 0x0d, 0x01), 0x6a80], // reserved flag
      [Uint8Array.of(0x02, 0x01, 0x00, 0x08, 0x0d, 0x80, 0x00, 0x00), 0x6a80], // L without length
      [Uint8Array.of(0x01, 0x01, 0x00, 0x06, 0x0d, 0x00), 0x7000], // a Request
      [Uint8Array.of(0x03, 0x01, 0x00, 0x04), 0x7000], // a Success
      [Uint8Array.of(0x02, 0x01, 0x00, 0x06, 0x01, 0x00), 0x7000], // EAP-Identity
      [Uint8Array.of(0x02, 0x01, 0x00, 0x06, 0x0d, 0x20), 0x6a80], // S flag from the host
      [concat(Uint8Array.of(0x02, 0x01, 0x00, 0x06, 0x0d, 0x00), Uint8Array.of(1, 2, 3)), 0x6a80], // 3 time bytes
    ];
    for (const [pkt, sw] of cases) {
      assert.equal(eap(card, pkt).sw.toString(16), sw.toString(16), Buffer.from(pkt).toString('hex'));
      assert.equal(stateOf(card), 2);
    }
    await fullHandshake(card, ca);
  } finally {
    card.close();
    cleanup();
  }
});

test('wrong Identifier → 7000 and the packet is ignored; the right one goes on', async () => {
  const { card, ca, cleanup } = await personalised();
  try {
    reset(card);
    const pipe = new ClientPipe();
    const client = connectClient(pipe, ca.pem);
    const ok = once(client, 'secureConnect');
    const ch = await pipe.nextRecord();
    const r1 = await sendEap(card, eapResponse(0x30, ch, { time: now() }));
    const p1 = parseEapTls(r1.data);
    assert.equal(p1.id, 0x31);
    pipe.deliver(p1.data);
    const ccs = await pipe.nextRecord();
    const fin = await pipe.nextRecord();
    assert.equal(eap(card, eapResponse(0x30, concat(ccs, fin))).sw, 0x7000);
    assert.equal(eap(card, eapResponse(0x32, concat(ccs, fin))).sw, 0x7000);
    // time bytes are only for the first Response
    assert.equal(eap(card, eapResponse(0x31, concat(ccs, fin), { time: now() })).sw, 0x6a80);
    // two non-CCS records in one message are refused (host bug), nothing reaches the engine
    assert.equal(eap(card, eapResponse(0x31, concat(ccs, fin, fin))).sw, 0x6a80);
    assert.equal(eap(card, eapResponse(0x31, concat(fin, ccs))).sw, 0x6a80);
    const r2 = eap(card, eapResponse(0x31, concat(ccs, fin)));
    // tickets are on by default: the NewSessionTicket travels with SW 9001, the ACK gets EAP-Success
    assert.equal(r2.sw, 0x9001);
    const last = parseEapTls(r2.data);
    assert.deepEqual([last.code, last.id], [1, 0x32]);
    pipe.deliver(last.data);
    assert.equal(eap(card, eapAck(0x31)).sw, 0x7000); // the ACK must echo 0x32
    const done = eap(card, eapAck(0x32));
    assert.equal(done.sw, 0x9000);
    assert.deepEqual(done.data, Uint8Array.of(0x03, 0x33, 0x00, 0x04));
    await ok;
    client.destroy();
    assert.equal(stateOf(card), 3);
  } finally {
    card.close();
    cleanup();
  }
});

test('garbage TLS → EAP-Request with the alert + 7001, EAP-Failure after the ACK, state 04; RESET-STATE recovers', async () => {
  const { card, ca, cleanup } = await personalised();
  try {
    reset(card);
    const r = eap(card, eapResponse(0x10, new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'), { time: now() }));
    assert.equal(r.sw, 0x7001);
    const p = parseEapTls(r.data);
    assert.deepEqual([p.code, p.id], [1, 0x11]);
    assert.equal(p.data[0], 0x15); // a plaintext alert record
    assert.equal(p.data[5], 2); // fatal
    assert.equal(stateOf(card), 4);
    assert.equal(eap(card, eapResponse(0x11, Uint8Array.of(1))).sw, 0x7000); // not an ACK
    const f = eap(card, eapAck(0x11));
    assert.deepEqual([f.sw, ...f.data], [0x9000, 0x04, 0x12, 0x00, 0x04]);
    assert.equal(eap(card, eapAck(0x12)).sw, 0x6985);
    assert.equal(eap(card, eapResponse(0x12, Uint8Array.of(1)), 0x97).sw, 0x6985);
    assert.equal(send(card, cmd(0xa0, 0xa6, 0, 0, new Uint8Array(0), 64)).sw, 0x6985);
    assert.equal(stateOf(card), 4);
    reset(card);
    assert.equal(stateOf(card), 2);
    await fullHandshake(card, ca);
  } finally {
    card.close();
    cleanup();
  }
});

test('INFO on a Response the card fails: the 7001 answer carries the alert TLV 2C (level, description) beyond the EAP Length; without INFO nothing', async () => {
  const { card, cleanup } = await personalised();
  try {
    const garbage = new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n');
    // P1 06 (START + INFO): EAP-Request with the alert record, then 2C 02 02 <description>
    const r = send(card, cmd(0xa0, 0x80, 0x06, 0x00, eapResponse(0x30, garbage, { time: now() }), 65536, true));
    assert.equal(r.sw, 0x7001);
    const len = (r.data[2]! << 8) | r.data[3]!;
    const p = parseEapTls(r.data.subarray(0, len));
    assert.equal(p.data[0], 0x15); // the alert record is in clear here: the TLV must name the same alert
    assert.deepEqual([...r.data.subarray(len)], [0x2c, 0x02, 0x02, p.data[6]!]);
    assert.equal(p.data[6], 10); // unexpected_message: not a handshake record
    // the EAP-Failure after the ACK carries nothing more, INFO or not
    const f = send(card, cmd(0xa0, 0x80, 0x04, 0x00, eapAck(0x31), 65536, true));
    assert.deepEqual([f.sw, ...f.data], [0x9000, 0x04, 0x32, 0x00, 0x04]);
    // without INFO the 7001 answer ends at the EAP Length
    const bare = send(card, cmd(0xa0, 0x80, 0x02, 0x00, eapResponse(0x40, garbage, { time: now() }), 65536, true));
    assert.equal(bare.sw, 0x7001);
    assert.equal(bare.data.length, (bare.data[2]! << 8) | bare.data[3]!);
  } finally {
    card.close();
    cleanup();
  }
});

test('PROCESS-EAP START wipes the session (no RESET-STATE), INFO puts the session info after EAP-Success only', async () => {
  const { card, ca, cleanup } = await personalised();
  try {
    reset(card);
    // leave the session failed (state 04): only a reset can recover it
    assert.equal(eap(card, eapResponse(0x10, new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'), { time: now() })).sw, 0x7001);
    assert.equal(stateOf(card), 4);
    // START on the first Response recovers it, with any Identifier; INFO on every handshake Response
    const pipe = new ClientPipe();
    const client = connectClient(pipe, ca.pem);
    const connected = once(client, 'secureConnect');
    const hs = await driveHandshake(card, pipe, { start: true, info: true, firstId: 0x77 });
    assert.equal(hs.outcome, 'success');
    await connected;
    client.destroy();
    const last = hs.responses[hs.responses.length - 1]!;
    assert.deepEqual([...last.data.subarray(0, 4)], [0x03, hs.lastId, 0x00, 0x04]);
    const info = parseTlvs(last.data.subarray(4));
    assert.deepEqual([...findTlv(info, 0x20)!], [0x03, 0x04]); // TLS 1.3
    assert.equal(new TextDecoder().decode(findTlv(info, 0x26)), 'web'); // identity that served
    assert.deepEqual(info.map((t) => t.tag), parseTlvs(send(card, cmd(0xa0, 0x86, 0, 0, Uint8Array.of(0x10), 256)).data).map((t) => t.tag));
    // every other answer is a bare EAP packet (nothing beyond its Length)
    for (const r of hs.responses.slice(0, -1)) assert.equal(r.data.length, (r.data[2]! << 8) | r.data[3]!);
    assert.equal(stateOf(card), 3);
    // without INFO, EAP-Success stays 4 bytes; START again mid-session wipes the connected session
    const pipe2 = new ClientPipe();
    const client2 = connectClient(pipe2, ca.pem);
    const c2 = once(client2, 'secureConnect');
    const hs2 = await driveHandshake(card, pipe2, { start: true });
    assert.equal(hs2.outcome, 'success');
    await c2;
    client2.destroy();
    assert.equal(hs2.responses[hs2.responses.length - 1]!.data.length, 4);
    // the flags must be the same on every segment of a chain: START on the first only → 6883
    const seg1 = cmd(0xa0, 0x80, 0x03, 0x00, Uint8Array.of(2, 1, 0, 6));
    const seg2 = cmd(0xa0, 0x80, 0x00, 0x00, Uint8Array.of(13, 0));
    assert.equal(swOf(card, seg1), 0x9000);
    assert.equal(swOf(card, seg2), 0x6883);
    // the same flags on both: one Response, executed once (START wiped the session → state 02, an empty Request)
    assert.equal(swOf(card, cmd(0xa0, 0x80, 0x03, 0x00, Uint8Array.of(2, 1, 0, 6))), 0x9000);
    const whole = send(card, cmd(0xa0, 0x80, 0x02, 0x00, Uint8Array.of(13, 0), 256));
    assert.equal(whole.sw, 0x9000);
    assert.deepEqual([...whole.data], [0x01, 0x02, 0x00, 0x06, 0x0d, 0x00]);
    assert.equal(stateOf(card), 2);
  } finally {
    card.close();
    cleanup();
  }
});

test('a truncated ClientHello: the card asks for more (empty Request); RESET-STATE then a full handshake', async () => {
  const { card, ca, cleanup } = await personalised();
  try {
    reset(card);
    const pipe = new ClientPipe();
    const client = connectClient(pipe, ca.pem);
    const ch = await pipe.nextRecord();
    client.destroy();
    const r = eap(card, eapResponse(0x05, ch.subarray(0, 40), { time: now() }));
    assert.equal(r.sw, 0x9000);
    assert.deepEqual(r.data, Uint8Array.of(0x01, 0x06, 0x00, 0x06, 0x0d, 0x00));
    assert.equal(stateOf(card), 2);
    // the rest completes it: the card answers its flight
    const r2 = eap(card, eapResponse(0x06, ch.subarray(40)));
    assert.equal(r2.sw, 0x9000);
    assert.equal(parseEapTls(r2.data).data[0], 0x16);
    reset(card);
    await fullHandshake(card, ca, { fragment: 100 });
  } finally {
    card.close();
    cleanup();
  }
});

test('host EAP-TLS fragmentation with ACKs; a broken fragment sequence is 6A80', async () => {
  const { card, ca, cleanup } = await personalised();
  try {
    reset(card);
    await fullHandshake(card, ca, { fragment: 64 });
    reset(card);
    // M without L on a first fragment / a length mismatch
    assert.equal(eap(card, eapResponse(1, new Uint8Array(10), { flags: EapTlsFlag.more, time: now() })).sw, 0x6a80);
    assert.equal(eap(card, eapResponse(1, new Uint8Array(10), { flags: EapTlsFlag.length | EapTlsFlag.more, tlsLength: 12 })).sw, 0x9000);
    assert.equal(eap(card, eapResponse(2, new Uint8Array(10), { flags: 0 })).sw, 0x6a80);
    assert.equal(eap(card, eapResponse(2, new Uint8Array(10), { flags: EapTlsFlag.length, tlsLength: 80_000 })).sw, 0x6a80);
    reset(card);
    await fullHandshake(card, ca);
  } finally {
    card.close();
    cleanup();
  }
});

test('the host clock: time sets the session, rollback > 300 s below the floor → 6A80, lazy persistence', async () => {
  let ms = 0; // the card's monotonic tick counter (clock.ts), moved by the test
  const { card, ca, dir, masterKey, cleanup } = await personalised({ monotonicMs: () => ms });
  const lastTime = (c: EmulatedCard) => readU32(findTlv(parseTlvs(send(c, cmd(0xa0, 0xca, 0, 0, new Uint8Array(0), 256)).data), 0x07)!, 0);
  try {
    const t = now();
    reset(card);
    await fullHandshake(card, ca, { time: t }); // an unset floor takes the first time (and writes it)
    assert.equal(lastTime(card), t);
    reset(card);
    const pipe = new ClientPipe();
    const client = connectClient(pipe, ca.pem);
    const ch = await pipe.nextRecord();
    client.destroy();
    assert.equal(eap(card, eapResponse(1, ch, { time: t - 301 })).sw, 0x6a80);
    assert.equal(card.lastError?.code, 'ERR_CARD_TIME_ROLLBACK');
    assert.equal(stateOf(card), 2);
    assert.equal(eap(card, eapResponse(1, ch, { time: t - 300 })).sw, 0x9000);
    assert.equal(lastTime(card), t);
    reset(card);
    await fullHandshake(card, ca, { time: t + 100 }); // bounded by the previous time + 300 s: t
    assert.equal(lastTime(card), t);
    reset(card);
    await fullHandshake(card, ca, { time: t + 100 }); // kept in memory only
    assert.equal(lastTime(card), t + 100);
    card.close();
    let c2 = EmulatedCard.open({ dir, masterKey, monotonicMs: () => ms });
    send(c2, SELECT);
    assert.equal(lastTime(c2), t); // +100 s was not worth a write
    send(c2, verify(USER_PIN));
    reset(c2);
    await fullHandshake(c2, ca, { time: t + 150 }); // the first time of a power-on moves nothing (clock.ts)
    assert.equal(lastTime(c2), t);
    reset(c2);
    await fullHandshake(c2, ca, { time: t + 200 });
    send(c2, verify(USER_PIN)); // any write carries the latest floor along
    c2.close();
    c2 = EmulatedCard.open({ dir, masterKey, monotonicMs: () => ms });
    send(c2, SELECT);
    assert.equal(lastTime(c2), t + 200);
    send(c2, verify(USER_PIN));
    reset(c2);
    await fullHandshake(c2, ca, { time: t + 201 });
    reset(c2);
    ms += 3601_000; // an hour of the card's own time passes: the floor may follow a host time an hour on
    await fullHandshake(c2, ca, { time: t + 200 + 3601 });
    assert.equal(lastTime(c2), t + 200 + 3601);
    c2.close();
    c2 = EmulatedCard.open({ dir, masterKey, monotonicMs: () => ms });
    send(c2, SELECT);
    assert.equal(lastTime(c2), t + 200 + 3601); // > 1 h: written at once
    c2.close();
  } finally {
    cleanup();
  }
});

/** A scripted engine: a 40 000-byte first flight, completion with a post-handshake record. */
function fakeEngine(): (c: TlsServerConfig) => TlsServerConnection {
  return (config) => {
    let n = 0;
    let state: TlsServerConnection['state'] = 'handshaking';
    const out = (o: Partial<TlsOutput>): TlsOutput => ({ records: new Uint8Array(0), plaintext: [], handshakeComplete: false, peerClosed: false, ...o });
    return {
      get state() {
        return state;
      },
      info: undefined,
      receive(data) {
        n++;
        if (n === 1) {
          assert.ok(config.selectIdentity('x'));
          const flight = new Uint8Array(40_000).map((_, i) => i & 0xff);
          return out({ records: flight });
        }
        if (state === 'handshaking') {
          state = 'connected';
          return out({ handshakeComplete: true, records: Uint8Array.of(0x17, 3, 3, 0, 1, 0xee) });
        }
        return out({ plaintext: [data.slice(5)] });
      },
      encrypt(type, pt) {
        return concat(Uint8Array.of(type, 3, 3, pt.length >> 8, pt.length & 0xff), pt);
      },
      exportKeyingMaterial: (_l, _c, len) => new Uint8Array(len).fill(7),
      dispose() {
        state = 'closed';
      },
    };
  };
}

test('card output fragmentation: 16 384-byte fragments with L then M, the host ACKs each; last records delivered with 9001', async () => {
  const ca = await TestCa.create();
  const { card: base, dir, masterKey, cleanup } = newCard();
  await personalise(base, ca);
  base.close();
  const card = EmulatedCard.open({ dir, masterKey, tlsFactory: fakeEngine() });
  try {
    send(card, SELECT);
    send(card, verify(USER_PIN));
    const r1 = eap(card, eapResponse(0, Uint8Array.of(0x16, 3, 1, 0, 1, 1), { time: now() }));
    const f1 = parseEapTls(r1.data);
    assert.deepEqual([f1.id, f1.flags, f1.tlsLength, f1.data.length], [1, 0xc0, 40_000, 16_384]);
    assert.equal(eap(card, eapResponse(1, Uint8Array.of(0x16, 3, 3, 0, 0))).sw, 0x6a80); // ACK expected
    const f2 = parseEapTls(eap(card, eapAck(1)).data);
    assert.deepEqual([f2.id, f2.flags, f2.data.length], [2, 0x40, 16_384]);
    const f3 = parseEapTls(eap(card, eapAck(2)).data);
    assert.deepEqual([f3.id, f3.flags, f3.data.length], [3, 0x00, 40_000 - 32_768]);
    assert.deepEqual(concat(f1.data, f2.data, f3.data), new Uint8Array(40_000).map((_, i) => i & 0xff));
    // Completion with records (TLS 1.2 CCS + Finished, TLS 1.3 tickets): delivered at once with SW 9001,
    // the host ACKs, then EAP-Success.
    const done = eap(card, eapResponse(3, Uint8Array.of(0x16, 3, 3, 0, 1, 20)));
    assert.equal(done.sw, 0x9001);
    const last = parseEapTls(done.data);
    assert.deepEqual([last.code, last.id, last.data], [1, 4, Uint8Array.of(0x17, 3, 3, 0, 1, 0xee)]);
    assert.equal(eap(card, eapResponse(4, Uint8Array.of(0x16, 3, 3, 0, 0))).sw, 0x7000); // only the ACK is accepted
    const s = eap(card, eapAck(4));
    assert.deepEqual([s.sw, s.data], [0x9000, Uint8Array.of(3, 5, 0, 4)]);
    // the record layer now carries only its own output
    const e = parseEapTls(eap(card, eapResponse(5, Uint8Array.of(0x41, 0x42)), 0x97).data);
    assert.deepEqual(e.data, Uint8Array.of(0x17, 3, 3, 0, 2, 0x41, 0x42));
    // ENCRYPT of an alert takes close_notify only
    assert.equal(eap(card, eapResponse(6, Uint8Array.of(2, 40)), 0x95).sw, 0x6a80);
    assert.equal(eap(card, eapResponse(6, Uint8Array.of(1, 0), { flags: EapTlsFlag.length | EapTlsFlag.more, tlsLength: 2 }), 0x95).sw, 0x6a80);
    assert.equal(eap(card, eapResponse(6, Uint8Array.of(1, 0)), 0x95).sw, 0x9000);
    assert.equal(eap(card, eapResponse(7, Uint8Array.of(1)), 0x97).sw, 0x6985); // after our close_notify
    // DECRYPT: exactly one record
    assert.equal(eap(card, eapResponse(7, Uint8Array.of(0x17, 3, 3, 0, 5, 1))).sw, 0x6a80);
    const d = parseEapTls(eap(card, eapResponse(7, Uint8Array.of(0x17, 3, 3, 0, 2, 0x68, 0x69))).data);
    assert.deepEqual(d.data, Uint8Array.of(0, 0, 0, 2, 0x68, 0x69));
    const sk = send(card, cmd(0xa0, 0xa6, 0, 0, new Uint8Array(0), 64));
    assert.deepEqual([sk.sw, sk.data], [0x9000, new Uint8Array(64).fill(7)]);
  } finally {
    card.close();
    cleanup();
  }
});

for (const extended of [true, false]) {
  test(`PROCESS-EAP FOLD (${extended ? 'extended' : 'short'} APDUs): the answer with the last records (TLS 1.3 ticket, TLS 1.2 CCS + Finished) ends with the EAP-Success and the session info; no 9001, no ACK`, async () => {
    const { card, ca, cleanup } = await personalised();
    try {
      for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
        const pipe = new ClientPipe();
        const client = connectClient(pipe, ca.pem, { minVersion: version, maxVersion: version });
        const connected = once(client, 'secureConnect');
        const hs = await driveHandshake(card, pipe, { start: true, info: true, fold: true, extended });
        assert.equal(hs.outcome, 'success');
        assert.equal(hs.folded, true, version);
        assert.equal(hs.sawDoneSw, false, 'no 9001');
        await connected; // the client got the ticket / CCS + Finished from the folded answer
        const last = hs.responses.at(-1)!;
        assert.equal(last.sw, 0x9000);
        const reqLen = (last.data[2]! << 8) | last.data[3]!;
        assert.equal(last.data[0], 0x01);
        assert.deepEqual([...last.data.subarray(reqLen, reqLen + 4)], [0x03, (last.data[1]! + 1) & 0xff, 0x00, 0x04]);
        const info = parseTlvs(last.data.subarray(reqLen + 4));
        assert.deepEqual([...findTlv(info, 0x20)!], version === 'TLSv1.3' ? [0x03, 0x04] : [0x03, 0x03]);
        assert.equal(stateOf(card), 3, 'authenticated at once');
        // the next Response must echo the EAP-Success Identifier: the card's last one is not the Request's
        assert.equal(eap(card, eapResponse(last.data[1]!, new Uint8Array(0))).sw, 0x7000);
        const d = eap(card, eapResponse(hs.lastId, new Uint8Array(0)));
        assert.notEqual(d.sw, 0x7000, 'the EAP-Success Identifier is the one to echo');
        client.destroy();
        reset(card);
      }
      // without FOLD the same card answers 9001 and waits for the ACK: hosts that do not ask are unchanged
      const pipe = new ClientPipe();
      const client = connectClient(pipe, ca.pem);
      const connected = once(client, 'secureConnect');
      const hs = await driveHandshake(card, pipe, { start: true, info: true, extended });
      assert.equal(hs.outcome, 'success');
      assert.equal(hs.folded, undefined);
      assert.equal(hs.sawDoneSw, true, 'without FOLD: 9001, then the ACK');
      await connected;
      client.destroy();
    } finally {
      card.close();
      cleanup();
    }
  });
}

