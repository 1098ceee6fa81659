// External PSKs held in the card (PUT-PSK): TLS 1.3 psk_dhe_ke and psk_ke with openssl s_client
// -psk, the TLS 1.2 PSK suites (enabled by card policy tag 35) with openssl and gnutls-cli; the
// card reports the PSK identity (/status tls.resumption 'psk'). The card info lists the identity,
// never the key; a wrong key fails the handshake.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openCard, readOperatorPin } from '../../src/cli/card-setup.js';
import { CardClient } from '../../src/host/index.js';
import { makeTestCard, startTestHttps, run, runInteractive, statusBodies, httpGet, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';
import { TLS12_SUITES } from '../../src/registry/tls-names.js';

const IDENTITY = 'sensor-42';

interface StatusR {
  readonly tls: { version: string; cipherSuite: string; resumption?: string };
}

describe('external PSKs in the card', () => {
  let card: TestCard;
  let server: RunningHttps;
  const key = new Uint8Array(randomBytes(32));
  const hex = Buffer.from(key).toString('hex');
  before(async () => {
    card = await makeTestCard();
    const { transport, card: emulated } = openCard({ cardDir: card.cardDir });
    try {
      const c = new CardClient(transport);
      await c.select();
      await c.verifyPin(readOperatorPin(card.init.paths), 'operator');
      await c.putPsk({ identity: IDENTITY, key: key.slice() });
      await c.putPolicy({
        cipherSuites12: [
          TLS12_SUITES.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
          TLS12_SUITES.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
          TLS12_SUITES.TLS_PSK_WITH_AES_128_CCM_8,
          TLS12_SUITES.TLS_PSK_WITH_AES_128_GCM_SHA256,
        ],
      });
      const info = await c.cardInfo();
      assert.deepEqual(info.pskIdentities.map((b) => Buffer.from(b).toString()), [IDENTITY]);
      assert.ok(!Buffer.from(JSON.stringify(info)).includes(hex), 'card info holds the key');
    } finally {
      await transport.close();
      emulated.close();
    }
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  function sClient(extra: readonly string[]): ReturnType<typeof run> {
    return run('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-ign_eof', '-psk_identity', IDENTITY, ...extra], { input: httpGet('/status') });
  }

  test('TLS 1.3 psk_dhe_ke: openssl -tls1_3 -psk -ciphersuites TLS_AES_128_GCM_SHA256', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await sClient(['-tls1_3', '-psk', hex, '-ciphersuites', 'TLS_AES_128_GCM_SHA256']);
    assert.equal(r.code, 0, r.stderr);
    // openssl prints an external-PSK session as "Reused".
    assert.match(r.stdout, /(?:New|Reused), TLSv1\.3, Cipher is TLS_AES_128_GCM_SHA256/);
    assert.match(r.stdout, /Server Temp Key: X25519/); // (EC)DHE on top of the PSK
    assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
    const st = statusBodies(r.stdout)[0] as unknown as StatusR;
    assert.equal(st.tls.version, 'TLSv1.3');
    assert.equal(st.tls.resumption, 'psk');
  });

  test('TLS 1.3 psk_ke offered too (-allow_no_dhe_kex): the default policy still uses psk_dhe_ke', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await sClient(['-tls1_3', '-psk', hex, '-ciphersuites', 'TLS_AES_128_GCM_SHA256', '-allow_no_dhe_kex']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /(?:New|Reused), TLSv1\.3, Cipher is TLS_AES_128_GCM_SHA256/);
    assert.match(r.stdout, /Server Temp Key: X25519/, 'forward secrecy: an ECDHE share was used');
    const st = statusBodies(r.stdout)[0] as unknown as StatusR & { tls: { group: string } };
    assert.equal(st.tls.resumption, 'psk');
    assert.equal(st.tls.group, 'x25519');
  });

  test('TLS 1.3 psk_ke where the card policy allows it (pskModes ke,dhe): no key exchange', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    await server.close();
    const { transport, card: emulated } = openCard({ cardDir: card.cardDir });
    try {
      const c = new CardClient(transport);
      await c.select();
      await c.verifyPin(readOperatorPin(card.init.paths), 'operator');
      await c.putPolicy({ pskModes: ['ke', 'dhe'] });
      assert.deepEqual((await c.cardInfo()).policy?.pskModes, ['ke', 'dhe']);
    } finally {
      await transport.close();
      emulated.close();
    }
    server = await startTestHttps(card);
    const ke = await sClient(['-tls1_3', '-psk', hex, '-ciphersuites', 'TLS_AES_128_GCM_SHA256', '-allow_no_dhe_kex']);
    assert.match(ke.stdout, /(?:New|Reused), TLSv1\.3, Cipher is TLS_AES_128_GCM_SHA256/, ke.stderr);
    assert.doesNotMatch(ke.stdout, /Server Temp Key/, 'psk_ke: no ECDHE');
    const st = statusBodies(ke.stdout)[0] as unknown as StatusR & { tls: { group: string } };
    assert.equal(st.tls.resumption, 'psk');
    assert.equal(st.tls.group, '0x0000');
    // A client that does not allow psk_ke still gets psk_dhe_ke.
    const dhe = await sClient(['-tls1_3', '-psk', hex, '-ciphersuites', 'TLS_AES_128_GCM_SHA256']);
    assert.match(dhe.stdout, /Server Temp Key: X25519/);
  });

  test('TLS 1.3 with the wrong PSK: no session', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const r = await sClient(['-tls1_3', '-psk', 'ff'.repeat(32), '-ciphersuites', 'TLS_AES_128_GCM_SHA256']);
    assert.doesNotMatch(r.stdout, /HTTP\/1\.1 200/);
  });

  for (const [opensslName, iana] of [
    ['PSK-AES128-CCM8', 'TLS_PSK_WITH_AES_128_CCM_8'],
    ['PSK-AES128-GCM-SHA256', 'TLS_PSK_WITH_AES_128_GCM_SHA256'],
  ] as const) {
    test(`TLS 1.2 ${opensslName}: openssl -tls1_2 -cipher -psk`, async (t) => {
      if (!requirePeer(t, 'openssl')) return;
      const r = await sClient(['-tls1_2', '-cipher', opensslName, '-psk', hex]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`New, TLSv1\\.2, Cipher is ${opensslName}\\b`));
      assert.match(r.stdout, /HTTP\/1\.1 200 OK/);
      const st = statusBodies(r.stdout)[0] as unknown as StatusR;
      assert.equal(st.tls.cipherSuite, iana);
      assert.equal(st.tls.resumption, 'psk');
    });
  }

  for (const [cipher, iana] of [
    ['AES-128-CCM-8', 'TLS_PSK_WITH_AES_128_CCM_8'],
    ['AES-128-GCM', 'TLS_PSK_WITH_AES_128_GCM_SHA256'],
  ] as const) {
    test(`TLS 1.2 gnutls-cli +PSK +${cipher} --pskusername/--pskkey`, async (t) => {
      if (!requirePeer(t, 'gnutls-cli')) return;
      const prio = `NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+${cipher}:-KX-ALL:+PSK`;
      const r = await runInteractive(
        'gnutls-cli',
        ['--priority', prio, '--pskusername', IDENTITY, '--pskkey', hex, '-p', String(server.port), 'localhost'],
        [{ waitFor: /Handshake was completed/ }, { write: httpGet('/status', { keepAlive: true }) }, { waitFor: /^\{"device"/m }],
      );
      assert.ok(r.completed, `stuck at ${r.stuckAt}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`- Description: \\(TLS1\\.2-X\\.509\\)-\\(PSK\\)-\\(${cipher}\\)`));
      const st = statusBodies(r.stdout)[0] as unknown as StatusR;
      assert.equal(st.tls.cipherSuite, iana);
    });
  }
});
