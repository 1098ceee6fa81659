/**
 * gp/put-key: PUT KEY for an SCP03 AES key set (GP Card Spec 2.3 §11.8; GlobalPlatformPro
 * `GPSession.encodeKey`), both sides. imports bytes/.
 *
 *   command   80|ch D8 P1 P2 Lc <new KVN> <key block K-ENC> <key block K-MAC> <key block K-DEK> 00
 *             P1 = 00 to add a key set, else the KVN it replaces; P2 = 81 (key id 1, several keys)
 *   key block 88 <Lk> <key length> <AES-CBC(K-DEK, IV = 0, key ‖ 00… to 16-byte blocks)> 03 <KCV>
 *             Lk = 1 + encrypted length; KCV = first 3 bytes of AES-ECB(key, 01×16)
 *   response  <new KVN> <KCV K-ENC> <KCV K-MAC> <KCV K-DEK>  (the card computes them itself)
 *
 * The command is then wrapped like any other; at level 33 the key blocks are encrypted a second
 * time under S-ENC, so the relay sees neither keys nor key check values.
 *
 * Secrets: new keys are encrypted under the current K-DEK; plaintext copies made here (padded
 * keys, decrypted blocks) are zeroed before returning. The card-side parse returns fresh keys the
 * caller stores and then wipes.
 */
import { concat, ctEqual, wipe } from '../bytes/index.js';
import { aesCbcDecrypt, aesCbcEncrypt, assertAesKey, isAesKeyLength } from './aes.js';
import { claFor } from './cla.js';
import { GpSw } from './errors.js';
import { aesKcv, staticKeys, type StaticKeys } from './keys.js';
import { GpIns, isScp03Kvn } from './params.js';

/** Key type AES in PUT KEY key data. */
export const KEY_TYPE_AES = 0x88;
/** P2 of PUT KEY for a key set: b8 = several keys, key identifier 1. */
export const PUT_KEY_P2_KEY_SET = 0x81;

const ZERO_IV = new Uint8Array(16);

/** One key block: `88 Lk len AES-CBC(dek, 0, key‖00…) 03 KCV`. */
export function encodeAesKeyBlock(dek: Uint8Array, key: Uint8Array): Uint8Array {
  assertAesKey(dek, 'K-DEK');
  assertAesKey(key, 'new key');
  const padded = new Uint8Array(Math.ceil(key.length / 16) * 16);
  padded.set(key);
  const cgram = aesCbcEncrypt(dek, ZERO_IV, padded);
  wipe(padded);
  const kcv = aesKcv(key);
  return concat(Uint8Array.of(KEY_TYPE_AES, cgram.length + 1, key.length), cgram, Uint8Array.of(kcv.length), kcv);
}

/** PUT KEY data: new KVN then the three key blocks (ENC, MAC, DEK), encrypted under `dek`. */
export function buildPutKeyData(dek: Uint8Array, newKeys: StaticKeys): Uint8Array {
  if (!isScp03Kvn(newKeys.kvn)) throw new RangeError(`new KVN 0x${newKeys.kvn.toString(16)} is outside SCP03's 30..3F`);
  return concat(
    Uint8Array.of(newKeys.kvn),
    encodeAesKeyBlock(dek, newKeys.enc),
    encodeAesKeyBlock(dek, newKeys.mac),
    encodeAesKeyBlock(dek, newKeys.dek),
  );
}

/** The plain PUT KEY command (case 4) — wrap it with the session before sending. */
export function buildPutKey(dek: Uint8Array, newKeys: StaticKeys, opts: { replaceKvn?: number; channel?: number } = {}): Uint8Array {
  const p1 = opts.replaceKvn ?? 0;
  if (p1 !== 0 && !isScp03Kvn(p1)) throw new RangeError(`replaced KVN 0x${p1.toString(16)} is outside SCP03's 30..3F`);
  const data = buildPutKeyData(dek, newKeys);
  return concat(Uint8Array.of(claFor(opts.channel ?? 0), GpIns.putKey, p1, PUT_KEY_P2_KEY_SET, data.length), data, Uint8Array.of(0x00));
}

/** PUT KEY response data: new KVN ‖ KCV(ENC) ‖ KCV(MAC) ‖ KCV(DEK). */
export function putKeyResponseData(keys: StaticKeys): Uint8Array {
  return concat(Uint8Array.of(keys.kvn), aesKcv(keys.enc), aesKcv(keys.mac), aesKcv(keys.dek));
}

/** Off-card: whether the card's PUT KEY response confirms exactly `newKeys`. */
export function checkPutKeyResponse(data: Uint8Array, newKeys: StaticKeys): boolean {
  const want = putKeyResponseData(newKeys);
  return ctEqual(want, data);
}

export type PutKeyParse =
  | { readonly ok: true; readonly keys: StaticKeys; readonly replaceKvn: number }
  | { readonly ok: false; readonly sw: number; readonly why: string };

/**
 * Card: decodes PUT KEY (P1, P2, data) with the current K-DEK and checks each key's KCV in constant
 * time. Refuses anything but a complete AES key set of one length with an SCP03 KVN.
 */
export function parsePutKey(dek: Uint8Array, p1: number, p2: number, data: Uint8Array): PutKeyParse {
  const no = (sw: number, why: string): PutKeyParse => ({ ok: false, sw, why });
  if (p2 !== PUT_KEY_P2_KEY_SET) return no(GpSw.wrongP1P2, 'P2 must be 81 (a key set from key id 1)');
  if (p1 !== 0 && !isScp03Kvn(p1)) return no(GpSw.wrongP1P2, 'P1 must be 00 or an SCP03 KVN');
  if (data.length < 1) return no(GpSw.wrongData, 'no new KVN');
  const kvn = data[0]!;
  if (!isScp03Kvn(kvn)) return no(GpSw.wrongData, `new KVN 0x${kvn.toString(16)} is outside 30..3F`);
  const keys: Uint8Array[] = [];
  let o = 1;
  let bad: string | undefined;
  for (let n = 0; n < 3 && !bad; n++) {
    if (o + 3 > data.length) {
      bad = 'truncated key block';
      break;
    }
    const type = data[o]!;
    const lk = data[o + 1]!;
    const len = data[o + 2]!;
    if (type !== KEY_TYPE_AES) bad = `key type 0x${type.toString(16)} is not AES (88)`;
    else if (!isAesKeyLength(len)) bad = `key length ${len} is not 16, 24 or 32`;
    else if (lk !== 1 + Math.ceil(len / 16) * 16) bad = 'key block length does not match the key length';
    else if (o + 2 + lk + 1 + 3 > data.length || data[o + 2 + lk] !== 3) bad = 'truncated key block or KCV length not 3';
    if (bad) break;
    const cgram = data.subarray(o + 3, o + 2 + lk);
    const kcv = data.subarray(o + 3 + lk, o + 6 + lk);
    const plain = aesCbcDecrypt(dek, ZERO_IV, cgram);
    const key = plain.slice(0, len);
    wipe(plain);
    const mine = aesKcv(key);
    if (!ctEqual(mine, kcv)) bad = `key check value of key ${n + 1} does not match`;
    keys.push(key);
    o += 6 + lk;
  }
  if (!bad && o !== data.length) bad = 'trailing bytes after three key blocks';
  if (!bad && (keys[0]!.length !== keys[1]!.length || keys[1]!.length !== keys[2]!.length)) bad = 'keys of different lengths';
  if (bad) {
    wipe(...keys);
    return no(GpSw.wrongData, bad);
  }
  const set = staticKeys(kvn, keys[0]!, keys[1]!, keys[2]!);
  wipe(...keys);
  return { ok: true, keys: set, replaceKvn: p1 };
}

