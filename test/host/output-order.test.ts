// The records a session produces reach the client in the order the card produced them, whoever
// asked for them: a KeyUpdate the card sends in answer to the client's (a decrypt() result) goes out
// before any record the card encrypted after it under the new key, and close_notify goes last.
// Otherwise the client cannot decrypt what follows (RFC 8446 §4.6.3).
//
// The fake session numbers every card operation in the order the card runs them (a FIFO lock, as
// EapSession's) and answers each with a one-byte record carrying that number; the card's answer to
// decrypt() then takes longer to reach its caller than encrypt()'s (as a transport can), which is
// what used to let the data record overtake the KeyUpdate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { RecordLayer, SeTlsSocket } from '../../src/host/index.js';
import type { SeSession } from '../../src/host/session-driver.js';
import type { DecryptResult } from '../../src/host/eap-session.js';
import { Mutex } from '../../src/host/mutex.js';

const record = (type: number, n: number): Uint8Array => Uint8Array.of(type, 3, 3, 0, 1, n);
const ticks = async (k: number): Promise<void> => {
  for (let i = 0; i < k; i++) await new Promise((r) => setImmediate(r));
};

class OrderedFakeSession implements SeSession {
  phase: SeSession['phase'] = 'connected';
  private readonly lock = new Mutex();
  op = 0;
  /** Called when the card has run the decrypt (its answer is still on its way to the caller). */
  onDecrypted: (() => void) | undefined;
  handshake(): never {
    throw new Error('not used');
  }
  async acknowledgeFailure(): Promise<void> {}
  encrypt(type: number, _pt: Uint8Array): Promise<Uint8Array> {
    return this.lock.run(async () => record(type, ++this.op));
  }
  async decrypt(_rec: Uint8Array): Promise<DecryptResult> {
    // The card answers at once (its KeyUpdate gets the next number)…
    const n = await this.lock.run(async () => ++this.op);
    this.onDecrypted?.();
    // …but the answer takes a while to reach the caller.
    await ticks(20);
    return { plaintext: new Uint8Array(0), outRecords: record(22, n), peerClosed: false, failed: false, alert: undefined };
  }
}

function opsOf(stream: Buffer): number[] {
  const out: number[] = [];
  for (let o = 0; o + 6 <= stream.length; o += 6) out.push(stream[o + 5]!);
  return out;
}

test('records reach the client in the order the card produced them (KeyUpdate answer before later data, close_notify last)', async () => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [conn] = (await once(server, 'connection')) as [net.Socket];
  const got: Buffer[] = [];
  client.on('data', (d: Buffer) => got.push(d));
  const session = new OrderedFakeSession();
  const layer = new RecordLayer(conn, session);
  const s = new SeTlsSocket(layer);
  s.on('error', () => undefined);
  s.resume();
  try {
    // The client's KeyUpdate arrives (a record to decrypt), and the application writes at once.
    const decrypted = new Promise<void>((r) => (session.onDecrypted = r));
    client.write(Buffer.from(record(23, 0)));
    await decrypted;
    s.write('data after the key update');
    s.end();
    await once(client, 'end');
    const ops = opsOf(Buffer.concat(got));
    assert.ok(ops.length >= 3, `records received: ${ops.join(',')}`);
    assert.deepEqual(ops, [...ops].sort((a, b) => a - b), `records out of card order: ${ops.join(',')}`);
    assert.equal(Buffer.concat(got).at(-6), 21, 'close_notify (an alert record) is the last record');
  } finally {
    client.destroy();
    server.close();
  }
});
