/**
 * The emulated card's own bounds and rules (what the protocol leaves to the card): memory limits,
 * PIN retry counts, the channels it keeps open by default, the exporter labels it refuses and
 * RFC 9190's EAP-TLS key derivation. The protocol both ends speak (AID, CLA/INS/P1/P2 values, tags,
 * status words) is in src/protocol. imports protocol/.
 */
import { MAX_COMMAND_CHAIN, PinFormat } from '../protocol/index.js';

/** Logical channels the card keeps open at most, by default (channel 0 included; 1–20 configurable). */
export const DEFAULT_MAX_CHANNELS = 4;

/**
 * RFC 5705 §4 labels reserved for TLS itself (plus RFC 7627's "extended master secret"): EXPORTER
 * refuses them (6985) whatever the identity policy says.
 */
export const RESERVED_EXPORTER_LABELS: readonly string[] = ['client finished', 'server finished', 'master secret', 'key expansion', 'extended master secret'];

export const Limits = {
  /** Largest command chain (sum of segment data). */
  maxChain: MAX_COMMAND_CHAIN,
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

/** PIN/PUK retry counts, and the padded format (protocol/pin.ts). */
export const PinPolicy = { userTries: 3, operatorTries: 3, pukTries: 10, padded: PinFormat.padded, minDigits: PinFormat.minDigits, maxDigits: PinFormat.maxDigits } as const;

/** RFC 9190 §2.3: MSK ‖ EMSK = TLS-Exporter("EXPORTER_EAP_TLS_Key_Material", 0x0D, 128). */
export const EAP_TLS_EXPORTER_LABEL = 'EXPORTER_EAP_TLS_Key_Material';
export const EAP_TLS_EXPORTER_CONTEXT = Uint8Array.of(0x0d);
