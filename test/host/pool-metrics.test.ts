// setls serve https --cards … --admin-port: the pool behind one listener through the CLI code path,
// and Prometheus /metrics on 127.0.0.1 whose counters move with traffic.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import pino from 'pino';
import { startHttps } from '../../src/cli/serve.js';
import { makeCards, get, type PoolCards } from './pool-helpers.js';

let cards: PoolCards;
before(async () => {
  cards = await makeCards(2);
});
after(() => cards.cleanup());

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
}

function value(text: string, re: RegExp): number {
  return text.split('\n').filter((l) => re.test(l)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

test('serve https --cards A,B --admin-port: pool serves, /metrics counters move', async () => {
  const saved = process.env.SETLS_PIN;
  delete process.env.SETLS_PIN;
  const running = await startHttps(
    { cardDir: cards.dirs[0]!, cards: cards.dirs.join(','), port: 0, host: '127.0.0.1', backlog: 32, adminPort: 0 },
    pino({ level: 'silent' }),
  );
  try {
    // every card's logical channels serve: 4 on the emulated card, 2 kept for its admin socket
    assert.equal(running.pool?.channelsPerCard, 2);
    assert.equal(running.pool?.slots.length, 4);
    const before = await scrape(running.adminPort!);
    assert.equal(value(before, /^setls_handshakes_total\{/), 0);
    const r = await Promise.all(Array.from({ length: 4 }, () => get(running.port, cards.ca, '/status')));
    for (const x of r) assert.equal(x.status, 200);
    const m = await scrape(running.adminPort!);
    assert.equal(value(m, /^setls_handshakes_total\{.*version="TLSv1.3".*result="ok"/), 4, m);
    assert.ok(value(m, /^setls_apdus_total\{/) > 4);
    assert.ok(value(m, /^setls_apdu_bytes_total\{/) > 1000);
    assert.ok(value(m, /^setls_apdu_duration_seconds_count/) > 4);
    assert.equal(value(m, /^setls_card_up\{/), 4);
    assert.ok(value(m, /^setls_card_busy_seconds_total\{/) > 0);
    assert.match(m, /^setls_queue_length 0$/m);
  } finally {
    await running.close();
    if (saved !== undefined) process.env.SETLS_PIN = saved;
  }
});
