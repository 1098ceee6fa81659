// The operator CLI through the binary (bin/setls.mjs), from a fresh `setls operator init` in a temp
// folder: files and modes, `serve` (curl checks its HTTPS with tls-ca.crt), tokens, manifest import,
// cards / card / jobs (tables and --json), job commands with --wait (exit 0 only on success; a job
// that fails with `integrity` exits 1 with its code), revoke, and a clear error for each refusal.
// Job execution through a device agent is wired at integration: here the operator runs in this test
// process with software executors (an enrolment over a software attestation; a lock that fails
// integrity), and the CLI finds it through <dir>/serve.json.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { statSync, existsSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { JobError } from '../../src/operator/jobs/runner.js';
import { makeCsr, makeManufacturer, SoftCard, tempDir, type Manufacturer } from './helpers.js';
import { requirePeer } from '../interop/peers.js';
import { waitUntil, within } from '../wait.js';

const BIN = join(process.cwd(), 'bin/setls.mjs');
let tmp: ReturnType<typeof tempDir>;
let dir: string;
let m: Manufacturer;
const cards: SoftCard[] = [];
let svc: RunningOperator | undefined;

function setls(args: readonly string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `setls …` in the background (for commands that talk to the operator served by this process). */
function setlsAsync(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
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
  tmp = tempDir('setls-opcli-');
  dir = join(tmp.dir, 'op');
  m = await makeManufacturer('CLI Manufacturer');
  writeFileSync(join(tmp.dir, 'manufacturer.pem'), m.caPem);
  for (let i = 0; i < 3; i++) cards.push(await SoftCard.create(m));
  writeFileSync(join(tmp.dir, 'manifest.json'), JSON.stringify({ name: 'cli batch', cards: cards.map((c) => c.manifestEntry()) }));
});
after(async () => {
  await svc?.stop();
  tmp.cleanup();
});

test('operator init creates the state with secret files 0600 and refuses to run twice', () => {
  const r = setls(['operator', 'init', '--dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /operator created in /);
  assert.match(r.stdout, /CA SHA-256: +([0-9A-F]{2}:){31}[0-9A-F]{2}/);
  for (const f of ['admin.token', 'ca.key', 'tls.key', 'tls-ca.key', 'keys/admin-master-v1.key']) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  for (const f of ['ca.crt', 'tls.crt', 'tls-ca.crt', 'operator.db', 'operator.json']) assert.ok(existsSync(join(dir, f)), f);
  assert.match(readFileSync(join(dir, 'admin.token'), 'utf8'), /^sop_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/);
  // No private key and no token in the database file.
  const db = readFileSync(join(dir, 'operator.db'));
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  // sop_<id>_<secret>: the secret is base64url, which may itself contain '_'.
  const secret = token.split('_').slice(2).join('_');
  assert.ok(secret.length >= 43, 'a whole 32-byte secret');
  assert.ok(!db.includes(Buffer.from(secret)), 'token secret not in the database');
  const master = readFileSync(join(dir, 'keys/admin-master-v1.key'), 'utf8').trim();
  assert.ok(!db.includes(Buffer.from(master, 'hex')) && !db.includes(Buffer.from(master)), 'master key not in the database');
  const again = setls(['operator', 'init', '--dir', dir]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /ERR_OP_STATE_EXISTS/);
  const t = setls(['operator', 'trust-manufacturer', '--dir', dir, join(tmp.dir, 'manufacturer.pem')]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /trusted: CLI Manufacturer attestation CA/);
});

test('operator serve answers over HTTPS with its own certificate (curl --cacert tls-ca.crt) and stops on SIGTERM', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const p = spawn(process.execPath, [BIN, 'operator', 'serve', '--dir', dir, '--port', '0']);
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  await waitUntil(() => /operator serving at https:\/\/localhost:\d+\//.test(out), () => `serve printed its URL: ${out}`, 60_000);
  const url = /operator serving at (https:\/\/localhost:\d+)\//.exec(out)![1]!;
  assert.equal(JSON.parse(readFileSync(join(dir, 'serve.json'), 'utf8')).url, url);
  const c = spawnSync('curl', ['-sS', '--cacert', join(dir, 'tls-ca.crt'), `${url}/healthz`], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(c.status, 0, c.stderr);
  assert.deepEqual(JSON.parse(c.stdout), { status: 'ok', schema: 1, store: 'sqlite' });
  // Not trusted through the issuing CA (a separate TLS CA certifies the operator itself).
  const wrong = spawnSync('curl', ['-sS', '--cacert', join(dir, 'ca.crt'), `${url}/healthz`], { encoding: 'utf8', timeout: 30_000 });
  assert.notEqual(wrong.status, 0);
  p.kill('SIGTERM');
  assert.equal(await within(exited, 'serve exits on SIGTERM'), 0);
  assert.ok(!existsSync(join(dir, 'serve.json')));
});

test('the operator service with software executors: import, list, enrol --wait, failing lock --wait, revoke, refusals', async () => {
  svc = await startOperator({
    dir,
    port: 0,
    quiet: true,
    runner: { pollMs: 200 },
    setup: ({ operator }) => {
      operator.runner.register('enrol', async (job, ctx) => {
        const card = cards.find((c) => Buffer.from(c.uid).equals(Buffer.from(ctx.card.uid)))!;
        const n = await operator.enrolment.issueNonce(ctx.card.uid, job.id);
        const { keys, spki } = await SoftCard.identityKey();
        const r = await operator.enrolment.complete({ uid: ctx.card.uid, evidence: card.attest(spki, n.nonce), csrDer: await makeCsr(keys), jobId: job.id, expectedEnrolmentId: n.enrolmentId });
        return { serial: Buffer.from(r.certificate.serial).toString('hex') };
      });
      operator.runner.register('lock', async () => {
        throw new JobError('ERR_OP_INTEGRITY', 'R-MAC of response 2 does not verify');
      });
    },
  });
  const imp = await setlsAsync(['operator', 'import-manifest', '--dir', dir, join(tmp.dir, 'manifest.json')]);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /3 card\(s\) imported/);
  const list = await setlsAsync(['operator', 'cards', '--dir', dir]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^UID +STATE +KVN +LABELS +UPDATED\n/);
  for (const c of cards) assert.match(list.stdout, new RegExp(`${c.uidHex} +manifest +30`));
  const uid = cards[0]!.uidHex;
  const enrol = await setlsAsync(['operator', 'enrol', '--dir', dir, uid, '--wait', '--dns', 'plug.example']);
  assert.equal(enrol.code, 0, enrol.stderr);
  assert.match(enrol.stderr, /enrol on [0-9a-f]{32}: queued/);
  assert.match(enrol.stderr, /enrol on [0-9a-f]{32}: succeeded/);
  const card = await setlsAsync(['operator', 'card', '--dir', dir, uid, '--json']);
  const cardJson = JSON.parse(card.stdout);
  assert.equal(cardJson.state, 'enrolled');
  assert.equal(cardJson.certificates.length, 1);
  assert.deepEqual(cardJson.certificates[0].san, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
  const human = await setlsAsync(['operator', 'card', '--dir', dir, uid]);
  assert.match(human.stdout, new RegExp(`card ${uid}  state enrolled`));
  assert.match(human.stdout, /slot 1 p256 generated/);
  // lock needs an owned card (enrolled): it runs and fails with integrity → exit 1 with the code
  const lock = await setlsAsync(['operator', 'lock', '--dir', dir, uid, '--wait']);
  assert.equal(lock.code, 1);
  assert.match(lock.stderr, /lock on [0-9a-f]{32}: failed \(integrity\)/);
  assert.match(lock.stderr, /setls: ERR_OP_INTEGRITY: job [0-9a-f-]+ failed \(integrity\)/);
  const jobs = JSON.parse((await setlsAsync(['operator', 'jobs', '--dir', dir, '--card', uid, '--json'])).stdout);
  assert.deepEqual(jobs.items.map((j: { kind: string; status: string }) => `${j.kind}:${j.status}`), ['lock:failed', 'enrol:succeeded']);
  const table = await setlsAsync(['operator', 'jobs', '--dir', dir]);
  assert.match(table.stdout, /^JOB +CARD +KIND +STATUS/);
  assert.match(table.stdout, /lock +failed \(integrity\)/);
  // revoke the enrolment's certificate
  const serial = cardJson.certificates[0].serial as string;
  const rev = await setlsAsync(['operator', 'revoke', '--dir', dir, serial, '--reason', 'keyCompromise']);
  assert.equal(rev.code, 0, rev.stderr);
  assert.match(rev.stdout, new RegExp(`certificate ${serial} revoked \\(keyCompromise\\); CRL number \\d+ published`));
  // refusals: unknown card, state, role (a viewer token), revoke twice, a manifest from an untrusted maker
  const unknown = await setlsAsync(['operator', 'enrol', '--dir', dir, '00112233445566778899aabbccddeeff']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^setls: ERR_OP_UNKNOWN_CARD: no card 00112233445566778899aabbccddeeff\n$/);
  const state = await setlsAsync(['operator', 'unlock', '--dir', dir, cards[1]!.uidHex]);
  assert.match(state.stderr, /ERR_OP_CARD_STATE: 'unlock' is not possible while card [0-9a-f]+ is manifest/);
  const viewerToken = setls(['operator', 'token', '--dir', dir, '--role', 'viewer', '--name', 'dash']).stdout.trim();
  writeFileSync(join(tmp.dir, 'viewer.token'), viewerToken + '\n');
  const denied = await setlsAsync(['operator', 'enrol', '--dir', dir, '--token-file', join(tmp.dir, 'viewer.token'), cards[1]!.uidHex]);
  assert.match(denied.stderr, /ERR_OP_FORBIDDEN: 'enrol' needs the operator role; this token is viewer/);
  const again = await setlsAsync(['operator', 'revoke', '--dir', dir, serial]);
  assert.match(again.stderr, /ERR_OP_ALREADY_REVOKED/);
  const rogue = await SoftCard.create(await makeManufacturer('Rogue'));
  writeFileSync(join(tmp.dir, 'rogue.json'), JSON.stringify([rogue.manifestEntry()]));
  const bad = await setlsAsync(['operator', 'import-manifest', '--dir', dir, join(tmp.dir, 'rogue.json')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /ERR_OP_MANIFEST_INVALID: entry 0 \([0-9a-f]+\): ERR_OP_ATTESTATION_CHAIN: .* does not chain to a trusted manufacturer CA; nothing imported/);
  const unreachable = await setlsAsync(['operator', 'cards', '--dir', dir, '--url', 'https://localhost:1']);
  assert.match(unreachable.stderr, /ERR_OP_UNREACHABLE: cannot reach the operator at https:\/\/localhost:1/);
});
