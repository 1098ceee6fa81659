// The TLS-SE host driver (src/host/tls-se-driver.ts):
//  1. against a scripted fake card that follows draft-urien-tls-se Fig. 5 exactly (RECV ClientHello →
//     61xx; SEND → ServerHello + 9Fxx; SEND → EncryptedExtensions + 9Fxx; SEND → Finished + 9000;
//     RECV client Finished → 9001; decrypt/encrypt with `plaintext ‖ CT`; 6Cxx; 240-byte fragments);
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
import { parseCommand, encodeResponse } from '../../src/apdu/index.js';
import { concat } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { initCard, readOperatorPin, type InitResult } from '../../src/cli/card-setup.js';
import { CardClient, TlsSeSession, TlsSeDriver, TlsTandem } from '../../src/host/index.js';
import { InProcessTransport, TracingTransport } from '../../src/transport/index.js';
import { serveHttps, createPlugHandler, createPlugState } from '../../src/servers/https/index.js';

const rec = (type: number, n: number, fill: number): Uint8Array => {
  const r = new Uint8Array(5 + n).fill(fill);
  r.set([type, 3, 3, n >> 8, n & 0xff]);
  return r;
};

/** Fig. 5 of draft-urien-tls-se, scripted. */
function fig5Card(): { transport: InProcessTransport; log: string[] } {
  const SH = rec(22, 90, 0x51);
  const EE = rec(23, 300, 0x52); // > 240: SEND blocks + 61xx inside one item
  const FIN = rec(23, 53, 0x53);
  let rx: Uint8Array[] = [];
  let items: Uint8Array[] = [];
  let off = 0;
  let final = 0x9000;
  let askedLeOnce = false;
  const log: string[] = [];
  const r = (d: Uint8Array, sw: number): Uint8Array => encodeResponse(d, sw);
  const process = (apdu: Uint8Array): Uint8Array => {
    const c = parseCommand(apdu);
    log.push(`${c.ins.toString(16)} ${c.p1} ${c.p2} ${c.data.length}`);
    if (c.ins === 0xa4) return r(new Uint8Array(0), 0x9000);
    if (c.ins === 0x20) return r(new Uint8Array(0), 0x9000);
    if (c.ins === 0xd8) {
      if (c.data.length === 0) return r(new Uint8Array(0), 0x9000);
      if (c.p2 & 1) rx = [];
      rx.push(c.data);
      if (!(c.p2 & 2)) return r(new Uint8Array(0), 0x9000);
      const input = concat(...rx);
      if (c.p1 === 0 && input[0] === 22 && input[5] === 1) {
        items = [SH, EE, FIN];
        final = 0x9000;
      } else if (c.p1 === 0) return r(new Uint8Array(0), 0x9001);
      else if (c.p1 === 1) {
        const pt = input.subarray(5).map((b) => b ^ 0x5a);
        items = [concat(pt, Uint8Array.of(0x17))];
        final = 0x9000;
      } else if (c.p1 === 2) {
        const pt = input.subarray(0, input.length - 1).map((b) => b ^ 0x5a);
        const o = rec(23, pt.length, 0);
        o.set(pt, 5);
        items = [o];
        final = input[input.length - 1] === 0x15 ? 0x9002 : 0x9000;
      }
      off = 0;
      return r(new Uint8Array(0), 0x6100 | (items[0]!.length & 0xff));
    }
    if (c.ins === 0xc0) {
      const cur = items[0]!;
      if (!askedLeOnce && c.ne !== Math.min(cur.length - off, 256)) {
        askedLeOnce = true;
        return r(new Uint8Array(0), 0x6c00 | Math.min(cur.length - off, 240));
      }
      const n = Math.min(c.ne, 240, cur.length - off);
      const d = cur.slice(off, off + n);
      off += n;
      if (off < cur.length) return r(d, 0x6100 | ((cur.length - off) & 0xff));
      items.shift();
      off = 0;
      if (items.length) return r(d, 0x9f00 | (items[0]!.length & 0xff));
      return r(d, final);
    }
    return r(new Uint8Array(0), 0x6d00);
  };
  return { transport: new InProcessTransport(process), log };
}

test('TLS-SE driver vs a scripted Fig. 5 card: handshake items, 9001, decrypt/encrypt, fragments, 6Cxx', async () => {
  const { transport, log } = fig5Card();
  const client = new CardClient(transport, { extended: false });
  const drv = new TlsSeDriver(client, { pin: '0000' });
  await drv.start();
  await drv.resetState();
  const s = drv.newSession() as TlsSeSession;
  const ch = rec(22, 560, 0x01);
  ch[5] = 1;
  const step = await s.handshake([ch]);
  assert.equal(step.needMore, true);
  assert.deepEqual([...step.toClient.subarray(0, 5)], [22, 3, 3, 0, 90]);
  assert.equal(step.toClient.length, 95 + 305 + 58, 'ServerHello ‖ EncryptedExtensions ‖ Finished');
  const fr = log.filter((l) => l.startsWith('d8 0'));
  assert.deepEqual(fr.slice(-3), ['d8 0 1 240', 'd8 0 0 240', 'd8 0 2 85'], '240-byte fragments, P2 first/middle/last');
  const fin = await s.handshake([rec(20, 1, 1), rec(23, 53, 7), rec(23, 10, 0x5a ^ 0x41)]);
  assert.equal(fin.done, true);
  assert.equal(s.phase, 'connected');
  assert.equal(fin.remaining.length, 1, 'the record after the Finished is left for decrypt');
  const d = await s.decrypt(fin.remaining[0]!);
  assert.deepEqual([...d.plaintext], new Array(10).fill(0x41));
  const e = await s.encrypt(23, new Uint8Array(300).fill(0x42));
  assert.equal(e.length, 305);
  assert.equal(e[5], 0x42 ^ 0x5a);
  await s.encrypt(21, Uint8Array.of(1, 0));
  assert.equal(s.phase, 'closed');
  assert.ok(log.some((l) => l.startsWith('c0')), 'SEND = GET RESPONSE 00 C0');
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

function run(cmd: string, args: string[], input: string): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    p.stdin.end(input);
  });
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

const REQ = 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';

test('TLS-SE applet in-process: openssl -tls1_3 TLS_AES_128_CCM_SHA256, certificate mode (card identity)', async () => {
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

test('TLS-SE applet in-process: openssl -psk (psk_dhe_ke, secp256r1), PSK set with 00 85 under the admin PIN', async () => {
  await withTandem('tls-se', async (port) => {
    const out = await run(
      'openssl',
      ['s_client', '-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256', '-psk', PSK, '-psk_identity', 'Client_identity', '-groups', 'P-256', '-connect', `127.0.0.1:${port}`, '-ign_eof'],
      REQ,
    );
    assert.match(out, /TLSv1\.3, Cipher is TLS_AES_128_CCM_SHA256/, out);
    assert.match(out, /no peer certificate available/, 'PSK authentication: no certificate');
    assert.match(out, /Server Temp Key: ECDH, prime256v1/, 'psk_dhe_ke on secp256r1');
    assert.match(out, /HTTP\/1\.1 200 OK/);
    const bad = await run('openssl', ['s_client', '-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256', '-psk', 'ff'.repeat(32), '-psk_identity', 'Client_identity', '-connect', `127.0.0.1:${port}`, '-ign_eof'], REQ);
    assert.doesNotMatch(bad, /HTTP\/1\.1 200 OK/, 'a wrong PSK gets nothing');
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
