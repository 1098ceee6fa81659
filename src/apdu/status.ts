/**
 * ISO 7816-4 status words used by setls, and the `9Fxx` "more data" of Urien's drafts that
 * `transceive` follows. The setls applet's own status words (7000, 7001, 9001) are in
 * protocol/status.ts; `describeSw` takes their names as its second argument.
 * imports nothing.
 */
export const SW = {
  ok: 0x9000,
  /** 61xx: xx more bytes available with GET RESPONSE. */
  moreData: 0x6100,
  /** 9Fxx: xx more bytes available (draft-urien-eap-smartcard), fetched with FETCH or GET RESPONSE. */
  moreDataEap: 0x9f00,
  /** 63Cx: wrong PIN, x tries left. */
  wrongPinTries: 0x63c0,
  wrongLength: 0x6700,
  /** 6Cxx: wrong Le, xx is the right one. */
  wrongLe: 0x6c00,
  lastCommandOfChainExpected: 0x6883,
  securityNotSatisfied: 0x6982,
  authMethodBlocked: 0x6983,
  conditionsNotSatisfied: 0x6985,
  wrongData: 0x6a80,
  notFound: 0x6a82,
  notEnoughMemory: 0x6a84,
  wrongP1P2: 0x6a86,
  dataNotFound: 0x6a88,
  insNotSupported: 0x6d00,
  claNotSupported: 0x6e00,
  internalError: 0x6f00,
} as const;

const NAMES: Record<number, string> = {
  0x9000: 'OK',
  0x6700: 'wrong length',
  0x6883: 'last command of chain expected',
  0x6982: 'security status not satisfied',
  0x6983: 'authentication method blocked',
  0x6985: 'conditions of use not satisfied',
  0x6a80: 'incorrect data',
  0x6a82: 'application not found',
  0x6a84: 'not enough memory',
  0x6a86: 'incorrect P1/P2',
  0x6a88: 'referenced data not found',
  0x6d00: 'instruction not supported',
  0x6e00: 'class not supported',
  0x6f00: 'internal error',
};

/**
 * A short human name for a status word (for traces and error messages); `names` adds those of an
 * applet's own status words (protocol's SETLS_SW_NAMES).
 */
export function describeSw(sw: number, names?: Readonly<Record<number, string>>): string {
  const hi = sw >> 8;
  const lo = sw & 0xff;
  if (NAMES[sw]) return NAMES[sw]!;
  const own = names?.[sw];
  if (own !== undefined) return own;
  if (hi === 0x61 || hi === 0x9f) return `${lo || 256} more bytes`;
  if (hi === 0x6c) return `wrong Le, use ${lo}`;
  if (sw >= 0x63c0 && sw <= 0x63cf) return `wrong PIN, ${sw & 0x0f} tries left`;
  return 'unknown status';
}

export function swHex(sw: number): string {
  return sw.toString(16).padStart(4, '0').toUpperCase();
}
