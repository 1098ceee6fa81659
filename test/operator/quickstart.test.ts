/**
 * The README's operator quick start, run as written: the two `npm run` lines it shows (their scripts
 * must be `setls operator up` and `setls operator device`), each script's command line run as its own
 * process (as npm would run it, without npm in between so that the process stopped is the one started), on
 * fresh state folders (--dir / --card-dir / --manufacturer-dir in a temp folder, port 0 instead of
 * 9443 and 8444 on a shared machine); then the README's curl line with the operator's CA verifies
 * the device, and the served leaf was issued by the operator's CA for the card's attested key. A
 * second `npm run device` on the same folders reuses the card, which is already enrolled. Peers
 * missing (curl, openssl): skipped locally, failed in CI.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirePeer } from '../interop/peers.js';
import { run } from '../interop/helpers.js';
import { waitUntil, within } from '../wait.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('setls-quickstart-');
const started: { child: ChildProcess; out: string; exited: Promise<unknown> }[] = [];
after(async () => {
  for (const p of started.reverse()) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    await within(p.exited, 'a quick start process stops', 15_000).catch(() => p.child.kill('SIGKILL'));
  }
  tmp.cleanup();
});

const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;

/**
 * `npm run <script> -- args`: the script's command line (plain words, after the `exec` that hands
 * npm's signals to node) with the args, in this folder.
 */
function npmRun(script: string, args: readonly string[]) {
  const [cmd, ...words] = scripts[script]!.replace(/^exec /, '').split(' ');
  const child = spawn(cmd === 'node' ? process.execPath : cmd!, [...words, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { child, out: '', exited: new Promise((r) => child.once('exit', r)) };
  child.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (p.out += d.toString()));
  started.push(p);
  return p;
}

test('README quick start: `npm run operator` and `npm run device` bring up an operator and an enrolled device; the README curl verifies it', async (t) => {
  if (!requirePeer(t, 'curl') || !requirePeer(t, 'openssl')) return;
  const readme = readFileSync('README.md', 'utf8');
  assert.match(readme, /^ {4}npm run operator\b/m);
  assert.match(readme, /^ {4}npm run device\b/m);
  assert.match(readme, /^ {4}curl --cacert \.setls\/operator\/ca\.crt https:\/\/localhost:8444\/status/m);
  assert.match(scripts['operator']!, /src\/cli\/main\.ts operator up$/);
  assert.match(scripts['device']!, /src\/cli\/main\.ts operator device$/);

  const D = join(tmp.dir, 'operator');
  const M = join(tmp.dir, 'manufacturer');
  const C = join(tmp.dir, 'device');
  const operator = npmRun('operator', ['--dir', D, '--manufacturer-dir', M, '--port', '0']);
  await waitUntil(() => /operator serving at https:/.test(operator.out) || operator.child.exitCode !== null, () => `npm run operator: ${operator.out}`, 60_000);
  assert.equal(operator.child.exitCode, null, operator.out);

  const device = npmRun('device', ['--dir', D, '--manufacturer-dir', M, '--card-dir', C, '--port', '0']);
  await waitUntil(() => /try: curl/.test(device.out) || device.child.exitCode !== null, () => `npm run device: ${device.out}`, 120_000);
  assert.equal(device.child.exitCode, null, device.out);
  assert.match(device.out, /enrol on [0-9a-f]{32}: succeeded/);
  const line = /try: (curl --cacert (\S+) (https:\/\/localhost:\d+\/status))/.exec(device.out)!;
  assert.equal(line[2], join(D, 'ca.crt'), "the device is verified with the operator's issuing CA");
  const c = await run('curl', ['-sS', '--max-time', '30', '--cacert', line[2]!, line[3]!]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(JSON.parse(c.stdout).tls.terminatedIn, 'secure element');
  const uid = /device ([0-9a-f]{32}) enrolled/.exec(device.out)![1]!;
  const card = await run(process.execPath, ['bin/setls.mjs', 'operator', 'card', uid, '--dir', D, '--json']);
  assert.equal(card.code, 0, card.stderr);
  const view = JSON.parse(card.stdout);
  assert.equal(view.state, 'active');
  const served = await run('openssl', ['s_client', '-connect', `127.0.0.1:${new URL(line[3]!).port}`, '-servername', 'localhost', '-CAfile', line[2]!], { input: '' });
  const leaf = new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(served.stdout)![0]);
  assert.ok(leaf.checkIssued(new X509Certificate(readFileSync(line[2]!))), "issued by the operator's CA");
  assert.equal(createHash('sha256').update(leaf.publicKey.export({ format: 'der', type: 'spki' })).digest('hex'), view.identities.find((i: { state: string }) => i.state === 'active').spkiSha256);

  // the second run: same card, already enrolled, serving again
  device.child.kill('SIGTERM');
  await within(device.exited, 'npm run device stops', 15_000);
  const again = npmRun('device', ['--dir', D, '--manufacturer-dir', M, '--card-dir', C, '--port', '0']);
  await waitUntil(() => /try: curl/.test(again.out) || again.child.exitCode !== null, () => `npm run device (again): ${again.out}`, 120_000);
  assert.equal(again.child.exitCode, null, again.out);
  assert.doesNotMatch(again.out, /card [0-9a-f]{32} made/, 'the card is reused');
  assert.doesNotMatch(again.out, /enrol on/, 'no second enrolment');
  const port2 = /try: curl --cacert \S+ https:\/\/localhost:(\d+)\/status/.exec(again.out)![1]!;
  assert.equal((await run('curl', ['-sS', '--max-time', '30', '--cacert', line[2]!, `https://localhost:${port2}/status`])).code, 0);
});

test('the CLI contract\'s defaults: operator serve and up listen on 127.0.0.1:9443 in .setls/operator; operator device serves :8444 from .setls/device', async () => {
  for (const [cmd, port] of [['serve', '9443'], ['up', '9443'], ['device', '8444']] as const) {
    const h = await run(process.execPath, ['bin/setls.mjs', 'operator', cmd, '--help']);
    assert.equal(h.code, 0, h.stderr);
    const text = h.stdout.replace(/\s+/g, ' ');
    assert.match(text, new RegExp(`--port <n> [^-]*\\(default: ${port}\\)`), `${cmd}: ${text}`);
    assert.match(text, /--host <addr> [^-]*\(default: "127\.0\.0\.1"\)/, cmd);
    assert.match(text, /--dir <dir> [^-]*\(default: "\.setls\/operator"\)/, cmd);
  }
  const d = (await run(process.execPath, ['bin/setls.mjs', 'operator', 'device', '--help'])).stdout.replace(/\s+/g, ' ');
  assert.match(d, /--card-dir <dir> [^-]*\(default: "\.setls\/device"\)/);
});
