// Every command of the README's "Command line" that no other test runs through the binary, run once
// through `bin/setls.mjs` as its own process, each on a FRESH card made by `setls card init` (or by
// `setls demo` itself), with its observable effect checked by a real peer:
//   card policy --versions 1.3      card info shows it; openssl -tls1_2 is refused, -tls1_3 served
//   card add-anchor + identity-policy --client-auth required
//                                   curl with a client certificate of that CA gets /admin (200, its
//                                   subject); without one the card refuses (certificate_required)
//   card add-psk                    openssl -psk with the key is served (resumption 'psk'); a wrong
//                                   key is refused
//   serve coap                      coap-client-openssl gets /status over coaps:// (DTLS) on the
//                                   fresh card, and over coaps+tcp:// once `card policy --alpn
//                                   http/1.1,coap` allows the protocol
//   demo --port 0 --coap-port 0     curl gets /status; coap-client with the printed demo PSK too
//   serve https --trace             annotated APDU hex on stderr, the PIN redacted
//   serve https --record-layer host after identity-policy --export on: the record layer is on the host
// Administrative commands run only while no `serve` holds the card (before it starts or after it
// stopped). Positive controls come before every refusal. Peers missing: skipped locally, failed in CI.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePeer } from '../interop/peers.js';
import { run, httpGet, statusBodies } from '../interop/helpers.js';
import { waitUntil, within } from '../wait.js';

const BIN = join(process.cwd(), 'bin/setls.mjs');
const root = mkdtempSync(join(tmpdir(), 'setls-readme-'));
const running = new Set<Served>();
after(async () => {
  for (const s of running) await s.stop();
  rmSync(root, { recursive: true, force: true });
});

interface Done {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** One `setls …` command to completion. */
function setls(args: readonly string[]): Done {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `setls …` that must succeed; its stdout. */
function ok(args: readonly string[]): string {
  const r = setls(args);
  assert.equal(r.code, 0, `setls ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface Card {
  readonly dir: string;
  readonly ca: string;
}

/** A new card made by `setls card init` in its own folder (its CA next to it). */
function freshCard(name: string): Card {
  const base = join(root, name);
  mkdirSync(base);
  const dir = join(base, 'card');
  ok(['card', 'init', '--card-dir', dir]);
  return { dir, ca: join(base, 'ca', 'ca.crt') };
}

/** A long-running `setls serve …` / `setls demo` process. */
class Served {
  out = '';
  err = '';
  private exited: Promise<number | null>;
  private constructor(readonly proc: ChildProcessWithoutNullStreams) {
    proc.stdout.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  }

  /** Starts `setls args…` and waits until every `ready` pattern is in its stdout. */
  static async start(args: readonly string[], ready: readonly RegExp[]): Promise<Served> {
    const s = new Served(spawn(process.execPath, [BIN, ...args]));
    running.add(s);
    let code: number | null | undefined;
    void s.exited.then((c) => (code = c));
    try {
      await waitUntil(() => code !== undefined || ready.every((re) => re.test(s.out)), () => `setls ${args.join(' ')} to print ${ready.join(' and ')}\n${s.out}\n${s.err}`, 60_000);
    } catch (e) {
      await s.stop();
      throw e;
    }
    if (code !== undefined) throw new Error(`setls ${args.join(' ')} exited ${code}\n${s.out}\n${s.err}`);
    return s;
  }

  /** The first capture group of `re` in stdout, as a port number. */
  port(re: RegExp): number {
    const m = re.exec(this.out);
    assert.ok(m, `${re} not in\n${this.out}`);
    return Number(m[1]);
  }

  /** SIGTERM, and wait for the exit (SIGKILL after a generous bound). Only this process. */
  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      try {
        await within(this.exited, 'setls did not stop on SIGTERM');
      } catch {
        this.proc.kill('SIGKILL');
        await this.exited;
      }
    }
    running.delete(this);
  }
}

const HTTPS_READY = /serving HTTPS through the card at https:\/\/localhost:(\d+)\//;
const DTLS_READY = /serving CoAP over DTLS through the card at coaps:\/\/127\.0\.0\.1:(\d+) /;
const TCP_READY = /serving CoAP over TLS through the card at coaps\+tcp:\/\/localhost:(\d+) /;

function sClient(port: number, args: readonly string[], input = httpGet('/status')) {
  return run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-ign_eof', ...args], { input, timeoutMs: 60_000 });
}

test('card policy --versions 1.3: card info shows it; serve https refuses an openssl -tls1_2 client and serves -tls1_3', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const card = freshCard('versions');
  const printed = JSON.parse(ok(['card', 'policy', '--card-dir', card.dir, '--versions', '1.3'])) as { versions?: string[] };
  assert.deepEqual(printed.versions, ['TLSv1.3']);
  const info = JSON.parse(ok(['card', 'info', '--card-dir', card.dir, '--json'])) as { policy?: { versions?: number[] } };
  assert.deepEqual(info.policy?.versions, [0x0304], 'card info shows the policy in force');
  const s = await Served.start(['serve', 'https', '--card-dir', card.dir, '--port', '0'], [HTTPS_READY]);
  try {
    const port = s.port(HTTPS_READY);
    const v13 = await sClient(port, ['-tls1_3', '-CAfile', card.ca, '-verify_return_error']);
    assert.equal(v13.code, 0, v13.stdout + v13.stderr);
    assert.equal(statusBodies(v13.stdout)[0]?.tls.version, 'TLSv1.3', 'positive control: TLS 1.3 served');
    const v12 = await sClient(port, ['-tls1_2', '-CAfile', card.ca]);
    assert.notEqual(v12.code, 0, 'the TLS 1.2 client must fail');
    assert.match(v12.stdout + v12.stderr, /alert protocol version/i, 'refused with protocol_version');
    assert.equal(statusBodies(v12.stdout).length, 0);
  } finally {
    await s.stop();
  }
});

test('card add-anchor + identity-policy --client-auth required: curl with a client certificate of that CA gets /admin; without one it is refused', async (t) => {
  if (!requirePeer(t, 'openssl') || !requirePeer(t, 'curl')) return;
  const card = freshCard('mtls');
  // a client CA and a client certificate made by openssl, not by setls
  const d = join(root, 'mtls', 'client');
  mkdirSync(d);
  const sh = (args: string[]): void => {
    const r = spawnSync('openssl', args, { encoding: 'utf8', cwd: d });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  sh(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=readme client CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  sh(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=device-42']);
  writeFileSync(join(d, 'ext.cnf'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:device-42.example\n');
  sh(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '7', '-extfile', 'ext.cnf']);

  const anchored = JSON.parse(ok(['card', 'add-anchor', '--card-dir', card.dir, '--label', 'default', '--ca', join(d, 'ca.pem')])) as { trustAnchors: { subject: string }[] };
  assert.match(anchored.trustAnchors.map((a) => a.subject).join(';'), /CN=readme client CA/);
  const policy = JSON.parse(ok(['card', 'identity-policy', '--card-dir', card.dir, '--label', 'default', '--client-auth', 'required'])) as { clientAuth: string };
  assert.equal(policy.clientAuth, 'required');

  const s = await Served.start(['serve', 'https', '--card-dir', card.dir, '--port', '0'], [HTTPS_READY]);
  try {
    const url = `https://localhost:${s.port(HTTPS_READY)}`;
    const withCert = await run('curl', ['-sS', '--cacert', card.ca, '--cert', join(d, 'client.pem'), '--key', join(d, 'client.key'), `${url}/admin`], { timeoutMs: 60_000 });
    assert.equal(withCert.code, 0, withCert.stderr);
    const admin = JSON.parse(withCert.stdout) as { admin: boolean; client: { subject: string } };
    assert.equal(admin.admin, true);
    assert.match(admin.client.subject, /device-42/, 'the card verified the client certificate');
    const without = await run('curl', ['-sS', '--cacert', card.ca, `${url}/status`], { timeoutMs: 60_000 });
    assert.notEqual(without.code, 0, `served without a client certificate: ${without.stdout}`);
    assert.match(without.stderr, /certificate required/i, 'refused with certificate_required');
    assert.equal(without.stdout, '');
  } finally {
    await s.stop();
  }
});

test('card add-psk: openssl -psk with that key is served through the card (resumption psk); a wrong key is refused', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  const card = freshCard('psk');
  const key = randomBytes(32).toString('hex');
  const keyFile = join(root, 'psk', 'dev.key');
  writeFileSync(keyFile, key + '\n');
  chmodSync(keyFile, 0o600);
  const out = ok(['card', 'add-psk', '--card-dir', card.dir, '--identity', 'readme-device', '--key-file', keyFile]);
  assert.match(out, /PSK 'readme-device' \(32 bytes, sha256\) installed; the card holds PSKs: readme-device/);
  const s = await Served.start(['serve', 'https', '--card-dir', card.dir, '--port', '0'], [HTTPS_READY]);
  try {
    const port = s.port(HTTPS_READY);
    const args = (hex: string) => ['-tls1_3', '-psk', hex, '-psk_identity', 'readme-device', '-ciphersuites', 'TLS_AES_128_GCM_SHA256'];
    const good = await sClient(port, args(key));
    assert.equal(good.code, 0, good.stdout + good.stderr);
    const body = statusBodies(good.stdout)[0] as unknown as { tls: { version: string; resumption: string } } | undefined;
    assert.equal(body?.tls.version, 'TLSv1.3', good.stdout);
    assert.equal(body?.tls.resumption, 'psk', 'the card took the external PSK');
    const wrong = await sClient(port, args(randomBytes(32).toString('hex')));
    assert.equal(statusBodies(wrong.stdout).length, 0, 'nothing served with a wrong key');
    assert.match(wrong.stdout + wrong.stderr, /alert decrypt error/i, 'refused by the binder check (decrypt_error)');
  } finally {
    await s.stop();
  }
});

test('serve coap: coap-client-openssl gets /status over coaps:// (DTLS) on a fresh card, and over coaps+tcp:// once card policy --alpn allows coap', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const card = freshCard('coap');
  const coapGet = async (url: string) => {
    const r = await run('coap-client-openssl', ['-B', '10', '-C', card.ca, '-m', 'get', `${url}/status`], { timeoutMs: 60_000 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{"device"'));
    return { r, body: line ? (JSON.parse(line) as { device: string; transport: string }) : undefined };
  };
  // DTLS: served by a fresh card as it is (libcoap exits 0 whatever happens: the payload is the proof)
  let s = await Served.start(['serve', 'coap', '--card-dir', card.dir, '--port', '0'], [TCP_READY, DTLS_READY]);
  try {
    const udp = await coapGet(`coaps://127.0.0.1:${s.port(DTLS_READY)}`);
    assert.equal(udp.body?.device, 'setls demo plug', udp.r.stdout + udp.r.stderr);
    assert.equal(udp.body?.transport, 'coaps');
  } finally {
    await s.stop();
  }
  // coaps+tcp with certificates: libcoap offers ALPN "coap" only, so the card's ALPN policy must list it
  const policy = JSON.parse(ok(['card', 'policy', '--card-dir', card.dir, '--alpn', 'http/1.1,coap'])) as { alpn: string[] };
  assert.deepEqual(policy.alpn, ['http/1.1', 'coap']);
  s = await Served.start(['serve', 'coap', '--card-dir', card.dir, '--port', '0', '--no-dtls'], [TCP_READY]);
  try {
    const tcp = await coapGet(`coaps+tcp://localhost:${s.port(TCP_READY)}`);
    assert.equal(tcp.body?.device, 'setls demo plug', tcp.r.stdout + tcp.r.stderr);
    assert.equal(tcp.body?.transport, 'coaps+tcp');
  } finally {
    await s.stop();
  }
});

test('demo --port 0 --coap-port 0: creates its card, curl gets /status over HTTPS, coap-client with the printed demo PSK over coaps://', async (t) => {
  if (!requirePeer(t, 'curl') || !requirePeer(t, 'coap-client-openssl')) return;
  const base = join(root, 'demo');
  mkdirSync(base);
  const dir = join(base, 'card');
  const s = await Served.start(['demo', '--card-dir', dir, '--port', '0', '--coap-port', '0'], [HTTPS_READY, DTLS_READY]);
  try {
    assert.match(s.out, /created the demo card in /);
    const ca = join(base, 'ca', 'ca.crt');
    const https = await run('curl', ['-sS', '--cacert', ca, `https://localhost:${s.port(HTTPS_READY)}/status`], { timeoutMs: 60_000 });
    assert.equal(https.code, 0, https.stderr);
    assert.equal((JSON.parse(https.stdout) as { device: string }).device, 'setls demo plug');
    // the PSK line the demo prints for coaps://
    const m = new RegExp(`try: coap-client-openssl -B 5 -u (\\S+) -k (\\S+) -m get coaps://127\\.0\\.0\\.1:${s.port(DTLS_READY)}/status`).exec(s.out);
    assert.ok(m, `no PSK try line in\n${s.out}`);
    const coap = await run('coap-client-openssl', ['-B', '10', '-u', m[1]!, '-k', m[2]!, '-m', 'get', `coaps://127.0.0.1:${s.port(DTLS_READY)}/status`], { timeoutMs: 60_000 });
    assert.match(coap.stdout, /^\{"device":"setls demo plug".*"transport":"coaps"/m, coap.stdout + coap.stderr);
  } finally {
    await s.stop();
  }
});

test('serve https --trace: every APDU as annotated hex on stderr, the PIN redacted', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const card = freshCard('trace');
  const pin = readFileSync(`${card.dir}.pin`, 'utf8').trim();
  const s = await Served.start(['serve', 'https', '--card-dir', card.dir, '--port', '0', '--trace'], [HTTPS_READY]);
  try {
    const r = await run('curl', ['-sS', '--cacert', card.ca, `https://localhost:${s.port(HTTPS_READY)}/status`], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    // the session ends with the DECRYPT of curl's close_notify (END: the card wipes the session
    // after answering), or with RESET-STATE when the client leaves without close_notify
    const ended = /PROCESS-EAP-ENCRYPT \[[\s\S]*PROCESS-EAP\(END\) \[[^\n]*\n<< [^\n]*\n|RESET-STATE \[/;
    await waitUntil(() => ended.test(s.err), () => `the session's APDUs in the trace:\n${s.err}`);
  } finally {
    await s.stop();
  }
  const lines = s.err.split('\n');
  for (const name of ['SELECT', 'VERIFY-PIN(user)', 'PROCESS-EAP(START)', 'PROCESS-EAP', 'PROCESS-EAP-ENCRYPT', 'PROCESS-EAP(END)']) {
    assert.ok(lines.some((l) => /^>> [0-9A-F]{2}( [0-9A-F]{2})+/.test(l) && l.includes(`  ${name} [`)), `no annotated ${name} command line`);
  }
  assert.ok(lines.some((l) => /^<< ([0-9A-F]{2} )*90 00  9000 OK/.test(l)), 'annotated responses');
  const verify = lines.find((l) => l.includes('VERIFY-PIN(user)'))!;
  assert.match(verify, /^>> A0 20 00 00 [0-9A-F ]+\*\* \*\* \(redacted\)/, 'the PIN bytes are not printed');
  const pinHex = Buffer.from(pin, 'ascii').toString('hex').toUpperCase();
  assert.ok(!s.err.replace(/ /g, '').includes(pinHex), 'the PIN bytes appear nowhere in the trace');
});

test('serve https --record-layer host after identity-policy --export on: the session is exported and served on the host', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const card = freshCard('export');
  const policy = JSON.parse(ok(['card', 'identity-policy', '--card-dir', card.dir, '--label', 'default', '--export', 'on'])) as { exportAllowed: boolean };
  assert.equal(policy.exportAllowed, true);
  const s = await Served.start(['serve', 'https', '--card-dir', card.dir, '--port', '0', '--record-layer', 'host'], [HTTPS_READY]);
  try {
    const r = await run('curl', ['-sS', '--cacert', card.ca, `https://localhost:${s.port(HTTPS_READY)}/status`], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout) as { tls: { recordLayer: string; version: string } };
    assert.equal(body.tls.recordLayer, 'host');
    assert.equal(body.tls.version, 'TLSv1.3');
  } finally {
    await s.stop();
  }
});
