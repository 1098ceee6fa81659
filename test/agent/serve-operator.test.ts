/**
 * `setls serve https --operator …` as a real OS process: the TLS service keeps serving real `curl`
 * clients on channel 0 while the device agent, in the same process and on the same card transport,
 * runs the operator's scripts on a logical channel of its own (here: to the setls applet, since the
 * card's security domain is another branch's work; --card-uid gives the UID meanwhile). Also: the
 * agent's log holds no APDU bytes, and `setls agent` alone refuses a bad operator URL.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { startServe } from '../cli/serve-process.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { SETLS_AID } from '../../src/host/card-client.js';
import { requirePeer } from '../interop/peers.js';
import { run } from '../interop/helpers.js';
import { makePki, startOperator, type TestOperator, type TestPki } from './operator-fixture.js';
import { waitUntil } from '../wait.js';

const BIN = join(process.cwd(), 'bin/setls.mjs');
const root = mkdtempSync(join(tmpdir(), 'setls-agent-'));
let pki: TestPki;
let op: TestOperator;
before(async () => {
  pki = await makePki();
  op = await startOperator(pki, { tokens: new Map([['device-token-1', 'dev-1']]) });
  writeFileSync(join(root, 'operator-ca.pem'), pki.caPem);
  writeFileSync(join(root, 'agent.token'), 'device-token-1\n', { mode: 0o600 });
});
after(async () => {
  await op.close();
  rmSync(root, { recursive: true, force: true });
});

const UID = '5E7150000000000000000000000000A1';
const hex = (b: Uint8Array): string => toHex(b).toUpperCase();

function setls(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const READY = /serving HTTPS through the card at https:\/\/localhost:(\d+)\/[\s\S]*device agent: polling[\s\S]*try: curl .*\n/;
const serve = (args: string[]) => startServe('https', args, READY);

test('serve https --operator: curl keeps being served on channel 0 while the agent runs scripts on its own channel', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const dir = join(root, 'card');
  const init = setls(['card', 'init', '--card-dir', dir]);
  assert.equal(init.code, 0, init.stderr);
  const cardCa = join(root, 'ca', 'ca.crt');
  const s = await serve([
    '--card-dir', dir, '--port', '0',
    '--operator', op.url, '--operator-ca', join(root, 'operator-ca.pem'), '--operator-token-file', join(root, 'agent.token'),
    '--host-id', 'dev-1', '--card-uid', UID,
  ]);
  try {
    await waitUntil(() => op.hub.hosts().some((h) => h.hostId === 'dev-1' && h.cards.includes(UID)), 'the agent polls with the card UID');
    const curl = () => run('curl', ['-sS', '--max-time', '20', '--cacert', cardCa, `https://localhost:${s.port}/status`], { timeoutMs: 30_000 });
    // GET DATA (card info, no PIN) → data; GET-STATE needs the user PIN → 6982: the script stops there.
    const script = [fromHex('A0CA000000'), fromHex('A019000001'), fromHex('A0CA000000')];
    const curls: { code: number | null; stdout: string }[] = [];
    const results: { status: string; sws: string[]; data: Uint8Array }[] = [];
    let curling = true;
    await Promise.all([
      (async () => {
        for (let i = 0; i < 8; i++) curls.push(await curl());
        curling = false;
      })(),
      (async () => {
        // Scripts run for as long as the curls do (and at least 8 of them).
        for (let i = 0; i < 8 || curling; i++) {
          const r = await op.hub.runScript(fromHex(UID), SETLS_AID, script, { timeoutMs: 30_000 });
          results.push({ status: r.status, sws: r.rapdus.map((x) => hex(x.subarray(x.length - 2))), data: r.rapdus[0]!.subarray(0, r.rapdus[0]!.length - 2) });
        }
      })(),
    ]);
    for (const c of curls) {
      assert.equal(c.code, 0);
      assert.match(c.stdout, /setls demo plug/);
    }
    for (const r of results) {
      assert.equal(r.status, 'ok');
      assert.deepEqual(r.sws, ['9000', '6982'], 'stopped at the first error; the third command never ran');
      assert.ok(r.data.length > 16, 'card info came back');
    }
    // After the scripts the service still answers, and the agent's log shows lengths and SWs only.
    assert.equal((await curl()).code, 0);
    const out = s.output();
    assert.match(out, /agent: script for card 5E715000…00A1 \(3 C-APDUs, 15 bytes\): ok; channel 3: 2\/3 APDUs/);
    if (process.env.SHOW_AGENT) console.log(out);
    const info = hex(results[0]!.data);
    for (let i = 0; i + 16 <= info.length; i += 2) assert.ok(!out.toUpperCase().includes(info.slice(i, i + 16)), `the server output holds card-info bytes ${info.slice(i, i + 16)}`);
  } finally {
    await s.stop();
  }
});

test('setls agent refuses an operator URL that is not https://host:port, and a missing token file', () => {
  const dir = join(root, 'card2');
  assert.equal(setls(['card', 'init', '--card-dir', dir]).code, 0);
  const http = setls(['agent', '--card-dir', dir, '--operator', 'http://localhost:1', '--card-uid', UID]);
  assert.notEqual(http.code, 0);
  assert.match(http.stderr, /ERR_AGENT_OPTION: --operator: the operator URL must be https:\/\//);
  const path = setls(['agent', '--card-dir', dir, '--operator', 'https://localhost:1/x', '--card-uid', UID]);
  assert.match(path.stderr, /without path/);
  const tok = setls(['agent', '--card-dir', dir, '--operator', 'https://localhost:1', '--operator-token-file', join(root, 'nope'), '--card-uid', UID]);
  assert.notEqual(tok.code, 0);
  assert.match(tok.stderr, /ENOENT/);
});

test('setls agent alone (in-process card): polls, runs a script on its own channel, stops on SIGTERM', async () => {
  const dir = join(root, 'card3');
  assert.equal(setls(['card', 'init', '--card-dir', dir]).code, 0);
  const uid = '5E7150000000000000000000000000A3';
  const proc = spawn(process.execPath, [BIN, 'agent', '--card-dir', dir, '--operator', op.url, '--operator-ca', join(root, 'operator-ca.pem'), '--operator-token-file', join(root, 'agent.token'), '--host-id', 'dev-1', '--card-uid', uid]);
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  try {
    await waitUntil(() => /agent of host dev-1 polling/.test(out), () => `the agent starts: ${out}`, 60_000);
    await waitUntil(() => op.hub.hosts().some((h) => h.cards.includes(uid)), 'the agent polls with the card');
    const r = await op.hub.runScript(fromHex(uid), SETLS_AID, [fromHex('A0CA000000')], { timeoutMs: 30_000 });
    assert.equal(r.status, 'ok');
    assert.equal(hex(r.rapdus[0]!.subarray(r.rapdus[0]!.length - 2)), '9000');
  } finally {
    proc.kill('SIGTERM');
  }
  assert.equal(await exited, 0, out);
  assert.match(out, /agent: stopped/);
});
