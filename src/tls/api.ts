/**
 * The contract between the card applet and the sans-I/O TLS server engine.
 * The engine lives in src/tls/ (wire/, record/, keyschedule/, server/, crypto.ts) and knows
 * nothing of APDUs, EAP, sockets or timers: bytes in, effects out.
 * imports bytes/ only.
 */

/** TLS ContentType values (RFC 8446 §5.1). */
export const ContentType = {
  changeCipherSpec: 20,
  alert: 21,
  handshake: 22,
  applicationData: 23,
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

/** Alert descriptions used by the engine (RFC 8446 §6). */
export const AlertDescription = {
  closeNotify: 0,
  unexpectedMessage: 10,
  badRecordMac: 20,
  recordOverflow: 22,
  handshakeFailure: 40,
  badCertificate: 42,
  unsupportedCertificate: 43,
  certificateRevoked: 44,
  certificateExpired: 45,
  certificateUnknown: 46,
  illegalParameter: 47,
  unknownCa: 48,
  accessDenied: 49,
  decodeError: 50,
  decryptError: 51,
  protocolVersion: 70,
  insufficientSecurity: 71,
  inappropriateFallback: 86, // RFC 7507
  internalError: 80,
  userCanceled: 90,
  noRenegotiation: 100, // TLS 1.2 (RFC 5246 §7.2.2)
  missingExtension: 109,
  unsupportedExtension: 110,
  unrecognizedName: 112,
  unknownPskIdentity: 115, // RFC 4279 §2
  certificateRequired: 116,
  noApplicationProtocol: 120,
} as const;
export type AlertDescription = (typeof AlertDescription)[keyof typeof AlertDescription];

/** The engine's connection states, as seen from outside. */
export type TlsState = 'handshaking' | 'connected' | 'closed' | 'failed';

/**
 * The randomness, clock and ephemeral key exchange the engine uses. The card passes its own RNG
 * and the time the host supplied; tests inject fixed values (RFC 8448).
 */
export interface TlsEntropy {
  /** n random bytes (ServerHello.random, key shares, padding, ticket nonces). */
  random(n: number): Uint8Array;
  /** Milliseconds since the Unix epoch, as last supplied by the host (the card has no clock). */
  now(): number;
  /**
   * Optional override of ephemeral key generation (tests only): returns the private key for `group`
   * (x25519: 32 raw bytes). When absent the engine generates a fresh key with node:crypto.
   */
  ephemeralPrivateKey?(group: number): Uint8Array;
}

/** A server identity held by the card: a certificate chain and a signer for its private key. */
export interface TlsIdentity {
  /** DER certificates, leaf first. */
  readonly certificateChain: readonly Uint8Array[];
  /** TLS SignatureScheme values this key can produce (e.g. 0x0403 ecdsa_secp256r1_sha256). */
  readonly signatureSchemes: readonly number[];
  /** Signs `data` (the full to-be-signed content, not a digest) with `scheme`. The key never leaves the card. */
  sign(scheme: number, data: Uint8Array): Uint8Array;
  /**
   * Client authentication for sessions of this identity (both versions): 'none' (default) sends no
   * CertificateRequest; 'optional' accepts an empty client Certificate; 'required' answers an empty
   * one with certificate_required (TLS 1.3) / handshake_failure (TLS 1.2).
   */
  readonly clientAuth?: 'none' | 'optional' | 'required';
  /** DER CA certificates the client's chain must end at (used when clientAuth ≠ 'none'). */
  readonly trustAnchors?: readonly Uint8Array[];
  /**
   * A deny-list check of a client chain that verified (DER, leaf first): true answers the handshake
   * with certificate_revoked (RFC 8446 §6.2). Absent: nothing is revoked.
   */
  readonly isRevoked?: (chain: readonly Uint8Array[]) => boolean;
}

/** The verified client identity (mutual TLS), reported to the host after the handshake. */
export interface PeerIdentity {
  /** Subject DN of the client's leaf certificate (node's X509Certificate.subject format). */
  readonly subject: string;
  /** subjectAltName entries as node prints them, e.g. ["DNS:a.example", "IP Address:10.0.0.1"]. */
  readonly subjectAltNames: readonly string[];
  /** SHA-256 of the leaf certificate DER. */
  readonly fingerprint256: Uint8Array;
  /** The leaf certificate DER. */
  readonly certificate: Uint8Array;
}

/** An external PSK held by the card (TLS 1.3 psk_ke/psk_dhe_ke; TLS 1.2 PSK suites). */
export interface TlsPsk {
  readonly identity: Uint8Array;
  /** The key; the engine never copies it out. */
  readonly key: Uint8Array;
  /** Hash bound to the PSK in TLS 1.3 (RFC 8446 §4.2.11): 'sha256' (default) or 'sha384'. */
  readonly hash?: 'sha256' | 'sha384';
}

/** A key that seals session tickets (TLS 1.3 NewSessionTicket, TLS 1.2 RFC 5077). */
export interface TicketKey {
  /**
   * 4-byte key identifier written in clear at the start of every ticket, so a host (or a pool of
   * cards) can route a resumption to a card that can open it without parsing TLS.
   */
  readonly id: Uint8Array;
  /** 32-byte AES-256-GCM key. */
  readonly key: Uint8Array;
}

/**
 * The traffic keys of one session, handed to the host by an allowed session export (TLS-Tandem).
 * Never contains the private key, the master secret or handshake secrets.
 */
export interface ExportedSession {
  readonly version: number;
  readonly cipherSuite: number;
  /** TLS 1.3: the current application traffic secrets (so the host can do KeyUpdate); TLS 1.2: empty. */
  readonly clientTrafficSecret: Uint8Array;
  readonly serverTrafficSecret: Uint8Array;
  /** AEAD keys and IVs (TLS 1.3: derived from the secrets above; TLS 1.2: key_block parts, 4-byte implicit IVs for GCM/CCM, 12 for ChaCha). */
  readonly clientKey: Uint8Array;
  readonly clientIv: Uint8Array;
  readonly serverKey: Uint8Array;
  readonly serverIv: Uint8Array;
  /** Next sequence numbers: of the next record the server reads / writes. */
  readonly readSequence: bigint;
  readonly writeSequence: bigint;
}

export interface TlsServerConfig {
  readonly entropy: TlsEntropy;
  /**
   * Picks the identity for a ClientHello: `serverName` is the SNI host name or undefined.
   * Returns undefined when no identity fits (the engine then sends unrecognized_name). May throw a
   * SetlsError ERR_TLS_ACCESS_DENIED (an identity that exists but may not serve: access_denied).
   */
  selectIdentity(serverName: string | undefined): TlsIdentity | undefined;
  /** ALPN protocols the server accepts, in preference order; empty = ALPN not negotiated. */
  readonly alpnProtocols?: readonly string[];
  /**
   * Cipher suites in server preference order; server preference wins over the client's order.
   * Supported: 0x1301 TLS_AES_128_GCM_SHA256, 0x1302 TLS_AES_256_GCM_SHA384, 0x1303
   * TLS_CHACHA20_POLY1305_SHA256, 0x1304 TLS_AES_128_CCM_SHA256, 0x1305 TLS_AES_128_CCM_8_SHA256.
   * Default: [0x1301, 0x1302, 0x1303, 0x1304] — CCM_8 (8-byte tag, an IoT suite) only when listed here.
   * Unknown code points are ignored.
   */
  readonly cipherSuites?: readonly number[];
  /**
   * Named groups in server preference order. Supported: 0x001d x25519, 0x0017 secp256r1.
   * Default: [x25519, secp256r1]. When the client supports one of these but sent no key share for
   * any, the engine answers with a HelloRetryRequest (stateless cookie, see `cookieKey`).
   */
  readonly groups?: readonly number[];
  /**
   * Named groups announced in EncryptedExtensions.supported_groups (RFC 8446 §4.2.7: the server may
   * tell the client its preferred groups for later connections). Sent verbatim; absent or empty = not sent.
   */
  readonly advertisedGroups?: readonly number[];
  /**
   * 32-byte key sealing the HelloRetryRequest cookie (AES-256-GCM; the cookie carries Hash(ClientHello1),
   * suite and group so no state is kept across the retry). Copied at creation. Default: 32 bytes drawn
   * from `entropy` on the first HelloRetryRequest, held by this engine instance and wiped by dispose().
   */
  readonly cookieKey?: Uint8Array;
  /**
   * The engine sends its own KeyUpdate (RFC 8446 §4.6.3) once its write key has protected this many
   * records, and asks the client (update_requested) once the client's key has protected this many.
   * Default 2^23 (half the AES-GCM/CCM hard limit of 2^24 records per key, RFC 8446 §5.5); clamped to
   * the suite's hard limit. Small values are for tests.
   */
  readonly keyUpdateAfterRecords?: number;
  /**
   * record_size_limit (RFC 8449) the engine announces when the client sends the extension, and then
   * enforces on protected records it receives (TLSInnerPlaintext larger → record_overflow).
   * 64..16385; default 16385 (2^14 + 1).
   */
  readonly recordSizeLimit?: number;
  /**
   * Each handshake message in its own record(s) instead of coalescing a flight (TLS 1.3). Default
   * false. The TLS-SE applet sets it: Urien's applet sends ServerHello, EncryptedExtensions and
   * Finished as separate records (draft-urien-tls-se Fig. 5).
   */
  readonly handshakeRecordPerMessage?: boolean;
  /**
   * Send the middlebox-compatibility change_cipher_spec (RFC 8446 §D.4) after ServerHello / HRR when
   * the client's legacy_session_id is not empty. Default true; false never sends one (a server may
   * omit it; the TLS-SE applet does, like Urien's).
   */
  readonly middleboxCompatibilityCcs?: boolean;
  /** Protocol versions enabled: 0x0304 (TLS 1.3), 0x0303 (TLS 1.2). Default both once 1.2 exists. */
  readonly versions?: readonly number[];
  /** TLS 1.2 cipher suites in server preference order (default: the engine's AEAD ECDHE suites; PSK suites only when listed). */
  readonly cipherSuites12?: readonly number[];
  /**
   * TLS 1.3 PSK key-exchange modes the server accepts, in preference order (RFC 8446 §4.2.9 code
   * points: 1 psk_dhe_ke, 0 psk_ke). Default [1, 0]. Tickets always need psk_dhe_ke.
   */
  readonly pskKeyExchangeModes?: readonly number[];
  /** Looks up an external PSK by identity; undefined = unknown identity. */
  findPsk?(identity: Uint8Array): TlsPsk | undefined;
  /** The current ticket key (issues tickets; absent = no tickets) and older keys still accepted. */
  readonly ticketKeys?: { readonly current: TicketKey; readonly previous?: readonly TicketKey[] };
  /** Ticket lifetime in seconds (default 7200, at most 604800). */
  readonly ticketLifetimeSeconds?: number;
  /** NewSessionTicket messages sent after a TLS 1.3 handshake (default 1 when ticketKeys is set). */
  readonly ticketCount?: number;
  /** TLS 1.2 session-ID cache (in card RAM); absent = no session IDs. Holds secrets: the card owns it. */
  readonly sessionCache?: {
    get(id: Uint8Array): Uint8Array | undefined;
    set(id: Uint8Array, state: Uint8Array): void;
    delete(id: Uint8Array): void;
  };
}

/** What one call into the engine produced. All arrays are fresh copies owned by the caller. */
export interface TlsOutput {
  /**
   * Bytes to send to the client: zero or more complete TLS records, concatenated. Send them before any
   * record a later `encrypt()` returns (they may end with a KeyUpdate that changes the write key).
   */
  readonly records: Uint8Array;
  /** Application data received from the client, in order. */
  readonly plaintext: readonly Uint8Array[];
  /** True in the call where the handshake completed (client Finished verified). */
  readonly handshakeComplete: boolean;
  /** True when the client sent close_notify (the engine's own close_notify is in `records`). */
  readonly peerClosed: boolean;
  /** Set when the connection failed in this call: the alert sent (in `records`) or received. */
  readonly alert?: { readonly description: number; readonly sentByUs: boolean };
}

/** Facts about a negotiated session the card may report to the host (never secrets). */
export interface TlsSessionInfo {
  readonly version: number;
  readonly cipherSuite: number;
  readonly group: number;
  readonly signatureScheme: number;
  readonly serverName?: string;
  readonly alpn?: string;
  /** Set when the client authenticated with a certificate that verified against the trust anchors. */
  readonly peer?: PeerIdentity;
  /** 'full', 'ticket' (resumed from a ticket), 'session-id' (TLS 1.2 cache) or 'psk' (external PSK). */
  readonly resumption?: 'full' | 'ticket' | 'session-id' | 'psk';
  /** The external PSK identity used, when resumption === 'psk'. */
  readonly pskIdentity?: Uint8Array;
}

/** One server-side TLS connection. Create a fresh one per session. */
export interface TlsServerConnection {
  readonly state: TlsState;
  readonly info: TlsSessionInfo | undefined;
  /** Feeds bytes received from the client (any split: partial or several records). */
  receive(data: Uint8Array): TlsOutput;
  /**
   * Protects application data (type 23) or an alert (type 21) for the client after the handshake.
   * Splits plaintext longer than the record limit into several records. Throws ERR_TLS_STATE before
   * the handshake completes or after close/failure.
   */
  encrypt(contentType: number, plaintext: Uint8Array): Uint8Array;
  /** RFC 8446 §7.5 exporter (used for the EAP-TLS MSK, RFC 9190). */
  /** `context` undefined = RFC 5705's no-context form (TLS 1.2); TLS 1.3 treats it as empty (§7.5). */
  exportKeyingMaterial(label: string, context: Uint8Array | undefined, length: number): Uint8Array;
  /** Wipes every secret the connection holds; the connection becomes 'closed'. */
  dispose(): void;
  /**
   * Sends a KeyUpdate now (RFC 8446 §4.6.3) and switches to the next write key; returns the record
   * (protected under the old key). `updateRequested` asks the client to update its key too. Throws
   * ERR_TLS_STATE before the handshake completes or after close/failure. Optional for other engines.
   */
  requestKeyUpdate?(updateRequested: boolean): Uint8Array;
  /**
   * TLS-Tandem: hands over the traffic keys and sequence numbers of this connected session and wipes
   * every secret the engine holds (it becomes 'closed'). Throws ERR_TLS_STATE unless 'connected'.
   */
  exportSession?(): ExportedSession;
}
