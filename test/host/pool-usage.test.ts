// The scheduler's order among waiting peers (host/peer-usage.ts, pool.ts dispatch): the peer that
// used the card least recently gets the next channel, first come first served among equals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerUsage } from '../../src/host/peer-usage.js';
import type { ChannelLease } from '../../src/host/index.js';
import { makeCards, startPool, type PoolCards, type RunningPool } from './pool-helpers.js';
import { waitUntil, within } from '../wait.js';

test('PeerUsage: classes by doubling of recent card time, decaying, bounded', () => {
  const u = new PeerUsage({ halfLifeMs: 1000, quantumMs: 50, maxPeers: 3 });
  assert.equal(u.classOf('a', 0), 0, 'a peer never charged');
  u.charge('a', 10, 0);
  assert.equal(u.classOf('a', 0), 0, 'a handshake (10 ms) stays in class 0');
  u.charge('b', 600, 0);
  assert.equal(u.classOf('b', 0), 4, '600 ms: 50·2^3 ≤ 600 < 50·2^4');
  assert.ok(Math.abs(u.usage('b', 1000) - 300) < 1e-9, 'halved after one half-life');
  assert.equal(u.classOf('b', 4000), 0, '600 ms four half-lives ago: class 0 again');
  u.charge('b', 100, 1000);
  assert.ok(Math.abs(u.usage('b', 1000) - 400) < 1e-9, 'a new charge adds to the decayed one');
  u.charge('c', 100, 1000);
  u.charge('d', 100, 1000); // a fourth peer: the one charged least recently ('a') is forgotten
  assert.equal(u.size, 3);
  assert.equal(u.usage('a', 1000), 0);
  assert.ok(u.usage('b', 1000) > 0 && u.usage('c', 1000) > 0 && u.usage('d', 1000) > 0);
  assert.throws(() => new PeerUsage({ halfLifeMs: 0 }), RangeError);
});

let cards: PoolCards;
before(async () => {
  cards = await makeCards(1);
});
after(() => cards.cleanup());

/** A channel request and whether it was answered yet. */
function ask(p: RunningPool, address: string): { lease: Promise<ChannelLease | undefined>; answered: () => boolean } {
  let done = false;
  const lease = p.pool.acquireChannel({ address }, 60_000).then((l) => {
    done = true;
    return l;
  });
  return { lease, answered: () => done };
}

test('pool: a peer that held the card for long waits behind one that did not, though it asked first', { timeout: 60_000 }, async () => {
  const p = await startPool(cards, { channelsPerCard: 1 });
  try {
    assert.equal(p.pool.slots.length, 1);
    // the heavy peer holds the only channel for 300 ms (a stalled handshake, a trickled session)
    const heavy = await within(p.pool.acquireChannel({ address: '10.0.0.1' }, 60_000), 'the first channel request');
    assert.ok(heavy);
    await sleep(300);
    heavy.release();
    assert.ok(p.pool.usage.classOf('10.0.0.1', performance.now()) >= 3, 'about 300 ms charged to the heavy peer');

    // someone else holds the channel while both wait: the heavy peer asks first, the fresh one second
    const holder = await within(p.pool.acquireChannel({ address: '10.0.0.3' }, 60_000), 'the holder');
    assert.ok(holder);
    const h = ask(p, '10.0.0.1');
    const f = ask(p, '10.0.0.2');
    await sleep(20);
    assert.ok(!h.answered() && !f.answered(), 'both wait while the channel is held');
    holder.release();
    const fresh = await within(f.lease, 'the fresh peer');
    assert.ok(fresh, 'the fresh peer gets the channel');
    await sleep(20);
    assert.equal(h.answered(), false, 'the heavy peer still waits: it used the card recently');
    fresh.release();
    const later = await within(h.lease, 'the heavy peer');
    assert.ok(later, 'then the heavy peer gets it');
    later.release();

    // peers of the same class: first come, first served
    const holder2 = await within(p.pool.acquireChannel({ address: '10.0.0.3' }, 60_000), 'the holder');
    assert.ok(holder2);
    const a = ask(p, '10.0.0.4');
    const b = ask(p, '10.0.0.5');
    await sleep(20);
    holder2.release();
    const first = await within(a.lease, 'the first of two fresh peers');
    assert.ok(first);
    await sleep(20);
    assert.equal(b.answered(), false, 'the second fresh peer waits for the first');
    first.release();
    (await within(b.lease, 'the second fresh peer'))?.release();
  } finally {
    await p.close();
  }
});

test('pool: a light client is queued and served first although the heavy peer queued enough to refuse a newcomer in arrival order', { timeout: 60_000 }, async () => {
  const p = await startPool(cards, { channelsPerCard: 1, queueTimeoutMs: 1000 });
  const sockets: tls.TLSSocket[] = [];
  try {
    const holder = await within(p.pool.acquireChannel({ address: '10.0.0.9' }, 60_000), 'the holder');
    assert.ok(holder);
    p.pool.usage.charge('127.0.0.2', 5000, performance.now()); // the heavy address held the card for seconds
    const t = performance.now() - 900;
    for (let i = 0; i < 10; i++) p.pool.estimate.released(t + i * 100, 100, true); // 10 channels/s while others waited
    const connect = (localAddress: string): { socket: tls.TLSSocket; done: Promise<string> } => {
      const raw = net.connect({ host: '127.0.0.1', port: p.port, localAddress });
      raw.on('error', () => undefined);
      const socket = tls.connect({ socket: raw, ca: cards.ca, servername: 'localhost' });
      sockets.push(socket);
      const done = new Promise<string>((resolve) => {
        socket.once('secureConnect', () => resolve('connected'));
        socket.once('error', (e: Error) => resolve(e.message));
      });
      return { socket, done };
    };
    // 12 heavy connections: at 10/s the tenth would wait 1 s, the whole deadline: 9 are queued, 3 refused
    const heavy = Array.from({ length: 12 }, () => connect('127.0.0.2'));
    await waitUntil(() => p.pool.readyCount + p.pool.stats.overloaded >= 12, () => `heavy queued ${p.pool.readyCount}, refused ${p.pool.stats.overloaded}`);
    assert.equal(p.pool.readyCount, 9, 'nine heavy connections queued');
    assert.equal(p.pool.stats.overloaded, 3, 'three refused at admission');
    // in arrival order the light client would wait for all nine (1 s) and be refused; it overtakes them
    const light = connect('127.0.0.3');
    await waitUntil(() => p.pool.readyCount === 10 || p.pool.stats.overloaded > 3, () => `light not queued yet (${p.pool.readyCount})`);
    assert.equal(p.pool.stats.overloaded, 3, 'the light client is not refused');
    holder.release();
    assert.equal(await within(light.done, 'the light client'), 'connected', 'the light client is served first');
    await Promise.all(heavy.map((h) => within(h.done, 'a heavy client')));
  } finally {
    for (const s of sockets) s.destroy();
    await p.close();
  }
});
