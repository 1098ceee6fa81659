/**
 * Pure negotiation decisions on a parsed ClientHello (RFC 8446 §4.1.1, §4.2, §9.2): version, suite,
 * group/key share, signature scheme, ALPN, SNI, record_size_limit. Throws SetlsError with the code
 * that maps to the right alert.
 * imports bytes/ and tls/ siblings only.
 */
import { ExtensionType, ProtocolVersion, TLS13_CERTIFICATE_VERIFY_SCHEMES } from '../constants.js';
import { GROUPS, SUITES, type GroupParams, type SuiteParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import type { ClientHello } from '../wire/clientHello.js';
import {
  parseAlpn,
  parseKeyShareClientHello,
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

/** TLS 1.3 or protocol_version (TLS 1.2 fallback slots in here later). */
export function negotiateVersion(ch: ClientHello): number {
  const sv = findExtension(ch, ExtensionType.supportedVersions);
  if (!sv) throw tlsError('ERR_TLS_PROTOCOL_VERSION', 'client does not offer TLS 1.3 (no supported_versions)');
  if (!parseSupportedVersionsClientHello(sv).includes(ProtocolVersion.tls13)) {
    throw tlsError('ERR_TLS_PROTOCOL_VERSION', 'client does not offer TLS 1.3');
  }
  return ProtocolVersion.tls13;
}

export function checkCompression(ch: ClientHello): void {
  if (ch.compressionMethods.length !== 1 || ch.compressionMethods[0] !== 0) {
    throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'legacy_compression_methods must be exactly [null]');
  }
}

export function negotiateSuite(ch: ClientHello, serverPrefs: readonly number[] | undefined): SuiteParams {
  const prefs = serverPrefs ?? [...SUITES.keys()];
  for (const id of prefs) {
    const s = SUITES.get(id);
    if (s && ch.cipherSuites.includes(id)) return s;
  }
  throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'no cipher suite in common');
}

export interface GroupChoice {
  readonly group: GroupParams;
  readonly share: KeyShareEntry;
}

export function negotiateGroup(ch: ClientHello, serverPrefs: readonly number[] | undefined): GroupChoice {
  const sg = findExtension(ch, ExtensionType.supportedGroups);
  const ks = findExtension(ch, ExtensionType.keyShare);
  if (!sg || !ks) throw tlsError('ERR_TLS_MISSING_EXTENSION', 'supported_groups and key_share are both required');
  const groups = parseSupportedGroups(sg);
  const shares = parseKeyShareClientHello(ks);
  for (const s of shares) {
    if (!groups.includes(s.group)) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `key share for unoffered group ${s.group}`);
  }
  const prefs = (serverPrefs ?? [...GROUPS.keys()]).filter((g) => GROUPS.has(g));
  for (const g of prefs) {
    const share = shares.find((s) => s.group === g);
    if (!share) continue;
    const group = GROUPS.get(g)!;
    if (share.keyExchange.length !== group.keyExchangeLength) {
      throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `key share for group ${g} has bad length`);
    }
    return { group, share };
  }
  // TODO(HRR): when `prefs` and `groups` intersect, answer with a HelloRetryRequest for that group
  // instead of failing. Until then a missing usable share is a handshake_failure.
  throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'no usable key share');
}

/** The identity's first scheme (server preference) that the client accepts and TLS 1.3 allows. */
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
