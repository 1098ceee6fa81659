/** PUT-POLICY (A0 DC 00 00): validation, operator PIN, persistence, GET-DATA tag 09, and the engine honouring it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concat, findTlv, parseTlvs, toHex } from '../../src/bytes/index.js';
import { parseEapTls } from '../../src/eap/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { OPERATOR_PIN, SELECT, TestCa, USER_PIN, a0, cmd, eapResponse, newCard, personalise, send, swOf, utf8, verify, xcv } from './helpers.js';
import { handshakeWith, sessionInfo } from './tls-host.js';
import { waitUntil } from '../wait.js';

const putPolicy = (data: Uint8Array) => cmd(0xa0, 0xdc, 0x00, 0x00, data);

async function policyTlv(card: EmulatedCard): Promise<string> {
  const r = await xcv(card, a0(0xca, 0, 0));
  assert.equal(r.sw, 0x9000);
  return toHex(findTlv(parseTlvs(r.data), 0x09)!);
}

/** Tags 35–38 (TLS 1.2 suites, versions, ticket lifetime, session-ID cache) at their defaults. */
// TLS 1.2 suites, versions, ticket lifetime, session-ID cache, PSK modes (psk_dhe_ke only).
const DEFAULT_TLS12_HEX = '350c' + 'c02bc02ccca9c02fc030cca8' + '3604' + '03040303' + '370400001c20' + '380101' + '390101';
const DEFAULT_POLICY_HEX =
  '3008' + '1301130213031304' + '3104' + '001d0017' + '320100' + '3309' + '08' + Buffer.from('http/1.1').toString('hex') + '340400800000' + DEFAULT_TLS12_HEX;

test('PUT-POLICY needs the operator PIN (6982); bad TLVs → 6A80 and change nothing; GET-DATA 09 shows the defaults', async () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(await policyTlv(card), DEFAULT_POLICY_HEX);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(swOf(card, putPolicy(Uint8Array.of(0x32, 0x01, 0x01))), 0x6982); // the user PIN is not enough
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    const bad: [string, string][] = [
      ['', 'no TLV'],
      ['300513', 'broken TLV'],
      ['3900', 'unknown tag'],
      ['3500', 'empty TLS 1.2 suite list'],
      ['3502c0ff', 'unknown TLS 1.2 suite'],
      ['35021301', 'a TLS 1.3 suite in the TLS 1.2 list'],
      ['3504c02bc02b', 'TLS 1.2 suite twice'],
      ['3600', 'no version'],
      ['36020302', 'TLS 1.1'],
      ['360403040304', 'version twice'],
      ['370400093a81', 'ticket lifetime above 7 days'],
      ['37020000', 'ticket lifetime of 2 bytes'],
      ['380102', 'session-ID cache 02'],
      ['3000', 'empty suite list'],
      ['300113', 'odd suite list'],
      ['30021306', 'unsupported suite'],
      ['300400ff1301', 'unsupported suite (TLS 1.2 code point)'],
      ['300413011301', 'suite twice'],
      ['3000' + '3102001d', 'empty suites with good groups'],
      ['31020018', 'secp384r1 is not supported'],
      ['3100', 'empty group list'],
      ['310400170017', 'group twice'],
      ['320102', 'SNI policy 02'],
      ['32020000', 'SNI policy of 2 bytes'],
      ['330100', 'ALPN protocol of length 0'],
      ['3303056162', 'ALPN protocol truncated'],
      ['3306026832026832', 'ALPN protocol twice'],
      ['340400000000', 'keyUpdateAfterRecords 0'],
      ['34020001', 'keyUpdateAfterRecords of 2 bytes'],
      ['320100320101', 'tag repeated'],
      ['3201003002', 'valid TLV then a broken one'],
    ];
    for (const [hex, why] of bad) {
      const r = send(card, putPolicy(Uint8Array.from(Buffer.from(hex, 'hex'))));
      assert.equal(r.sw.toString(16), '6a80', `${why}: ${hex}`);
      assert.equal(card.lastError?.code, 'ERR_CARD_DATA', why);
    }
    assert.equal(swOf(card, cmd(0xa0, 0xdc, 0x00, 0x01, Uint8Array.of(0x32, 1, 0))), 0x6a86);
    assert.equal(await policyTlv(card), DEFAULT_POLICY_HEX);
  } finally {
    card.close();
    cleanup();
  }
});

test('PUT-POLICY: absent tags keep their value; the policy is persisted (reopen); CCM_8 can be listed', async () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    send(card, SELECT);
    send(card, verify(OPERATOR_PIN, 1));
    assert.equal(swOf(card, putPolicy(Uint8Array.from(Buffer.from('3004' + '13051302' + '320101', 'hex')))), 0x9000);
    assert.equal(swOf(card, putPolicy(Uint8Array.from(Buffer.from('3305' + '026832' + '0161' + '340400000010', 'hex')))), 0x9000);
    const expected = '3004130513023104001d0017320101' + '3305026832' + '0161' + '340400000010' + DEFAULT_TLS12_HEX;
    assert.equal(await policyTlv(card), expected);
    card.close();
    const again = EmulatedCard.open({ dir, masterKey });
    try {
      send(again, SELECT);
      assert.equal(await policyTlv(again), expected);
    } finally {
      again.close();
    }
  } finally {
    cleanup();
  }
});

async function configured(policyHex: string): Promise<{ card: EmulatedCard; ca: TestCa; cleanup: () => void }> {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  await personalise(card, ca);
  assert.equal(swOf(card, putPolicy(Uint8Array.from(Buffer.from(policyHex, 'hex')))), 0x9000);
  return { card, ca, cleanup };
}

test('suite policy [1302]: Node negotiates TLS_AES_256_GCM_SHA384; policy [1305] with a CCM_8 client: TLS_AES_128_CCM_8_SHA256', async () => {
  const { card, ca, cleanup } = await configured('30021302');
  try {
    const s = await handshakeWith(card, ca.pem);
    assert.equal(s.hs.outcome, 'success', String(s.error));
    assert.equal(s.client.getCipher().name, 'TLS_AES_256_GCM_SHA384');
    assert.equal(toHex((await sessionInfo(card)).get(0x21)!), '1302');
    s.client.destroy();
    // a client without any suite of the policy: handshake_failure
    const none = await handshakeWith(card, ca.pem, { ciphers: 'TLS_AES_128_GCM_SHA256' });
    assert.equal(none.hs.outcome, 'failure');
    none.client.destroy();

    assert.equal(swOf(card, putPolicy(Uint8Array.from(Buffer.from('300413051301', 'hex')))), 0x9000);
    const ccm8 = await handshakeWith(card, ca.pem, { ciphers: 'TLS_AES_128_CCM_8_SHA256:TLS_AES_128_GCM_SHA256' });
    assert.equal(ccm8.hs.outcome, 'success', String(ccm8.error));
    assert.equal(ccm8.client.getCipher().name, 'TLS_AES_128_CCM_8_SHA256');
    ccm8.client.destroy();
  } finally {
    card.close();
    cleanup();
  }
});

for (const deterministic of [false, true]) {
  test(`group policy [secp256r1]: Node's x25519 share gets a HelloRetryRequest, P-256 is negotiated${deterministic ? ' (deterministic card: P-256 scalar and cookie key from `random`)' : ''}`, async () => {
    const ca = await TestCa.create();
    let c = 0;
    const random = (n: number) => Uint8Array.from({ length: n }, () => (c++ * 197 + 3) & 0xff);
    const { card, cleanup } = newCard(deterministic ? { random } : {});
    try {
      await personalise(card, ca);
      assert.equal(swOf(card, putPolicy(Uint8Array.from(Buffer.from('31020017', 'hex')))), 0x9000);
      const s = await handshakeWith(card, ca.pem, { ecdhCurve: 'X25519:P-256' });
      assert.equal(s.hs.outcome, 'success', String(s.error));
      assert.equal(toHex((await sessionInfo(card)).get(0x22)!), '0017');
      assert.ok(s.hs.responses.length >= 3, 'ClientHello, HRR, ClientHello2, Finished');
      s.client.destroy();
    } finally {
      card.close();
      cleanup();
    }
  });
}

test('ALPN policy: server preference over the client order; an empty list turns ALPN off', async () => {
  const { card, ca, cleanup } = await configured('330e' + '026832' + '08' + Buffer.from('http/1.1').toString('hex') + '0161');
  try {
    const s = await handshakeWith(card, ca.pem, { ALPNProtocols: ['http/1.1', 'h2'] });
    assert.equal(s.hs.outcome, 'success', String(s.error));
    assert.equal(s.client.alpnProtocol, 'h2');
    assert.equal(new TextDecoder().decode((await sessionInfo(card)).get(0x25)!), 'h2');
    s.client.destroy();
    assert.equal(swOf(card, putPolicy(Uint8Array.of(0x33, 0x00))), 0x9000);
    const off = await handshakeWith(card, ca.pem, { ALPNProtocols: ['http/1.1'] });
    assert.equal(off.hs.outcome, 'success', String(off.error));
    assert.equal(off.client.alpnProtocol, false);
    assert.equal((await sessionInfo(card)).get(0x25), undefined);
    off.client.destroy();
  } finally {
    card.close();
    cleanup();
  }
});

test('keyUpdateAfterRecords 1: the card rotates its key after every record and Node keeps reading', async () => {
  const { card, ca, cleanup } = await configured('340400000001');
  try {
    const s = await handshakeWith(card, ca.pem);
    assert.equal(s.hs.outcome, 'success', String(s.error));
    let id = s.hs.lastId;
    const chunks: Buffer[] = [];
    s.client.on('data', (b: Buffer) => chunks.push(b));
    let total = 0;
    for (const word of ['one', 'two', 'three', 'four']) {
      const r = await xcv(card, a0(0x80, 0, 0x97, eapResponse(id, utf8(word))));
      assert.equal(r.sw, 0x9000);
      const p = parseEapTls(r.data);
      id = p.id;
      total += p.data.length;
      s.pipe.deliver(p.data);
    }
    await waitUntil(() => Buffer.concat(chunks).length >= 'onetwothreefour'.length, () => `the four words at the client (${Buffer.concat(chunks).toString()})`);
    assert.equal(Buffer.concat(chunks).toString(), 'onetwothreefour');
    assert.ok(total > 4 * (5 + 3 + 1 + 16) + 3 * 5, 'KeyUpdate records were sent along');
    // the client's data still decrypts (it may answer the card's update_requested with its own KeyUpdate)
    const gotPlain: Uint8Array[] = [];
    s.client.write('ping');
    for (let i = 0; i < 4 && concat(...gotPlain).length < 4; i++) {
      const rec = await s.pipe.nextRecord(2000);
      const r = await xcv(card, a0(0x80, 0, 0x00, eapResponse(id, rec)));
      assert.equal(r.sw, 0x9000);
      const body = parseEapTls(r.data);
      id = body.id;
      assert.equal(body.data[0], 0, 'no failure flag');
      const n = (body.data[2]! << 8) | body.data[3]!;
      gotPlain.push(body.data.subarray(4, 4 + n));
      if (body.data.length > 4 + n) s.pipe.deliver(body.data.subarray(4 + n));
    }
    assert.equal(new TextDecoder().decode(concat(...gotPlain)), 'ping');
    s.client.destroy();
  } finally {
    card.close();
    cleanup();
  }
});
