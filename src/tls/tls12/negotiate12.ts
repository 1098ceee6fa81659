/**
 * TLS 1.2 negotiation decisions on a parsed ClientHello (RFC 5246 §7.4.1.2–§7.4.1.4, RFC 8422 §5.1,
 * RFC 5746 §3.6, RFC 7627 §5.1, RFC 6066 §4, RFC 8449): suite (server preference, filtered by the
 * identity's key type, PSK availability and a common group), group, signature scheme, and the
 * extensions that shape the record layer. Throws SetlsError with the code that maps to the right alert.
 * imports bytes/ and tls/ siblings only.
 */
import { ctEqual } from '../../bytes/index.js';
import type { TlsIdentity, TlsServerConfig } from '../api.js';
import { ExtensionType, NamedGroup, SignatureScheme } from '../constants.js';
import { DEFAULT_GROUPS, GROUPS, type GroupParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import { findExtension } from '../server/negotiate.js';
import type { ClientHello } from '../wire/clientHello.js';
import { parseSignatureAlgorithms, parseSupportedGroups } from '../wire/extensions.js';
import { parseEcPointFormats, parseRenegotiationInfo } from './messages12.js';
import { DEFAULT_CIPHER_SUITES_12, EMPTY_RENEGOTIATION_INFO_SCSV, SUITES12, type Suite12 } from './suites12.js';

/** ECDSA schemes a TLS 1.2 ServerKeyExchange / CertificateVerify may use here (P-256 keys). */
export const ECDSA_SCHEMES_12: readonly number[] = [SignatureScheme.ecdsa_secp256r1_sha256];
/** RSA schemes in server preference: PSS (rsae) first, PKCS#1 v1.5 (allowed in TLS 1.2) last. */
export const RSA_SCHEMES_12: readonly number[] = [
  SignatureScheme.rsa_pss_rsae_sha256,
  SignatureScheme.rsa_pss_rsae_sha384,
  SignatureScheme.rsa_pss_rsae_sha512,
  SignatureScheme.rsa_pkcs1_sha256,
  SignatureScheme.rsa_pkcs1_sha384,
  SignatureScheme.rsa_pkcs1_sha512,
];

export interface Choice12 {
  readonly suite: Suite12;
  /** ECDHE suites: the group and the ServerKeyExchange signature scheme. */
  readonly group?: GroupParams;
  readonly scheme?: number;
}

/** RFC 5746 §3.6 on an initial handshake: SCSV or an empty RI; RI with data → handshake_failure. */
export function checkRenegotiationInfo(ch: ClientHello): boolean {
  const ri = findExtension(ch, ExtensionType.renegotiationInfo);
  if (ri !== undefined && parseRenegotiationInfo(ri).length !== 0) {
    throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'renegotiation_info with data on an initial handshake');
  }
  return ri !== undefined || ch.cipherSuites.includes(EMPTY_RENEGOTIATION_INFO_SCSV);
}

/** TLS 1.2: the compression list must contain null (we always choose it); otherwise illegal_parameter. */
export function checkCompression12(ch: ClientHello): void {
  if (!ch.compressionMethods.includes(0)) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'compression methods lack null');
}

/** RFC 7627 §5.1: extended_master_secret offered (an empty extension). */
export function clientOffersEms(ch: ClientHello): boolean {
  const d = findExtension(ch, ExtensionType.extendedMasterSecret);
  if (d !== undefined && d.length !== 0) throw tlsError('ERR_TLS_DECODE', 'extended_master_secret with data');
  return d !== undefined;
}

/** RFC 5077 §3.2: undefined = not offered; empty = wants a ticket; else the ticket to resume. */
export function clientSessionTicket(ch: ClientHello): Uint8Array | undefined {
  return findExtension(ch, ExtensionType.sessionTicket);
}

/** RFC 8422 §4: without supported_groups the client is taken to support secp256r1 only. */
function clientGroups(ch: ClientHello): number[] {
  const sg = findExtension(ch, ExtensionType.supportedGroups);
  return sg ? parseSupportedGroups(sg) : [NamedGroup.secp256r1];
}

function commonGroup(ch: ClientHello, prefs: readonly number[] | undefined): GroupParams | undefined {
  const offered = clientGroups(ch);
  const epf = findExtension(ch, ExtensionType.ecPointFormats);
  if (epf && !parseEcPointFormats(epf).includes(0)) {
    throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'ec_point_formats lacks uncompressed');
  }
  for (const g of prefs ?? DEFAULT_GROUPS) {
    const group = GROUPS.get(g);
    if (group && offered.includes(g)) return group;
  }
  return undefined;
}

/** The first scheme of `ours` (server preference) the identity can produce and the client accepts. */
function commonScheme(ours: readonly number[], identity: TlsIdentity | undefined, offered: readonly number[]): number | undefined {
  if (!identity) return undefined;
  return ours.find((s) => identity.signatureSchemes.includes(s) && offered.includes(s));
}

/**
 * Server preference wins. ECDHE_ECDSA needs an ECDSA scheme in common with the identity, ECDHE_RSA an
 * RSA one (so each identity only gets its own suites), both need a common group; PSK suites need
 * `findPsk`. CBC suites are never in the table. Nothing left → handshake_failure.
 */
export function negotiate12(ch: ClientHello, cfg: TlsServerConfig, identity: TlsIdentity | undefined): Choice12 {
  const prefs = cfg.cipherSuites12 ?? DEFAULT_CIPHER_SUITES_12;
  const sa = findExtension(ch, ExtensionType.signatureAlgorithms);
  // RFC 5246 §7.4.1.4.1: no signature_algorithms means SHA-1 only, which we never sign with.
  const offeredSchemes = sa ? parseSignatureAlgorithms(sa) : [];
  let group: GroupParams | undefined;
  let groupDone = false;
  for (const id of prefs) {
    const suite = SUITES12.get(id);
    if (!suite || !ch.cipherSuites.includes(id)) continue;
    if (suite.kx === 'psk') {
      if (cfg.findPsk) return { suite };
      continue;
    }
    const scheme = commonScheme(suite.kx === 'ecdhe_ecdsa' ? ECDSA_SCHEMES_12 : RSA_SCHEMES_12, identity, offeredSchemes);
    if (scheme === undefined) continue;
    // RFC 8422 §5.1: our ECDSA keys are P-256, so the client must list secp256r1 for ECDSA suites.
    if (suite.kx === 'ecdhe_ecdsa' && !clientGroups(ch).includes(NamedGroup.secp256r1)) continue;
    if (!groupDone) {
      group = commonGroup(ch, cfg.groups);
      groupDone = true;
    }
    if (group) return { suite, group, scheme };
  }
  throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'no TLS 1.2 cipher suite in common');
}

/** RFC 4279 §2: premaster = uint16 N ‖ N zero bytes ‖ uint16 N ‖ psk. SECRET. */
export function pskPremaster(psk: Uint8Array): Uint8Array {
  const n = psk.length;
  const out = new Uint8Array(4 + 2 * n);
  out[0] = n >>> 8;
  out[1] = n & 0xff;
  out[2 + n] = n >>> 8;
  out[3 + n] = n & 0xff;
  out.set(psk, 4 + n);
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && ctEqual(a, b);
}
