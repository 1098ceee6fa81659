/**
 * card/applets/setls/commands: the setls applet's command table (docs/apdu-protocol.md §2): for each
 * INS of class A0 (A0–A3 / E0–EF on other channels) the PIN it needs, its P1/P2 rule, whether P1
 * bit 0 is the More bit of command segmentation, and its handler. The card OS checks class, INS,
 * selection, P1/P2 and access in that order before a handler runs (card/os/dispatcher.ts).
 * imports bytes/, apdu/, protocol/ and card/.
 */
import { readU32 } from '../../../bytes/index.js';
import { SW } from '../../../apdu/index.js';
import {
  EXPORTED_PARAMETER_SESSION_INFO,
  EapP1,
  EncryptP2,
  GetDataP1,
  Ins,
  KeyType,
  P1_MORE,
  PinRef,
  PskOp,
  ResetStateP2,
  SET_IDENTITY_P2,
  SessionKeyLength,
  StateP1,
  TrustAnchorOp,
  encodeSessionInfo,
} from '../../../protocol/index.js';
import { cardErr } from '../../errors.js';
import { parseChainData, parseCsrRequest } from '../../identity.js';
import { decodeLabel } from '../../state.js';
import type { AccessRule, CommandSpec, CommandTable, Reply } from '../../os/applet.js';
import type { CardServices } from '../../services/services.js';
import type { PinKind } from '../../services/pin-service.js';
import { slotOfLabel } from '../../services/security-domain.js';
import type { SetlsApplet } from './applet.js';
import { parseIdentityPolicy, parsePskCommand, parseTrustAnchorData } from './requests.js';
import { cardInfoTlv, identityTlv } from './views.js';

const EMPTY = new Uint8Array(0);
const ok = (data: Uint8Array = EMPTY): Reply => ({ data, sw: SW.ok });

function noData(data: Uint8Array): void {
  if (data.length !== 0) throw cardErr.length('this command takes no data');
}

const pinName = (p2: number): PinKind => (p2 === PinRef.operator ? 'operator' : 'user');

/** The labels of the security domain's identity slots (`slot1`–`slot8`) are its own: 6985 here. */
function notSlot(s: CardServices, label: string): string {
  if (s.securityDomain.record && slotOfLabel(label) !== undefined) {
    throw cardErr.conditions(`identity ${label} is a slot of the security domain: administer it through SCP03`);
  }
  return label;
}

// P1/P2 rules
const zero = (p1: number, p2: number): boolean => p1 === 0 && p2 === 0;
const pinRef = (p1: number, p2: number): boolean => p1 === 0 && (p2 === PinRef.user || p2 === PinRef.operator);
/** Segmented commands with P2 00: P1 is 00 or More. */
const moreOnly = (p1: number, p2: number): boolean => (p1 & ~P1_MORE) === 0 && p2 === 0;
/** PROCESS-EAP: P1 More; START, INFO and END only with P2 00 (the handshake / DECRYPT); P2 80|CT: ENCRYPT of 17 or 15. */
const processEapP1P2 = (p1: number, p2: number): boolean =>
  p2 === 0 ? (p1 & ~(EapP1.more | EapP1.start | EapP1.info | EapP1.end | EapP1.fold)) === 0 : (p1 & ~P1_MORE) === 0 && (p2 === EncryptP2.applicationData || p2 === EncryptP2.alert);

/** The setls command table (class A0; SELECT, MANAGE CHANNEL and GET RESPONSE are the card OS's). */
export function setlsCommands(a: SetlsApplet, s: CardServices): CommandTable {
  const cmd = (
    ins: number,
    name: string,
    access: AccessRule,
    p1p2: CommandSpec['p1p2'],
    handler: CommandSpec['handler'],
    chaining?: 'p1-more',
  ): CommandSpec => ({ ins, cla: 'proprietary', name, access, p1p2, handler, ...(chaining ? { chaining } : {}) });
  return {
    classes: ['iso', 'proprietary'],
    commands: [
      // PINs (docs/apdu-protocol.md §2 "The PIN rules")
      cmd(Ins.verifyPin, 'VERIFY-PIN', 'none', pinRef, (c, data, ch) => s.pins.verify(ch, pinName(c.p2), data)),
      cmd(Ins.changePin, 'CHANGE-PIN', 'none', pinRef, (c, data, ch) => s.pins.change(ch, pinName(c.p2), data)),
      cmd(Ins.unblockPin, 'UNBLOCK-PIN', 'none', pinRef, (c, data, ch) => s.pins.unblock(ch, pinName(c.p2), data)),

      // The TLS session (§3, §4)
      cmd(
        Ins.setIdentity,
        'SET-IDENTITY',
        'user',
        (p1, p2) => p1 === 0 && p2 === SET_IDENTITY_P2,
        (_c, data, ch) => {
          s.identities.choose(ch, decodeLabel(data));
          a.resetSession(ch);
          return ok();
        },
      ),
      cmd(
        Ins.state,
        'GET-STATE / RESET-STATE',
        'user',
        // RESET-STATE P2 01: DTLS (§8)
        (p1, p2) => (p1 === StateP1.get && p2 === 0) || (p1 === StateP1.reset && (p2 === ResetStateP2.tls || p2 === ResetStateP2.dtls)),
        (c, data, ch) => {
          noData(data);
          if (c.p1 === StateP1.reset) {
            a.resetSession(ch, c.p2 === ResetStateP2.dtls ? 'dtls' : 'tls');
            return ok();
          }
          return ok(Uint8Array.of(a.stateCode(ch)));
        },
      ),
      cmd(
        Ins.processEap,
        'PROCESS-EAP',
        'user',
        processEapP1P2,
        (c, data, ch) => {
          if (data.length === 0) throw cardErr.length('PROCESS-EAP needs an EAP packet');
          return a.processEap(c, data, ch);
        },
        'p1-more',
      ),
      cmd(Ins.getSessionKey, 'GET-SESSION-KEY', 'user', zero, (c, data, ch) => {
        noData(data);
        if (c.ne !== SessionKeyLength.msk && c.ne !== SessionKeyLength.mskEmsk) return { data: EMPTY, sw: SW.wrongLe | SessionKeyLength.msk };
        return ok(a.session(ch).sessionKey(c.ne));
      }),
      cmd(Ins.getExportedParameter, 'GET-EXPORTED-PARAMETER', 'user', zero, (_c, data, ch) => {
        if (data.length !== 1) throw cardErr.length('GET-EXPORTED-PARAMETER takes one byte');
        if (data[0] !== EXPORTED_PARAMETER_SESSION_INFO) throw cardErr.data('unknown exported parameter');
        const info = a.session(ch).info;
        if (!info) throw cardErr.conditions('no authenticated TLS session');
        return ok(encodeSessionInfo(info, a.servedLabel(ch)));
      }),
      cmd(Ins.exportSession, 'EXPORT-SESSION', 'user', zero, (_c, data, ch) => {
        noData(data);
        return a.exportSession(ch);
      }),
      cmd(Ins.exporter, 'EXPORTER', 'user', zero, (_c, data, ch) => a.exporter(data, ch)),

      // Card and identity information (§5)
      cmd(
        Ins.getData,
        'GET-DATA',
        'none',
        (p1, p2) => (p1 === GetDataP1.cardInfo || p1 === GetDataP1.identity) && p2 === 0,
        (c, data, ch) => {
          if (c.p1 === GetDataP1.cardInfo) {
            noData(data);
            return ok(cardInfoTlv(s.store.state, a.stateCode(ch)));
          }
          return ok(identityTlv(s.identities.find(decodeLabel(data))));
        },
      ),

      // Personalisation and policy (operator PIN; §2, §2.2, §2.3, §2.4)
      cmd(
        Ins.generateKey,
        'GENERATE-KEY',
        'operator',
        (p1, p2) => (p1 === KeyType.p256 || p1 === KeyType.rsa2048) && p2 === 0,
        (c, data) => ok(s.identities.generateKey(notSlot(s, decodeLabel(data)), c.p1 === KeyType.rsa2048 ? 'rsa2048' : 'p256')),
      ),
      cmd(Ins.getCsr, 'GET-CSR', 'operator', moreOnly, (_c, data) => ok(s.identities.csr(parseCsrRequest(data))), 'p1-more'),
      cmd(
        Ins.putChain,
        'PUT-CHAIN',
        'operator',
        moreOnly,
        (_c, data) => {
          const { label, certs } = parseChainData(data);
          s.identities.installChain(notSlot(s, label), certs);
          return ok();
        },
        'p1-more',
      ),
      cmd(Ins.putPolicy, 'PUT-POLICY', 'operator', zero, (_c, data) => {
        s.config.applyPolicy(data);
        return ok();
      }),
      cmd(Ins.putIdentityPolicy, 'PUT-IDENTITY-POLICY', 'operator', zero, (_c, data) => {
        const change = parseIdentityPolicy(data);
        notSlot(s, change.label);
        s.identities.setPolicy(change);
        return ok();
      }),
      cmd(
        Ins.putTrustAnchor,
        'PUT-TRUST-ANCHOR',
        'operator',
        (p1, p2) => (p1 & ~P1_MORE) === 0 && (p2 === TrustAnchorOp.add || p2 === TrustAnchorOp.clear),
        (c, data) => {
          const { label, certificate } = parseTrustAnchorData(data, c.p2);
          notSlot(s, label);
          if (c.p2 === TrustAnchorOp.clear) s.identities.clearTrustAnchors(label);
          else s.identities.addTrustAnchor(label, certificate!);
          return ok();
        },
        'p1-more',
      ),
      cmd(
        Ins.putPsk,
        'PUT-PSK',
        'operator',
        (p1, p2) => p1 === 0 && (p2 === PskOp.put || p2 === PskOp.remove),
        (c, data) => {
          const { identity, psk } = parsePskCommand(data, c.p2);
          if (psk) s.config.putPsk(psk);
          else s.config.deletePsk(identity);
          return ok();
        },
      ),
      cmd(Ins.setClock, 'SET-CLOCK', 'operator', zero, (_c, data) => {
        // The new time floor, 4 bytes big-endian Unix seconds; 0 (or no data) unsets it.
        if (data.length !== 0 && data.length !== 4) throw cardErr.length('SET-CLOCK takes 4 bytes (Unix seconds) or none');
        s.time.setClock(data.length === 0 ? 0 : readU32(data, 0));
        return ok();
      }),
    ],
  };
}
