/**
 * IANA names of TLS code points (cipher suites, groups, signature schemes, versions, alerts), for display
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

/** Alert descriptions (IANA "TLS Alerts" registry; RFC 8446 §6, RFC 5246 §7.2, RFC 7507, RFC 8446 §6.2). */
export const ALERT_DESCRIPTIONS = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  record_overflow: 22,
  handshake_failure: 40,
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_revoked: 44,
  certificate_expired: 45,
  certificate_unknown: 46,
  illegal_parameter: 47,
  unknown_ca: 48,
  access_denied: 49,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  insufficient_security: 71,
  internal_error: 80,
  inappropriate_fallback: 86,
  user_canceled: 90,
  no_renegotiation: 100,
  missing_extension: 109,
  unsupported_extension: 110,
  unrecognized_name: 112,
  bad_certificate_status_response: 113,
  unknown_psk_identity: 115,
  certificate_required: 116,
  no_application_protocol: 120,
} as const;

function nameOf(table: Readonly<Record<string, number>>, v: number): string {
  for (const [k, x] of Object.entries(table)) if (x === v) return k;
  return `0x${v.toString(16).padStart(4, '0')}`;
}

export const suiteName = (v: number): string => nameOf({ ...TLS13_SUITES, ...TLS12_SUITES }, v);
export const groupName = (v: number): string => nameOf(GROUPS, v);
export const signatureSchemeName = (v: number): string => nameOf(SIGNATURE_SCHEMES, v);
export const versionName = (v: number): string => TLS_VERSION_NAMES[v] ?? `0x${v.toString(16)}`;
/** The IANA name of an alert description (e.g. 51 → 'decrypt_error'), or `alert_<n>` for an unassigned one. */
export function alertName(v: number): string {
  for (const [k, x] of Object.entries(ALERT_DESCRIPTIONS)) if (x === v) return k;
  return `alert_${v}`;
}

/** Looks a name up in `table`; throws a clear error listing the known names. */
export function codeOf(table: Readonly<Record<string, number>>, name: string, what: string): number {
  const v = table[name];
  if (v === undefined) throw new RangeError(`unknown ${what} '${name}' (known: ${Object.keys(table).join(', ')})`);
  return v;
}
