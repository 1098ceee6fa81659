/**
 * libcoap's clients against CoAP over DTLS (coaps://, RFC 7252) served by the host DTLS listener
 * (HelloVerifyRequest, fragmentation, retransmission) with the emulated card as the key holder (the
 * handshake and the record layer in the card, docs/apdu-protocol.md §8; the PSK put in by PUT-PSK,
 * the certificate the card's P-256 identity) and the demo plug resources: PSK and certificates,
 * GET, PUT, Observe, block-wise 64 KiB. libcoap clients exit 0 even on failure: payloads are checked,
 * and a refusal is asserted as such (coap-refusal.ts). A duplicated CON (a lossy relay repeating every
 * client datagram) is processed once. The request semantics (4.06, 4.12, 5.05) through the card.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { requirePeer } from './peers.js';
import { makeTestCard, run, type TestCard } from './helpers.js';
import { startRelay } from '../host/dtls-relay.js';
import { openCard, readOperatorPin } from '../../src/cli/card-setup.js';
import { cardPaths, readPin } from '../../src/cli/card-files.js';
import { CardClient, type CardTransport } from '../../src/host/index.js';
import { CardDtlsBackends, DtlsServer } from '../../src/host/dtls/index.js';
import { createPlugCoapServer, serveCoapOverDtls, blobBytes } from '../../src/servers/coap/index.js';
import type { DtlsAssociation } from '../../src/host/dtls/index.js';
import { createPlugState, type PlugState } from '../../src/servers/https/index.js';
import type { CoapServer } from '../../src/coap/index.js';
import { BLOB_SHA256, assertReadings, dataOf } from './coap-output.js';
import { DTLS_ALERT_RECEIVED, ServerLog, VERIFY_FAILED, assertRefused, clientPort } from './coap-refusal.js';

const PSK_ID = 'setls-coap';
const PSK_KEY = 'setls-coap-psk-key-0123';
let card: TestCard;
let transport: CardTransport;
let closeCard: () => void;
let dir: string;
let caFile: string;
let dtls: DtlsServer;
let coap: CoapServer;
let state: PlugState;
let port: number;
let processed = 0;
const serverLog = new ServerLog();

before(async () => {
  card = await makeTestCard();
  dir = card.root;
  caFile = card.init.caCertPath;
  const opened = openCard({ cardDir: card.cardDir });
  transport = opened.transport;
  closeCard = () => opened.card.close();
  const admin = new CardClient(transport);
  await admin.select();
  await admin.verifyPin(readOperatorPin(card.init.paths), 'operator');
  await admin.putPolicy({ cipherSuites12: [0xc0ae, 0xc02b, 0xc0a8, 0xc02c] });
  await admin.putPsk({ identity: PSK_ID, key: new Uint8Array(Buffer.from(PSK_KEY)) });
  const backends = new CardDtlsBackends({ card: new CardClient(transport), pin: readPin(cardPaths(card.cardDir).pinFile) });
  state = createPlugState();
  coap = createPlugCoapServer(state, { powerIntervalMs: 300 });
  coap.on('request', () => processed++);
  dtls = new DtlsServer({
    openBackend: backends.openBackend,
  });
  serveCoapOverDtls(dtls, coap);
  serverLog.watchDtls(dtls);
  port = (await dtls.listen(0)).port;
});

after(async () => {
  await dtls?.close();
  await coap?.close();
  await transport?.close();
  closeCard?.();
  card?.cleanup();
});

const psk = ['-u', PSK_ID, '-k', PSK_KEY];
const cert = (): string[] => ['-C', caFile];

function client(cmd: string, auth: string[], args: string[], target = port, timeoutMs = 20_000): ReturnType<typeof run> {
  return run(cmd, ['-B', '10', ...auth, ...args.slice(0, -1), `coaps://127.0.0.1:${target}${args[args.length - 1]}`], { timeoutMs });
}

for (const cmd of ['coap-client-openssl', 'coap-client-gnutls'] as const) {
  for (const [mode, auth] of [['PSK', () => psk], ['certificate', cert]] as const) {
    test(`${cmd} (${mode}): GET /status over coaps://`, async (t) => {
      if (!requirePeer(t, cmd)) return;
      const r = await client(cmd, auth(), ['-m', 'get', '/status']);
      assert.ok(r.stdout.trim().startsWith('{'), `no JSON in stdout: ${r.stdout}\n${r.stderr}`);
      assert.equal(JSON.parse(r.stdout.trim()).device, 'setls demo plug');
      assert.equal(JSON.parse(r.stdout.trim()).transport, 'coaps');
    });
  }

  test(`${cmd}: PUT /relay on/off (PSK)`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const on = await client(cmd, psk, ['-m', 'put', '-e', 'on', '/relay']);
    assert.equal(on.stdout.trim(), 'on', on.stderr);
    assert.equal(state.relay, 'on');
    const off = await client(cmd, psk, ['-m', 'put', '-e', 'off', '/relay']);
    assert.equal(off.stdout.trim(), 'off');
    assert.equal(state.relay, 'off');
  });

  test(`${cmd}: observe /power (-s 3) over UDP notifications (PSK)`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    state.relay = 'on';
    const r = await client(cmd, psk, ['-s', '3', '-w', '-m', 'get', '/power']);
    const values = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
    assert.ok(values.length >= 3, `only ${values.length} values: ${r.stdout}\n${r.stderr}`);
    for (const v of values) assert.ok(Number(v) > 1000, `not a reading: ${v}`);
    state.relay = 'off';
  });

  test(`${cmd}: block-wise GET (-b 1024) of the 64 KiB /blob (certificate), sha256 checked`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const out = join(dir, `blob-${cmd}.bin`);
    if (existsSync(out)) rmSync(out);
    const r = await client(cmd, cert(), ['-b', '1024', '-o', out, '-m', 'get', '/blob'], port, 40_000);
    assert.ok(existsSync(out), `no output file: ${r.stdout}\n${r.stderr}`);
    const got = readFileSync(out);
    assert.equal(got.length, 64 * 1024);
    assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(blobBytes()).digest('hex'));
  });
}

test('a duplicated CON request is processed once (relay repeats every client datagram)', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const relay = await startRelay(port, (dir) => (dir === 'up' ? 'dup' : 'pass'));
  // The association handles its datagrams in order: once it has ended on the client's close_notify
  // (sent after the PUT and its copy), both copies of the PUT have been dealt with.
  let association: DtlsAssociation | undefined;
  const onAssociation = (a: DtlsAssociation): void => void (association ??= a);
  dtls.on('association', onAssociation);
  try {
    state.relay = 'off';
    const before = processed;
    const r = await client('coap-client-openssl', psk, ['-m', 'put', '-e', 'on', '/relay'], relay.port);
    assert.equal(r.stdout.trim(), 'on', r.stderr);
    assert.ok(association, 'the relayed client had an association');
    await serverLog.expect(association.port, /^dtls peer closed$/, 20_000); // the client's close_notify, after the PUT and its copy
    const upPut = relay.log.filter((l) => l.dir === 'up' && l.verdict === 'dup' && l.datagram[0] === 23);
    assert.ok(upPut.length >= 1, 'the relay repeated the PUT record');
    assert.equal(processed - before, 1, 'one PUT reached the resource');
  } finally {
    dtls.off('association', onAssociation);
    await relay.close();
  }
});

test('a client that does not trust the CA refuses the card certificate (after a positive control)', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const ok = await client('coap-client-openssl', cert(), ['-m', 'get', '/status']);
  assert.equal(JSON.parse(dataOf(ok.stdout).trim() || '{}').device, 'setls demo plug', `positive control: ${ok.stdout}\n${ok.stderr}`);
  const r = await client('coap-client-openssl', ['-C', '/etc/ssl/certs/ca-certificates.crt'], ['-m', 'get', '/status']);
  assertRefused(r, VERIFY_FAILED);
  await serverLog.expect(clientPort(r), DTLS_ALERT_RECEIVED); // the client's alert ended the association
});

test('coaps:// through the card: -A 60 on /status → 4.06, If-None-Match PUT /relay → 4.12 (relay untouched), -P → 5.05', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  state.relay = 'off';
  const accept = await client('coap-client-openssl', psk, ['-A', '60', '-m', 'get', '/status']);
  assert.match(accept.stderr, /^4\.06 /m, `${accept.stdout}\n${accept.stderr}`);
  const guarded = await client('coap-client-openssl', psk, ['-O', '5', '-m', 'put', '-e', 'on', '/relay']);
  assert.match(guarded.stderr, /^4\.12 /m, `${guarded.stdout}\n${guarded.stderr}`);
  assert.equal(state.relay, 'off');
  const proxied = await run('coap-client-openssl', ['-B', '10', ...psk, '-P', `coaps://127.0.0.1:${port}`, 'coap://example.org/status'], { timeoutMs: 20_000 });
  assert.match(proxied.stderr, /^5\.05 /m, `${proxied.stdout}\n${proxied.stderr}`);
});

// The rest of the matrix over coaps:// (issue #5 acceptance): block-wise with a PSK, PUT and
// Observe with the card's certificate verified (-C).


for (const cmd of ['coap-client-openssl', 'coap-client-gnutls'] as const) {
  test(`${cmd}: block-wise GET (-b 1024) of the 64 KiB /blob (PSK), sha256 checked`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    const out = join(dir, `blob-psk-${cmd}.bin`);
    if (existsSync(out)) rmSync(out);
    const r = await client(cmd, psk, ['-b', '1024', '-o', out, '-m', 'get', '/blob'], port, 40_000);
    assert.ok(existsSync(out), `no output file: ${r.stdout}\n${r.stderr}`);
    const got = readFileSync(out);
    assert.equal(got.length, 64 * 1024);
    assert.equal(createHash('sha256').update(got).digest('hex'), BLOB_SHA256);
  });

  test(`${cmd}: PUT /relay on/off (certificate)`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    state.relay = 'off';
    const on = await client(cmd, cert(), ['-m', 'put', '-e', 'on', '/relay']);
    assert.equal(dataOf(on.stdout).trim(), 'on', on.stderr);
    assert.equal(state.relay, 'on');
    const off = await client(cmd, cert(), ['-m', 'put', '-e', 'off', '/relay']);
    assert.equal(dataOf(off.stdout).trim(), 'off', off.stderr);
    assert.equal(state.relay, 'off');
  });

  test(`${cmd}: observe /power (-s 3) over UDP notifications (certificate)`, async (t) => {
    if (!requirePeer(t, cmd)) return;
    state.relay = 'on';
    try {
      assertReadings(await client(cmd, cert(), ['-s', '3', '-w', '-m', 'get', '/power']));
    } finally {
      state.relay = 'off';
    }
  });
}
