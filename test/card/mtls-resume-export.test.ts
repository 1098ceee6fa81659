/**
 * Mutual TLS, TLS 1.3 resumption and external PSKs, EXPORT-SESSION and EXPORTER through the card
 * (docs/apdu-protocol.md §2.3) with Node's client over an in-memory duplex.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createCipheriv, createHash } from 'node:crypto';
import { readU16, toHex } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { OPERATOR_PIN, SELECT, TestCa, USER_PIN, a0, cmd, eapResponse, newCard, personalise, send, swOf, utf8, verify, xcv } from './helpers.js';
import { handshakeWith, once, sessionInfo } from './tls-host.js';
import { waitUntil } from '../wait.js';
import { clientCredentials, exportSessionCmd, exporterCmd, labelTlv, nextSession, putIdentityPolicy, putPolicy, putPsk, putTrustAnchor, roundTrip } from './tls-features.js';

let ca: TestCa;
before(async () => {
  ca = await TestCa.create();
});

const stateOf = (card: EmulatedCard) => send(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)).data[0];

async function mtlsCard(clientAuth: number) {
  const c = newCard();
  await personalise(c.card, ca, 'web');
  // its own name: OpenSSL's client would otherwise chain its leaf to the server CA of the same name
  const clientCa = await TestCa.create('CN=setls client CA');
  assert.equal((await putTrustAnchor(c.card, 'web', new Uint8Array(clientCa.cert.rawData))).sw, 0x9000);
  assert.equal(swOf(c.card, putIdentityPolicy([labelTlv('web'), { tag: 0x40, value: Uint8Array.of(clientAuth) }])), 0x9000);
  return { ...c, clientCa };
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  test(`mutual TLS (${version}), required: a client certificate from a trusted CA → session info 27 subject, 28 SANs, 29 fingerprint`, async () => {
    const c = await mtlsCard(2);
    try {
      const cred = await clientCredentials(c.clientCa, 'device-42', ['device-42.example']);
      const s = await handshakeWith(c.card, ca.pem, { key: cred.key, cert: cred.cert, minVersion: version, maxVersion: version });
      assert.equal(s.hs.outcome, 'success', String(s.error));
      const info = await sessionInfo(c.card);
      assert.equal(new TextDecoder().decode(info.get(0x27)!), new X509Certificate(cred.der).subject);
      assert.equal(new TextDecoder().decode(info.get(0x27)!), 'CN=device-42');
      assert.equal(new TextDecoder().decode(info.get(0x28)!), 'DNS:device-42.example');
      assert.equal(toHex(info.get(0x29)!), createHash('sha256').update(cred.der).digest('hex'));
      await roundTrip(c.card, s);
      s.client.destroy();
    } finally {
      c.card.close();
      c.cleanup();
    }
  });
}

test('mutual TLS: an untrusted client certificate → unknown_ca via 7001, EAP-Failure, state 04; no certificate when required → failure', async () => {
  const c = await mtlsCard(2);
  try {
    const stranger = await TestCa.create('CN=setls stranger CA');
    const cred = await clientCredentials(stranger, 'intruder', ['intruder.example']);
    const s = await handshakeWith(c.card, ca.pem, { key: cred.key, cert: cred.cert });
    assert.equal(s.hs.outcome, 'failure');
    assert.ok(s.hs.sawFailureSw, 'the alert went out with 7001');
    const alertRecord = s.hs.responses.find((r) => r.sw === 0x7001)!;
    assert.ok(alertRecord);
    assert.equal(stateOf(c.card), 4);
    await waitUntil(() => s.error !== undefined, "the client's error (the card's alert)");
    assert.match(String(s.error?.message ?? s.error?.code), /unknown ca|UNKNOWN_CA|alert number 48/i);
    s.client.destroy();

    const none = await handshakeWith(c.card, ca.pem, {});
    assert.equal(none.hs.outcome, 'failure');
    assert.ok(none.hs.sawFailureSw);
    none.client.destroy();
  } finally {
    c.card.close();
    c.cleanup();
  }
});

test('mutual TLS optional: no client certificate is fine (no 27/28/29)', async () => {
  const c = await mtlsCard(1);
  try {
    const s = await handshakeWith(c.card, ca.pem, {});
    assert.equal(s.hs.outcome, 'success', String(s.error));
    const info = await sessionInfo(c.card);
    assert.equal(info.get(0x27), undefined);
    assert.equal(info.get(0x29), undefined);
    s.client.destroy();
  } finally {
    c.card.close();
    c.cleanup();
  }
});

test('TLS 1.3 ticket resumption across a restart (EmulatedCard.open again): 2A = 01; a rotated ticket key (new trust anchor) → full handshake', async () => {
  const c = newCard();
  try {
    await personalise(c.card, ca, 'web');
    let session: Promise<Buffer> | undefined;
    const first = await handshakeWith(c.card, ca.pem, {}, { onClient: (cl) => (session = nextSession(cl)) });
    assert.equal(first.hs.outcome, 'success', String(first.error));
    assert.ok(first.hs.sawDoneSw, 'the NewSessionTicket went out with 9001');
    assert.equal(toHex((await sessionInfo(c.card)).get(0x2a)!), '00');
    const ticket = await session!;
    await roundTrip(c.card, first);
    first.client.destroy();
    c.card.close();

    const again = EmulatedCard.open({ dir: c.dir, masterKey: c.masterKey });
    try {
      send(again, SELECT);
      send(again, verify(USER_PIN));
      let next: Promise<Buffer> | undefined;
      const resumed = await handshakeWith(again, ca.pem, { session: ticket }, { onClient: (cl) => (next = nextSession(cl)) });
      assert.equal(resumed.hs.outcome, 'success', String(resumed.error));
      assert.equal(resumed.client.isSessionReused(), true);
      const info = await sessionInfo(again);
      assert.equal(toHex(info.get(0x2a)!), '01', 'resumed from a ticket');
      assert.equal(toHex(info.get(0x23)!), '0000', 'no CertificateVerify on resumption');
      await roundTrip(again, resumed);
      resumed.client.destroy();
      const ticket2 = await next!;

      // a change of who may connect drops the ticket key: the old tickets no longer resume
      send(again, verify(OPERATOR_PIN, 1));
      assert.equal((await putTrustAnchor(again, 'web', new Uint8Array((await TestCa.create()).cert.rawData))).sw, 0x9000);
      const full = await handshakeWith(again, ca.pem, { session: ticket2 });
      assert.equal(full.hs.outcome, 'success', String(full.error));
      assert.equal(full.client.isSessionReused(), false);
      assert.equal(toHex((await sessionInfo(again)).get(0x2a)!), '00');
      full.client.destroy();

      // policy 37 = 0: no tickets, the handshake ends with plain EAP-Success
      assert.equal(swOf(again, putPolicy('370400000000')), 0x9000);
      const plain = await handshakeWith(again, ca.pem, {});
      assert.equal(plain.hs.outcome, 'success');
      assert.equal(plain.hs.sawDoneSw, false);
      plain.client.destroy();
    } finally {
      again.close();
    }
  } finally {
    c.cleanup();
  }
});

test('TLS 1.3 external PSK (psk_dhe_ke) with Node pskCallback: 2A = 03, 2B = identity; unknown identity → certificate handshake', async () => {
  const c = newCard();
  const key = Uint8Array.from({ length: 32 }, (_, i) => 0x55 ^ i);
  try {
    await personalise(c.card, ca, 'web');
    assert.equal(swOf(c.card, putPsk(utf8('thermostat'), key)), 0x9000);
    const s = await handshakeWith(c.card, ca.pem, {
      ciphers: 'TLS_AES_128_GCM_SHA256',
      pskCallback: () => ({ identity: 'thermostat', psk: Buffer.from(key) }),
      checkServerIdentity: () => undefined,
    });
    assert.equal(s.hs.outcome, 'success', String(s.error));
    assert.equal(s.client.getProtocol(), 'TLSv1.3');
    const info = await sessionInfo(c.card);
    assert.equal(toHex(info.get(0x2a)!), '03');
    assert.equal(new TextDecoder().decode(info.get(0x2b)!), 'thermostat');
    assert.notEqual(toHex(info.get(0x22)!), '0000', 'psk_dhe_ke: ECDHE too');
    await roundTrip(c.card, s);
    s.client.destroy();

    const other = await handshakeWith(c.card, ca.pem, { ciphers: 'TLS_AES_128_GCM_SHA256', pskCallback: () => ({ identity: 'nobody', psk: Buffer.from(key) }) });
    assert.equal(other.hs.outcome, 'success', String(other.error));
    assert.equal(toHex((await sessionInfo(c.card)).get(0x2a)!), '00');
    other.client.destroy();
  } finally {
    c.card.close();
    c.cleanup();
  }
});

/** Parses the EXPORT-SESSION blob. */
function parseBlob(b: Uint8Array) {
  const seq = (o: number) => Buffer.from(b.subarray(o, o + 8)).readBigUInt64BE();
  const out = { version: readU16(b, 0), suite: readU16(b, 2), readSeq: seq(4), writeSeq: seq(12), fields: [] as Uint8Array[] };
  let o = 20;
  for (let i = 0; i < 6; i++) {
    const n = b[o]!;
    out.fields.push(b.subarray(o + 1, o + 1 + n));
    o += 1 + n;
  }
  assert.equal(o, b.length, 'the blob has exactly six length-prefixed fields');
  const [cts, sts, ck, civ, sk, siv] = out.fields as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  return { ...out, cts, sts, ck, civ, sk, siv };
}

function xorSeq(iv: Uint8Array, seq: bigint): Buffer {
  const n = Buffer.from(iv);
  for (let i = 0; i < 8; i++) n[n.length - 1 - i]! ^= Number((seq >> BigInt(8 * i)) & 0xffn);
  return n;
}

test('EXPORT-SESSION (TLS 1.3): refused by default (6985); allowed by policy → blob; a record sealed by the test with the exported keys reaches Node; then ENCRYPT → 6985', async () => {
  const c = newCard();
  try {
    await personalise(c.card, ca, 'web');
    send(c.card, verify(USER_PIN));
    assert.equal(swOf(c.card, exportSessionCmd()), 0x6985, 'no session');
    const s0 = await handshakeWith(c.card, ca.pem, { ciphers: 'TLS_AES_128_GCM_SHA256' });
    assert.equal(s0.hs.outcome, 'success');
    assert.equal(swOf(c.card, exportSessionCmd()), 0x6985, 'policy 41 = 00 by default');
    assert.equal(stateOf(c.card), 3, 'the refused export left the session alone');
    await roundTrip(c.card, s0);
    s0.client.destroy();

    send(c.card, verify(OPERATOR_PIN, 1));
    assert.equal(swOf(c.card, putIdentityPolicy([labelTlv('web'), { tag: 0x41, value: Uint8Array.of(1) }])), 0x9000);
    const s = await handshakeWith(c.card, ca.pem, { ciphers: 'TLS_AES_128_GCM_SHA256' });
    assert.equal(s.hs.outcome, 'success');
    const id = await roundTrip(c.card, s);
    assert.equal(swOf(c.card, cmd(0xa0, 0xa8, 0x00, 0x01, new Uint8Array(0), 256)), 0x6a86);
    assert.equal(swOf(c.card, cmd(0xa0, 0xa8, 0x00, 0x00, Uint8Array.of(0), 256)), 0x6700, 'no data');
    const r = send(c.card, exportSessionCmd());
    assert.equal(r.sw, 0x9000);
    const blob = parseBlob(r.data);
    assert.equal(blob.version, 0x0304);
    assert.equal(blob.suite, 0x1301);
    assert.equal(blob.readSeq, 1n, 'one record read (ping)');
    assert.equal(blob.writeSeq, 2n, 'NewSessionTicket + pong written');
    assert.deepEqual([blob.cts.length, blob.sts.length, blob.ck.length, blob.civ.length, blob.sk.length, blob.siv.length], [32, 32, 16, 12, 16, 12]);
    assert.equal(stateOf(c.card), 5, 'CLOSED');
    assert.equal((await xcv(c.card, a0(0x80, 0, 0x97, eapResponse(id, utf8('late'))))).sw, 0x6985, 'ENCRYPT after export');
    assert.equal(swOf(c.card, exportSessionCmd()), 0x6985, 'only once');

    // the host (here: the test) carries the session on with node:crypto
    const inner = Buffer.concat([Buffer.from('from the host'), Buffer.of(23)]);
    const hdr = Buffer.of(23, 3, 3, (inner.length + 16) >> 8, (inner.length + 16) & 255);
    const ci = createCipheriv('aes-128-gcm', blob.sk, xorSeq(blob.siv, blob.writeSeq));
    ci.setAAD(hdr);
    const got = once<Buffer>(s.client, 'data');
    s.pipe.deliver(new Uint8Array(Buffer.concat([hdr, ci.update(inner), ci.final(), ci.getAuthTag()])));
    assert.equal((await got).toString(), 'from the host');
    s.client.destroy();
  } finally {
    c.card.close();
    c.cleanup();
  }
});

test('EXPORT-SESSION (TLS 1.2 AES-128-GCM): 4-byte implicit IVs, no traffic secrets; Node accepts a record sealed with the exported keys', async () => {
  const c = newCard();
  try {
    await personalise(c.card, ca, 'web');
    assert.equal(swOf(c.card, putIdentityPolicy([labelTlv('web'), { tag: 0x41, value: Uint8Array.of(1) }])), 0x9000);
    const s = await handshakeWith(c.card, ca.pem, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    assert.equal(s.hs.outcome, 'success');
    await roundTrip(c.card, s);
    const r = send(c.card, exportSessionCmd());
    assert.equal(r.sw, 0x9000);
    const blob = parseBlob(r.data);
    assert.equal(blob.version, 0x0303);
    assert.equal(blob.suite, 0xc02b);
    assert.deepEqual([blob.cts.length, blob.sts.length, blob.ck.length, blob.civ.length, blob.sk.length, blob.siv.length], [0, 0, 16, 4, 16, 4]);
    assert.equal(blob.readSeq, 2n, 'Finished + ping');
    assert.equal(blob.writeSeq, 2n, 'Finished + pong');
    // RFC 5288: nonce = salt(4) ‖ explicit(8); AAD = seq ‖ type ‖ version ‖ length
    const plain = Buffer.from('tandem 1.2');
    const explicit = Buffer.alloc(8);
    explicit.writeBigUInt64BE(blob.writeSeq);
    const aad = Buffer.concat([explicit, Buffer.of(23, 3, 3, plain.length >> 8, plain.length & 255)]);
    const ci = createCipheriv('aes-128-gcm', blob.sk, Buffer.concat([blob.siv, explicit]));
    ci.setAAD(aad);
    const body = Buffer.concat([explicit, ci.update(plain), ci.final(), ci.getAuthTag()]);
    const got = once<Buffer>(s.client, 'data');
    s.pipe.deliver(new Uint8Array(Buffer.concat([Buffer.of(23, 3, 3, body.length >> 8, body.length & 255), body])));
    assert.equal((await got).toString(), 'tandem 1.2');
    s.client.destroy();
  } finally {
    c.card.close();
    c.cleanup();
  }
});

test("EXPORTER: an allowed label equals Node's exportKeyingMaterial (1.3 and 1.2); reserved and unlisted labels → 6985; TLS 1.2 without context → 6985", async () => {
  const c = newCard();
  try {
    await personalise(c.card, ca, 'web');
    assert.equal(
      swOf(c.card, putIdentityPolicy([labelTlv('web'), { tag: 0x42, value: utf8('EXPORTER-setls-test') }, { tag: 0x42, value: utf8('client finished') }])),
      0x9000,
    );
    send(c.card, verify(USER_PIN));
    assert.equal(swOf(c.card, exporterCmd('EXPORTER-setls-test', 32)), 0x6985, 'no session yet');
    const ctx = utf8('context bytes');
    for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
      const s = await handshakeWith(c.card, ca.pem, { minVersion: version, maxVersion: version });
      assert.equal(s.hs.outcome, 'success');
      const r = send(c.card, exporterCmd('EXPORTER-setls-test', 300, ctx));
      assert.equal(r.sw, 0x9000, version);
      assert.equal(toHex(r.data), s.client.exportKeyingMaterial(300, 'EXPORTER-setls-test', Buffer.from(ctx)).toString('hex'), version);
      const noCtx = send(c.card, exporterCmd('EXPORTER-setls-test', 32));
      // No context: TLS 1.3 = empty context; TLS 1.2 = RFC 5705's no-context seed (OpenSSL's use_context=0).
      assert.equal(noCtx.sw, 0x9000, version);
      assert.equal(toHex(noCtx.data), (s.client as unknown as { exportKeyingMaterial(n: number, l: string): Buffer }).exportKeyingMaterial(32, 'EXPORTER-setls-test').toString('hex'), version);
      assert.equal(swOf(c.card, exporterCmd('client finished', 32, ctx)), 0x6985, 'reserved (RFC 5705 §4), even when listed');
      assert.equal(swOf(c.card, exporterCmd('master secret', 32, ctx)), 0x6985, 'reserved');
      assert.equal(swOf(c.card, exporterCmd('EXPORTER-other', 32, ctx)), 0x6985, 'not in the identity list');
      assert.equal(swOf(c.card, exporterCmd('EXPORTER-setls-test', 1025, ctx)), 0x6a80, 'length above 1024');
      assert.equal(swOf(c.card, exporterCmd('EXPORTER-setls-test', 0, ctx)), 0x6a80, 'length 0');
      assert.equal(swOf(c.card, cmd(0xa0, 0xaa, 0, 0, Uint8Array.of(0x62, 0x02, 0x00, 0x20), 256)), 0x6a80, 'no label');
      s.client.destroy();
    }
  } finally {
    c.card.close();
    c.cleanup();
  }
});
