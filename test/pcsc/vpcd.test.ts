// The vsmartcard vpcd protocol, card side (src/transport/vpcd.ts), without pcscd: framing, the ATR,
// control messages, and bad input at the boundary (short frames, oversize lengths, garbage, a card
// that throws) never crash the card process; the trust model: one peer per slot (a second
// connection is refused and cannot use or reset the first one's PIN-verified card), each connection
// is a power-on, and non-loopback addresses are refused unless forced (also through the binary).
// A fake "vpcd" plays pcscd's part on 127.0.0.1, over real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  VpcdCardLink,
  VpcdCardServer,
  VpcdFrameDecoder,
  atrName,
  buildAtr,
  encodeVpcdFrame,
  isLoopbackHost,
  type VpcdCard,
  type VpcdServerOptions,
} from '../../src/transport/vpcd.js';
import { EmulatedCard } from '../../src/card/index.js';
import { initCard } from '../../src/cli/card-setup.js';

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
  /** Resolves when the connection has closed (bounded: rejects after `timeoutMs`). */
  async closedWithin(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('the connection stayed open');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
  /** Frames received so far (not consumed). */
  get pending(): number {
    return this.frames.length;
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

/** A VpcdCardServer on two free consecutive ports (random, retried). */
async function listenServer(card: VpcdCard, opts: VpcdServerOptions = {}): Promise<{ srv: VpcdCardServer; port: number }> {
  for (let i = 0; ; i++) {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const cand = new VpcdCardServer(card, { ...opts, port });
    try {
      await cand.listen();
      return { srv: cand, port };
    } catch (e) {
      await cand.close();
      if (i > 20) throw e;
    }
  }
}

/** The next event `name` for `slot` (registered before the action that causes it), bounded. */
function nextSlotEvent(srv: VpcdCardServer, name: 'connected' | 'disconnected' | 'refused', slot: number, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      srv.off(name, on);
      reject(new Error(`no '${name}' event for slot ${slot} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (s: number, peer: string): void => {
      if (s !== slot) return;
      clearTimeout(t);
      srv.off(name, on);
      resolve(peer);
    };
    srv.on(name, on);
  });
}

async function connectPeer(port: number): Promise<VpcdPeer> {
  const p = new VpcdPeer(net.connect({ host: '127.0.0.1', port }));
  await once(p.sock, 'connect');
  return p;
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
  const { srv, port } = await listenServer(card);
  try {
    const aIn = nextSlotEvent(srv, 'connected', 0);
    const a = await connectPeer(port);
    await aIn;
    const resetsAtConnect = card.resets;
    assert.equal(resetsAtConnect, 1, 'the connection itself is a power-on');
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
    assert.equal(card.resets - resetsAtConnect, 3, 'power on, power off and reset each reset the card');
    assert.ok(srv.stats.ignored >= 2);
    // A length of 0xFFFF is within the limit: the card waits for more bytes; a truncated frame then a
    // close must not crash it (the slot is released: the 'disconnected' event).
    const aOut = nextSlotEvent(srv, 'disconnected', 0);
    a.sock.write(Uint8Array.of(0xff, 0xff, 1, 2, 3));
    a.sock.write(Uint8Array.of(0xff, 0xff));
    a.sock.end();
    await aOut;
    // the second slot answers too (empty-card stand-in)
    const b = new VpcdPeer(net.connect({ host: '127.0.0.1', port: port + 1 }));
    await once(b.sock, 'connect');
    b.send(Uint8Array.of(4));
    assert.ok((await b.next()).length > 4);
    b.send(Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x01, 0x01));
    assert.deepEqual([...(await b.next())], [0x6a, 0x82]);
    b.sock.destroy();
    // random garbage streams on fresh connections (each waits until the card let the previous one go)
    for (let i = 0; i < 20; i++) {
      const gone = nextSlotEvent(srv, 'disconnected', 0);
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
      const closed = await Promise.race([once(g, 'close').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
      if (!closed) g.destroy();
      assert.ok(closed, `the card kept a garbage connection open (junk ${Buffer.from(junk).toString('hex')})`);
      await gone;
    }
    // A whole APDU frame in the junk is answered before the close (the case that looked half-open).
    {
      const gone = nextSlotEvent(srv, 'disconnected', 0);
      const g = net.connect({ host: '127.0.0.1', port });
      g.on('error', () => undefined);
      const got: Buffer[] = [];
      g.on('data', (d: Buffer) => got.push(d));
      await once(g, 'connect');
      g.end(Uint8Array.of(0x00, 0x04, 0x00, 0xb0, 0x00, 0x00, 0x12, 0x34, 0x56)); // a frame, then a partial one
      await once(g, 'close');
      assert.deepEqual([...Buffer.concat(got)], [0x00, 0x03, 0xb0, 0x90, 0x00]);
      await gone;
    }
    // still serving
    const c = new VpcdPeer(net.connect({ host: '127.0.0.1', port }));
    await once(c.sock, 'connect');
    c.send(Uint8Array.of(0x00, 0xa4, 0x04, 0x00));
    assert.deepEqual([...(await c.next())], [0xa4, 0x90, 0x00]);
    c.sock.destroy();
    assert.equal(srv.stats.refused, 0, 'no connection was refused: each waited for the previous one');
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
    // Waits on the fake vpcd's 'connection' events (bounded), not on a clock.
    const wait = async (n: number): Promise<net.Socket> => {
      const deadline = Date.now() + 10_000;
      while (conns.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`the card did not connect (${conns.length}/${n})`);
        await Promise.race([once(vpcd, 'connection'), new Promise((r) => setTimeout(r, Math.min(left, 500)))]);
      }
      return conns[n - 1]!;
    };
    const p1 = new VpcdPeer(await wait(1));
    p1.send(Uint8Array.of(4));
    assert.equal(atrName(await p1.next()), 'setls');
    assert.ok(card.resets >= 1, 'inserting the card (connecting) is a power-on');
    const before = card.resets;
    p1.sock.destroy();
    const p2 = new VpcdPeer(await wait(2));
    p2.send(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, 0x00));
    assert.deepEqual([...(await p2.next())], [0xc0, 0x90, 0x00]);
    assert.ok(card.resets >= before + 2, 'the dropped link powered the card off, the new one powered it on');
  } finally {
    await link.stop();
    for (const s of conns) s.destroy();
    await new Promise<void>((r) => vpcd.close(() => r()));
  }
});

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex'));
const swOf = (r: Uint8Array): string => Buffer.from(r.subarray(-2)).toString('hex').toUpperCase();
const SELECT_SETLS = hex('00A4040007F07365746C7301');
const verifyUser = (pin: string): Uint8Array => {
  const p = Buffer.alloc(8, 0xff);
  p.write(pin, 'ascii');
  return new Uint8Array([0xa0, 0x20, 0x00, 0x00, 0x08, ...p]);
};
const GET_STATE = hex('A019000001'); // needs the user PIN

test('reversed mode, one reader per slot: a second connection is refused unread; it can neither use, guess nor reset the first one’s PIN-verified card; the next reader starts from a power-on', async () => {
  const root = mkdtempSync(join(tmpdir(), 'setls-vpcd-'));
  const emu = EmulatedCard.create({ dir: join(root, 'card'), masterKey: randomBytes(32), userPin: '1234', operatorPin: '87654321', puk: '11223344' });
  const card: VpcdCard = { atr: buildAtr('setls'), process: (a) => emu.process(a), reset: () => emu.reset() };
  const { srv, port } = await listenServer(card);
  try {
    // Reader A: the PIN-verified session a server would hold.
    const aIn = nextSlotEvent(srv, 'connected', 0);
    const a = await connectPeer(port);
    await aIn;
    a.send(Uint8Array.of(1));
    a.send(SELECT_SETLS);
    assert.match(swOf(await a.next()), /^(9000|61..)$/, 'SELECT (FCI waiting: 61xx)');
    a.send(verifyUser('1234'));
    assert.equal(swOf(await a.next()), '9000');
    a.send(GET_STATE);
    assert.equal(swOf(await a.next()), '9000', 'A: user-PIN command allowed');

    // Intruder B: connects while A holds the slot, and at once sends a user-PIN command, a power
    // cycle and three wrong PINs. It is closed without a single answer.
    const refused = nextSlotEvent(srv, 'refused', 0);
    refused.catch(() => undefined); // awaited below; no unhandled rejection if an earlier assertion fails
    const b = new VpcdPeer(net.connect({ host: '127.0.0.1', port }));
    b.sock.once('connect', () => {
      b.send(GET_STATE);
      b.send(Uint8Array.of(0)); // power off
      b.send(Uint8Array.of(2)); // reset
      for (let i = 0; i < 3; i++) b.send(verifyUser('0000'));
    });
    const outcome = await Promise.race([b.closedWithin().then(() => 'closed'), b.next().then((f) => `answered ${swOf(f)}`, () => 'closed')]);
    assert.equal(outcome, 'closed', 'B must be closed without an answer (an answer 9000 = it used A’s PIN verification)');
    assert.equal(b.pending, 0, 'B got no answer at all');
    const peer = await refused;
    assert.match(peer, /^127\.0\.0\.1:\d+$/, 'the refusal names the peer (for the log)');
    assert.equal(srv.stats.refused, 1);

    // A is untouched: still verified (B neither reset the card nor spent a PIN try).
    a.send(GET_STATE);
    assert.equal(swOf(await a.next()), '9000', 'A: still PIN-verified after B');

    // A leaves; reader C gets a freshly powered card: no PIN verification inherited.
    const aOut = nextSlotEvent(srv, 'disconnected', 0);
    a.sock.end();
    await aOut;
    assert.equal(srv.slotHeld(0), false);
    const cIn = nextSlotEvent(srv, 'connected', 0);
    const c = await connectPeer(port);
    await cIn;
    c.send(SELECT_SETLS);
    assert.match(swOf(await c.next()), /^(9000|61..)$/);
    c.send(GET_STATE);
    assert.equal(swOf(await c.next()), '6982', 'C: the previous reader’s PIN verification is gone');
    c.send(verifyUser('1234'));
    assert.equal(swOf(await c.next()), '9000', 'the correct PIN still works: B’s wrong guesses were never counted');
    c.send(hex('A020000000'));
    assert.equal(swOf(await c.next()), '9000');
    c.sock.destroy();
  } finally {
    await srv.close();
    emu.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('non-loopback vpcd addresses: refused (ERR_VPCD_REMOTE) unless allowRemote', async () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.org', '::ffff:10.0.0.1', '128.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
  const card = fakeCard();
  assert.throws(() => new VpcdCardServer(card, { host: '0.0.0.0' }), (e: Error & { code?: string }) => e.code === 'ERR_VPCD_REMOTE' && /--allow-remote-vpcd/.test(e.message));
  assert.throws(() => new VpcdCardServer(card, { host: '::' }), /ERR_VPCD_REMOTE|no authentication/);
  assert.throws(() => new VpcdCardLink(card, { host: '192.0.2.1' }), (e: Error & { code?: string }) => e.code === 'ERR_VPCD_REMOTE');
  // forced: it listens on every interface
  const { srv } = await listenServer(card, { host: '0.0.0.0', allowRemote: true });
  await srv.close();
});

function runSetls(args: string[], until: RegExp | undefined, timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(process.cwd(), 'bin/setls.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (code: number | null): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      resolve({ code, out });
    };
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (until && until.test(out)) {
        p.kill('SIGTERM');
        p.once('exit', () => finish(null));
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code) => finish(code));
  });
}

test('setls card serve (the binary): --vpcd-host 0.0.0.0 is refused; --allow-remote-vpcd starts with a warning', async () => {
  const root = mkdtempSync(join(tmpdir(), 'setls-vpcd-cli-'));
  try {
    const cardDir = join(root, 'card');
    const refused = await runSetls(['card', 'serve', '--reversed', '--card-dir', cardDir, '--vpcd-host', '0.0.0.0'], undefined);
    assert.equal(refused.code, 1, refused.out);
    assert.match(refused.out, /ERR_VPCD_REMOTE/);
    assert.match(refused.out, /no authentication/);
    const refusedLink = await runSetls(['card', 'serve', '--card-dir', cardDir, '--vpcd-host', '192.0.2.7'], undefined);
    assert.equal(refusedLink.code, 1, refusedLink.out);
    assert.match(refusedLink.out, /ERR_VPCD_REMOTE/);

    await initCard({ cardDir });
    // Reversed mode listens on two consecutive ports (no port 0): a random pair, another pair when a
    // parallel test holds one of them.
    let forced = { code: null as number | null, out: '' };
    for (let attempt = 0; attempt < 8; attempt++) {
      const port = 40000 + Math.floor(Math.random() * 20000);
      forced = await runSetls(['card', 'serve', '--reversed', '--card-dir', cardDir, '--vpcd-host', '0.0.0.0', '--vpcd-port', String(port), '--allow-remote-vpcd'], /listening for vpcd|ERR_|EADDRINUSE/);
      if (!/EADDRINUSE/.test(forced.out)) break;
    }
    assert.match(forced.out, /WARNING: vpcd listens on 0\.0\.0\.0 .*no authentication/, forced.out);
    assert.match(forced.out, /listening for vpcd on 0\.0\.0\.0:/, forced.out);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('setls card serve (the binary, connect mode): waits for a vpcd that is not there yet, then inserts the card', async () => {
  const root = mkdtempSync(join(tmpdir(), 'setls-vpcd-wait-'));
  const cardDir = join(root, 'card');
  await initCard({ cardDir });
  // A free port with nobody listening yet: the card must keep retrying, not exit.
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const p = spawn(process.execPath, [join(process.cwd(), 'bin/setls.mjs'), 'card', 'serve', '--card-dir', cardDir, '--vpcd-port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited: number | null | undefined;
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  p.once('exit', (code) => (exited = code));
  const vpcd = net.createServer();
  try {
    const deadline = Date.now() + 60_000;
    while (!/connecting to vpcd/.test(out) && exited === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(out, /connecting to vpcd/, out);
    // Several retry periods (500 ms each) with nobody there: the process is still running.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(exited, undefined, `card serve exited (${exited}) while waiting for vpcd: ${out}`);
    const connected = once(vpcd, 'connection');
    vpcd.listen(port, '127.0.0.1');
    const [sock] = (await connected) as [net.Socket];
    sock.destroy();
    const inserted = Date.now() + 60_000;
    while (!/inserted/.test(out) && Date.now() < inserted) await new Promise((r) => setTimeout(r, 20));
    assert.match(out, /inserted \(connected to vpcd at 127\.0\.0\.1:/, out);
  } finally {
    vpcd.close();
    if (exited === undefined) {
      p.kill('SIGTERM');
      await once(p, 'exit');
    }
    rmSync(root, { recursive: true, force: true });
  }
});
