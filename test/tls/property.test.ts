/**
 * Property: arbitrary bytes never make receive() throw; the engine is 'handshaking', 'failed' with an
 * alert, or 'closed' after the peer's close_notify (a record 15 03 03 00 02 01 00 is one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createTlsServer } from '../../src/tls/index.js';
import type { TlsServerConnection } from '../../src/tls/api.js';
import { clientHelloRecord } from './helpers/clientHello.js';

function fresh(): TlsServerConnection {
  return createTlsServer({
    entropy: { random: (n) => new Uint8Array(n).fill(1), now: () => 0 },
    selectIdentity: () => ({ certificateChain: [Uint8Array.of(0x30, 0)], signatureSchemes: [0x0403], sign: () => new Uint8Array(64) }),
  });
}

function check(chunks: Uint8Array[]): void {
  const conn = fresh();
  let alerted = false;
  let peerClosed = false;
  for (const c of chunks) {
    const out = conn.receive(c); // must not throw
    if (out.peerClosed) peerClosed = true;
    if (out.alert) {
      alerted = true;
      assert.equal(out.alert.sentByUs ? out.records[0] : 21, 21);
    }
  }
  const s = conn.state;
  assert.ok(s === 'handshaking' || s === 'failed' || (s === 'closed' && peerClosed), `state ${s}`);
  if (s === 'failed') assert.ok(alerted);
}

test('arbitrary byte strings: no throw, handshaking or failed with an alert', () => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), check), { numRuns: 500 });
});

test('record-shaped garbage (valid headers, random bodies): no throw', () => {
  const rec = fc
    .tuple(fc.constantFrom(20, 21, 22, 23), fc.uint8Array({ maxLength: 400 }))
    .map(([t, b]) => Uint8Array.from([t, 3, 3, b.length >> 8, b.length & 255, ...b]));
  fc.assert(fc.property(fc.array(rec, { maxLength: 4 }), check), { numRuns: 500 });
});

test('mutated valid ClientHellos: no throw', () => {
  const base = clientHelloRecord({ sni: 'a.example', alpn: ['h2'], recordSizeLimit: 100 });
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (muts) => {
      const b = base.slice();
      for (const [i, v] of muts) b[i] = v;
      const conn = fresh();
      const out = conn.receive(b);
      assert.ok(conn.state === 'handshaking' || (conn.state === 'failed' && out.alert !== undefined));
    }),
    { numRuns: 500 },
  );
});

test("the peer's close_notify before any handshake: the engine closes (answering close_notify) without throwing", () => {
  const conn = fresh();
  const out = conn.receive(Uint8Array.from([21, 3, 3, 0, 2, 1, 0]));
  assert.equal(out.peerClosed, true);
  assert.equal(conn.state, 'closed');
  assert.deepEqual([...out.records], [21, 3, 3, 0, 2, 1, 0]);
  check([Uint8Array.from([21, 3, 3, 0, 2, 1, 0])]);
});
