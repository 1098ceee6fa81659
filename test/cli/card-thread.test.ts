/**
 * The emulated card in a worker thread of its own (cli/card-thread.ts, `serve https --card-thread`):
 * APDUs reach it, its state is written by it and outlives it, its folder lock is its own, and
 * `serve https --card-thread` serves Node's TLS client.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import pino from 'pino';
import { initCard, openCard } from '../../src/cli/card-setup.js';
import { openCardThread } from '../../src/cli/card-thread.js';
import { startHttps } from '../../src/cli/serve.js';
import { DEMO_PSK_IDENTITY, demoPskKey, startCoap } from '../../src/cli/serve-coap.js';
import { run } from '../interop/helpers.js';
import { requirePeer } from '../interop/peers.js';
import { CardClient } from '../../src/host/index.js';
import { openCard as apiOpenCard } from '../../src/api/card.js';
import { get } from '../host/pool-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'setls-card-thread-'));
after(() => rmSync(root, { recursive: true, force: true }));

async function freshCard(name: string): Promise<{ dir: string; ca: string }> {
  const dir = join(root, name);
  const init = await initCard({ cardDir: dir });
  return { dir, ca: readFileSync(init.caCertPath, 'utf8') };
}

const errCode = (code: string) => (e: unknown) => (e as { code?: string }).code === code;

test('a card thread answers APDUs; what it writes outlives it; its folder is free once closed', async () => {
  const { dir } = await freshCard('a');
  const t = await openCardThread({ cardDir: dir });
  assert.notEqual(t.threadId, threadId, 'the card runs on another thread');
  if (process.platform === 'linux') assert.ok(t.osThreadId !== undefined && t.osThreadId !== process.pid, 'its OS thread id is not the main thread\'s');
  assert.ok(t.atr.length > 2 && t.atr[0] === 0x3b, 'the card sent its ATR');
  const client = new CardClient(t.transport);
  await client.select();
  await assert.rejects(client.verifyPin('000000', 'user'));
  assert.equal((await client.pinStatus('user')).triesLeft, 2);
  // while the thread holds the folder, this process cannot open it a second time
  assert.throws(() => openCard({ cardDir: dir }), errCode('ERR_CARD_LOCKED'));
  await t.close();
  await assert.rejects(t.transport.transmit(Uint8Array.of(0, 0xa4, 4, 0)), errCode('ERR_APDU_TRANSPORT_CLOSED'));
  // the failed VERIFY was written by the card in its thread: the card opened here still counts it
  const { transport, card } = openCard({ cardDir: dir });
  try {
    const c = new CardClient(transport);
    await c.select();
    assert.equal((await c.pinStatus('user')).triesLeft, 2);
  } finally {
    await transport.close();
    card.close();
  }
});

test('a card folder held elsewhere: the thread reports the card\'s own error and ends', async () => {
  const { dir } = await freshCard('b');
  const { transport, card } = openCard({ cardDir: dir });
  try {
    await assert.rejects(openCardThread({ cardDir: dir }), errCode('ERR_CARD_LOCKED'));
  } finally {
    await transport.close();
    card.close();
  }
  await assert.rejects(openCardThread({ cardDir: join(root, 'missing') }), (e: unknown) => typeof (e as { code?: string }).code === 'string' && (e as Error).message.length > 0);
});

test('a card thread that ends under the host: the APDU in flight settles, every later one fails with ERR_CARD_THREAD', async () => {
  const { dir } = await freshCard('d');
  const t = await openCardThread({ cardDir: dir });
  const client = new CardClient(t.transport);
  await client.select();
  // the APDU sent as the thread ends settles either way (answered before, or failed): it never hangs
  const inFlight = t.transport.transmit(Uint8Array.of(0x80, 0xca, 0, 0, 0)).then(
    () => 'answered',
    (e: { code?: string }) => e.code,
  );
  await t.terminate();
  assert.ok(['answered', 'ERR_CARD_THREAD'].includes((await inFlight) ?? ''), 'the APDU in flight settled');
  await assert.rejects(t.transport.transmit(Uint8Array.of(0, 0xa4, 4, 0)), errCode('ERR_CARD_THREAD'));
  await t.close(); // harmless afterwards
});

test('serve https --card-thread: Node\'s TLS client gets /status through the card thread; --reader refused', async () => {
  const { dir, ca } = await freshCard('c');
  const saved = process.env.SETLS_PIN;
  delete process.env.SETLS_PIN;
  const running = await startHttps({ cardDir: dir, cardThread: true, port: 0, host: '127.0.0.1', backlog: 32 }, pino({ level: 'silent' }));
  try {
    const r = await Promise.all(Array.from({ length: 3 }, () => get(running.port, ca, '/status')));
    for (const x of r) assert.equal(x.status, 200);
    assert.match(r[0]!.body, /"terminatedIn":"secure element"/);
  } finally {
    await running.close();
    if (saved !== undefined) process.env.SETLS_PIN = saved;
  }
  // closed: the folder is free again
  const { transport, card } = openCard({ cardDir: dir });
  await transport.close();
  card.close();
  await assert.rejects(startHttps({ cardDir: dir, cardThread: true, reader: 'Virtual PCD 00 00', port: 0, host: '127.0.0.1', backlog: 32 }, pino({ level: 'silent' })), errCode('ERR_CLI_OPTION'));
});

test('serve https --pool 2 --card-thread: a thread per card, the pool serves, both folders free after close', async () => {
  const { dir, ca } = await freshCard('g');
  const saved = process.env.SETLS_PIN;
  delete process.env.SETLS_PIN;
  const running = await startHttps({ cardDir: dir, pool: 2, cardThread: true, port: 0, host: '127.0.0.1', backlog: 64 }, pino({ level: 'silent' }));
  try {
    assert.equal(new Set(running.pool!.slots.map((s) => s.card)).size, 2);
    const r = await Promise.all(Array.from({ length: 8 }, () => get(running.port, ca, '/status')));
    for (const x of r) assert.equal(x.status, 200);
  } finally {
    await running.close();
    if (saved !== undefined) process.env.SETLS_PIN = saved;
  }
  for (const d of [dir, `${dir}-pool1`]) {
    const { transport, card } = openCard({ cardDir: d });
    await transport.close();
    card.close();
  }
});

test('the demo (serve coap with HTTPS) --card-thread: libcoap over DTLS and Node over HTTPS share the card thread', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const { dir, ca } = await freshCard('e');
  const running = await startCoap({ cardDir: dir, cardThread: true, port: 0, httpsPort: 0, host: '127.0.0.1', backlog: 64, demoPsk: true, fixAlpn: true }, pino({ level: 'silent' }));
  try {
    const [dtls, https] = await Promise.all([
      run('coap-client-openssl', ['-B', '20', '-u', DEMO_PSK_IDENTITY, '-k', demoPskKey(dir), '-m', 'get', `coaps://127.0.0.1:${running.dtlsPort}/status`], { timeoutMs: 35_000 }),
      get(running.httpsPort!, ca, '/status'),
    ]);
    assert.match(dtls.stdout, /"transport":"coaps"/, dtls.stderr);
    assert.equal(https.status, 200);
  } finally {
    await running.close();
  }
  const { transport, card } = openCard({ cardDir: dir }); // closed: the folder is free again
  await transport.close();
  card.close();
});

test("setls/card openCard({ thread: true }): the library's card on a thread of its own", async () => {
  const { dir } = await freshCard('f');
  const card = await apiOpenCard({ cardDir: dir, thread: true });
  try {
    assert.equal(card.atr[0], 0x3b);
    const client = new CardClient(card.transport);
    await client.select();
    assert.ok((await client.cardInfo()).identities.includes('default'));
    assert.throws(() => openCard({ cardDir: dir }), errCode('ERR_CARD_LOCKED'));
  } finally {
    await card.close();
  }
  const again = await apiOpenCard({ cardDir: dir });
  await again.close();
});
