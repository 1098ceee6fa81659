// createServer from 'setls/coap' (node-coap's request/response shape) on a fresh card, against
// libcoap's coap-client-openssl over coaps+tcp (TLS in the card) and coaps (DTLS in the card):
// req.method / req.url / req.payload / req.headers, res.code / setOption / end, observe through
// req.headers.Observe and res.write; a busy port is 'error' EADDRINUSE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type CoapCardServer } from 'setls/coap';
import { initCard } from 'setls/card';
import { requirePeer } from '../interop/peers.js';
import { run } from '../interop/helpers.js';
import { dataOf } from '../interop/coap-output.js';
import { within } from '../wait.js';

const root = mkdtempSync(join(tmpdir(), 'setls-api-coap-'));
const cardDir = join(root, 'card');
let ca = '';
let server: CoapCardServer;
let port = 0;
const seen: { method: string; url: string; payload: string; accept: unknown; address: string | undefined }[] = [];

before(async () => {
  ca = (await initCard({ cardDir })).caCertPath;
  server = createServer({ cardDir }, (req, res) => {
    seen.push({ method: req.method, url: req.url, payload: req.payload.toString(), accept: req.headers.Accept, address: req.rsinfo.address });
    if (req.url.startsWith('/ticks')) {
      if (req.headers.Observe !== 0) {
        res.end('tick 0');
        return;
      }
      let n = 0;
      const t = setInterval(() => res.write(`tick ${++n}`), 100);
      res.on('close', () => clearInterval(t));
      res.write('tick 0');
      return;
    }
    if (req.method === 'PUT') {
      res.statusCode = '2.04';
      res.end(`stored ${req.payload.toString()}`);
      return;
    }
    res.writeHead('2.05', { 'Content-Format': 'text/plain' });
    res.end(`hello ${req.url}`);
  });
  server.link('/ticks', { obs: true, rt: 'test.ticks' });
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), 'CoAP server listening');
  port = server.address()!.port;
});

after(async () => {
  await new Promise((r) => server.close(r));
  rmSync(root, { recursive: true, force: true });
});

function client(args: string[]): ReturnType<typeof run> {
  return run('coap-client-openssl', ['-B', '8', '-C', ca, ...args], { timeoutMs: 30_000 });
}

for (const scheme of ['coaps+tcp', 'coaps'] as const) {
  const host = scheme === 'coaps' ? '127.0.0.1' : 'localhost';
  test(`${scheme}: GET and PUT reach the handler with method, url, payload; res.code, setOption, end come back`, async (t) => {
    if (!requirePeer(t, 'coap-client-openssl')) return;
    assert.equal(scheme === 'coaps' ? server.dtlsPort : port, port);
    const get = await client(['-m', 'get', `${scheme}://${host}:${port}/a/b?x=1`]);
    assert.equal(dataOf(get.stdout).trim(), 'hello /a/b?x=1', get.stderr);
    const put = await client(['-m', 'put', '-e', 'on', `${scheme}://${host}:${port}/relay`]);
    assert.equal(dataOf(put.stdout).trim(), 'stored on', put.stderr);
    const last = seen.filter((s) => s.method === 'PUT').at(-1)!;
    assert.deepEqual({ method: last.method, url: last.url, payload: last.payload }, { method: 'PUT', url: '/relay', payload: 'on' });
    assert.match(last.address ?? '', /127\.0\.0\.1/);
  });

  test(`${scheme}: observe — req.headers.Observe is 0 and each res.write is a notification`, async (t) => {
    if (!requirePeer(t, 'coap-client-openssl')) return;
    const r = await client(['-s', '2', '-w', '-m', 'get', `${scheme}://${host}:${port}/ticks`]);
    const ticks = dataOf(r.stdout).split('\n').map((l) => l.trim()).filter((l) => /^tick \d+$/.test(l));
    assert.ok(ticks.length >= 3, `notifications: ${r.stdout}\n${r.stderr}`);
    assert.equal(ticks[0], 'tick 0');
  });
}

test('/.well-known/core lists the linked resource', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const r = await client(['-m', 'get', `coaps+tcp://localhost:${port}/.well-known/core`]);
  assert.match(dataOf(r.stdout), /<\/ticks>;[^,]*obs/);
});

test("a busy port: 'error' with EADDRINUSE", async () => {
  const busy = net.createServer().listen(0, '127.0.0.1');
  await once(busy, 'listening');
  try {
    const dir2 = join(root, 'card2');
    await initCard({ cardDir: dir2 });
    const s = createServer({ cardDir: dir2 }, (_req, res) => res.end());
    s.listen((busy.address() as AddressInfo).port, '127.0.0.1');
    const [err] = (await within(once(s, 'error'), 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(s.address(), null);
  } finally {
    busy.close();
  }
});
