/**
 * A TlsPool over a card whose security domain locks it (SET STATUS CARD_LOCKED on an SCP03 session on
 * the card's last logical channel, as the operator's lock job does through the device's agent):
 *  - the client whose session meets the lock first is answered access_denied (the card refused
 *    SELECT as locked: 6283), not reset;
 *  - once every channel is known locked, clients are refused at once with access_denied by the pool
 *    — not at their queue deadline, set to 10 minutes here, far beyond the tests' 30 s hang bound;
 *  - after SET STATUS SECURED the next client is served at once: the recovery backoff is 10 minutes
 *    here, so only the pool's check of a locked card on a client's arrival can bring it back;
 *  - a pool started on a locked card starts (its agent must still be able to have it unlocked),
 *    refuses, and serves once the card is unlocked.
 * The same with a DTLS association waiting for a channel (acquireChannel): answered undefined at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { CardLifecycle, type AdminClient } from '../../src/gp/admin/index.js';
import { TlsPool, type SeTlsSocket } from '../../src/host/index.js';
import { InProcessTransport } from '../../src/transport/index.js';
import { adminOn, enrolSlot, sealedEmulatedCard, USER_PIN, type SealedCard } from '../card/sd-helpers.js';
import { within } from '../wait.js';

const TEN_MINUTES = 600_000;

interface Outcome {
  readonly ok: boolean;
  readonly code?: string;
}

/** One client: handshake, "ping" → "echo:ping"; or the error code the client saw. */
function exchange(port: number, c: SealedCard): Promise<Outcome> {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [new X509Certificate(c.ca.operatorRoot.cert).toString()] });
  const done = new Promise<Outcome>((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, code: e.code ?? e.message }));
    s.once('close', () => resolve({ ok: Buffer.concat(parts).toString() === 'echo:ping' }));
  });
  s.once('secureConnect', () => s.write('ping'));
  return within(done, 'a client exchange through the pool');
}

async function setup(opts: { lockFirst?: boolean } = {}): Promise<{ c: SealedCard; admin: AdminClient; pool: TlsPool; port: number; close(): Promise<void> }> {
  const c = await sealedEmulatedCard({ channels: 4 });
  const admin = await adminOn(c, 3); // channels 0–2 are the pool's
  await enrolSlot(admin, c.ca, 1);
  if (opts.lockFirst) await admin.setStatus(0x80, CardLifecycle.cardLocked);
  const pool = new TlsPool({
    transports: [new InProcessTransport((a) => c.card.process(a))],
    pin: USER_PIN,
    identity: 'slot1',
    channelsPerCard: 3,
    handshakeTimeoutMs: TEN_MINUTES,
    recoveryBackoffMs: TEN_MINUTES,
    maxRecoveryBackoffMs: TEN_MINUTES,
  });
  pool.on('sessionError', () => undefined);
  pool.on('secureConnection', (s: SeTlsSocket) => {
    s.on('data', (d: Buffer) => s.end(Buffer.concat([Buffer.from('echo:'), d])));
    s.on('error', () => undefined);
  });
  await pool.start();
  pool.listen(0, '127.0.0.1');
  const [addr] = (await once(pool, 'listening')) as [AddressInfo];
  return {
    c,
    admin,
    pool,
    port: addr.port,
    close: async () => {
      await pool.close();
      c.cleanup();
    },
  };
}

const ACCESS_DENIED = 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED';

test('locked while serving: access_denied for the client that meets the lock and at once for every later one; unlocked: served at once', async () => {
  const t = await setup();
  try {
    assert.deepEqual(await exchange(t.port, t.c), { ok: true }, 'served before the lock');
    await t.admin.setStatus(0x80, CardLifecycle.cardLocked);
    // the first client finds the card locked in its session (SELECT 6283): access_denied, not a reset
    assert.deepEqual(await exchange(t.port, t.c), { ok: false, code: ACCESS_DENIED });
    assert.ok(t.pool.slots.every((s) => s.health === 'down' && s.locked), 'the lock is the card\'s: every channel of it is out');
    // later clients, three at once: refused by the pool at once (their queue deadline is 10 minutes)
    const refused = await Promise.all([1, 2, 3].map(() => exchange(t.port, t.c)));
    assert.deepEqual(refused, [1, 2, 3].map(() => ({ ok: false, code: ACCESS_DENIED })));
    assert.ok(t.pool.stats.lockedRefusals >= 1, `refused by the pool: ${t.pool.stats.lockedRefusals}`);
    assert.equal(t.pool.stats.overloaded, 0, 'not the overload answer');
    // unlocked: the next client is served (the recovery backoff is 10 minutes: the check on arrival did it)
    await t.admin.setStatus(0x80, CardLifecycle.secured);
    assert.deepEqual(await exchange(t.port, t.c), { ok: true }, 'served again at once');
    assert.ok(t.pool.slots.some((s) => s.health === 'up' && !s.locked));
    const again = await Promise.all([1, 2, 3].map(() => exchange(t.port, t.c)));
    assert.deepEqual(again, [1, 2, 3].map(() => ({ ok: true })), 'every channel serves again');
  } finally {
    await t.close();
  }
});

test('a pool started on a locked card starts, refuses at once with access_denied, serves once unlocked; a DTLS association waiting is answered at once', async () => {
  const t = await setup({ lockFirst: true });
  try {
    assert.ok(t.pool.slots.every((s) => s.health === 'down' && s.locked), 'every channel starts locked');
    assert.deepEqual(await exchange(t.port, t.c), { ok: false, code: ACCESS_DENIED });
    // a DTLS association asking for a channel (its wait would be 10 minutes): none, at once
    assert.equal(await within(t.pool.acquireChannel({ address: '127.0.0.1' }, TEN_MINUTES), 'a DTLS channel request'), undefined);
    await t.admin.setStatus(0x80, CardLifecycle.secured);
    assert.deepEqual(await exchange(t.port, t.c), { ok: true });
    const lease = await within(t.pool.acquireChannel({ address: '127.0.0.1' }, TEN_MINUTES), 'a DTLS channel request');
    assert.ok(lease, 'a DTLS association gets a channel once unlocked');
    lease.release();
  } finally {
    await t.close();
  }
});
