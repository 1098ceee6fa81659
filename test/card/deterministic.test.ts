/** Deterministic card mode: signers and scalars drawn from the card's `random`, reproducible CSRs. */
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, verify } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { toHex } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { ecdsaP256Sign, p256Scalar, rsaPssSign } from '../../src/card/signers.js';
import { OPERATOR_PIN, SELECT, a0, csrRequest, newCard, send, tempDir, utf8, verify as verifyApdu, xcv } from './helpers.js';
import { seededRandom } from './trace.js';

const N_HEX = 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551';

test('p256Scalar redraws 0 and values ≥ n (no modular reduction bias)', () => {
  const draws = [new Uint8Array(32), Uint8Array.from(Buffer.from(N_HEX, 'hex')), new Uint8Array(32).fill(0xff), new Uint8Array(32).fill(0x11)];
  let calls = 0;
  const k = p256Scalar(() => draws[calls++]!.slice());
  assert.equal(calls, 4);
  assert.equal(toHex(k), '11'.repeat(32));
  assert.throws(() => p256Scalar(() => new Uint8Array(32)), { code: 'ERR_CARD_RANDOM' });
});

test('ECDSA P-256 with k from random: verifies with node:crypto, same stream → same signature', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = utf8('TLS 1.3, server CertificateVerify');
  const a = ecdsaP256Sign(privateKey, data, seededRandom('k'));
  const b = ecdsaP256Sign(privateKey, data, seededRandom('k'));
  const c = ecdsaP256Sign(privateKey, data, seededRandom('other k'));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  for (const sig of [a, c]) assert.ok(verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, sig));
  assert.ok(!verify('sha256', utf8('other data'), { key: publicKey, dsaEncoding: 'der' }, a));
});

test('RSA-PSS with the salt from random: sha256/384/512 verify with node:crypto (salt = hash length), reproducible', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const data = utf8('TLS 1.3, server CertificateVerify');
  for (const [hash, salt] of [
    ['sha256', 32],
    ['sha384', 48],
    ['sha512', 64],
  ] as const) {
    const a = rsaPssSign(privateKey, hash, data, seededRandom(hash));
    const b = rsaPssSign(privateKey, hash, data, seededRandom(hash));
    assert.equal(a.length, 256);
    assert.deepEqual(a, b);
    assert.ok(verify(hash, data, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: salt }, a), hash);
    assert.ok(!verify(hash, utf8('x'), { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: salt }, a));
  }
});

test('two deterministic cards from the same state and seed produce the same CSR bytes (and it verifies)', async () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    send(card, SELECT);
    send(card, verifyApdu(OPERATOR_PIN, 1));
    assert.equal((await xcv(card, a0(0x46, 0x01, 0x00, utf8('web')))).sw, 0x9000);
    card.close();
    const csrs: string[] = [];
    const extra: (() => void)[] = [];
    try {
      for (const seed of ['s', 's', 't']) {
        const t = tempDir();
        extra.push(t.cleanup);
        mkdirSync(t.dir, { recursive: true });
        copyFileSync(join(dir, 'state.sealed'), join(t.dir, 'state.sealed'));
        const c = EmulatedCard.open({ dir: t.dir, masterKey, random: seededRandom(seed) });
        try {
          send(c, SELECT);
          send(c, verifyApdu(OPERATOR_PIN, 1));
          const r = await xcv(c, a0(0x4a, 0, 0, csrRequest('web', 'det.example', ['det.example'])));
          assert.equal(r.sw, 0x9000);
          assert.ok(await new x509.Pkcs10CertificateRequest(r.data as Uint8Array<ArrayBuffer>).verify());
          csrs.push(toHex(r.data));
        } finally {
          c.close();
        }
      }
    } finally {
      extra.forEach((f) => f());
    }
    assert.equal(csrs[0], csrs[1]);
    assert.notEqual(csrs[0], csrs[2]);
  } finally {
    cleanup();
  }
});
