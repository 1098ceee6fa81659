/**
 * gp/keys: an SCP03 static key set (K-ENC, K-MAC, K-DEK of one length, and its KVN) and the AES
 * key check value. imports bytes/.
 *
 * Secrets: every key set made here is a fresh copy; whoever holds one wipes it with
 * `wipeStaticKeys` when done (the off-card session does so on close).
 */
import { wipe } from '../bytes/index.js';
import { aesEncryptBlock, isAesKeyLength } from './aes.js';
import { GpError, GpErrorCode } from './errors.js';

export interface StaticKeys {
  /** Key version number, 01..7F (SCP03 uses 30..3F). */
  readonly kvn: number;
  readonly enc: Uint8Array;
  readonly mac: Uint8Array;
  readonly dek: Uint8Array;
}

/** Checks and copies a key set: three AES keys of the same length (16, 24 or 32) and a KVN 01..7F. */
export function staticKeys(kvn: number, enc: Uint8Array, mac: Uint8Array, dek: Uint8Array): StaticKeys {
  if (!Number.isInteger(kvn) || kvn < 0x01 || kvn > 0x7f) throw new GpError(GpErrorCode.key, `KVN ${kvn} outside 01..7F`);
  for (const [name, k] of [['K-ENC', enc], ['K-MAC', mac], ['K-DEK', dek]] as const) {
    if (!isAesKeyLength(k.length)) throw new GpError(GpErrorCode.key, `${name} must be 16, 24 or 32 bytes, not ${k.length}`);
  }
  if (enc.length !== mac.length || mac.length !== dek.length) {
    throw new GpError(GpErrorCode.key, 'K-ENC, K-MAC and K-DEK must have the same length');
  }
  return { kvn, enc: enc.slice(), mac: mac.slice(), dek: dek.slice() };
}

export function copyStaticKeys(k: StaticKeys): StaticKeys {
  return staticKeys(k.kvn, k.enc, k.mac, k.dek);
}

export function wipeStaticKeys(k: StaticKeys | undefined): void {
  if (k) wipe(k.enc, k.mac, k.dek);
}

const ONES = new Uint8Array(16).fill(0x01);

/** Key check value of an AES key: the first 3 bytes of AES-ECB(key, 01×16) (GP Card Spec 2.3). */
export function aesKcv(key: Uint8Array): Uint8Array {
  const block = aesEncryptBlock(key, ONES);
  const kcv = block.slice(0, 3);
  wipe(block);
  return kcv;
}
