/**
 * Zero-touch EST enrolment (design §3.6 Mode B) end to end with real processes: `setls operator
 * init/serve` with the manufacturer's CA trusted and the cards' manifests imported, fresh `setls
 * card init` cards, then (1) `setls serve https --est URL` enrols the card before serving and `curl
 * --cacert <operator>/ca.crt …/status` verifies it; a restart does not enrol again; (2) `setls agent
 * --est URL` alone enrols another card and ends, then `serve https` on it verifies the same way.
 * No operator job, no admin keys: the card's plain enrolment functions and its attestation only.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { requirePeer } from '../interop/peers.js';
import { waitUntil } from '../wait.js';
import { exec, freePort, ProcessGroup, setls, type Proc } from './processes.js';

let tmp: ReturnType<typeof tempDir>;
let D: string;
let opUrl = '';
const procs = new ProcessGroup();
const run = (args: readonly string[]) => setls(args);
const background = (args: readonly string[]): Proc => procs.background(args);
const stop = (p: Proc): Promise<void> => procs.stop(p);

/** A fresh card whose manifest the operator imported. */
async function newCard(name: string): Promise<{ dir: string; uid: string }> {
  const dir = join(tmp.dir, name);
  const ci = await run(['card', 'init', '--card-dir', dir]);
  assert.equal(ci.code, 0, ci.stderr);
  const manifest = await run(['card', 'manifest', '--card-dir', dir]);
  assert.equal(manifest.code, 0, manifest.stderr);
  const file = join(tmp.dir, `${name}-manifest.json`);
  writeFileSync(file, manifest.stdout);
  const imp = await run(['operator', 'import-manifest', '--dir', D, file]);
  assert.equal(imp.code, 0, imp.stderr);
  return { dir, uid: JSON.parse(manifest.stdout).uid };
}

async function serveHttps(cardDir: string, extra: readonly string[] = []): Promise<{ proc: Proc; port: number }> {
  const port = await freePort();
  const proc = background(['serve', 'https', '--card-dir', cardDir, '--port', String(port), ...extra]);
  await waitUntil(() => /serving HTTPS/.test(proc.out) || proc.child.exitCode !== null, () => `serve https starts: ${proc.out}`);
  assert.equal(proc.child.exitCode, null, proc.out);
  return { proc, port };
}

const curlStatus = (port: number) => exec('curl', ['-sS', '--max-time', '30', '--cacert', join(D, 'ca.crt'), `https://localhost:${port}/status`]);

async function certificates(uid: string): Promise<any[]> {
  const r = await run(['operator', 'card', '--dir', D, uid, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).certificates;
}

before(async () => {
  tmp = tempDir('setls-zt-');
  D = join(tmp.dir, 'op');
});
after(async () => {
  await procs.stopAll();
  tmp.cleanup();
});

test('serve https --est: a fresh card enrols itself over EST before serving; curl --cacert <operator ca.crt> verifies; a restart does not enrol again', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  // the first card init makes the local manufacturer (.setls/manufacturer under the working folder of the CLI)
  const first = join(tmp.dir, 'card1');
  assert.equal((await run(['card', 'init', '--card-dir', first])).code, 0);
  const mdir = join(tmp.dir, 'manufacturer');
  const init = await run(['operator', 'init', '--dir', D, '--manufacturer-ca', join(mdir, 'ca.crt')]);
  assert.equal(init.code, 0, init.stderr);
  const port = await freePort();
  opUrl = `https://localhost:${port}`;
  const serve = background(['operator', 'serve', '--dir', D, '--port', String(port)]);
  await waitUntil(() => /operator serving at/.test(serve.out) || serve.child.exitCode !== null, () => `operator serve starts: ${serve.out}`);
  assert.equal(serve.child.exitCode, null, serve.out);

  const manifest = await run(['card', 'manifest', '--card-dir', first]);
  writeFileSync(join(tmp.dir, 'card1-manifest.json'), manifest.stdout);
  assert.equal((await run(['operator', 'import-manifest', '--dir', D, join(tmp.dir, 'card1-manifest.json')])).code, 0);
  const uid = JSON.parse(manifest.stdout).uid as string;

  const est = ['--est', opUrl, '--operator-ca', join(D, 'tls-ca.crt')];
  const a = await serveHttps(first, est);
  assert.match(a.proc.out, /est: card [0-9a-f]{32} enrolled: slot 1 active/, a.proc.out);
  const c = await curlStatus(a.port);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(JSON.parse(c.stdout).tls.terminatedIn, 'secure element');
  assert.equal((await certificates(uid)).length, 1, 'one certificate issued');
  await stop(a.proc);

  const b = await serveHttps(first, est);
  assert.match(b.proc.out, /est: card [0-9a-f]{32} already has an active identity: nothing to do/, b.proc.out);
  assert.equal((await curlStatus(b.port)).code, 0);
  assert.equal((await certificates(uid)).length, 1, 'no second certificate');
  await stop(b.proc);
});

test('setls agent --est alone enrols another card and ends; serve https on it then verifies with the operator CA', async (t) => {
  if (!opUrl) return t.skip('no operator');
  const card = await newCard('card2');
  const r = await run(['agent', '--card-dir', card.dir, '--est', opUrl, '--operator-ca', join(D, 'tls-ca.crt')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`EST enrolled \\(card ${card.uid}, slot 1\\)`), r.stdout);
  const s = await serveHttps(card.dir);
  const c = await curlStatus(s.port);
  assert.equal(c.code, 0, c.stderr);
  assert.equal((await certificates(card.uid)).length, 1);
  await stop(s.proc);
});

test('serve https --est with a pool is refused up front (one card enrols at a time)', async () => {
  const r = await run(['serve', 'https', '--card-dir', join(tmp.dir, 'none'), '--pool', '2', '--port', '0', '--est', 'https://localhost:1']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /ERR_CLI_OPTION.*--est enrols one card/);
});
