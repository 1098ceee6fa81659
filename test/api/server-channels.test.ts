// createServer over ONE card serves with the card's logical channels as a pool (as `setls serve
// https`): a second client handshakes on another channel while the first holds its session, seen
// in the channels of the card's PROCESS-EAP commands; with one channel the second would wait until
// the first was closed (busy idle deadline, close_notify).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createServer, openCard, type CardTransport } from 'setls';
import { initCard } from 'setls/card';
import { decodeCla } from '../../src/protocol/cla.js';
import { within } from '../wait.js';

const root = mkdtempSync(join(tmpdir(), 'setls-api-ch-'));
const cardDir = join(root, 'card');
let ca: string;

before(async () => {
  ca = readFileSync((await initCard({ cardDir })).caCertPath, 'utf8');
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Records the logical channel of every PROCESS-EAP (INS 80) the host sends. */
function spy(inner: CardTransport, channels: number[]): CardTransport {
  return {
    extendedLength: inner.extendedLength,
    transmit(apdu: Uint8Array) {
      if (apdu[1] === 0x80) channels.push(decodeCla(apdu[0]!)?.channel ?? -1);
      return inner.transmit(apdu);
    },
    close: () => inner.close(),
  } as CardTransport;
}

function connect(port: number): Promise<tls.TLSSocket> {
  return within(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: 'TLSv1.3' }, () => resolve(s));
      s.once('error', reject);
    }),
    'a TLS 1.3 handshake through the card',
  );
}

test('one card: two clients at once handshake on two logical channels, the first keeps its session', async () => {
  const card = await openCard({ cardDir });
  const channels: number[] = [];
  const server = createServer({ transport: spy(card.transport, channels), pinFile: `${cardDir}.pin` }, (_req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), 'listening');
  const port = (server.address() as AddressInfo).port;
  const first = await connect(port);
  let firstEnded = false;
  first.on('end', () => (firstEnded = true));
  first.on('close', () => (firstEnded = true));
  const firstChannels = new Set(channels);
  // The first session holds its channel (record layer in the card, idle deadline 30 s): the second
  // client gets another channel at once.
  const second = await connect(port);
  try {
    assert.equal(firstChannels.size, 1, `the first handshake used one channel: ${[...firstChannels]}`);
    const all = new Set(channels);
    assert.equal(all.size, 2, `two channels in PROCESS-EAP: ${channels.join(',')}`);
    assert.equal(firstEnded, false, 'the first session was not closed to make room');
  } finally {
    first.destroy();
    second.destroy();
    await within(new Promise<void>((r) => server.close(() => r())), 'close');
    await card.close();
  }
});
