/**
 * DTLS 1.2 with the handshake and the record layer in the emulated card (docs/apdu-protocol.md §8):
 * openssl s_client -dtls1_2 ↔ host DtlsServer (HelloVerifyRequest, fragmentation, retransmission) ↔
 * CardDtlsBackends (PROCESS-EAP, RESET-STATE P2 01) ↔ card. Every DTLS suite (ECDHE-ECDSA CCM_8 and
 * GCM with the card's P-256 identity, PSK CCM_8 with a key put in by PUT-PSK), data both ways, and
 * the handshake plus transfers through a lossy relay (drops, duplicates, reordering, 300-byte MTU).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestCard, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import { sClient } from '../tls/helpers/dtls.js';
import { startRelay, type Verdict } from '../host/dtls-relay.js';
import { openCard, readOperatorPin } from '../../src/cli/card-setup.js';
import { cardPaths, readPin } from '../../src/cli/card-files.js';
import { CardClient, type CardTransport } from '../../src/host/index.js';
import { CardDtlsBackends, DtlsServer, type DtlsAssociation, type DtlsServerOptions } from '../../src/host/dtls/index.js';
import { parseDtlsRecords } from '../../src/tls/record/dtls-framing.js';

export const DTLS_PSK_ID = 'setls-dtls';
export const DTLS_PSK_KEY = Buffer.from('setls-dtls-psk-key-0123456789', 'ascii');

let card: TestCard;
let transport: CardTransport;
let closeCard: () => void;
let backends: CardDtlsBackends;

before(async () => {
  card = await makeTestCard();
  const opened = openCard({ cardDir: card.cardDir });
  transport = opened.transport;
  closeCard = () => opened.card.close();
  const admin = new CardClient(transport);
  await admin.select();
  await admin.verifyPin(readOperatorPin(card.init.paths), 'operator');
  await admin.putPolicy({ cipherSuites12: [0xc0ae, 0xc02b, 0xc0a8, 0xc02c, 0xcca9] });
  await admin.putPsk({ identity: DTLS_PSK_ID, key: new Uint8Array(DTLS_PSK_KEY) });
  backends = new CardDtlsBackends({ card: new CardClient(transport), pin: readPin(cardPaths(card.cardDir).pinFile) });
});

after(async () => {
  await transport?.close();
  closeCard?.();
  card?.cleanup();
});

async function echoServer(opts: Partial<DtlsServerOptions> = {}): Promise<{ server: DtlsServer; port: number; sessions: DtlsAssociation[]; received: string[] }> {
  const server = new DtlsServer({ openBackend: backends.openBackend, ...opts });
  const sessions: DtlsAssociation[] = [];
  const received: string[] = [];
  server.on('session', (a: DtlsAssociation) => {
    sessions.push(a);
    a.once('close', (why: string) => process.env.DTLS_DEBUG && console.error('association closed:', why));
    a.on('message', (m: Uint8Array) => {
      const s = Buffer.from(m).toString('latin1');
      received.push(s);
      void a.send(new Uint8Array(Buffer.from(s.toUpperCase(), 'latin1'))).catch(() => undefined);
    });
  });
  const { port } = await server.listen(0);
  return { server, port, sessions, received };
}

const SUITES: [string, string[]][] = [
  ['ECDHE-ECDSA-AES128-CCM8', ['-cipher', 'ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0']],
  ['ECDHE-ECDSA-AES128-GCM-SHA256', ['-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256']],
  ['PSK-AES128-CCM8', ['-cipher', 'PSK-AES128-CCM8:@SECLEVEL=0', '-psk', DTLS_PSK_KEY.toString('hex'), '-psk_identity', DTLS_PSK_ID]],
];

for (const [name, args] of SUITES) {
  test(`openssl s_client -dtls1_2 ${name} through the card: handshake, data both ways`, async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const srv = await echoServer();
    const opened = backends.stats.opened;
    const cert = name.startsWith('PSK') ? [] : ['-CAfile', card.init.caCertPath, '-verify_return_error'];
    const c = sClient(srv.port, [...args, ...cert]);
    try {
      await c.waitFor(new RegExp(`Cipher is ${name}`), 20000);
      c.write('hello card\n');
      await c.waitFor(/HELLO CARD/);
      assert.deepEqual(srv.received, ['hello card\n']);
      assert.equal(backends.stats.opened - opened, 1, 'one card session');
    } finally {
      await c.kill();
      await srv.server.close();
    }
  });
}

test('DTLS through the card under loss: drops, duplicates and reordering in the handshake (300-byte MTU) and in transfers', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const srv = await echoServer({ mtu: 300, initialTimeoutMs: 300 });
  const down: Record<number, Verdict> = { 1: 'drop', 2: 'hold', 4: 'dup', 5: 'drop' };
  const up: Record<number, Verdict> = { 0: 'dup', 2: 'hold', 3: 'dup' };
  let finishedDropped = false;
  let phase: 'handshake' | 'data' = 'handshake';
  const relay = await startRelay(srv.port, (dir, i, d) => {
    const recs = parseDtlsRecords(new Uint8Array(d));
    if (phase === 'data') {
      const r = recs[0];
      if (dir !== 'up' || r?.type !== 23) return 'pass';
      return r.seq % 3 === 0 ? 'dup' : r.seq % 3 === 1 ? 'hold' : 'pass';
    }
    if (dir === 'down' && !finishedDropped && recs.some((r) => r.epoch === 1)) {
      finishedDropped = true;
      return 'drop';
    }
    return (dir === 'down' ? down[i] : up[i]) ?? 'pass';
  });
  const c = sClient(relay.port, ['-cipher', 'ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0', '-CAfile', card.init.caCertPath, '-verify_return_error', '-mtu', '300']);
  try {
    await c.waitFor(/Cipher is ECDHE-ECDSA-AES128-CCM8/, 30000);
    assert.ok(finishedDropped, 'the final flight was lost once');
    assert.ok(relay.log.filter((l) => l.dir === 'down').length > 4, 'the card flight was fragmented');
    assert.ok(srv.sessions[0]!.retransmissions >= 2, `the host retransmitted lost flights (${srv.sessions[0]!.retransmissions})`);
    phase = 'data';
    const upAppData = (): number => relay.log.filter((l) => l.dir === 'up' && parseDtlsRecords(new Uint8Array(l.datagram))[0]?.type === 23).length;
    for (let i = 0; i < 6; i++) {
      const n = upAppData();
      c.write(`line ${i}\n`);
      await until(() => upAppData() > n); // one record per line, in its own datagram
    }
    c.write('last\n'); // releases a held datagram
    await c.waitFor(/LAST/);
    phase = 'handshake'; // pass everything again
    // The association handles its datagrams in order. MARK1 releases whatever the relay still holds
    // (it goes out after MARK1), MARK2 follows it: once MARK2 is echoed, every copy was dealt with.
    c.write('mark1\n');
    await c.waitFor(/MARK1/);
    c.write('mark2\n');
    await c.waitFor(/MARK2/);
    const lines = srv.received.join('').split('\n').filter((l) => l);
    for (let i = 0; i < 6; i++) assert.equal(lines.filter((l) => l === `line ${i}`).length, 1, `line ${i} delivered once: ${JSON.stringify(lines)}`);
    // a replayed record is dropped by the card (DECRYPT flag 04), the association goes on
    const appRecord = relay.log.find((l) => l.dir === 'up' && parseDtlsRecords(new Uint8Array(l.datagram))[0]?.type === 23)!;
    relay.inject(appRecord.datagram);
    relay.inject(Uint8Array.of(0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0x63, 0, 4, 1, 2, 3, 4));
    // 'after' leaves the relay's upstream socket after the two injected datagrams: once it is echoed,
    // they were handled
    c.write('after\n');
    await c.waitFor(/AFTER/);
    assert.equal(srv.received.join('').split('\n').filter((l) => l === 'line 0').length, 1, 'the replay was not delivered');
  } finally {
    await c.kill();
    await relay.close();
    await srv.server.close();
  }
});

/** Polls `cond` until it holds (a generous deadline; no fixed sleep decides an outcome). */
async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Counts the APDUs the card sees through one wrapped transport. */
class CountingTransport implements CardTransport {
  apdus = 0;
  constructor(private readonly inner: CardTransport) {}
  get extendedLength(): boolean {
    return this.inner.extendedLength;
  }
  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    this.apdus++;
    return this.inner.transmit(apdu);
  }
  close(): Promise<void> {
    return Promise.resolve(); // the shared transport is closed in after()
  }
}

test('a flood of 200 ClientHellos without cookies: only HelloVerifyRequests, no APDU to the card; a real client still completes', async (t) => {
  const counting = new CountingTransport(transport);
  const flooded = new CardDtlsBackends({ card: new CardClient(counting), pin: readPin(cardPaths(card.cardDir).pinFile) });
  const srv = await echoServer({ openBackend: flooded.openBackend });
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  let datagrams = 0;
  let hvr = 0;
  let markerAnswered = false;
  const MARKER_SEQ = 0x4d4d;
  s.on('message', (m) => {
    datagrams++;
    const recs = parseDtlsRecords(new Uint8Array(m));
    if (recs.length === 1 && recs[0]!.type === 22 && recs[0]!.epoch === 0 && recs[0]!.fragment[0] === 3) {
      hvr++;
      if (recs[0]!.seq === MARKER_SEQ) markerAnswered = true;
    }
  });
  try {
    const before = counting.apdus;
    // a minimal DTLS ClientHello: version FEFD, random, empty session id, empty cookie, one suite, null compression
    const hello = (i: number, seq = 0): Buffer => {
      const body = Buffer.concat([Buffer.from([0xfe, 0xfd]), Buffer.alloc(32, i), Buffer.from([0, 0, 0, 2, 0xc0, 0xae, 1, 0])]);
      const hs = Buffer.concat([Buffer.from([1, 0, 0, body.length, 0, 0, 0, 0, 0, 0, 0, body.length]), body]);
      return Buffer.concat([Buffer.from([22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, seq >>> 8, seq & 0xff, 0, hs.length]), hs]);
    };
    for (let i = 0; i < 200; i++) {
      s.send(hello(i), srv.port, '127.0.0.1');
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    // The server answers in order: once the HelloVerifyRequest to a last, marked ClientHello (its
    // record sequence number is echoed) is back, the flood has been dealt with.
    s.send(hello(200, MARKER_SEQ), srv.port, '127.0.0.1');
    await until(() => markerAnswered, 20_000);
    assert.equal(counting.apdus - before, 0, 'the card saw no APDU for the flood');
    assert.equal(flooded.stats.opened, 0, 'no card session opened');
    assert.equal(srv.server.size, 0, 'no association');
    assert.equal(hvr, datagrams, `only HelloVerifyRequests went out (${hvr} of ${datagrams})`);
    assert.ok(hvr > 150, `HelloVerifyRequests answered (${hvr})`);
    assert.ok(srv.server.stats.helloVerifyRequests >= hvr, `server counted ${srv.server.stats.helloVerifyRequests} HelloVerifyRequests`);
    if (!requirePeer(t, 'openssl')) return;
    const c = sClient(srv.port, ['-cipher', 'ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0', '-CAfile', card.init.caCertPath, '-verify_return_error']);
    try {
      await c.waitFor(/Cipher is ECDHE-ECDSA-AES128-CCM8/, 20000);
      c.write('after the flood\n');
      await c.waitFor(/AFTER THE FLOOD/);
      assert.equal(flooded.stats.opened, 1, 'one card session, for the real client');
      assert.ok(counting.apdus - before > 0, 'the real handshake went through the card');
    } finally {
      await c.kill();
    }
  } finally {
    s.close();
    await srv.server.close();
  }
});
