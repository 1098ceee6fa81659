/** RSA-2048 identities: GENERATE-KEY P1 02, the RSA CSR, the sealed key type, and RSA-PSS handshakes verified by Node. */
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { findTlv, parseTlvs, toHex } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { parseEapTls } from '../../src/eap/index.js';
import { OPERATOR_PIN, SELECT, TestCa, USER_PIN, a0, cmd, csrRequest, eapResponse, newCard, personalise, send, swOf, utf8, verify, xcv } from './helpers.js';
import { handshakeWith, once, sessionInfo } from './tls-host.js';

test('GENERATE-KEY P1 02: RSA-2048 (e = 65537) inside the card; the CSR is sha256WithRSAEncryption; key type 02 survives a reopen', async () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(send(card, cmd(0xa0, 0x46, 0x02, 0x00, utf8('rsa'), 256)).sw, 0x6982);
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    const g = await xcv(card, a0(0x46, 0x02, 0x00, utf8('rsa')));
    assert.equal(g.sw, 0x9000);
    const pub = createPublicKey({ key: Buffer.from(g.data), format: 'der', type: 'spki' });
    assert.equal(pub.asymmetricKeyType, 'rsa');
    assert.equal(pub.asymmetricKeyDetails?.modulusLength, 2048);
    assert.equal(pub.asymmetricKeyDetails?.publicExponent, 65537n);

    const r = await xcv(card, a0(0x4a, 0, 0, csrRequest('rsa', 'rsa.example', ['rsa.example'])));
    assert.equal(r.sw, 0x9000);
    const csr = new x509.Pkcs10CertificateRequest(r.data as Uint8Array<ArrayBuffer>);
    assert.equal(csr.signatureAlgorithm.name, 'RSASSA-PKCS1-v1_5');
    assert.equal((csr.signatureAlgorithm as RsaHashedKeyAlgorithm).hash.name, 'SHA-256');
    assert.ok(await csr.verify());
    assert.deepEqual(new Uint8Array(csr.publicKey.rawData), g.data);

    const id = await xcv(card, a0(0xca, 0x01, 0x00, utf8('rsa')));
    assert.equal(toHex(findTlv(parseTlvs(id.data), 0x10)!), '02');
    card.close();

    const again = EmulatedCard.open({ dir, masterKey });
    try {
      send(again, SELECT);
      const id2 = await xcv(again, a0(0xca, 0x01, 0x00, utf8('rsa')));
      const t = parseTlvs(id2.data);
      assert.equal(toHex(findTlv(t, 0x10)!), '02');
      assert.deepEqual(findTlv(t, 0x11), g.data);
    } finally {
      again.close();
    }
  } finally {
    cleanup();
  }
});

for (const deterministic of [false, true]) {
  test(`RSA identity, full handshake with Node: RSA-PSS sha256/384/512 CertificateVerify verified by Node${deterministic ? ' (deterministic card: PSS salt from `random`)' : ''}`, async () => {
    const ca = await TestCa.create();
    let counter = 0;
    const random = (n: number) => {
      // not cryptographic: a fixed stream, enough for a test card
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = (counter++ * 131 + 7) & 0xff;
      return out;
    };
    const { card, cleanup } = newCard(deterministic ? { random } : {});
    try {
      await personalise(card, ca, 'rsa', { keyType: 2 });
      for (const [sigalgs, scheme] of [
        [undefined, '0804'],
        ['rsa_pss_rsae_sha384', '0805'],
        ['rsa_pss_rsae_sha512', '0806'],
      ] as const) {
        const s = await handshakeWith(card, ca.pem, sigalgs ? { sigalgs } : {});
        assert.equal(s.hs.outcome, 'success', String(s.error));
        assert.equal(s.error, undefined);
        assert.equal(s.client.getPeerCertificate().subject.CN, 'localhost');
        const info = await sessionInfo(card);
        assert.equal(toHex(info.get(0x23)!), scheme);
        assert.equal(new TextDecoder().decode(info.get(0x26)!), 'rsa');
        // one record card → client
        const got = once<Buffer>(s.client, 'data');
        const e = await xcv(card, a0(0x80, 0, 0x97, eapResponse(s.hs.lastId, utf8('over RSA'))));
        assert.equal(e.sw, 0x9000);
        s.pipe.deliver(parseEapTls(e.data).data);
        assert.equal((await got).toString(), 'over RSA');
        s.client.destroy();
      }
      // an ECDSA-only client cannot talk to an RSA identity: handshake_failure
      const bad = await handshakeWith(card, ca.pem, { sigalgs: 'ecdsa_secp256r1_sha256' });
      assert.equal(bad.hs.outcome, 'failure');
      assert.ok(bad.hs.sawFailureSw);
      bad.client.destroy();
    } finally {
      card.close();
      cleanup();
    }
  });
}

test('GENERATE-KEY with another key type replaces the key (and its type) of an identity', async () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    send(card, verify(OPERATOR_PIN, 1));
    const a = await xcv(card, a0(0x46, 0x02, 0x00, utf8('k')));
    const b = await xcv(card, a0(0x46, 0x01, 0x00, utf8('k'))); // replaced by a P-256 key
    assert.equal(a.sw, 0x9000);
    assert.equal(b.sw, 0x9000);
    const id = await xcv(card, a0(0xca, 0x01, 0x00, utf8('k')));
    assert.equal(toHex(findTlv(parseTlvs(id.data), 0x10)!), '01');
    assert.notDeepEqual(findTlv(parseTlvs(id.data), 0x11), a.data);
  } finally {
    card.close();
    cleanup();
  }
});
