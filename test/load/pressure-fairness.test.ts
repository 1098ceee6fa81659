// Issue #14, DTLS and TLS sharing the card: `serve coap`'s wiring (startCoap: coaps+tcp on TCP, coaps
// on UDP, HTTPS on a second port, the demo PSK) with ONE serving channel — the hardest case, where
// the two transports must take turns on a single card session — and real clients (libcoap's
// coap-client-openssl, openssl s_client -dtls1_2, node:tls). Each scenario of the issue now serves
// the other transport's client:
//   - a half-open DTLS association (ClientHello, cookie, ClientHello with the cookie, then silence)
//     → a coaps+tcp GET is served (the association's stalled handshake gives the channel back)
//   - an idle coaps+tcp connection → a coaps (DTLS) GET is served
//   - an open, idle DTLS session → a coaps+tcp GET is served
//   - a DTLS client killed without close_notify → coaps+tcp and coaps GETs are served
//   - a DTLS client with a wrong PSK (its Finished never authenticates: DTLS drops it silently)
//     → the next DTLS client is served
// and, with the default channels: a DTLS association on channel 1 leaves channel 0's TLS session
// alone (its RESET-STATE goes to its own channel): a keep-alive HTTPS connection still works after it;
// a DTLS flood from one address that holds every channel gives one back at once when another peer
// waits (fair share: a handshake of a peer over its share is preempted).
// Before the scheduler each of the first five blocked the other client for 17–30 s (the handshake or
// idle deadline): here every client gets its answer while coap-client still waits for it (-B 20, less
// than those 30 s) — a bound on a hang, not a measurement.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { initCard } from '../../src/cli/card-setup.js';
import { DEMO_PSK_IDENTITY, demoPskKey, startCoap, type RunningCoap } from '../../src/cli/serve-coap.js';
import type { DtlsAssociation } from '../../src/host/dtls/index.js';
import { run } from '../interop/helpers.js';
import { requirePeer } from '../interop/peers.js';
import { waitUntil } from '../wait.js';
import { Agent, legitGet } from './pressure-helpers.js';

let root: string;
let cardDir: string;
let ca: string;
let psk: string;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'setls-fair-'));
  cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  ca = readFileSync(init.caCertPath, 'utf8');
  psk = demoPskKey(cardDir);
});
after(() => rmSync(root, { recursive: true, force: true }));

async function serve(channels?: number): Promise<RunningCoap> {
  return startCoap({ cardDir, port: 0, httpsPort: 0, host: '127.0.0.1', backlog: 1024, demoPsk: true, fixAlpn: true, ...(channels !== undefined ? { channels } : {}) }, pino({ level: 'silent' }));
}

/**
 * coap-client-openssl GET /status with the demo PSK; resolves with its stdout (the JSON). It waits
 * `waitS` (-B) for its answer: 20 s is twenty times what the scheduler needs here and less than
 * the 30 s the server without it made the second client wait.
 */
async function coapGet(url: string, key = psk, waitS = 20): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run('coap-client-openssl', ['-B', String(waitS), '-u', DEMO_PSK_IDENTITY, '-k', key, '-m', 'get', `${url}/status`], { timeoutMs: (waitS + 15) * 1000 });
}

/** A DTLS association left half-open: ClientHello, the cookie, ClientHello with the cookie, the server's flight, silence. */
async function halfOpenDtls(port: number): Promise<() => void> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const random = randomBytes(32);
  const hello = (cookie: Buffer, seq: number): Buffer => {
    const suites = Buffer.from([0, 2, 0xc0, 0xa8]); // TLS_PSK_WITH_AES_128_CCM_8
    const ems = Buffer.from([0, 0x17, 0, 0]);
    const body = Buffer.concat([Buffer.from([0xfe, 0xfd]), random, Buffer.from([0, cookie.length]), cookie, suites, Buffer.from([1, 0, 0, ems.length]), ems]);
    const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff, 0, seq, 0, 0, 0, 0, body.length >> 8, body.length & 0xff]), body]);
    return Buffer.concat([Buffer.from([22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, seq, hs.length >> 8, hs.length & 0xff]), hs]);
  };
  const flight = new Promise<void>((resolve) => {
    s.on('message', (m: Buffer) => {
      if (m[0] === 22 && m[13] === 3) {
        const n = m[27]!;
        s.send(hello(Buffer.from(m.subarray(28, 28 + n)), 1), port, '127.0.0.1');
      } else if (m[0] === 22) resolve();
    });
  });
  s.send(hello(Buffer.alloc(0), 0), port, '127.0.0.1');
  await flight;
  return () => s.close();
}

/** openssl s_client -dtls1_2 with the demo PSK: an established association kept open (stdin stays open). */
function dtlsSession(port: number): ChildProcess {
  const p = spawn('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${port}`, '-psk', Buffer.from(psk, 'ascii').toString('hex'), '-psk_identity', DEMO_PSK_IDENTITY, '-cipher', 'PSK-AES128-CCM8', '-quiet'], { stdio: ['pipe', 'ignore', 'ignore'] });
  p.on('error', () => undefined);
  return p;
}

function sessionOf(r: RunningCoap): Promise<DtlsAssociation> {
  return new Promise((resolve) => r.dtls!.once('session', (a: DtlsAssociation) => resolve(a)));
}

const coapTcp = (r: RunningCoap): string => `coaps+tcp://127.0.0.1:${r.coapPort}`;
const coapUdp = (r: RunningCoap): string => `coaps://127.0.0.1:${r.dtlsPort}`;

test('one channel: a half-open DTLS association does not keep a coaps+tcp client out', { timeout: 120_000 }, async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const r = await serve(1);
  try {
    const stop = await halfOpenDtls(r.dtlsPort!);
    assert.equal(r.pool.inUse, 1, 'the association holds the only channel');
    const got = await coapGet(coapTcp(r));
    stop();
    assert.match(got.stdout, /"transport":"coaps\+tcp"/, got.stderr);
    assert.ok(r.dtls!.stats.stalled >= 1, 'the stalled DTLS handshake gave its channel back');
  } finally {
    await r.close();
  }
});

test('one channel: an idle coaps+tcp connection does not make DTLS GETs fail', { timeout: 120_000 }, async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const r = await serve(1);
  const idle = tls.connect({ host: '127.0.0.1', port: r.coapPort, ca, servername: 'localhost', ALPNProtocols: ['coap'] });
  idle.on('error', () => undefined);
  try {
    await once(idle, 'secureConnect');
    await waitUntil(() => r.pool.inUse === 1, 'the idle coaps+tcp session holds the only channel');
    const got = await coapGet(coapUdp(r));
    assert.match(got.stdout, /"transport":"coaps"/, got.stderr);
  } finally {
    idle.destroy();
    await r.close();
  }
});

test('one channel: an open, idle DTLS session does not keep a coaps+tcp client waiting; nor does one killed without close_notify', { timeout: 180_000 }, async (t) => {
  if (!requirePeer(t, 'coap-client-openssl') || !requirePeer(t, 'openssl')) return;
  const r = await serve(1);
  const clients: ChildProcess[] = [];
  try {
    // an idle, open DTLS session
    const open = sessionOf(r);
    clients.push(dtlsSession(r.dtlsPort!));
    await open;
    const got = await coapGet(coapTcp(r));
    assert.match(got.stdout, /"transport":"coaps\+tcp"/, got.stderr);
    // a DTLS client killed without close_notify: both transports served afterwards
    const next = sessionOf(r);
    const killed = dtlsSession(r.dtlsPort!);
    clients.push(killed);
    await next;
    killed.kill('SIGKILL');
    const tcp = await coapGet(coapTcp(r));
    assert.match(tcp.stdout, /"transport":"coaps\+tcp"/, tcp.stderr);
    const udp = await coapGet(coapUdp(r));
    assert.match(udp.stdout, /"transport":"coaps"/, udp.stderr);
  } finally {
    for (const c of clients) c.kill('SIGKILL');
    await r.close();
  }
});

test('one channel: a DTLS client with a wrong PSK does not block the next DTLS client beyond the stall deadline', { timeout: 180_000 }, async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const r = await serve(1);
  try {
    // positive control
    assert.match((await coapGet(coapUdp(r))).stdout, /"transport":"coaps"/);
    const stalled0 = r.dtls!.stats.stalled;
    // the wrong key: its Finished never authenticates, DTLS drops it, the handshake stalls
    const wrong = coapGet(coapUdp(r), 'not-the-demo-key-at-all!', 10);
    await waitUntil(() => r.pool.inUse === 1 && r.dtls!.size === 1, 'the wrong-PSK association holds the only channel');
    const got = await coapGet(coapUdp(r));
    assert.match(got.stdout, /"transport":"coaps"/, got.stderr);
    assert.ok(r.dtls!.stats.stalled > stalled0, 'the wrong-PSK handshake was abandoned as stalled');
    const w = await wrong;
    assert.doesNotMatch(w.stdout, /"transport"/, 'the wrong key got nothing');
  } finally {
    await r.close();
  }
});

test('default channels: a DTLS association on channel 1 leaves the TLS session on channel 0 working (RESET-STATE on its own channel)', { timeout: 120_000 }, async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const r = await serve();
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port: r.httpsPort!, path: '/status', ca, servername: 'localhost', agent }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
  try {
    assert.ok(r.pool.slots.length >= 2, 'at least two channels');
    assert.equal((await get()).status, 200);
    assert.equal(r.pool.inUse, 1, 'the keep-alive HTTPS session holds channel 0');
    assert.equal(r.pool.slots[0]!.busy, true);
    const udp = await coapGet(coapUdp(r));
    assert.match(udp.stdout, /"transport":"coaps"/, udp.stderr);
    const again = await get();
    assert.equal(again.status, 200, 'the same keep-alive TLS session still works after the DTLS association');
    assert.equal(r.pool.slots[0]!.sessions, 1, 'on the same session (no new handshake on channel 0)');
  } finally {
    agent.destroy();
    await r.close();
  }
});

test('default channels: a DTLS flood from one address holding every channel gives one back at once to another peer (fair share)', { timeout: 120_000 }, async () => {
  const r = await serve();
  const flood = new Agent({ mode: 'dtls-flood', port: r.dtlsPort!, count: 8, localAddress: '127.0.0.5' });
  try {
    await flood.ready();
    await waitUntil(() => r.pool.slots.every((s) => s.holder === 'dtls' && s.peer === '127.0.0.5'), 'the flood holds every channel');
    const got = await legitGet(r.httpsPort!, ca);
    assert.equal(got.status, 200);
    assert.ok(r.dtls!.stats.preempted >= 1, `a flood handshake gave its channel back (preempted ${r.dtls!.stats.preempted})`);
  } finally {
    await flood.stop();
    await r.close();
  }
});
