// libcoap's clients (coap-client-openssl, coap-client-gnutls) against CoAP over TLS (coaps+tcp,
// RFC 8323) whose TLS ends in the emulated card: GET, PUT, Observe and block-wise with certificates
// and with a PSK (-u/-k). PSK: libcoap's openssl client restricts PSK to TLS 1.2, so the card's
// policy lists the TLS 1.2 PSK suites (C0A8, 00A8) and holds the PSK (PUT-PSK). coaps:// is
// coap-dtls*.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { makeTestCard, administerCard, run, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import { openCard } from '../../src/cli/card-setup.js';
import { cardPaths, readPin } from '../../src/cli/card-files.js';
import { CardClient, TlsTandem, type CardTransport } from '../../src/host/index.js';
import { readOperatorPin } from '../../src/cli/card-setup.js';
import { createPlugCoapServer, serveCoapOverTls, blobBytes } from '../../src/servers/coap/index.js';
import { createPlugState, type PlugState } from '../../src/servers/https/index.js';
import type { CoapServer } from '../../src/coap/index.js';
import { BLOB_SHA256, assertReadings, dataOf } from './coap-output.js';
import { ALERT_READ, ServerLog, TLS_REFUSED, VERIFY_FAILED, assertRefused, clientPort } from './coap-refusal.js';

const PSK_ID = 'setls-coap-tcp';
const PSK_KEY = 'setls-coap-tcp-psk-key-01';
let card: TestCard;
let tandem: TlsTandem;
let transport: CardTransport;
let closeCard: () => void;
let coap: CoapServer;
let state: PlugState;
let url: string;
const sessionErrors: string[] = [];
const serverLog = new ServerLog();

before(async () => {
  card = await makeTestCard();
  // libcoap's certificate clients offer ALPN "coap" only; the card's default ALPN policy is ["http/1.1"].
  await administerCard(card, { policy: { alpn: ['http/1.1', 'coap'], cipherSuites12: [0xc02b, 0xc02c, 0xcca9, 0xc0a8, 0x00a8] } });
  const opened = openCard({ cardDir: card.cardDir });
  transport = opened.transport;
  closeCard = () => opened.card.close();
  const admin = new CardClient(transport);
  await admin.select();
  await admin.verifyPin(readOperatorPin(card.init.paths), 'operator');
  await admin.putPsk({ identity: PSK_ID, key: new Uint8Array(Buffer.from(PSK_KEY)) });
  tandem = new TlsTandem({ transport, pin: readPin(cardPaths(card.cardDir).pinFile), backlog: 8 });
  await tandem.start();
  tandem.on('sessionError', (e: Error & { code?: string }) => sessionErrors.push(`${e.code}: ${e.message}`));
  serverLog.watchTandem(tandem);
  state = createPlugState();
  coap = createPlugCoapServer(state, { powerIntervalMs: 300 });
  serveCoapOverTls(tandem, coap);
  const server = tandem.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `coaps+tcp://localhost:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await coap?.close();
  await tandem?.close();
  await transport?.close();
  closeCard?.();
  card?.cleanup();
});

const CLIENTS = ['coap-client-openssl', 'coap-client-gnutls'] as const;

/** libcoap clients exit 0 even on failure: the payload (or its absence) is what tells. */
function client(cmd: string, args: string[], timeoutMs = 20_000): ReturnType<typeof run> {
  return run(cmd, ['-B', '8', '-C', card.init.caCertPath, ...args], { timeoutMs });
}

for (const cmd of CLIENTS) {
  test(`${cmd}: GET /status over coaps+tcp with the card's certificate verified`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const r = await client(cmd, ['-m', 'get', `${url}/status`]);
    assert.ok(r.stdout.trim().startsWith('{'), `no JSON in stdout: ${r.stdout}\n${r.stderr}`);
    const body = JSON.parse(r.stdout.trim());
    assert.equal(body.device, 'setls demo plug');
    assert.equal(body.transport, 'coaps+tcp');
  });

  test(`${cmd}: PUT /relay on/off switches the shared plug state`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const on = await client(cmd, ['-m', 'put', '-e', 'on', `${url}/relay`]);
    assert.equal(on.stdout.trim(), 'on', on.stderr);
    assert.equal(state.relay, 'on');
    const get = await client(cmd, ['-m', 'get', `${url}/relay`]);
    assert.equal(get.stdout.trim(), 'on');
    const bad = await client(cmd, ['-m', 'put', '-e', 'sideways', `${url}/relay`]);
    assert.match(bad.stdout + bad.stderr, /4\.00|expected 'on'/);
    const off = await client(cmd, ['-m', 'put', '-e', 'off', `${url}/relay`]);
    assert.equal(off.stdout.trim(), 'off');
    assert.equal(state.relay, 'off');
  });

  test(`${cmd}: observe /power (-s 3) prints several notifications`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    state.relay = 'on';
    const r = await client(cmd, ['-s', '3', '-w', '-m', 'get', `${url}/power`]);
    const values = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
    assert.ok(values.length >= 3, `only ${values.length} values: ${r.stdout}\n${r.stderr}`);
    for (const v of values) assert.ok(Number(v) > 1000, `not a reading: ${v}`);
    state.relay = 'off';
  });

  test(`${cmd}: block-wise GET (-b 1024) of the 64 KiB /blob, sha256 checked`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const out = join(card.root, `blob-${cmd}.bin`);
    if (existsSync(out)) rmSync(out);
    const r = await client(cmd, ['-b', '1024', '-o', out, '-m', 'get', `${url}/blob`], 30_000);
    assert.ok(existsSync(out), `no output file: ${r.stdout}\n${r.stderr}`);
    const got = readFileSync(out);
    assert.equal(got.length, 64 * 1024);
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(blobBytes()).digest('hex'));
  });

  test(`${cmd}: /.well-known/core lists the resources`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const r = await client(cmd, ['-m', 'get', `${url}/.well-known/core`]);
    assert.match(r.stdout, /<\/power>;[^,]*obs/);
    assert.match(r.stdout, /<\/blob>/);
  });
}

for (const cmd of CLIENTS) {
  test(`${cmd}: a client that does not trust the card CA refuses the card's certificate (after a positive control)`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const ok = await client(cmd, ['-m', 'get', `${url}/status`]);
    assert.equal(JSON.parse(dataOf(ok.stdout).trim() || '{}').device, 'setls demo plug', `positive control: ${ok.stdout}\n${ok.stderr}`);
    const r = await run(cmd, ['-B', '5', '-C', '/etc/ssl/certs/ca-certificates.crt', '-m', 'get', `${url}/status`], { timeoutMs: 20_000 });
    assertRefused(r, VERIFY_FAILED);
    await serverLog.expect(clientPort(r), /^tls /); // the card saw the handshake end
  });
}

for (const cmd of CLIENTS) {
  test(`${cmd} with a PSK (-u/-k) over coaps+tcp://: GET /status and PUT /relay through the card`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const psk = ['-B', '8', '-u', PSK_ID, '-k', PSK_KEY];
    const r = await run(cmd, [...psk, '-m', 'get', `${url}/status`], { timeoutMs: 20_000 });
    assert.ok(r.stdout.trim().startsWith('{'), `no JSON in stdout: ${r.stdout}\n${r.stderr}`);
    const body = JSON.parse(r.stdout.trim()) as { device: string; transport: string };
    assert.equal(body.device, 'setls demo plug');
    assert.equal(body.transport, 'coaps+tcp');
    const on = await run(cmd, [...psk, '-m', 'put', '-e', 'on', `${url}/relay`], { timeoutMs: 20_000 });
    assert.equal(on.stdout.trim(), 'on', on.stderr);
    assert.equal(state.relay, 'on');
    state.relay = 'off';
  });
}

for (const cmd of CLIENTS) {
  test(`${cmd} with a wrong PSK key over coaps+tcp:// is refused by the card (alert), after a positive control`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const ok = await run(cmd, ['-B', '8', '-u', PSK_ID, '-k', PSK_KEY, '-m', 'get', `${url}/status`], { timeoutMs: 20_000 });
    assert.equal(JSON.parse(dataOf(ok.stdout).trim() || '{}').device, 'setls demo plug', `positive control: ${ok.stdout}\n${ok.stderr}`);
    const r = await run(cmd, ['-B', '8', '-u', PSK_ID, '-k', `${PSK_KEY}-wrong`, '-m', 'get', `${url}/status`], { timeoutMs: 20_000 });
    assert.match(assertRefused(r, ALERT_READ), /bad record mac/i);
    await serverLog.expect(clientPort(r), TLS_REFUSED);
  });
}

test('coaps+tcp:// through the card: -A 60 on /status → 4.06, If-None-Match PUT /relay → 4.12 (relay untouched), -P → 5.05, BERT', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  state.relay = 'off';
  const accept = await client('coap-client-openssl', ['-A', '60', '-m', 'get', `${url}/status`]);
  assert.match(accept.stderr, /^4\.06 /m, `${accept.stdout}\n${accept.stderr}`);
  const guarded = await client('coap-client-openssl', ['-O', '5', '-m', 'put', '-e', 'on', `${url}/relay`]);
  assert.match(guarded.stderr, /^4\.12 /m, `${guarded.stdout}\n${guarded.stderr}`);
  assert.equal(state.relay, 'off');
  const proxied = await client('coap-client-openssl', ['-P', url, 'coap://example.org/status']);
  assert.match(proxied.stderr, /^5\.05 /m, `${proxied.stdout}\n${proxied.stderr}`);
  const out = join(card.root, 'blob-bert.bin');
  if (existsSync(out)) rmSync(out);
  await client('coap-client-openssl', ['-O', '23,0x07', '-o', out, '-m', 'get', `${url}/blob`], 30_000);
  assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), BLOB_SHA256, 'BERT (SZX 7) over TLS');
});

// PSK over coaps+tcp:// beyond GET/PUT: Observe and block-wise (issue #5 acceptance).
const pskArgs = ['-B', '8', '-u', PSK_ID, '-k', PSK_KEY];


for (const cmd of CLIENTS) {
  test(`${cmd} with a PSK (-u/-k) over coaps+tcp://: observe /power (-s 3) prints several notifications`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    state.relay = 'on';
    try {
      const r = await run(cmd, [...pskArgs, '-s', '3', '-w', '-m', 'get', `${url}/power`], { timeoutMs: 20_000 });
      assertReadings(r);
    } finally {
      state.relay = 'off';
    }
  });

  test(`${cmd} with a PSK (-u/-k) over coaps+tcp://: block-wise GET (-b 1024) of the 64 KiB /blob, sha256 checked`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const out = join(card.root, `blob-psk-${cmd}.bin`);
    if (existsSync(out)) rmSync(out);
    const r = await run(cmd, [...pskArgs, '-b', '1024', '-o', out, '-m', 'get', `${url}/blob`], { timeoutMs: 30_000 });
    assert.ok(existsSync(out), `no output file: ${r.stdout}\n${r.stderr}`);
    const got = readFileSync(out);
    assert.equal(got.length, 64 * 1024);
    assert.equal(createHash('sha256').update(got).digest('hex'), BLOB_SHA256);
  });
}
