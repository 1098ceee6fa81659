/**
 * The TLV views the card returns (docs/apdu-protocol.md §5): SELECT answer, card info, identity (the
 * session info and alert TLVs are protocol/session-info.ts). Never any secret: public keys,
 * certificates, counters, labels, PSK identities (never PSK keys or the ticket key).
 * imports bytes/, protocol/ and card/.
 */
import { encodeTlv, encodeTlvs, u32, type Tlv } from '../../../bytes/index.js';
import { APPLET_VERSION, CardInfoTag, ClientAuthCode, IdentityTag, KeyType } from '../../../protocol/index.js';
import { encodePolicyTlv } from '../../policy.js';
import type { CardState, IdentityRecord } from '../../state.js';

const UTF8 = new TextEncoder();
const utf8 = (s: string): Uint8Array => UTF8.encode(s);

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
