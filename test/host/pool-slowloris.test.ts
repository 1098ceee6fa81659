// TlsPool under a slowloris crowd: 500 loopback connections that send nothing or half a real
// ClientHello, against 2 cards × 2 logical channels with a handshake deadline of 8 s.
//  - they sit in the pool's peek stage: no card/channel is ever assigned to one of them (no slot
//    session is started for them, not just "none busy right now");
//  - a normal HTTPS client connects while all 500 are open and completes its request before any of
//    their deadlines fires (checked by order of events, not by a timing assertion: when the normal
//    client is done, no slowloris socket is closed and no handshake-timeout error was emitted);
//  - then the deadlines release them: all 500 sockets are closed by the server (each sees the
//    server's FIN before the test closes anything), 500 ERR_HOST_HANDSHAKE_TIMEOUT errors, queue empty.
// Bounded: every wait has a limit, the test times out at 90 s; every socket is destroyed in `finally`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { makeCards, startPool, get } from './pool-helpers.js';
import { waitUntil } from '../wait.js';

const LORIS = 500;
const DEADLINE_MS = 8000;


/** A real ClientHello (Node's), captured by a plain TCP listener on loopback. */
function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
        srv.close();
      });
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false });
      c.on('error', () => undefined);
      c.on('close', () => c.destroy());
    });
  });
}

test(`pool: ${LORIS} slowloris connections hold no card/channel; a normal client completes first; the deadlines release them`, { timeout: 90_000 }, async (t) => {
  const cards = await makeCards(2);
  const p = await startPool(cards, { backlog: 1024, handshakeTimeoutMs: DEADLINE_MS, channelsPerCard: 2 });
  const loris: net.Socket[] = [];
  let testClosing = false;
  try {
    const hello = await captureClientHello();
    assert.equal(hello[0], 0x16, 'a handshake record');
    const half = hello.subarray(0, Math.floor(hello.length / 2));
    const assigned: number[] = [];
    p.pool.on('assigned', (a: { slot: number }) => assigned.push(a.slot));

    // closed by the server: the socket saw the peer's end (or closed) before the test closed anything
    let closedByServer = 0;
    const t0 = performance.now();
    for (let i = 0; i < LORIS; i++) {
      const s = net.connect(p.port, '127.0.0.1');
      s.on('error', () => undefined);
      let counted = false;
      const byServer = (): void => {
        if (!counted && !testClosing) {
          counted = true;
          closedByServer++;
        }
      };
      s.once('end', byServer);
      s.once('close', byServer);
      if (i % 2) s.once('connect', () => s.write(half));
      loris.push(s);
    }
    await waitUntil(() => p.pool.queued === LORIS, () => `${LORIS} connections in the peek stage (${p.pool.queued})`, DEADLINE_MS);
    const allOpen = performance.now();
    assert.equal(p.pool.inUse, 0, 'no card/channel held by slowloris');
    assert.equal(p.pool.readyCount, 0, 'none has a complete ClientHello');
    assert.deepEqual(assigned, [], 'no slot ever assigned to a slowloris connection');

    const r = await get(p.port, cards.ca, '/normal');
    const served = performance.now();
    assert.deepEqual(r, { status: 200, body: 'ok /normal 0' });
    // before any deadline: every slowloris socket still open, no handshake-timeout error yet
    assert.equal(closedByServer, 0, 'no slowloris socket closed while the normal client was served');
    assert.equal(loris.filter((s) => s.destroyed || s.readableEnded).length, 0);
    assert.deepEqual(p.errors.map((e) => (e as Error & { code?: string }).code), [], 'no deadline fired yet');
    assert.equal(p.pool.queued, LORIS, 'the slowloris crowd is still queued in peek');
    assert.equal(assigned.length, 1, 'only the normal client got a slot');
    t.diagnostic(
      `${LORIS} slowloris open after ${(allOpen - t0).toFixed(0)} ms; normal client served ${(served - allOpen).toFixed(0)} ms later ` +
        `(${(served - t0).toFixed(0)} ms after the first connect; deadline ${DEADLINE_MS} ms)`,
    );

    // the deadlines release them: the server closes every socket
    await waitUntil(() => closedByServer === LORIS, () => `all ${LORIS} slowloris sockets closed by the server (${closedByServer})`, DEADLINE_MS + 30_000);
    const released = performance.now();
    assert.equal(p.pool.queued, 0, 'the peek stage is empty');
    assert.equal(p.pool.inUse, 0);
    const codes = p.errors.map((e) => (e as Error & { code?: string }).code);
    assert.equal(codes.length, LORIS);
    assert.ok(codes.every((c) => c === 'ERR_HOST_HANDSHAKE_TIMEOUT'), `only handshake deadlines: ${[...new Set(codes)].join(',')}`);
    assert.equal(assigned.length, 1, 'still no slot was ever assigned to a slowloris connection');
    assert.equal(p.pool.slots.reduce((n, s) => n + s.sessions, 0), 1);
    t.diagnostic(`all ${LORIS} released by the server ${(released - t0).toFixed(0)} ms after the first connect`);

    // the pool still serves after the crowd is gone
    assert.deepEqual(await get(p.port, cards.ca, '/after'), { status: 200, body: 'ok /after 0' });
  } finally {
    testClosing = true;
    for (const s of loris) s.destroy();
    await p.close();
    cards.cleanup();
  }
});
