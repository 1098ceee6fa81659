// The TLS-SE host driver (src/host/tls-se-driver.ts):
//  1. against a scripted card with the APDU rules of Urien's real applet (test/host/urien-card.ts,
//     tls_se.java): RECV ClientHello → ServerHello as data + 9F1C; SEND → EncryptedExtensions + 9F3A;
//     SEND → Finished + 9000; client CCS → 9000 and Finished → 9001 in separate RECVs (one record per
//     RECV, else 6D02); 9Fxx = more of the same output (decrypt of 300 bytes); a 512-byte buffer
//     (a 650-byte response in two records); 6Cxx; 240-byte fragments;
//  2. against the emulated card's TLS-SE applet in-process, through TlsTandem + node:http:
//     openssl s_client -tls1_3 -ciphersuites TLS_AES_128_CCM_SHA256 in certificate mode and with
//     -psk (psk_dhe_ke, PSK installed with 00 85 under the admin PIN), and Node's https client;
//  3. both drivers against both applets of ONE card (EAP driver → setls applet, TLS-SE → TLS-SE).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { concat } from '../../src/bytes/index.js';
import { urienCard, toyOpen, toyRecord, URIEN_EE, URIEN_FIN, URIEN_SH } from './urien-card.js';
import { EmulatedCard } from '../../src/card/index.js';
import { initCard, readOperatorPin, type InitResult } from '../../src/cli/card-setup.js';
import { CardClient, TlsSeSession, TlsSeDriver, TlsTandem } from '../../src/host/index.js';
import { InProcessTransport, TracingTransport } from '../../src/transport/index.js';
import { serveHttps, createPlugHandler, createPlugState, patternByte } from '../../src/servers/https/index.js';
import { requirePeer } from '../interop/peers.js';
import { httpGet, runInteractive } from '../interop/helpers.js';

const rec = (type: number, n: number, fill: number): Uint8Array => {
  const r = new Uint8Array(5 + n).fill(fill);
  r.set([type, 3, 3, n >> 8, n & 0xff]);
  return r;
};

test('TLS-SE driver vs a card with the real applet’s APDU rules (tls_se.java): one record per RECV, CCS alone, 9Fxx = more of the same output, 512-byte buffer', async () => {
  const { transport, log } = urienCard();
  const client = new CardClient(transport, { extended: false });
  const drv = new TlsSeDriver(client, { pin: '0000' });
  await drv.start();
  await drv.resetState();
  const s = drv.newSession() as TlsSeSession;
  const ch = rec(22, 300, 0x01);
  ch[5] = 1;
  log.length = 0;
  const step = await s.handshake([ch]);
  assert.equal(step.needMore, true);
  assert.deepEqual(Buffer.from(step.toClient), Buffer.concat([URIEN_SH, URIEN_EE, URIEN_FIN]), 'ServerHello ‖ EncryptedExtensions ‖ Finished, no CCS');
  assert.deepEqual(log, ['d8 0 1 240 → 9000', 'd8 0 2 65 → 9f1c +95', 'c0 0 0 28 → 9f3a +28', 'c0 0 0 58 → 9000 +58'], '240-byte fragments; RECV answers with data; SEND Le = the xx of 9Fxx');

  // A default openssl s_client sends CCS + Finished (+ data) together: one RECV each.
  log.length = 0;
  const data = toyRecord(concat(new Uint8Array(10).fill(0x41), Uint8Array.of(0x17)));
  const fin = await s.handshake([Uint8Array.of(0x14, 3, 3, 0, 1, 1), rec(23, 53, 7), data]);
  assert.equal(fin.done, true);
  assert.equal(s.phase, 'connected');
  assert.deepEqual(log, ['d8 0 3 6 → 9000', 'd8 0 3 58 → 9001'], 'the CCS and the Finished in two RECVs');
  assert.equal(fin.remaining.length, 1, 'the record after the Finished is left for decrypt');
  assert.deepEqual([...(await s.decrypt(fin.remaining[0]!)).plaintext], new Array(10).fill(0x41));

  // More than 239 bytes of plaintext: the card's answer is a bare 9FF0, then 240 + 9F3D, then 61 + 9000.
  log.length = 0;
  const big = new Uint8Array(300).map((_, i) => (i * 7) & 0xff);
  const d = await s.decrypt(toyRecord(concat(big, Uint8Array.of(0x17))));
  assert.deepEqual(Buffer.from(d.plaintext), Buffer.from(big), 'all 300 bytes, content type 17');
  assert.deepEqual(log.slice(-3), ['d8 1 2 82 → 9ff0', 'c0 0 0 240 → 9f3d +240', 'c0 0 0 61 → 9000 +61']);

  // A 650-byte response: records that fit the 512-byte buffer (490 + 160 bytes of plaintext).
  log.length = 0;
  const resp = new Uint8Array(650).map((_, i) => (i * 13) & 0xff);
  const e = await s.encrypt(23, resp);
  const recs: Uint8Array[] = [];
  for (let o = 0; o < e.length; ) {
    const n = 5 + ((e[o + 3]! << 8) | e[o + 4]!);
    recs.push(e.subarray(o, o + n));
    o += n;
  }
  assert.deepEqual(recs.map((r) => r.length), [5 + 491 + 16, 5 + 161 + 16], 'each record with its header ≤ 512 bytes');
  assert.deepEqual(Buffer.concat(recs.map((r) => toyOpen(r).subarray(0, -1))), Buffer.from(resp));
  assert.ok(log.every((l) => !/→ 6d02|→ 6f00/.test(l)), log.join('\n'));

  // A client record larger than the card's buffer is refused before it is sent.
  await assert.rejects(s.decrypt(toyRecord(new Uint8Array(500))), (err: Error & { code?: string }) => err.code === 'ERR_HOST_TLS_SE_RECORD_TOO_LARGE');
});

test('TLS-SE driver vs the real applet’s rules: 6Cxx (wrong Le) is retried with the Le the card asks for; close_notify', async () => {
  const { transport, log } = urienCard();
  // A reader that replaces the Le of the first SEND by 00 (256): the card answers 6Cxx.
  let spoiled = false;
  const spoil = {
    transmit: (apdu: Uint8Array): Promise<Uint8Array> => {
      if (!spoiled && apdu[1] === 0xc0) {
        spoiled = true;
        return transport.transmit(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, 0x00));
      }
      return transport.transmit(apdu);
    },
    close: () => transport.close(),
  };
  const drv = new TlsSeDriver(new CardClient(spoil as unknown as InProcessTransport, { extended: false }), { pin: '0000' });
  await drv.start();
  const s = drv.newSession() as TlsSeSession;
  const ch = rec(22, 100, 0x01);
  ch[5] = 1;
  const step = await s.handshake([ch]);
  assert.deepEqual(Buffer.from(step.toClient), Buffer.concat([URIEN_SH, URIEN_EE, URIEN_FIN]));
  assert.ok(log.includes('c0 0 0 0 → 6c1c'), log.join('\n'));
  assert.equal((await s.handshake([rec(23, 53, 7)])).done, true, 'no CCS: the Finished alone (9001)');
  // the real applet decrypts the client's close_notify into `01 00 15` (9000)
  const c = await s.decrypt(toyRecord(Uint8Array.of(1, 0, 0x15)));
  assert.equal(c.peerClosed, true);
  assert.equal(s.phase, 'closed');
});

let root: string;
let init: InitResult;
let card: EmulatedCard;
let pin: string;
const PSK = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'setls-tlsse-host-'));
  init = await initCard({ cardDir: join(root, 'card') });
  card = EmulatedCard.open({ dir: init.paths.dir, masterKey: Uint8Array.from(Buffer.from(readFileSync(init.paths.keyFile, 'utf8').trim(), 'hex')) });
  pin = readFileSync(init.paths.pinFile, 'utf8').trim();
  // the PSK, installed as in Urien's send_apdu.txt: SELECT, admin PIN, 00 85 00 0A 23 01 00 20 <PSK>
  const op = Buffer.from(readOperatorPin(init.paths));
  const sw = (hex: string): string => Buffer.from(card.process(Uint8Array.from(Buffer.from(hex, 'hex')))).toString('hex');
  assert.equal(sw('00A4040006010203040500'), '9000');
  assert.equal(sw('00200001' + op.length.toString(16).padStart(2, '0') + op.toString('hex')), '9000');
  assert.equal(sw('0085000A23010020' + PSK), '9000');
});

after(() => {
  card?.close();
  rmSync(root, { recursive: true, force: true });
});

function runBin(cmd: string, args: string[], input: string): Promise<{ out: string; stdout: Buffer }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args);
    let out = '';
    const stdout: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => {
      stdout.push(d);
      out += d.toString('latin1');
    });
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', () => {
      clearTimeout(t);
      resolve({ out, stdout: Buffer.concat(stdout) });
    });
    p.stdin.end(input);
  });
}

async function run(cmd: string, args: string[], input: string): Promise<string> {
  return (await runBin(cmd, args, input)).out;
}

async function withTandem(driver: 'eap' | 'tls-se', fn: (port: number, trace: string[]) => Promise<void>): Promise<void> {
  const trace: string[] = [];
  const transport = new TracingTransport(new InProcessTransport((a) => card.process(a)), (l) => trace.push(l));
  const tandem = new TlsTandem({ transport, pin, driver });
  await tandem.start();
  const http = serveHttps(tandem, createPlugHandler(createPlugState()));
  const srv = tandem.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  try {
    await fn((srv.address() as AddressInfo).port, trace);
  } finally {
    await tandem.close();
    http.close();
  }
}

/** What openssl prints when the card refuses its PSK: the binder does not verify → decrypt_error (51), RFC 8446 §4.2.11. */
const BAD_PSK_REFUSAL = /tlsv1 alert decrypt error.*SSL alert number 51/;

const REQ = 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';

test('TLS-SE applet in-process: openssl -tls1_3 TLS_AES_128_CCM_SHA256, certificate mode (card identity)', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  await withTandem('tls-se', async (port, trace) => {
    const out = await run('openssl', ['s_client', '-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256', '-groups', 'P-256:X25519', '-CAfile', init.caCertPath, '-servername', 'localhost', '-connect', `127.0.0.1:${port}`, '-ign_eof'], REQ);
    assert.match(out, /New, TLSv1\.3, Cipher is TLS_AES_128_CCM_SHA256/, out);
    assert.match(out, /Verify return code: 0 \(ok\)/);
    assert.match(out, /Server Temp Key: ECDH, prime256v1/, 'secp256r1 preferred, as in the draft');
    assert.match(out, /HTTP\/1\.1 200 OK/);
    assert.ok(trace.some((l) => l.startsWith('<< ') && /9001/.test(l)), 'the card signalled 9001 (session open)');
    assert.ok(trace.every((l) => !l.startsWith('>> A0')), 'only TLS-SE APDUs (CLA 00)');
  });
});

test('TLS-SE acceptance: openssl s_client with DEFAULT options (middlebox-compat CCS) and a 3000-byte HTTP response, through the host driver and the applet with the real one’s rules', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  await withTandem('tls-se', async (port, trace) => {
    const n = 3000;
    const { out, stdout } = await runBin('openssl', ['s_client', '-CAfile', init.caCertPath, '-servername', 'localhost', '-connect', `127.0.0.1:${port}`, '-ign_eof'], `GET /bytes/${n} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    assert.match(out, /New, TLSv1\.3, Cipher is TLS_AES_/, out);
    assert.match(out, /Verify return code: 0 \(ok\)/);
    assert.match(out, /HTTP\/1\.1 200 OK/);
    const body = Buffer.alloc(n);
    for (let i = 0; i < n; i++) body[i] = patternByte(i);
    assert.ok(stdout.includes(body), 'the whole 3000-byte body arrived intact');
    // What made it fail before: the client's CCS went to the card in its own RECV, then the Finished.
    const recvs = trace.filter((l) => l.startsWith('>> 00 D8'));
    assert.ok(recvs.some((l) => l.startsWith('>> 00 D8 00 03 06 14 03 03 00 01 01')), 'the client CCS alone in one RECV');
    // the card's flight came as separate records without a CCS, the response in ≤ 512-byte records
    assert.ok(trace.every((l) => !/14 03 03 00 01 01/.test(l) || l.startsWith('>> ')), 'the card sent no CCS');
    assert.ok(trace.every((l) => !/6D02|6F00/.test(l)), 'no input the card could not take');
  });
});

test('TLS-SE setls extension: the client’s KeyUpdate(update_requested) is answered by the card (decrypt → records ‖ 16), then requests still work', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  await withTandem('tls-se', async (port, trace) => {
    const steps = [
      { waitFor: /Verify return code: 0/ },
      { write: httpGet('/status', { keepAlive: true }) },
      { waitFor: /setls demo plug/ },
      { write: 'K\n' },
      { waitFor: /^KEYUPDATE$/m },
      { write: httpGet('/status', { keepAlive: true }) },
      { waitFor: /setls demo plug/, count: 2 },
      { write: httpGet('/status') },
      { waitFor: /setls demo plug/, count: 3 },
    ];
    const r = await runInteractive('openssl', ['s_client', '-CAfile', init.caCertPath, '-servername', 'localhost', '-connect', `127.0.0.1:${port}`, '-verify_return_error'], steps);
    assert.ok(r.completed, `stuck at ${r.stuckAt}: ${r.stdout}${r.stderr}`);
    // the decrypt exchange whose output ended in 16 carried the card's KeyUpdate record for the client
    assert.ok(trace.some((l) => l.startsWith('<< 17 03 03') && / 16 90 00  9000/.test(l)), 'a decrypt answered records ‖ 16 (the card’s KeyUpdate)');
  });
});

test('TLS-SE applet in-process: openssl -psk (psk_dhe_ke, secp256r1), PSK set with 00 85 under the admin PIN; a wrong PSK is refused with an alert', async (t) => {
  if (!requirePeer(t, 'openssl')) return;
  await withTandem('tls-se', async (port) => {
    const args = (psk: string): string[] => ['s_client', '-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256', '-psk', psk, '-psk_identity', 'Client_identity', '-groups', 'P-256', '-connect', `127.0.0.1:${port}`, '-ign_eof'];
    // positive control first: the server is up and the right PSK works
    const out = await run('openssl', args(PSK), REQ);
    assert.match(out, /TLSv1\.3, Cipher is TLS_AES_128_CCM_SHA256/, out);
    assert.match(out, /no peer certificate available/, 'PSK authentication: no certificate');
    assert.match(out, /Server Temp Key: ECDH, prime256v1/, 'psk_dhe_ke on secp256r1');
    assert.match(out, /HTTP\/1\.1 200 OK/);
    const bad = await run('openssl', args('ff'.repeat(32)), REQ);
    assert.doesNotMatch(bad, /HTTP\/1\.1 200 OK/, 'a wrong PSK gets nothing');
    assert.match(bad, BAD_PSK_REFUSAL, `the refusal itself: ${bad}`);
  });
});

test('both drivers against both applets of one card: EAP → setls applet, TLS-SE → TLS-SE applet (Node https)', async () => {
  const get = (port: number, ciphers?: string): Promise<string> =>
    new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/status', ca: readFileSync(init.caCertPath), servername: 'localhost', agent: false, ...(ciphers ? { ciphers } : {}) }, (res) => {
          let s = '';
          res.on('data', (c: Buffer) => (s += c.toString()));
          res.on('end', () => resolve(s));
        })
        .on('error', reject);
    });
  await withTandem('eap', async (port) => assert.match(await get(port), /"terminatedIn":"secure element"/));
  await withTandem('tls-se', async (port) => assert.match(await get(port, 'TLS_AES_128_CCM_SHA256'), /setls demo plug/));
  await withTandem('eap', async (port) => assert.match(await get(port), /"cardIdentity":"default"/));
});
