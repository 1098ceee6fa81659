// Mutual certificates with libcoap over CoAP: coaps+tcp:// (TlsTandem) and coaps:// (host DTLS
// listener with the handshake in the card) against a card whose default identity has clientAuth
// 'required' and a client CA installed as trust anchor (PUT-TRUST-ANCHOR, PUT-IDENTITY-POLICY).
// coap-client-openssl and coap-client-gnutls with -C ca -c client.crt -j client.key get GET /status,
// PUT /relay, Observe /power and a block-wise 64 KiB /blob; without a client certificate, or with one
// from another CA, the card refuses the handshake. libcoap clients exit 0 even on failure: a refusal
// is asserted as the alert the client read plus the server's record of that connection, after a
// positive control in the same test (coap-refusal.ts).
import 'reflect-metadata';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import * as x509 from '@peculiar/x509';
import { makeTestCard, administerCard, run, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import { openCard, readOperatorPin } from '../../src/cli/card-setup.js';
import { cardPaths, readPin } from '../../src/cli/card-files.js';
import { CardClient, TlsTandem, type CardTransport } from '../../src/host/index.js';
import { CardDtlsBackends, DtlsServer } from '../../src/host/dtls/index.js';
import { openLocalCa } from '../../src/pki/local-ca.js';
import { createPlugCoapServer, serveCoapOverTls, serveCoapOverDtls } from '../../src/servers/coap/index.js';
import { createPlugState, type PlugState } from '../../src/servers/https/index.js';
import type { CoapServer } from '../../src/coap/index.js';
import { BLOB_SHA256, assertReadings, dataOf } from './coap-output.js';
import { ALERT_READ, DTLS_ALERT_SENT, ServerLog, TLS_REFUSED, assertRefused, clientPort } from './coap-refusal.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface ClientCert {
  readonly certPath: string;
  readonly keyPath: string;
}

/** A client key pair and a certificate for it from the local CA in `caDir` (as mtls.test.ts). */
async function clientCert(root: string, caDir: string, caName: string, cn: string): Promise<ClientCert> {
  const ca = await openLocalCa(caDir, caName);
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${cn}`, keys, signingAlgorithm: EC });
  const der = await ca.sign(new Uint8Array(csr.rawData), { dnsNames: [`${cn}.example`], ipAddresses: [] });
  const certPath = join(root, `${cn}.crt`);
  const keyPath = join(root, `${cn}.key`);
  writeFileSync(certPath, new X509Certificate(der).toString());
  writeFileSync(keyPath, x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'), { mode: 0o600 });
  return { certPath, keyPath };
}

let card: TestCard;
let transport: CardTransport;
let closeCard: () => void;
let tandem: TlsTandem;
let dtls: DtlsServer;
let coap: CoapServer;
let state: PlugState;
let good: ClientCert;
let rogue: ClientCert;
let tcpUrl: string;
let udpUrl: string;
const serverLog = new ServerLog();

before(async () => {
  card = await makeTestCard();
  good = await clientCert(card.root, join(card.root, 'client-ca'), 'setls coap client CA', 'coap-device');
  rogue = await clientCert(card.root, join(card.root, 'rogue-ca'), 'rogue CA', 'coap-intruder');
  const anchor = (await openLocalCa(join(card.root, 'client-ca'), 'setls coap client CA')).certificate.toString('pem');
  await administerCard(card, { policy: { alpn: ['http/1.1', 'coap'], cipherSuites12: [0xc0ae, 0xc02b, 0xc02c, 0xcca9] } });
  const opened = openCard({ cardDir: card.cardDir });
  transport = opened.transport;
  closeCard = () => opened.card.close();
  const admin = new CardClient(transport);
  await admin.select();
  await admin.verifyPin(readOperatorPin(card.init.paths), 'operator');
  await admin.putTrustAnchor('default', new Uint8Array(new X509Certificate(anchor).raw));
  await admin.putIdentityPolicy({ label: 'default', clientAuth: 'required' });
  const info = await admin.identityInfo('default');
  assert.equal(info.clientAuth, 'required');
  assert.equal(info.trustAnchors.length, 1);
  const pin = readPin(cardPaths(card.cardDir).pinFile);
  state = createPlugState();
  coap = createPlugCoapServer(state, { powerIntervalMs: 300 });
  tandem = new TlsTandem({ transport, pin, backlog: 8 });
  await tandem.start();
  serveCoapOverTls(tandem, coap);
  serverLog.watchTandem(tandem);
  const server = tandem.listen(0, '127.0.0.1');
  await once(server, 'listening');
  tcpUrl = `coaps+tcp://localhost:${(server.address() as AddressInfo).port}`;
  const backends = new CardDtlsBackends({ card: new CardClient(transport), pin });
  dtls = new DtlsServer({ openBackend: backends.openBackend });
  serveCoapOverDtls(dtls, coap);
  serverLog.watchDtls(dtls);
  udpUrl = `coaps://localhost:${(await dtls.listen(0)).port}`;
});

after(async () => {
  await dtls?.close();
  await coap?.close();
  await tandem?.close();
  await transport?.close();
  closeCard?.();
  card?.cleanup();
});

const CLIENTS = ['coap-client-openssl', 'coap-client-gnutls'] as const;
const SCHEMES = [
  ['coaps+tcp', () => tcpUrl],
  ['coaps', () => udpUrl],
] as const;

function get(cmd: string, base: string, extra: readonly string[]): ReturnType<typeof run> {
  return run(cmd, ['-B', '6', '-C', card.init.caCertPath, ...extra, '-m', 'get', `${base}/status`], { timeoutMs: 20_000 });
}

for (const [scheme, base] of SCHEMES) {
  for (const cmd of CLIENTS) {
    test(`${cmd} -c/-j over ${scheme}://, clientAuth required: GET /status`, async (t) => {
      if (!requirePeer(t, cmd)) return;
      const r = await get(cmd, base(), ['-c', good.certPath, '-j', good.keyPath]);
      assert.ok(r.stdout.trim().startsWith('{'), `no JSON in stdout: ${r.stdout}\n${r.stderr}`);
      const body = JSON.parse(r.stdout.trim()) as { device: string; transport: string };
      assert.equal(body.device, 'setls demo plug');
      assert.equal(body.transport, scheme);
    });

    test(`${cmd} over ${scheme}:// without a client certificate is refused by the card (alert), after a positive control`, async (t) => {
      if (!requirePeer(t, cmd)) return;
      await assertServed(cmd, base(), scheme);
      const r = await get(cmd, base(), []);
      assertRefused(r, ALERT_READ);
      await serverLog.expect(clientPort(r), scheme === 'coaps' ? DTLS_ALERT_SENT : TLS_REFUSED);
    });

    test(`${cmd} over ${scheme}:// with a certificate from another CA is refused by the card (alert), after a positive control`, async (t) => {
      if (!requirePeer(t, cmd)) return;
      await assertServed(cmd, base(), scheme);
      const r = await get(cmd, base(), ['-c', rogue.certPath, '-j', rogue.keyPath]);
      assertRefused(r, ALERT_READ);
      await serverLog.expect(clientPort(r), scheme === 'coaps' ? DTLS_ALERT_SENT : TLS_REFUSED);
    });
  }
}

/** Positive control: the same client with the accepted certificate gets /status now. */
async function assertServed(cmd: string, base: string, scheme: string): Promise<void> {
  const r = await get(cmd, base, ['-c', good.certPath, '-j', good.keyPath]);
  const body = JSON.parse(dataOf(r.stdout).trim() || '{}') as { device?: string; transport?: string };
  assert.equal(body.device, 'setls demo plug', `positive control failed: ${r.stdout}\n${r.stderr}`);
  assert.equal(body.transport, scheme);
}

// PUT, Observe and block-wise with mutual certificates, over both schemes and with both clients.
const mutual = (): string[] => ['-c', good.certPath, '-j', good.keyPath];

function mutualRun(cmd: string, base: string, args: readonly string[], path: string, timeoutMs = 20_000): ReturnType<typeof run> {
  return run(cmd, ['-B', '10', '-C', card.init.caCertPath, ...mutual(), ...args, `${base}${path}`], { timeoutMs });
}


// One client run after another: the card holds one session at a time (TlsTandem queues a second
// TLS client and closes a session idle for busyIdleTimeoutMs while others wait; the DTLS listener
// here shares the same card), so runs at once would not be independent of each other.
for (const [scheme, base] of SCHEMES) {
  for (const cmd of CLIENTS) {
    test(`${cmd} -c/-j over ${scheme}://: PUT /relay on/off switches the plug state`, async (t) => {
      if (!requirePeer(t, cmd)) return;
      state.relay = 'off';
      const on = await mutualRun(cmd, base(), ['-m', 'put', '-e', 'on'], '/relay');
      assert.equal(dataOf(on.stdout).trim(), 'on', `${on.stdout}\n${on.stderr}`);
      assert.equal(state.relay, 'on');
      const off = await mutualRun(cmd, base(), ['-m', 'put', '-e', 'off'], '/relay');
      assert.equal(dataOf(off.stdout).trim(), 'off', `${off.stdout}\n${off.stderr}`);
      assert.equal(state.relay, 'off');
    });

    test(`${cmd} -c/-j over ${scheme}://: observe /power (-s 3) prints several notifications`, async (t) => {
      if (!requirePeer(t, cmd)) return;
      state.relay = 'on';
      try {
        assertReadings(await mutualRun(cmd, base(), ['-s', '3', '-w', '-m', 'get'], '/power'));
      } finally {
        state.relay = 'off';
      }
    });

    test(`${cmd} -c/-j over ${scheme}://: block-wise GET (-b 1024) of the 64 KiB /blob, sha256 checked`, async (t) => {
      if (!requirePeer(t, cmd)) return;
      const out = join(card.root, `blob-mtls-${scheme}-${cmd}.bin`);
      if (existsSync(out)) rmSync(out);
      const r = await mutualRun(cmd, base(), ['-b', '1024', '-o', out, '-m', 'get'], '/blob', 40_000);
      assert.ok(existsSync(out), `no output file: ${r.stdout}\n${r.stderr}`);
      const got = readFileSync(out);
      assert.equal(got.length, 64 * 1024);
      assert.equal(createHash('sha256').update(got).digest('hex'), BLOB_SHA256);
    });
  }
}
