/**
 * gp/aes: the AES primitives SCP03 needs, on node:crypto (OpenSSL, AES-NI where the CPU has it:
 * constant-time, unlike table-based JavaScript AES): one ECB block, CBC without padding, the
 * ISO 9797-1 method 2 padding (`80 00…`) and its strict removal. imports bytes/.
 *
 * Secrets: keys are passed in and never kept. Every intermediate Buffer node:crypto returns is
 * zeroed before returning a fresh Uint8Array; the caller owns and wipes inputs and outputs.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { wipe } from '../bytes/index.js';
import { GpError, GpErrorCode } from './errors.js';

export const AES_BLOCK = 16;

export function isAesKeyLength(n: number): boolean {
  return n === 16 || n === 24 || n === 32;
}

export function assertAesKey(key: Uint8Array, what = 'AES key'): void {
  if (!isAesKeyLength(key.length)) throw new GpError(GpErrorCode.key, `${what} must be 16, 24 or 32 bytes, not ${key.length}`);
}

function collect(update: Buffer, final: Buffer): Uint8Array {
  const out = new Uint8Array(update.length + final.length);
  out.set(update);
  out.set(final, update.length);
  wipe(update, final);
  return out;
}

function assertBlocks(data: Uint8Array): void {
  if (data.length % AES_BLOCK !== 0) throw new RangeError(`AES input of ${data.length} bytes is not whole blocks`);
}

/** AES-ECB encryption of exactly one 16-byte block. */
export function aesEncryptBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  assertAesKey(key);
  if (block.length !== AES_BLOCK) throw new RangeError('AES block must be 16 bytes');
  const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
  return collect(c.update(block), c.final());
}

/** AES-CBC encryption of whole blocks, no padding. */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  assertAesKey(key);
  assertBlocks(data);
  const c = createCipheriv(`aes-${key.length * 8}-cbc`, key, iv).setAutoPadding(false);
  return collect(c.update(data), c.final());
}

/** AES-CBC decryption of whole blocks, no padding removed. */
export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  assertAesKey(key);
  assertBlocks(data);
  const d = createDecipheriv(`aes-${key.length * 8}-cbc`, key, iv).setAutoPadding(false);
  return collect(d.update(data), d.final());
}

/** ISO/IEC 9797-1 padding method 2 to whole AES blocks: `80` then zeros; always adds 1..16 bytes. */
export function pad80(data: Uint8Array): Uint8Array {
  const out = new Uint8Array((Math.floor(data.length / AES_BLOCK) + 1) * AES_BLOCK);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

/**
 * Removes padding method 2; undefined unless the input is whole blocks ending in `80 00…` with the
 * `80` inside the last block. Returns a copy.
 */
export function unpad80(padded: Uint8Array): Uint8Array | undefined {
  if (padded.length === 0 || padded.length % AES_BLOCK !== 0) return undefined;
  let i = padded.length - 1;
  const stop = padded.length - AES_BLOCK;
  while (i > stop && padded[i] === 0) i--;
  if (padded[i] !== 0x80) return undefined;
  return padded.slice(0, i);
}
