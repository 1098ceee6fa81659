/**
 * card/services/security-domain: what the rest of the card reads from, and records in, the security
 * domain's record (state `isd`; the applet is card/applets/isd) — the rules the TLS applets and the
 * card OS enforce (docs/architecture.md "The security domain in the card"):
 *
 *  - Lifecycle and locks (`admit`, called by the card OS): a TERMINATED card selects nothing but the
 *    security domain (6A81); a CARD_LOCKED card, or an applet locked by SET STATUS, refuses SELECT
 *    with 6283 (GlobalPlatform's "card locked" warning, the design brief's answer for a locked TLS
 *    applet) and any command of it on a channel where it was selected before with 6985: no new
 *    handshake and no record processing.
 *  - Identity slots ↔ identities: the ISD's slot N is the card identity labelled `slot<N>` (1–8;
 *    `slotLabel`). Those labels are the security domain's: the setls applet's own identity commands
 *    refuse them (6985). Other identities (made with GENERATE-KEY, e.g. `default`) keep working as
 *    before: the ISD neither lists nor locks them, but the card lock and the deny-list apply to them.
 *  - Handshakes: a slot identity serves only while its slot is active and not locked; one that would
 *    answer a ClientHello (its SNI, or the channel's default) but may not is refused with
 *    access_denied (`usable`, IdentityService.select). Its clients' chains must end at the operator's
 *    client CAs (PutTrustAnchors role 02); every identity's client certificate is checked against the
 *    deny-list (PutRevocationList): certificate_revoked.
 *  - Audit: each TLS session served by a sealed card is appended to the ISD's hash-chained audit log
 *    when it ends (event 05: slot, suite, exported, SHA-256 of a per-session exporter value, SHA-256 of
 *    the client certificate) — in RAM, written with the card's next state write (`sync` before the
 *    card signs or reports the log head), so the handshake path never waits for a write.
 *
 * A card without a record (made before the security domain existed) or whose record is still in
 * OP_READY (not personalised) enforces nothing of this: it behaves as before.
 * No secrets. imports bytes/, apdu/, protocol/, tls/ (api types), card/.
 */
import { createHash } from 'node:crypto';
import { equalBytes, parseBerTlvs } from '../../bytes/index.js';
import { SW } from '../../apdu/index.js';
import { AuditEvent, CardLifecycle, ISD_AID, IsdLimits, SetlsSw, SlotStatus } from '../../protocol/index.js';
import type { TlsSessionInfo } from '../../tls/api.js';
import { appendAudit, findSlot, isdView, type IsdRecord } from '../applets/isd/index.js';
import { CardError } from '../errors.js';
import type { CardState, IdentityRecord } from '../state.js';
import type { PersistentStore } from '../os/persistent-store.js';
import type { TimeService } from './time-service.js';

const SLOT_LABEL = /^slot([1-9][0-9]?)$/;

/** The card identity of the security domain's slot `slot`. */
export function slotLabel(slot: number): string {
  return `slot${slot}`;
}

/** The slot an identity label stands for (`slot1`–`slot8`), or undefined. */
export function slotOfLabel(label: string): number | undefined {
  const m = SLOT_LABEL.exec(label);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n >= 1 && n <= IsdLimits.maxSlot ? n : undefined;
}

/** The exporter label of the per-session value whose hash identifies a TLS session in the audit log. */
export const AUDIT_EXPORTER_LABEL = 'EXPORTER-setls-audit-session';

/** What the audit entry of one TLS session records (hashes: first 16 bytes of SHA-256). */
export interface TlsSessionFacts {
  readonly slot: number;
  readonly cipherSuite: number;
  readonly sessionHash: Uint8Array;
  readonly clientCertHash: Uint8Array;
}

/** What the security domain adds to an identity's engine view (tlsIdentity). */
export interface EngineIdentityRules {
  /** Client chains end at these (slot identities: the operator's client CAs). */
  readonly trustAnchors?: readonly Uint8Array[];
  readonly isRevoked?: (chain: readonly Uint8Array[]) => boolean;
}

const sha16 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest().subarray(0, 16));
const ZERO16: Uint8Array = new Uint8Array(16);

/** The serial number (INTEGER content) of a DER certificate; undefined when it does not parse. */
export function certificateSerial(der: Uint8Array): Uint8Array | undefined {
  try {
    const cert = parseBerTlvs(der, 1)[0];
    if (!cert || cert.tag !== 0x30) return undefined;
    const tbs = parseBerTlvs(cert.value, 3)[0];
    if (!tbs || tbs.tag !== 0x30) return undefined;
    const fields = parseBerTlvs(tbs.value, 16);
    const serial = fields[0]?.tag === 0xa0 ? fields[1] : fields[0];
    return serial?.tag === 0x02 ? serial.value : undefined;
  } catch {
    return undefined;
  }
}

export class SecurityDomainService {
  /** TLS session entries appended in RAM since the last state write. */
  private pendingAudit = false;

  constructor(
    private readonly store: PersistentStore<CardState>,
    private readonly time: TimeService,
  ) {
    store.onWritten(() => {
      this.pendingAudit = false;
    });
  }

  /** The record (undefined: the card has no security domain). */
  get record(): IsdRecord | undefined {
    return this.store.state.isd;
  }

  /** Whether the security domain was personalised and sealed: its decisions apply (SECURED, CARD_LOCKED, TERMINATED). */
  get sealed(): boolean {
    const r = this.store.state.isd;
    return r !== undefined && r.lifecycle !== CardLifecycle.opReady;
  }

  /**
   * The card OS's lifecycle gate (CardOsOptions.admit): throws CardError when the security domain's
   * locks refuse `aid` (SELECT: 6283, or 6A81 on a terminated card; a command of an applet selected
   * before the lock: 6985). The security domain itself is always admitted.
   */
  admit(aid: Uint8Array, what: 'select' | 'command'): void {
    const r = this.store.state.isd;
    if (r === undefined || r.lifecycle === CardLifecycle.opReady || (r.lifecycle === CardLifecycle.secured && r.lockedApplets.length === 0)) return;
    if (equalBytes(aid, ISD_AID)) return;
    if (r.lifecycle === CardLifecycle.terminated) {
      throw new CardError('ERR_CARD_TERMINATED', 'the card is terminated: only its security domain answers', what === 'select' ? SetlsSw.terminated : SW.conditionsNotSatisfied);
    }
    const why = r.lifecycle === CardLifecycle.cardLocked ? 'the card is locked' : r.lockedApplets.some((a) => equalBytes(a, aid)) ? 'this applet is locked' : undefined;
    if (why === undefined) return;
    throw new CardError('ERR_CARD_APPLET_LOCKED', `${why} by its security domain (SET STATUS)`, what === 'select' ? SetlsSw.locked : SW.conditionsNotSatisfied);
  }

  /**
   * Whether an identity may serve a new handshake: a slot identity only while its slot is active and
   * not locked (on a sealed card); any other identity as long as the card serves at all.
   */
  readonly usable = (rec: IdentityRecord): boolean => {
    const r = this.store.state.isd;
    if (r === undefined || r.lifecycle === CardLifecycle.opReady) return true;
    if (r.lifecycle !== CardLifecycle.secured) return false;
    const slot = slotOfLabel(rec.label);
    if (slot === undefined) return true;
    const s = findSlot(r, slot);
    if (!s) return true; // an identity of that name the security domain does not administer
    return s.status === SlotStatus.active && !s.locked;
  };

  /**
   * The security domain's rules for an identity's sessions: client CAs (slot identities) and the
   * deny-list (every identity); undefined when there is nothing to add (no sealed security domain).
   */
  engineRules(rec: IdentityRecord): EngineIdentityRules | undefined {
    const r = this.store.state.isd;
    if (r === undefined || r.lifecycle === CardLifecycle.opReady) return undefined;
    const isRevoked =
      r.revokedSerials.length === 0
        ? undefined
        : (chain: readonly Uint8Array[]): boolean => {
            const serial = chain[0] && certificateSerial(chain[0]);
            // a leaf whose serial cannot be read cannot be cleared against the list
            return serial === undefined || isdView(r).isRevoked(serial);
          };
    const slot = slotOfLabel(rec.label);
    const trustAnchors = slot !== undefined && findSlot(r, slot) ? r.clientCas : undefined;
    if (!isRevoked && !trustAnchors) return undefined;
    const rules: { trustAnchors?: readonly Uint8Array[]; isRevoked?: (chain: readonly Uint8Array[]) => boolean } = {};
    if (trustAnchors) rules.trustAnchors = trustAnchors;
    if (isRevoked) rules.isRevoked = isRevoked;
    return rules;
  }

  /** Whether TLS sessions are audited (a sealed security domain that serves). */
  get auditing(): boolean {
    const r = this.store.state.isd;
    return r !== undefined && (r.lifecycle === CardLifecycle.secured || r.lifecycle === CardLifecycle.cardLocked);
  }

  /**
   * The audit facts of an authenticated session, taken when its handshake completes: `exporter`
   * gives 32 bytes of the session's exporter for AUDIT_EXPORTER_LABEL (unique per session; a client
   * can compute it too, so it can find its session in the log).
   */
  sessionFacts(label: string | undefined, info: TlsSessionInfo, exporter: (label: string) => Uint8Array): TlsSessionFacts {
    let sessionHash: Uint8Array = ZERO16;
    try {
      const value = exporter(AUDIT_EXPORTER_LABEL);
      sessionHash = sha16(value);
      value.fill(0);
    } catch {
      // an engine without an exporter: the entry still records the session, without its hash
    }
    return {
      slot: (label !== undefined ? slotOfLabel(label) : undefined) ?? 0,
      cipherSuite: info.cipherSuite,
      sessionHash,
      clientCertHash: info.peer ? info.peer.fingerprint256.slice(0, 16) : ZERO16,
    };
  }

  /**
   * Appends a TLS session's entry (event 05) to the audit log in RAM; it is written with the card's
   * next state write (at the latest by `sync`, before the log head is signed or reported).
   */
  logSession(f: TlsSessionFacts, exported: boolean): void {
    if (!this.auditing) return;
    const now = this.time.now();
    const detail = new Uint8Array(36);
    detail[0] = f.slot;
    detail[1] = f.cipherSuite >> 8;
    detail[2] = f.cipherSuite & 0xff;
    detail[3] = exported ? 1 : 0;
    detail.set(f.sessionHash, 4);
    detail.set(f.clientCertHash, 20);
    this.store.update((s) => {
      if (s.isd) appendAudit(s.isd, now, AuditEvent.tlsSession, detail);
    });
    this.pendingAudit = true;
  }

  /** Writes TLS session entries still in RAM (before a signed or reported audit head). */
  sync(): void {
    if (this.pendingAudit && !this.store.inTransaction) this.store.flush();
  }
}
