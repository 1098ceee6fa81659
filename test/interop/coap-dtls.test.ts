/**
 * libcoap's clients against CoAP over DTLS (coaps://, RFC 7252) served by the host DTLS listener
 * (HelloVerifyRequest, fragmentation, retransmission) with the DTLS engine as the key holder (the
 * card's DTLS hook is docs/apdu-protocol.md §8) and the demo plug resources: PSK and certificates,
 * GET, PUT, Observe, block-wise 64 KiB. libcoap clients exit 0 even on failure: payloads are checked.
 * A duplicated CON (a lossy relay repeating every client datagram) is processed once.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePeer } from './peers.js';
import { run } from './helpers.js';
import { makePki, type TestPki } from '../tls/helpers/pki.js';
import { engineBackend } from '../tls/helpers/dtls.js';
import { startRelay } from '../host/dtls-relay.js';
import { DtlsServer } from '../../src/host/dtls/index.js';
import { createPlugCoapServer, serveCoapOverDtls, blobBytes } from '../../src/servers/coap/index.js';
import { createPlugState, type PlugState } from '../../src/servers/https/index.js';
import type { CoapServer } from '../../src/coap/index.js';

const PSK_ID = 'setls-coap';
const PSK_KEY = 'secretPSK';
let ec: TestPki;
let dir: string;
let caFile: string;
let dtls: DtlsServer;
let coap: CoapServer;
let state: PlugState;
let port: number;
let processed = 0;

before(async () => {
  ec = await makePki('ecdsa');
  dir = mkdtempSync(join(tmpdir(), 'setls-coaps-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ec.caPem);
  state = createPlugState();
  coap = createPlugCoapServer(state, { powerIntervalMs: 300 });
  coap.on('request', () => processed++);
  dtls = new DtlsServer({
    openBackend: async () =>
      engineBackend({
        selectIdentity: () => ec.identity,
        cipherSuites12: [0xc0ae, 0xc02b, 0xc0a8],
        groups: [0x0017, 0x001d],
        findPsk: (id) => (Buffer.from(id).toString() === PSK_ID ? { identity: id, key: Buffer.from(PSK_KEY) } : undefined),
      }),
  });
  serveCoapOverDtls(dtls, coap);
  port = (await dtls.listen(0)).port;
});

after(async () => {
  await dtls?.close();
  await coap?.close();
  rmSync(dir, { recursive: true, force: true });
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
  try {
    state.relay = 'off';
    const before = processed;
    const r = await client('coap-client-openssl', psk, ['-m', 'put', '-e', 'on', '/relay'], relay.port);
    assert.equal(r.stdout.trim(), 'on', r.stderr);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(processed - before, 1, 'one PUT reached the resource');
  } finally {
    await relay.close();
  }
});

test('a client that does not trust the CA gets nothing (certificate really checked)', async (t) => {
  if (!requirePeer(t, 'coap-client-openssl')) return;
  const r = await client('coap-client-openssl', ['-C', '/etc/ssl/certs/ca-certificates.crt'], ['-m', 'get', '/status']);
  assert.doesNotMatch(r.stdout, /setls demo plug/);
});
