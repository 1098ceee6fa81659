// The five TLS 1.3 cipher suites and both groups against real peers (curl and openssl s_client on
// the system OpenSSL 3.0, gnutls-cli, Node's bundled OpenSSL), with the card policy deciding what
// is on offer: every suite enabled (CCM_8 too) in one card, the default policy in another.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  makeTestCard,
  administerCard,
  startTestHttps,
  run,
  runInteractive,
  statusBodies,
  httpGet,
  nodeTlsGet,
  SUITE,
  ALL_SUITES,
  type TestCard,
  type SuiteName,
} from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';

/** gnutls priority-string names of the suites' ciphers. */
const GNUTLS_CIPHER: Record<SuiteName, string> = {
  TLS_AES_128_GCM_SHA256: 'AES-128-GCM',
  TLS_AES_256_GCM_SHA384: 'AES-256-GCM',
  TLS_CHACHA20_POLY1305_SHA256: 'CHACHA20-POLY1305',
  TLS_AES_128_CCM_SHA256: 'AES-128-CCM',
  TLS_AES_128_CCM_8_SHA256: 'AES-128-CCM-8',
};
const CURL_CURVES = [
  { curve: 'X25519', group: 'x25519', gnutls: 'X25519' },
  { curve: 'P-256', group: 'secp256r1', gnutls: 'SECP256R1' },
] as const;

function curlArgs(card: TestCard, server: RunningHttps, extra: readonly string[], path = '/status'): string[] {
  return ['-sS', '-v', '--tlsv1.3', '--cacert', card.init.caCertPath, ...extra, `https://localhost:${server.port}${path}`];
}

describe('card policy: all five suites, server order CHACHA20 first', () => {
  let card: TestCard;
  let server: RunningHttps;
  // Not the default order: the server's preference must show when the client offers several.
  const ORDER: readonly SuiteName[] = [
    'TLS_CHACHA20_POLY1305_SHA256',
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_AES_128_CCM_SHA256',
    'TLS_AES_128_CCM_8_SHA256',
  ];

  before(async () => {
    card = await makeTestCard({ keyType: 'p256' });
    await administerCard(card, { policy: { cipherSuites: ORDER.map((s) => SUITE[s]) } });
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  for (const suite of ALL_SUITES) {
    for (const { curve, group } of CURL_CURVES) {
      test(`curl --tls13-ciphers ${suite} --curves ${curve}`, async (t) => {
        if (!requirePeer(t, 'curl')) return;
        const r = await run('curl', curlArgs(card, server, ['--tls13-ciphers', suite, '--curves', curve]));
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`SSL connection using TLSv1\\.3 / ${suite}\\b`));
        assert.match(r.stderr, /SSL certificate verify ok/);
        const [body] = statusBodies(r.stdout);
        assert.ok(body, r.stdout);
        assert.equal(body.device, 'setls demo plug');
        // The card's own view of the session agrees with the peer's.
        assert.equal(body.tls.version, 'TLSv1.3');
        assert.equal(body.tls.cipherSuite, suite);
        assert.equal(body.tls.group, group);
      });
    }
  }

  for (const suite of ALL_SUITES) {
    for (const { gnutls, group } of CURL_CURVES) {
      test(`gnutls-cli priority +${GNUTLS_CIPHER[suite]} +GROUP-${gnutls}: handshake, verify, GET`, async (t) => {
        if (!requirePeer(t, 'gnutls-cli')) return;
        const prio = `NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+${GNUTLS_CIPHER[suite]}:-GROUP-ALL:+GROUP-${gnutls}`;
        const r = await runInteractive(
          'gnutls-cli',
          ['--priority', prio, '--x509cafile', card.init.caCertPath, '-p', String(server.port), 'localhost'],
          [{ waitFor: /Handshake was completed/ }, { write: httpGet('/status', { keepAlive: true }) }, { waitFor: /^\{"device"/m }],
        );
        assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
        assert.match(r.stdout, /The certificate is trusted/);
        const desc = `(TLS1.3-X.509)-(ECDHE-${gnutls})-(ECDSA-SECP256R1-SHA256)-(${GNUTLS_CIPHER[suite]})`;
        assert.ok(r.stdout.includes(`- Description: ${desc}`), r.stdout);
        const [body] = statusBodies(r.stdout);
        assert.equal(body?.tls.cipherSuite, suite);
        assert.equal(body?.tls.group, group);
      });
    }
  }

  test('openssl s_client -ciphersuites TLS_AES_128_CCM_8_SHA256: handshake, verify OK, GET', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run(
      'openssl',
      ['s_client', '-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_8_SHA256', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_return_error', '-ign_eof'],
      { input: httpGet('/status') },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /New, TLSv1\.3, Cipher is TLS_AES_128_CCM_8_SHA256/);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
    assert.equal(statusBodies(r.stdout)[0]?.tls.cipherSuite, 'TLS_AES_128_CCM_8_SHA256');
  });

  for (const suite of ALL_SUITES) {
    test(`Node tls.connect with ciphers '${suite}' only`, async () => {
      const r = await nodeTlsGet(server.port, '/status', { ca: card.ca, ciphers: suite, minVersion: 'TLSv1.3' });
      assert.equal(r.authorized, true);
      assert.equal(r.protocol, 'TLSv1.3');
      assert.equal(r.cipher, suite);
      assert.equal(statusBodies(r.response.toString('latin1'))[0]?.tls.cipherSuite, suite);
    });
  }

  test("the card's suite order wins: curl, gnutls and Node offering their defaults get CHACHA20", async (t) => {
    // Their own preference is AES-256-GCM (OpenSSL) or AES-256-GCM/AES-128-GCM first (GnuTLS).
    if (!requirePeer(t, 'curl') || !requirePeer(t, 'gnutls-cli')) return;
    const c = await run('curl', curlArgs(card, server, []));
    assert.match(c.stderr, /SSL connection using TLSv1\.3 \/ TLS_CHACHA20_POLY1305_SHA256\b/);
    const g = await runInteractive(
      'gnutls-cli',
      ['--x509cafile', card.init.caCertPath, '-p', String(server.port), 'localhost'],
      [{ waitFor: /Handshake was completed/ }],
    );
    assert.match(g.stdout, /- Description: \(TLS1\.3-X\.509\)-\(ECDHE-X25519\)-\(ECDSA-SECP256R1-SHA256\)-\(CHACHA20-POLY1305\)/);
    const n = await nodeTlsGet(server.port, '/status', { ca: card.ca });
    assert.equal(n.cipher, 'TLS_CHACHA20_POLY1305_SHA256');
  });

  test('a client with no group in common (X448 only) gets a handshake_failure alert; the server keeps serving', async (t) => {
    if (!requirePeer(t, 'openssl') || !requirePeer(t, 'curl')) return;
    const o = await run(
      'openssl',
      ['s_client', '-tls1_3', '-groups', 'X448', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost'],
    );
    assert.match(o.stderr, /alert handshake failure/);
    assert.match(o.stderr, /SSL alert number 40\b/);
    assert.doesNotMatch(o.stdout, /Cipher is TLS_/);
    const after = await run('curl', curlArgs(card, server, []));
    assert.equal(after.code, 0, after.stderr);
    assert.equal(statusBodies(after.stdout).length, 1);
  });
});

describe('default card policy: CCM_8 is off unless the policy lists it', () => {
  let card: TestCard;
  let server: RunningHttps;

  before(async () => {
    card = await makeTestCard({ keyType: 'p256' });
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  test('curl offering only TLS_AES_128_CCM_8_SHA256 is refused with handshake_failure', async (t) => {
    if (!requirePeer(t, 'curl')) return;
    const r = await run('curl', curlArgs(card, server, ['--tls13-ciphers', 'TLS_AES_128_CCM_8_SHA256']));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /handshake failure/i);
    assert.equal(statusBodies(r.stdout).length, 0);
  });

  test('openssl offering CCM_8 then CCM gets TLS_AES_128_CCM_SHA256', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run(
      'openssl',
      ['s_client', '-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_8_SHA256:TLS_AES_128_CCM_SHA256', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_return_error', '-ign_eof'],
      { input: httpGet('/status') },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /New, TLSv1\.3, Cipher is TLS_AES_128_CCM_SHA256\b/);
    assert.equal(statusBodies(r.stdout)[0]?.tls.cipherSuite, 'TLS_AES_128_CCM_SHA256');
  });

  test('openssl -maxfraglen 512: the card acknowledges max_fragment_length and keeps its records to 512 bytes', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run(
      'openssl',
      ['s_client', '-tls1_3', '-maxfraglen', '512', '-msg', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_return_error', '-ign_eof'],
      { input: httpGet('/bytes/20000') },
    );
    assert.equal(r.code, 0, r.stderr);
    // EncryptedExtensions carries max_fragment_length (type 1) = 1 (2^9).
    assert.match(r.stdout, /<<< TLS 1\.3, Handshake \[length [0-9a-f]{4}\], EncryptedExtensions\n {4}08 (?:[0-9a-f]{2} )*00 01 00 01 01/);
    // Every protected record the card sent: 512 bytes of content at most, + content type + 16-byte tag.
    // (No ^: the body bytes s_client prints run into the next -msg line.)
    const lengths = [...r.stdout.matchAll(/<<< TLS 1\.2, RecordHeader \[length 0005\]\n {4}17 03 03 ([0-9a-f]{2}) ([0-9a-f]{2})/gm)].map((m) => parseInt(m[1]! + m[2]!, 16));
    assert.ok(lengths.length > 40, `records: ${lengths.length}`);
    assert.ok(Math.max(...lengths) <= 512 + 1 + 16, `longest record ${Math.max(...lengths)}`);
    assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
    assert.match(r.stdout, /content-length: 20000/i);
  });

  test('curl with its default offer gets TLS_AES_128_GCM_SHA256 (first in the default policy)', async (t) => {
    if (!requirePeer(t, 'curl')) return;
    const r = await run('curl', curlArgs(card, server, []));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /SSL connection using TLSv1\.3 \/ TLS_AES_128_GCM_SHA256\b/);
  });
});
