// How many socket writes a setls HTTPS server (`serve https`, record layer in the card) spends on a
// TLS 1.3 connection whose client ends at once (Node's TLS client: its Finished and close_notify in
// one segment, as the bench's handshake clients do): the server flight, then the ticket and our
// close_notify together — two writes, not three (issue #14: host CPU per handshake). Counted on the
// server's accepted sockets (net.Socket _write / _writev calls), not by timing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { makeTestCard, startTestHttps, type TestCard } from './helpers.js';
import type { RunningHttps } from '../../src/cli/serve.js';

let card: TestCard;
let server: RunningHttps;
before(async () => {
  card = await makeTestCard();
  server = await startTestHttps(card);
});
after(async () => {
  await server?.close();
  card?.cleanup();
});

/** Counts the writes node makes on accepted (server-side) sockets while `fn` runs. */
async function countServerWrites(fn: () => Promise<void>): Promise<{ calls: number; chunks: number }> {
  const proto = net.Socket.prototype as unknown as {
    _write: (this: net.Socket, chunk: Buffer, enc: string, cb: () => void) => void;
    _writev: (this: net.Socket, chunks: { chunk: Buffer }[], cb: () => void) => void;
  };
  const w = proto._write;
  const wv = proto._writev;
  const seen = { calls: 0, chunks: 0 };
  const accepted = (s: net.Socket): boolean => (s as unknown as { server?: unknown }).server != null;
  proto._write = function (chunk, enc, cb) {
    if (accepted(this)) {
      seen.calls++;
      seen.chunks++;
    }
    return w.call(this, chunk, enc, cb);
  };
  proto._writev = function (chunks, cb) {
    if (accepted(this)) {
      seen.calls++;
      seen.chunks += chunks.length;
    }
    return wv.call(this, chunks, cb);
  };
  try {
    await fn();
  } finally {
    proto._write = w;
    proto._writev = wv;
  }
  return seen;
}

test('a client that ends right after its handshake: the server flight in one write, the ticket and close_notify in one more', async () => {
  const seen = await countServerWrites(async () => {
    const s = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: card.ca, minVersion: 'TLSv1.3' });
    let ticket = false;
    s.on('session', () => (ticket = true));
    s.once('secureConnect', () => s.end());
    s.resume();
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.once('close', () => resolve());
    });
    assert.equal(ticket, true, 'the client got the ticket');
  });
  // The client closes on the server's FIN, which follows its close_notify: every write is counted.
  assert.equal(seen.chunks, 3, 'flight, ticket, close_notify');
  assert.equal(seen.calls, 2, 'the ticket and the close_notify leave in one write');
});
