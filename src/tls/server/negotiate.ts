/**
 * Pure negotiation decisions on a parsed ClientHello (RFC 8446 §4.1.1, §4.2, §9.2): version, suite,
 * group/key share, signature scheme, ALPN, SNI, record_size_limit. Throws SetlsError with the code
 * that maps to the right alert.
 * imports bytes/ and tls/ siblings only.
 */
import { ExtensionType, ProtocolVersion, TLS13_CERTIFICATE_VERIFY_SCHEMES } from '../constants.js';
import { DEFAULT_CIPHER_SUITES, DEFAULT_GROUPS, GROUPS, SUITES, type GroupParams, type SuiteParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import type { ClientHello } from '../wire/clientHello.js';
import {
  parseAlpn,
  parseKeyShareClientHello,
  parseMaxFragmentLength,
  parseRecordSizeLimit,
  parseServerName,
  parseSignatureAlgorithms,
  parseSupportedGroups,
  parseSupportedVersionsClientHello,
  type KeyShareEntry,
} from '../wire/extensions.js';

export function findExtension(ch: ClientHello, type: number): Uint8Array | undefined {
  return ch.extensions.find((e) => e.type === type)?.data;
}

/** TLS_FALLBACK_SCSV (RFC 7507 §6), a cipher suite value that signals a downgraded retry. */
export const TLS_FALLBACK_SCSV = 0x5600;

/**
 * RFC 8446 Appendix D.5 (and D.2 for a TLS 1.2 server): a ClientHello.legacy_version of 0x0300
 * (SSL 3.0) or lower is protocol_version, whatever supported_versions offers.
 */
function checkLegacyVersion(ch: ClientHello): void {
  if (ch.legacyVersion <= 0x0300) {
    throw tlsError('ERR_TLS_PROTOCOL_VERSION', `ClientHello.legacy_version 0x${ch.legacyVersion.toString(16).padStart(4, '0')} (SSL 3.0 or older)`);
  }
}

/** TLS 1.3 or protocol_version (TLS 1.2 fallback slots in here later). */
export function negotiateVersion(ch: ClientHello): number {
  checkLegacyVersion(ch);
  const sv = findExtension(ch, ExtensionType.supportedVersions);
  if (!sv) throw tlsError('ERR_TLS_PROTOCOL_VERSION', 'client does not offer TLS 1.3 (no supported_versions)');
  if (!parseSupportedVersionsClientHello(sv).includes(ProtocolVersion.tls13)) {
    throw tlsError('ERR_TLS_PROTOCOL_VERSION', 'client does not offer TLS 1.3');
  }
  return ProtocolVersion.tls13;
}

/**
 * Version dispatch (RFC 8446 §4.2.1, RFC 5246 §E.1) over `versions` (default TLS 1.3 and 1.2):
 * legacy_version 0x0300 or lower → protocol_version (RFC 8446 D.5); supported_versions with 0x0304
 * and TLS 1.3 enabled → 0x0304; otherwise supported_versions with 0x0303, or (no supported_versions)
 * legacy_version ≥ 0x0303, with TLS 1.2 enabled → 0x0303; otherwise protocol_version. Then RFC 7507
 * §3: TLS_FALLBACK_SCSV from a client whose highest version is below our highest enabled one →
 * inappropriate_fallback (after the version check: protocol_version wins when nothing is in common).
 */
export function selectVersion(ch: ClientHello, versions: readonly number[] | undefined): number {
  checkLegacyVersion(ch);
  const enabled = versions ?? [ProtocolVersion.tls13, ProtocolVersion.tls12];
  const sv = findExtension(ch, ExtensionType.supportedVersions);
  const offered = sv ? parseSupportedVersionsClientHello(sv) : undefined;
  let selected: number;
  if (enabled.includes(ProtocolVersion.tls13) && offered?.includes(ProtocolVersion.tls13)) selected = ProtocolVersion.tls13;
  else {
    const offers12 = offered ? offered.includes(ProtocolVersion.tls12) : ch.legacyVersion >= ProtocolVersion.tls12;
    if (!(enabled.includes(ProtocolVersion.tls12) && offers12)) throw tlsError('ERR_TLS_PROTOCOL_VERSION', 'no protocol version in common');
    selected = ProtocolVersion.tls12;
  }
  if (ch.cipherSuites.includes(TLS_FALLBACK_SCSV)) {
    // The client's highest version: among the TLS versions it lists (GREASE and drafts ignored), or legacy_version.
    const clientMax = offered ? Math.max(0, ...offered.filter((v) => v >= 0x0300 && v <= ProtocolVersion.tls13)) : ch.legacyVersion;
    const serverMax = Math.max(...enabled.filter((v) => v === ProtocolVersion.tls13 || v === ProtocolVersion.tls12));
    if (clientMax < serverMax) {
      throw tlsError('ERR_TLS_INAPPROPRIATE_FALLBACK', `TLS_FALLBACK_SCSV with version 0x${clientMax.toString(16)} below ours 0x${serverMax.toString(16)}`);
    }
  }
  return selected;
}

export function checkCompression(ch: ClientHello): void {
  if (ch.compressionMethods.length !== 1 || ch.compressionMethods[0] !== 0) {
    throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'legacy_compression_methods must be exactly [null]');
  }
}

/** Server preference wins: the first of `serverPrefs` (default DEFAULT_CIPHER_SUITES) the client offers. */
export function negotiateSuite(ch: ClientHello, serverPrefs: readonly number[] | undefined): SuiteParams {
  const prefs = serverPrefs ?? DEFAULT_CIPHER_SUITES;
  for (const id of prefs) {
    const s = SUITES.get(id);
    if (s && ch.cipherSuites.includes(id)) return s;
  }
  throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'no cipher suite in common');
}

/** Either a usable key share, or the group to ask for in a HelloRetryRequest. */
export type GroupChoice =
  | { readonly kind: 'share'; readonly group: GroupParams; readonly share: KeyShareEntry }
  | { readonly kind: 'retry'; readonly group: GroupParams };

function serverGroups(serverPrefs: readonly number[] | undefined): number[] {
  return (serverPrefs ?? DEFAULT_GROUPS).filter((g) => GROUPS.has(g));
}

function clientGroupsAndShares(ch: ClientHello): { groups: number[]; shares: KeyShareEntry[] } {
  const sg = findExtension(ch, ExtensionType.supportedGroups);
  const ks = findExtension(ch, ExtensionType.keyShare);
  if (!sg || !ks) throw tlsError('ERR_TLS_MISSING_EXTENSION', 'supported_groups and key_share are both required');
  const groups = parseSupportedGroups(sg);
  const shares = parseKeyShareClientHello(ks);
  for (const s of shares) {
    if (!groups.includes(s.group)) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `key share for unoffered group ${s.group}`);
  }
  return { groups, shares };
}

function checkShareLength(group: GroupParams, share: KeyShareEntry): void {
  if (share.keyExchange.length !== group.keyExchangeLength) {
    throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `key share for group ${group.id} has bad length`);
  }
}

/**
 * RFC 8446 §4.2.8 / §4.1.4: the server-preferred group among the client's key shares; else, when the
 * client supports a server group but sent no share for it, a HelloRetryRequest for the server-preferred
 * such group; else handshake_failure (no common group at all).
 */
export function negotiateGroup(ch: ClientHello, serverPrefs: readonly number[] | undefined): GroupChoice {
  const { groups, shares } = clientGroupsAndShares(ch);
  const prefs = serverGroups(serverPrefs);
  for (const g of prefs) {
    const share = shares.find((s) => s.group === g);
    if (!share) continue;
    const group = GROUPS.get(g)!;
    checkShareLength(group, share);
    return { kind: 'share', group, share };
  }
  for (const g of prefs) {
    if (groups.includes(g)) return { kind: 'retry', group: GROUPS.get(g)! };
  }
  throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'no group in common');
}

/**
 * ClientHello2 after our HelloRetryRequest (RFC 8446 §4.1.2): exactly one key share, for the selected
 * group, which supported_groups still lists; anything else is illegal_parameter (a second HRR is never sent).
 */
export function retriedKeyShare(ch: ClientHello, selectedGroup: number): { group: GroupParams; share: KeyShareEntry } {
  const { groups, shares } = clientGroupsAndShares(ch);
  const group = GROUPS.get(selectedGroup);
  const share = shares[0];
  if (!group || !groups.includes(selectedGroup) || shares.length !== 1 || !share || share.group !== selectedGroup) {
    throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `ClientHello2 must carry exactly one key share, for group ${selectedGroup}`);
  }
  checkShareLength(group, share);
  return { group, share };
}

/**
 * The identity's first scheme (server preference) that the client lists in signature_algorithms and
 * TLS 1.3 allows for CertificateVerify (e.g. rsa_pss_rsae_sha256/384/512, ecdsa_secp256r1_sha256).
 * No overlap → handshake_failure. signature_algorithms_cert (RFC 8446 §4.2.3) only constrains the
 * signatures inside the certificate chain, which the card's identity fixes in advance; it plays no
 * part in choosing the CertificateVerify scheme, so it is not consulted here.
 */
export function negotiateSignatureScheme(ch: ClientHello, identitySchemes: readonly number[]): number {
  const sa = findExtension(ch, ExtensionType.signatureAlgorithms);
  if (!sa) throw tlsError('ERR_TLS_MISSING_EXTENSION', 'signature_algorithms is required');
  const offered = parseSignatureAlgorithms(sa);
  for (const s of identitySchemes) {
    if (offered.includes(s) && TLS13_CERTIFICATE_VERIFY_SCHEMES.includes(s)) return s;
  }
  throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'no signature scheme in common');
}

export function clientServerName(ch: ClientHello): string | undefined {
  const sn = findExtension(ch, ExtensionType.serverName);
  return sn ? parseServerName(sn) : undefined;
}

/** undefined = ALPN not negotiated (server has none configured, or the client offered none). */
export function negotiateAlpn(ch: ClientHello, serverProtocols: readonly string[] | undefined): string | undefined {
  const data = findExtension(ch, ExtensionType.alpn);
  if (!data) return undefined;
  const offered = parseAlpn(data);
  if (!serverProtocols || serverProtocols.length === 0) return undefined;
  for (const p of serverProtocols) if (offered.includes(p)) return p;
  throw tlsError('ERR_TLS_NO_APPLICATION_PROTOCOL', 'no application protocol in common');
}

export function clientRecordSizeLimit(ch: ClientHello): number | undefined {
  const d = findExtension(ch, ExtensionType.recordSizeLimit);
  return d ? parseRecordSizeLimit(d) : undefined;
}

/** RFC 6066 §4 max_fragment_length: { code, length } or undefined (both versions). */
export function clientMaxFragmentLength(ch: ClientHello): { code: number; length: number } | undefined {
  const d = findExtension(ch, ExtensionType.maxFragmentLength);
  return d ? parseMaxFragmentLength(d) : undefined;
}
