// How the host ends client connections, through the fake card (toy record protection: the client
// reads every record): every close that is not a fatal alert sends close_notify first (RFC 8446
// §6.1), and the alerts the host reports are the ones it or the card sent, by name.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { TlsTandem, TlsPool, SeTlsSocket, createMetrics, type TlsTandemOptions } from '../../src/host/index.js';
import { InProcessTransport } from '../../src/transport/index.js';
import { serveHttps } from '../../src/servers/https/index.js';
import { FakeCard } from './fake-card.js';
import { FakeClient } from './fake-client.js';

const live: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const t of live.splice(0)) await t.close();
});

async function tandemOn(card: FakeCard, opts: Partial<TlsTandemOptions> = {}) {
  const tandem = new TlsTandem({ transport: new InProcessTransport(card.process), pin: '1234', ...opts });
  live.push(tandem);
  await tandem.start();
  const errors: (Error & { code?: string; alert?: number })[] = [];
  tandem.on('sessionError', (e: Error) => errors.push(e));
  const server = tandem.listen(0, '127.0.0.1');
  await once(tandem, 'listening');
  return { tandem, port: (server.address() as AddressInfo).port, errors };
}

test('a node:http handler that destroys the socket with an error: close_notify, then FIN', async () => {
  const card = new FakeCard();
  const { tandem, port } = await tandemOn(card);
  const http = serveHttps(tandem, (req) => req.socket.destroy(new Error('the handler gave up')));
  live.push({ close: () => new Promise<void>((r) => http.close(() => r())) });
  const c = await FakeClient.connect(port);
  await c.handshake(card.flightBytes.length);
  c.send('GET /x HTTP/1.1\r\nHost: card\r\n\r\n');
  assert.ok(await c.until(() => c.ended), 'FIN');
  assert.equal(c.opened().closeNotify, true, 'close_notify before FIN');
  assert.deepEqual(c.opened().alerts, []);
});

test('SeTlsSocket.destroy(err) by application code mid-session: close_notify, then FIN; destroy() without error likewise', async () => {
  for (const err of [new Error('application error'), undefined]) {
    const card = new FakeCard();
    const { tandem, port } = await tandemOn(card);
    tandem.on('secureConnection', (s: SeTlsSocket) =>
      s.on('data', () => {
        s.write('partial answer');
        s.destroy(err);
      }),
    );
    const c = await FakeClient.connect(port);
    await c.handshake(card.flightBytes.length);
    c.send('hello');
    assert.ok(await c.until(() => c.ended), 'FIN');
    assert.equal(c.opened().closeNotify, true, `close_notify (destroy(${err ? 'err' : ''}))`);
    await tandem.close();
  }
});

test('server shutdown (tandem.close()) ends an active session with close_notify', async () => {
  const card = new FakeCard();
  const { tandem, port } = await tandemOn(card);
  const opened = once(tandem, 'secureConnection');
  const c = await FakeClient.connect(port);
  await c.handshake(card.flightBytes.length);
  await opened;
  await tandem.close();
  assert.ok(await c.until(() => c.ended), 'FIN');
  assert.equal(c.opened().closeNotify, true);
});

test('a card error mid-session ends the connection without close_notify (nothing can be encrypted) but with FIN, not a reset', async () => {
  const card = new FakeCard();
  let broken = false;
  const proc = (a: Uint8Array) => (broken && a[1] === 0x80 ? Uint8Array.of(0x6f, 0x00) : card.process(a));
  const tandem = new TlsTandem({ transport: new InProcessTransport(proc), pin: '1234' });
  live.push(tandem);
  await tandem.start();
  tandem.on('sessionError', () => undefined);
  tandem.listen(0, '127.0.0.1');
  const [addr] = (await once(tandem, 'listening')) as [AddressInfo];
  tandem.on('secureConnection', (s: SeTlsSocket) => {
    broken = true;
    s.resume();
  });
  const c = await FakeClient.connect(addr.port);
  await c.handshake(card.flightBytes.length);
  c.send('data the card cannot take');
  assert.ok(await c.until(() => c.closed), 'closed');
  assert.equal(c.ended, true, 'FIN');
  assert.equal(c.opened().closeNotify, false);
});

test('metrics and logs name the alert: the card’s (TLV 2C) for an encrypted handshake alert, the host’s own plaintext one', async () => {
  const card = new FakeCard({ encryptedAlert: true });
  const { tandem, port, errors } = await tandemOn(card);
  const metrics = createMetrics(tandem);
  try {
    // a ClientHello the card rejects: the card's alert record is (toy-)encrypted; only its TLV says handshake_failure
    const bad = await FakeClient.connect(port);
    bad.write(Uint8Array.of(22, 3, 3, 0, 8, 1, 0, 0, 4, 0xba, 0, 0, 0));
    assert.ok(await bad.until(() => bad.closed));
    // not a TLS record at all: the host's own plaintext unexpected_message
    const g = await FakeClient.connect(port);
    g.write(Buffer.from('GET / HTTP/1.0\n\n'));
    assert.ok(await g.until(() => g.closed));
    assert.deepEqual([...Buffer.concat(g.raw)], [0x15, 3, 3, 0, 2, 2, 10]);
    const failed = errors;
    assert.deepEqual(
      failed.map((e) => [e.code, e.alert]),
      [
        ['ERR_TLS_HANDSHAKE_FAILED', 40],
        ['ERR_HOST_NOT_CLIENT_HELLO', 10],
      ],
    );
    assert.match(failed[0]!.message, /alert handshake_failure \(40\) sent/);
    const text = await metrics.registry.getSingleMetricAsString('setls_alerts_sent_total');
    assert.match(text, /setls_alerts_sent_total\{alert="handshake_failure"\} 1$/m);
    assert.match(text, /setls_alerts_sent_total\{alert="unexpected_message"\} 1$/m);
  } finally {
    metrics.detach();
  }
});

test('pool: bytes that are not a ClientHello get the host’s plaintext unexpected_message, read by a client that keeps writing; counted by name', async () => {
  const card = new FakeCard();
  const pool = new TlsPool({ transports: [new InProcessTransport(card.process)], pins: ['1234'] });
  live.push(pool);
  await pool.start();
  const metrics = createMetrics(pool);
  try {
    const server = pool.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const failed = once(pool, 'sessionError');
    const s = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(s, 'connect');
    const got: Buffer[] = [];
    let error: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    s.pause();
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const [err] = (await failed) as [Error & { code?: string; alert?: number }];
    assert.deepEqual([err.code, err.alert], ['ERR_HOST_NOT_CLIENT_HELLO', 10]);
    s.write(Buffer.alloc(64 * 1024, 0x41)); // the client has more to say before it reads
    s.on('data', (d: Buffer) => got.push(d));
    s.resume();
    await new Promise<void>((r) => s.once('close', () => r()));
    assert.equal(error, undefined, 'no reset');
    assert.deepEqual([...Buffer.concat(got)], [0x15, 3, 3, 0, 2, 2, 10]);
    assert.match(await metrics.registry.getSingleMetricAsString('setls_alerts_sent_total'), /alert="unexpected_message"\} 1$/m);
  } finally {
    metrics.detach();
  }
});

test('a client that leaves mid-handshake is a normal end: no sessionError, no stack captured, counted as setls_sessions_total{event="peer_closed"}', async () => {
  const card = new FakeCard();
  const { tandem, port, errors } = await tandemOn(card);
  const metrics = createMetrics(tandem);
  live.push({ close: async () => metrics.detach() });
  for (let i = 0; i < 3; i++) {
    const c = await FakeClient.connect(port);
    c.sendHello();
    assert.ok(await c.until(() => c.records.length > 0), 'the server flight');
    const freed = once(tandem, 'free');
    c.destroy(); // gone before its Finished: what a client does that stops once it has its answer
    await freed;
  }
  assert.deepEqual(errors.map((e) => e.code), [], 'no sessionError for a client that left');
  const text = await metrics.registry.metrics();
  assert.match(text, /setls_sessions_total\{event="peer_closed"\} 3/);
  assert.doesNotMatch(text, /setls_sessions_total\{event="failed"\}/);
  assert.match(await metrics.registry.metrics(), /setls_sessions_total\{event="peer_closed"\} 3/, 'a second scrape reads the same totals');
});

test('peerClosed(): ERR_HOST_PEER_CLOSED without a captured stack (built per closed connection)', async () => {
  const { peerClosed, isPeerClosed } = await import('../../src/host/errors.js');
  const e = peerClosed('the client left');
  assert.equal(e.code, 'ERR_HOST_PEER_CLOSED');
  assert.ok(isPeerClosed(e));
  assert.equal((e.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).length, 0, 'no stack frames');
  assert.ok(Error.stackTraceLimit > 0, 'the global limit is restored');
});
