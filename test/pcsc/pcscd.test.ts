// The card behind a REAL pcscd (vsmartcard vpcd driver), in a private network namespace:
// opensc-tool sees and SELECTs it, `setls serve https --reader` serves curl and openssl through it,
// card removal mid-session and re-insertion, APDU round-trip time and handshakes/s, and the TLS-SE
// driver against the card's TLS-SE applet through pcscd, and reversed vpcd mode (pcscd connects to
// `card serve --reversed`): a second vpcd connection is refused while pcscd holds the slot. ONE file
// on purpose: only one pcscd per machine (plus a lock in the harness). Skips locally with the reason;
// under CI (CI=true or CI=1, test/ci.ts inCI) a missing prerequisite or a failed set-up fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { initCard } from '../../src/cli/card-setup.js';
import { PcscTransport, listPcscReaders, atrName } from '../../src/transport/index.js';
import { inCI } from '../ci.js';
import { BIN, PcscLab, READER, VPCD_PORT, pcscPrerequisites, startProc, waitFor, type Proc } from './harness.js';

const reason = await pcscPrerequisites();
if (reason && inCI()) throw new Error(`PC/SC tests cannot run in CI: ${reason}`);
const skip = reason ? `PC/SC path unavailable: ${reason}` : false;

const root = mkdtempSync(join(tmpdir(), 'setls-pcsc-'));
const cardDir = join(root, 'card');
let ca = '';
let lab: PcscLab | undefined;

before(async () => {
  if (skip) return;
  const r = await initCard({ cardDir });
  ca = r.caCertPath;
  lab = new PcscLab(root, cardDir);
  await lab.start();
});

after(async () => {
  await lab?.stop();
  rmSync(root, { recursive: true, force: true });
});

function run(cmd: string, args: string[], input = '', timeoutMs = 20_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
    p.stdin.on('error', () => undefined); // EPIPE when the program exits before reading its input
    p.stdin.end(input);
  });
}

async function serveHttps(extra: string[]): Promise<{ proc: Proc; port: number }> {
  const proc = startProc(process.execPath, [BIN, 'serve', 'https', '--card-dir', cardDir, '--reader', READER, '--port', '0', ...extra]);
  const port = await waitFor(
    'serve https to listen',
    () => {
      if (proc.child.exitCode !== null) throw new Error(`serve exited: ${proc.out}`);
      const m = /serving HTTPS through the card at https:\/\/localhost:(\d+)\//.exec(proc.out);
      return m ? Number(m[1]) : undefined;
    },
    30_000,
  );
  return { proc, port };
}

const curl = (port: number): Promise<{ code: number | null; out: string }> =>
  run('curl', ['-sS', '--max-time', '15', '--cacert', ca, `https://localhost:${port}/status`]);

test('opensc-tool lists the setls reader and SELECTs the applet (9000); the ATR names the card', { skip }, async () => {
  const l = await run('opensc-tool', ['-l']);
  assert.match(l.out, /Virtual PCD 00 00/);
  const line = l.out.split('\n').find((x) => x.includes(READER))!;
  assert.match(line, /Yes/, 'a card is present');
  const n = /^\s*(\d+)/.exec(line)![1]!;
  const s = await run('opensc-tool', ['-r', n, '-s', '00A4040007F07365746C7301']);
  assert.match(s.out, /SW1=0x90, SW2=0x00/, s.out);
  const readers = await listPcscReaders();
  const atr = readers.find((r) => r.name === READER)!.atr!;
  assert.equal(atrName(atr), 'setls');
  const bad = await run('opensc-tool', ['-r', n, '-s', '00A4040005A000000001']);
  assert.match(bad.out, /SW1=0x6A, SW2=0x82/, 'unknown AID → 6A82');
});

test("opensc-tool selects the card's security domain and INITIALIZE UPDATE answers 9000 with 29/32 bytes", { skip }, async () => {
  const l = await run('opensc-tool', ['-l']);
  const n = /^\s*(\d+)/.exec(l.out.split('\n').find((x) => x.includes(READER))!)![1]!;
  // SELECT without Le (the FCI comes back through 61xx / GET RESPONSE), then INITIALIZE UPDATE KVN 30
  const s = await run('opensc-tool', ['-r', n, '-s', '00A4040008A000000151000000', '-s', '8050300008' + '0102030405060708' + '00']);
  const answers = [...s.out.matchAll(/Received \(SW1=0x([0-9A-F]{2}), SW2=0x([0-9A-F]{2})\)(?::\n((?:[0-9A-F]{2} .*\n?)*))?/g)];
  assert.equal(answers.length, 2, s.out);
  assert.deepEqual([answers[0]![1], answers[0]![2]], ['90', '00'], `SELECT: ${s.out}`);
  // (opensc-tool shows no data for a SELECT without Le: it fetches the FCI the card announced with 61xx and drops it)
  assert.deepEqual([answers[1]![1], answers[1]![2]], ['90', '00'], `INITIALIZE UPDATE: ${s.out}`);
  const bytes = (answers[1]![3] ?? '').split('\n').flatMap((line) => line.slice(0, 48).trim().split(/\s+/).filter((b) => /^[0-9A-F]{2}$/.test(b)));
  assert.ok(bytes.length === 32 || bytes.length === 29, `INITIALIZE UPDATE answered ${bytes.length} bytes: ${s.out}`);
  assert.deepEqual(bytes.slice(10, 13), ['30', '03', '70'], 'KVN 30, SCP03, i = 70');
});

test('APDU round trip through pcscd + vpcd (quickack netns): ms/APDU', { skip }, async (t) => {
  const tr = await PcscTransport.open({ reader: READER });
  try {
    assert.ok(tr.extendedLength, 'vpcd readers carry extended APDUs');
    const sel = Uint8Array.from(Buffer.from('00A4040007F07365746C730100', 'hex'));
    const r = await tr.transmit(sel);
    assert.deepEqual([...r.subarray(-2)], [0x90, 0x00]);
    const n = 300;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await tr.transmit(sel);
    const ms = (performance.now() - t0) / n;
    t.diagnostic(`vpcd: ${ms.toFixed(3)} ms/APDU (${Math.round(1000 / ms)} APDUs/s), SELECT with 9-byte response, share ${tr.shareMode}`);
    console.log(`# PC/SC via vpcd: ${ms.toFixed(3)} ms/APDU`);
    // No clock in the assertion: check the cause of the ~48 ms delayed-ACK trap directly — the
    // namespace's loopback routes carry `quickack 1` (test/pcsc/netns.sh).
    const routes = await run('nsenter', ['-t', String(lab!.pcscd!.pid), '-n', 'ip', 'route', 'show', 'table', 'local']);
    assert.match(routes.out, /^local 127\.0\.0\.1 .*quickack 1/m, `the quickack routes are not in effect:\n${routes.out}`);
    // an extended APDU with a long response passes (GET-DATA card info needs no PIN)
    const info = await tr.transmit(Uint8Array.of(0xa0, 0xca, 0x00, 0x00, 0x00, 0x00, 0x00));
    assert.deepEqual([...info.subarray(-2)], [0x90, 0x00]);
  } finally {
    await tr.close();
  }
});

test('setls serve https --reader: curl and openssl TLS 1.3 through pcscd; handshakes/s; card removal mid-session and re-insertion', { skip }, async (t) => {
  const { proc, port } = await serveHttps([]);
  try {
    const c = await curl(port);
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, /"terminatedIn":"secure element"/);
    const o = await run('openssl', ['s_client', '-tls1_3', '-CAfile', ca, '-servername', 'localhost', '-connect', `127.0.0.1:${port}`, '-ign_eof'], 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.match(o.out, /Verify return code: 0 \(ok\)/, o.out);
    assert.match(o.out, /TLSv1\.3/);
    assert.match(o.out, /HTTP\/1\.1 200 OK/);
    // handshakes/s through pcscd (Node TLS client, one GET each)
    const n = 20;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [spawnSync('cat', [ca]).stdout] }, () => {
          s.end();
          resolve();
        });
        s.on('error', reject);
      });
    }
    const hs = n / ((performance.now() - t0) / 1000);
    t.diagnostic(`handshakes through pcscd: ${hs.toFixed(1)}/s`);
    console.log(`# handshakes through pcscd (EAP driver): ${hs.toFixed(1)}/s`);

    // removal mid-session: a kept-alive connection is closed when the card process dies
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [spawnSync('cat', [ca]).stdout] });
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', () => resolve());
      sock.once('error', reject);
    });
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.on('error', () => undefined);
    sock.write('GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await new Promise<void>((resolve) => sock.once('data', () => resolve()));
    await lab!.stopCard();
    await waitFor('the reader to see the card removed', async () => ((await listPcscReaders()).find((r) => r.name === READER)?.cardPresent ? undefined : true));
    sock.write('GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('the session was not closed after card removal')), 10_000))]);
    const down = await curl(port);
    assert.notEqual(down.code, 0, 'no card: no TLS');
    // the refusal itself: the server accepted the TCP connection and ended it in the handshake
    // (a dead server would give curl (7) "Failed to connect")
    assert.match(down.out, /curl: \((35|52|56)\)/, down.out);
    assert.equal(proc.child.exitCode, null, 'serve survives the removal');

    // re-insertion: the server serves again without a restart of its own
    await lab!.startCard();
    const back = await waitFor('serving again after re-insertion', async () => {
      const r = await curl(port);
      return r.code === 0 ? r : undefined;
    });
    assert.match(back.out, /"terminatedIn":"secure element"/);
  } finally {
    await proc.stop();
  }
});

test('TLS-SE driver through pcscd against the card TLS-SE applet: openssl -tls1_3 TLS_AES_128_CCM_SHA256, and default openssl with a 3000-byte response', { skip }, async (t) => {
  const { proc, port } = await serveHttps(['--driver', 'tls-se']);
  try {
    const o = await run(
      'openssl',
      ['s_client', '-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256', '-CAfile', ca, '-servername', 'localhost', '-connect', `127.0.0.1:${port}`, '-ign_eof'],
      'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    assert.match(o.out, /Cipher is TLS_AES_128_CCM_SHA256/, o.out);
    assert.match(o.out, /Verify return code: 0 \(ok\)/);
    assert.match(o.out, /HTTP\/1\.1 200 OK/);
    // default openssl options (middlebox-compat CCS) and a response of several 512-byte card records
    const big = await run(
      'openssl',
      ['s_client', '-CAfile', ca, '-servername', 'localhost', '-connect', `127.0.0.1:${port}`, '-ign_eof'],
      'GET /bytes/3000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    assert.match(big.out, /Verify return code: 0 \(ok\)/, big.out);
    assert.match(big.out, /HTTP\/1\.1 200 OK/);
    assert.match(big.out, /content-length: 3000/i);
    // Node's https client (its ClientHello fits the card's 512-byte buffer; curl pads its own to 517
    // bytes, RFC 7685, which a TLS-SE card cannot take — docs/tls-se.md)
    const caPem = readFileSync(ca);
    const get = (): Promise<string> =>
      new Promise((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, path: '/status', ca: caPem, servername: 'localhost', agent: false, timeout: 15_000 }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          })
          .on('timeout', function (this: { destroy(e: Error): void }) {
            this.destroy(new Error('timeout'));
          })
          .on('error', reject);
      });
    assert.match(await get(), /setls demo plug/);
    const n = 10;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) assert.match(await get(), /setls demo plug/);
    t.diagnostic(`TLS-SE: ${(n / ((performance.now() - t0) / 1000)).toFixed(1)} Node https requests/s through pcscd`);
    console.log(`# TLS-SE through pcscd: ${(n / ((performance.now() - t0) / 1000)).toFixed(1)} Node https requests/s`);
  } catch (e) {
    // what the server logged says why a client was cut (a PC/SC error, the card's answer…)
    throw new Error(`${(e as Error).message}\nserve https --driver tls-se output (last 3000 characters):\n${proc.out.slice(-3000)}`, { cause: e });
  } finally {
    await proc.stop();
  }
});

test('TLS 1.2 through pcscd: openssl -tls1_2 and curl --tls-max 1.2 (server CCS + Finished via SW 9001)', { skip }, async () => {
  const req = 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
  const { proc, port } = await serveHttps([]);
  try {
    const o = await run(
      'openssl',
      ['s_client', '-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256', '-CAfile', ca, '-servername', 'localhost', '-connect', `127.0.0.1:${port}`, '-verify_return_error', '-ign_eof'],
      req,
      8000,
    );
    assert.match(o.out, /New, TLSv1\.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/, o.out);
    assert.match(o.out, /Verify return code: 0 \(ok\)/);
    assert.match(o.out, /"version":"TLSv1\.2"/);
    assert.match(o.out, /"terminatedIn":"secure element"/);
    const c = await run('curl', ['-sS', '--tls-max', '1.2', '--cacert', ca, `https://localhost:${port}/status`], '', 8000);
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, /"version":"TLSv1\.2"/);
  } finally {
    await proc.stop();
  }
});

test('reversed vpcd mode (pcscd connects to card serve --reversed): works through pcscd; a second vpcd connection is refused unread and logged; pcscd keeps the card', { skip }, async () => {
  // Only one pcscd per machine: the server-mode lab goes first.
  await lab?.stop();
  lab = undefined;
  const rev = new PcscLab(root, cardDir, 'reversed');
  try {
    await rev.start();
    const select = async (): Promise<string> => {
      const l = await run('opensc-tool', ['-l']);
      const line = l.out.split('\n').find((x) => x.includes(READER));
      assert.ok(line, l.out);
      const n = /^\s*(\d+)/.exec(line)![1]!;
      return (await run('opensc-tool', ['-r', n, '-s', '00A4040007F07365746C7301'])).out;
    };
    assert.match(await select(), /SW1=0x90, SW2=0x00/, 'SELECT through pcscd → card serve --reversed');
    assert.match(rev.card!.out, /pcscd connected to slot 0 from 127\.0\.0\.1:\d+/);

    // An intruder inside the namespace connects to slot 0 while pcscd holds it and sends GET-STATE
    // (a user-PIN command) and a reset control. It must be closed without an answer.
    const probe = [
      "const s = require('net').connect(" + VPCD_PORT + ", '127.0.0.1'); const got = [];",
      "s.on('data', (d) => got.push(d)); s.on('error', (e) => console.log('error ' + e.code));",
      "s.on('connect', () => s.write(Buffer.from('0005a019000001' + '000102', 'hex')));",
      "s.on('close', () => { console.log('closed answered=[' + Buffer.concat(got).toString('hex') + ']'); process.exit(0); });",
      "setTimeout(() => { console.log('still open'); process.exit(0); }, 15000);",
    ].join('\n');
    const intruder = rev.inNamespace(process.execPath, ['-e', probe]);
    await waitFor('the intruder to finish', () => (intruder.child.exitCode !== null ? true : undefined), 30_000);
    assert.match(intruder.out, /closed answered=\[\]/, intruder.out);
    await waitFor('the refusal in the card log', () => (/refused a second vpcd connection to slot 0 from 127\.0\.0\.1:\d+/.test(rev.card!.out) ? true : undefined));
    assert.doesNotMatch(rev.card!.out, /left slot 0/, 'pcscd kept its connection');
    // pcscd still has the card, powered as before
    assert.match(await select(), /SW1=0x90, SW2=0x00/);
  } finally {
    await rev.stop();
  }
});
