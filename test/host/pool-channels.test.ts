// TlsPool over logical channels: one card × 4 channels serves concurrent HTTPS clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeCards, startPool, get, type PoolCards } from './pool-helpers.js';

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
    let maxInUse = 0;
    const used = new Set<number>();
    p.pool.on('assigned', (a: { slot: number }) => {
      used.add(a.slot);
      maxInUse = Math.max(maxInUse, p.pool.inUse);
    });
    const res = await Promise.all(Array.from({ length: 8 }, (_, i) => get(p.port, cards.ca, `/c${i}`)));
    res.forEach((r, i) => assert.deepEqual(r, { status: 200, body: `ok /c${i} 0` }));
    assert.equal(used.size, 4, 'every channel served');
    assert.ok(maxInUse >= 2 && maxInUse <= 4, `sessions at once: ${maxInUse}`);
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
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await Promise.all(Array.from({ length: 4 }, (_, i) => get(p.port, cards.ca, `/r${i}`).catch(() => undefined)));
      const up = p.pool.slots.filter((s) => s.health === 'up').length;
      if (up === 4 && res.every((r) => r?.body.startsWith('ok /r')) && p.cards[0]!.openChannels.length === 4) break;
      if (Date.now() > deadline) assert.fail(`slots up: ${up}, channels open: ${p.cards[0]!.openChannels.join(',')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await p.close();
  }
});

test('pool: channelsPerCard is checked', async () => {
  const { TlsPool } = await import('../../src/host/index.js');
  assert.throws(() => new TlsPool({ transports: [{} as never], pin: '1234', channelsPerCard: 0 }), RangeError);
  assert.throws(() => new TlsPool({ transports: [{} as never], pin: '1234', channelsPerCard: 21 }), RangeError);
});
