// `setls card change-pin` and `setls card unblock` through the binary: the card takes the new PIN
// (checked with VERIFY through APDUs), the PIN file (or admin file) holds it with mode 0600, a
// blocked PIN comes back with the PUK, a served card and a leftover `.new` file are refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCard, initCard } from 'setls/card';
import { CardClient } from 'setls/host';
import { within } from '../wait.js';

const BIN = join(process.cwd(), 'bin/setls.mjs');
const root = mkdtempSync(join(tmpdir(), 'setls-pincmd-'));
const cardDir = join(root, 'card');
after(() => rmSync(root, { recursive: true, force: true }));
before(async () => {
  await initCard({ cardDir });
});

function setls(args: string[], env: Record<string, string | undefined> = {}): { code: number | null; stdout: string; stderr: string } {
  const e = { ...process.env, ...env };
  delete e.SETLS_PIN;
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: e, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** VERIFY `pin` on the card (in this process), resolving with the tries left when wrong. */
async function verify(pin: string, which: 'user' | 'operator' = 'user'): Promise<number | 'ok'> {
  const card = await openCard({ cardDir });
  try {
    const c = new CardClient(card.transport);
    await c.select();
    try {
      await c.verifyPin(pin, which);
      return 'ok';
    } catch (e) {
      return (e as { triesLeft?: number }).triesLeft ?? -1;
    }
  } finally {
    await card.close();
  }
}

const userPin = (): string => readFileSync(`${cardDir}.pin`, 'utf8').trim();
const adminDoc = (): { operatorPin: string; puk: string } => JSON.parse(readFileSync(`${cardDir}.admin.json`, 'utf8'));

test('change-pin: a new random user PIN on the card and in <card-dir>.pin (0600)', async () => {
  const before = userPin();
  const r = setls(['card', 'change-pin', '--card-dir', cardDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /user PIN changed; the new PIN is in .*card\.pin/);
  const after = userPin();
  assert.match(after, /^\d{6}$/);
  assert.notEqual(after, before);
  assert.equal(statSync(`${cardDir}.pin`).mode & 0o777, 0o600);
  assert.equal(await verify(after), 'ok');
  assert.notEqual(await verify(before), 'ok');
  assert.equal(await verify(after), 'ok'); // (resets the tries)
});

test('change-pin --which operator: the admin file gets the new operator PIN, the PUK is kept', async () => {
  const before = adminDoc();
  const r = setls(['card', 'change-pin', '--card-dir', cardDir, '--which', 'operator']);
  assert.equal(r.code, 0, r.stderr);
  const after = adminDoc();
  assert.notEqual(after.operatorPin, before.operatorPin);
  assert.equal(after.puk, before.puk);
  assert.equal(statSync(`${cardDir}.admin.json`).mode & 0o777, 0o600);
  assert.equal(await verify(after.operatorPin, 'operator'), 'ok');
});

test('unblock: a blocked user PIN comes back with the PUK of the admin file, under a new PIN', async () => {
  const old = userPin();
  for (const wrong of ['000001', '000002', '000003']) await verify(wrong === old ? '000004' : wrong);
  assert.equal(await verify(old), 0, 'blocked');
  const r = setls(['card', 'unblock', '--card-dir', cardDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /user PIN unblocked/);
  assert.equal(await verify(userPin()), 'ok');
});

test('change-pin with --new-pin-file takes that PIN; a leftover .new file stops the next run', async () => {
  const chosen = join(root, 'chosen.pin');
  writeFileSync(chosen, '24680\n', { mode: 0o600 });
  const r = setls(['card', 'change-pin', '--card-dir', cardDir, '--new-pin-file', chosen]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(userPin(), '24680');
  writeFileSync(`${cardDir}.pin.new`, '11111\n', { mode: 0o600 });
  const again = setls(['card', 'change-pin', '--card-dir', cardDir]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /ERR_CLI_PIN_PENDING/);
  rmSync(`${cardDir}.pin.new`);
  assert.equal(await verify('24680'), 'ok');
});

test('change-pin on a card another process serves is refused, naming that process', async () => {
  const p = spawn(process.execPath, [BIN, 'serve', 'https', '--card-dir', cardDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        let out = '';
        p.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (/serving HTTPS/.test(out)) resolve();
        });
        p.on('exit', (c) => reject(new Error(`serve exited ${c}`)));
      }),
      'serve https started',
    );
    const r = setls(['card', 'change-pin', '--card-dir', cardDir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`ERR_CLI_CARD_SERVED: the card is served by process ${p.pid}`));
    assert.equal(userPin(), '24680', 'the PIN file is untouched');
  } finally {
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await within(exited, 'serve stopped');
  }
});
