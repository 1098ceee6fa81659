/**
 * TLS 1.3 code points used by the engine (RFC 8446 §4, IANA TLS registries).
 * imports nothing.
 */

/** TLS ProtocolVersion values. */
export const ProtocolVersion = {
  tls12: 0x0303,
  tls13: 0x0304,
} as const;

/** Cipher suites (RFC 8446 §B.4). Only the ones in the suite table are negotiated. */
export const CipherSuite = {
  TLS_AES_128_GCM_SHA256: 0x1301,
  TLS_AES_256_GCM_SHA384: 0x1302,
  TLS_CHACHA20_POLY1305_SHA256: 0x1303,
  TLS_AES_128_CCM_SHA256: 0x1304,
  TLS_AES_128_CCM_8_SHA256: 0x1305,
} as const;
export type CipherSuite = (typeof CipherSuite)[keyof typeof CipherSuite];

/** Named groups (RFC 8446 §4.2.7). Only the ones in the group table are negotiated. */
export const NamedGroup = {
  secp256r1: 0x0017,
  secp384r1: 0x0018,
  secp521r1: 0x0019,
  x25519: 0x001d,
  x448: 0x001e,
  ffdhe2048: 0x0100,
  ffdhe3072: 0x0101,
  ffdhe4096: 0x0102,
  ffdhe6144: 0x0103,
  ffdhe8192: 0x0104,
} as const;
export type NamedGroup = (typeof NamedGroup)[keyof typeof NamedGroup];

/** Signature schemes (RFC 8446 §4.2.3). */
export const SignatureScheme = {
  rsa_pkcs1_sha256: 0x0401,
  rsa_pkcs1_sha384: 0x0501,
  rsa_pkcs1_sha512: 0x0601,
  ecdsa_secp256r1_sha256: 0x0403,
  ecdsa_secp384r1_sha384: 0x0503,
  ecdsa_secp521r1_sha512: 0x0603,
  rsa_pss_rsae_sha256: 0x0804,
  rsa_pss_rsae_sha384: 0x0805,
  rsa_pss_rsae_sha512: 0x0806,
  ed25519: 0x0807,
  ed448: 0x0808,
  rsa_pss_pss_sha256: 0x0809,
  rsa_pss_pss_sha384: 0x080a,
  rsa_pss_pss_sha512: 0x080b,
} as const;
export type SignatureScheme = (typeof SignatureScheme)[keyof typeof SignatureScheme];

/** Schemes allowed in a TLS 1.3 CertificateVerify (RFC 8446 §4.2.3: no PKCS#1 v1.5, no SHA-1). */
export const TLS13_CERTIFICATE_VERIFY_SCHEMES: readonly number[] = [
  SignatureScheme.ecdsa_secp256r1_sha256,
  SignatureScheme.ecdsa_secp384r1_sha384,
  SignatureScheme.ecdsa_secp521r1_sha512,
  SignatureScheme.rsa_pss_rsae_sha256,
  SignatureScheme.rsa_pss_rsae_sha384,
  SignatureScheme.rsa_pss_rsae_sha512,
  SignatureScheme.ed25519,
  SignatureScheme.ed448,
  SignatureScheme.rsa_pss_pss_sha256,
  SignatureScheme.rsa_pss_pss_sha384,
  SignatureScheme.rsa_pss_pss_sha512,
];

/** HandshakeType (RFC 8446 §4). */
export const HandshakeType = {
  clientHello: 1,
  serverHello: 2,
  newSessionTicket: 4,
  endOfEarlyData: 5,
  encryptedExtensions: 8,
  certificate: 11,
  serverKeyExchange: 12, // TLS 1.2
  certificateRequest: 13,
  serverHelloDone: 14, // TLS 1.2
  certificateVerify: 15,
  clientKeyExchange: 16, // TLS 1.2
  finished: 20,
  keyUpdate: 24,
  messageHash: 254,
} as const;

/** ExtensionType (RFC 8446 §4.2 and the RFCs named). */
export const ExtensionType = {
  serverName: 0, // RFC 6066
  maxFragmentLength: 1, // RFC 6066 §4
  supportedGroups: 10,
  ecPointFormats: 11, // RFC 8422 §5.1.2 (TLS 1.2)
  signatureAlgorithms: 13,
  alpn: 16, // RFC 7301
  recordSizeLimit: 28, // RFC 8449
  extendedMasterSecret: 23, // RFC 7627 (TLS 1.2)
  sessionTicket: 35, // RFC 5077 (TLS 1.2)
  preSharedKey: 41,
  earlyData: 42,
  supportedVersions: 43,
  cookie: 44,
  pskKeyExchangeModes: 45,
  signatureAlgorithmsCert: 50,
  keyShare: 51,
  renegotiationInfo: 0xff01, // RFC 5746 (TLS 1.2)
} as const;

/** KeyUpdateRequest (RFC 8446 §4.6.3). */
export const KeyUpdateRequest = {
  updateNotRequested: 0,
  updateRequested: 1,
} as const;

/** ServerHello.random of a HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3). */
export const HELLO_RETRY_REQUEST_RANDOM_HEX = 'cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c';

/** The record_size_limit this server announces (RFC 8449): 2^14 + 1 for TLS 1.3. */
export const OUR_RECORD_SIZE_LIMIT = 0x4001;
/** Largest TLSPlaintext.fragment / TLSInnerPlaintext.content (2^14). */
export const MAX_PLAINTEXT = 16384;
/** Largest handshake message body we buffer (bounds memory on the card). */
export const MAX_HANDSHAKE_MESSAGE = 65536;
