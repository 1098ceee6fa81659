/**
 * gp/params: SCP03 protocol constants and the rules that combine them — security levels (P1 of
 * EXTERNAL AUTHENTICATE), the "i" parameter of INITIALIZE UPDATE, S8/S16 modes, KVN range,
 * instruction bytes. Pure data and predicates; imports nothing.
 */

/** Security level bits (P1 of EXTERNAL AUTHENTICATE; GlobalPlatformPro `APDUMode`). */
export const SlBit = { cMac: 0x01, cDecryption: 0x02, rMac: 0x10, rEncryption: 0x20 } as const;

/** The only security levels SCP03 allows once authenticated (asterix's list; 00 is refused here). */
export const SecurityLevel = {
  cMac: 0x01,
  cMacCDec: 0x03,
  cMacRMac: 0x11,
  cMacCDecRMac: 0x13,
  /** C-DECRYPTION + C-MAC + R-MAC + R-ENCRYPTION: the level setls's operator functions require. */
  full: 0x33,
} as const;
export type SecurityLevel = (typeof SecurityLevel)[keyof typeof SecurityLevel];

export function isSecurityLevel(sl: number): sl is SecurityLevel {
  return sl === 0x01 || sl === 0x03 || sl === 0x11 || sl === 0x13 || sl === 0x33;
}

/**
 * Bits of the SCP03 "i" parameter (byte 13 of the INITIALIZE UPDATE response; asterix masks
 * M_PSEUDO/M_RMAC/M_RMACENC). `s16` (b1) is GP Amendment D v1.1.1's S16 mode indication [I: from
 * the amendment's table of "i" values as remembered, no external vector].
 */
export const IParam = { s16: 0x01, pseudoRandomChallenge: 0x10, rMac: 0x20, rEnc: 0x40 } as const;

/** The "i" setls cards announce: pseudo-random card challenge, R-MAC and R-ENC supported, S8. */
export const DEFAULT_I = 0x70;

/** Whether `i` uses only known bits and never R-ENC without R-MAC. */
export function isValidI(i: number): boolean {
  if (!Number.isInteger(i) || i < 0 || i > 0xff) return false;
  if ((i & ~(IParam.s16 | IParam.pseudoRandomChallenge | IParam.rMac | IParam.rEnc)) !== 0) return false;
  return (i & IParam.rEnc) === 0 || (i & IParam.rMac) !== 0;
}

/** Whether a card announcing `i` supports security level `sl`. */
export function levelAllowedByI(sl: SecurityLevel, i: number): boolean {
  if ((sl & SlBit.rMac) !== 0 && (i & IParam.rMac) === 0) return false;
  if ((sl & SlBit.rEncryption) !== 0 && (i & IParam.rEnc) === 0) return false;
  return true;
}

/** S8 mode: 8-byte challenges, cryptograms and MACs; S16 mode: 16 bytes. */
export type SMode = 8 | 16;

export function modeOfI(i: number): SMode {
  return (i & IParam.s16) !== 0 ? 16 : 8;
}

/** SCP03 key version numbers (pySim `kvn_range`); KVN 00 in INITIALIZE UPDATE = "first available". */
export const SCP03_KVN_MIN = 0x30;
export const SCP03_KVN_MAX = 0x3f;

export function isScp03Kvn(kvn: number): boolean {
  return Number.isInteger(kvn) && kvn >= SCP03_KVN_MIN && kvn <= SCP03_KVN_MAX;
}

/** SCP03 identifier in the INITIALIZE UPDATE response. */
export const SCP03_ID = 0x03;

/** The GlobalPlatform instructions this module builds or parses. */
export const GpIns = {
  initializeUpdate: 0x50,
  externalAuthenticate: 0x82,
  putKey: 0xd8,
  storeData: 0xe2,
} as const;

/** The 24-bit sequence counter of the pseudo-random card challenge. */
export const SEQUENCE_COUNTER_MAX = 0xffffff;
