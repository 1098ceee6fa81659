// `setls operator audit run | findings | finding | resolve` through the binary (bin/setls.mjs)
// against an operator served by this process (found through <dir>/serve.json): a lock that was not
// delivered becomes a finding the CLI lists (table and --json) and resolves; refusals exit 1 with
// their ERR_OP_ code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { initOperator } from '../../src/operator/init.js';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { importManifest } from '../../src/operator/services/manifests.js';
import { makeManufacturer, SoftCard, tempDir } from './helpers.js';

const BIN = join(process.cwd(), 'bin/setls.mjs');
let tmp: ReturnType<typeof tempDir>;
let dir: string;
let svc: RunningOperator;
let card: SoftCard;

function setls(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

before(async () => {
  tmp = tempDir('setls-auditcli-');
  dir = join(tmp.dir, 'op');
  const m = await makeManufacturer('Audit CLI maker');
  await initOperator({ dir, manufacturerCaPems: [m.caPem] });
  svc = await startOperator({ dir, port: 0, quiet: true, runJobs: false });
  card = await SoftCard.create(m);
  const s = svc.operator.store;
  await importManifest(s, { cards: [card.manifestEntry()] }, 'test');
  const cardId = (await s.cardByUid(card.uid))!.id;
  const job = await s.insertJob({ id: randomUUID(), cardId, kind: 'lock', params: {}, maxAttempts: 1, deadlineAt: null, idempotencyKey: null, createdBy: 'test', createdAt: Date.now() });
  const held = (await s.claimJob({ owner: 't', now: Date.now(), leaseMs: 60_000, kinds: ['lock'] }))!;
  assert.ok(await s.finishJob(job.id, 't', held.attempt, { status: 'failed', errorCode: 'ERR_OP_AGENT_UNAVAILABLE', errorMessage: 'away', now: Date.now() }));
});
after(async () => {
  await svc.stop();
  tmp.cleanup();
});

test('audit run, findings, finding, resolve through the CLI', async () => {
  const run = await setls(['operator', 'audit', 'run', '--dir', dir, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const counts = JSON.parse(run.stdout).checks;
  assert.deepEqual(counts['lock-not-delivered'], { open: 1, new: 1, resolved: 0 });
  assert.equal(counts['shared-key'].open, 0);

  const human = await setls(['operator', 'audit', 'findings', '--dir', dir, '--status', 'open']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^FINDING +CHECK +SEVERITY +STATUS +CARD/m);
  assert.match(human.stdout, new RegExp(`lock-not-delivered +high +open +${card.uidHex}`));

  const list = await setls(['operator', 'audit', 'findings', '--dir', dir, '--json', '--card', card.uidHex]);
  const items = JSON.parse(list.stdout).items;
  assert.equal(items.length, 1);
  const id = items[0].id;
  const one = await setls(['operator', 'audit', 'finding', id, '--dir', dir]);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /ERR_OP_AGENT_UNAVAILABLE/);

  const res = await setls(['operator', 'audit', 'resolve', id, '--resolution', 'false-positive', '--dir', dir]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /resolved \(false-positive by /);
  const again = await setls(['operator', 'audit', 'resolve', id, '--dir', dir]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /ERR_OP_FINDING_RESOLVED/);

  // still failed, but a false positive: the next run does not report it again
  const rerun = JSON.parse((await setls(['operator', 'audit', 'run', '--dir', dir, '--json'])).stdout).checks;
  assert.deepEqual(rerun['lock-not-delivered'], { open: 0, new: 0, resolved: 0 });
});
