/**
 * How the tandem drives a card's TLS server: the session interface shared by the EAP-TLS shuttle
 * (setls applet, `EapSession`) and the TLS-SE driver (Urien's draft-urien-tls-se applet,
 * `TlsSeSession`), and the per-card "driver" that selects the applet, presents the PIN, resets the
 * TLS state between sessions and makes sessions.
 * imports host/.
 */
import { CardClient, SETLS_AID } from './card-client.js';
import type { SessionInfo } from './card-codec.js';
import { EapSession, type DecryptResult, type EapSessionOptions, type HandshakeStep } from './eap-session.js';

export type SeSessionPhase = 'handshake' | 'failing' | 'connected' | 'failed' | 'closed';

/** One TLS session inside the card, as RecordLayer / SeTlsSocket / TlsTandem use it. */
export interface SeSession {
  readonly phase: SeSessionPhase;
  /** The client's whole records in; the card's records for the client out. */
  handshake(records: readonly Uint8Array[], gmtTime?: number): Promise<HandshakeStep>;
  /** After a failed step and delivery of the alert. */
  acknowledgeFailure(): Promise<void>;
  /** One plaintext (≤ 16384 bytes) of type 23, or close_notify (type 21, `01 00`), in; record(s) out. */
  encrypt(type: number, plaintext: Uint8Array): Promise<Uint8Array>;
  /** One whole record from the client in. */
  decrypt(record: Uint8Array): Promise<DecryptResult>;
  /** Wipes host-held keys (TLS-Tandem exported sessions); absent when the keys live in the card. */
  dispose?(): void;
  /**
   * RFC 5705 / RFC 8446 §7.5 keying material of this session, computed by the card (EXPORTER);
   * absent where the applet has no exporter (TLS-SE) or the keys left the card.
   */
  exportKeyingMaterial?(label: string, context: Uint8Array | undefined, length: number): Promise<Uint8Array>;
  /** True once the card wiped this session itself with its last answer (setls END): no resetState() is owed. */
  readonly cardWiped?: boolean;
}

/** What the tandem needs of a card beyond sessions. */
export interface SessionDriver {
  readonly kind: 'eap' | 'tls-se';
  /** SELECT the applet, VERIFY the user PIN (and SET-IDENTITY for the setls applet when asked). */
  start(): Promise<void>;
  /** Wipes the card's TLS session (between clients). */
  resetState(): Promise<void>;
  /**
   * True when a session made with `{ fresh: true }` wipes the card's TLS session with its first
   * command (setls PROCESS-EAP START): no resetState() is needed before a handshake.
   */
  readonly freshSessions: boolean;
  /** A session for the next handshake; `fresh` where the driver supports it (see `freshSessions`). */
  newSession(opts?: { fresh?: boolean }): SeSession;
  /** What the handshake negotiated, when the applet can tell. */
  sessionInfo(): Promise<SessionInfo | undefined>;
}

export interface EapDriverOptions {
  readonly aid?: Uint8Array;
  readonly pin: string;
  readonly identity?: string;
  readonly session?: EapSessionOptions;
}

/** The setls applet (EAP-TLS in APDUs, docs/apdu-protocol.md). */
export class EapDriver implements SessionDriver {
  readonly kind = 'eap' as const;
  readonly freshSessions = true;
  constructor(
    readonly card: CardClient,
    private readonly opts: EapDriverOptions,
  ) {}

  async start(): Promise<void> {
    await this.card.select(this.opts.aid ?? SETLS_AID);
    await this.card.verifyPin(this.opts.pin, 'user');
    if (this.opts.identity !== undefined) await this.card.setIdentity(this.opts.identity);
  }

  resetState(): Promise<void> {
    return this.card.resetState();
  }

  /**
   * `fresh`: START on the first Response; the handshake's EAP-Success always brings the session
   * info (INFO); DECRYPTs carry END (the card wipes the session with the answer that ends it).
   */
  newSession(opts: { fresh?: boolean } = {}): SeSession {
    // Object.assign, not `{ ...session, fresh, … }`: a spread first then properties is a V8 slow path (per session).
    return new EapSession(this.card, Object.assign({}, this.opts.session, { fresh: opts.fresh === true, sessionInfo: true, endOnClose: true, foldSuccess: true }));
  }

  sessionInfo(): Promise<SessionInfo | undefined> {
    return this.card.sessionInfo();
  }
}
