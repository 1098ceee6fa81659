/**
 * DTLS under loss: openssl s_client ↔ lossy relay ↔ host DtlsServer (+ the DTLS engine as the key
 * holder). The relay drops, duplicates and reorders datagrams during the handshake (with a 300-byte
 * path MTU so the certificate flight is fragmented) and during transfers; the handshake completes,
 * each line arrives exactly once. Replayed and tampered records and garbage are dropped silently.
 * Negative checks wait on a barrier, not a clock: a datagram sent after the ones that must be dropped
 * (same socket, loopback, one association processes its datagrams in order) is delivered, and only
 * then is "nothing else arrived" checked.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePki, type TestPki } from '../tls/helpers/pki.js';
import { sClient, startEchoServer } from '../tls/helpers/dtls.js';
import { requirePeer } from '../interop/peers.js';
import { startRelay, type Verdict } from './dtls-relay.js';
import { parseDtlsRecords } from '../../src/tls/record/dtls-framing.js';
import { waitUntil } from '../wait.js';

let ec: TestPki;
let dir: string;
let caFile: string;
before(async () => {
  ec = await makePki('ecdsa');
  dir = mkdtempSync(join(tmpdir(), 'setls-dtls-loss-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ec.caPem);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const cfg = () => ({ selectIdentity: () => ec.identity, cipherSuites12: [0xc0ae, 0xc02b], groups: [0x0017] });

test('DTLS handshake completes through drops, duplicates and reordering (fragmented flights, 300-byte MTU)', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const srv = await startEchoServer(cfg(), { mtu: 300, initialTimeoutMs: 300 });
  // down: 0 = HelloVerifyRequest; 1.. = the fragmented server flight
  const down: Record<number, Verdict> = { 1: 'drop', 2: 'hold', 4: 'dup', 5: 'drop' };
  const up: Record<number, Verdict> = { 0: 'dup', 2: 'hold', 3: 'dup' };
  let finishedDropped = false;
  const relay = await startRelay(srv.port, (dir, i, d) => {
    // also lose the server's last flight (CCS + epoch-1 Finished) once: re-sent when the client repeats its flight
    if (dir === 'down' && !finishedDropped && parseDtlsRecords(new Uint8Array(d)).some((r) => r.epoch === 1)) {
      finishedDropped = true;
      return 'drop';
    }
    return (dir === 'down' ? down[i] : up[i]) ?? 'pass';
  });
  const c = sClient(relay.port, ['-cipher', 'ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0', '-CAfile', caFile, '-verify_return_error', '-mtu', '300']);
  try {
    await c.waitFor(/Cipher is ECDHE-ECDSA-AES128-CCM8/, 30000);
    const flightDatagrams = relay.log.filter((l) => l.dir === 'down').length;
    assert.ok(flightDatagrams > 4, `the server flight was fragmented (${flightDatagrams} datagrams)`);
    assert.ok(relay.log.every((l) => l.datagram.length <= 300 || l.dir === 'up'), 'server datagrams ≤ MTU');
    assert.ok(finishedDropped, 'the final flight was lost once');
    const a = srv.sessions[0]!;
    assert.ok(a.retransmissions >= 2, `the host retransmitted lost flights (${a.retransmissions})`);
    assert.equal(srv.engines.length, 1);
  } finally {
    await c.kill();
    await relay.close();
    await srv.close();
  }
});

test('DTLS transfers under loss: duplicated and reordered records are delivered once; replays and forgeries dropped', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const srv = await startEchoServer(cfg());
  let phase: 'handshake' | 'data' = 'handshake';
  const relay = await startRelay(srv.port, (dir, _i, d) => {
    if (phase !== 'data' || dir !== 'up') return 'pass';
    const r = parseDtlsRecords(new Uint8Array(d))[0];
    if (r?.type !== 23) return 'pass';
    return r.seq % 3 === 0 ? 'dup' : r.seq % 3 === 1 ? 'hold' : 'pass';
  });
  const c = sClient(relay.port, ['-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256', '-CAfile', caFile]);
  try {
    await c.waitFor(/Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/);
    phase = 'data';
    const appUp = () => relay.log.filter((l) => l.dir === 'up' && parseDtlsRecords(new Uint8Array(l.datagram))[0]?.type === 23).length;
    for (let i = 0; i < 6; i++) {
      c.write(`line ${i}\n`);
      // one record per line: the next line is written once this one left openssl
      await waitUntil(() => appUp() === i + 1, `line ${i} at the relay`);
    }
    await c.waitFor(/LINE 5/);
    await waitUntil(() => srv.received.length >= 6, 'six lines at the server');
    const got = srv.received.map((m) => new TextDecoder().decode(m)).sort();
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5].map((i) => `line ${i}\n`));
    const engine = srv.engines[0]!;
    assert.equal(engine.state, 'connected');

    // Replays of every application record the client sent, a forged tag, garbage: all dropped, no alert.
    const sent = relay.log.filter((l) => l.dir === 'up').map((l) => l.datagram).filter((d) => parseDtlsRecords(new Uint8Array(d))[0]?.type === 23);
    assert.ok(sent.length >= 6);
    for (const d of sent) relay.inject(d);
    const forged = Buffer.from(sent[sent.length - 1]!);
    forged.writeUIntBE(0x7fffffff, 5, 6); // a far-ahead sequence number
    forged[forged.length - 1]! ^= 1;
    relay.inject(forged);
    relay.inject(Buffer.from('not a dtls record at all'));
    relay.inject(Buffer.from([0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0x99, 0, 40, ...new Array(40).fill(7)]));
    // barrier: a new line, sent by the relay after the injected datagrams from the same socket. When
    // its echo is back the server has processed everything injected before it. It also shows the
    // window did not move for the forged record.
    phase = 'handshake'; // no more holding (a held last datagram would wait forever)
    c.write('after\n');
    await c.waitFor(/AFTER/);
    await waitUntil(() => srv.received.length >= 7, 'the barrier line at the server');
    assert.deepEqual(
      srv.received.slice(6).map((m) => new TextDecoder().decode(m)),
      ['after\n'],
      'nothing replayed, forged or garbage reached the application; only the new line',
    );
    assert.equal(engine.state, 'connected');
  } finally {
    await c.kill();
    await relay.close();
    await srv.close();
  }
});

test('a flood of ClientHellos without cookies costs no backend: only HelloVerifyRequests', async () => {
  const srv = await startEchoServer(cfg());
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  let answers = 0;
  let barrierAnswered = false;
  const BARRIER_SEQ = 0x777; // the HelloVerifyRequest echoes the ClientHello's record sequence number
  s.on('message', (m) => {
    const [r] = parseDtlsRecords(new Uint8Array(m));
    if (r?.type === 22 && r.fragment[0] === 3) {
      if (r.seq === BARRIER_SEQ) barrierAnswered = true;
      else answers++;
    }
  });
  // a minimal DTLS ClientHello: version FEFD, random, empty session id, empty cookie, one suite, null compression
  const body = Buffer.concat([Buffer.from([0xfe, 0xfd]), Buffer.alloc(32, 1), Buffer.from([0, 0, 0, 2, 0xc0, 0xae, 1, 0])]);
  const hs = Buffer.concat([Buffer.from([1, 0, 0, body.length, 0, 0, 0, 0, 0, 0, 0, body.length]), body]);
  const rec = Buffer.concat([Buffer.from([22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, hs.length]), hs]);
  for (let i = 0; i < 200; i++) s.send(rec, srv.port, '127.0.0.1');
  await waitUntil(() => answers > 150, () => `HelloVerifyRequests answered (${answers})`);
  // barrier: one more ClientHello after the flood (same socket: processed after it); when its
  // answer is back, every datagram of the flood that arrived has been handled
  const barrier = Buffer.from(rec);
  barrier.writeUIntBE(BARRIER_SEQ, 5, 6);
  s.send(barrier, srv.port, '127.0.0.1');
  await waitUntil(() => barrierAnswered, 'the answer to the ClientHello sent after the flood');
  assert.equal(srv.engines.length, 0, 'no backend opened');
  assert.equal(srv.server.size, 0);
  s.close();
  await srv.close();
});
