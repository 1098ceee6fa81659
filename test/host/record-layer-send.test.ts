// RecordLayer.send(): a batch of record chunks (the exported record layer seals each record as
// header, ciphertext and tail) goes to the client in ONE gathered write (no copy into one buffer,
// one writev), byte for byte in order, empty chunks skipped; a batch the client does not read makes
// send() wait for the drain, not resolve early.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { RecordLayer } from '../../src/host/record-layer.js';
import type { SeSession } from '../../src/host/session-driver.js';

/** The session is never used by send(). */
const noSession = { phase: 'connected' } as unknown as SeSession;

async function pair(): Promise<{ server: net.Socket; client: net.Socket; close(): void }> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((srv.address() as AddressInfo).port, '127.0.0.1');
  const [server] = await accepted;
  await once(client, 'connect').catch(() => undefined);
  return {
    server,
    client,
    close() {
      server.destroy();
      client.destroy();
      srv.close();
    },
  };
}

function readExactly(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let len = 0;
    const onData = (b: Buffer): void => {
      got.push(b);
      len += b.length;
      if (len >= n) {
        s.off('data', onData);
        resolve(Buffer.concat(got));
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    setTimeout(() => reject(new Error(`read ${len} of ${n} bytes within 30 s`)), 30_000).unref();
  });
}

test('send(chunks): one writev of every chunk, in order, empty chunks skipped', async () => {
  const p = await pair();
  try {
    const layer = new RecordLayer(p.server, noSession);
    const writev: number[] = [];
    const orig = p.server._writev!.bind(p.server);
    p.server._writev = (chunks, cb) => {
      writev.push(chunks.length);
      orig(chunks, cb);
    };
    // four "records" as the host record layer seals them: header, ciphertext, tail (+ an empty chunk)
    const chunks: Uint8Array[] = [];
    for (let r = 0; r < 4; r++) chunks.push(new Uint8Array(randomBytes(5)), new Uint8Array(randomBytes(16384)), new Uint8Array(0), new Uint8Array(randomBytes(17)));
    const want = Buffer.concat(chunks);
    const got = readExactly(p.client, want.length);
    await layer.send(chunks);
    assert.deepEqual(await got, want);
    assert.deepEqual(writev, [12], 'the 12 non-empty chunks in one gathered write');
    // a batch of empty chunks writes nothing and resolves
    await layer.send([new Uint8Array(0), new Uint8Array(0)]);
    assert.deepEqual(writev, [12]);
  } finally {
    p.close();
  }
});

test('send(chunks) to a client that does not read waits for the drain, then the client gets every byte in order', async () => {
  const p = await pair();
  try {
    const layer = new RecordLayer(p.server, noSession);
    p.client.pause();
    const chunks: Uint8Array[] = [];
    // far more than the socket buffers hold: the write cannot complete at once
    for (let r = 0; r < 1024; r++) chunks.push(Uint8Array.of(r & 0xff, r >> 8), new Uint8Array(randomBytes(16384)));
    const want = Buffer.concat(chunks);
    let settled = false;
    const sent = layer.send(chunks).then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'send() waits while the client does not read');
    assert.ok(p.server.writableLength > 0, 'bytes are queued');
    const got = readExactly(p.client, want.length);
    p.client.resume();
    await sent;
    assert.deepEqual(await got, want);
  } finally {
    p.close();
  }
});

test('send(chunks, written): called once, after the socket is done with the chunks, not when send() resolves', async () => {
  const p = await pair();
  try {
    const layer = new RecordLayer(p.server, noSession);
    p.client.pause();
    const chunks: Uint8Array[] = [];
    for (let r = 0; r < 256; r++) chunks.push(new Uint8Array(randomBytes(16384)));
    chunks.push(new Uint8Array(0)); // trailing empty chunk: the callback rides on the last real one
    const want = Buffer.concat(chunks);
    let calls = 0;
    let writtenAt = -1;
    let queuedWhenResolved = -1;
    let writtenWhenResolved = -1;
    // hurry(): send() resolves without waiting for the drain, while the chunks are still queued
    layer.hurry();
    await layer.send(chunks, (err) => {
      calls++;
      assert.equal(err ?? undefined, undefined);
      writtenAt = p.server.writableLength;
    });
    queuedWhenResolved = p.server.writableLength;
    writtenWhenResolved = calls;
    assert.ok(queuedWhenResolved > 0, 'bytes still queued when send() resolved');
    assert.equal(writtenWhenResolved, 0, 'not yet called: the socket still holds the chunks');
    const got = readExactly(p.client, want.length);
    p.client.resume();
    assert.deepEqual(await got, want);
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 1);
    assert.equal(writtenAt, 0, 'called when nothing is left queued');
    // nothing to write: called at once
    let empty = 0;
    await layer.send([new Uint8Array(0)], () => empty++);
    assert.equal(empty, 1);
  } finally {
    p.close();
  }
});

test('send(chunks, written): a connection destroyed with the chunks queued still calls it, once (the memory is free)', async () => {
  const p = await pair();
  try {
    const layer = new RecordLayer(p.server, noSession);
    p.client.pause();
    layer.hurry();
    const errors: (Error | null | undefined)[] = [];
    const chunks = Array.from({ length: 256 }, () => new Uint8Array(16384));
    await layer.send(chunks, (err) => errors.push(err));
    assert.equal(errors.length, 0);
    p.server.destroy();
    await once(p.server, 'close');
    await new Promise((r) => setImmediate(r));
    // node reports a write cut short by destroy() as done (callback(null)): what matters is that
    // the socket no longer holds the chunks
    assert.equal(errors.length, 1);
  } finally {
    p.close();
  }
});
