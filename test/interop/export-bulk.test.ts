// Exported bulk (TLS-Tandem, recordLayer 'host') read by a real peer: curl downloads /bytes/N of
// more than 16 MiB after the session was exported, for every AEAD family the host seals with
// (TLS 1.3 AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; TLS 1.2 ECDHE-ECDSA AES-128-GCM and
// ChaCha20-Poly1305), and the SHA-256 of what curl wrote is the SHA-256 of the pattern computed
// here. Thousands of records, several per socket write (one gathered writev per batch): a record
// out of order, a reused nonce or a chunk lost in a batch and curl fails or the digest differs.
// Then Node's TLS client (OpenSSL) reading slowly — stopping for a while every MiB — so the server's
// writes meet backpressure while records are sealed into recycled slabs (seal-slabs.ts): every byte
// must still arrive authenticated and in order, and the slabs must come back to the pool. (That a
// slab goes back only once the socket is done with it is RecordLayer.send's `written` callback,
// tested in test/host/record-layer-send.test.ts: SeTlsSocket also waits for the drain between
// batches, so this test alone would not see a slab given back early.)
import { describe, test, before, after } from 'node:test';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { allowExport, makeTestCard, startTestHttps, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';
import { keptSlabs } from '../../src/host/seal-slabs.js';
import { nativeSealStatus } from '../../src/tls/record/native-seal.js';

/** More than 16 MiB (the pattern's 64 KiB block index wraps at 256) and not a multiple of a record. */
const N = 16 * 1024 * 1024 + 5 * 65536 + 4321;

/** SHA-256 of the /bytes/N pattern, from its formula (not the server's code). */
function expectedDigest(n: number): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let o = 0; o < n; o += buf.length) {
    const k = Math.min(buf.length, n - o);
    for (let j = 0; j < k; j++) {
      const i = o + j;
      buf[j] = (i * 31 + (i >>> 8) + (i >>> 16)) & 0xff;
    }
    h.update(buf.subarray(0, k));
  }
  return h.digest('hex');
}

/** curl's body streamed into SHA-256; curl's -v lines say which protocol and suite it used. */
function curlDigest(args: readonly string[]): Promise<{ code: number | null; bytes: number; digest: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-sS', '-v', '--fail', '--max-time', '120', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const h = createHash('sha256');
    let bytes = 0;
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      h.update(d);
    });
    p.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    p.on('close', (code) => resolve({ code, bytes, digest: h.digest('hex'), stderr }));
  });
}

describe('exported bulk: curl reads > 16 MiB sealed on the host, SHA-256 checked', () => {
  let card: TestCard;
  let server: RunningHttps;
  let want: string;

  before(async () => {
    want = expectedDigest(N);
    card = await makeTestCard();
    await allowExport(card);
    server = await startTestHttps(card, undefined, { recordLayer: 'host' });
  });

  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  const cases: { name: string; args: string[]; suite: RegExp }[] = [
    { name: 'TLS 1.3 AES-128-GCM', args: ['--tlsv1.3', '--tls13-ciphers', 'TLS_AES_128_GCM_SHA256'], suite: /TLSv1\.3 \/ TLS_AES_128_GCM_SHA256/ },
    { name: 'TLS 1.3 AES-256-GCM', args: ['--tlsv1.3', '--tls13-ciphers', 'TLS_AES_256_GCM_SHA384'], suite: /TLSv1\.3 \/ TLS_AES_256_GCM_SHA384/ },
    { name: 'TLS 1.3 ChaCha20-Poly1305', args: ['--tlsv1.3', '--tls13-ciphers', 'TLS_CHACHA20_POLY1305_SHA256'], suite: /TLSv1\.3 \/ TLS_CHACHA20_POLY1305_SHA256/ },
    { name: 'TLS 1.2 ECDHE-ECDSA AES-128-GCM', args: ['--tlsv1.2', '--tls-max', '1.2', '--ciphers', 'ECDHE-ECDSA-AES128-GCM-SHA256'], suite: /TLSv1\.2 \/ ECDHE-ECDSA-AES128-GCM-SHA256/ },
    { name: 'TLS 1.2 ECDHE-ECDSA ChaCha20-Poly1305', args: ['--tlsv1.2', '--tls-max', '1.2', '--ciphers', 'ECDHE-ECDSA-CHACHA20-POLY1305'], suite: /TLSv1\.2 \/ ECDHE-ECDSA-CHACHA20-POLY1305/ },
  ];
  for (const c of cases) {
    test(`${c.name}: ${N} bytes, SHA-256 matches`, async (t) => {
      if (!requirePeer(t, 'curl')) return;
      // /status first on the same connection (curl reuses it): the session's records are on the host
      const statusFile = join(card.root, `status-${c.name.replace(/\W+/g, '-')}.json`);
      const base = `https://localhost:${server.port}`;
      const r = await curlDigest([...c.args, '--cacert', card.init.caCertPath, `${base}/status`, '-o', statusFile, `${base}/bytes/${N}`, '-o', '-']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, c.suite, 'curl negotiated the suite asked for');
      assert.match(r.stderr, /Re-using existing connection/, 'one connection for both requests');
      assert.equal((JSON.parse(readFileSync(statusFile, 'utf8')) as { tls: { recordLayer: string } }).tls.recordLayer, 'host');
      assert.equal(r.bytes, N);
      assert.equal(r.digest, want);
    });
  }

  test(`Node's client reading slowly (a 150 ms stop every MiB): ${N} bytes, SHA-256 matches; slabs recycled`, async () => {
    const sock = tlsConnect({ port: server.port, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(card.init.caCertPath), minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' });
    await once(sock, 'secureConnect');
    sock.write(`GET /bytes/${N} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    const h = createHash('sha256');
    let head = Buffer.alloc(0);
    let body = 0;
    let nextStop = 1 << 20;
    let stops = 0;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`read ${body} of ${N} bytes within 120 s`)), 120_000);
      sock.on('data', (d: Buffer) => {
        if (head !== undefined && body === 0 && head.indexOf('\r\n\r\n') < 0) {
          head = Buffer.concat([head, d]);
          const e = head.indexOf('\r\n\r\n');
          if (e < 0) return;
          assert.match(head.subarray(0, e).toString(), /^HTTP\/1\.1 200/);
          d = head.subarray(e + 4);
        }
        h.update(d);
        body += d.length;
        if (body >= nextStop) {
          nextStop += 1 << 20;
          stops++;
          sock.pause();
          setTimeout(() => sock.resume(), 150);
        }
      });
      sock.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      sock.once('end', () => {
        clearTimeout(t);
        resolve();
      });
    });
    sock.destroy();
    assert.equal(body, N);
    assert.equal(h.digest('hex'), want);
    assert.ok(stops >= 16, `the client stopped ${stops} times`);
    if (nativeSealStatus().active) assert.ok(keptSlabs() > 0, 'slabs came back after their writes');
  });
});
