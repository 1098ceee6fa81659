/**
 * The operator end to end with real processes: `setls operator init` and `setls operator serve`, a
 * fresh `setls card init` card behind `setls serve https --operator …` (the card in that process),
 * its manifest from `setls card manifest` imported, then every acceptance step through the CLI and
 * real peers: enrol → `curl --cacert <operator ca.crt>` verifies and the served key is the card's;
 * lock → the next TLS handshakes are refused with access_denied (also after the device restarts on
 * the locked card), unlock → served again; revoke → `openssl crl -CAfile`
 * verifies the new CRL and lists the serial (and the card is re-keyed); rekey → a new key served; a client CA pushed and a
 * client certificate deny-listed → `openssl s_client -cert` refused with certificate_revoked; a new
 * PIN printed once; the agent's log of it all holds no PIN, key or certificate bytes; refusals with
 * their codes (an unknown UID, an enrolled card enrolled again).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { requirePeer } from '../interop/peers.js';
import { waitUntil } from '../wait.js';
import { exec, freePort, ProcessGroup, setls, type Proc } from './processes.js';

let tmp: ReturnType<typeof tempDir>;
let D: string; // operator folder
let C: string; // card folder
let opUrl: string;
let httpsPort: number;
let uid: string;
const procs = new ProcessGroup();
const run = (args: readonly string[], opts: { input?: string } = {}) => setls(args, opts);
const background = (args: readonly string[]): Proc => procs.background(args);
let deviceProc: Proc | undefined;
/** The logs of device processes stopped (restarted) by earlier tests. */
const earlierDeviceLogs: string[] = [];

const op = (args: readonly string[]) => run(['operator', ...args.slice(0, 1), '--dir', D, ...args.slice(1)]);
const ok = async (args: readonly string[]): Promise<string> => {
  const r = await op(args);
  assert.equal(r.code, 0, `setls operator ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

/** `setls serve https --operator …` of the device (its card in that process). */
const deviceArgs = (): string[] => ['serve', 'https', '--card-dir', C, '--port', String(httpsPort), '--operator', opUrl, '--operator-ca', join(D, 'tls-ca.crt'), '--operator-token-file', join(tmp.dir, 'agent.token'), '--host-id', 'dev-e2e'];

/** curl of /status on the card with the operator's CA: the exit code and the body. */
const curl = () => exec('curl', ['-sS', '--max-time', '30', '--cacert', join(D, 'ca.crt'), `https://localhost:${httpsPort}/status`]);

/** The certificate the card serves (openssl s_client -showcerts), PEM; undefined when refused. */
async function servedCertificate(): Promise<X509Certificate | undefined> {
  const r = await exec('openssl', ['s_client', '-connect', `127.0.0.1:${httpsPort}`, '-servername', 'localhost', '-CAfile', join(D, 'ca.crt')]);
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout);
  return m ? new X509Certificate(m[0]) : undefined;
}

const spkiSha256 = (c: X509Certificate): string => createHash('sha256').update(c.publicKey.export({ format: 'der', type: 'spki' })).digest('hex');

before(async () => {
  tmp = tempDir('setls-e2e-');
  D = join(tmp.dir, 'op');
  C = join(tmp.dir, 'card');
});
after(async () => {
  await procs.stopAll();
  tmp.cleanup();
});

test('operator and device as real processes: card init, manifest, operator init/serve, agent token, serve https --operator, enrol --wait, curl verifies the card', async (t) => {
  if (!requirePeer(t, 'curl') || !requirePeer(t, 'openssl')) return;
  const ci = await run(['card', 'init', '--card-dir', C]);
  assert.equal(ci.code, 0, ci.stderr);
  const mdir = join(tmp.dir, 'manufacturer');
  const init = await run(['operator', 'init', '--dir', D, '--manufacturer-ca', join(mdir, 'ca.crt'), '--manufacturer-keys', join(mdir, 'master.key')]);
  assert.equal(init.code, 0, init.stderr);
  const port = await freePort();
  opUrl = `https://localhost:${port}`;
  const serve = background(['operator', 'serve', '--dir', D, '--port', String(port)]);
  await waitUntil(() => /operator serving at/.test(serve.out) || serve.child.exitCode !== null, () => `operator serve starts: ${serve.out}`);
  assert.equal(serve.child.exitCode, null, serve.out);
  const token = (await ok(['agent-token', '--host', 'dev-e2e'])).trim();
  writeFileSync(join(tmp.dir, 'agent.token'), token + '\n', { mode: 0o600 });
  const manifest = await run(['card', 'manifest', '--card-dir', C]);
  assert.equal(manifest.code, 0, manifest.stderr);
  uid = JSON.parse(manifest.stdout).uid;
  writeFileSync(join(tmp.dir, 'manifest.json'), manifest.stdout);
  assert.match(await ok(['import-manifest', join(tmp.dir, 'manifest.json')]), /1 card\(s\) imported/);
  httpsPort = await freePort();
  const device = (deviceProc = background(deviceArgs()));
  await waitUntil(() => /device agent: polling/.test(device.out) || device.child.exitCode !== null, () => `serve https starts: ${device.out}`);
  assert.equal(device.child.exitCode, null, device.out);
  // Before enrolment the card serves its local-CA identity: the operator's CA does not verify it.
  assert.notEqual((await curl()).code, 0);
  const enrol = await op(['enrol', uid, '--wait']);
  assert.equal(enrol.code, 0, enrol.stderr);
  assert.match(enrol.stderr, /enrol on [0-9a-f]{32}: succeeded/);
  const c = await curl();
  assert.equal(c.code, 0, c.stderr);
  assert.equal(JSON.parse(c.stdout).tls.terminatedIn, 'secure element');
  // the card's attestation (security-domain format, certificate from `setls card manifest`) was
  // checked from what manifest import verified, not parsed and chain-checked again
  const adminToken = readFileSync(join(D, 'admin.token'), 'utf8').trim();
  const metrics = await exec('curl', ['-sS', '--max-time', '30', '--cacert', join(D, 'tls-ca.crt'), '-H', `Authorization: Bearer ${adminToken}`, `${opUrl}/metrics`]);
  assert.equal(metrics.code, 0, metrics.stderr);
  assert.match(metrics.stdout, /setls_operator_attestations_verified_total\{chain="manifest"\} 1\n/);
  assert.doesNotMatch(metrics.stdout, /setls_operator_attestations_verified_total\{chain="full"\}/);
  const card = JSON.parse(await ok(['card', uid, '--json']));
  assert.equal(card.state, 'active');
  assert.equal(card.hostId, 'dev-e2e');
  const served = (await servedCertificate())!;
  assert.equal(spkiSha256(served), card.identities.find((i: any) => i.state === 'active').spkiSha256, "the served certificate's key is the card's attested key");
  assert.equal(BigInt(`0x${served.serialNumber}`), BigInt(`0x${card.certificates[0].serial}`));
  assert.deepEqual(JSON.parse(await ok(['cards', '--state', 'active', '--json'])).items.map((x: any) => x.uid), [uid], 'cards --state active');
  assert.deepEqual(JSON.parse(await ok(['cards', '--state', 'manifest', '--json'])).items, [], 'cards --state manifest');
  assert.match(await ok(['cards']), new RegExp(`${uid} +active`), 'the human table');
  const info = await run(['card', 'info', '--card-dir', C, '--json']);
  assert.equal(info.code, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).uid, uid, 'card info --json shows the UID');
});

test('lock → the next TLS handshake is refused; unlock → served again', async (t) => {
  if (!uid) return t.skip('no enrolled card');
  await ok(['lock', uid, '--wait']);
  const refused = await curl();
  assert.equal(refused.code, 35, `refused in the TLS handshake while locked (curl: SSL connect error): ${refused.stderr}`);
  assert.match(refused.stderr, /access denied/i, 'the locked card is answered with an access_denied alert, not a reset or a queue deadline');
  const again = await curl();
  assert.equal(again.code, 35, again.stderr);
  assert.match(again.stderr, /access denied/i, 'and so is the next client (refused by the pool at once)');
  // the device restarted while its card is locked: it starts (its agent must be able to have the
  // card unlocked), refuses clients, and serves again after the unlock
  await procs.stop(deviceProc!);
  earlierDeviceLogs.push(deviceProc!.out);
  const device = (deviceProc = background(deviceArgs()));
  await waitUntil(() => /device agent: polling/.test(device.out) || device.child.exitCode !== null, () => `serve https starts on a locked card: ${device.out}`);
  assert.equal(device.child.exitCode, null, device.out);
  const locked = await curl();
  assert.equal(locked.code, 35, locked.stderr);
  assert.match(locked.stderr, /access denied/i);
  await ok(['unlock', uid, '--wait']);
  const c = await curl();
  assert.equal(c.code, 0, c.stderr);
});

test('revoke → openssl crl -CAfile verifies the new CRL and finds the serial; the card is re-keyed and serves a good certificate', async (t) => {
  if (!uid) return t.skip('no enrolled card');
  const card = JSON.parse(await ok(['card', uid, '--json']));
  const serial = card.certificates.find((x: any) => x.status === 'good').serial as string;
  const rev = JSON.parse(await ok(['revoke', serial, '--reason', 'keyCompromise', '--json']));
  assert.equal(rev.cardAction, 'rekey');
  const crlFile = join(tmp.dir, 'crl.der');
  const dl = await exec('curl', ['-sS', '--cacert', join(D, 'tls-ca.crt'), '-o', crlFile, `${opUrl}/v1/ca/crl`]);
  assert.equal(dl.code, 0, dl.stderr);
  const v = await exec('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-CAfile', join(D, 'ca.crt'), '-noout', '-text']);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stderr + v.stdout, /verify OK/);
  assert.match(v.stdout.toUpperCase(), new RegExp(`SERIAL NUMBER: ${serial.toUpperCase().replace(/^0+/, '')}`));
  assert.equal((await op(['job', rev.job.id, '--wait'])).code, 0);
  const served = (await servedCertificate())!;
  assert.notEqual(BigInt(`0x${served.serialNumber}`), BigInt(`0x${serial}`), 'the card serves its new certificate');
  assert.equal((await curl()).code, 0);
});

test('rekey --wait → the card serves a new key in another slot, certified by the operator; curl still verifies', async (t) => {
  if (!uid) return t.skip('no enrolled card');
  const before = (await servedCertificate())!;
  const r = await op(['rekey', uid, '--wait']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /rekey on [0-9a-f]{32}: succeeded/);
  const after = (await servedCertificate())!;
  assert.notEqual(spkiSha256(after), spkiSha256(before), 'a new key');
  const card = JSON.parse(await ok(['card', uid, '--json']));
  assert.equal(spkiSha256(after), card.identities.find((i: any) => i.state === 'active').spkiSha256, "the served key is the card's active attested key");
  assert.equal((await curl()).code, 0);
});

test('a client CA pushed and a client certificate deny-listed → openssl s_client -cert is refused with certificate_revoked', async (t) => {
  if (!uid) return t.skip('no enrolled card');
  const dir = tmp.dir;
  const o = (args: string[]) => exec('openssl', args);
  assert.equal((await o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'cca.key'), '-out', join(dir, 'cca.pem'), '-subj', '/CN=client CA', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'])).code, 0);
  assert.equal((await o(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'cl.key'), '-out', join(dir, 'cl.csr'), '-subj', '/CN=client'])).code, 0);
  assert.equal((await o(['x509', '-req', '-in', join(dir, 'cl.csr'), '-CA', join(dir, 'cca.pem'), '-CAkey', join(dir, 'cca.key'), '-set_serial', '0x5e71', '-days', '30', '-out', join(dir, 'cl.pem')])).code, 0);
  await ok(['push-client-cas', uid, '--cert', join(dir, 'cca.pem'), '--client-auth', 'optional', '--wait']);
  // -ign_eof and a request: s_client reads the server's answer (TLS 1.3 checks the client certificate after the server's Finished)
  const get = 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
  const sClient = () => exec('openssl', ['s_client', '-connect', `127.0.0.1:${httpsPort}`, '-servername', 'localhost', '-CAfile', join(D, 'ca.crt'), '-ign_eof', '-cert', join(dir, 'cl.pem'), '-key', join(dir, 'cl.key')], { input: get });
  const accepted = await sClient();
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.match(accepted.stdout, /HTTP\/1\.1 200/, 'accepted before the deny-list');
  assert.match(accepted.stdout, /"subject":"CN=client"/, 'the card saw the client certificate');
  await ok(['push-deny-list', uid, '--serial', '5e71', '--wait']);
  const r = await sClient();
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /alert certificate revoked/i, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /HTTP\/1\.1/);
  await ok(['push-deny-list', uid, '--serial', '01', '--wait']); // lift it for the later tests
});

test("a new PIN is printed once to the caller; the agent's log of enrolment, re-key and PIN reset holds no PIN, key or certificate bytes", async (t) => {
  if (!uid) return t.skip('no enrolled card');
  const r = await op(['unblock-pin', uid, '--new-pin', '--wait']);
  assert.equal(r.code, 0, r.stderr);
  const pin = /new user PIN: (\d{8})/.exec(r.stdout)?.[1];
  assert.ok(pin, r.stdout);
  // the device's whole log: the process stopped in the lock test, then the one running now
  const agentLines = [...earlierDeviceLogs, deviceProc!.out].join('\n').split('\n').filter((l) => l.includes('agent:'));
  assert.ok(agentLines.length > 5, 'the agent logged its scripts');
  const log = agentLines.join('\n');
  assert.ok(!log.includes(pin!), 'no PIN');
  const card = JSON.parse(await ok(['card', uid, '--json']));
  for (const c of card.certificates) {
    const der = Buffer.from(JSON.parse(await ok(['certificate', c.serial, '--json'])).certificate.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    for (let i = 0; i + 4 <= der.length; i += 16) assert.ok(!log.toLowerCase().includes(der.subarray(i, i + 4).toString('hex')), `certificate bytes ${i}.. in the agent log`);
  }
});

test('refusals with their codes through the CLI: enrol and lock of a UID in no manifest; a re-enrolment of an enrolled card', async (t) => {
  for (const kind of ['enrol', 'lock']) {
    const unknown = await op([kind, '00112233445566778899aabbccddeeff', '--wait']);
    assert.equal(unknown.code, 1, kind);
    assert.match(unknown.stderr, /^setls: ERR_OP_UNKNOWN_CARD: /m, kind);
  }
  if (!uid) return t.skip('no enrolled card');
  const again = await op(['enrol', uid, '--wait']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^setls: ERR_OP_[A-Z_]+: /m);
});
