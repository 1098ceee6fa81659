// Mutual TLS verified inside the card, both versions, against openssl s_client (-cert/-key), curl
// (--cert/--key) and Node's tls: a client certificate from a CA installed in the card as a trust
// anchor succeeds and the HTTP handler sees the client (/status `client`, /admin 200); without a
// certificate /admin answers 403 (policy optional); a certificate from another CA gets unknown_ca;
// under policy 'required' a missing certificate gets certificate_required (1.3) / handshake_failure (1.2).
// The operator's deny-list: the test, acting as operator through the card's security domain (SCP03 via
// the serving process's admin socket, src/gp/admin AdminClient), enrols an identity slot, pushes its
// client CA and then the client certificate's serial: openssl s_client -cert gets certificate_revoked.
import 'reflect-metadata';
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { openCard, readOperatorPin } from '../../src/cli/card-setup.js';
import { CardClient, type ClientAuth } from '../../src/host/index.js';
import { openLocalCa } from '../../src/pki/local-ca.js';
import { makeTestCard, startTestHttps, run, statusBodies, httpGet, nodeTlsGet, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';
import { openCardForAdmin } from '../../src/cli/admin-access.js';
import { readManufacturerMaster, readSecurityDomain, withGetResponse } from '../../src/cli/manufacturer.js';
import { factoryKeySet } from '../../src/factory/index.js';
import { AdminClient, AdminRequest, Field, Fn, KeyAlg, parseFunctionResponse, req } from '../../src/gp/admin/index.js';
import { makeCa } from '../card/isd/test-ca.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface ClientCert {
  readonly certPath: string;
  readonly keyPath: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly fingerprint256: string;
}

/** A client key pair (made here) and a certificate for it from the CA in `caDir`. */
async function clientCert(root: string, caDir: string, caName: string, cn: string, dns: string): Promise<ClientCert> {
  const ca = await openLocalCa(caDir, caName);
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${cn}`, keys, signingAlgorithm: EC });
  const der = await ca.sign(new Uint8Array(csr.rawData), { dnsNames: [dns], ipAddresses: [] });
  const certPem = new X509Certificate(der).toString();
  const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  const certPath = join(root, `${cn}.crt`);
  const keyPath = join(root, `${cn}.key`);
  writeFileSync(certPath, certPem);
  writeFileSync(keyPath, keyPem, { mode: 0o600 });
  return { certPath, keyPath, certPem, keyPem, fingerprint256: new X509Certificate(der).fingerprint256 };
}

async function configure(card: TestCard, clientAuth: ClientAuth, anchorPem: string): Promise<void> {
  const { transport, card: emulated } = openCard({ cardDir: card.cardDir });
  try {
    const c = new CardClient(transport);
    await c.select();
    await c.verifyPin(readOperatorPin(card.init.paths), 'operator');
    await c.putTrustAnchor('default', new Uint8Array(new X509Certificate(anchorPem).raw));
    await c.putIdentityPolicy({ label: 'default', clientAuth });
    const info = await c.identityInfo('default');
    assert.equal(info.clientAuth, clientAuth);
    assert.equal(info.trustAnchors.length, 1);
  } finally {
    await transport.close();
    emulated.close();
  }
}

interface StatusWithClient {
  readonly tls: { version: string };
  readonly client?: { subject: string; san: string[]; fingerprint: string };
}

function opensslArgs(card: TestCard, server: RunningHttps, extra: readonly string[]): string[] {
  return ['s_client', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-ign_eof', ...extra];
}

describe("mutual TLS, policy 'optional'", () => {
  let card: TestCard;
  let server: RunningHttps;
  let good: ClientCert;
  let rogue: ClientCert;
  before(async () => {
    card = await makeTestCard();
    good = await clientCert(card.root, join(card.root, 'client-ca'), 'setls test client CA', 'device-7', 'device7.example');
    rogue = await clientCert(card.root, join(card.root, 'rogue-ca'), 'rogue CA', 'intruder', 'intruder.example');
    const anchor = (await openLocalCa(join(card.root, 'client-ca'), 'setls test client CA')).certificate.toString('pem');
    await configure(card, 'optional', anchor);
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  for (const v of ['-tls1_3', '-tls1_2']) {
    test(`openssl s_client ${v} -cert/-key: /status shows the client, /admin 200`, async (t) => {
      if (!requirePeer(t, 'openssl')) return;
      const r = await run('openssl', opensslArgs(card, server, [v, '-cert', good.certPath, '-key', good.keyPath]), {
        input: httpGet('/status', { keepAlive: true }) + httpGet('/admin'),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`New, TLSv1\\.${v === '-tls1_3' ? 3 : 2}`));
      assert.match(r.stdout, /Acceptable client certificate CA names\n(?:.*\n)*?CN = setls test client CA/);
      const st = statusBodies(r.stdout)[0] as unknown as StatusWithClient;
      assert.equal(st.client?.subject, 'CN=device-7');
      assert.deepEqual(st.client?.san, ['DNS:device7.example']);
      assert.equal(st.client?.fingerprint, good.fingerprint256);
      assert.match(r.stdout, /HTTP\/1\.1 200 OK[\s\S]*"admin":true/);
    });
  }

  test('curl --cert/--key (TLS 1.3 and --tls-max 1.2): /admin 200 with the client subject', async (t) => {
    if (!requirePeer(t, 'curl')) return;
    for (const extra of [[], ['--tls-max', '1.2']]) {
      const r = await run('curl', ['-sS', '--cacert', card.init.caCertPath, '--cert', good.certPath, '--key', good.keyPath, ...extra, '-w', '\\n%{http_code}', `https://localhost:${server.port}/admin`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /"subject":"CN=device-7"/);
      assert.match(r.stdout, /\n200$/);
    }
  });

  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    test(`Node tls ${maxVersion} with cert/key: /admin 200; without: 403`, async () => {
      const withCert = await nodeTlsGet(server.port, '/admin', { ca: card.ca, cert: good.certPem, key: good.keyPem, maxVersion });
      assert.equal(withCert.protocol, maxVersion);
      assert.match(withCert.response.toString(), /^HTTP\/1\.1 200 OK[\s\S]*"fingerprint":"[0-9A-F:]{95}"/);
      const without = await nodeTlsGet(server.port, '/admin', { ca: card.ca, maxVersion });
      assert.match(without.response.toString(), /^HTTP\/1\.1 403 Forbidden/);
      const st = await nodeTlsGet(server.port, '/status', { ca: card.ca, maxVersion });
      assert.equal((statusBodies(st.response.toString())[0] as unknown as StatusWithClient).client, undefined);
    });
  }

  test('a certificate from a CA the card does not trust: alert unknown ca (1.3 and 1.2)', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    for (const v of ['-tls1_3', '-tls1_2']) {
      const r = await run('openssl', opensslArgs(card, server, [v, '-cert', rogue.certPath, '-key', rogue.keyPath]), { input: httpGet('/admin') });
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /alert unknown ca/);
      assert.doesNotMatch(r.stdout, /HTTP\/1\.1/);
    }
  });
});

describe("mutual TLS, policy 'required'", () => {
  let card: TestCard;
  let server: RunningHttps;
  before(async () => {
    card = await makeTestCard();
    await clientCert(card.root, join(card.root, 'client-ca'), 'setls test client CA', 'device-8', 'device8.example');
    const anchor = (await openLocalCa(join(card.root, 'client-ca'), 'setls test client CA')).certificate.toString('pem');
    await configure(card, 'required', anchor);
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  test('no client certificate: certificate required (TLS 1.3), handshake failure (TLS 1.2)', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r13 = await run('openssl', opensslArgs(card, server, ['-tls1_3']), { input: httpGet('/status') });
    assert.match(r13.stdout + r13.stderr, /alert certificate required/);
    assert.doesNotMatch(r13.stdout, /HTTP\/1\.1/);
    const r12 = await run('openssl', opensslArgs(card, server, ['-tls1_2']), { input: httpGet('/status') });
    assert.match(r12.stdout + r12.stderr, /alert handshake failure/);
    assert.doesNotMatch(r12.stdout, /HTTP\/1\.1/);
  });
});

describe("the operator's deny-list through the security domain (SCP03), against openssl s_client -cert", () => {
  let card: TestCard;
  let server: RunningHttps;
  let admin: AdminClient;
  let closeAdmin: () => Promise<void>;
  const paths: Record<string, string> = {};
  before(async () => {
    card = await makeTestCard();
    server = await startTestHttps(card);
    // the operator: the factory keys from the manufacturer master (what `operator init --manufacturer-keys` keeps)
    const opened = await openCardForAdmin({ cardDir: card.cardDir, quiet: true }); // the serving process's admin socket
    closeAdmin = () => opened.close();
    const transmit = withGetResponse((a) => opened.transport.transmit(a));
    const sd = await readSecurityDomain(transmit);
    const master = readManufacturerMaster(join(card.init.manufacturerDir, 'master.key'));
    admin = new AdminClient(transmit);
    await admin.select();
    await admin.open(factoryKeySet(master, sd!.uid!));
    master.fill(0);
    // enrol slot 1 for device.example, client auth optional; the operator's client CA
    const root = await makeCa('deny-list test operator root');
    const issuing = await root.subordinate('deny-list test operator CA');
    await admin.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [root.cert] }));
    const spki = req(parseFunctionResponse(Fn.generateIdentityKey, await admin.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256, policy: { exportAllowed: false, clientAuth: 'optional' } }))), Field.spki, 'spki');
    const leaf = await issuing.issueForSpki(spki, 'device.example', { dnsNames: ['device.example'] });
    await admin.call(AdminRequest.installCertificateChain({ slot: 1, certificates: [leaf, issuing.cert, root.cert] }));
    await admin.call(AdminRequest.activateIdentity({ slot: 1 }));
    await admin.call(AdminRequest.putTrustAnchors({ role: 'client-ca', certificates: [issuing.cert] }));
    paths.root = join(card.root, 'operator-root.pem');
    writeFileSync(paths.root, new X509Certificate(root.cert).toString());
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const clientSpki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    const client = await issuing.issueForSpki(clientSpki, 'device-9', { serial: '0badcafe' });
    paths.cert = join(card.root, 'device-9.crt');
    paths.key = join(card.root, 'device-9.key');
    writeFileSync(paths.cert, new X509Certificate(client).toString());
    writeFileSync(paths.key, x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'), { mode: 0o600 });
  });
  after(async () => {
    admin?.close();
    await closeAdmin?.();
    await server?.close();
    card?.cleanup();
  });

  const args = (v: string): string[] => ['s_client', '-CAfile', paths.root!, '-connect', `127.0.0.1:${server.port}`, '-servername', 'device.example', '-ign_eof', v, '-cert', paths.cert!, '-key', paths.key!];

  test('the client certificate is accepted, then refused with certificate_revoked once its serial is on the pushed deny-list (1.3 and 1.2)', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    for (const v of ['-tls1_3', '-tls1_2']) {
      const ok = await run('openssl', args(v), { input: httpGet('/status', { host: 'device.example' }) });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal((statusBodies(ok.stdout)[0] as unknown as StatusWithClient).client?.subject, 'CN=device-9', v);
    }
    await admin.call(AdminRequest.putRevocationList({ number: 1, serials: [Uint8Array.of(0x0b, 0xad, 0xca, 0xfe)] }));
    for (const v of ['-tls1_3', '-tls1_2']) {
      const r = await run('openssl', args(v), { input: httpGet('/status', { host: 'device.example' }) });
      assert.notEqual(r.code, 0, v);
      assert.match(r.stdout + r.stderr, /alert certificate revoked/, v);
      assert.doesNotMatch(r.stdout, /HTTP\/1\.1/);
    }
  });
});
