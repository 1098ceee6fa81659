/**
 * DTLS 1.2 engine (src/tls/dtls) behind the host DTLS listener (src/host/dtls: HelloVerifyRequest,
 * fragmentation to 1200-byte datagrams, retransmission) against `openssl s_client -dtls1_2`, one test
 * per suite of the RFC 7925 profile + GCM: ECDHE-ECDSA-AES128-CCM8, ECDHE-ECDSA-AES128-GCM-SHA256,
 * PSK-AES128-CCM8. Data both ways, the cookie exchange really happened.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePki, type TestPki } from './helpers/pki.js';
import { sClient, startEchoServer } from './helpers/dtls.js';
import { requirePeer } from '../interop/peers.js';
import type { TlsServerConfig } from '../../src/tls/api.js';

let ec: TestPki;
let dir: string;
let caFile: string;
before(async () => {
  ec = await makePki('ecdsa');
  dir = mkdtempSync(join(tmpdir(), 'setls-dtls-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ec.caPem);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const PSK_ID = Buffer.from('coap-client');
const PSK_KEY = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const DTLS_SUITES = [0xc0ae, 0xc02b, 0xc0a8];

function config(): Partial<TlsServerConfig> & Pick<TlsServerConfig, 'selectIdentity'> {
  return {
    selectIdentity: () => ec.identity,
    cipherSuites12: DTLS_SUITES,
    groups: [0x0017, 0x001d],
    findPsk: (id) => (Buffer.from(id).equals(PSK_ID) ? { identity: PSK_ID, key: PSK_KEY } : undefined),
  };
}

const cases: [string, number, string[]][] = [
  ['ECDHE-ECDSA-AES128-CCM8', 0xc0ae, []],
  ['ECDHE-ECDSA-AES128-GCM-SHA256', 0xc02b, []],
  ['PSK-AES128-CCM8', 0xc0a8, ['-psk', PSK_KEY.toString('hex'), '-psk_identity', PSK_ID.toString()]],
];

for (const [name, id, extra] of cases) {
  test(`DTLS 1.2 ${name}: openssl s_client handshake through HelloVerifyRequest, data both ways`, async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const srv = await startEchoServer(config());
    const c = sClient(srv.port, ['-cipher', `${name}:@SECLEVEL=0`, '-CAfile', caFile, '-verify_return_error', ...extra]);
    try {
      await c.waitFor(new RegExp(`Cipher is ${name}`));
      c.write('hello dtls\n');
      await c.waitFor(/HELLO DTLS/);
      assert.equal(srv.engines.length, 1, 'one engine: the cookie-less ClientHello never reached it');
      assert.ok(srv.server.stats.helloVerifyRequests >= 1);
      const e = srv.engines[0]!;
      assert.equal(e.state, 'connected');
      assert.equal(e.info?.cipherSuite, id);
      assert.equal(new TextDecoder().decode(srv.received[0]), 'hello dtls\n');
      if (id !== 0xc0a8) assert.match(c.out(), /Verify return code: 0 \(ok\)/);
    } finally {
      await c.kill();
      await srv.close();
    }
  });
}
