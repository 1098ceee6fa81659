// createServer (import 'setls'): node:https's shape over a real emulated card — listen/close/address,
// 'listening', 'error' (EADDRINUSE, a missing PIN), 'secureConnection', 'tlsClientError', and the
// socket handed to handlers answering getProtocol()/getCipher() with IANA names.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { createServer, asSeTlsSocket, openCard, type SetlsServer, type SeTlsSocket } from 'setls';
import { initCard } from 'setls/card';
import { within } from '../wait.js';

const root = mkdtempSync(join(tmpdir(), 'setls-api-'));
const cardDir = join(root, 'card');
let ca: string;

before(async () => {
  ca = readFileSync((await initCard({ cardDir })).caCertPath, 'utf8');
});
after(() => rmSync(root, { recursive: true, force: true }));

function listening(server: SetlsServer, port = 0): Promise<number> {
  return within(
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    }),
    'listening',
  );
}

function closed(server: SetlsServer): Promise<void> {
  return within(new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))), 'close');
}

function get(port: number, opts: https.RequestOptions = {}): Promise<{ status: number; body: string; protocol: string | null }> {
  return within(
    new Promise((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: '/', ca, servername: 'localhost', agent: false, ...opts }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, protocol: (res.socket as import('node:tls').TLSSocket).getProtocol() }));
      });
      req.on('error', reject);
    }),
    'GET through the card',
  );
}

test("listen on a busy port emits 'error' with EADDRINUSE, lets go of the card, and can listen again", async () => {
  const busy = net.createServer();
  busy.listen(0, '127.0.0.1');
  await once(busy, 'listening');
  const busyPort = (busy.address() as AddressInfo).port;
  const server = createServer({ cardDir }, (_req, res) => res.end('ok'));
  let listened = false;
  server.on('listening', () => (listened = true));
  server.listen(busyPort, '127.0.0.1');
  const [err] = (await within(once(server, 'error'), "'error' on a busy port")) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'EADDRINUSE');
  assert.equal(listened, false, "a busy port is not 'listening'");
  assert.equal(server.address(), null);
  assert.equal(server.listening, false);
  // The card folder was let go: another process (here: openCard) could take it now…
  const card = await openCard({ cardDir });
  await card.close();
  // …and the same server listens on a free port afterwards.
  const port = await listening(server);
  assert.equal(server.listening, true);
  assert.equal((await get(port)).body, 'ok');
  await closed(server);
  busy.close();
});

test('a handler sees req.socket.getProtocol() and getCipher() with IANA names; secureConnection is emitted', async () => {
  const seen: { protocol: string | null; cipher: ReturnType<SeTlsSocket['getCipher']>; encrypted: boolean; alpn: unknown; servername: unknown; reused: boolean }[] = [];
  const server = createServer({ cardDir }, (req: IncomingMessage, res) => {
    const s = asSeTlsSocket(req.socket);
    assert.ok(s);
    seen.push({ protocol: s.getProtocol(), cipher: s.getCipher(), encrypted: s.encrypted, alpn: s.alpnProtocol, servername: s.servername, reused: s.isSessionReused() });
    res.end(s.getProtocol() ?? '');
  });
  let secure = 0;
  server.on('secureConnection', () => secure++);
  const port = await listening(server);
  try {
    const r13 = await get(port, { minVersion: 'TLSv1.3', ciphers: 'TLS_AES_256_GCM_SHA384' });
    assert.equal(r13.status, 200);
    assert.equal(r13.body, 'TLSv1.3');
    assert.equal(r13.protocol, 'TLSv1.3');
    const r12 = await get(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    assert.equal(r12.body, 'TLSv1.2');
    assert.deepEqual(seen[0], {
      protocol: 'TLSv1.3',
      cipher: { name: 'TLS_AES_256_GCM_SHA384', standardName: 'TLS_AES_256_GCM_SHA384', version: 'TLSv1.3' },
      encrypted: true,
      alpn: false,
      servername: 'localhost',
      reused: false,
    });
    assert.deepEqual(seen[1]?.cipher, { name: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', standardName: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', version: 'TLSv1.2' });
    assert.equal(secure, 2);
  } finally {
    await closed(server);
  }
});

test("a client that fails its handshake is reported on 'tlsClientError' with its address, not on 'error'", async () => {
  const server = createServer({ cardDir }, (_req, res) => res.end('ok'));
  let errors = 0;
  server.on('error', () => errors++);
  const port = await listening(server);
  try {
    const reported = once(server, 'tlsClientError');
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.end('GET / HTTP/1.1\r\n\r\n'); // not TLS
    const [err, peer] = (await within(reported, 'tlsClientError')) as [Error & { code?: string }, { remoteAddress?: string; remotePort?: number }];
    assert.match(err.code ?? '', /^ERR_/);
    assert.equal(peer.remoteAddress, '127.0.0.1');
    assert.equal(typeof peer.remotePort, 'number');
    // The card serves the next client.
    assert.equal((await get(port)).body, 'ok');
    assert.equal(errors, 0);
  } finally {
    await closed(server);
  }
});

test("no PIN anywhere: 'error' ERR_API_PIN_MISSING; a wrong PIN: the card's ERR_CARD_PIN_WRONG — and the card is let go", async () => {
  const card = await openCard({ cardDir });
  try {
    const noPin = createServer({ transport: card.transport });
    const saved = process.env.SETLS_PIN;
    delete process.env.SETLS_PIN;
    try {
      noPin.listen(0);
      const [e1] = (await within(once(noPin, 'error'), 'missing PIN')) as [Error & { code?: string }];
      assert.equal(e1.code, 'ERR_API_PIN_MISSING');
    } finally {
      if (saved !== undefined) process.env.SETLS_PIN = saved;
    }
    const pin = readFileSync(`${cardDir}.pin`, 'utf8').trim();
    const wrong = createServer({ transport: card.transport, pin: pin === '000000' ? '111111' : '000000' });
    wrong.listen(0);
    const [e2] = (await within(once(wrong, 'error'), 'wrong PIN')) as [Error & { code?: string; triesLeft?: number }];
    assert.equal(e2.code, 'ERR_CARD_PIN_WRONG');
    assert.equal(typeof e2.triesLeft, 'number');
    assert.equal(wrong.address(), null);
    const right = createServer({ transport: card.transport, pin });
    const port = await listening(right);
    assert.ok(port > 0);
    await closed(right);
  } finally {
    await card.close();
  }
});

test("a card folder another opener holds: 'error' ERR_CARD_LOCKED naming its PID, nothing listens; free again, it listens", async () => {
  const card = await openCard({ cardDir });
  const server = createServer({ cardDir }, (_req, res) => res.end('ok'));
  try {
    server.listen(0, '127.0.0.1');
    const [err] = (await within(once(server, 'error'), 'locked folder')) as [Error & { code?: string }];
    assert.equal(err.code, 'ERR_CARD_LOCKED');
    assert.match(err.message, new RegExp(`\\b${process.pid}\\b`));
    assert.equal(server.address(), null);
  } finally {
    await card.close();
  }
  const port = await listening(server);
  assert.equal((await get(port)).body, 'ok');
  await closed(server);
});

test('close() before listen: the callback gets ERR_SERVER_NOT_RUNNING, as node:net', async () => {
  const server = createServer({ cardDir });
  const err = await new Promise<Error | undefined>((r) => server.close(r));
  assert.equal((err as { code?: string } | undefined)?.code, 'ERR_SERVER_NOT_RUNNING');
});

test('createServer without a card throws a TypeError naming the options', () => {
  assert.throws(() => createServer({} as never), /cardDir.*reader.*transport/);
});
