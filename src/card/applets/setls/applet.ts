/**
 * card/applets/setls/applet: the setls applet (AID F0 73 65 74 6C 73 01; docs/apdu-protocol.md): a
 * TLS 1.3 / 1.2 / DTLS 1.2 server driven by EAP-TLS packets (PROCESS-EAP), with its PIN, identity,
 * policy, PSK, trust-anchor, clock, export and exporter commands (commands.ts, its command table).
 * It keeps one TLS session per logical channel; the PINs, identities, policy, PSKs, ticket key,
 * time floor and session-ID cache are the card services' (shared with the other applets). Any
 * configuration change resets the TLS session of every channel. On a card whose security domain is
 * sealed (services/security-domain.ts): a locked or inactive slot identity refuses new handshakes
 * with access_denied, slot identities check clients against the operator's client CAs, every
 * identity checks the deny-list (certificate_revoked), and each session is audited when it ends.
 *
 * Secrets: each channel's TLS session (engine keys, buffers; `dispose()` wipes them) and the copies
 * of the ticket key handed to its engine (wiped when the session goes).
 * imports bytes/, apdu/, eap/, protocol/, tls/ (api types) and card/.
 */
import { concat, wipe } from '../../../bytes/index.js';
import { SW } from '../../../apdu/index.js';
import { EapCode } from '../../../eap/index.js';
import { APPLET_AID, CardStateCode, EapP1, SelectP2, SetlsSw, encodeAlertTlv, encodeSessionInfo } from '../../../protocol/index.js';
import type { TlsIdentity, TlsServerConfig } from '../../../tls/api.js';
import { RESERVED_EXPORTER_LABELS } from '../../constants.js';
import { cardErr } from '../../errors.js';
import type { IdentityRecord } from '../../state.js';
import type { Applet, AppletCommand, ChannelContext, CommandTable, Reply } from '../../os/applet.js';
import type { CardServices } from '../../services/services.js';
import type { TlsSessionFacts } from '../../services/security-domain.js';
import { setlsCommands } from './commands.js';
import { DtlsEapSession, createCardDtlsEngine } from './dtls-session.js';
import { EapTlsSession, type SessionDeps } from './eap-session.js';
import { parseExporterRequest } from './requests.js';
import { selectResponse } from './views.js';

const EMPTY = new Uint8Array(0);
const ok = (data: Uint8Array = EMPTY): Reply => ({ data, sw: SW.ok });

/** The applet's transient state on one logical channel. */
class SetlsChannel {
  session!: EapTlsSession | DtlsEapSession;
  /** Label of the identity the engine picked for the current session (session info `26`). */
  servedLabel: string | undefined;
  /** Host time of the current session (Unix seconds), if the first Response carried one. */
  sessionTime: number | undefined;
  /** Copies of the ticket key handed to the current session's engine; wiped when the session goes. */
  readonly sessionSecrets: Uint8Array[] = [];
  /** The audit facts of the current session once its handshake completed (sealed security domain only). */
  audit: TlsSessionFacts | undefined;
  /** The wiring of this channel's TLS / DTLS sessions (made at first use). */
  tlsDeps: SessionDeps | undefined;
  dtlsDeps: SessionDeps | undefined;

  constructor(readonly ctx: ChannelContext) {}
}

export class SetlsApplet implements Applet {
  readonly aid = APPLET_AID;
  readonly name = 'setls';
  readonly table: CommandTable;
  private readonly channels = new Map<number, SetlsChannel>();

  constructor(readonly s: CardServices) {
    this.table = setlsCommands(this, s);
    s.config.onChanged(() => {
      for (const st of this.channels.values()) this.newSession(st, 'tls');
    });
  }

  /** SELECT answer: `01 len "setls/1"` (P2 0C: none). Nothing of the channel's state changes. */
  select(_ch: ChannelContext, p2: number): Reply {
    return p2 === SelectP2.noAnswer ? ok() : ok(selectResponse());
  }

  /** The channel's TLS session stays (the applet may be selected again). */
  deselect(): void {}

  reset(ch: ChannelContext): void {
    const st = this.channels.get(ch.number);
    if (!st) return;
    this.endAudit(st, false);
    st.session.dispose();
    wipe(...st.sessionSecrets.splice(0));
    this.channels.delete(ch.number);
  }

  // ---------------------------------------------------------------- per-channel TLS session

  private state(ch: ChannelContext): SetlsChannel {
    let st = this.channels.get(ch.number);
    if (!st) {
      st = new SetlsChannel(ch);
      this.channels.set(ch.number, st);
      this.newSession(st, 'tls');
    }
    return st;
  }

  /** The channel's TLS session (made at first use). */
  session(ch: ChannelContext): EapTlsSession | DtlsEapSession {
    return this.state(ch).session;
  }

  /** A new session on `ch` (RESET-STATE, START, SET-IDENTITY): the old one is wiped. */
  resetSession(ch: ChannelContext, mode: 'tls' | 'dtls' = 'tls'): void {
    this.newSession(this.state(ch), mode);
  }

  private newSession(st: SetlsChannel, mode: 'tls' | 'dtls'): void {
    this.endAudit(st, false);
    st.session?.dispose();
    wipe(...st.sessionSecrets.splice(0)); // the previous session's engine is gone
    st.sessionTime = undefined;
    st.servedLabel = undefined;
    st.session = mode === 'dtls' ? new DtlsEapSession((st.dtlsDeps ??= this.sessionDeps(st, mode))) : new EapTlsSession((st.tlsDeps ??= this.sessionDeps(st, mode)));
  }

  /** A channel's session wiring (made once per channel and mode: the hooks read the channel's state when called). */
  private sessionDeps(st: SetlsChannel, mode: 'tls' | 'dtls'): SessionDeps {
    const s = this.s;
    return {
      factory: (config: TlsServerConfig) => {
        const f = mode === 'dtls' ? createCardDtlsEngine : s.tls.engineFactory();
        const full = s.tls.engineConfig(config, st.sessionSecrets);
        try {
          return f(full);
        } finally {
          wipe(full.cookieKey); // the engine keeps its own copy
        }
      },
      entropy: s.tls.entropy(() => (st.sessionTime ?? s.time.now()) * 1000),
      selectIdentity: (serverName: string | undefined): TlsIdentity | undefined => {
        const sd = s.securityDomain;
        const sealed = sd.sealed;
        // a locked or inactive slot identity: access_denied (thrown into the engine)
        const rec = s.identities.select(serverName, st.ctx, sealed ? sd.usable : undefined);
        st.servedLabel = rec?.label;
        return rec ? s.identities.forEngine(rec, sealed ? sd.engineRules(rec) : undefined) : undefined;
      },
      acceptTime: (t: number) =>
        s.time.accept(t, () => {
          st.sessionTime = t;
        }),
    };
  }

  /** GET-STATE of `ch`. */
  stateCode(ch: ChannelContext): number {
    switch (this.state(ch).session.phase) {
      case 'authenticated':
        return CardStateCode.authenticated;
      case 'failed':
        return CardStateCode.notAuthenticated;
      case 'closed':
        return CardStateCode.closed;
      default:
        return this.s.identities.defaultFor(ch) ? CardStateCode.authenticating : CardStateCode.identityNotSet;
    }
  }

  /** The label of the identity that served the current session on `ch`. */
  servedLabel(ch: ChannelContext): string | undefined {
    return this.state(ch).servedLabel;
  }

  /** The identity that served the current session (its policy decides export and exporters). */
  private servedIdentity(ch: ChannelContext): IdentityRecord | undefined {
    const label = this.state(ch).servedLabel;
    return label === undefined ? undefined : this.s.identities.all.find((i) => i.label === label);
  }

  // ---------------------------------------------------------------- the session commands

  /**
   * PROCESS-EAP with its P1 flags (§3): START wipes the channel's session first (RESET-STATE folded
   * into the first Response of a handshake); INFO appends the session info TLV beyond the EAP Length
   * of an EAP-Success (GET-EXPORTED-PARAMETER folded into the handshake's last exchange), and the
   * alert TLV `2C` (level, description) beyond the EAP Length of a `7001` answer, so the host knows
   * which alert the card sent without reading the (possibly encrypted) alert record. END on a
   * DECRYPT whose answer ends the session (the client's close_notify, or a failure) wipes the
   * session after answering, as RESET-STATE would (RESET-STATE folded into the session's last
   * exchange): the answer already holds the card's last records. FOLD on a handshake Response lets
   * the answer that carries the card's last records (SW 9001 otherwise) end with the EAP-Success the
   * host's ACK would have brought (the ACK exchange folded into the one before).
   */
  processEap(cmd: AppletCommand, data: Uint8Array, ch: ChannelContext): Reply {
    if ((cmd.p1 & EapP1.start) !== 0) this.resetSession(ch, 'tls');
    const st = this.state(ch);
    const decrypting = cmd.p2 === 0 && st.session.phase === 'authenticated';
    const answer = st.session.processEap(cmd.p2, data, (cmd.p1 & EapP1.fold) !== 0);
    if (st.audit === undefined && st.session.phase === 'authenticated' && this.s.securityDomain.auditing) this.startAudit(st);
    if ((cmd.p1 & EapP1.end) !== 0 && decrypting && (st.session.phase === 'closed' || st.session.phase === 'failed')) {
      this.resetSession(ch, st.session instanceof DtlsEapSession ? 'dtls' : 'tls');
      return answer;
    }
    if ((cmd.p1 & EapP1.info) === 0) return answer;
    if (answer.sw === SetlsSw.authFailure) {
      const alert = st.session.alertSent;
      return alert === undefined ? answer : { data: concat(answer.data, encodeAlertTlv(alert)), sw: answer.sw };
    }
    const info = answer.data[0] === EapCode.success || answer.folded ? st.session.info : undefined;
    return info ? { data: concat(answer.data, encodeSessionInfo(info, st.servedLabel)), sw: answer.sw } : answer;
  }

  /** EXPORT-SESSION: only when the serving identity allows it (policy 41 = 01); the session is closed after. */
  exportSession(ch: ChannelContext): Reply {
    const session = this.state(ch).session;
    if (session.phase !== 'authenticated') throw cardErr.conditions('no authenticated TLS session');
    if (!this.servedIdentity(ch)?.exportAllowed) throw cardErr.conditions('session export is not allowed for the identity that served this session');
    const blob = session.exportSession();
    this.endAudit(this.state(ch), true);
    return ok(blob);
  }

  // ---------------------------------------------------------------- the security domain's audit log

  /** The handshake completed: what the session's audit entry will say (its exporter value, hashed). */
  private startAudit(st: SetlsChannel): void {
    const session = st.session;
    const info = session.info;
    if (!info) return;
    st.audit = this.s.securityDomain.sessionFacts(st.servedLabel, info, (label) => session.exporter(label, undefined, 32));
  }

  /** The session ends (a new one, reset, export): its entry goes to the audit log (in RAM until the next write). */
  private endAudit(st: SetlsChannel, exported: boolean): void {
    const facts = st.audit;
    if (!facts) return;
    st.audit = undefined;
    this.s.securityDomain.logSession(facts, exported);
  }

  /** EXPORTER: RFC 5705 / RFC 8446 §7.5 keying material for a label the serving identity allows. */
  exporter(data: Uint8Array, ch: ChannelContext): Reply {
    const req = parseExporterRequest(data);
    try {
      if (RESERVED_EXPORTER_LABELS.includes(req.label)) throw cardErr.conditions(`exporter label ${JSON.stringify(req.label)} is reserved (RFC 5705 §4)`);
      const session = this.state(ch).session;
      if (session.phase !== 'authenticated') throw cardErr.conditions('no authenticated TLS session');
      if (!this.servedIdentity(ch)?.exporterLabels.includes(req.label)) {
        throw cardErr.conditions(`exporter label ${JSON.stringify(req.label)} is not allowed for the identity that served this session`);
      }
      return ok(session.exporter(req.label, req.context, req.length));
    } finally {
      wipe(req.context);
    }
  }
}
