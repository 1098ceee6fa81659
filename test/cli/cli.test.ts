// The `setls` command contract: card init / info, serve https (PIN from file or SETLS_PIN, never argv).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, existsSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get } from 'node:https';

const root = mkdtempSync(join(tmpdir(), 'setls-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));

const BIN = join(process.cwd(), 'bin/setls.mjs');

function setls(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `setls serve https`, resolves with the port once it printed its URL. */
function serve(args: string[], env: Record<string, string> = {}): Promise<{ port: number; stop: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, 'serve', 'https', ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`serve did not print its URL: ${out} ${err}`));
    }, 30000);
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /serving HTTPS through the card at https:\/\/localhost:(\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          port: Number(m[1]),
          stop: () =>
            new Promise((r) => {
              p.once('exit', () => r());
              p.kill('SIGTERM');
            }),
        });
      }
    });
    p.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}: ${err}`));
    });
  });
}

function fetchStatus(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/status', ca, servername: 'localhost', agent: false }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => (s += c.toString()));
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
}

const cardDir = join(root, 'card');

test('card init creates the card, secret files with mode 0600, a random PIN and a CA', () => {
  const r = setls(['card', 'init', '--card-dir', cardDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /CA certificate: .*ca\.crt/);
  assert.match(r.stdout, /CA SHA-256 fingerprint: ([0-9A-F]{2}:){31}[0-9A-F]{2}/);
  for (const f of [`${cardDir}.key`, `${cardDir}.pin`, `${cardDir}.admin.json`]) {
    assert.equal(statSync(f).mode & 0o777, 0o600, f);
  }
  assert.match(readFileSync(`${cardDir}.pin`, 'utf8'), /^\d{6}\n$/);
  assert.ok(existsSync(join(root, 'ca', 'ca.crt')));
  // A second card gets a different PIN (no default PIN).
  const r2 = setls(['card', 'init', '--card-dir', join(root, 'card2')]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.notEqual(readFileSync(`${cardDir}.pin`, 'utf8'), readFileSync(join(root, 'card2.pin'), 'utf8'));
  // Refuses to overwrite.
  const again = setls(['card', 'init', '--card-dir', cardDir]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /ERR_CARD_EXISTS/);
});

test('card info shows the identity, its certificate and the tries left', () => {
  const r = setls(['card', 'info', '--card-dir', cardDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.userPinTries, 3);
  assert.equal(info.identities[0].label, 'default');
  assert.match(info.identities[0].certificates[0].subjectAltName, /DNS:localhost, IP Address:127\.0\.0\.1/);
  const text = setls(['card', 'info', '--card-dir', cardDir]);
  assert.match(text.stdout, /identity 'default' \(ECDSA P-256\)/);
});

test('serve https reads the PIN from the PIN file and serves the plug', async () => {
  const s = await serve(['--card-dir', cardDir, '--port', '0']);
  try {
    const body = JSON.parse(await fetchStatus(s.port, readFileSync(join(root, 'ca', 'ca.crt'), 'utf8')));
    assert.equal(body.device, 'setls demo plug');
  } finally {
    await s.stop();
  }
});

test('SETLS_PIN differing from the PIN file is refused before the card is asked; a wrong --pin-file fails with tries left; no --pin option exists', async () => {
  const pin = readFileSync(`${cardDir}.pin`, 'utf8').trim();
  const wrong = pin === '000000' ? '111111' : '000000';
  const conflict = setls(['serve', 'https', '--card-dir', cardDir, '--port', '0'], { SETLS_PIN: wrong });
  assert.notEqual(conflict.code, 0);
  assert.match(conflict.stderr, /ERR_API_PIN_CONFLICT/);
  assert.equal(JSON.parse(setls(['card', 'info', '--card-dir', cardDir, '--json']).stdout).userPinTries, 3, 'no try spent');
  const wrongFile = join(root, 'wrong.pin');
  writeFileSync(wrongFile, wrong + '\n', { mode: 0o600 });
  const bad = setls(['serve', 'https', '--card-dir', cardDir, '--port', '0', '--pin-file', wrongFile], { SETLS_PIN: '' });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /ERR_CARD_PIN_WRONG/);
  assert.match(bad.stderr, /2 tries left/);
  const argv = setls(['serve', 'https', '--card-dir', cardDir, '--pin', pin]);
  assert.notEqual(argv.code, 0);
  assert.match(argv.stderr, /unknown option '--pin'/);
  // SETLS_PIN alone (no PIN file next to the card) works, and restores the counter.
  renameSync(`${cardDir}.pin`, `${cardDir}.pin.aside`);
  try {
    const s = await serve(['--card-dir', cardDir, '--port', '0'], { SETLS_PIN: pin });
    await s.stop();
  } finally {
    renameSync(`${cardDir}.pin.aside`, `${cardDir}.pin`);
  }
  const info = JSON.parse(setls(['card', 'info', '--card-dir', cardDir, '--json']).stdout);
  assert.equal(info.userPinTries, 3);
});

test('a PIN file readable by others is refused', () => {
  const loose = join(root, 'loose.pin');
  writeFileSync(loose, '123456\n');
  chmodSync(loose, 0o644);
  const r = setls(['serve', 'https', '--card-dir', cardDir, '--port', '0', '--pin-file', loose], { SETLS_PIN: '' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /ERR_CLI_SECRET_MODE/);
});
