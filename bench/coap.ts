/**
 * CoAP through the card: GET /status requests/s over TLS (coaps+tcp, RFC 8323; TlsTandem) and over
 * DTLS (coaps, RFC 7252; host DtlsServer + CardDtlsBackends, handshake and records in the card),
 * each on one kept connection/association and with a handshake per request, and DTLS handshakes/s.
 *
 *   node --import tsx bench/coap.ts [--n 2000] [--spawns 40] [--conc 4] [--json]
 *
 * Clients (separate processes; the servers and the emulated card live in this process):
 *   - coaps+tcp, one connection: this file re-run as a child (`--child`) is a Node CoAP-over-TCP client
 *     on node:tls (CSM, then N GET /status one after another on one TLS connection): requests/s on
 *     an established session (the card's record layer only);
 *   - coaps, one association: `openssl s_client -dtls1_2 -quiet` (PSK, TLS_PSK_WITH_AES_128_CCM_8)
 *     as the DTLS client, driven through its stdin/stdout by bench/dtls-client-driver.ts: N CON GET
 *     /status one after another (fresh message ID and token each, every piggybacked 2.05 checked) on
 *     one DTLS association, the handshake and min(50, N) warm-up GETs excluded: requests/s on an
 *     established association (the card's record layer + the host's DTLS record framing). One request at a time
 *     only: s_client turns each stdin read into one datagram, and CoAP over UDP has no length field,
 *     so a pipelined window could coalesce messages. Errors (timeouts, wrong answers) are counted;
 *     the server must have opened exactly one card session for the whole run;
 *   - coaps and coaps+tcp, one handshake per request: libcoap's coap-client-openssl in a loop (`--conc`
 *     in parallel, PSK for DTLS and TLS 1.2): each run is a process spawn + handshake + GET, so this
 *     is requests/s *with* a fresh handshake each, including process start-up;
 *   - DTLS handshakes/s: card sessions opened (CardDtlsBackends.stats.opened) / elapsed over the
 *     coaps loop — the same number, counted on the server side.
 *
 * The outcome is one of three, and --json prints it as { ok, params, results, skipped?, failed? }:
 *   - measured: ok true, exit 0;
 *   - skipped: a client program (openssl, coap-client-openssl) is not installed and CI is not set:
 *     ok true, `skipped` says which, exit 0 (under CI=true/1 a missing client is a failure);
 *   - failed: anything else that went wrong (a client error, a wrong answer, a DTLS GET error, a
 *     crash): ok false, `failed` says what, exit 1. SETLS_BENCH_FAIL_SECTION=coap injects a failure
 *     after the servers are up (for test/bench/bench-smoke.test.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:tls';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import { initCard, openCard, readOperatorPin } from '../src/cli/card-setup.js';
import { cardPaths, readPin } from '../src/cli/card-files.js';
import { CardClient, TlsTandem } from '../src/host/index.js';
import { CardDtlsBackends, DtlsServer } from '../src/host/dtls/index.js';
import { createPlugCoapServer, serveCoapOverTls, serveCoapOverDtls } from '../src/servers/coap/index.js';
import { createPlugState } from '../src/servers/https/index.js';
import { dtlsKeptGets } from './dtls-client-driver.js';

/** What bench/run.ts reads from --json. */
export interface CoapSection {
  readonly ok: boolean;
  readonly params?: Record<string, number>;
  readonly results?: Record<string, number>;
  /** Not run, and why (a client program missing, outside CI). */
  readonly skipped?: string;
  /** Run and failed, and why. */
  readonly failed?: string;
}

/** Env var naming a bench section that must fail on purpose (tests of the failure path). */
export const FAIL_SECTION_ENV = 'SETLS_BENCH_FAIL_SECTION';

const PSK_ID = 'setls-bench';
const PSK_KEY = 'setls-bench-psk-key-0123';

// ------------------------------------------------------------------ child: CoAP over TLS client

/** One CoAP-over-TCP message (RFC 8323 §3.2) with options+payload shorter than 13 bytes. */
function tcpMessage(code: number, token: Uint8Array, rest: Uint8Array): Buffer {
  if (rest.length >= 13) throw new Error('message too long for this encoder');
  return Buffer.concat([Buffer.from([(rest.length << 4) | token.length, code]), token, rest]);
}

/** Splits CoAP-over-TCP messages from a stream; returns [codes, leftover]. */
function tcpParse(buf: Buffer): [number[], Buffer] {
  const codes: number[] = [];
  let o = 0;
  for (;;) {
    if (buf.length - o < 2) break;
    const len = buf[o]! >> 4;
    const tkl = buf[o]! & 15;
    const ext = len === 13 ? 1 : len === 14 ? 2 : len === 15 ? 4 : 0;
    if (buf.length - o < 1 + ext + 1) break;
    const n = len === 13 ? buf[o + 1]! + 13 : len === 14 ? buf.readUInt16BE(o + 1) + 269 : len === 15 ? buf.readUInt32BE(o + 1) + 65805 : len;
    const total = 1 + ext + 1 + tkl + n;
    if (buf.length - o < total) break;
    codes.push(buf[o + 1 + ext]!);
    o += total;
  }
  return [codes, buf.subarray(o)];
}

async function child(port: number, caFile: string, n: number): Promise<void> {
  const sock = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(caFile, 'utf8'), ALPNProtocols: ['coap'] });
  await once(sock, 'secureConnect');
  const path = Buffer.concat([Buffer.from([0xb6]), Buffer.from('status')]); // Uri-Path (11) "status"
  let buf: Buffer = Buffer.alloc(0);
  let waiting: ((code: number) => void) | undefined;
  sock.on('data', (d: Buffer) => {
    let codes: number[];
    [codes, buf] = tcpParse(Buffer.concat([buf, d]));
    for (const c of codes) if (c < 0xe0 && waiting) waiting(c); // 7.xx are signals (CSM, pong)
  });
  sock.write(tcpMessage(0xe1, new Uint8Array(0), new Uint8Array(0))); // CSM
  const get = async (i: number): Promise<number> => {
    const p = new Promise<number>((r) => (waiting = r));
    sock.write(tcpMessage(0x01, Uint8Array.of(i & 0xff), path));
    return p;
  };
  for (let i = 0; i < Math.min(50, n); i++) if ((await get(i)) !== 0x45) throw new Error('not 2.05');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const c = await get(i);
    if (c !== 0x45) throw new Error(`response code ${c >> 5}.${String(c & 31).padStart(2, '0')}`);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  sock.end();
  process.stdout.write(JSON.stringify({ n, seconds: s }) + '\n');
}

// ------------------------------------------------------------------ parent

function runProcess(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `total` runs of coap-client-openssl GET /status, `conc` at a time; every one must print the JSON. */
async function coapClientLoop(url: string, total: number, conc: number): Promise<number> {
  let next = 0;
  let failed = 0;
  const t0 = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      const r = await runProcess('coap-client-openssl', ['-B', '10', '-u', PSK_ID, '-k', PSK_KEY, '-m', 'get', `${url}/status`]);
      if (!r.stdout.includes('setls demo plug')) failed++;
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (failed > 0) throw new Error(`${failed} of ${total} coap-client runs got no /status payload`);
  return s;
}

function installed(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'boolean', default: false },
      port: { type: 'string' },
      ca: { type: 'string' },
      n: { type: 'string', default: '2000' },
      spawns: { type: 'string', default: '40' },
      conc: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  const n = Number(values.n);
  if (values.child) return child(Number(values.port), values.ca!, n);
  const spawns = Number(values.spawns);
  const conc = Number(values.conc);
  const params = { n, spawns, conc };
  const section = await measureSection(n, spawns, conc, params);
  if (values.json) {
    process.stdout.write(JSON.stringify(section, null, 2) + '\n');
  } else if (section.skipped) {
    console.log(`CoAP bench skipped: ${section.skipped}`);
  } else {
    console.log(`CoAP through the emulated card (n=${n} GETs on one connection / one association; ${spawns} coap-client runs, ${conc} at a time)`);
    for (const [k, v] of Object.entries(section.results ?? {})) console.log(`  ${k.padEnd(56)} ${Number.isInteger(v) ? String(v) : v.toFixed(1)}`);
    if (section.failed) console.log(`CoAP bench FAILED: ${section.failed}`);
  }
  if (!section.ok) process.exitCode = 1;
}

/** Runs the section; never throws: a failure is reported in the result. */
async function measureSection(n: number, spawns: number, conc: number, params: Record<string, number>): Promise<CoapSection> {
  const missing = ['openssl', 'coap-client-openssl'].filter((c) => !installed(c));
  if (missing.length > 0) {
    const why = `${missing.join(', ')} not installed`;
    const ci = process.env.CI === 'true' || process.env.CI === '1';
    return ci ? { ok: false, params, failed: `${why} (CI=${process.env.CI}: a missing client is a failure)` } : { ok: true, params, skipped: why };
  }
  const results: Record<string, number> = {};
  try {
    await runServersAndClients(n, spawns, conc, results);
    const errors = results['coaps (DTLS) GET errors on that association'] ?? 0;
    if (errors > 0) return { ok: false, params, results, failed: `${errors} DTLS GET errors on the kept association` };
    return { ok: true, params, results };
  } catch (e) {
    return { ok: false, params, results, failed: (e as Error)?.message ?? String(e) };
  }
}

async function runServersAndClients(n: number, spawns: number, conc: number, results: Record<string, number>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'setls-bench-coap-'));
  const cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  const opened = openCard({ cardDir });
  const transport = opened.transport;
  const admin = new CardClient(transport);
  await admin.select();
  await admin.verifyPin(readOperatorPin(init.paths), 'operator');
  await admin.putPolicy({ alpn: ['http/1.1', 'coap'], cipherSuites12: [0xc0ae, 0xc02b, 0xc02c, 0xcca9, 0xc0a8, 0x00a8] });
  await admin.putPsk({ identity: PSK_ID, key: new Uint8Array(Buffer.from(PSK_KEY)) });
  const pin = readPin(cardPaths(cardDir).pinFile);
  const coap = createPlugCoapServer(createPlugState(), { powerIntervalMs: 1000 });
  const tandem = new TlsTandem({ transport, pin, backlog: 16 });
  await tandem.start();
  serveCoapOverTls(tandem, coap);
  const server = tandem.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const tcpPort = (server.address() as AddressInfo).port;
  const backends = new CardDtlsBackends({ card: new CardClient(transport), pin });
  const dtls = new DtlsServer({ openBackend: backends.openBackend });
  serveCoapOverDtls(dtls, coap);
  const udpPort = (await dtls.listen(0)).port;

  try {
    if (process.env[FAIL_SECTION_ENV] === 'coap') throw new Error(`injected failure (${FAIL_SECTION_ENV}=coap)`);
    // 1. coaps+tcp, one TLS connection, Node client in a child process
    const self = fileURLToPath(import.meta.url);
    const c = await runProcess(process.execPath, ['--import', 'tsx', self, '--child', '--port', String(tcpPort), '--ca', init.caCertPath, '--n', String(n)]);
    if (c.code !== 0) throw new Error(`child failed: ${c.stderr}`);
    const r = JSON.parse(c.stdout.trim()) as { n: number; seconds: number };
    results['coaps+tcp GET/s, one connection (Node client)'] = r.n / r.seconds;

    // 1b. coaps (DTLS), one association, openssl s_client in a child process (PSK)
    const openedK = backends.stats.opened;
    const k = await dtlsKeptGets({ port: udpPort, pskIdentity: PSK_ID, psk: Buffer.from(PSK_KEY), n });
    const sessions = backends.stats.opened - openedK;
    if (sessions !== 1) throw new Error(`one DTLS association expected, the card opened ${sessions} sessions`);
    results['coaps (DTLS) GET/s, one association (openssl s_client)'] = k.perSecond;
    results['coaps (DTLS) GETs timed on that association'] = k.requests;
    results['coaps (DTLS) GET errors on that association'] = k.errors;
    if (k.errors > 0) process.stderr.write(`bench/coap.ts: ${k.errors} DTLS GET errors, e.g. ${k.errorSamples.join('; ')}\n`);

    // 2. coaps (DTLS) and coaps+tcp, a fresh handshake per GET (coap-client-openssl, PSK)
    await coapClientLoop(`coaps://127.0.0.1:${udpPort}`, Math.min(4, spawns), conc); // warm-up
    const opened0 = backends.stats.opened;
    const sUdp = await coapClientLoop(`coaps://127.0.0.1:${udpPort}`, spawns, conc);
    results['coaps (DTLS) GET/s, handshake each (coap-client loop)'] = spawns / sUdp;
    results['DTLS handshakes/s through the card (server count)'] = (backends.stats.opened - opened0) / sUdp;
    const sTcp = await coapClientLoop(`coaps+tcp://127.0.0.1:${tcpPort}`, spawns, conc);
    results['coaps+tcp GET/s, handshake each (coap-client loop)'] = spawns / sTcp;
  } finally {
    await dtls.close();
    await coap.close();
    await tandem.close();
    await transport.close();
    opened.card.close();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
