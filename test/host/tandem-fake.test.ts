import { test, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { TlsTandem, SeTlsSocket, type TlsTandemOptions } from '../../src/host/index.js';
import { InProcessTransport } from '../../src/transport/index.js';
import { FakeCard } from './fake-card.js';
import { FakeClient } from './fake-client.js';
import { waitUntil } from '../wait.js';

const live: TlsTandem[] = [];
afterEach(async () => {
  for (const t of live.splice(0)) await t.close();
});

async function tandemOn(card: FakeCard, opts: Partial<TlsTandemOptions> = {}) {
  const tandem = new TlsTandem({ transport: new InProcessTransport(card.process), pin: '1234', ...opts });
  live.push(tandem);
  await tandem.start();
  const errors: Error[] = [];
  tandem.on('sessionError', (e: Error) => errors.push(e));
  const server = tandem.listen(0, '127.0.0.1');
  await once(tandem, 'listening');
  return { tandem, port: (server.address() as AddressInfo).port, errors };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const codes = (errors: Error[]) => errors.map((e) => (e as { code?: string }).code);

test('tandem: start fails fast on a bad PIN', async () => {
  const t = new TlsTandem({ transport: new InProcessTransport(new FakeCard().process), pin: '9999' });
  await assert.rejects(t.start(), { code: 'ERR_CARD_PIN_WRONG', triesLeft: 2 });
  assert.throws(() => t.listen(0), { code: 'ERR_HOST_NOT_STARTED' });
  assert.throws(() => new TlsTandem({ transport: new InProcessTransport(new FakeCard().process), pin: '1234', backlog: -1 }), RangeError);
});

test('tandem: echo through the card, close_notify both ways, card reset after', async () => {
  const card = new FakeCard();
  const { tandem, port, errors } = await tandemOn(card);
  const sockets: SeTlsSocket[] = [];
  tandem.on('secureConnection', (s: SeTlsSocket) => {
    sockets.push(s);
    s.pipe(s);
  });
  const c = await FakeClient.connect(port);
  await c.handshake(card.flightBytes.length);
  c.send('hello card');
  assert.ok(await c.until(() => c.opened().text.toString() === 'hello card'), 'echo');
  const s = sockets[0]!;
  assert.equal(s.encrypted, true);
  assert.equal(s.alpnProtocol, 'http/1.1');
  assert.equal(s.servername, 'card.example');
  assert.equal(s.remotePort, c.socket.localPort);
  assert.equal(s.getSessionInfo()?.cipherSuite, 0x1301);
  const before = card.commands.length;
  c.closeNotify();
  assert.ok(await c.until(() => c.opened().closeNotify && c.ended), 'server close_notify then FIN');
  await waitUntil(() => !tandem.inUse, 'the card freed after the session');
  assert.equal(card.phase, 'wantHello', 'the card wiped the session (before it was freed)');
  // RESET-STATE folded into the DECRYPT of the client's close_notify (P1 END): one exchange, not two
  const after = card.commands.slice(before);
  assert.deepEqual(
    after.map((x) => [x.ins, x.p1, x.p2]),
    [[0x80, 0x08, 0x00]],
    'only the DECRYPT with END; no RESET-STATE',
  );
  assert.deepEqual(errors, []);
  await tandem.close();
});

test('tandem: a client that leaves without close_notify: RESET-STATE wipes the card session', async () => {
  const card = new FakeCard();
  const { tandem, port, errors } = await tandemOn(card);
  tandem.on('secureConnection', (s: SeTlsSocket) => s.pipe(s));
  const c = await FakeClient.connect(port);
  await c.handshake(card.flightBytes.length);
  c.send('hi');
  assert.ok(await c.until(() => c.opened().text.toString() === 'hi'), 'echo');
  const before = card.commands.length;
  c.socket.end(); // FIN, no close_notify
  await waitUntil(() => !tandem.inUse, 'the card freed after the session');
  assert.equal(card.phase, 'wantHello', 'RESET-STATE after the session');
  assert.ok(
    card.commands.slice(before).some((x) => x.ins === 0x19 && x.p1 === 0x10),
    'RESET-STATE sent',
  );
  assert.deepEqual(errors, []);
  await tandem.close();
});

test('tandem: backlog=2 → 1 active + 2 complete ClientHellos queued, served in order; the 4th gets the overload alert', async () => {
  const card = new FakeCard();
  // no hold limit: the first session holds the card until the test lets it go
  const { tandem, port } = await tandemOn(card, { backlog: 2, idleTimeoutMs: 60_000, busyIdleTimeoutMs: 60_000, maxHoldMs: 0 });
  const served: number[] = [];
  tandem.on('secureConnection', (s: SeTlsSocket) => {
    served.push(s.remotePort!);
    s.on('data', (d: Buffer) => {
      s.write(`got ${d.toString()}`);
      s.end();
    });
  });
  const refused: unknown[] = [];
  tandem.on('refused', (p) => refused.push(p));
  // each connection is seen by the tandem before the next one is made: the order is the test's
  const clients: FakeClient[] = [];
  const seen = [() => tandem.inUse, () => tandem.readyCount === 1, () => tandem.readyCount === 2, () => refused.length === 1];
  for (let i = 0; i < 4; i++) {
    const c = await FakeClient.connect(port);
    clients.push(c);
    c.sendHello();
    await waitUntil(seen[i]!, `connection ${i} taken by the tandem`);
  }
  const ports = clients.map((c) => c.socket.localPort);
  assert.ok(await clients[3]!.until(() => clients[3]!.closed), 'the 4th is answered and closed');
  assert.deepEqual([...Buffer.concat(clients[3]!.raw)], [0x15, 3, 3, 0, 2, 2, 80], 'a plaintext internal_error alert: overloaded');
  assert.equal(refused.length, 1);
  assert.equal(tandem.queued, 2);
  for (let i = 0; i < 3; i++) {
    const c = clients[i]!;
    c.socket.resume();
    await c.handshake(card.flightBytes.length);
    c.send(`client ${i}`);
    const ok = await c.until(() => c.opened().text.toString() === `got client ${i}` && c.opened().closeNotify);
    if (process.env.DBG) console.log("AFTER", ok, JSON.stringify(c.opened().text.toString()), c.opened().closeNotify);
    assert.ok(ok, `client ${i} served`);
  }
  assert.deepEqual(served, ports.slice(0, 3));
  await tandem.close();
});

test('tandem: a silent client never holds the card: the next one is served meanwhile; the deadline drops it', async () => {
  const card = new FakeCard();
  const { tandem, port, errors } = await tandemOn(card, { handshakeTimeoutMs: 3000 });
  let secure = 0;
  tandem.on('secureConnection', (s: SeTlsSocket) => {
    secure++;
    s.end('bye');
  });
  const silent = await FakeClient.connect(port);
  await waitUntil(() => tandem.queued === 1, 'the silent client waits for its ClientHello');
  assert.equal(tandem.inUse, false, 'no card for a connection without a ClientHello');
  const next = await FakeClient.connect(port);
  await next.handshake(card.flightBytes.length);
  assert.ok(await next.until(() => next.opened().text.toString() === 'bye'), 'next client served');
  assert.equal(secure, 1);
  assert.equal(silent.closed || silent.ended, false, 'the silent client is still connected: it was never in the way');
  assert.deepEqual(codes(errors), []);
  // dropped by the handshake deadline (the error says which), not by anything else
  assert.ok(await silent.until(() => silent.closed), 'silent client dropped');
  assert.deepEqual(codes(errors), ['ERR_HOST_HANDSHAKE_TIMEOUT']);
  // a partial ClientHello (half a record) is dropped too
  const partial = await FakeClient.connect(port);
  partial.write(Uint8Array.of(22, 3, 3, 0, 50, 1, 2));
  assert.ok(await partial.until(() => partial.closed), 'partial ClientHello dropped');
  assert.deepEqual(codes(errors), ['ERR_HOST_HANDSHAKE_TIMEOUT', 'ERR_HOST_HANDSHAKE_TIMEOUT']);
  await tandem.close();
});

test('tandem: a handshake stalled after its ClientHello holds the card only until someone waits, then the shorter deadline', async () => {
  const card = new FakeCard();
  // the full deadline outlasts the test: only the shortened one can free the card
  const { tandem, port, errors } = await tandemOn(card, { handshakeTimeoutMs: 120_000, busyHandshakeTimeoutMs: 300 });
  tandem.on('secureConnection', (s: SeTlsSocket) => s.end('bye'));
  const stalled = await FakeClient.connect(port);
  stalled.sendHello();
  assert.ok(await stalled.until(() => stalled.records.length > 0), 'the server flight came: the card is working for it');
  assert.equal(tandem.inUse, true);
  // alone, it keeps the card (the long deadline): the next client's ClientHello changes that
  const next = await FakeClient.connect(port);
  await next.handshake(card.flightBytes.length);
  assert.ok(await next.until(() => next.opened().text.toString() === 'bye'), 'the waiting client is served');
  assert.ok(await stalled.until(() => stalled.closed), 'the stalled handshake was dropped');
  assert.deepEqual(codes(errors), ['ERR_HOST_HANDSHAKE_TIMEOUT']);
  await tandem.close();
});

test('tandem: the hold limit cuts a session that keeps the card busy (a record every 100 ms) once someone waits: close_notify', async () => {
  const card = new FakeCard();
  // idle deadlines never fire (it is never idle): only the hold limit can free the card
  const { tandem, port } = await tandemOn(card, { idleTimeoutMs: 120_000, busyIdleTimeoutMs: 120_000, maxHoldMs: 500 });
  const cuts: string[] = [];
  tandem.on('cut', (how: string) => cuts.push(how));
  tandem.on('secureConnection', (s: SeTlsSocket) => s.on('data', (d: Buffer) => s.write(d)));
  const trickler = await FakeClient.connect(port);
  await trickler.handshake(card.flightBytes.length);
  let sent = 0;
  const tick = setInterval(() => {
    if (!trickler.closed && !trickler.ended) {
      trickler.send('x');
      sent++;
    }
  }, 100);
  try {
    // alone it may hold the card as long as it likes: well past the hold limit, still echoing
    await waitUntil(() => trickler.opened().text.length >= 10, 'the trickler is served past the hold limit while nobody waits');
    assert.equal(trickler.opened().closeNotify || trickler.ended, false);
    assert.deepEqual(cuts, []);
    const next = await FakeClient.connect(port);
    next.sendHello();
    assert.ok(await trickler.until(() => trickler.opened().closeNotify && trickler.ended), 'the trickler got close_notify then FIN');
    assert.deepEqual(cuts, ['closed'], 'cut by the hold limit (the fake card has no EXPORT-SESSION: closed)');
    await next.handshake(card.flightBytes.length);
    next.send('hi');
    assert.ok(await next.until(() => next.opened().text.toString() === 'hi'), 'the waiting client is served');
  } finally {
    clearInterval(tick);
  }
  assert.ok(sent > 0);
  await tandem.close();
});

test('tandem: an idle keep-alive client is closed with close_notify when someone waits', async () => {
  const card = new FakeCard();
  const { tandem, port } = await tandemOn(card, { idleTimeoutMs: 60_000, busyIdleTimeoutMs: 300 });
  tandem.on('secureConnection', (s: SeTlsSocket) => s.on('data', (d: Buffer) => s.write(d)));
  const a = await FakeClient.connect(port);
  await a.handshake(card.flightBytes.length);
  a.send('ping');
  assert.ok(await a.until(() => a.opened().text.toString() === 'ping'));
  // idle for twice the busy deadline with nobody waiting: kept. The tandem's idle timer and this
  // sleep run in this process, so a 300 ms timer armed before it has fired when it ends; the echo
  // afterwards is the re-check that the session was still open then (not a close still in flight).
  await sleep(600);
  a.send('ping2');
  assert.ok(await a.until(() => a.opened().text.toString() === 'pingping2'), 'kept: still echoing after the idle time');
  assert.equal(a.closed || a.ended || a.opened().closeNotify, false);
  const b = await FakeClient.connect(port);
  b.sendHello(); // b waits for the card once its ClientHello is complete
  assert.ok(await a.until(() => a.opened().closeNotify && a.ended), 'idle client closed with close_notify');
  await b.handshake(card.flightBytes.length);
  b.send('pong');
  assert.ok(await b.until(() => b.opened().text.toString() === 'pong'), 'waiting client proceeds');
  await tandem.close();
});

test("tandem: garbage and a bad ClientHello get the host's plaintext alert (the card never sees them); the next client works", async () => {
  const card = new FakeCard();
  const { tandem, port, errors } = await tandemOn(card);
  tandem.on('secureConnection', (s: SeTlsSocket) => s.end('ok'));
  const g = await FakeClient.connect(port);
  g.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.ok(await g.until(() => g.closed));
  assert.deepEqual([...Buffer.concat(g.raw)], [0x15, 3, 3, 0, 2, 2, 10], 'plaintext unexpected_message');
  const bad = await FakeClient.connect(port);
  bad.write(Uint8Array.of(22, 3, 3, 0, 2, 0xba, 0));
  assert.ok(await bad.until(() => bad.closed));
  assert.deepEqual(bad.opened().alerts, [10], 'plaintext unexpected_message: not a ClientHello');
  assert.equal(card.phase, 'wantHello', 'the card saw neither');
  const c = await FakeClient.connect(port);
  await c.handshake(card.flightBytes.length);
  assert.ok(await c.until(() => c.opened().text.toString() === 'ok'));
  assert.deepEqual(errors.map((e) => (e as { code?: string }).code), ['ERR_HOST_NOT_CLIENT_HELLO', 'ERR_HOST_NOT_CLIENT_HELLO']);
  await tandem.close();
});

test('tandem: a fatal alert / undecryptable record closes the session with the card’s alert; next served', async () => {
  const card = new FakeCard();
  const { tandem, port, errors } = await tandemOn(card);
  tandem.on('secureConnection', (s: SeTlsSocket) => s.resume());
  const a = await FakeClient.connect(port);
  await a.handshake(card.flightBytes.length);
  a.write(Uint8Array.of(23, 3, 3, 0, 3, 1, 2, 3)); // the toy card cannot open it → bad_record_mac
  assert.ok(await a.until(() => a.closed));
  assert.deepEqual(a.opened().alerts, [20]);
  assert.ok(errors.some((e) => (e as { code?: string }).code === 'ERR_TLS_ALERT_SENT'));
  const b = await FakeClient.connect(port);
  await b.handshake(card.flightBytes.length);
  b.write(Uint8Array.of(0x15)); // not ours to judge: framed later
  b.destroy();
  const c = await FakeClient.connect(port);
  await c.handshake(card.flightBytes.length);
  await tandem.close();
});

test('tandem: a card error mid-session closes the client and the next one is served', async () => {
  const card = new FakeCard();
  let breakEncrypt = true;
  const proc = (a: Uint8Array) => (breakEncrypt && a[1] === 0x80 && a[3] === 0x97 ? Uint8Array.of(0x6f, 0x00) : card.process(a));
  const tandem = new TlsTandem({ transport: new InProcessTransport(proc), pin: '1234' });
  live.push(tandem);
  await tandem.start();
  const errors: Error[] = [];
  tandem.on('sessionError', (e: Error) => errors.push(e));
  tandem.listen(0, '127.0.0.1');
  const [addr] = (await once(tandem, 'listening')) as [AddressInfo];
  tandem.on('secureConnection', (s: SeTlsSocket) => s.end('x'));
  const a = await FakeClient.connect(addr.port);
  await a.handshake(card.flightBytes.length);
  assert.ok(await a.until(() => a.closed));
  assert.ok(errors.some((e) => (e as { code?: string }).code === 'ERR_CARD_INTERNAL'), errors.map(String).join());
  breakEncrypt = false;
  const b = await FakeClient.connect(addr.port);
  await b.handshake(card.flightBytes.length);
  assert.ok(await b.until(() => b.opened().text.toString() === 'x'));
  await tandem.close();
});

test('tandem + http.Server: request/response through the card, small writes coalesced', async () => {
  const card = new FakeCard();
  const { tandem, port } = await tandemOn(card);
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.write('part1 ');
    res.write('part2 ');
    res.end(`you asked ${req.url}`);
  });
  tandem.on('secureConnection', (s: SeTlsSocket) => server.emit('connection', s));
  after(() => server.close());
  const c = await FakeClient.connect(port);
  await c.handshake(card.flightBytes.length);
  const before = card.commands.filter((x) => x.ins === 0x80 && x.p2 === 0x97).length;
  c.send('GET /abc HTTP/1.1\r\nHost: card\r\nConnection: close\r\n\r\n');
  assert.ok(await c.until(() => c.opened().closeNotify), 'response and close_notify');
  const text = c.opened().text.toString();
  assert.match(text, /^HTTP\/1.1 200 OK/);
  assert.match(text, /part1 \r\n6\r\npart2 \r\ne\r\nyou asked \/abc\r\n0\r\n\r\n$/);
  const encrypts = card.commands.filter((x) => x.ins === 0x80 && x.p2 === 0x97).length - before;
  assert.equal(encrypts, 1, 'headers and body coalesced into one record');
  await tandem.close();
  server.close();
});

test('tandem: close() drops waiting clients and ends the active session', async () => {
  const card = new FakeCard();
  const { tandem, port } = await tandemOn(card);
  let secure = 0;
  tandem.on('secureConnection', () => secure++);
  const a = await FakeClient.connect(port);
  await a.handshake(card.flightBytes.length);
  await waitUntil(() => secure === 1, "a's session established");
  const b = await FakeClient.connect(port);
  b.sendHello();
  await waitUntil(() => tandem.readyCount === 1, 'b waiting');
  await tandem.close();
  assert.ok(await a.until(() => a.closed));
  assert.ok(await b.until(() => b.closed));
  assert.equal(tandem.inUse, false);
});

test('diagnostics_channel: setls:apdu (metadata only) and setls:session events', async () => {
  const dc = await import('node:diagnostics_channel');
  const apdus: { command: string; sw: number }[] = [];
  const sessions: { event: string }[] = [];
  const onApdu = (m: unknown) => apdus.push(m as { command: string; sw: number });
  const onSession = (m: unknown) => sessions.push(m as { event: string });
  dc.subscribe('setls:apdu', onApdu);
  dc.subscribe('setls:session', onSession);
  try {
    const card = new FakeCard();
    const { tandem, port } = await tandemOn(card);
    tandem.on('secureConnection', (s: SeTlsSocket) => s.end('d'));
    const c = await FakeClient.connect(port);
    await c.handshake(card.flightBytes.length);
    assert.ok(await c.until(() => c.closed));
    await waitUntil(() => sessions.some((s) => s.event === 'closed'), () => `a 'closed' session event (${sessions.map((s) => s.event).join(',')})`);
    assert.ok(apdus.some((a) => a.command === 'PROCESS-EAP-ENCRYPT' && a.sw === 0x9000));
    assert.ok(apdus.every((a) => !('data' in a)), 'no APDU bytes on the channel');
    assert.deepEqual(sessions.map((s) => s.event), ['queued', 'handshake', 'established', 'closed']);
  } finally {
    dc.unsubscribe('setls:apdu', onApdu);
    dc.unsubscribe('setls:session', onSession);
  }
});
