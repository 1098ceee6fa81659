// Load test: 1000 concurrent TLS clients (the bench load generator, bench/client.ts, in a child
// process, loopback only) against a TlsPool of 4 emulated cards × 4 logical channels
// (channelsPerCard: 4, i.e. 16 slots; the sessions of one card interleave APDU by APDU on its
// channels) with backlog 1024. Every client does a full TLS 1.3 handshake and GET /bytes/4096; every
// body is checked byte by byte against the demo plug's pattern. Asserts: no failed handshake, no
// server-side session error or refusal, every body correct, every card and channel used. Prints
// throughput and p50/p99 via t.diagnostic (no timing assertions: shared machine).
//
// Record layer: in the card (the default, no export). The pool's handshake deadline is raised to
// 100 s: with 1000 clients queued at once behind 16 slots, the last ones wait for ~1000/16 handshakes
// before theirs starts, which can exceed the 10 s default on a busy 2-core machine; the point here is
// that none is lost, not how long the queue takes. Bounded: the job stops starting connections after
// 100 s and each connection gives up after 60 s; the test times out at 150 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { initCard, openCard } from '../../src/cli/card-setup.js';
import { cardPaths, cloneCardFiles, readPin } from '../../src/cli/card-files.js';
import { TlsPool } from '../../src/host/index.js';
import { serveHttps, createPlugHandler, createPlugState } from '../../src/servers/https/index.js';
import type { JobResult } from '../../bench/protocol.js';

const CLIENTS = 1000;
const CARDS = 4;
const CHANNELS = 4;
const BODY = 4096;

test(`${CLIENTS} concurrent clients against a TlsPool of ${CARDS} cards × ${CHANNELS} channels (backlog 1024): every handshake and body correct`, { timeout: 150_000 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'setls-load-'));
  const closers: (() => Promise<void> | void)[] = [() => rmSync(root, { recursive: true, force: true })];
  try {
    const cardDir = join(root, 'card');
    const init = await initCard({ cardDir });
    const ca = readFileSync(init.caCertPath, 'utf8');
    // 4 cards with the same identity: clones of the state folder (as `serve https --pool 4`)
    const src = cardPaths(cardDir);
    const dirs = [cardDir];
    for (let i = 1; i < CARDS; i++) {
      const d = cardPaths(`${src.dir}-pool${i}`);
      cloneCardFiles(src, d);
      dirs.push(d.dir);
    }
    const opened = dirs.map((d) => openCard({ cardDir: d }));
    closers.unshift(async () => {
      for (const c of opened) {
        await c.transport.close();
        c.card.close();
      }
    });
    const pool = new TlsPool({
      transports: opened.map((c) => c.transport),
      pins: dirs.map((d) => readPin(cardPaths(d).pinFile)),
      channelsPerCard: CHANNELS,
      backlog: 1024,
      handshakeTimeoutMs: 100_000,
    });
    await pool.start();
    const serverErrors: string[] = [];
    let refused = 0;
    pool.on('sessionError', (e: Error & { code?: string }) => serverErrors.push(e.code ?? e.message));
    pool.on('refused', () => refused++);
    const http = serveHttps(pool, createPlugHandler(createPlugState()));
    const server = pool.listen(0, '127.0.0.1');
    closers.unshift(async () => {
      await pool.close();
      http.close();
    });
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;

    // the load generator: its own process, one job
    const cfg = JSON.stringify({ ca, servername: 'localhost', host: '127.0.0.1' });
    const child = spawn(process.execPath, ['--import', 'tsx', join('bench', 'client.ts'), cfg], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    closers.unshift(() => {
      if (child.exitCode === null) child.kill();
    });
    const lines = createInterface({ input: child.stdout });
    const resultP = new Promise<JobResult>((resolve, reject) => {
      lines.on('line', (l) => {
        try {
          resolve(JSON.parse(l) as JobResult);
        } catch {
          /* not ours */
        }
      });
      child.once('exit', (code) => reject(new Error(`load generator exited ${code}: ${stderr}`)));
    });
    child.stdin.write(JSON.stringify({ id: 1, kind: 'bulk', port, n: CLIENTS, bytes: BODY, concurrency: CLIENTS, maxMs: 100_000, checkBody: true }) + '\n');
    const r = await resultP;
    child.stdin.end();

    t.diagnostic(
      `${r.ok}/${r.n} clients ok in ${(r.wallMs / 1000).toFixed(1)} s (${((r.ok / r.wallMs) * 1000).toFixed(1)} conn/s); ` +
        `latency p50 ${r.p50Ms.toFixed(0)} ms, p99 ${r.p99Ms.toFixed(0)} ms; handshake p99 ${[...r.handshakeMs].sort((a, b) => a - b)[Math.max(0, Math.ceil(0.99 * r.handshakeMs.length) - 1)]?.toFixed(0)} ms; ` +
        `slots used (${pool.slots.length}): ${pool.slots.map((s) => `${s.name}=${s.sessions}`).join(' ')}`,
    );
    assert.deepEqual(r.errors, [], 'client-side failures');
    assert.equal(r.n, CLIENTS, 'every client started (the time bound was not hit)');
    assert.equal(r.ok, CLIENTS, 'every handshake completed and every body was correct');
    assert.equal(r.resumed, 0);
    assert.equal(r.bodyBytes, CLIENTS * BODY);
    assert.equal(refused, 0, 'no connection refused (backlog 1024)');
    assert.deepEqual(serverErrors, [], 'no session error on the server');
    assert.equal(pool.slots.length, CARDS * CHANNELS);
    assert.ok(pool.slots.every((s) => s.sessions > 0), 'every card and channel served');
  } finally {
    for (const c of closers) await c();
  }
});
