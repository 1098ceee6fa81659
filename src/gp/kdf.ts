/**
 * gp/kdf: the SCP03 key derivation function (GP Amendment D "data derivation"): NIST SP 800-108
 * in counter mode, PRF = AES-CMAC with its full 16-byte output, with GP's fixed input layout
 *
 *   D_i = 00×11 ‖ constant(1) ‖ 00 ‖ L(2, bits, big-endian) ‖ i(1) ‖ context
 *   KDF(K, constant, L, context) = first L/8 bytes of CMAC(K, D_1) ‖ CMAC(K, D_2) ‖ …
 *
 * and GP's data derivation constants. imports bytes/.
 */
import { wipe } from '../bytes/index.js';
import { AES_BLOCK } from './aes.js';
import { aesCmac } from './cmac.js';

/** GP Amendment D data derivation constants (the byte after the 11 zero bytes of the label). */
export const Ddc = {
  cardCryptogram: 0x00,
  hostCryptogram: 0x01,
  cardChallenge: 0x02,
  sEnc: 0x04,
  sMac: 0x06,
  sRmac: 0x07,
} as const;

/** The SCP03 KDF; `lengthBits` is a multiple of 8 from 8 to 255×128. */
export function scp03Kdf(key: Uint8Array, constant: number, lengthBits: number, context: Uint8Array): Uint8Array {
  if (!Number.isInteger(lengthBits) || lengthBits <= 0 || lengthBits % 8 !== 0 || lengthBits > 255 * 128) {
    throw new RangeError(`KDF output length ${lengthBits} bits is not supported`);
  }
  if (!Number.isInteger(constant) || constant < 0 || constant > 0xff) throw new RangeError('KDF constant must be a byte');
  const n = Math.ceil(lengthBits / 128);
  const input = new Uint8Array(16 + context.length);
  input[11] = constant;
  input[13] = lengthBits >> 8;
  input[14] = lengthBits & 0xff;
  input.set(context, 16);
  const out = new Uint8Array(n * AES_BLOCK);
  for (let i = 1; i <= n; i++) {
    input[15] = i;
    const block = aesCmac(key, input);
    out.set(block, (i - 1) * AES_BLOCK);
    wipe(block);
  }
  wipe(input);
  const result = out.slice(0, lengthBits / 8);
  wipe(out);
  return result;
}
