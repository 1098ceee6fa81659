// HelloRetryRequest and KeyUpdate against real peers: openssl s_client (-msg shows each handshake
// message with its bytes), gnutls-cli (its debug log names HRR and KeyUpdate), Node's tls.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { get } from 'node:https';
import {
  makeTestCard,
  administerCard,
  startTestHttps,
  run,
  runInteractive,
  statusBodies,
  httpGet,
  nodeTlsGet,
  countMatches,
  type TestCard,
} from './helpers.js';
import { requirePeer } from './peers.js';
import { patternByte } from '../../src/servers/https/index.js';
import type { RunningHttps } from '../../src/cli/serve.js';

/** RFC 8446 4.1.3: the ServerHello.random of a HelloRetryRequest, as openssl -msg prints it. */
const HRR_RANDOM = 'cf 21 ad 74 e5 9a 61 11 be 1d 8c 02 1e 65 b8 91 c2 a2 11 16 7a bb 8c 5e 07 9e 09 e2 c8 a8 33 9c';

/**
 * The hex dumps openssl -msg prints under each `name` handshake message going in `dir`, each as one
 * lower-case string. Not anchored at line starts: body bytes s_client prints run into -msg lines.
 */
function msgDumps(out: string, dir: '<<<' | '>>>', name: string): string[] {
  const re = new RegExp(`${dir} TLS 1\\.3, Handshake \\[length [0-9a-f]{4}\\], ${name}\\n((?: {4}[0-9a-f]{2}(?: [0-9a-f]{2})*\\n?)+)`, 'g');
  return [...out.matchAll(re)].map((m) => m[1]!.replace(/\s+/g, ' ').trim());
}

/** A KeyUpdate handshake message: type 24, length 1, request_update (RFC 8446 4.6.3). */
const KEY_UPDATE = (requested: boolean): string => `18 00 00 01 0${requested ? 1 : 0}`;

function sClient(card: TestCard, server: RunningHttps, extra: readonly string[]): string[] {
  return ['s_client', '-tls1_3', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_return_error', ...extra];
}

describe('default policy: HelloRetryRequest and client-driven KeyUpdate', () => {
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

  test('openssl -groups X448:P-256: a HelloRetryRequest, then a P-256 ServerHello, verify OK, GET', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', [...sClient(card, server, ['-groups', 'X448:P-256', '-msg', '-ign_eof'])], { input: httpGet('/status') });
    assert.equal(r.code, 0, r.stderr);
    const hellos = msgDumps(r.stdout, '<<<', 'ServerHello');
    assert.equal(hellos.length, 2, r.stdout);
    // The first ServerHello is the HRR (its magic random) and asks for secp256r1 (key_share 0x0017).
    assert.ok(hellos[0]!.startsWith(`02 00 00 `) && hellos[0]!.includes(`03 03 ${HRR_RANDOM}`), hellos[0]);
    assert.match(hellos[0]!, /00 33 00 02 00 17/);
    assert.ok(!hellos[1]!.includes(HRR_RANDOM), hellos[1]);
    assert.equal(msgDumps(r.stdout, '>>>', 'ClientHello').length, 2);
    assert.match(r.stdout, /Server Temp Key: ECDH, prime256v1, 256 bits/);
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(r.stdout, /New, TLSv1\.3, Cipher is TLS_AES_128_GCM_SHA256/);
    const [body] = statusBodies(r.stdout);
    assert.equal(body?.tls.group, 'secp256r1');
  });

  test('gnutls-cli with SECP384R1:SECP256R1 gets a HelloRetryRequest (with cookie) and completes on SECP256R1', async (t) => {
    if (!requirePeer(t, 'gnutls-cli')) return;
    const r = await runInteractive(
      'gnutls-cli',
      ['-d', '4', '--priority', 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-SECP384R1:+GROUP-SECP256R1', '--x509cafile', card.init.caCertPath, '-p', String(server.port), 'localhost'],
      [{ waitFor: /Handshake was completed/ }, { write: httpGet('/status', { keepAlive: true }) }, { waitFor: /^\{"device"/m }],
    );
    assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /sending key share for SECP384R1/);
    assert.equal(countMatches(r.stderr, /HELLO RETRY REQUEST \(\d+\) was received/), 1, r.stderr);
    assert.match(r.stderr, /HRR key share with SECP256R1/);
    assert.match(r.stderr, /Parsing extension 'Cookie\/44'/);
    assert.match(r.stdout, /The certificate is trusted/);
    assert.match(r.stdout, /- Description: \(TLS1\.3-X\.509\)-\(ECDHE-SECP256R1\)-\(ECDSA-SECP256R1-SHA256\)-\(AES-128-GCM\)/);
    assert.equal(statusBodies(r.stdout)[0]?.tls.group, 'secp256r1');
  });

  test("Node's tls with ecdhCurve X448:P-256 (key share X448 only) completes on P-256", async () => {
    const r = await nodeTlsGet(server.port, '/status', { ca: card.ca, ecdhCurve: 'X448:P-256' });
    assert.equal(r.authorized, true);
    assert.equal(r.protocol, 'TLSv1.3');
    assert.equal(r.ephemeral.name, 'prime256v1');
    assert.equal(statusBodies(r.response.toString('latin1'))[0]?.tls.group, 'secp256r1');
  });

  /** GET, KeyUpdate command, GET, … on one keep-alive connection; `cmds` are s_client command letters. */
  async function sClientKeyUpdates(cmds: readonly ('K' | 'k')[]): Promise<Awaited<ReturnType<typeof runInteractive>>> {
    // s_client treats a stdin read that starts with K/k as a command (not with -ign_eof, which
    // turns commands off), so each command is written only after the previous output is in.
    const steps: Parameters<typeof runInteractive>[2][number][] = [{ waitFor: /Verify return code: 0/ }];
    cmds.forEach((c, i) => {
      steps.push({ write: httpGet('/status', { keepAlive: true }) }, { waitFor: /^\{"device"/m, count: i + 1 });
      steps.push({ write: `${c}\n` }, { waitFor: /^KEYUPDATE$/m, count: i + 1 });
    });
    steps.push({ write: httpGet('/status') }, { waitFor: /^\{"device"/m, count: cmds.length + 1 });
    return runInteractive('openssl', sClient(card, server, ['-msg']), steps);
  }

  test("openssl s_client 'K' (update_requested) twice between three keep-alive requests: the card answers each with its own KeyUpdate", async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await sClientKeyUpdates(['K', 'K']);
    assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
    const sent = msgDumps(r.stdout, '>>>', 'KeyUpdate');
    const received = msgDumps(r.stdout, '<<<', 'KeyUpdate');
    assert.deepEqual(sent, [KEY_UPDATE(true), KEY_UPDATE(true)]);
    // RFC 8446 4.6.3: the answer must not itself request an update.
    assert.deepEqual(received, [KEY_UPDATE(false), KEY_UPDATE(false)]);
    const bodies = statusBodies(r.stdout);
    assert.equal(bodies.length, 3);
    // The card's KeyUpdate comes before the response it protects with the new key.
    const firstReceived = r.stdout.indexOf('<<< TLS 1.3, Handshake [length 0005], KeyUpdate');
    const secondBody = r.stdout.indexOf('{"device"', r.stdout.indexOf('{"device"') + 1);
    assert.ok(firstReceived > 0 && firstReceived < secondBody, 'KeyUpdate before the 2nd response');
    assert.match(r.stdout, /HTTP\/1\.1 200 OK[\s\S]*HTTP\/1\.1 200 OK[\s\S]*HTTP\/1\.1 200 OK/);
  });

  test("openssl s_client 'k' (update_not_requested): the card switches its receive key and sends no KeyUpdate", async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await sClientKeyUpdates(['k']);
    assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
    assert.deepEqual(msgDumps(r.stdout, '>>>', 'KeyUpdate'), [KEY_UPDATE(false)]);
    assert.deepEqual(msgDumps(r.stdout, '<<<', 'KeyUpdate'), []);
    assert.equal(statusBodies(r.stdout).length, 2);
  });

  for (const cmd of ['rekey', 'rekey1'] as const) {
    const both = cmd === 'rekey';
    test(`gnutls-cli --inline-commands ^${cmd}^ (${both ? 'both sides rekey' : 'local rekey only'}) between two keep-alive requests`, async (t) => {
      if (!requirePeer(t, 'gnutls-cli')) return;
      const r = await runInteractive(
        'gnutls-cli',
        ['-d', '4', '--inline-commands', '--x509cafile', card.init.caCertPath, '-p', String(server.port), 'localhost'],
        [
          { waitFor: /Handshake was completed/ },
          { write: httpGet('/status', { keepAlive: true }) },
          { waitFor: /^\{"device"/m },
          { write: `^${cmd}^\n` },
          { waitFor: /Rekey was completed/ },
          { write: httpGet('/status') },
          { waitFor: /^\{"device"/m, count: 2 },
        ],
      );
      assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr.slice(-3000)}`);
      assert.match(r.stdout, /The certificate is trusted/);
      assert.match(r.stderr, new RegExp(`sending key update \\(${both ? 1 : 0}\\)`));
      assert.equal(countMatches(r.stderr, /received TLS 1\.3 key update \(0\)/), both ? 1 : 0, r.stderr.slice(-3000));
      assert.equal(countMatches(r.stderr, /received TLS 1\.3 key update \(1\)/), 0);
      assert.equal(statusBodies(r.stdout).length, 2);
    });
  }
});

describe('card policy keyUpdateAfterRecords = 4: the card rotates its own keys', () => {
  let card: TestCard;
  let server: RunningHttps;
  const N = 300_000; // 19 full records of body at least

  before(async () => {
    card = await makeTestCard({ keyType: 'p256' });
    await administerCard(card, { policy: { keyUpdateAfterRecords: 4 } });
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  test('openssl -msg sees several card KeyUpdates (update_not_requested) during a download', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await run('openssl', sClient(card, server, ['-msg', '-ign_eof']), { input: httpGet(`/bytes/${N}`) });
    assert.equal(r.code, 0, r.stderr);
    const received = msgDumps(r.stdout, '<<<', 'KeyUpdate');
    assert.ok(received.length >= 3, `KeyUpdates received: ${received.length}`);
    for (const k of received) assert.equal(k, KEY_UPDATE(false));
    assert.deepEqual(msgDumps(r.stdout, '>>>', 'KeyUpdate'), []);
    // The records the card sent after the handshake, in order: '.' data, 'K' KeyUpdate, 'A' alert.
    // The policy says at most 4 records under one key before the card's KeyUpdate.
    const afterHandshake = r.stdout.slice(r.stdout.indexOf('>>> TLS 1.3, Handshake [length 0024], Finished'));
    const records = afterHandshake
      .split('<<< TLS 1.2, RecordHeader')
      .slice(1)
      .map((c) => (c.includes('], KeyUpdate') ? 'K' : c.includes('Alert [length 0002]') ? 'A' : '.'))
      .join('');
    assert.match(records, /^(?:\.{1,4}K)+\.{0,4}A$/, records);
    assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
    assert.match(r.stdout, /warning close_notify/);
  });

  test("Node's https.get downloads the body byte for byte across the card's key changes", async () => {
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port: server.port, path: `/bytes/${N}`, ca: card.ca, servername: 'localhost', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    const expected = Buffer.allocUnsafe(N);
    for (let i = 0; i < N; i++) expected[i] = patternByte(i);
    assert.equal(body.length, N);
    assert.equal(createHash('sha256').update(body).digest('hex'), createHash('sha256').update(expected).digest('hex'));
  });

  test('gnutls-cli logs the card KeyUpdates and still gets the whole response', async (t) => {
    if (!requirePeer(t, 'gnutls-cli')) return;
    const r = await runInteractive(
      'gnutls-cli',
      ['-d', '4', '--x509cafile', card.init.caCertPath, '-p', String(server.port), 'localhost'],
      [{ waitFor: /Handshake was completed/ }, { write: httpGet('/bytes/100000', { keepAlive: true }) }, { waitFor: /HTTP\/1\.1 200 OK/ }, { write: httpGet('/status') }, { waitFor: /^\{"device"/m }],
    );
    assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout.slice(0, 2000)}\n${r.stderr.slice(-3000)}`);
    assert.ok(countMatches(r.stderr, /received TLS 1\.3 key update \(0\)/) >= 1, r.stderr.slice(-3000));
  });
});
