// Issue #14, "nobody is refused under normal load": the default `setls serve https` (one emulated
// card, the CLI's defaults, a process of its own) and 300 concurrent node:tls clients handshaking in
// a loop (TLS 1.3, certificate verified; bench/pressure-agent.ts in a third process, so the load is
// separate). Every connection must complete its handshake: no "backlog full" refusal, no overload
// answer, no reset — the connections beyond the card's channels queue (their ClientHello read, their
// data not) and the queue drains well within the handshake deadline. The server's own counters
// (--admin-port metrics) must agree: no overloaded / evicted / peer_limit event.
// Before the scheduler (TlsTandem, backlog 50) about half the handshakes failed ("backlog full").
// Behaviour only: the handshake rate and latency go to the test's diagnostics, nothing is timed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCard } from '../../src/cli/card-setup.js';
import { skipOrFail } from '../ci.js';
import { waitUntil } from '../wait.js';
import { Agent, metricSum, openFilesLimit, runServer, scrape } from './pressure-helpers.js';

const CLIENTS = 300;
const TOTAL = 1500;

test(`default serve https, one card: ${CLIENTS} concurrent looping TLS 1.3 clients, ${TOTAL} handshakes → 0 failures, nothing refused`, { timeout: 600_000 }, async (t) => {
  // the server holds up to 300 client connections plus lingering ones; the agent as many
  if (!skipOrFail(t, openFilesLimit() < 2048 ? `open files limit ${openFilesLimit()} < 2048 (raise the hard limit: ulimit -Hn)` : undefined)) return;
  const root = mkdtempSync(join(tmpdir(), 'setls-pressure-'));
  const cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  const ca = readFileSync(init.caCertPath, 'utf8');
  const server = await runServer(['serve', 'https', '--card-dir', cardDir, '--port', '0', '--admin-port', '0']);
  try {
    const agent = new Agent({ mode: 'loop', port: server.https, ca, clients: CLIENTS, total: TOTAL });
    const r = (await agent.done()) as { completed: number; failed: number; errors: Record<string, number>; handshakesPerSec: number; p50Ms: number; p99Ms: number; wallMs: number };
    t.diagnostic(`${r.completed} handshakes in ${(r.wallMs / 1000).toFixed(1)} s: ${r.handshakesPerSec.toFixed(0)}/s, latency p50 ${r.p50Ms.toFixed(0)} ms p99 ${r.p99Ms.toFixed(0)} ms`);
    assert.deepEqual(r.errors, {}, `client errors: ${JSON.stringify(r.errors)}\n${server.out().slice(-3000)}`);
    assert.equal(r.failed, 0);
    assert.equal(r.completed, TOTAL);
    // the server finishes the last sessions after the clients saw their handshakes complete
    let m = '';
    await waitUntil(async () => metricSum((m = await scrape(server.adminPort!)), /^setls_handshakes_total\{.*result="ok"/) >= TOTAL, () => `the server to count ${TOTAL} handshakes:\n${m}`, 60_000, 200);
    for (const ev of ['overloaded', 'evicted', 'peer_limit', 'refused']) assert.equal(metricSum(m, new RegExp(`^setls_sessions_total\\{event="${ev}"\\}`)), 0, `no '${ev}' session event`);
    assert.equal(metricSum(m, /^setls_handshakes_total\{.*result="ok"/), TOTAL, 'the server counted every handshake');
    assert.equal(metricSum(m, /^setls_handshakes_total\{.*result="failed"/), 0);
  } finally {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
});
