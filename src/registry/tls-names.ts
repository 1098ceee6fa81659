/**
 * IANA names of TLS code points (cipher suites, groups, signature schemes, versions), for display
 * and for command-line input. Data only: imports nothing, holds no protocol logic.
 */

export const TLS_VERSION_NAMES: Readonly<Record<number, string>> = { 0x0304: 'TLSv1.3', 0x0303: 'TLSv1.2' };

export const TLS13_SUITES = {
  TLS_AES_128_GCM_SHA256: 0x1301,
  TLS_AES_256_GCM_SHA384: 0x1302,
  TLS_CHACHA20_POLY1305_SHA256: 0x1303,
  TLS_AES_128_CCM_SHA256: 0x1304,
  TLS_AES_128_CCM_8_SHA256: 0x1305,
} as const;

export const TLS12_SUITES = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 0xc02b,
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 0xc02c,
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca9,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8: 0xc0ae,
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 0xc02f,
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 0xc030,
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca8,
  TLS_PSK_WITH_AES_128_CCM_8: 0xc0a8,
  TLS_PSK_WITH_AES_128_GCM_SHA256: 0x00a8,
} as const;

export const GROUPS = { x25519: 0x001d, secp256r1: 0x0017 } as const;

export const SIGNATURE_SCHEMES = {
  ecdsa_secp256r1_sha256: 0x0403,
  rsa_pss_rsae_sha256: 0x0804,
  rsa_pss_rsae_sha384: 0x0805,
  rsa_pss_rsae_sha512: 0x0806,
  rsa_pkcs1_sha256: 0x0401,
} as const;

function nameOf(table: Readonly<Record<string, number>>, v: number): string {
  for (const [k, x] of Object.entries(table)) if (x === v) return k;
  return `0x${v.toString(16).padStart(4, '0')}`;
}

export const suiteName = (v: number): string => nameOf({ ...TLS13_SUITES, ...TLS12_SUITES }, v);
export const groupName = (v: number): string => nameOf(GROUPS, v);
export const signatureSchemeName = (v: number): string => nameOf(SIGNATURE_SCHEMES, v);
export const versionName = (v: number): string => TLS_VERSION_NAMES[v] ?? `0x${v.toString(16)}`;

/** Looks a name up in `table`; throws a clear error listing the known names. */
export function codeOf(table: Readonly<Record<string, number>>, name: string, what: string): number {
  const v = table[name];
  if (v === undefined) throw new RangeError(`unknown ${what} '${name}' (known: ${Object.keys(table).join(', ')})`);
  return v;
}
