/**
 * The TLV views the card returns (docs/apdu-protocol.md §5): card info, identity, session info.
 * Never any secret: public keys, certificates, counters, labels, PSK identities (never PSK keys or
 * the ticket key). imports bytes/, tls/ (api types).
 */
import { encodeTlv, encodeTlvs, u16, u32, type Tlv } from '../bytes/index.js';
import type { TlsSessionInfo } from '../tls/api.js';
import { APPLET_VERSION, CardInfoTag, ClientAuthCode, IdentityTag, KeyType, ResumptionCode, SessionTag } from './constants.js';
import { encodePolicyTlv } from './policy.js';
import type { CardState, IdentityRecord } from './state.js';

const UTF8 = new TextEncoder();
const utf8 = (s: string): Uint8Array => UTF8.encode(s);

/** A latin1 string's bytes (ALPN protocol names are held that way). */
function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** SELECT response: `01 len "setls/1"`. */
export function selectResponse(): Uint8Array {
  return encodeTlv(CardInfoTag.version, utf8(APPLET_VERSION));
}

export function cardInfoTlv(s: CardState, stateCode: number): Uint8Array {
  const items: Tlv[] = [
    { tag: CardInfoTag.version, value: utf8(APPLET_VERSION) },
    { tag: CardInfoTag.serial, value: s.serial },
    ...s.identities.map((i) => ({ tag: CardInfoTag.identityLabel, value: utf8(i.label) })),
    { tag: CardInfoTag.userTries, value: Uint8Array.of(s.pins.user.tries) },
    { tag: CardInfoTag.operatorTries, value: Uint8Array.of(s.pins.operator.tries) },
    { tag: CardInfoTag.pukTries, value: Uint8Array.of(s.pins.puk.tries) },
    { tag: CardInfoTag.lastTime, value: u32(s.lastTime) },
    { tag: CardInfoTag.state, value: Uint8Array.of(stateCode) },
    { tag: CardInfoTag.policy, value: encodePolicyTlv(s.policy) },
    ...s.psks.map((p) => ({ tag: CardInfoTag.pskIdentity, value: p.identity })),
  ];
  return encodeTlvs(items);
}

export function identityTlv(rec: IdentityRecord): Uint8Array {
  return encodeTlvs([
    { tag: IdentityTag.keyType, value: Uint8Array.of(rec.keyType === 'rsa2048' ? KeyType.rsa2048 : KeyType.p256) },
    { tag: IdentityTag.spki, value: rec.spki },
    ...rec.chain.map((c) => ({ tag: IdentityTag.certificate, value: c })),
    ...rec.hostNames.map((n) => ({ tag: IdentityTag.hostName, value: utf8(n) })),
    { tag: IdentityTag.clientAuth, value: Uint8Array.of(ClientAuthCode[rec.clientAuth]) },
    { tag: IdentityTag.exportAllowed, value: Uint8Array.of(rec.exportAllowed ? 1 : 0) },
    ...rec.exporterLabels.map((l) => ({ tag: IdentityTag.exporterLabel, value: utf8(l) })),
    ...rec.trustAnchors.map((c) => ({ tag: IdentityTag.trustAnchor, value: c })),
  ]);
}

const RESUMPTION = { full: ResumptionCode.full, ticket: ResumptionCode.ticket, 'session-id': ResumptionCode.sessionId, psk: ResumptionCode.psk } as const;

/** The alert TLV of a failed handshake step's `7001` answer (§3, §5): `2C 02 02 <description>` (fatal). */
export function alertTlv(description: number): Uint8Array {
  return encodeTlvs([{ tag: SessionTag.alertSent, value: Uint8Array.of(2, description) }]);
}

export function sessionInfoTlv(info: TlsSessionInfo, identityLabel?: string): Uint8Array {
  const items: Tlv[] = [
    { tag: SessionTag.version, value: u16(info.version) },
    { tag: SessionTag.cipherSuite, value: u16(info.cipherSuite) },
    { tag: SessionTag.group, value: u16(info.group) },
    { tag: SessionTag.signatureScheme, value: u16(info.signatureScheme) },
  ];
  if (info.serverName !== undefined) items.push({ tag: SessionTag.serverName, value: utf8(info.serverName) });
  if (info.alpn !== undefined) items.push({ tag: SessionTag.alpn, value: latin1(info.alpn) });
  if (identityLabel !== undefined) items.push({ tag: SessionTag.identityLabel, value: utf8(identityLabel) });
  if (info.peer) {
    items.push({ tag: SessionTag.peerSubject, value: utf8(info.peer.subject) });
    for (const san of info.peer.subjectAltNames) items.push({ tag: SessionTag.peerSan, value: utf8(san) });
    items.push({ tag: SessionTag.peerFingerprint, value: info.peer.fingerprint256 });
  }
  items.push({ tag: SessionTag.resumption, value: Uint8Array.of(RESUMPTION[info.resumption ?? 'full']) });
  if (info.pskIdentity !== undefined) items.push({ tag: SessionTag.pskIdentity, value: info.pskIdentity });
  return encodeTlvs(items);
}
