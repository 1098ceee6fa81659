/** Secret hygiene: secrets derived while answering a ClientHello are wiped when that work fails midway. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { TlsServerConfig } from '../../src/tls/api.js';
import { createTlsServerWithOptions } from '../../src/tls/server/connection.js';
import { clientHelloRecord } from './helpers/clientHello.js';

/** An engine whose observer keeps REFERENCES to the engine's secret buffers (not copies). */
function observed(extra: Partial<TlsServerConfig>, signOk = false) {
  const seen = new Map<string, Uint8Array>();
  const conn = createTlsServerWithOptions(
    {
      entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0 },
      selectIdentity: () => ({
        certificateChain: [Uint8Array.of(0x30, 0)],
        signatureSchemes: [0x0403],
        sign: () => {
          if (signOk) return new Uint8Array(70);
          throw new Error('card signer unavailable');
        },
      }),
      ...extra,
    },
    { onSecret: (label, v) => seen.set(label, v) },
  );
  return { conn, seen };
}

const zero = (b: Uint8Array) => b.every((x) => x === 0);

for (const suite of [0x1301, 0x1302, 0x1303]) {
  test(`identity.sign throws (suite 0x${suite.toString(16)}) → internal_error and every secret derived so far is zero`, () => {
    const { conn, seen } = observed({ cipherSuites: [suite] });
    const out = conn.receive(clientHelloRecord({ suites: [suite] }));
    assert.deepEqual(out.alert, { description: 80, sentByUs: true });
    assert.deepEqual([...out.records], [21, 3, 3, 0, 2, 2, 80], 'plaintext alert: no ServerHello leaked');
    const labels = [...seen.keys()].sort();
    for (const l of ['handshake_secret', 'c_hs_traffic', 's_hs_traffic', 's_hs_key', 's_hs_iv', 'c_hs_key', 'c_hs_iv']) {
      assert.ok(labels.includes(l), `${l} was derived`);
    }
    for (const [label, v] of seen) assert.ok(zero(v), `${label} wiped`);
  });
}

test('a bad key share after nothing was derived: no secret observed, illegal_parameter', () => {
  const { conn, seen } = observed({});
  const out = conn.receive(clientHelloRecord({ shares: [{ group: 0x001d, key: new Uint8Array(32) }] }));
  assert.equal(out.alert?.description, 47);
  assert.equal(seen.size, 0);
});

test('control: on success the observer sees live buffers (so "zero" above really means wiped)', () => {
  const { conn, seen } = observed({}, true);
  const out = conn.receive(clientHelloRecord());
  assert.equal(out.alert, undefined);
  for (const l of ['c_hs_traffic', 'c_ap_traffic', 's_ap_key', 'c_hs_key']) assert.ok(!zero(seen.get(l)!), `${l} live`);
  conn.dispose();
  for (const l of ['c_hs_traffic', 'c_ap_traffic', 's_ap_key', 'c_hs_key']) assert.ok(zero(seen.get(l)!), `${l} wiped by dispose()`);
});
