// The card's exporter (EXPORTER, RFC 8446 §7.5 / RFC 5705) against gnutls-cli's --keymatexport on
// the same connection, and gnutls-cli --recordsize (record_size_limit) with the card's records.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { makeTestCard, runInteractive, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import { openCard, readOperatorPin, DEFAULT_IDENTITY } from '../../src/cli/card-setup.js';
import { readPin } from '../../src/cli/card-files.js';
import { CardClient, TlsTandem, type SeTlsSocket } from '../../src/host/index.js';
import { serveHttps, createPlugHandler } from '../../src/servers/https/index.js';
import { toHex } from '../../src/bytes/index.js';

const LABEL = 'EXPORTER-setls-interop';
let card: TestCard;
let tandem: TlsTandem;
let http: Server;
let port: number;
let closeCard: () => Promise<void>;

before(async () => {
  card = await makeTestCard();
  const admin = openCard({ cardDir: card.cardDir });
  try {
    const c = new CardClient(admin.transport);
    await c.select();
    await c.verifyPin(readOperatorPin(card.init.paths), 'operator');
    await c.putIdentityPolicy({ label: DEFAULT_IDENTITY, exporterLabels: [LABEL] });
  } finally {
    await admin.transport.close();
    admin.card.close();
  }
  const opened = openCard({ cardDir: card.cardDir });
  closeCard = async () => {
    await opened.transport.close();
    opened.card.close();
  };
  tandem = new TlsTandem({ transport: opened.transport, pin: readPin(card.init.paths.pinFile), backlog: 4 });
  await tandem.start();
  const plug = createPlugHandler();
  http = serveHttps(tandem, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x.invalid');
    const m = /^\/km\/(\d+)$/.exec(url.pathname);
    if (!m) return plug(req, res);
    (req.socket as unknown as SeTlsSocket).exportKeyingMaterial(Number(m[1]), url.searchParams.get('label') ?? LABEL).then(
      (km) => res.end(`km=${toHex(km)}\n`),
      (e: Error & { code?: string }) => {
        res.statusCode = 403;
        res.end(`${e.code}\n`);
      },
    );
  });
  const server = tandem.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await tandem?.close();
  http?.close();
  await closeCard?.();
  card?.cleanup();
});

for (const version of ['TLS1.3', 'TLS1.2'] as const) {
  test(`exporter: the card's keying material equals gnutls-cli --keymatexport on the same ${version} connection`, async (t) => {
    if (!requirePeer(t, 'gnutls-cli')) return;
    const r = await runInteractive(
      'gnutls-cli',
      ['--x509cafile', card.init.caCertPath, '-p', String(port), '--priority', `NORMAL:-VERS-ALL:+VERS-${version.replace('TLS', 'TLS')}`, `--keymatexport=${LABEL}`, '--keymatexportsize=32', 'localhost'],
      [{ waitFor: /- Simple Client Mode:/ }, { write: 'GET /km/32 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' }, { waitFor: /km=[0-9a-f]{64}/ }],
    );
    assert.ok(r.completed, `${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
    const theirs = /Key material: ([0-9A-Fa-f]{64})/.exec(r.stdout + r.stderr);
    const ours = /km=([0-9a-f]{64})/.exec(r.stdout);
    assert.ok(theirs, `gnutls printed no key material:\n${r.stdout}`);
    assert.equal(ours![1], theirs[1]!.toLowerCase());
    assert.match(r.stdout, new RegExp(`Description: \\(${version.replace('.', '\\.')}`));
  });
}

test('exporter: a label outside the identity policy is refused by the card', async (t) => {
  if (!requirePeer(t, 'gnutls-cli')) return;
  const r = await runInteractive(
    'gnutls-cli',
    ['--x509cafile', card.init.caCertPath, '-p', String(port), 'localhost'],
    [{ waitFor: /- Simple Client Mode:/ }, { write: 'GET /km/32?label=EXPORTER-not-listed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' }, { waitFor: /HTTP\/1\.1 403[\s\S]*ERR_CARD_/ }],
  );
  assert.ok(r.completed, `${r.stuckAt}\n${r.stdout}`);
  assert.match(r.stdout, /ERR_CARD_CONDITIONS_NOT_SATISFIED/);
  assert.doesNotMatch(r.stdout, /km=/);
});

test('gnutls-cli --recordsize 512: every record the card sends carries at most 512 bytes of plaintext', async (t) => {
  if (!requirePeer(t, 'gnutls-cli')) return;
  const r = await runInteractive(
    'gnutls-cli',
    ['--x509cafile', card.init.caCertPath, '-p', String(port), '--recordsize=512', '-d', '5', 'localhost'],
    [{ waitFor: /- Simple Client Mode:/ }, { write: 'GET /bytes/3000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' }, { waitFor: /content-length: 3000/i }],
    { timeoutMs: 20000 },
  );
  assert.ok(r.completed, `${r.stuckAt}\n${r.stdout.slice(0, 2000)}\n${r.stderr.slice(-2000)}`);
  const log = r.stdout + r.stderr;
  // gnutls logs each received application-data record's plaintext length.
  const sizes = [...log.matchAll(/REC\[[^\]]+\]: Decrypted Packet\[\d+\] Application Data\(23\) with length: (\d+)/g)].map((m) => Number(m[1]));
  assert.ok(sizes.length >= 6, `expected many small records, gnutls logged ${sizes.length}`);
  assert.ok(Math.max(...sizes) <= 512, `largest record ${Math.max(...sizes)}`);
  assert.ok(sizes.includes(512), 'the card filled its records up to the limit');
});
