// TLS 1.2 through the card against real peers (openssl s_client, curl, gnutls-cli, Node's tls):
// every ECDHE suite of the card's 1.2 table on a P-256 card (CCM_8 enabled by the card policy) and
// on an RSA card, each completing and exchanging HTTP; the card's own view of the session (/status)
// agrees with the peer's; the RFC 8446 downgrade sentinel is in ServerHello.random.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestCard, administerCard, startTestHttps, run, runInteractive, statusBodies, httpGet, nodeTlsGet, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';
import { TLS12_SUITES } from '../../src/registry/tls-names.js';

interface Suite12 {
  readonly openssl: string;
  readonly iana: keyof typeof TLS12_SUITES;
  readonly gnutlsCipher: string;
  readonly gnutlsKx: string;
}

const ECDSA_SUITES: readonly Suite12[] = [
  { openssl: 'ECDHE-ECDSA-AES128-GCM-SHA256', iana: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', gnutlsCipher: 'AES-128-GCM', gnutlsKx: 'ECDHE-ECDSA' },
  { openssl: 'ECDHE-ECDSA-AES256-GCM-SHA384', iana: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', gnutlsCipher: 'AES-256-GCM', gnutlsKx: 'ECDHE-ECDSA' },
  { openssl: 'ECDHE-ECDSA-CHACHA20-POLY1305', iana: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', gnutlsCipher: 'CHACHA20-POLY1305', gnutlsKx: 'ECDHE-ECDSA' },
  { openssl: 'ECDHE-ECDSA-AES128-CCM8', iana: 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8', gnutlsCipher: 'AES-128-CCM-8', gnutlsKx: 'ECDHE-ECDSA' },
];
const RSA_SUITES: readonly Suite12[] = [
  { openssl: 'ECDHE-RSA-AES128-GCM-SHA256', iana: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', gnutlsCipher: 'AES-128-GCM', gnutlsKx: 'ECDHE-RSA' },
  { openssl: 'ECDHE-RSA-AES256-GCM-SHA384', iana: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', gnutlsCipher: 'AES-256-GCM', gnutlsKx: 'ECDHE-RSA' },
  { openssl: 'ECDHE-RSA-CHACHA20-POLY1305', iana: 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256', gnutlsCipher: 'CHACHA20-POLY1305', gnutlsKx: 'ECDHE-RSA' },
];

/** The card's 1.2 table in preference order (policy tag 35), CCM_8 included. */
const ALL12 = ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256'] as const;

/** ServerHello.random from `openssl s_client -msg` output (hex of the first ServerHello message). */
export function serverHelloRandom(out: string): string | undefined {
  const m = /<<< TLS 1\.[23], Handshake \[length [0-9a-f]+\], ServerHello\n((?:\s+[0-9a-f]{2}(?: [0-9a-f]{2})*\s*\n)+)/i.exec(out);
  if (!m) return undefined;
  const hex = m[1]!.replace(/\s+/g, '');
  return hex.slice(12, 76); // type(1) len(3) version(2), then 32 bytes
}

function opensslArgs(card: TestCard, server: RunningHttps, extra: readonly string[]): string[] {
  return ['s_client', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_return_error', '-ign_eof', ...extra];
}

function suiteTests(getCard: () => TestCard, getServer: () => RunningHttps, suites: readonly Suite12[], sig: RegExp): void {
  for (const s of suites) {
    test(`openssl s_client -tls1_2 -cipher ${s.openssl}: handshake, verify, GET`, async (t) => {
      if (!requirePeer(t, 'openssl')) return;
      const r = await run('openssl', opensslArgs(getCard(), getServer(), ['-tls1_2', '-cipher', s.openssl]), { input: httpGet('/status') });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, new RegExp(`New, TLSv1\\.2, Cipher is ${s.openssl}\\b`));
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
      assert.match(r.stdout, /Extended master secret: yes/);
      assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
      const [body] = statusBodies(r.stdout);
      assert.equal(body?.tls.version, 'TLSv1.2');
      assert.equal(body?.tls.cipherSuite, s.iana);
    });
    test(`gnutls-cli VERS-TLS1.2 +${s.gnutlsCipher} +${s.gnutlsKx}: handshake, verify, GET`, async (t) => {
      if (!requirePeer(t, 'gnutls-cli')) return;
      const prio = `NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+${s.gnutlsCipher}:-KX-ALL:+${s.gnutlsKx}`;
      const r = await runInteractive(
        'gnutls-cli',
        ['--priority', prio, '--x509cafile', getCard().init.caCertPath, '-p', String(getServer().port), 'localhost'],
        [{ waitFor: /Handshake was completed/ }, { write: httpGet('/status', { keepAlive: true }) }, { waitFor: /^\{"device"/m }],
      );
      assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /The certificate is trusted/);
      assert.match(r.stdout, new RegExp(`- Description: \\(TLS1\\.2-X\\.509\\)-\\(ECDHE-[A-Z0-9]+\\)-\\(${sig.source}\\)-\\(${s.gnutlsCipher}\\)`));
      const [body] = statusBodies(r.stdout);
      assert.equal(body?.tls.version, 'TLSv1.2');
      assert.equal(body?.tls.cipherSuite, s.iana);
    });
    test(`Node tls.connect maxVersion TLSv1.2 ciphers ${s.openssl}`, async () => {
      const r = await nodeTlsGet(getServer().port, '/status', { ca: getCard().ca, ciphers: s.openssl, maxVersion: 'TLSv1.2' });
      assert.equal(r.authorized, true);
      assert.equal(r.protocol, 'TLSv1.2');
      assert.equal(r.cipher, s.iana);
      const text = r.response.toString('latin1');
      assert.match(text, /^HTTP\/1\.1 200 OK/);
      assert.equal(statusBodies(text)[0]?.tls.cipherSuite, s.iana);
    });
  }
}

describe('TLS 1.2 on a P-256 card (ECDHE_ECDSA; CCM_8 enabled by policy)', () => {
  let card: TestCard;
  let server: RunningHttps;
  before(async () => {
    card = await makeTestCard({ keyType: 'p256' });
    // no fallback: a card that refuses policy tag 35 fails every test here (it used to skip CCM_8)
    await administerCard(card, { policy: { cipherSuites12: ALL12.map((n) => TLS12_SUITES[n]) } });
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  suiteTests(() => card, () => server, ECDSA_SUITES, /ECDSA-SHA256/);

  test('curl --tls-max 1.2: TLSv1.2 with an ECDHE-ECDSA suite, verify ok, GET', async (t) => {
    if (!requirePeer(t, 'curl')) return;
    const r = await run('curl', ['-sS', '-v', '--tlsv1.2', '--tls-max', '1.2', '--cacert', card.init.caCertPath, `https://localhost:${server.port}/status`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /SSL connection using TLSv1\.2 \/ ECDHE-ECDSA-[A-Z0-9-]+/);
    assert.match(r.stderr, /SSL certificate verify ok/);
    const [body] = statusBodies(r.stdout);
    assert.equal(body?.tls.version, 'TLSv1.2');
    assert.match(body?.tls.cipherSuite ?? '', /^TLS_ECDHE_ECDSA_/);
  });

  test('downgrade sentinel: a 1.2 ServerHello.random ends 444F574E47524401 (the card also speaks 1.3); a 1.3 one does not', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r12 = await run('openssl', opensslArgs(card, server, ['-tls1_2', '-msg']), { input: httpGet('/status') });
    assert.equal(r12.code, 0, r12.stderr + r12.stdout);
    const rnd12 = serverHelloRandom(r12.stdout);
    assert.ok(rnd12 && rnd12.length === 64, r12.stdout.slice(0, 2000));
    assert.equal(rnd12.slice(-16).toUpperCase(), '444F574E47524401');
    const r13 = await run('openssl', opensslArgs(card, server, ['-tls1_3', '-msg']), { input: httpGet('/status') });
    assert.equal(r13.code, 0, r13.stderr + r13.stdout);
    const rnd13 = serverHelloRandom(r13.stdout);
    assert.ok(rnd13 && rnd13.length === 64);
    assert.notEqual(rnd13.slice(-16).toUpperCase().slice(0, 14), '444F574E475244');
  });

  test('keep-alive over TLS 1.2: three requests on one connection (openssl), then close_notify', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const input = httpGet('/status', { keepAlive: true }) + httpGet('/bytes/40000', { keepAlive: true }) + httpGet('/status');
    const r = await run('openssl', opensslArgs(card, server, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256']), { input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((r.stdout.match(/HTTP\/1\.1 200 OK/g) ?? []).length, 3);
    assert.match(r.stdout, /content-length: 40000/i);
    assert.equal(statusBodies(r.stdout).length, 2);
  });
});

describe('TLS 1.2 on an RSA-2048 card (ECDHE_RSA)', () => {
  let card: TestCard;
  let server: RunningHttps;
  before(async () => {
    card = await makeTestCard({ keyType: 'rsa2048' });
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });
  suiteTests(() => card, () => server, RSA_SUITES, /RSA-(?:PSS-RSAE-)?SHA(?:256|384|512)/);
});
