// One owner of a card folder, through the real `setls` binary as separate OS processes (issue #11 §2
// and §5): two servers cannot share a card; administrative commands on a served card go through the
// server's admin socket and are never overwritten by its older copy; the card clock can be reset; a
// fresh `card init` serves coaps+tcp clients; `--record-layer host` refuses a card that forbids export.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { startServe } from './serve-process.js';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { requirePeer } from '../interop/peers.js';
import { run } from '../interop/helpers.js';

const root = mkdtempSync(join(tmpdir(), 'setls-owner-'));
after(() => rmSync(root, { recursive: true, force: true }));

const BIN = join(process.cwd(), 'bin/setls.mjs');

interface Done {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function setls(args: string[], env: Record<string, string> = {}): Done {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[]): Done {
  const r = setls(args);
  assert.equal(r.code, 0, `setls ${args.join(' ')}: ${r.stderr}`);
  return r;
}

const serve = startServe;

// The last line each server prints once it listens (so every note before it is in the output).
const HTTPS_READY = /serving HTTPS through the card at https:\/\/localhost:(\d+)\/[\s\S]*try: curl .*\n/;
const COAP_READY = /serving CoAP over TLS through the card at coaps\+tcp:\/\/localhost:(\d+)[\s\S]*try: .*\.well-known\/core\n/;

function newCard(name: string): { dir: string; ca: string } {
  const dir = join(root, name);
  ok(['card', 'init', '--card-dir', dir]);
  return { dir, ca: join(root, 'ca', 'ca.crt') };
}

/** A TLS handshake from Node's client: the negotiated version, or the error. */
function handshake(port: number, ca: string, opts: tls.ConnectionOptions = {}): Promise<{ version?: string; error?: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(ca), servername: 'localhost', ...opts });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ error: 'timeout' });
    }, 20_000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      const version = s.getProtocol() ?? undefined;
      s.end();
      resolve({ version });
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      resolve({ error: e.message });
    });
  });
}

const info = (dir: string): { userPinTries: number; pskIdentities: string[]; policy: { versions: number[]; alpn: string[] }; lastTime?: number } =>
  JSON.parse(ok(['card', 'info', '--card-dir', dir, '--json']).stdout);

test('two serve https on one card folder: the second exits non-zero with an error naming the first PID', async () => {
  const { dir } = newCard('two-servers');
  const first = await serve('https', ['--card-dir', dir, '--port', '0'], HTTPS_READY);
  try {
    const second = setls(['serve', 'https', '--card-dir', dir, '--port', '0']);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /ERR_CARD_LOCKED/);
    assert.match(second.stderr, new RegExp(`process ${first.proc.pid}\\b`));
    assert.match(second.stderr, /serve https --card-dir/);
    // the first one still serves
    const coap = setls(['serve', 'coap', '--card-dir', dir, '--port', '0']);
    assert.notEqual(coap.code, 0);
    assert.match(coap.stderr, new RegExp(`ERR_CARD_LOCKED.*process ${first.proc.pid}\\b`));
  } finally {
    await first.stop();
  }
  // released at exit: the card opens again
  assert.equal(existsSync(join(dir, 'lock')), false);
  assert.equal(info(dir).userPinTries, 3);
});

test('admin commands on a served card go through its admin socket; the server later writes its state and nothing comes back', async () => {
  const { dir, ca } = newCard('served-admin');
  const keyFile = join(root, 'psk.hex');
  writeFileSync(keyFile, '00112233445566778899aabbccddeeff\n');
  chmodSync(keyFile, 0o600);
  const s = await serve('https', ['--card-dir', dir, '--port', '0'], HTTPS_READY);
  try {
    assert.match(s.output(), /admin socket: .*admin\.sock/);
    assert.equal((await handshake(s.port, ca, { maxVersion: 'TLSv1.2' })).version, 'TLSv1.2', 'positive control: TLS 1.2 is on');
    // add-psk then delete-psk, through the server (stderr says so)
    const add = ok(['card', 'add-psk', '--card-dir', dir, '--identity', 'sensor-1', '--key-file', keyFile]);
    assert.match(add.stderr, new RegExp(`served by process ${s.proc.pid}; applying this through its admin socket`));
    assert.match(add.stdout, /PSK 'sensor-1' .* installed; the card holds PSKs: sensor-1/);
    ok(['card', 'delete-psk', '--card-dir', dir, '--identity', 'sensor-1']);
    // TLS 1.2 off: applies to the running server at once
    const pol = JSON.parse(ok(['card', 'policy', '--card-dir', dir, '--versions', '1.3']).stdout) as { versions: string[] };
    assert.deepEqual(pol.versions, ['TLSv1.3']);
    const refused = await handshake(s.port, ca, { maxVersion: 'TLSv1.2' });
    assert.ok(refused.error, `TLS 1.2 still negotiated: ${JSON.stringify(refused)}`);
    assert.equal((await handshake(s.port, ca)).version, 'TLSv1.3');
    // identity-policy, add-anchor and info through the socket too
    const ip = JSON.parse(ok(['card', 'identity-policy', '--card-dir', dir, '--label', 'default', '--exporter-label', 'EXPORTER-demo']).stdout) as { exporterLabels: string[] };
    assert.deepEqual(ip.exporterLabels, ['EXPORTER-demo']);
    const anchor = JSON.parse(ok(['card', 'add-anchor', '--card-dir', dir, '--label', 'default', '--ca', ca]).stdout) as { trustAnchors: unknown[] };
    assert.equal(anchor.trustAnchors.length, 1);
    // a wrong PIN from another process: it cannot even open the card, so nothing is tried
    const wrongPinFile = `${dir}.wrong-pin`;
    writeFileSync(wrongPinFile, '000000\n', { mode: 0o600 });
    const wrongPin = setls(['serve', 'https', '--card-dir', dir, '--port', '0', '--pin-file', wrongPinFile]);
    assert.notEqual(wrongPin.code, 0);
    assert.match(wrongPin.stderr, /ERR_CARD_LOCKED/);
    const live = info(dir);
    assert.deepEqual(live.pskIdentities, []);
    assert.deepEqual(live.policy.versions, [0x0304]);
    assert.equal(live.userPinTries, 3);
    // the server writes its state now: the PSK deletion dropped the ticket key, this handshake makes a new one
    assert.equal((await handshake(s.port, ca)).version, 'TLSv1.3');
  } finally {
    await s.stop();
  }
  const after = info(dir);
  assert.deepEqual(after.pskIdentities, [], 'the deleted PSK did not come back');
  assert.deepEqual(after.policy.versions, [0x0304], 'TLS 1.2 did not come back');
  assert.equal(after.userPinTries, 3);
  const id = JSON.parse(ok(['card', 'identity-policy', '--card-dir', dir, '--label', 'default']).stdout) as { exporterLabels: string[]; trustAnchors: unknown[] };
  assert.deepEqual(id.exporterLabels, ['EXPORTER-demo']);
  assert.equal(id.trustAnchors.length, 1);
});

test('reset-clock: a card whose time floor is in 2100 refuses real-time clients until `setls card reset-clock` (through the running server)', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const { dir, ca } = newCard('clock');
  const s = await serve('https', ['--card-dir', dir, '--port', '0'], HTTPS_READY);
  const curl = () => run('curl', ['-sS', '--max-time', '20', '--cacert', ca, `https://localhost:${s.port}/status`], { timeoutMs: 30_000 });
  try {
    assert.match((await curl()).stdout, /setls demo plug/, 'positive control');
    assert.match(ok(['card', 'reset-clock', '--card-dir', dir, '--time', '2100-01-01T00:00:00Z']).stdout, /floor set to 2100-01-01T00:00:00\.000Z/);
    const refused = await curl();
    assert.doesNotMatch(refused.stdout, /setls demo plug/);
    assert.notEqual(refused.code, 0, 'curl reports the failed handshake');
    assert.match(ok(['card', 'reset-clock', '--card-dir', dir]).stdout, /floor set to \d{4}-/);
    assert.match((await curl()).stdout, /setls demo plug/);
  } finally {
    await s.stop();
  }
  const floor = info(dir).lastTime!;
  assert.ok(Math.abs(floor - Date.now() / 1000) < 3600, `the floor is now: ${floor}`);
});

test('serve https --record-layer host on a card that forbids export refuses to start, naming the fix; after the fix curl is served', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const { dir, ca } = newCard('export');
  const r = setls(['serve', 'https', '--card-dir', dir, '--port', '0', '--record-layer', 'host']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /ERR_CLI_EXPORT_FORBIDDEN/);
  assert.ok(r.stderr.includes(`setls card identity-policy --card-dir ${dir} --label default --export on`), r.stderr);
  ok(['card', 'identity-policy', '--card-dir', dir, '--label', 'default', '--export', 'on']);
  const s = await serve('https', ['--card-dir', dir, '--port', '0', '--record-layer', 'host'], HTTPS_READY);
  try {
    const got = await run('curl', ['-sS', '--max-time', '20', '--cacert', ca, `https://localhost:${s.port}/status`], { timeoutMs: 30_000 });
    assert.match(got.stdout, /setls demo plug/, got.stderr);
  } finally {
    await s.stop();
  }
});

test('a fresh card init serves coap-client-openssl over coaps+tcp (ALPN coap in its policy)', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const { dir, ca } = newCard('coap-fresh');
  assert.deepEqual(info(dir).policy.alpn, ['http/1.1', 'coap']);
  const s = await serve('coap', ['--card-dir', dir, '--port', '0', '--no-dtls'], COAP_READY);
  try {
    assert.doesNotMatch(s.output(), /ALPN policy/);
    const r = await run('coap-client-openssl', ['-B', '8', '-C', ca, '-m', 'get', `coaps+tcp://localhost:${s.port}/status`], { timeoutMs: 30_000 });
    assert.match(r.stdout, /"transport":"coaps\+tcp"/, r.stderr);
  } finally {
    await s.stop();
  }
});

test('serve coap on a card whose ALPN policy lacks coap: the hint names the fix; applied through the admin socket, no restart needed', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const { dir, ca } = newCard('coap-http-only');
  ok(['card', 'policy', '--card-dir', dir, '--alpn', 'http/1.1']);
  const s = await serve('coap', ['--card-dir', dir, '--port', '0', '--no-dtls'], COAP_READY);
  const get = () => run('coap-client-openssl', ['-v', '4', '-B', '8', '-C', ca, '-m', 'get', `coaps+tcp://localhost:${s.port}/status`], { timeoutMs: 30_000 });
  try {
    assert.ok(s.output().includes(`fix: setls card policy --card-dir ${dir} --alpn http/1.1,coap`), s.output());
    assert.match(s.output(), /no restart needed/);
    const refused = await get();
    assert.doesNotMatch(refused.stdout, /coaps\+tcp/);
    assert.match(refused.stdout + refused.stderr, /alert read:fatal:no application protocol/, 'the refusal itself');
    ok(['card', 'policy', '--card-dir', dir, '--alpn', 'http/1.1,coap']);
    const served = await get();
    assert.match(served.stdout, /"transport":"coaps\+tcp"/, served.stderr);
  } finally {
    await s.stop();
  }
});

test('setls card serve (vpcd) holds its card folder too: admin commands fail naming its PID (it offers no admin socket)', async () => {
  const { dir } = newCard('vpcd');
  // reversed mode: the card process listens for pcscd (on a free port and the next one) and holds its card
  const probe = await new Promise<number>((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const proc = spawn(process.execPath, [BIN, 'card', 'serve', '--card-dir', dir, '--reversed', '--vpcd-port', String(probe)]);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  try {
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`card serve did not start: ${err}`)), 60_000);
      proc.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/listening for vpcd/.test(err)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const r = setls(['card', 'policy', '--card-dir', dir, '--versions', '1.3']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`ERR_CARD_LOCKED: .*process ${proc.pid}\\b.*card serve.*offers no admin socket.*stop it`));
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
  assert.deepEqual(info(dir).policy.versions, [0x0304, 0x0303], 'nothing was changed behind its back');
});
