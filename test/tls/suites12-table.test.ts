/**
 * The TLS 1.2 suite facts live once (tls/record/aead-suites12.ts): the engine's table extends it,
 * the host's record layer reads it, and the registry's display names use the same code points.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TLS12_SUITES } from '../../src/registry/tls-names.js';
import { AEAD_SUITES12, CipherSuite12 } from '../../src/tls/record/aead-suites12.js';
import { SUITES12 } from '../../src/tls/tls12/suites12.js';

test('every engine suite carries exactly the record facts of the shared table', () => {
  assert.deepEqual([...SUITES12.keys()].sort(), [...AEAD_SUITES12.keys()].sort());
  for (const [id, s] of SUITES12) {
    const { name: _name, kx: _kx, ...facts } = s;
    assert.deepEqual(facts, AEAD_SUITES12.get(id), `0x${id.toString(16)}`);
  }
});

test('record facts: GCM/CCM use a 4-byte salt and an 8-byte explicit nonce, ChaCha20 a 12-byte IV', () => {
  for (const s of AEAD_SUITES12.values()) {
    const chacha = s.aead === 'chacha20-poly1305';
    assert.equal(s.fixedIvLength, chacha ? 12 : 4);
    assert.equal(s.explicitNonceLength, chacha ? 0 : 8);
    assert.equal(s.keyLength, s.aead === 'aes-128-gcm' || s.aead === 'aes-128-ccm' ? 16 : 32);
    assert.equal(s.tagLength, s.aead === 'aes-128-ccm' ? 8 : 16);
    assert.equal(s.hashLength, s.hash === 'sha256' ? 32 : 48);
  }
});

test('the registry names the same TLS 1.2 code points', () => {
  assert.deepEqual(new Set(Object.values(TLS12_SUITES)), new Set(Object.values(CipherSuite12)));
  for (const [name, id] of Object.entries(CipherSuite12)) assert.equal((TLS12_SUITES as Record<string, number>)[name], id, name);
});
