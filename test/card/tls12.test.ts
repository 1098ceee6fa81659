/**
 * TLS 1.2 through the card (docs/apdu-protocol.md §2.3, §3 SW 9001) with Node's client: every suite
 * of the card's TLS 1.2 table (ECDSA and RSA identities, CCM_8, the PSK suites with Node's
 * pskCallback), the version policy, and TLS 1.2 session-ID resumption (card RAM: not after reopen).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { toHex } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { SELECT, TestCa, USER_PIN, newCard, personalise, send, swOf, utf8, verify } from './helpers.js';
import { handshakeWith, sessionInfo } from './tls-host.js';
import { putPolicy, putPsk, roundTrip } from './tls-features.js';

const ALL12 = 'c02bc02ccca9c0aec02fc030cca8c0a800a8';
const PSK_ID = 'iot-sensor-7';
const PSK_KEY = Uint8Array.from({ length: 32 }, (_, i) => (i * 11 + 3) & 0xff);

let ca: TestCa;
let ec: ReturnType<typeof newCard>;
let rsa: ReturnType<typeof newCard>;

before(async () => {
  ca = await TestCa.create();
  ec = newCard();
  await personalise(ec.card, ca, 'ec');
  rsa = newCard();
  await personalise(rsa.card, ca, 'rsa', { keyType: 2 });
  for (const c of [ec.card, rsa.card]) {
    assert.equal(swOf(c, putPolicy('3512' + ALL12)), 0x9000);
    assert.equal(swOf(c, putPsk(utf8(PSK_ID), PSK_KEY)), 0x9000);
  }
});

after(() => {
  for (const c of [ec, rsa]) {
    c.card.close();
    c.cleanup();
  }
});

const TLS12 = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;

for (const [name, suite, which] of [
  ['ECDHE-ECDSA-AES128-GCM-SHA256', 0xc02b, 'ec'],
  ['ECDHE-ECDSA-AES256-GCM-SHA384', 0xc02c, 'ec'],
  ['ECDHE-ECDSA-CHACHA20-POLY1305', 0xcca9, 'ec'],
  ['ECDHE-ECDSA-AES128-CCM8', 0xc0ae, 'ec'],
  ['ECDHE-RSA-AES128-GCM-SHA256', 0xc02f, 'rsa'],
  ['ECDHE-RSA-AES256-GCM-SHA384', 0xc030, 'rsa'],
  ['ECDHE-RSA-CHACHA20-POLY1305', 0xcca8, 'rsa'],
] as const) {
  test(`TLS 1.2 ${name}: the last flight (CCS + Finished) travels with 9001; records both ways; session info`, async () => {
    const card = which === 'ec' ? ec.card : rsa.card;
    const s = await handshakeWith(card, ca.pem, { ...TLS12, ciphers: `${name}:@SECLEVEL=0` });
    try {
      assert.equal(s.hs.outcome, 'success', String(s.error));
      assert.ok(s.hs.sawDoneSw, 'SW 9001');
      assert.equal(s.client.getProtocol(), 'TLSv1.2');
      const info = await sessionInfo(card);
      assert.equal(toHex(info.get(0x20)!), '0303');
      assert.equal(toHex(info.get(0x21)!), suite.toString(16).padStart(4, '0'));
      assert.equal(toHex(info.get(0x2a)!), '00', 'full handshake');
      assert.equal(new TextDecoder().decode(info.get(0x26)!), which);
      await roundTrip(card, s);
    } finally {
      s.client.destroy();
    }
  });
}

for (const [name, suite] of [
  ['PSK-AES128-CCM8', 0xc0a8],
  ['PSK-AES128-GCM-SHA256', 0x00a8],
] as const) {
  test(`TLS 1.2 ${name} with a PSK held in the card (Node's pskCallback): session info 2A = 03, 2B = the identity`, async () => {
    const s = await handshakeWith(ec.card, ca.pem, {
      ...TLS12,
      ciphers: `${name}:@SECLEVEL=0`,
      pskCallback: () => ({ psk: Buffer.from(PSK_KEY), identity: PSK_ID }),
      checkServerIdentity: () => undefined,
    });
    try {
      assert.equal(s.hs.outcome, 'success', String(s.error));
      assert.ok(s.hs.sawDoneSw);
      const info = await sessionInfo(ec.card);
      assert.equal(toHex(info.get(0x21)!), suite.toString(16).padStart(4, '0'));
      assert.equal(toHex(info.get(0x2a)!), '03');
      assert.equal(new TextDecoder().decode(info.get(0x2b)!), PSK_ID);
      await roundTrip(ec.card, s);
    } finally {
      s.client.destroy();
    }
  });
}

test('TLS 1.2 PSK with a wrong key fails (alert via 7001); a suite outside the card policy is refused', async () => {
  const wrong = await handshakeWith(ec.card, ca.pem, {
    ...TLS12,
    ciphers: 'PSK-AES128-GCM-SHA256:@SECLEVEL=0',
    pskCallback: () => ({ psk: Buffer.alloc(32, 1), identity: PSK_ID }),
    checkServerIdentity: () => undefined,
  });
  assert.equal(wrong.hs.outcome, 'failure');
  assert.ok(wrong.hs.sawFailureSw);
  wrong.client.destroy();
  const c = newCard();
  try {
    await personalise(c.card, ca, 'ec');
    // the default policy has no CCM_8
    const s = await handshakeWith(c.card, ca.pem, { ...TLS12, ciphers: 'ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0' });
    assert.equal(s.hs.outcome, 'failure');
    assert.ok(s.hs.sawFailureSw);
    s.client.destroy();
  } finally {
    c.card.close();
    c.cleanup();
  }
});

test('version policy 36: TLS 1.2 off → a TLS 1.2-only client fails; TLS 1.3 off → TLS 1.3-capable Node negotiates 1.2', async () => {
  const c = newCard();
  try {
    await personalise(c.card, ca, 'ec');
    assert.equal(swOf(c.card, putPolicy('36020304')), 0x9000);
    const a = await handshakeWith(c.card, ca.pem, TLS12);
    assert.equal(a.hs.outcome, 'failure');
    a.client.destroy();
    assert.equal(swOf(c.card, putPolicy('36020303')), 0x9000);
    const b = await handshakeWith(c.card, ca.pem, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' });
    assert.equal(b.hs.outcome, 'success', String(b.error));
    assert.equal(b.client.getProtocol(), 'TLSv1.2');
    b.client.destroy();
  } finally {
    c.card.close();
    c.cleanup();
  }
});

test('TLS 1.2 session-ID resumption: within one card instance (2A = 02), not after the card is reopened (RAM cache)', async () => {
  const c = newCard();
  try {
    await personalise(c.card, ca, 'ec');
    // tickets off, so Node resumes by session ID
    assert.equal(swOf(c.card, putPolicy('370400000000')), 0x9000);
    const opts = { ...TLS12, ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' };
    const first = await handshakeWith(c.card, ca.pem, opts);
    assert.equal(first.hs.outcome, 'success', String(first.error));
    const session = first.client.getSession();
    assert.ok(session, 'Node kept a session');
    assert.equal(toHex((await sessionInfo(c.card)).get(0x2a)!), '00');
    first.client.destroy();

    const second = await handshakeWith(c.card, ca.pem, { ...opts, session });
    assert.equal(second.hs.outcome, 'success', String(second.error));
    assert.equal(second.client.isSessionReused(), true);
    assert.equal(toHex((await sessionInfo(c.card)).get(0x2a)!), '02', 'resumed by session ID');
    await roundTrip(c.card, second);
    second.client.destroy();

    c.card.close();
    const again = EmulatedCard.open({ dir: c.dir, masterKey: c.masterKey });
    try {
      send(again, SELECT);
      send(again, verify(USER_PIN));
      const third = await handshakeWith(again, ca.pem, { ...opts, session });
      assert.equal(third.hs.outcome, 'success', String(third.error));
      assert.equal(third.client.isSessionReused(), false, 'the RAM cache did not survive');
      assert.equal(toHex((await sessionInfo(again)).get(0x2a)!), '00');
      third.client.destroy();
      // policy 38 = 00: no session IDs at all
      send(again, verify('87654321', 1));
      assert.equal(swOf(again, putPolicy('380100')), 0x9000);
      const a = await handshakeWith(again, ca.pem, opts);
      const s2 = a.client.getSession();
      a.client.destroy();
      const b = await handshakeWith(again, ca.pem, { ...opts, session: s2 });
      assert.equal(b.client.isSessionReused(), false);
      b.client.destroy();
    } finally {
      again.close();
    }
  } finally {
    c.cleanup();
  }
});
