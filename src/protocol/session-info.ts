/**
 * protocol/session-info: the session info TLV (GET-EXPORTED-PARAMETER; after the EAP-Success of a
 * Response with INFO) and the alert TLV `2C` (after a `7001` answer to a Response with INFO),
 * docs/apdu-protocol.md §3, §5: the card encodes them, the host parses them.
 * imports bytes/ and protocol/.
 */
import { encodeTlvs, findTlv, toHex, u16, type Tlv } from '../bytes/index.js';
import { answerTlvs, badAnswer, u16Value, u8Value, utf8Value } from './answer-reader.js';
import { ResumptionCode, SessionTag } from './tags.js';

export type Resumption = 'full' | 'ticket' | 'session-id' | 'psk';

/** What both ends know of a negotiated session. */
interface SessionParameters {
  /** 0x0304 for TLS 1.3. */
  readonly version: number;
  readonly cipherSuite: number;
  /** 0 for PSK sessions without (EC)DHE. */
  readonly group: number;
  /** 0 for PSK sessions. */
  readonly signatureScheme: number;
  readonly serverName?: string;
  readonly alpn?: string;
  /** How the session was established: full handshake, ticket, TLS 1.2 session ID or external PSK. */
  readonly resumption?: Resumption;
  /** The external PSK identity, when the session used one. */
  readonly pskIdentity?: Uint8Array;
}

/** What the card reports of a session (the shape of its TLS engine's session info). */
export interface SessionInfoSource extends SessionParameters {
  readonly peer?: { readonly subject: string; readonly subjectAltNames: readonly string[]; readonly fingerprint256: Uint8Array };
}

/** The verified client certificate of a mutual-TLS session, as the host reads it. */
export interface PeerIdentityInfo {
  /** Subject DN (node's X509Certificate.subject format). */
  readonly subject: string;
  /** subjectAltName entries in node's format, e.g. "DNS:a.example". */
  readonly subjectAltNames: readonly string[];
  /** SHA-256 of the client certificate DER, colon-separated upper-case hex (as node's fingerprint256). */
  readonly fingerprint256: string;
}

/** The session info as the host reads it. */
export interface SessionInfo extends SessionParameters {
  /** Label of the card identity that served the session. */
  readonly identity?: string;
  /** The verified client certificate (mutual TLS), when the client authenticated. */
  readonly peer?: PeerIdentityInfo;
}

const UTF8 = new TextEncoder();
const RESUMPTION_CODE = { full: ResumptionCode.full, ticket: ResumptionCode.ticket, 'session-id': ResumptionCode.sessionId, psk: ResumptionCode.psk } as const;
/** Indexed by ResumptionCode. */
const RESUMPTION: readonly Resumption[] = ['full', 'ticket', 'session-id', 'psk'];

/** A latin1 string's bytes (ALPN protocol names are held that way). */
function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** The session info TLVs `20`–`2B` (card side). */
export function encodeSessionInfo(info: SessionInfoSource, identityLabel?: string): Uint8Array {
  const items: Tlv[] = [
    { tag: SessionTag.version, value: u16(info.version) },
    { tag: SessionTag.cipherSuite, value: u16(info.cipherSuite) },
    { tag: SessionTag.group, value: u16(info.group) },
    { tag: SessionTag.signatureScheme, value: u16(info.signatureScheme) },
  ];
  if (info.serverName !== undefined) items.push({ tag: SessionTag.serverName, value: UTF8.encode(info.serverName) });
  if (info.alpn !== undefined) items.push({ tag: SessionTag.alpn, value: latin1(info.alpn) });
  if (identityLabel !== undefined) items.push({ tag: SessionTag.identityLabel, value: UTF8.encode(identityLabel) });
  if (info.peer) {
    items.push({ tag: SessionTag.peerSubject, value: UTF8.encode(info.peer.subject) });
    for (const san of info.peer.subjectAltNames) items.push({ tag: SessionTag.peerSan, value: UTF8.encode(san) });
    items.push({ tag: SessionTag.peerFingerprint, value: info.peer.fingerprint256 });
  }
  items.push({ tag: SessionTag.resumption, value: Uint8Array.of(RESUMPTION_CODE[info.resumption ?? 'full']) });
  if (info.pskIdentity !== undefined) items.push({ tag: SessionTag.pskIdentity, value: info.pskIdentity });
  return encodeTlvs(items);
}

/** SHA-256 bytes as node's fingerprint256 text (colon-separated upper-case hex). */
export function fingerprintText(b: Uint8Array): string {
  return toHex(b).toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

/** The session info TLVs (host side); ERR_CARD_RESPONSE when malformed. */
export function parseSessionInfo(b: Uint8Array): SessionInfo {
  const t = answerTlvs(b, 'session info');
  const serverName = utf8Value(findTlv(t, SessionTag.serverName), 'SNI');
  const alpn = utf8Value(findTlv(t, SessionTag.alpn), 'ALPN');
  const identity = utf8Value(findTlv(t, SessionTag.identityLabel), 'identity label');
  const version = u16Value(findTlv(t, SessionTag.version), 'version');
  const cipherSuite = u16Value(findTlv(t, SessionTag.cipherSuite), 'cipher suite');
  // PSK sessions (TLS 1.2 PSK suites, TLS 1.3 psk_ke) have no group / no signature: 0.
  const group = findTlv(t, SessionTag.group) ? u16Value(findTlv(t, SessionTag.group), 'group') : 0;
  const signatureScheme = findTlv(t, SessionTag.signatureScheme) ? u16Value(findTlv(t, SessionTag.signatureScheme), 'signature scheme') : 0;
  const subject = utf8Value(findTlv(t, SessionTag.peerSubject), 'client subject');
  const fp = findTlv(t, SessionTag.peerFingerprint);
  const sans = t.filter((x) => x.tag === SessionTag.peerSan).map((x) => utf8Value(x.value, 'client SAN')!);
  const r = u8Value(findTlv(t, SessionTag.resumption));
  const psk = findTlv(t, SessionTag.pskIdentity);
  return {
    version,
    cipherSuite,
    group,
    signatureScheme,
    ...(serverName !== undefined ? { serverName } : {}),
    ...(alpn !== undefined ? { alpn } : {}),
    ...(identity !== undefined ? { identity } : {}),
    ...(subject !== undefined || fp !== undefined ? { peer: { subject: subject ?? '', subjectAltNames: sans, fingerprint256: fp ? fingerprintText(fp) : '' } } : {}),
    ...(r !== undefined ? { resumption: RESUMPTION[r] ?? 'full' } : {}),
    ...(psk !== undefined ? { pskIdentity: psk } : {}),
  };
}

/** TLS alert levels (RFC 8446 §6). */
export const AlertLevel = { warning: 1, fatal: 2 } as const;

/** The alert TLV of a failed handshake step's `7001` answer: `2C 02 02 <description>` (fatal). */
export function encodeAlertTlv(description: number): Uint8Array {
  return encodeTlvs([{ tag: SessionTag.alertSent, value: Uint8Array.of(AlertLevel.fatal, description) }]);
}

/** The alert TLV after a `7001` answer: exactly one TLV `2C` of 2 bytes; ERR_CARD_RESPONSE otherwise. */
export function parseAlertTlv(b: Uint8Array): { level: number; description: number } {
  const t = answerTlvs(b, 'alert TLV');
  const v = findTlv(t, SessionTag.alertSent);
  if (t.length !== 1 || !v || v.length !== 2) return badAnswer('the bytes after a 7001 answer are not one alert TLV 2C of 2 bytes');
  if (v[0] !== AlertLevel.warning && v[0] !== AlertLevel.fatal) return badAnswer(`alert level ${v[0]} in the alert TLV`);
  return { level: v[0]!, description: v[1]! };
}
