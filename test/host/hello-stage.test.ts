// The hello stage and the queue of a TlsPool (hello-stage.ts, ready-queue.ts, service-estimate.ts),
// with the fake card over real loopback sockets: bounded by count, bytes and per peer, the stalest
// connection goes first, the deadline shrinks when the stage is crowded; the drain estimate.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { TlsPool, ServiceEstimate, type TlsPoolOptions, type SeTlsSocket } from '../../src/host/index.js';
import { InProcessTransport } from '../../src/transport/index.js';
import { FakeCard, record } from './fake-card.js';
import { FakeClient } from './fake-client.js';
import { waitUntil } from '../wait.js';

const live: TlsPool[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const p of live.splice(0)) await p.close();
});

async function poolOn(opts: Partial<TlsPoolOptions> = {}) {
  const card = new FakeCard();
  const pool = new TlsPool({ transports: [new InProcessTransport(card.process)], pins: ['1234'], ...opts });
  live.push(pool);
  await pool.start();
  pool.on('secureConnection', (s: SeTlsSocket) => s.end('served'));
  const errors: string[] = [];
  pool.on('sessionError', (e: Error & { code?: string }) => errors.push(e.code ?? e.message));
  const server = pool.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { card, pool, port: (server.address() as AddressInfo).port, errors };
}

/** A connection that sends nothing (from `localAddress`); `closed` once the server ended it. */
async function silent(port: number, localAddress = '127.0.0.1'): Promise<net.Socket & { closedByServer?: boolean }> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress }) as net.Socket & { closedByServer?: boolean };
  sockets.push(s);
  s.on('error', () => undefined);
  s.on('end', () => (s.closedByServer = true));
  s.on('close', () => (s.closedByServer = true));
  await once(s, 'connect');
  return s;
}

test('hello stage full: a new connection evicts the stalest one (FIN), and its ClientHello is served', async () => {
  const { pool, port, card, errors } = await poolOn({ maxPending: 4, maxPerPeer: 100, handshakeTimeoutMs: 60_000 });
  const idle: (net.Socket & { closedByServer?: boolean })[] = [];
  for (let i = 0; i < 4; i++) {
    idle.push(await silent(port));
    await waitUntil(() => pool.pendingCount === i + 1, `connection ${i} in the hello stage`);
  }
  const c = await FakeClient.connect(port);
  await c.handshake(card.flightBytes.length);
  assert.ok(await c.until(() => c.opened().text.toString() === 'served'), 'the newcomer is served');
  await waitUntil(() => idle[0]!.closedByServer === true, 'the stalest (first) connection was closed by the server');
  assert.deepEqual(idle.slice(1).map((s) => s.closedByServer ?? false), [false, false, false], 'the others stay');
  assert.equal(pool.stats.evicted, 1);
  assert.ok(errors.includes('ERR_HOST_EVICTED'));
});

test('per-peer limit: a peer at its limit evicts its own stalest connection; another peer is untouched', async () => {
  const { pool, port } = await poolOn({ maxPerPeer: 2, handshakeTimeoutMs: 60_000 });
  const other = await silent(port, '127.0.0.1');
  const a = await silent(port, '127.0.0.2');
  const b = await silent(port, '127.0.0.2');
  await waitUntil(() => pool.pendingCount === 3, 'three connections waiting');
  const c = await silent(port, '127.0.0.2');
  await waitUntil(() => a.closedByServer === true, "127.0.0.2's stalest connection closed");
  assert.equal(b.closedByServer ?? false, false);
  assert.equal(c.closedByServer ?? false, false);
  assert.equal(other.closedByServer ?? false, false, 'the other peer is not affected');
  assert.equal(pool.stats.peerLimit, 1);
  assert.equal(pool.peers.waiting('127.0.0.2'), 2);
});

test('hello stage bytes bound: partial ClientHellos beyond it evict the stalest', async () => {
  // the smallest bound allowed: one maximal ClientHello (64 KiB) and its record headers
  const { pool, port } = await poolOn({ maxPendingBytes: 64 * 1024 + 64, handshakeTimeoutMs: 60_000 });
  // two full records of a ClientHello announcing 65 280 bytes: 32 778 bytes, far from complete
  const rec = (body: Buffer): Buffer => Buffer.concat([Buffer.from([22, 3, 3, body.length >> 8, body.length & 0xff]), body]);
  const part = Buffer.concat([rec(Buffer.concat([Buffer.from([1, 0, 0xff, 0x00]), Buffer.alloc(16_380, 7)])), rec(Buffer.alloc(16_384, 7))]);
  const first = await silent(port);
  first.write(part);
  await waitUntil(() => pool.pendingCount === 1 && pool.stats.evicted === 0, 'first in');
  const second = await silent(port);
  second.write(part);
  await waitUntil(() => pool.pendingCount === 2, 'second in');
  const third = await silent(port);
  third.write(part); // 98 334 bytes in all: more than the bound
  await waitUntil(() => first.closedByServer === true, 'the stalest partial ClientHello evicted');
  assert.equal(second.closedByServer ?? false, false);
  assert.equal(third.closedByServer ?? false, false);
  assert.ok(pool.stats.evicted >= 1);
});

test('a crowded hello stage (more than half full) applies the short deadline', async () => {
  const { pool, port, errors } = await poolOn({ maxPending: 4, maxPerPeer: 100, handshakeTimeoutMs: 120_000, crowdedHelloTimeoutMs: 300 });
  const a = await silent(port);
  await waitUntil(() => pool.pendingCount === 1, 'one waiting');
  // alone (a quarter full) it keeps the long deadline: a second connection makes it half full, a third crowded
  const b = await silent(port);
  const c = await silent(port);
  await waitUntil(() => a.closedByServer === true && b.closedByServer === true && c.closedByServer === true, 'all three closed by the short deadline');
  assert.deepEqual(errors, ['ERR_HOST_HANDSHAKE_TIMEOUT', 'ERR_HOST_HANDSHAKE_TIMEOUT', 'ERR_HOST_HANDSHAKE_TIMEOUT']);
  assert.equal(pool.pendingCount, 0);
  assert.equal(pool.peers.size, 0, 'the per-peer table empties with the connections');
});

test('ServiceEstimate: the rate of releases while others wait; a busy period that ends forgets it', () => {
  const e = new ServiceEstimate(16);
  assert.equal(e.waitMs(100), 0, 'no measurement: no estimate (queue)');
  for (let i = 0; i < 10; i++) e.released(1000 + i * 10, 20, true); // one release every 10 ms
  assert.equal(Math.round(e.ratePerSecond), 100);
  assert.equal(Math.round(e.waitMs(99)), 1000, '100 ahead at 100/s: a second');
  assert.equal(e.meanHoldMs, 20);
  e.released(2000, 20, false); // the queue emptied
  assert.equal(e.ratePerSecond, 0);
  assert.equal(e.waitMs(1000), 0);
});

test('the ClientHello bytes the hello stage read go straight to the session reader (framed once), not back into the socket', async () => {
  const { pool, port, card, errors } = await poolOn();
  const unshift = net.Socket.prototype.unshift;
  let unshifted = 0;
  net.Socket.prototype.unshift = function (this: net.Socket, ...args: Parameters<typeof unshift>) {
    unshifted++;
    return unshift.apply(this, args);
  };
  try {
    for (let i = 0; i < 3; i++) {
      const c = await FakeClient.connect(port);
      // the ClientHello in two pieces: the stage buffers both, the reader gets them joined
      const hello = record(22, Uint8Array.of(1, 0, 0, 4, 3, 3, 0, 0));
      c.write(hello.subarray(0, 4));
      await waitUntil(() => pool.pendingCount === 1, 'the partial ClientHello waits in the hello stage');
      c.write(hello.subarray(4));
      (c as unknown as { helloSent: boolean }).helloSent = true;
      await c.handshake(card.flightBytes.length);
      assert.ok(await c.until(() => c.opened().text.toString() === 'served'), `client ${i} served`);
      c.destroy();
    }
  } finally {
    net.Socket.prototype.unshift = unshift;
  }
  assert.equal(unshifted, 0, 'no socket.unshift() of the ClientHello');
  assert.deepEqual(errors, []);
});
