// What a person running `setls serve` / `setls demo` / `npm start` sees: the PIN sources agree (or
// the explicit --pin-file wins, with a warning), a busy port names the flags to use, the demo prints
// its PID and stops — listeners, card lock — on SIGTERM/SIGINT, also when npm's PID gets the signal,
// and the log is human-readable on request (JSON lines when stderr is not a terminal); with
// --record-layer host it says which sealer protects the exported records.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCard } from 'setls/card';
import { waitUntil, within } from '../wait.js';

const BIN = join(process.cwd(), 'bin/setls.mjs');
const root = mkdtempSync(join(tmpdir(), 'setls-ux-'));
const cardDir = join(root, 'card');
after(() => rmSync(root, { recursive: true, force: true }));
before(async () => {
  await initCard({ cardDir });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('SETLS_PIN' in extra)) delete e.SETLS_PIN;
  delete e.SETLS_LOG_FORMAT;
  return e;
}

interface Running {
  readonly p: ChildProcess;
  out: string;
  err: string;
}

/** Spawns and resolves once stdout matches `ready` (rejects if the process exits first). */
function start(cmd: string, args: string[], ready: RegExp, e: NodeJS.ProcessEnv = env()): Promise<Running> {
  const p = spawn(cmd, args, { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
  const r: Running = { p, out: '', err: '' };
  p.stderr!.on('data', (d: Buffer) => (r.err += d.toString()));
  return within(
    new Promise<Running>((resolve, reject) => {
      p.stdout!.on('data', (d: Buffer) => {
        r.out += d.toString();
        if (ready.test(r.out)) resolve(r);
      });
      p.on('exit', (code) => reject(new Error(`exited ${code} before ready: ${r.out}\n${r.err}`)));
    }),
    `${args.join(' ')} ready`,
    60_000,
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('serve: SETLS_PIN that differs from <card-dir>.pin is an error; an explicit --pin-file wins with a warning', async () => {
  const pin = readFileSync(`${cardDir}.pin`, 'utf8').trim();
  const other = pin === '999999' ? '888888' : '999999';
  const r = spawnSync(process.execPath, [BIN, 'serve', 'https', '--card-dir', cardDir, '--port', '0'], { encoding: 'utf8', env: env({ SETLS_PIN: other }), timeout: 60_000 });
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, /ERR_API_PIN_CONFLICT: SETLS_PIN and .*card\.pin hold different PINs/);
  // The explicit flag wins (the card accepts the file's PIN: the server starts) and says so.
  const s = await start(process.execPath, [BIN, 'serve', 'https', '--card-dir', cardDir, '--port', '0', '--pin-file', `${cardDir}.pin`], /serving HTTPS/, env({ SETLS_PIN: other }));
  try {
    await waitUntil(() => /SETLS_PIN differs from the PIN in .*; using the file/.test(s.err), () => `the warning on stderr: ${s.err}`);
  } finally {
    s.p.kill('SIGTERM');
    await within(once(s.p, 'exit'), 'serve stopped');
  }
});

test('demo on a busy port exits 1 and names the flags: npm start -- --port N --coap-port M', async () => {
  const busy = net.createServer().listen(0, '127.0.0.1');
  await once(busy, 'listening');
  try {
    const port = (busy.address() as AddressInfo).port;
    const r = spawnSync(process.execPath, [BIN, 'demo', '--card-dir', cardDir, '--port', String(port), '--coap-port', '0'], { encoding: 'utf8', env: env(), timeout: 60_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /EADDRINUSE/);
    assert.match(r.stderr, new RegExp(`port ${port} is taken`));
    assert.match(r.stderr, /npm start -- --port \d+ --coap-port \d+/);
  } finally {
    busy.close();
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`demo prints its PID and how to stop it; ${signal} closes everything and exits 0`, async () => {
    const s = await start(process.execPath, [BIN, 'demo', '--card-dir', cardDir, '--port', '0', '--coap-port', '0'], /running as PID \d+/);
    assert.match(s.out, new RegExp(`running as PID ${s.p.pid}; stop it with Ctrl-C or \`kill ${s.p.pid}\``));
    const httpsPort = Number(/https:\/\/localhost:(\d+)\//.exec(s.out)?.[1]);
    assert.ok(existsSync(join(cardDir, 'lock')));
    const exited = once(s.p, 'exit');
    s.p.kill(signal);
    const [code] = (await within(exited, 'demo exit')) as [number | null];
    assert.equal(code, 0, s.err);
    assert.equal(existsSync(join(cardDir, 'lock')), false, 'the card folder is let go');
    assert.equal(existsSync(join(cardDir, 'admin.sock')), false, 'the admin socket is removed');
    // The port is free again.
    const probe = net.createServer().listen(httpsPort, '127.0.0.1');
    await within(once(probe, 'listening'), 'port free');
    probe.close();
  });
}

test('npm start: SIGTERM to npm reaches the demo (exec), which stops and lets go of the card', async () => {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const s = await start(npm, ['start', '--silent', '--', '--card-dir', cardDir, '--port', '0', '--coap-port', '0'], /running as PID \d+/);
  const demoPid = Number(/running as PID (\d+)/.exec(s.out)![1]);
  assert.notEqual(demoPid, s.p.pid);
  const exited = once(s.p, 'exit');
  s.p.kill('SIGTERM');
  await within(exited, 'npm exit');
  await waitUntil(() => !alive(demoPid), `the demo (PID ${demoPid}) stopped with npm`);
  await waitUntil(() => !existsSync(join(cardDir, 'lock')), 'the card lock released');
});

test('logs: JSON lines when stderr is not a terminal; --log-format pretty gives one readable line, errors at warn', async () => {
  for (const format of ['json', 'pretty'] as const) {
    const args = [BIN, 'serve', 'https', '--card-dir', cardDir, '--port', '0', ...(format === 'pretty' ? ['--log-format', 'pretty'] : [])];
    const s = await start(process.execPath, args, /serving HTTPS through the card at https:\/\/localhost:(\d+)/);
    try {
      const port = Number(/localhost:(\d+)/.exec(s.out)![1]);
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => undefined);
      // A ClientHello record whose body is garbage: the card answers decode_error and the session
      // fails (a connection that is not TLS at all is port-scan noise, logged at debug only).
      c.end(Buffer.from('160301000801000004deadbeef', 'hex'));
      await waitUntil(() => /session ended with an error/.test(s.err), () => `a log line: ${s.err}`);
      const line = s.err.split('\n').find((l) => l.includes('session ended with an error'))!;
      if (format === 'json') {
        const o = JSON.parse(line) as { level: number; msg: string; peer: string };
        assert.equal(o.level, 40, 'warn');
        assert.match(o.peer, /^127\.0\.0\.1:\d+$/);
      } else {
        assert.match(line, /^\d\d:\d\d:\d\d WARN  session ended with an error  code=ERR_\w+ .*peer=127\.0\.0\.1:\d+/);
      }
    } finally {
      s.p.kill('SIGTERM');
      await within(once(s.p, 'exit'), 'serve stopped');
    }
  }
});

test('serve --record-layer host says how exported records are sealed: the native sealer, or node:crypto and why (SETLS_NATIVE=0)', async () => {
  const dir = join(root, 'card-export');
  await initCard({ cardDir: dir });
  const policy = spawnSync(process.execPath, [BIN, 'card', 'identity-policy', '--card-dir', dir, '--label', 'default', '--export', 'on'], { env: env(), encoding: 'utf8' });
  assert.equal(policy.status, 0, policy.stderr);
  const { nativeSealStatus } = await import('../../src/tls/record/native-seal.js');
  for (const off of [false, true]) {
    const e = off ? env({ SETLS_NATIVE: '0' }) : env();
    const s = await start(process.execPath, [BIN, 'serve', 'https', '--card-dir', dir, '--port', '0', '--record-layer', 'host'], /serving HTTPS through the card/, e);
    try {
      await waitUntil(() => /exported records are sealed/.test(s.err), () => `the sealer line: ${s.err}`);
      const o = JSON.parse(s.err.split('\n').find((l) => l.includes('exported records are sealed'))!) as { sealer: string; reason?: string };
      if (off) {
        assert.equal(o.sealer, 'node:crypto');
        assert.match(o.reason!, /SETLS_NATIVE=0/);
      } else {
        // the same answer as this process's own loading of the module
        assert.equal(o.sealer, nativeSealStatus().active ? 'native' : 'node:crypto');
      }
    } finally {
      s.p.kill('SIGTERM');
      await within(once(s.p, 'exit'), 'serve stopped');
    }
  }
});
