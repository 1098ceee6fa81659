// TLS-Tandem session export (recordLayer 'host'): after the handshake the host takes the session's
// traffic keys (EXPORT-SESSION) and the card is free at once. With backlog 0 a second client is only
// served if the card really was freed: it is, while the first client is still downloading 10 MB
// (checked byte for byte), for TLS 1.3 and TLS 1.2. Every APDU is captured: the export blob never
// holds the private key, the master secret, handshake secrets or the exporter secret (the client's
// NSS key log tells us those), only the traffic keys. An identity whose policy does not allow
// export fails the session with ERR_HOST_EXPORT_REFUSED and the card keeps serving.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { EmulatedCard } from '../../src/card/index.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { deserializeState } from '../../src/card/state.js';
import { InProcessTransport, type CardTransport } from '../../src/transport/index.js';
import { CardClient, TlsTandem } from '../../src/host/index.js';
import { serveHttps, createPlugHandler } from '../../src/servers/https/index.js';
import { patternByte } from '../../src/servers/https/demo-plug.js';
import { openCard, readOperatorPin } from '../../src/cli/card-setup.js';
import { readMasterKey } from '../../src/cli/card-files.js';
import { makeTestCard, nodeTlsGet, run, httpGet, statusBodies, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import { waitUntil } from '../wait.js';

const TEN_MB = 10 * 1024 * 1024;

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.length).indexOf(Buffer.from(needle)) >= 0;
}

async function setIdentityPolicy(card: TestCard, exportAllowed: boolean): Promise<void> {
  const { transport, card: emulated } = openCard({ cardDir: card.cardDir });
  try {
    const c = new CardClient(transport);
    await c.select();
    await c.verifyPin(readOperatorPin(card.init.paths), 'operator');
    await c.putIdentityPolicy({ label: 'default', exportAllowed });
    assert.equal((await c.identityInfo('default')).exportAllowed, exportAllowed);
  } finally {
    await transport.close();
    emulated.close();
  }
}

interface Served {
  readonly port: number;
  readonly tandem: TlsTandem;
  readonly captured: Uint8Array[];
  readonly errors: (Error & { code?: string })[];
  close(): Promise<void>;
}

/** The card behind a capturing transport, a tandem in host record-layer mode with backlog 0, the demo plug. */
async function serve(card: TestCard, opts: { onExportRefused?: 'fail' | 'card' } = {}): Promise<Served> {
  const emulated = EmulatedCard.open({ dir: card.init.paths.dir, masterKey: readMasterKey(card.init.paths.keyFile) });
  const captured: Uint8Array[] = [];
  const inner = new InProcessTransport((apdu) => emulated.process(apdu));
  const transport: CardTransport = {
    extendedLength: inner.extendedLength,
    async transmit(apdu) {
      captured.push(apdu.slice());
      const res = await inner.transmit(apdu);
      captured.push(res.slice());
      return res;
    },
    close: () => inner.close(),
  };
  const tandem = new TlsTandem({ transport, pin: readFileSync(card.init.paths.pinFile, 'utf8').trim(), backlog: 0, recordLayer: 'host', ...opts });
  const errors: (Error & { code?: string })[] = [];
  tandem.on('sessionError', (e: Error) => errors.push(e));
  await tandem.start();
  const http = serveHttps(tandem, createPlugHandler());
  const server = tandem.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return {
    port: (server.address() as AddressInfo).port,
    tandem,
    captured,
    errors,
    async close() {
      await tandem.close();
      http.close();
      await transport.close();
      emulated.close();
    },
  };
}

/** Downloads /bytes/N; `whilePaused` runs after the first chunk with the response paused. */
function download(port: number, ca: string, n: number, tls: { maxVersion?: 'TLSv1.2' | 'TLSv1.3' }, whilePaused: () => Promise<void>): Promise<{ body: Buffer; keylog: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const keylog: Buffer[] = [];
    const req = get({ host: '127.0.0.1', port, path: `/bytes/${n}`, ca, servername: 'localhost', agent: false, ...tls }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let first = true;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (first) {
          first = false;
          res.pause();
          whilePaused().then(
            () => res.resume(),
            (e: unknown) => {
              req.destroy();
              reject(e as Error);
            },
          );
        }
      });
      res.on('end', () => resolve({ body: Buffer.concat(chunks), keylog }));
      res.on('error', reject);
    });
    req.on('socket', (s) => s.on('keylog', (line: Buffer) => keylog.push(line)));
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('download deadline')));
  });
}

function checkPattern(body: Buffer, n: number): void {
  assert.equal(body.length, n);
  for (let i = 0; i < n; i++) {
    if (body[i] !== patternByte(i)) assert.fail(`byte ${i} is ${body[i]}, expected ${patternByte(i)}`);
  }
}

describe('TLS-Tandem: recordLayer host, export allowed', () => {
  let card: TestCard;
  let s: Served;
  let privateScalar: Buffer;
  let pkcs8: Buffer;
  const keylogs: Buffer[] = [];
  before(async () => {
    card = await makeTestCard({ keyType: 'p256' });
    await setIdentityPolicy(card, true);
    const state = deserializeState(new SealedStore(card.init.paths.dir, readMasterKey(card.init.paths.keyFile)).read());
    const key = state.identities[0]!.privateKey;
    privateScalar = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
    pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
    s = await serve(card);
  });
  after(async () => {
    await s?.close();
    card?.cleanup();
  });

  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    test(`${maxVersion}: 10 MB byte for byte on the host while a second client (backlog 0) gets the card`, async (t) => {
      let second: Awaited<ReturnType<typeof nodeTlsGet>> | undefined;
      let duringFirst = { inUse: true, exported: 0 };
      const t0 = performance.now();
      const { body, keylog } = await download(s.port, card.ca, TEN_MB, { maxVersion }, async () => {
        duringFirst = { inUse: s.tandem.inUse, exported: s.tandem.exportedSessions };
        second = await nodeTlsGet(s.port, '/status', { ca: card.ca, maxVersion });
      });
      const ms = performance.now() - t0;
      keylogs.push(...keylog);
      checkPattern(body, TEN_MB);
      // While the first download was running on the host, the card was free and the first session exported.
      assert.deepEqual(duringFirst, { inUse: false, exported: 1 });
      assert.ok(second, 'the second client was not served');
      assert.equal(second.protocol, maxVersion);
      const st = statusBodies(second.response.toString('latin1'))[0] as unknown as { tls: { version: string; recordLayer: string } };
      assert.equal(st.tls.version, maxVersion);
      assert.equal(st.tls.recordLayer, 'host');
      assert.equal(s.errors.length, 0, s.errors.map((e) => `${e.code}: ${e.message}`).join('\n'));
      t.diagnostic(`${maxVersion}: 10 MB in ${ms.toFixed(0)} ms on the host record layer`);
    });
  }

  test('openssl s_client (TLS 1.3 and 1.2) on exported sessions: GET, then close_notify both ways', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    for (const v of ['-tls1_3', '-tls1_2']) {
      const r = await run('openssl', ['s_client', v, '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${s.port}`, '-servername', 'localhost', '-verify_return_error', '-ign_eof'], {
        input: httpGet('/status', { keepAlive: true }) + httpGet('/bytes/100000'),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((r.stdout.match(/HTTP\/1\.1 200 OK/g) ?? []).length, 2);
      assert.equal((statusBodies(r.stdout)[0] as unknown as { tls: { recordLayer: string } }).tls.recordLayer, 'host');
    }
  });

  test('the APDU trace (export blobs included) holds no private key, master, handshake or exporter secret', () => {
    const all = Buffer.concat(s.captured);
    // The blob crossed: an EXPORT-SESSION command was sent and answered.
    assert.ok(s.captured.some((a) => a[0] === 0xa0 && a[1] === 0xa8), 'no EXPORT-SESSION in the trace');
    assert.ok(!contains(all, privateScalar), 'private scalar found in the APDU trace');
    assert.ok(!contains(all, privateScalar.subarray(0, 16)) && !contains(all, privateScalar.subarray(16)), 'half of the private scalar found');
    assert.ok(!contains(all, pkcs8), 'PKCS#8 private key found');
    // NSS key log of the clients: TLS 1.2 CLIENT_RANDOM = master secret; TLS 1.3 handshake traffic secrets and the exporter secret.
    const forbidden = keylogs
      .map((l) => l.toString().trim().split(' '))
      .filter(([label]) => label === 'CLIENT_RANDOM' || /HANDSHAKE_TRAFFIC_SECRET|EXPORTER_SECRET/.test(label!));
    assert.ok(forbidden.some(([l]) => l === 'CLIENT_RANDOM'), 'no TLS 1.2 master secret in the key log');
    assert.ok(forbidden.some(([l]) => /HANDSHAKE/.test(l!)), 'no TLS 1.3 handshake secret in the key log');
    for (const [label, , hex] of forbidden) assert.ok(!contains(all, Buffer.from(hex!, 'hex')), `${label} found in the APDU trace`);
    // Sanity: the traffic secrets (allowed in the blob) did cross, so the scan sees the blobs.
    const traffic = keylogs.map((l) => l.toString().trim().split(' ')).filter(([l]) => l === 'SERVER_TRAFFIC_SECRET_0');
    assert.ok(traffic.length > 0 && traffic.some(([, , hex]) => contains(all, Buffer.from(hex!, 'hex'))), 'the exported TLS 1.3 traffic secret is not in the trace: the scan missed the blob');
  });
});

describe('TLS-Tandem: recordLayer host, export not allowed by the identity policy', () => {
  let card: TestCard;
  let s: Served;
  before(async () => {
    card = await makeTestCard({ keyType: 'p256' });
    s = await serve(card);
  });
  after(async () => {
    await s?.close();
    card?.cleanup();
  });

  test('the session fails with ERR_HOST_EXPORT_REFUSED (close_notify through the card); the card keeps serving', async () => {
    // Twice: each handshake completes through the card (so the card was usable again after the
    // first refusal), then the card's close_notify ends the connection without an HTTP answer.
    for (let i = 0; i < 2; i++) {
      const r = await nodeTlsGet(s.port, '/status', { ca: card.ca });
      assert.equal(r.authorized, true);
      assert.equal(r.protocol, 'TLSv1.3');
      assert.equal(r.response.length, 0);
    }
    const refusals = () => s.errors.filter((e) => e.code === 'ERR_HOST_EXPORT_REFUSED').length;
    await waitUntil(() => refusals() >= 2 && !s.tandem.inUse, () => `two refusals and the card free (${s.errors.map((e) => `${e.code}: ${e.message}`).join('; ')})`);
    assert.equal(refusals(), 2, s.errors.map((e) => `${e.code}: ${e.message}`).join('\n'));
  });

  test("onExportRefused 'card' falls back to the card's record layer", async () => {
    await s.close();
    s = await serve(card, { onExportRefused: 'card' });
    const r = await nodeTlsGet(s.port, '/status', { ca: card.ca });
    const st = statusBodies(r.response.toString('latin1'))[0] as unknown as { tls: { recordLayer: string } };
    assert.equal(st.tls.recordLayer, 'card');
  });
});
