// TlsPool over logical channels: one card × 4 channels serves concurrent HTTPS clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import tls from 'node:tls';
import { makeCards, startPool, get, type PoolCards } from './pool-helpers.js';
import { waitUntil, within } from '../wait.js';

/** A TLS session through the pool, handshake done, nothing sent yet (it holds its slot). */
async function openHeld(port: number, ca: string): Promise<tls.TLSSocket> {
  const c = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
  await within(once(c, 'secureConnect'), 'a held session never completed its handshake');
  return c;
}

/** One HTTP/1.1 request with Connection: close on a held session; the whole answer. */
async function request(c: tls.TLSSocket, path: string): Promise<string> {
  let text = '';
  c.on('data', (d: Buffer) => (text += d.toString('latin1')));
  c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  await within(once(c, 'end'), `no end of the answer to ${path}`);
  c.destroy();
  return text;
}

let cards: PoolCards;
before(async () => {
  cards = await makeCards(1);
});
after(() => cards.cleanup());

test('pool: 1 card × 4 channels serves concurrent HTTPS clients, one slot per channel, every body right', async () => {
  const p = await startPool(cards, { backlog: 64, channelsPerCard: 4 });
  try {
    assert.equal(p.pool.slots.length, 4);
    assert.deepEqual(p.pool.slots.map((s) => [s.card, s.channel, s.name]), [
      [0, 0, 'card0/ch0'],
      [0, 1, 'card0/ch1'],
      [0, 2, 'card0/ch2'],
      [0, 3, 'card0/ch3'],
    ]);
    assert.deepEqual(p.cards[0]!.openChannels, [0, 1, 2, 3]);
    const used = new Set<number>();
    p.pool.on('assigned', (a: { slot: number }) => used.add(a.slot));
    // four sessions held open at once (handshake done, no request yet): one per channel, whatever
    // the scheduling; then each is served on its own channel
    const held = await Promise.all(Array.from({ length: 4 }, () => openHeld(p.port, cards.ca)));
    assert.equal(p.pool.inUse, 4, 'four sessions at once');
    assert.equal(used.size, 4, 'every channel has a session');
    const bodies = await Promise.all(held.map((c, i) => request(c, `/h${i}`)));
    bodies.forEach((b, i) => assert.match(b, new RegExp(`ok /h${i} 0$`)));
    const res = await Promise.all(Array.from({ length: 8 }, (_, i) => get(p.port, cards.ca, `/c${i}`)));
    res.forEach((r, i) => assert.deepEqual(r, { status: 200, body: `ok /c${i} 0` }));
    assert.deepEqual(p.errors, []);
  } finally {
    await p.close();
  }
});

test('pool: a card reset closes channels 1..3; the pool reopens them when the slots recover', async () => {
  const p = await startPool(cards, { backlog: 64, channelsPerCard: 4, recoveryBackoffMs: 20 });
  try {
    p.cards[0]!.reset();
    assert.deepEqual(p.cards[0]!.openChannels, [0]);
    // every slot notices at its next session; keep asking until all four are up and serving
    await waitUntil(
      async () => {
        const res = await Promise.all(Array.from({ length: 4 }, (_, i) => get(p.port, cards.ca, `/r${i}`).catch(() => undefined)));
        const up = p.pool.slots.filter((s) => s.health === 'up').length;
        return up === 4 && res.every((r) => r?.body.startsWith('ok /r')) && p.cards[0]!.openChannels.length === 4;
      },
      () => `slots up: ${p.pool.slots.filter((s) => s.health === 'up').length}, channels open: ${p.cards[0]!.openChannels.join(',')}`,
      30_000,
      50,
    );
  } finally {
    await p.close();
  }
});

test('pool: channelsPerCard is checked', async () => {
  const { TlsPool } = await import('../../src/host/index.js');
  assert.throws(() => new TlsPool({ transports: [{} as never], pin: '1234', channelsPerCard: 0 }), RangeError);
  assert.throws(() => new TlsPool({ transports: [{} as never], pin: '1234', channelsPerCard: 21 }), RangeError);
});
