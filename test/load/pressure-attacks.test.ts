// Issue #14, "no client may hold the card hostage": `setls demo` (one emulated card serving HTTPS,
// coaps+tcp and coaps/DTLS through one scheduler, its default settings, a process of its own) under
// each attack alone and all together, the attackers in processes of their own
// (bench/pressure-agent.ts):
//   idle       2000 TCP connections that never send a byte (reopened when the server closes them)
//   slowloris  500 connections sending a real ClientHello one byte a second (never completing it)
//   trickle    as many TLS sessions as the card has serving channels, each sending a 1-byte record
//              every 800 ms — never idle, so no idle deadline fires
//   dtls-flood 16 lanes of half-open DTLS associations: ClientHello, cookie, ClientHello with the
//              cookie, the server's flight, then silence — each holds a card channel until the stall
//              deadline; new ones keep coming
// Each attacker comes from an address of its own (127.0.0.2–5, as another host would; the per-peer
// limits then apply to it), the legitimate client from 127.0.0.1; a last run puts every attacker on
// the legitimate client's own address (behind one NAT): it must still be served.
// While the attack runs, a legitimate client makes fresh connections (full TLS 1.3 handshake, GET
// /status) — every one must complete (200). The tricklers, which hold every channel, must be cut once
// the legitimate client waits (the agent sees close_notify and FIN: the default card policy forbids
// export, so the session is closed rather than exported). Latencies go to the diagnostics; nothing is
// timed. Before the scheduler each of these locked the legitimate client out (refused, reset, or a
// wait of the handshake deadline × backlog).
// Open files: the server holds ~2600 sockets in the all-together run, the idle agent 2000: the hard
// limit must be ≥ 4096 (CI: `ulimit -Hn 8192` or more; Node raises the soft limit to the hard one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCard } from '../../src/cli/card-setup.js';
import { skipOrFail } from '../ci.js';
import { waitUntil } from '../wait.js';
import type { AgentConfig } from '../../bench/pressure-agent.js';
import { Agent, legitGet, openFilesLimit, percentile, runServer } from './pressure-helpers.js';

/** Serving channels of the demo's emulated card: 4, less the admin socket's 2. */
const CHANNELS = 2;
const LEGIT = 6;

type Attack = 'idle' | 'slowloris' | 'trickle' | 'dtls-flood';

/** Where each attacker connects from (sameAddress: all from the legitimate client's 127.0.0.1). */
const FROM: Record<Attack, string> = { idle: '127.0.0.2', slowloris: '127.0.0.3', trickle: '127.0.0.4', 'dtls-flood': '127.0.0.5' };

function attackConfig(a: Attack, port: { https: number; coap: number }, ca: string, sameAddress: boolean): AgentConfig {
  const localAddress = sameAddress ? '127.0.0.1' : FROM[a];
  switch (a) {
    case 'idle':
      return { mode: 'idle', port: port.https, count: 2000, localAddress };
    case 'slowloris':
      return { mode: 'slowloris', port: port.https, count: 500, byteMs: 1000, localAddress };
    case 'trickle':
      return { mode: 'trickle', port: port.https, ca, count: CHANNELS, everyMs: 800, localAddress };
    case 'dtls-flood':
      return { mode: 'dtls-flood', port: port.coap, count: 16, localAddress };
  }
}

async function underAttack(t: { diagnostic(s: string): void }, attacks: Attack[], sameAddress = false): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'setls-attack-'));
  const cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  const ca = readFileSync(init.caCertPath, 'utf8');
  const server = await runServer(['demo', '--card-dir', cardDir, '--port', '0', '--coap-port', '0'], { coap: true });
  const agents: Agent[] = [];
  try {
    const ports = { https: server.https, coap: server.coap! };
    // the positive control: served before the attack
    assert.equal((await legitGet(ports.https, ca)).status, 200);
    for (const a of attacks) agents.push(new Agent(attackConfig(a, ports, ca, sameAddress)));
    await Promise.all(agents.map((g, i) => g.ready().catch((e: Error) => Promise.reject(new Error(`${attacks[i]}: ${e.message} (last status ${JSON.stringify(g.last)})`)))));
    const trickler = agents[attacks.indexOf('trickle')];
    const lat: number[] = [];
    for (let i = 0; i < LEGIT; i++) {
      const r = await legitGet(ports.https, ca);
      assert.equal(r.status, 200, `legitimate GET ${i}: ${r.body}`);
      assert.match(r.body, /"device"/);
      lat.push(r.ms);
    }
    if (trickler) {
      // every channel was held by a trickler: the legitimate client waited, so the hold limit cut them
      await waitUntil(() => Number(trickler.last.cut ?? 0) >= 1, () => `a trickler cut with close_notify (${JSON.stringify(trickler.last)})`, 60_000);
      assert.equal(Number(trickler.last.errors ?? 0), 0, `tricklers end cleanly (close_notify, FIN), never by a reset: ${JSON.stringify(trickler.last)}`);
    }
    const sorted = [...lat].sort((a, b) => a - b);
    t.diagnostic(
      `under ${attacks.join(' + ')}${sameAddress ? ' (attackers on the same address)' : ''}: ${LEGIT} legitimate handshakes + GETs, latency p50 ${percentile(sorted, 50).toFixed(0)} ms max ${sorted.at(-1)!.toFixed(0)} ms; ` +
        agents.map((g, i) => `${attacks[i]} ${JSON.stringify(g.last)}`).join('; '),
    );
  } catch (e) {
    (e as Error).message += `\n--- server output ---\n${server.out().slice(-4000)}`;
    throw e;
  } finally {
    await Promise.all(agents.map((g) => g.stop()));
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

const fdReason = (): string | undefined => (openFilesLimit() < 4096 ? `open files limit ${openFilesLimit()} < 4096 (raise the hard limit: ulimit -Hn 8192)` : undefined);

for (const a of ['idle', 'slowloris', 'trickle', 'dtls-flood'] as const) {
  test(`demo under attack (${a}): a legitimate client completes handshakes and GETs`, { timeout: 300_000 }, async (t) => {
    if (!skipOrFail(t, fdReason())) return;
    await underAttack(t, [a]);
  });
}

test('demo under all attacks together (2000 idle, 500 slowloris, tricklers, DTLS half-open flood): a legitimate client completes handshakes and GETs', { timeout: 300_000 }, async (t) => {
  if (!skipOrFail(t, fdReason())) return;
  await underAttack(t, ['idle', 'slowloris', 'trickle', 'dtls-flood']);
});

test('demo under all attacks together, every attacker on the legitimate client\'s own address: it is still served', { timeout: 300_000 }, async (t) => {
  if (!skipOrFail(t, fdReason())) return;
  await underAttack(t, ['idle', 'slowloris', 'trickle', 'dtls-flood'], true);
});
