// The HTTPS suite through the card, run with the record layer in the card and exported to the
// host (TLS-Tandem): real clients nobody here wrote (curl, openssl s_client, Node's https).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:https';
import { createHash } from 'node:crypto';
import { allowExport, makeTestCard, startTestHttps, run, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import { patternByte } from '../../src/servers/https/index.js';
import type { RunningHttps } from '../../src/cli/serve.js';

/** Registers the whole HTTPS suite for one record-layer mode. */
export function httpsSuite(recordLayer: 'card' | 'host'): void {
  describe(`HTTPS through the card, record layer in the ${recordLayer}`, () => {
    let card: TestCard;
    let server: RunningHttps;

    before(async () => {
      card = await makeTestCard();
      if (recordLayer === 'host') {
        // TLS-Tandem: the identity's policy must allow the export.
        await allowExport(card);
      }
      server = await startTestHttps(card, undefined, { recordLayer });
    });

    after(async () => {
      await server?.close();
      card?.cleanup();
    });

    test('curl --cacert gets /status over TLS 1.3 with the certificate verified', async (t) => {
      if (!requirePeer(t, 'curl')) return;
      const r = await run('curl', ['-sS', '-v', '--tlsv1.3', '--cacert', card.init.caCertPath, `https://localhost:${server.port}/status`]);
      assert.equal(r.code, 0, r.stderr);
      const body = JSON.parse(r.stdout);
      assert.equal(body.device, 'setls demo plug');
      assert.equal(body.tls.version, 'TLSv1.3');
      assert.equal(body.tls.cipherSuite, 'TLS_AES_128_GCM_SHA256');
      assert.equal(body.tls.signatureScheme, 'ecdsa_secp256r1_sha256');
      assert.equal(body.tls.terminatedIn, 'secure element');
      assert.equal(body.tls.recordLayer, recordLayer);
      assert.match(r.stderr, /SSL connection using TLSv1\.3 \/ TLS_AES_128_GCM_SHA256/);
      assert.match(r.stderr, /SSL certificate verify ok/);
      assert.match(r.stderr, /ALPN: server accepted http\/1\.1/);
    });

    test('curl PUT /relay switches the relay; bad JSON gets 400 with a clear message', async (t) => {
      if (!requirePeer(t, 'curl')) return;
      const base = ['-sS', '--cacert', card.init.caCertPath, '-X', 'PUT', '-H', 'content-type: application/json'];
      const ok = await run('curl', [...base, '-d', '{"state":"on"}', `https://localhost:${server.port}/relay`]);
      assert.equal(JSON.parse(ok.stdout).relay, 'on');
      const bad = await run('curl', [...base, '-w', '\n%{http_code}', '-d', '{"state":1}', `https://localhost:${server.port}/relay`]);
      const [json, code] = bad.stdout.trim().split('\n').filter((l) => l.length > 0);
      assert.equal(code, '400');
      assert.match(JSON.parse(json!).error, /expected \{"state":"on"\}/);
    });

    test('curl refuses the server without the CA (no -k): the certificate is really checked', async (t) => {
      if (!requirePeer(t, 'curl')) return;
      const r = await run('curl', ['-sS', '--cacert', '/etc/ssl/certs/ca-certificates.crt', `https://localhost:${server.port}/status`]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /certificate/i);
    });

    test('openssl s_client -tls1_3 completes a handshake and an HTTP exchange, verify OK', async (t) => {
      if (!requirePeer(t, 'openssl')) return;
      const r = await run(
        'openssl',
        ['s_client', '-tls1_3', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_return_error', '-ign_eof'],
        { input: 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' },
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
      assert.match(r.stdout, /New, TLSv1\.3, Cipher is TLS_AES_128_GCM_SHA256/);
      assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
      assert.match(r.stdout, /"device":"setls demo plug"/);
    });

    test("Node's https.get downloads 10 MB through the card's record layer, byte for byte", async () => {
      const N = 10 * 1000 * 1000;
      const { body, protocol } = await new Promise<{ body: Buffer; protocol: string | null }>((resolve, reject) => {
        const req = get({ host: '127.0.0.1', port: server.port, path: `/bytes/${N}`, ca: card.ca, servername: 'localhost', agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ body: Buffer.concat(chunks), protocol: (res.socket as import('node:tls').TLSSocket).getProtocol?.() ?? null }));
          res.on('error', reject);
        });
        req.on('error', reject);
      });
      assert.equal(protocol, 'TLSv1.3');
      assert.equal(body.length, N);
      const expected = Buffer.allocUnsafe(N);
      for (let i = 0; i < N; i++) expected[i] = patternByte(i);
      assert.equal(createHash('sha256').update(body).digest('hex'), createHash('sha256').update(expected).digest('hex'));
    });

    test('TLS 1.2 through the card: openssl -tls1_2 and Node (maxVersion TLSv1.2) get CCS + Finished via SW 9001', async (t) => {
      const body = await new Promise<{ json: { tls: { version: string; cipherSuite: string } }; protocol: string | null }>((resolve, reject) => {
        const req = get(
          { host: '127.0.0.1', port: server.port, path: '/status', ca: card.ca, servername: 'localhost', agent: false, maxVersion: 'TLSv1.2' },
          (res) => {
            let s = '';
            res.on('data', (c: Buffer) => (s += c.toString()));
            res.on('end', () => resolve({ json: JSON.parse(s), protocol: (res.socket as import('node:tls').TLSSocket).getProtocol?.() ?? null }));
          },
        );
        req.on('error', reject);
      });
      assert.equal(body.protocol, 'TLSv1.2');
      assert.equal(body.json.tls.version, 'TLSv1.2');
      assert.match(body.json.tls.cipherSuite, /^TLS_ECDHE_ECDSA_WITH_/);
      if (!requirePeer(t, 'openssl')) return;
      const r = await run(
        'openssl',
        ['s_client', '-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_return_error', '-ign_eof'],
        { input: 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' },
      );
      assert.match(r.stdout, /New, TLSv1\.2, Cipher is ECDHE-ECDSA-CHACHA20-POLY1305/);
      assert.match(r.stdout, /"cipherSuite":"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"/);
    });
  });
}
