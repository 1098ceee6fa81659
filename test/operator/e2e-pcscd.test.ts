/**
 * The operator end to end through a REAL pcscd (test/pcsc/harness.ts: pcscd + vpcd in a private
 * network namespace, `setls card serve` joined to it): `setls operator init` / `serve`, a fresh
 * `setls card init` card in the reader, `setls serve https --reader … --operator …` (TLS on channel 0,
 * the device agent on a logical channel of its own, both through pcscd), `setls operator enrol --wait`
 * → curl verifies with the operator's CA and the served key is the card's attested key; lock → the
 * next TLS handshakes refused with access_denied, unlock → served. Skips locally when the harness cannot run (not root,
 * pcscd or vpcd missing); under CI a missing prerequisite fails.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inCI } from '../ci.js';
import { BIN, PcscLab, READER, pcscPrerequisites, startProc, waitFor, type Proc } from '../pcsc/harness.js';
import { tempDir } from './helpers.js';
import { exec, setls } from './processes.js';

const reason = await pcscPrerequisites();
if (reason && inCI()) throw new Error(`PC/SC tests cannot run in CI: ${reason}`);
const skip = reason ? `PC/SC path unavailable: ${reason}` : false;

let tmp: ReturnType<typeof tempDir>;
let lab: PcscLab | undefined;
const procs: Proc[] = [];


before(() => {
  tmp = tempDir('setls-e2e-pcscd-');
});
after(async () => {
  for (const p of procs.reverse()) await p.stop();
  await lab?.stop();
  tmp.cleanup();
});

test('through pcscd: operator init/serve, a fresh card in the reader, serve https --reader --operator, enrol --wait → curl verifies the card; lock refuses, unlock serves', { skip }, async () => {
  const D = join(tmp.dir, 'op');
  const C = join(tmp.dir, 'card');
  const mdir = join(tmp.dir, 'manufacturer');
  const ok = async (args: readonly string[]): Promise<string> => {
    const r = await setls(['operator', args[0]!, '--dir', D, ...args.slice(1)]);
    assert.equal(r.code, 0, `setls operator ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  // the card and its manifest entry before the reader holds it
  const ci = await setls(['card', 'init', '--card-dir', C, '--manufacturer-dir', mdir]);
  assert.equal(ci.code, 0, ci.stderr);
  const manifest = await setls(['card', 'manifest', '--card-dir', C, '--manufacturer-dir', mdir]);
  assert.equal(manifest.code, 0, manifest.stderr);
  const uid = JSON.parse(manifest.stdout).uid as string;
  writeFileSync(join(tmp.dir, 'manifest.json'), manifest.stdout);
  assert.equal((await setls(['operator', 'init', '--dir', D, '--manufacturer-ca', join(mdir, 'ca.crt'), '--manufacturer-keys', join(mdir, 'master.key')])).code, 0);
  const serve = startProc(process.execPath, [BIN, 'operator', 'serve', '--dir', D, '--port', '0']);
  procs.push(serve);
  const opUrl = await waitFor(
    'operator serve',
    () => {
      if (serve.child.exitCode !== null) throw new Error(`operator serve exited: ${serve.out}`);
      return /operator serving at (https:\/\/\S+?)\/?\s/.exec(serve.out)?.[1];
    },
    30_000,
  );
  await ok(['import-manifest', join(tmp.dir, 'manifest.json')]);
  writeFileSync(join(tmp.dir, 'agent.token'), (await ok(['agent-token', '--host', 'dev-pcscd'])).trim() + '\n', { mode: 0o600 });
  lab = new PcscLab(tmp.dir, C);
  await lab.start();
  const device = startProc(process.execPath, [BIN, 'serve', 'https', '--card-dir', C, '--reader', READER, '--port', '0', '--operator', opUrl, '--operator-ca', join(D, 'tls-ca.crt'), '--operator-token-file', join(tmp.dir, 'agent.token'), '--host-id', 'dev-pcscd']);
  procs.push(device);
  const port = await waitFor(
    'serve https --reader --operator',
    () => {
      if (device.child.exitCode !== null) throw new Error(`serve https exited: ${device.out}`);
      return /device agent: polling/.test(device.out) ? Number(/at https:\/\/localhost:(\d+)\//.exec(device.out)?.[1]) : undefined;
    },
    30_000,
  );
  const curl = () => exec('curl', ['-sS', '--max-time', '30', '--cacert', join(D, 'ca.crt'), `https://localhost:${port}/status`]);
  assert.notEqual((await curl()).code, 0, "before enrolment the card's local-CA identity does not verify with the operator's CA");

  const enrol = await setls(['operator', 'enrol', '--dir', D, uid, '--wait']);
  assert.equal(enrol.code, 0, `${enrol.stderr}\n${device.out}`);
  const c = await curl();
  assert.equal(c.code, 0, c.stderr);
  assert.equal(JSON.parse(c.stdout).tls.terminatedIn, 'secure element');
  const card = JSON.parse(await ok(['card', uid, '--json']));
  assert.equal(card.hostId, 'dev-pcscd');
  const s = await exec('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', join(D, 'ca.crt')]);
  const served = new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(s.stdout)![0]);
  const spki = createHash('sha256').update(served.publicKey.export({ format: 'der', type: 'spki' })).digest('hex');
  assert.equal(spki, card.identities.find((i: { state: string }) => i.state === 'active').spkiSha256, "the served key is the card's attested key");

  await ok(['lock', uid, '--wait']);
  const refused = await curl();
  assert.equal(refused.code, 35, `refused in the TLS handshake while locked: ${refused.stderr}`);
  assert.match(refused.stderr, /access denied/i, 'the locked card is answered with access_denied (through pcscd too)');
  const again = await curl();
  assert.equal(again.code, 35, again.stderr);
  assert.match(again.stderr, /access denied/i, 'and so is the next client, at once');
  await ok(['unlock', uid, '--wait']);
  assert.equal((await curl()).code, 0, 'served again after unlock');
});
