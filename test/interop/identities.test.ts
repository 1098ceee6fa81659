// ECDSA P-256 and RSA-2048 card identities (key generated inside the card, certified by the local
// CA) against every peer at hand, each verifying the certificate: openssl s_client, curl, Node's
// tls/https, Python's ssl, gnutls-cli and headless Chromium.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get, request } from 'node:https';
import { randomBytes } from 'node:crypto';
import {
  makeTestCard,
  startTestHttps,
  run,
  runInteractive,
  statusBodies,
  httpGet,
  nodeTlsGet,
  pythonTlsGet,
  spkiPin,
  certSha256,
  PYTHON,
  type TestCard,
} from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';

interface IdentityCase {
  readonly keyType: 'p256' | 'rsa2048';
  readonly title: string;
  /** openssl s_client's "Peer signature type" and "Server public key is N bit". */
  readonly opensslSigType: string;
  readonly bits: number;
  /** The scheme the card signed CertificateVerify with (IANA name, as /status reports it). */
  readonly scheme: string;
  /** gnutls-cli's name of that scheme in its session description. */
  readonly gnutlsSig: string;
}

const CASES: readonly IdentityCase[] = [
  { keyType: 'p256', title: 'ECDSA P-256', opensslSigType: 'ECDSA', bits: 256, scheme: 'ecdsa_secp256r1_sha256', gnutlsSig: 'ECDSA-SECP256R1-SHA256' },
  { keyType: 'rsa2048', title: 'RSA-2048', opensslSigType: 'RSA-PSS', bits: 2048, scheme: 'rsa_pss_rsae_sha256', gnutlsSig: 'RSA-PSS-RSAE-SHA256' },
];

const CHROMIUM = '/usr/bin/chromium';

async function chromiumDumpDom(url: string, spkiPins: readonly string[]): Promise<Awaited<ReturnType<typeof run>>> {
  const profile = mkdtempSync(join(tmpdir(), 'setls-chromium-'));
  try {
    return await run(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--user-data-dir=${profile}`,
        `--ignore-certificate-errors-spki-list=${spkiPins.join(',')}`,
        '--dump-dom',
        url,
      ],
      { timeoutMs: 60000 },
    );
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

for (const c of CASES) {
  describe(`${c.title} identity`, () => {
    let card: TestCard;
    let server: RunningHttps;
    let leafSha256: string;

    before(async () => {
      card = await makeTestCard({ keyType: c.keyType });
      leafSha256 = certSha256(card.init.leafPem);
      server = await startTestHttps(card);
    });
    after(async () => {
      await server?.close();
      card?.cleanup();
    });

    test(`openssl s_client: Peer signature type ${c.opensslSigType}, ${c.bits}-bit key, verify OK, GET`, async (t) => {
      if (!requirePeer(t, 'openssl')) return;
      const r = await run(
        'openssl',
        ['s_client', '-tls1_3', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_hostname', 'localhost', '-verify_return_error', '-ign_eof'],
        { input: httpGet('/status') },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Peer signature type: ${c.opensslSigType}$`, 'm'));
      assert.match(r.stdout, new RegExp(`^Server public key is ${c.bits} bit$`, 'm'));
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
      assert.match(r.stdout, /^subject=CN = localhost$/m);
      const [body] = statusBodies(r.stdout);
      assert.equal(body?.tls.signatureScheme, c.scheme);
      assert.equal(body?.tls.cardIdentity, 'default');
    });

    if (c.keyType === 'rsa2048') {
      test('openssl -sigalgs: the card signs with rsa_pss_rsae_sha384/512 when asked, refuses PKCS#1 v1.5 and PSS-only keys', async (t) => {
        if (!requirePeer(t, 'openssl')) return;
        const go = (sigalgs: string): ReturnType<typeof run> =>
          run('openssl', ['s_client', '-tls1_3', '-sigalgs', sigalgs, '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-ign_eof'], {
            input: httpGet('/status'),
          });
        for (const [sigalgs, digest] of [['rsa_pss_rsae_sha384', 'SHA384'], ['rsa_pss_rsae_sha512', 'SHA512']] as const) {
          const r = await go(sigalgs);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, new RegExp(`^Peer signing digest: ${digest}$`, 'm'));
          assert.match(r.stdout, /^Peer signature type: RSA-PSS$/m);
          assert.equal(statusBodies(r.stdout)[0]?.tls.signatureScheme, sigalgs);
        }
        // RFC 8446 4.4.3: PKCS#1 v1.5 is not for CertificateVerify; rsa_pss_pss_* needs a PSS key.
        for (const sigalgs of ['rsa_pkcs1_sha256', 'rsa_pss_pss_sha256', 'ecdsa_secp256r1_sha256']) {
          const r = await go(sigalgs);
          assert.match(r.stderr, /SSL alert number 40\b/, sigalgs);
          assert.equal(statusBodies(r.stdout).length, 0, sigalgs);
        }
      });
    } else {
      test('openssl -sigalgs ecdsa_secp384r1_sha384 only: the P-256 card cannot sign it, handshake_failure', async (t) => {
        if (!requirePeer(t, 'openssl')) return;
        const r = await run('openssl', ['s_client', '-tls1_3', '-sigalgs', 'ecdsa_secp384r1_sha384', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-ign_eof'], {
          input: httpGet('/status'),
        });
        assert.match(r.stderr, /SSL alert number 40\b/);
        assert.equal(statusBodies(r.stdout).length, 0);
      });
    }

    test('curl --cacert: certificate verified, JSON back', async (t) => {
      if (!requirePeer(t, 'curl')) return;
      const r = await run('curl', ['-sS', '-v', '--tlsv1.3', '--cacert', card.init.caCertPath, `https://localhost:${server.port}/status`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /SSL certificate verify ok/);
      assert.match(r.stderr, /subject: CN=localhost/);
      assert.match(r.stderr, /SSL connection using TLSv1\.3 \/ TLS_AES_128_GCM_SHA256/);
      const [body] = statusBodies(r.stdout);
      assert.equal(body?.tls.signatureScheme, c.scheme);
      assert.equal(body?.tls.terminatedIn, 'secure element');
    });

    test("Node's tls: authorized, the card's certificate and key type", async () => {
      const r = await nodeTlsGet(server.port, '/status', { ca: card.ca, ALPNProtocols: ['http/1.1'] });
      assert.equal(r.authorized, true);
      assert.equal(r.protocol, 'TLSv1.3');
      assert.equal(r.alpn, 'http/1.1');
      assert.equal(r.peer.fingerprint256.replace(/:/g, '').toLowerCase(), leafSha256);
      assert.equal(r.peer.bits, c.bits);
      if (c.keyType === 'p256') {
        assert.equal(r.peer.asn1Curve, 'prime256v1');
        assert.equal(r.peer.modulus, undefined);
      } else {
        assert.equal(r.peer.modulus?.length, 512); // 2048 bits in hex
        assert.equal(r.peer.exponent, '0x10001');
      }
      assert.equal(r.peer.issuerCertificate?.subject?.CN, 'setls local CA');
      assert.equal(statusBodies(r.response.toString('latin1'))[0]?.tls.signatureScheme, c.scheme);
    });

    test("Node's https.get (default agent checks) refuses the server without the CA, accepts it with", async () => {
      const fetch = (ca?: string): Promise<{ ok: true; body: string } | { ok: false; code: string }> =>
        new Promise((resolve) => {
          const req = get({ host: '127.0.0.1', port: server.port, path: '/status', servername: 'localhost', agent: false, ...(ca ? { ca } : {}) }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ ok: true, body }));
          });
          req.on('error', (e: Error & { code?: string }) => resolve({ ok: false, code: e.code ?? e.message }));
        });
      const without = await fetch();
      assert.equal(without.ok, false);
      assert.equal((without as { code: string }).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      const withCa = await fetch(card.ca);
      assert.ok(withCa.ok);
      assert.equal(statusBodies((withCa as { body: string }).body)[0]?.tls.signatureScheme, c.scheme);
    });

    test("Python 3 ssl.create_default_context(cafile=CA): TLSv1.3, the card's certificate, GET", async (t) => {
      if (!requirePeer(t, PYTHON)) return;
      const { run: r, result } = await pythonTlsGet(card.init.caCertPath, server.port, { alpn: ['http/1.1'] });
      assert.equal(result.error, undefined, `${result.error} ${r.stderr}`);
      assert.equal(result.version, 'TLSv1.3');
      assert.deepEqual(result.cipher, ['TLS_AES_128_GCM_SHA256', 'TLSv1.3', 128]);
      assert.equal(result.alpn, 'http/1.1');
      assert.equal(result.subject?.commonName, 'localhost');
      assert.equal(result.leafSha256, leafSha256);
      assert.match(result.response ?? '', /^HTTP\/1\.1 200 OK\r\n/);
      assert.equal(statusBodies(result.response ?? '')[0]?.tls.signatureScheme, c.scheme);
    });

    test('Python 3 ssl with the system CAs instead rejects the certificate', async (t) => {
      if (!requirePeer(t, PYTHON)) return;
      const { result } = await pythonTlsGet('/etc/ssl/certs/ca-certificates.crt', server.port);
      assert.match(result.error ?? '', /CERTIFICATE_VERIFY_FAILED/);
      assert.equal(result.version, undefined);
    });

    test(`gnutls-cli --x509cafile CA: "The certificate is trusted", (${c.gnutlsSig}), GET`, async (t) => {
      if (!requirePeer(t, 'gnutls-cli')) return;
      const r = await runInteractive(
        'gnutls-cli',
        ['--x509cafile', card.init.caCertPath, '-p', String(server.port), 'localhost'],
        [{ waitFor: /Handshake was completed/ }, { write: httpGet('/status', { keepAlive: true }) }, { waitFor: /^\{"device"/m }],
      );
      assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /- Status: The certificate is trusted\./);
      assert.ok(r.stdout.includes(`- Description: (TLS1.3-X.509)-(ECDHE-X25519)-(${c.gnutlsSig})-(AES-128-GCM)`), r.stdout);
      assert.ok(r.stdout.includes(`pin-sha256:${spkiPin(card.init.spki)}`), 'the SPKI gnutls saw is the one generated in the card');
      assert.equal(statusBodies(r.stdout)[0]?.tls.signatureScheme, c.scheme);
    });

    test('headless Chromium pinned to the card key (SPKI SHA-256) loads the plug page with the live relay state', async (t) => {
      if (!requirePeer(t, CHROMIUM)) return;
      // Switch the relay first, so the page shows state this server holds.
      const put = await new Promise<number>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: server.port, path: '/relay', method: 'PUT', ca: card.ca, servername: 'localhost', agent: false, headers: { 'content-type': 'application/json' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end('{"state":"on"}');
      });
      assert.equal(put, 200);
      const r = await chromiumDumpDom(`https://localhost:${server.port}/`, [spkiPin(card.init.spki)]);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      assert.match(r.stdout, /<h1>setls demo plug<\/h1>/, r.stdout + r.stderr.slice(-2000));
      assert.match(r.stdout, /<p id="relay">Relay: <strong>on<\/strong><\/p>/);
      assert.match(r.stdout, /terminates inside a secure element/);
    });

    test('headless Chromium reads /status: TLS 1.3 with the card identity', async (t) => {
      if (!requirePeer(t, CHROMIUM)) return;
      const r = await chromiumDumpDom(`https://localhost:${server.port}/status`, [spkiPin(card.init.spki)]);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      const json = /\{"device":.*\}/.exec(r.stdout)?.[0];
      assert.ok(json, r.stdout);
      const body = JSON.parse(json) as ReturnType<typeof statusBodies>[number];
      assert.equal(body.tls.version, 'TLSv1.3');
      assert.equal(body.tls.signatureScheme, c.scheme);
      assert.equal(body.tls.alpn, 'http/1.1');
      assert.equal(body.tls.serverName, 'localhost');
    });

    if (c.keyType === 'p256') {
      test('headless Chromium pinned to another key gets no page (the pin is what lets it in)', async (t) => {
        if (!requirePeer(t, CHROMIUM)) return;
        const r = await chromiumDumpDom(`https://localhost:${server.port}/`, [randomBytes(32).toString('base64')]);
        assert.doesNotMatch(r.stdout, /setls demo plug/);
        assert.match(r.stderr, /ERR_CERT_AUTHORITY_INVALID/);
      });
    }
  });
}
