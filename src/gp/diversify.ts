/**
 * gp/diversify: per-card static SCP03 keys derived from a master key, so that neither the
 * manufacturer (factory key set, KVN 30) nor the operator (its key sets, KVN 31 and up) stores a
 * key per card. imports bytes/.
 *
 * Construction — NIST SP 800-108 KDF in counter mode, PRF = AES-CMAC (16-byte output), r = 8:
 *
 *   K_i     = CMAC(master, [i]₁ ‖ Label ‖ 00 ‖ Context ‖ [L]₂)        i = 1, 2 (L > 128)
 *   key     = first L/8 bytes of K_1 ‖ K_2
 *   Label   = ASCII "setls-scp03-static-key-v1" (25 bytes)
 *   Context = purpose(1) ‖ KVN(1) ‖ len(UID)(1) ‖ UID               purpose 01 K-ENC, 02 K-MAC, 03 K-DEK
 *   L       = key length in bits (128, 192, 256), big-endian on 2 bytes
 *
 * The label keeps these keys apart from every GP derivation (whose input starts with eleven zero
 * bytes, never with 01/02 followed by ASCII), the KVN keeps the factory and operator key sets
 * apart even under one master, and the UID (16 bytes for setls cards) keeps cards apart.
 *
 * Secrets: the master key is only read; the returned keys are fresh and belong to the caller.
 */
import { concat, wipe } from '../bytes/index.js';
import { assertAesKey, isAesKeyLength } from './aes.js';
import { aesCmac } from './cmac.js';
import { GpError, GpErrorCode } from './errors.js';
import { aesKcv, staticKeys, type StaticKeys } from './keys.js';

export const DIVERSIFY_LABEL = new TextEncoder().encode('setls-scp03-static-key-v1');
export const DiversifyPurpose = { enc: 0x01, mac: 0x02, dek: 0x03 } as const;
export type DiversifyPurpose = (typeof DiversifyPurpose)[keyof typeof DiversifyPurpose];

/** One diversified key (see the construction above). */
export function diversifyKey(
  master: Uint8Array,
  uid: Uint8Array,
  purpose: DiversifyPurpose,
  kvn: number,
  keyLength = master.length,
): Uint8Array {
  assertAesKey(master, 'master key');
  if (!isAesKeyLength(keyLength)) throw new GpError(GpErrorCode.key, `diversified key length ${keyLength} is not 16, 24 or 32`);
  if (uid.length < 1 || uid.length > 255) throw new RangeError('UID must be 1..255 bytes');
  if (!Number.isInteger(kvn) || kvn < 1 || kvn > 0x7f) throw new GpError(GpErrorCode.key, `KVN ${kvn} outside 01..7F`);
  const bits = keyLength * 8;
  const tail = concat(Uint8Array.of(0x00, purpose, kvn, uid.length), uid, Uint8Array.of(bits >> 8, bits & 0xff));
  const out = new Uint8Array(32);
  for (let i = 1; i <= Math.ceil(keyLength / 16); i++) {
    const input = concat(Uint8Array.of(i), DIVERSIFY_LABEL, tail);
    const k = aesCmac(master, input);
    out.set(k, (i - 1) * 16);
    wipe(k, input);
  }
  const key = out.slice(0, keyLength);
  wipe(out, tail);
  return key;
}

/** The card's static key set for `kvn`: K-ENC, K-MAC, K-DEK diversified from `master` and `uid`. */
export function deriveCardKeys(master: Uint8Array, uid: Uint8Array, kvn: number, keyLength = master.length): StaticKeys {
  const enc = diversifyKey(master, uid, DiversifyPurpose.enc, kvn, keyLength);
  const mac = diversifyKey(master, uid, DiversifyPurpose.mac, kvn, keyLength);
  const dek = diversifyKey(master, uid, DiversifyPurpose.dek, kvn, keyLength);
  const keys = staticKeys(kvn, enc, mac, dek);
  wipe(enc, mac, dek);
  return keys;
}

/**
 * The name manifests give a manufacturer master key (their `transportKeyId`): `mfr-` and the key's
 * AES key check value in hex — derived from the key, so the manufacturer and an operator holding the
 * same key file name it alike, and the name reveals nothing but the KCV.
 */
export function transportKeyId(master: Uint8Array): string {
  assertAesKey(master, 'master key');
  const kcv = aesKcv(master);
  return `mfr-${Array.from(kcv, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
