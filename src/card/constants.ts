/**
 * Card-side constants of the setls APDU protocol (docs/apdu-protocol.md): AID, CLA/INS/P1/P2
 * values, state codes, TLV tags and the memory bounds of the emulated card.
 * imports nothing.
 */

/** Applet AID: `F0` proprietary category, "setls", version 1. */
export const APPLET_AID = Uint8Array.of(0xf0, 0x73, 0x65, 0x74, 0x6c, 0x73, 0x01);
export const APPLET_VERSION = 'setls/1';

export const CLA_ISO = 0x00;
export const CLA_PROPRIETARY = 0xa0;

/** ISO 7816-4 logical channels (docs/apdu-protocol.md §1.1). */
export const Channels = {
  /** Channels open at most, by default (channel 0 included). */
  defaultMax: 4,
  /** The most the CLA coding can address: 0–3 (first interindustry / A0–A3) and 4–19 (further / E0–EF). */
  limit: 20,
  /** MANAGE CHANNEL. */
  insManageChannel: 0x70,
  /** MANAGE CHANNEL P1: open (00) / close (80). */
  open: 0x00,
  close: 0x80,
  /** Logical channel not supported / not open. */
  swChannelNotSupported: 0x6881,
  /** Function not supported (no channel left). */
  swNoChannelLeft: 0x6a81,
} as const;

/** A decoded class byte: interindustry (`00`) or proprietary (`A0`) class, and the logical channel. */
export interface DecodedCla {
  readonly kind: 'iso' | 'proprietary';
  readonly channel: number;
}

/**
 * Decodes the channel number from CLA: `00`–`03` / `A0`–`A3` → channels 0–3 (low 2 bits),
 * `40`–`4F` / `E0`–`EF` → channels 4–19 (low 4 bits + 4). Anything else (secure messaging bits,
 * ISO command chaining bit, other classes) → undefined.
 */
export function decodeCla(cla: number): DecodedCla | undefined {
  if ((cla & 0xfc) === 0x00) return { kind: 'iso', channel: cla & 0x03 };
  if ((cla & 0xf0) === 0x40) return { kind: 'iso', channel: 4 + (cla & 0x0f) };
  if ((cla & 0xfc) === 0xa0) return { kind: 'proprietary', channel: cla & 0x03 };
  if ((cla & 0xf0) === 0xe0) return { kind: 'proprietary', channel: 4 + (cla & 0x0f) };
  return undefined;
}

/** The CLA of a class on a channel (0–19). */
export function encodeCla(kind: 'iso' | 'proprietary', channel: number): number {
  if (!Number.isInteger(channel) || channel < 0 || channel >= Channels.limit) throw new RangeError(`logical channel must be 0..${Channels.limit - 1}`);
  if (channel < 4) return (kind === 'iso' ? 0x00 : 0xa0) | channel;
  return (kind === 'iso' ? 0x40 : 0xe0) | (channel - 4);
}

export const Ins = {
  select: 0xa4,
  getResponse: 0xc0,
  fetch: 0x12,
  verifyPin: 0x20,
  changePin: 0x24,
  unblockPin: 0x2c,
  setIdentity: 0x16,
  state: 0x19,
  processEap: 0x80,
  getSessionKey: 0xa6,
  getExportedParameter: 0x86,
  getData: 0xca,
  generateKey: 0x46,
  getCsr: 0x4a,
  putChain: 0xda,
  putPolicy: 0xdc,
  putIdentityPolicy: 0xde,
  putTrustAnchor: 0xd2,
  putPsk: 0xd4,
  exportSession: 0xa8,
  exporter: 0xaa,
  /** SET-CLOCK (operator PIN): the card's time floor (docs/apdu-protocol.md §2, clock.ts). */
  setClock: 0xd6,
} as const;

/** Commands whose P1 bit 0 is the "More" bit of command segmentation (S1 §9.2). */
export const CHAINABLE_INS: ReadonlySet<number> = new Set([Ins.processEap, Ins.getCsr, Ins.putChain, Ins.putTrustAnchor]);

export const PinRef = { user: 0x00, operator: 0x01 } as const;

/** GET-STATE values. */
export const CardStateCode = {
  identityNotSet: 0x01,
  authenticating: 0x02,
  authenticated: 0x03,
  notAuthenticated: 0x04,
  closed: 0x05,
} as const;

/** GENERATE-KEY P1 and identity TLV `10` values. */
export const KeyType = { p256: 0x01, rsa2048: 0x02 } as const;

/** Card info TLV tags (GET-DATA `A0 CA 00 00`). */
export const CardInfoTag = {
  version: 0x01,
  serial: 0x02,
  identityLabel: 0x03,
  userTries: 0x04,
  operatorTries: 0x05,
  pukTries: 0x06,
  lastTime: 0x07,
  state: 0x08,
  /** Card policy: the PUT-POLICY TLVs (`30`..`34`, all present) wrapped in one TLV. */
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

/** EXPORTER TLV tags. */
export const ExporterTag = { label: 0x60, context: 0x61, length: 0x62 } as const;

/**
 * RFC 5705 §4 labels reserved for TLS itself (plus RFC 7627's "extended master secret"): EXPORTER
 * refuses them (6985) whatever the identity policy says.
 */
export const RESERVED_EXPORTER_LABELS: readonly string[] = ['client finished', 'server finished', 'master secret', 'key expansion', 'extended master secret'];

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
  pskModes: 0x39,
} as const;

/** PUT-POLICY tag `32`: what the card does with an SNI that matches no identity. */
export const UnknownSniPolicy = { serveDefault: 0x00, reject: 0x01 } as const;

/** Session info TLV tags (GET-EXPORTED-PARAMETER). */
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

export const Limits = {
  /** Largest command chain (sum of segment data). */
  maxChain: 70_000,
  /** Largest reassembled EAP-TLS message. */
  maxEapMessage: 70_000,
  /** Largest TLS payload per card EAP-TLS fragment. */
  maxFragment: 16_384,
  /** Largest plaintext per ENCRYPT. */
  maxPlaintext: 16_384,
  maxIdentities: 8,
  maxLabel: 64,
  maxCommonName: 64,
  maxDnsName: 253,
  maxSans: 16,
  maxChainCerts: 8,
  /** Host names (SAN DNS names) an identity answers to; more are ignored. */
  maxHostNames: 32,
  /** PUT-POLICY: at most this many ALPN protocols. */
  maxAlpnProtocols: 8,
  /** Largest certificate chain stored for one identity (sum of DER sizes). */
  maxChainBytes: 60_000,
  /**
   * A host time more than this many seconds below the card's time floor is a rollback; also how far
   * one accepted time may move the floor beyond the card's own elapsed seconds (clock.ts).
   */
  timeRollbackSeconds: 300,
  /** How far host times may move the floor in one power-on beyond the card's own elapsed seconds (clock.ts). */
  timeAdvancePerPowerOn: 3600,
  /** The time floor is written to the store when it advanced by more than this since the last write. */
  timePersistSeconds: 3600,
  /** Trust anchors (CA certificates for client authentication) per identity. */
  maxTrustAnchors: 8,
  /** Largest trust anchor certificate (DER bytes). */
  maxTrustAnchorBytes: 16_384,
  /** Allowed exporter labels per identity, and their size (bytes). */
  maxExporterLabels: 16,
  maxExporterLabel: 249,
  /** External PSKs held by the card; identity and key sizes. */
  maxPsks: 16,
  maxPskIdentity: 128,
  minPskKey: 16,
  maxPskKey: 64,
  /** TLS 1.2 session-ID cache entries (card RAM, least recently used evicted). */
  sessionCacheEntries: 64,
  /** EXPORTER: output length 1..1024, context at most 4096 bytes. */
  maxExporterLength: 1024,
  maxExporterContext: 4096,
  /** Largest ticket lifetime (RFC 8446 §4.6.1: 7 days). */
  maxTicketLifetime: 604_800,
} as const;

export const PinPolicy = { userTries: 3, operatorTries: 3, pukTries: 10, padded: 8, minDigits: 4, maxDigits: 8 } as const;

/** RFC 9190 §2.3: MSK ‖ EMSK = TLS-Exporter("EXPORTER_EAP_TLS_Key_Material", 0x0D, 128). */
export const EAP_TLS_EXPORTER_LABEL = 'EXPORTER_EAP_TLS_Key_Material';
export const EAP_TLS_EXPORTER_CONTEXT = Uint8Array.of(0x0d);
