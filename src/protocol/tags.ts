/**
 * protocol/tags: the TLV tags and their coded values in the setls applet's commands and answers
 * (docs/apdu-protocol.md §5): card info, identity, identity policy, policy, PSK, exporter, GET-CSR
 * and session info (with the alert TLV `2C`). One-byte tags, BER lengths (bytes/tlv.ts). Pure data;
 * imports nothing.
 */

/** Card info TLV tags (GET-DATA `A0 CA 00 00`); `01` is also the SELECT answer (applet version). */
export const CardInfoTag = {
  version: 0x01,
  serial: 0x02,
  identityLabel: 0x03,
  userTries: 0x04,
  operatorTries: 0x05,
  pukTries: 0x06,
  lastTime: 0x07,
  state: 0x08,
  /** Card policy: the PUT-POLICY TLVs (`30`..`39`, all present) wrapped in one TLV. */
  policy: 0x09,
  /** External PSK identity (repeated, opaque); never the key. */
  pskIdentity: 0x0a,
} as const;

/** Identity TLV tags (GET-DATA `A0 CA 01 00`). */
export const IdentityTag = {
  keyType: 0x10,
  spki: 0x11,
  certificate: 0x12,
  hostName: 0x13,
  clientAuth: 0x40,
  exportAllowed: 0x41,
  exporterLabel: 0x42,
  trustAnchor: 0x43,
} as const;

/** PUT-IDENTITY-POLICY TLV tags (`80` label, then the same tags as the identity view). */
export const IdentityPolicyTag = { label: 0x80, clientAuth: 0x40, exportAllowed: 0x41, exporterLabel: 0x42 } as const;

/** Identity policy tag `40`: client authentication (mutual TLS). */
export const ClientAuthCode = { none: 0x00, optional: 0x01, required: 0x02 } as const;

/** PUT-PSK TLV tags. */
export const PskTag = { identity: 0x50, key: 0x51, hash: 0x52 } as const;

/** PUT-PSK tag `52`: the PSK's hash. */
export const PskHashCode = { sha256: 0x00, sha384: 0x01 } as const;

/** EXPORTER TLV tags. */
export const ExporterTag = { label: 0x60, context: 0x61, length: 0x62 } as const;

/** PUT-POLICY TLV tags (also inside card info tag `09`). */
export const PolicyTag = {
  cipherSuites: 0x30,
  groups: 0x31,
  unknownSni: 0x32,
  alpn: 0x33,
  keyUpdateAfterRecords: 0x34,
  /** TLS 1.2 cipher suites in preference order (2 bytes each). */
  cipherSuites12: 0x35,
  /** Protocol versions enabled (2 bytes each: 0304, 0303). */
  versions: 0x36,
  /** Ticket lifetime in seconds (4 bytes; 0 = no tickets). */
  ticketLifetime: 0x37,
  /** TLS 1.2 session-ID cache (1 byte: 00 off, 01 on). */
  sessionIdCache: 0x38,
  /** TLS 1.3 external-PSK key exchange modes in preference order (1 byte each: see PskModeCode). */
  pskModes: 0x39,
} as const;

/** PUT-POLICY tag `32`: what the card does with an SNI that matches no identity. */
export const UnknownSniPolicy = { serveDefault: 0x00, reject: 0x01 } as const;

/** PUT-POLICY tag `39` values (RFC 8446 §4.2.9 PskKeyExchangeMode). */
export const PskModeCode = { ke: 0x00, dhe: 0x01 } as const;

/** Session info TLV tags (GET-EXPORTED-PARAMETER, and after the EAP-Success of a Response with INFO). */
export const SessionTag = {
  version: 0x20,
  cipherSuite: 0x21,
  group: 0x22,
  signatureScheme: 0x23,
  serverName: 0x24,
  alpn: 0x25,
  /** Label of the identity that served the session (UTF-8). */
  identityLabel: 0x26,
  /** Verified client certificate: subject (UTF-8, node's X509Certificate.subject format). */
  peerSubject: 0x27,
  /** Verified client certificate: one subjectAltName entry (repeated, e.g. "DNS:a.example"). */
  peerSan: 0x28,
  /** Verified client certificate: SHA-256 of the leaf DER (32 bytes). */
  peerFingerprint: 0x29,
  /** Resumption (1 byte): see ResumptionCode. */
  resumption: 0x2a,
  /** External PSK identity used (opaque). */
  pskIdentity: 0x2b,
  /** The fatal alert the card sent (level, description), after a 7001 answer to a Response with INFO. */
  alertSent: 0x2c,
} as const;

/** Session info tag `2A`. */
export const ResumptionCode = { full: 0x00, ticket: 0x01, sessionId: 0x02, psk: 0x03 } as const;

/** GET-CSR request TLV tags. */
export const CsrTag = { label: 0x80, commonName: 0x81, dnsName: 0x82, ipAddress: 0x83 } as const;
