/**
 * node:crypto on Node 20 can deadlock when a KeyObject made by generateKeyPairSync is exported as a
 * JWK (tls/crypto.ts, JWK_PUBLIC): the card made one x25519 key share that way per full handshake.
 * The test runs the card's key-share code in a child process 100 000 times; a hang is killed at the
 * deadline and fails the test. The deadlock depends on when a garbage collection lands, so a single
 * run can miss it: before the fix the x25519 loop hung within 5 000–50 000 keys in every try here.
 * (card/identity imports its generated key back for the same reason; a loop of 20 000 identities did
 * not hang even before, so that path has no test of its own.)
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const DEADLINE_MS = 180_000;

function runChild(fixture: string, n: number): Promise<{ code: number | null; out: string; hung: boolean }> {
  const file = fileURLToPath(new URL(`../fixtures/keygen/${fixture}`, import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, String(n)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let hung = false;
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    // a deadlocked node does not run its SIGTERM handler: SIGKILL
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, DEADLINE_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, hung });
    });
  });
}

test('100 000 x25519 key shares (generate, then derive) do not hang the process', { timeout: DEADLINE_MS + 30_000 }, async () => {
  const r = await runChild('x25519-loop.ts', 100_000);
  assert.equal(r.hung, false, `the x25519 loop hung (killed after ${DEADLINE_MS} ms): ${r.out.slice(-300)}`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^done 100000 ok$/m);
});
