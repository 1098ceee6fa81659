// The hold limit on a real card (serve https's pool, one channel): a keep-alive HTTPS client that
// keeps the card busy (a GET every 50 ms: never idle) holds the only channel as long as nobody
// waits. Once another client waits, after `holdMs` of card time the session is cut:
//  - identity policy allows export: EXPORT-SESSION mid-session — the SAME connection goes on with its
//    record layer on the host (its next GETs succeed, no new handshake), the card serves the other;
//  - export not allowed (the default): the session is closed with close_notify, the other is served.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { initCard, openCard, readOperatorPin } from '../../src/cli/card-setup.js';
import { startHttps } from '../../src/cli/serve.js';
import { cardPaths } from '../../src/cli/card-files.js';
import { CardClient } from '../../src/host/index.js';
import { waitUntil } from '../wait.js';

let root: string;
let cardDir: string;
let ca: string;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'setls-hold-'));
  cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  ca = readFileSync(init.caCertPath, 'utf8');
});
after(() => rmSync(root, { recursive: true, force: true }));

async function exportPolicy(allowed: boolean): Promise<void> {
  const { transport, card } = openCard({ cardDir });
  try {
    const c = new CardClient(transport);
    await c.select();
    await c.verifyPin(readOperatorPin(cardPaths(cardDir)), 'operator');
    await c.putIdentityPolicy({ label: 'default', exportAllowed: allowed });
  } finally {
    await transport.close();
    card.close();
  }
}

function get(port: number, agent: https.Agent | false): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/status', ca, servername: 'localhost', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
  });
}

for (const exportAllowed of [true, false]) {
  test(`hold limit, export ${exportAllowed ? 'allowed: the busy session moves to the host and goes on' : 'not allowed: the busy session is closed with close_notify'}; the waiting client gets the card`, { timeout: 120_000 }, async () => {
    await exportPolicy(exportAllowed);
    const running = await startHttps({ cardDir, port: 0, host: '127.0.0.1', backlog: 1024, channels: 1, holdMs: 300 }, pino({ level: 'silent' }));
    const pool = running.pool!;
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    let busy = true;
    const busyResults: { status: number; reused: boolean }[] = [];
    try {
      assert.equal(pool.slots.length, 1);
      busyResults.push(await get(running.port, agent));
      let failed = 0;
      const loop = (async () => {
        while (busy) {
          // closed with close_notify while a request was on its way: that request fails (once), the next reconnects
          busyResults.push(await get(running.port, agent).catch(() => (failed++, { status: 0, reused: false })));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      // alone, the busy client keeps the card well past the hold limit
      await waitUntil(() => busyResults.length >= 12, 'the busy client served repeatedly');
      assert.deepEqual(pool.stats.cutExported + pool.stats.cutClosed, 0, 'not cut while nobody waits');
      assert.ok(busyResults.every((r, i) => r.status === 200 && (i === 0 || r.reused)), 'one keep-alive connection so far');
      const other = await get(running.port, false);
      assert.equal(other.status, 200, 'the waiting client is served');
      await waitUntil(() => pool.stats.cutExported + pool.stats.cutClosed >= 1, 'the busy session was cut');
      const n = busyResults.length;
      await waitUntil(() => busyResults.length >= n + 5, 'the busy client goes on');
      busy = false;
      await loop;
      assert.ok(failed <= (exportAllowed ? 0 : 1), `GETs of the busy client that failed: ${failed}`);
      assert.ok(busyResults.filter((r) => r.status !== 200).length === failed, 'every other GET answered 200');
      if (exportAllowed) {
        assert.equal(pool.stats.cutExported, 1, 'exported (TLS-Tandem): the host took the record layer');
        assert.equal(pool.stats.cutClosed, 0);
        assert.ok(busyResults.slice(1).every((r) => r.reused), 'the same connection throughout: no new handshake');
        assert.equal(pool.exportedSessions, 1, 'its record layer runs on the host');
      } else {
        assert.equal(pool.stats.cutExported, 0);
        assert.ok(pool.stats.cutClosed >= 1, 'closed with close_notify');
        assert.ok(busyResults.slice(n).some((r) => !r.reused), 'the busy client had to reconnect');
      }
    } finally {
      busy = false;
      agent.destroy();
      await running.close();
    }
  });
}
