// TlsPool: several emulated cards behind one listener — concurrency, peek-before-assign (slowloris),
// resumption affinity, the overload answer beyond the backlog.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { makeCards, startPool, get, type PoolCards } from './pool-helpers.js';
import { waitUntil } from '../wait.js';

let cards: PoolCards;
before(async () => {
  cards = await makeCards(2);
});
after(() => cards.cleanup());

test('pool: concurrent HTTPS clients spread over two cards, every body right', async () => {
  const p = await startPool(cards, { backlog: 64 });
  try {
    const used = new Set<number>();
    p.pool.on('assigned', (a: { slot: number }) => used.add(a.slot));
    const res = await Promise.all(Array.from({ length: 12 }, (_, i) => get(p.port, cards.ca, `/x${i}`)));
    res.forEach((r, i) => assert.deepEqual(r, { status: 200, body: `ok /x${i} 0` }));
    assert.deepEqual([...used].sort(), [0, 1], 'both cards served');
    assert.equal(p.pool.inUse, 0);
  } finally {
    await p.close();
  }
});

test('pool: silent and half-ClientHello clients hold no card; a normal client goes first; deadlines release them', async () => {
  // "first" is checked by the order of events (no slowloris closed, no deadline fired when the normal
  // client is done), not by a clock; the deadline is long enough for a loaded machine to serve it.
  const p = await startPool(cards, { backlog: 1024, handshakeTimeoutMs: 8000 });
  try {
    const assigned: number[] = [];
    p.pool.on('assigned', (a: { slot: number }) => assigned.push(a.slot));
    // a real ClientHello, to cut in half
    const hello = await new Promise<Buffer>((resolve) => {
      const srv = net.createServer((s) => s.once('data', (d: Buffer) => { resolve(d); s.destroy(); srv.close(); }));
      srv.listen(0, '127.0.0.1', () => {
        const c = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
        c.on('error', () => undefined);
      });
    });
    const loris: net.Socket[] = [];
    for (let i = 0; i < 100; i++) {
      const s = net.connect(p.port, '127.0.0.1');
      s.on('error', () => undefined);
      if (i % 2) s.write(hello.subarray(0, Math.floor(hello.length / 2)));
      loris.push(s);
    }
    await waitUntil(() => p.pool.queued === 100, 'all 100 slowloris connections in the peek stage');
    assert.equal(p.pool.inUse, 0, 'no card held by slowloris');
    assert.deepEqual(assigned, [], 'no slot ever assigned to a slowloris connection');
    const r = await get(p.port, cards.ca, '/normal');
    assert.deepEqual(r, { status: 200, body: 'ok /normal 0' });
    const closed = loris.filter((s) => s.destroyed || s.readableEnded).length;
    assert.equal(closed, 0, 'slowloris still open while the normal client was served (before their deadlines)');
    assert.deepEqual(p.errors.map((e) => (e as Error & { code?: string }).code), [], 'no deadline fired before the normal client was done');
    assert.equal(assigned.length, 1, 'only the normal client got a slot');
    await Promise.all(loris.map((s) => new Promise((res) => (s.destroyed ? res(null) : s.once('close', res)))));
    assert.equal(p.pool.queued, 0, 'deadlines released them');
    assert.equal(p.errors.length, 100);
    assert.ok(p.errors.every((e) => (e as Error & { code?: string }).code === 'ERR_HOST_HANDSHAKE_TIMEOUT'));
  } finally {
    await p.close();
  }
});

test('pool: backlog full → the ClientHellos beyond it get a plaintext internal_error alert (the overload answer)', async () => {
  // the deadlines only have to outlast the test: held sessions stay, queued connections stay queued
  const p = await startPool(cards, { backlog: 3, handshakeTimeoutMs: 60_000, idleTimeoutMs: 60_000, busyIdleTimeoutMs: 60_000, maxHoldMs: 0 });
  const socks: tls.TLSSocket[] = [];
  try {
    let refused = 0;
    p.pool.on('refused', () => refused++);
    const open = (): Promise<tls.TLSSocket> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: p.port, ca: cards.ca, servername: 'localhost' }, () => resolve(s));
        s.once('error', reject);
      });
    // both cards held by established, idle sessions
    socks.push(await open(), await open());
    await waitUntil(() => p.pool.inUse === 2, 'both slots held');
    const alerts: string[] = [];
    for (let i = 0; i < 6; i++) {
      const s = tls.connect({ host: '127.0.0.1', port: p.port, ca: cards.ca, servername: 'localhost' });
      s.on('error', (e: Error & { code?: string }) => alerts.push(e.code ?? e.message));
      socks.push(s);
    }
    // every connection accounted for (queued or answered): nothing can change any more
    await waitUntil(() => refused + p.pool.readyCount === 6, () => `all 6 connections queued or answered (${refused} + ${p.pool.readyCount})`);
    assert.equal(refused, 3);
    assert.equal(p.pool.readyCount, 3);
    await waitUntil(() => alerts.length === 3, () => `the 3 answered clients saw the alert (${alerts.join(',')})`);
    assert.deepEqual(alerts, Array(3).fill('ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR'), 'a TLS internal_error alert, not a reset');
    assert.equal(p.pool.readyCount, 3, 'still 3 queued');
    assert.equal(p.pool.stats.overloaded, 3);
  } finally {
    for (const s of socks) s.destroy();
    await p.close();
  }
});

async function resumeOn(p: Awaited<ReturnType<typeof startPool>>, version: 'TLSv1.2' | 'TLSv1.3') {
  const slots: number[] = [];
  p.pool.on('assigned', (a: { slot: number }) => slots.push(a.slot));
  const connect = (session?: Buffer) =>
    new Promise<{ session: Buffer | undefined; reused: boolean }>((resolve, reject) => {
      let ticket: Buffer | undefined;
      const c = tls.connect({ host: '127.0.0.1', port: p.port, ca: cards.ca, servername: 'localhost', minVersion: version, maxVersion: version, ...(session ? { session } : {}) });
      c.on('session', (s: Buffer) => (ticket = s));
      c.on('error', reject);
      c.on('secureConnect', () => {
        c.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      c.on('data', () => undefined);
      c.on('end', () => resolve({ session: ticket, reused: c.isSessionReused() }));
    });
  return { slots, connect };
}

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  test(`pool: ${version} resumption lands on the card that holds its ticket key`, async () => {
    const p = await startPool(cards, { backlog: 64 });
    try {
      const { slots, connect } = await resumeOn(p, version);
      // warm up: one full handshake + one resumption per card teaches the pool where each key lives
      const first = await connect();
      assert.ok(first.session, 'a ticket');
      let s = first.session!;
      for (let i = 0; i < 3; i++) s = (await connect(s)).session ?? s;
      const before = slots.length;
      let reused = 0;
      for (let i = 0; i < 6; i++) {
        const r = await connect(s);
        if (r.reused) reused++;
        s = r.session ?? s;
      }
      assert.equal(reused, 6, `every resumption after warm-up resumed (slots ${slots.slice(before).join(',')}, keys ${[...p.pool.keyHome].join(' ')})`);
    } finally {
      await p.close();
    }
  });
}
