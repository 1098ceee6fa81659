// SNI-selected identities and the card's SNI/ALPN policy against real peers. One card holds the
// default identity (ECDSA P-256, localhost), 'plug2' (RSA-2048, plug2.localhost) and 'wild' (ECDSA
// P-256, *.wild.localhost), added the way `setls card add-identity` does; the policy is set once per
// group, with the server stopped.
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
  pythonTlsGet,
  certSha256,
  PYTHON,
  type TestCard,
} from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';
import type { CardPolicy } from '../../src/host/index.js';

let card: TestCard;

before(async () => {
  card = await makeTestCard({ keyType: 'p256' });
  await administerCard(card, {
    identities: [
      { label: 'plug2', keyType: 'rsa2048', dnsNames: ['plug2.localhost'], ipAddresses: [] },
      { label: 'wild', keyType: 'p256', dnsNames: ['*.wild.localhost'], ipAddresses: [] },
    ],
  });
});
after(() => card?.cleanup());

function sClient(server: RunningHttps, sni: string | null, extra: readonly string[] = []): string[] {
  return [
    's_client',
    '-tls1_3',
    '-CAfile',
    card.init.caCertPath,
    '-connect',
    `127.0.0.1:${server.port}`,
    ...(sni === null ? ['-noservername'] : ['-servername', sni]),
    ...extra,
    '-ign_eof',
  ];
}

/** Serves the shared card under `policy` for the tests of one describe block. */
function servedWith(policy: CardPolicy): { server: () => RunningHttps } {
  let server: RunningHttps | undefined;
  before(async () => {
    await administerCard(card, { policy });
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
  });
  return { server: () => server! };
}

describe("policy unknownSni 'default', ALPN [http/1.1] (the defaults)", () => {
  const s = servedWith({ unknownSni: 'default', alpn: ['http/1.1'] });

  test('openssl -servername plug2.localhost: the plug2 identity (CN plug2.localhost, RSA-PSS), hostname verified', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', sClient(s.server(), 'plug2.localhost', ['-verify_hostname', 'plug2.localhost', '-verify_return_error']), {
      input: httpGet('/status', { host: 'plug2.localhost' }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^subject=CN = plug2\.localhost$/m);
    assert.match(r.stdout, /^Peer signature type: RSA-PSS$/m);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    const [body] = statusBodies(r.stdout);
    assert.equal(body?.tls.cardIdentity, 'plug2');
    assert.equal(body?.tls.serverName, 'plug2.localhost');
    assert.equal(body?.tls.signatureScheme, 'rsa_pss_rsae_sha256');
  });

  test('openssl -servername localhost: the default identity (CN localhost, ECDSA)', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', sClient(s.server(), 'localhost', ['-verify_hostname', 'localhost', '-verify_return_error']), { input: httpGet('/status') });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^subject=CN = localhost$/m);
    assert.match(r.stdout, /^Peer signature type: ECDSA$/m);
    assert.equal(statusBodies(r.stdout)[0]?.tls.cardIdentity, 'default');
  });

  test('curl https://plug2.localhost (resolved to 127.0.0.1) verifies the plug2 certificate', async (t) => {
    if (!requirePeer(t, 'curl')) return;
    const port = s.server().port;
    const r = await run('curl', ['-sS', '-v', '--cacert', card.init.caCertPath, '--resolve', `plug2.localhost:${port}:127.0.0.1`, `https://plug2.localhost:${port}/status`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /subject: CN=plug2\.localhost/);
    assert.match(r.stderr, /SSL certificate verify ok/);
    assert.equal(statusBodies(r.stdout)[0]?.tls.cardIdentity, 'plug2');
  });

  test('gnutls-cli --sni-hostname plug2.localhost --verify-hostname plug2.localhost: trusted, RSA-PSS', async (t) => {
    if (!requirePeer(t, 'gnutls-cli')) return;
    const r = await runInteractive(
      'gnutls-cli',
      ['--x509cafile', card.init.caCertPath, '--sni-hostname', 'plug2.localhost', '--verify-hostname', 'plug2.localhost', '-p', String(s.server().port), '127.0.0.1'],
      [{ waitFor: /Handshake was completed/ }, { write: httpGet('/status', { host: 'plug2.localhost', keepAlive: true }) }, { waitFor: /^\{"device"/m }],
    );
    assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /- Status: The certificate is trusted\./);
    assert.match(r.stdout, /\(RSA-PSS-RSAE-SHA256\)/);
    assert.equal(statusBodies(r.stdout)[0]?.tls.cardIdentity, 'plug2');
  });

  test("Python ssl with server_hostname='plug2.localhost' gets and checks the plug2 certificate", async (t) => {
    if (!requirePeer(t, PYTHON)) return;
    const { result } = await pythonTlsGet(card.init.caCertPath, s.server().port, { host: 'plug2.localhost' });
    assert.equal(result.error, undefined, result.error);
    assert.equal(result.subject?.commonName, 'plug2.localhost');
    assert.deepEqual(result.san, [['DNS', 'plug2.localhost']]);
    assert.notEqual(result.leafSha256, certSha256(card.init.leafPem));
    assert.equal(statusBodies(result.response ?? '')[0]?.tls.cardIdentity, 'plug2');
  });

  test("Node's tls with servername plug2.localhost: authorized, RSA-2048 leaf", async () => {
    const r = await nodeTlsGet(s.server().port, '/status', { ca: card.ca, servername: 'plug2.localhost' });
    assert.equal(r.authorized, true);
    assert.equal(r.peer.subject.CN, 'plug2.localhost');
    assert.equal(r.peer.bits, 2048);
  });

  test('SNI is matched without regard to case: PLUG2.LOCALHOST gets plug2', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', sClient(s.server(), 'PLUG2.LOCALHOST', ['-verify_hostname', 'PLUG2.LOCALHOST', '-verify_return_error']), { input: httpGet('/status') });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^subject=CN = plug2\.localhost$/m);
    assert.equal(statusBodies(r.stdout)[0]?.tls.cardIdentity, 'plug2');
  });

  test('a wildcard identity: a.wild.localhost gets *.wild.localhost, hostname verified by openssl and curl', async (t) => {
    if (!requirePeer(t, 'openssl') || !requirePeer(t, 'curl')) return;
    const port = s.server().port;
    const r = await run('openssl', sClient(s.server(), 'a.wild.localhost', ['-verify_hostname', 'a.wild.localhost', '-verify_return_error']), { input: httpGet('/status') });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^subject=CN = \*\.wild\.localhost$/m);
    assert.equal(statusBodies(r.stdout)[0]?.tls.cardIdentity, 'wild');
    const c = await run('curl', ['-sS', '-v', '--cacert', card.init.caCertPath, '--resolve', `b.wild.localhost:${port}:127.0.0.1`, `https://b.wild.localhost:${port}/status`]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /SSL certificate verify ok/);
    assert.equal(statusBodies(c.stdout)[0]?.tls.cardIdentity, 'wild');
  });

  test('an unknown SNI (nope.localhost) is served the default identity', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', sClient(s.server(), 'nope.localhost'), { input: httpGet('/status') });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^subject=CN = localhost$/m);
    assert.match(r.stdout, /New, TLSv1\.3, Cipher is TLS_/);
    const [body] = statusBodies(r.stdout);
    assert.equal(body?.tls.cardIdentity, 'default');
    assert.equal(body?.tls.serverName, 'nope.localhost');
  });

  test('openssl -alpn h2 (nothing the card speaks): no_application_protocol alert, no session', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', sClient(s.server(), 'localhost', ['-alpn', 'h2']), { input: httpGet('/status') });
    assert.match(r.stderr, /alert no application protocol/);
    assert.match(r.stderr, /SSL alert number 120\b/);
    assert.match(r.stdout, /New, \(NONE\), Cipher is \(NONE\)/);
    assert.equal(statusBodies(r.stdout).length, 0);
  });

  test('Python ssl with ALPN [h2] is refused with the no_application_protocol alert', async (t) => {
    if (!requirePeer(t, PYTHON)) return;
    const { result } = await pythonTlsGet(card.init.caCertPath, s.server().port, { alpn: ['h2'] });
    assert.match(result.error ?? '', /alert no application protocol/i);
  });

  test('openssl -alpn http/1.1 and -alpn h2,http/1.1: ALPN protocol: http/1.1', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    for (const offer of ['http/1.1', 'h2,http/1.1']) {
      const r = await run('openssl', sClient(s.server(), 'localhost', ['-alpn', offer, '-verify_return_error']), { input: httpGet('/status') });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^ALPN protocol: http\/1\.1$/m, offer);
      assert.equal(statusBodies(r.stdout)[0]?.tls.alpn, 'http/1.1');
    }
  });
});

describe("policy unknownSni 'reject', ALPN off", () => {
  const s = servedWith({ unknownSni: 'reject', alpn: [] });

  test('openssl -servername nope.localhost: unrecognized_name alert, no session', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', sClient(s.server(), 'nope.localhost'), { input: httpGet('/status') });
    assert.match(r.stderr, /unrecognized name/);
    assert.match(r.stderr, /SSL alert number 112\b/);
    assert.match(r.stdout, /New, \(NONE\), Cipher is \(NONE\)/);
    assert.equal(statusBodies(r.stdout).length, 0);
  });

  test('curl to nope.localhost fails on the unrecognized_name alert', async (t) => {
    if (!requirePeer(t, 'curl')) return;
    const port = s.server().port;
    const r = await run('curl', ['-sS', '--cacert', card.init.caCertPath, '--resolve', `nope.localhost:${port}:127.0.0.1`, `https://nope.localhost:${port}/status`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unrecognized name/);
  });

  test('known names are still served: plug2.localhost, localhost, and no SNI at all (the default identity)', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const cases: [string | null, string, string][] = [
      ['plug2.localhost', 'plug2.localhost', 'plug2'],
      ['localhost', 'localhost', 'default'],
      [null, 'localhost', 'default'],
    ];
    for (const [sni, cn, identity] of cases) {
      const r = await run('openssl', sClient(s.server(), sni, ['-verify_return_error']), { input: httpGet('/status') });
      assert.equal(r.code, 0, `${sni}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^subject=CN = ${cn.replace(/\./g, '\\.')}$`, 'm'), String(sni));
      const [body] = statusBodies(r.stdout);
      assert.equal(body?.tls.cardIdentity, identity, String(sni));
      assert.equal(body?.tls.serverName, sni ?? undefined);
    }
  });

  test('a wildcard covers one label only: wild.localhost and a.b.wild.localhost are unknown names', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    for (const sni of ['wild.localhost', 'a.b.wild.localhost']) {
      const r = await run('openssl', sClient(s.server(), sni), { input: httpGet('/status') });
      assert.match(r.stderr, /SSL alert number 112\b/, sni);
      assert.equal(statusBodies(r.stdout).length, 0, sni);
    }
  });

  test('curl https://127.0.0.1 (an IP literal: no SNI) gets the default identity, its IP SAN verified', async (t) => {
    if (!requirePeer(t, 'curl')) return;
    const r = await run('curl', ['-sS', '-v', '--cacert', card.init.caCertPath, `https://127.0.0.1:${s.server().port}/status`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /SSL certificate verify ok/);
    const [body] = statusBodies(r.stdout);
    assert.equal(body?.tls.cardIdentity, 'default');
    assert.equal(body?.tls.serverName, undefined);
  });

  test('with ALPN off, openssl -alpn h2 completes and no protocol is negotiated (HTTP/1.1 still works)', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', sClient(s.server(), 'localhost', ['-alpn', 'h2', '-verify_return_error']), { input: httpGet('/status') });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^No ALPN negotiated$/m);
    const [body] = statusBodies(r.stdout);
    assert.ok(body);
    assert.equal(body.tls.alpn, undefined);
  });

  test('with ALPN off, curl (offering h2,http/1.1) falls back to HTTP/1.1', async (t) => {
    if (!requirePeer(t, 'curl')) return;
    const r = await run('curl', ['-sS', '-v', '--cacert', card.init.caCertPath, `https://localhost:${s.server().port}/status`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ALPN: offers h2,http\/1\.1/);
    assert.doesNotMatch(r.stderr, /ALPN: server accepted/);
    assert.equal(statusBodies(r.stdout).length, 1);
  });
});
