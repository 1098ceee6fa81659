// TlsPool with card faults (FaultyTransport): a card that answers 6F00, never answers, or is pulled
// out mid-handshake leaves the pool; its client ends cleanly; the other card keeps serving; after a
// reset the card comes back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import tls from 'node:tls';
import { makeCards, startPool, get, type PoolCards } from './pool-helpers.js';
import { waitUntil, within } from '../wait.js';

let cards: PoolCards;
before(async () => {
  cards = await makeCards(2);
});
after(() => cards.cleanup());

// apduTimeoutMs is what turns a hung card into a fault; it is kept well above what an APDU of the
// emulated card takes on a loaded machine so the healthy card is never mistaken for a hung one.
for (const kind of ['6F00', 'timeout', 'removal'] as const) {
  test(`pool fault '${kind}' mid-handshake: client ends cleanly, other card serves, card back after reset`, async () => {
    const p = await startPool(cards, { backlog: 64, apduTimeoutMs: 1500, recoveryBackoffMs: 100, maxRecoveryBackoffMs: 200 });
    try {
      const health: string[] = [];
      p.pool.on('health', (h: { slot: number; health: string }) => health.push(`${h.slot}:${h.health}`));
      // the next session assigned to card 0 gets the fault as soon as it starts
      let armed = true;
      p.pool.on('assigned', (a: { slot: number }) => {
        if (!armed || a.slot !== 0) return;
        armed = false;
        if (kind === '6F00') p.faulty[0]!.failNext(1000);
        else if (kind === 'timeout') p.faulty[0]!.hang();
        else p.faulty[0]!.remove();
      });
      // a slow stream of clients while card 0 fails: they must all be served (by card 1 once card 0 is out)
      const victims: Promise<string>[] = [];
      for (let i = 0; i < 2; i++) {
        victims.push(
          new Promise((resolve) => {
            const c = tls.connect({ host: '127.0.0.1', port: p.port, ca: cards.ca, servername: 'localhost' });
            c.on('error', (e) => resolve(`error ${(e as Error & { code?: string }).code ?? e.message}`));
            c.on('secureConnect', () => c.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
            c.on('data', () => undefined);
            c.on('close', () => resolve('closed'));
          }),
        );
      }
      await within(Promise.all(victims), 'a client of the faulty card never ended');
      await waitUntil(() => health.includes('0:down'), () => `card 0 taken out (${health.join(' ')})`);
      const during = await Promise.all(Array.from({ length: 4 }, (_, i) => get(p.port, cards.ca, `/during${i}`)));
      during.forEach((r, i) => assert.equal(r.body, `ok /during${i} 0`));
      assert.equal(p.pool.slots[0]!.health as string, 'down');
      p.faulty[0]!.reset();
      await waitUntil(() => p.pool.slots[0]!.health === 'up', 'card 0 back after reset');
      const served = new Set<number>();
      p.pool.on('assigned', (a: { slot: number }) => served.add(a.slot));
      const afterR = await Promise.all(Array.from({ length: 6 }, (_, i) => get(p.port, cards.ca, `/after${i}`)));
      afterR.forEach((r, i) => assert.equal(r.body, `ok /after${i} 0`));
      assert.ok(served.has(0), 'card 0 serves again');
    } finally {
      p.faulty[0]!.reset();
      await p.close();
    }
  });
}

test('pool fault: card removed during an established card-record-layer session; other card session continues', async () => {
  const p = await startPool(cards, { backlog: 64, apduTimeoutMs: 1500, recoveryBackoffMs: 100 });
  try {
    const bySlot = new Map<number, tls.TLSSocket>();
    const slots: number[] = [];
    p.pool.on('assigned', (a: { slot: number }) => slots.push(a.slot));
    const open = async (): Promise<tls.TLSSocket> => {
      const c = tls.connect({ host: '127.0.0.1', port: p.port, ca: cards.ca, servername: 'localhost' });
      c.on('error', () => undefined);
      await once(c, 'secureConnect');
      return c;
    };
    const a = await open();
    const b = await open(); // both cards busy: a on one, b on the other
    bySlot.set(slots[0]!, a);
    bySlot.set(slots[1]!, b);
    assert.deepEqual([...bySlot.keys()].sort(), [0, 1]);
    p.faulty[0]!.remove();
    const victim = bySlot.get(0)!;
    const other = bySlot.get(1)!;
    victim.write('GET /v HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(once(victim, 'close'), 'the session on the pulled card never ended');
    let body = '';
    other.on('data', (d: Buffer) => (body += d.toString()));
    other.write('GET /o HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await once(other, 'end');
    assert.match(body, /ok \/o 0/);
  } finally {
    p.faulty[0]!.reset();
    await p.close();
  }
});
