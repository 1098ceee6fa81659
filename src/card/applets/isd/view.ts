/**
 * card/applets/isd/view: what the rest of the card reads from the security domain's record — for
 * the card OS and the TLS applet at integration: whether the card or an applet is locked, whether
 * an identity may serve a new handshake (active and not locked; a locked one is answered with
 * LOCKED_IDENTITY_ALERT), whether a client certificate's serial is revoked, the client-auth CAs —
 * and the audit entry of a TLS session. Pure reads, plus one transaction for the audit entry.
 * imports bytes/, gp/admin, isd siblings.
 */
import { concat, equalBytes } from '../../../bytes/index.js';
import { AuditEvent, CardLifecycle, SlotStatus } from '../../../gp/admin/constants.js';
import { appendAudit } from './audit-log.js';
import { canonicalSerial } from './functions-trust.js';
import type { IsdPlatform } from './platform.js';
import { findSlot, type IsdRecord } from './record.js';

export interface IsdView {
  readonly lifecycle: number;
  /** CARD_LOCKED or TERMINATED: no applet but the security domain may be selected. */
  readonly cardLocked: boolean;
  readonly terminated: boolean;
  appletLocked(aid: Uint8Array): boolean;
  /** Whether the slot's identity may serve a new handshake: it is active and not locked. */
  identityServable(slot: number): boolean;
  identityLocked(slot: number): boolean;
  /** Whether a client certificate serial (INTEGER content bytes) is on the revocation list. */
  isRevoked(serial: Uint8Array): boolean;
  /** CA certificates client chains may end at (mutual TLS), and the operator root. */
  readonly clientCas: readonly Uint8Array[];
  readonly operatorRoot: Uint8Array | undefined;
  readonly timeAnchor: { readonly time: number; readonly counter: number } | undefined;
}

export function isdView(r: IsdRecord): IsdView {
  return {
    lifecycle: r.lifecycle,
    cardLocked: r.lifecycle === CardLifecycle.cardLocked || r.lifecycle === CardLifecycle.terminated,
    terminated: r.lifecycle === CardLifecycle.terminated,
    appletLocked: (aid) => r.lockedApplets.some((a) => equalBytes(a, aid)),
    identityServable: (slot) => {
      const s = findSlot(r, slot);
      return !!s && s.status === SlotStatus.active && !s.locked;
    },
    identityLocked: (slot) => findSlot(r, slot)?.locked ?? false,
    isRevoked: (serial) => {
      const s = canonicalSerial(serial);
      return r.revokedSerials.some((x) => equalBytes(x, s));
    },
    clientCas: r.clientCas,
    operatorRoot: r.operatorRoot,
    timeAnchor: r.timeAnchor,
  };
}

export interface TlsSessionAudit {
  readonly slot: number;
  readonly cipherSuite: number;
  readonly exported: boolean;
  /** First 16 bytes of SHA-256 of the session id (or of the handshake transcript). */
  readonly sessionHash: Uint8Array;
  /** First 16 bytes of SHA-256 of the client's leaf certificate; zeros without client auth. */
  readonly clientCertHash: Uint8Array;
}

/** Appends a TLS session entry (event 05): slot(1) ‖ suite(2) ‖ exported(1) ‖ session(16) ‖ client cert(16). */
export function auditTlsSession(platform: IsdPlatform, s: TlsSessionAudit): number {
  if (s.sessionHash.length !== 16 || s.clientCertHash.length !== 16) throw new RangeError('hashes are 16 bytes');
  return platform.transaction((d) =>
    appendAudit(
      d.record,
      platform.now(),
      AuditEvent.tlsSession,
      concat(Uint8Array.of(s.slot, s.cipherSuite >> 8, s.cipherSuite & 0xff, s.exported ? 1 : 0), s.sessionHash, s.clientCertHash),
    ),
  );
}
