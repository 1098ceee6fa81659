// The vsmartcard vpcd protocol, card side (src/transport/vpcd.ts), without pcscd: framing, the ATR,
// control messages, and bad input at the boundary (short frames, oversize lengths, garbage, a card
// that throws) never crash the card process. A fake "vpcd" plays pcscd's part on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import {
  VpcdCardLink,
  VpcdCardServer,
  VpcdFrameDecoder,
  atrName,
  buildAtr,
  encodeVpcdFrame,
  type VpcdCard,
} from '../../src/transport/vpcd.js';

function fakeCard(): VpcdCard & { resets: number; seen: Uint8Array[] } {
  const c = {
    atr: buildAtr('setls'),
    resets: 0,
    seen: [] as Uint8Array[],
    process(apdu: Uint8Array): Uint8Array {
      c.seen.push(apdu);
      if (apdu[1] === 0xee) throw new Error('boom');
      return Uint8Array.of(apdu[1]!, 0x90, 0x00);
    },
    reset(): void {
      c.resets++;
    },
  };
  return c;
}

/** A client speaking vpcd's side: send frames, read frames. */
class VpcdPeer {
  private dec = new VpcdFrameDecoder();
  private frames: Uint8Array[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.frames.push(...this.dec.push(new Uint8Array(d)));
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('error', () => undefined);
  }
  send(payload: Uint8Array): void {
    this.sock.write(encodeVpcdFrame(payload));
  }
  async next(timeoutMs = 10_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.closed) throw new Error('closed');
      if (Date.now() > deadline) throw new Error('no frame');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.frames.shift()!;
  }
}

test('frames: length-prefixed, any split, oversize rejected', () => {
  const f = encodeVpcdFrame(Uint8Array.of(1, 2, 3));
  assert.deepEqual([...f], [0, 3, 1, 2, 3]);
  const d = new VpcdFrameDecoder();
  const stream = new Uint8Array([...f, ...encodeVpcdFrame(Uint8Array.of(4)), ...encodeVpcdFrame(new Uint8Array(0))]);
  const got: number[][] = [];
  for (const b of stream) for (const fr of d.push(Uint8Array.of(b))) got.push([...fr]);
  assert.deepEqual(got, [[1, 2, 3], [4], []]);
  assert.throws(() => new VpcdFrameDecoder(100).push(Uint8Array.of(0x01, 0x00)), /exceeds/);
  assert.throws(() => encodeVpcdFrame(new Uint8Array(70000)), /65535/);
});

test('ATR: T=0/T=1, historical bytes name the card, TCK correct', () => {
  const atr = buildAtr('setls');
  assert.equal(Buffer.from(atr).toString('hex'), '3b878001805573657 46c73ae'.replace(/ /g, ''));
  let x = 0;
  for (const b of atr.subarray(1)) x ^= b;
  assert.equal(x, 0, 'TCK makes the XOR of T0..TCK zero');
  assert.equal(atrName(atr), 'setls');
  assert.throws(() => buildAtr(''), RangeError);
});

test('reversed mode: both slots answer; controls, APDUs, and bad input do not crash the card', async () => {
  const card = fakeCard();
  let port = 0;
  let srv: VpcdCardServer | undefined;
  for (let i = 0; !srv; i++) {
    port = 40000 + Math.floor(Math.random() * 20000);
    const cand = new VpcdCardServer(card, { port });
    try {
      await cand.listen();
      srv = cand;
    } catch (e) {
      await cand.close();
      if (i > 20) throw e;
    }
  }
  try {
    const a = new VpcdPeer(net.connect({ host: '127.0.0.1', port }));
    await once(a.sock, 'connect');
    a.send(Uint8Array.of(4));
    assert.deepEqual([...(await a.next())], [...card.atr]);
    a.send(Uint8Array.of(1)); // power on: no answer
    a.send(Uint8Array.of(0x00, 0xa4, 0x04, 0x00));
    assert.deepEqual([...(await a.next())], [0xa4, 0x90, 0x00]);
    // garbage: empty frame, unknown control byte, a card exception (→ 6F00)
    a.sock.write(Uint8Array.of(0, 0));
    a.send(Uint8Array.of(0x77));
    a.send(Uint8Array.of(0x00, 0xee, 0x00, 0x00));
    assert.deepEqual([...(await a.next())], [0x6f, 0x00]);
    a.send(Uint8Array.of(0)); // power off → reset
    a.send(Uint8Array.of(2)); // reset
    a.send(Uint8Array.of(0x00, 0xb0, 0x00, 0x00));
    assert.deepEqual([...(await a.next())], [0xb0, 0x90, 0x00]);
    assert.equal(card.resets, 3, 'power on, power off and reset each reset the card');
    assert.ok(srv.stats.ignored >= 2);
    // an oversize length closes that connection only
    a.sock.write(Uint8Array.of(0xff, 0xff, 1, 2, 3));
    a.sock.write(Uint8Array.of(0xff, 0xff));
    await new Promise((r) => setTimeout(r, 100));
    // (0xFFFF ≤ max: it just waits for more bytes; a truncated frame then a close must not crash)
    a.sock.destroy();
    // the second slot answers too (empty-card stand-in)
    const b = new VpcdPeer(net.connect({ host: '127.0.0.1', port: port + 1 }));
    await once(b.sock, 'connect');
    b.send(Uint8Array.of(4));
    assert.ok((await b.next()).length > 4);
    b.send(Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x01, 0x01));
    assert.deepEqual([...(await b.next())], [0x6a, 0x82]);
    b.sock.destroy();
    // random garbage streams on fresh connections
    for (let i = 0; i < 20; i++) {
      const g = net.connect({ host: '127.0.0.1', port });
      g.on('error', () => undefined);
      // Read what the card answers: when the junk starts with a whole short frame the card replies,
      // and an unread reply would hold back this side's 'end' (and 'close') forever.
      g.resume();
      await once(g, 'connect');
      const junk = new Uint8Array(1 + Math.floor(Math.random() * 300));
      for (let k = 0; k < junk.length; k++) junk[k] = Math.floor(Math.random() * 256);
      g.end(junk);
      // The card's side ends its half when ours does: the connection closes (bounded wait).
      const closed = await Promise.race([once(g, 'close').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
      if (!closed) g.destroy();
      assert.ok(closed, `the card kept a garbage connection open (junk ${Buffer.from(junk).toString('hex')})`);
    }
    // A whole APDU frame in the junk is answered before the close (the case that looked half-open).
    {
      const g = net.connect({ host: '127.0.0.1', port });
      g.on('error', () => undefined);
      const got: Buffer[] = [];
      g.on('data', (d: Buffer) => got.push(d));
      await once(g, 'connect');
      g.end(Uint8Array.of(0x00, 0x04, 0x00, 0xb0, 0x00, 0x00, 0x12, 0x34, 0x56)); // a frame, then a partial one
      await once(g, 'close');
      assert.deepEqual([...Buffer.concat(got)], [0x00, 0x03, 0xb0, 0x90, 0x00]);
    }
    // still serving
    const c = new VpcdPeer(net.connect({ host: '127.0.0.1', port }));
    await once(c.sock, 'connect');
    c.send(Uint8Array.of(0x00, 0xa4, 0x04, 0x00));
    assert.deepEqual([...(await c.next())], [0xa4, 0x90, 0x00]);
    c.sock.destroy();
  } finally {
    await srv.close();
  }
});

test('vpcd server mode: the card connects, reconnects after vpcd drops, and a lost link resets the card', async () => {
  const card = fakeCard();
  const conns: net.Socket[] = [];
  const vpcd = net.createServer((s) => conns.push(s));
  await new Promise<void>((r) => vpcd.listen(0, '127.0.0.1', () => r()));
  const port = (vpcd.address() as net.AddressInfo).port;
  const link = new VpcdCardLink(card, { port, retryMs: 50 });
  link.start();
  try {
    const wait = async (n: number): Promise<net.Socket> => {
      for (let i = 0; i < 100 && conns.length < n; i++) await new Promise((r) => setTimeout(r, 20));
      return conns[n - 1]!;
    };
    const p1 = new VpcdPeer(await wait(1));
    p1.send(Uint8Array.of(4));
    assert.equal(atrName(await p1.next()), 'setls');
    p1.sock.destroy();
    const p2 = new VpcdPeer(await wait(2));
    p2.send(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, 0x00));
    assert.deepEqual([...(await p2.next())], [0xc0, 0x90, 0x00]);
    assert.ok(card.resets >= 1, 'the dropped link powered the card off');
  } finally {
    await link.stop();
    for (const s of conns) s.destroy();
    await new Promise<void>((r) => vpcd.close(() => r()));
  }
});
