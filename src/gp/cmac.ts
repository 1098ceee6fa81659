/**
 * gp/cmac: AES-CMAC (NIST SP 800-38B, RFC 4493) for AES-128/192/256, built on node:crypto's
 * AES-CBC: CMAC is the CBC-MAC of the message whose last block was XORed with subkey K1 (complete
 * block) or padded with `80 00…` and XORed with K2. imports bytes/.
 *
 * Why not a library: @noble/ciphers 2.x has a maintained `cmac(message, key)`, but its AES is
 * table-based JavaScript that, in its authors' words, leaks access timings; SCP03 feeds the static
 * card keys (and the operator's diversification master) through CMAC, so this module uses
 * OpenSSL's constant-time AES and keeps noble only as an independent test oracle.
 *
 * Secrets: L, K1, K2 and the XORed message copy are zeroed before returning.
 */
import { createCipheriv } from 'node:crypto';
import { wipe } from '../bytes/index.js';
import { AES_BLOCK, aesEncryptBlock, assertAesKey } from './aes.js';

const ZERO_BLOCK = new Uint8Array(AES_BLOCK);

/** Multiplication by x in GF(2^128) (RFC 4493 §2.3), without a branch on the secret top bit. */
function dbl(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(AES_BLOCK);
  const msb = b[0]! >> 7;
  for (let i = 0; i < AES_BLOCK - 1; i++) out[i] = ((b[i]! << 1) | (b[i + 1]! >> 7)) & 0xff;
  out[AES_BLOCK - 1] = ((b[AES_BLOCK - 1]! << 1) & 0xff) ^ (0x87 & -msb);
  return out;
}

/** The CMAC subkeys K1 and K2 of `key` (exported for the known-answer tests; wipe them). */
export function cmacSubkeys(key: Uint8Array): { k1: Uint8Array; k2: Uint8Array } {
  const l = aesEncryptBlock(key, ZERO_BLOCK);
  const k1 = dbl(l);
  const k2 = dbl(k1);
  wipe(l);
  return { k1, k2 };
}

/** The 16-byte AES-CMAC of `message` under `key` (16, 24 or 32 bytes). */
export function aesCmac(key: Uint8Array, message: Uint8Array): Uint8Array {
  assertAesKey(key);
  const { k1, k2 } = cmacSubkeys(key);
  const complete = message.length > 0 && message.length % AES_BLOCK === 0;
  const blocks = complete ? message.length / AES_BLOCK : Math.floor(message.length / AES_BLOCK) + 1;
  const buf = new Uint8Array(blocks * AES_BLOCK);
  buf.set(message);
  if (!complete) buf[message.length] = 0x80;
  const k = complete ? k1 : k2;
  const last = (blocks - 1) * AES_BLOCK;
  for (let i = 0; i < AES_BLOCK; i++) buf[last + i] = buf[last + i]! ^ k[i]!;
  const c = createCipheriv(`aes-${key.length * 8}-cbc`, key, ZERO_BLOCK).setAutoPadding(false);
  const ct = c.update(buf);
  const fin = c.final();
  const tag = new Uint8Array(AES_BLOCK);
  tag.set(ct.subarray(ct.length - AES_BLOCK));
  wipe(k1, k2, buf, ct, fin);
  return tag;
}
