// TlsPool: several emulated cards behind one listener — concurrency, peek-before-assign (slowloris),
// resumption affinity, backlog refusal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { makeCards, startPool, get, type PoolCards } from './pool-helpers.js';

let cards: PoolCards;
before(async () => {
  cards = await makeCards(2);
});
after(() => cards.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  const p = await startPool(cards, { backlog: 1024, handshakeTimeoutMs: 3000 });
  try {
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
    await sleep(300);
    assert.equal(p.pool.inUse, 0, 'no card held by slowloris');
    assert.equal(p.pool.queued, 100);
    const t0 = performance.now();
    const r = await get(p.port, cards.ca, '/normal');
    assert.deepEqual(r, { status: 200, body: 'ok /normal 0' });
    assert.ok(performance.now() - t0 < 2500, 'served before the deadlines');
    const closed = loris.filter((s) => s.destroyed || s.readableEnded).length;
    assert.equal(closed, 0, 'slowloris still open while the normal client was served');
    await Promise.all(loris.map((s) => new Promise((res) => (s.destroyed ? res(null) : s.once('close', res)))));
    assert.equal(p.pool.queued, 0, 'deadlines released them');
  } finally {
    await p.close();
  }
});

test('pool: backlog full → refused', async () => {
  const p = await startPool(cards, { backlog: 3, handshakeTimeoutMs: 2000 });
  try {
    let refused = 0;
    p.pool.on('refused', () => refused++);
    const socks = Array.from({ length: 6 }, () => {
      const s = net.connect(p.port, '127.0.0.1');
      s.on('error', () => undefined);
      return s;
    });
    await sleep(300);
    assert.equal(refused, 3);
    assert.equal(p.pool.queued, 3);
    for (const s of socks) s.destroy();
  } finally {
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
