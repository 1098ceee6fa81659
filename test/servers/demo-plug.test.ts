// The demo plug's HTTP behaviour, over a plain Duplex pair (the card path is tested in test/interop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPlugHandler, createPlugState, patternByte } from '../../src/servers/https/index.js';

async function withServer(fn: (port: number) => Promise<void>): Promise<void> {
  const server = createServer(createPlugHandler(createPlugState()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fn((server.address() as AddressInfo).port);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

function call(port: number, method: string, path: string, body?: string, type = 'application/json'): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: body !== undefined ? { 'content-type': type } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('status, relay switching and validation', async () => {
  await withServer(async (port) => {
    const s = await call(port, 'GET', '/status');
    assert.equal(s.status, 200);
    assert.equal(JSON.parse(s.body.toString()).relay, 'off');
    const on = await call(port, 'PUT', '/relay', '{"state":"on"}');
    assert.equal(on.status, 200);
    assert.equal(JSON.parse(on.body.toString()).relay, 'on');
    assert.ok(JSON.parse((await call(port, 'GET', '/status')).body.toString()).powerW > 0);
    for (const [body, re] of [
      ['{"state":"maybe"}', /expected \{"state":"on"\}/],
      ['not json', /not valid JSON/],
      ['[1]', /expected/],
      ['{"state":"off","x":1}', /unknown field\(s\): x/],
    ] as const) {
      const r = await call(port, 'PUT', '/relay', body);
      assert.equal(r.status, 400, body);
      assert.match(JSON.parse(r.body.toString()).error, re);
    }
    assert.equal((await call(port, 'PUT', '/relay', '{"state":"on"}', 'text/plain')).status, 415);
    assert.equal((await call(port, 'PUT', '/relay', JSON.stringify({ state: 'on', pad: 'x'.repeat(2000) }))).status, 413);
    assert.equal((await call(port, 'POST', '/relay', '{}')).status, 405);
    assert.equal((await call(port, 'GET', '/nope')).status, 404);
    assert.match((await call(port, 'GET', '/')).body.toString(), /<h1>setls demo plug<\/h1>/);
  });
});

test('/bytes/N serves the documented pattern', async () => {
  await withServer(async (port) => {
    const r = await call(port, 'GET', '/bytes/200000');
    assert.equal(r.body.length, 200000);
    for (let i = 0; i < r.body.length; i += 997) assert.equal(r.body[i], patternByte(i));
    assert.equal((await call(port, 'GET', '/bytes/999999999')).status, 400);
  });
});

test('/bytes/N: every byte, across 64 KiB blocks and past 16 MiB (where the block index wraps mod 256)', async () => {
  await withServer(async (port) => {
    const n = 16 * 1024 * 1024 + 3 * 65536 + 777;
    const r = await call(port, 'GET', `/bytes/${n}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, n);
    // the formula, independently of src/ (patternByte is the server's)
    const expected = (i: number): number => (i * 31 + (i >>> 8) + (i >>> 16)) & 0xff;
    for (let i = 0; i < n; i++) if (r.body[i] !== expected(i)) assert.fail(`byte ${i} is ${r.body[i]}, expected ${expected(i)}`);
  });
});
