/**
 * The card as the key holder of host DTLS associations (docs/apdu-protocol.md §8): a DtlsBackend
 * that speaks PROCESS-EAP to the setls applet. RESET-STATE with P2 = 01 opens a DTLS session; each
 * record the association hands over travels alone in one EAP-Response (EapSession: Identifier echo,
 * GMT time on the first Response, EAP-TLS fragmentation, SW 9001 / 7001); after EAP-Success records go
 * through PROCESS-EAP-DECRYPT (Flags `04` = dropped) and PROCESS-EAP-ENCRYPT.
 *
 * With `acquire` (a card scheduler, TlsPool.acquireChannel) every association gets a logical channel
 * of its own, lent by the scheduler that also serves TLS, and gives it back when it ends; `openBackend`
 * waits for the scheduler's turn. Without it the card's channel holds one session, so one
 * association at a time: `openBackend` answers undefined (busy) while a DTLS association or, through
 * `available`, anything else (the TLS tandem) uses the card; the client's ClientHello retransmission
 * tries again. CardGate lets a TLS tandem share that transport: its APDUs wait while a DTLS
 * association holds the card.
 * imports bytes/, eap/ (via host), transport/ and host/.
 */
import type { CardTransport } from '../../transport/index.js';
import { CardClient } from '../card-client.js';
import { EapSession, type EapSessionOptions } from '../eap-session.js';
import type { DtlsBackend, DtlsBackendOutput } from './association.js';
import type { DtlsPeer } from './server.js';

const EMPTY = new Uint8Array(0);
const NOTHING: DtlsBackendOutput = { records: EMPTY, plaintext: [], handshakeComplete: false, peerClosed: false };

/** Serialises a card between DTLS associations and other users of its transport (the TLS tandem). */
export class CardGate {
  private held = false;
  private inflight = 0;
  private waiters: (() => void)[] = [];
  /** The transport for the other users: their APDUs wait while a DTLS association holds the card. */
  readonly shared: CardTransport;

  constructor(readonly inner: CardTransport) {
    const transmit = async (apdu: Uint8Array): Promise<Uint8Array> => {
      while (this.held) await new Promise<void>((r) => this.waiters.push(r));
      this.inflight++;
      try {
        return await inner.transmit(apdu);
      } finally {
        this.inflight--;
      }
    };
    this.shared = {
      transmit,
      close: () => inner.close(),
      extendedLength: inner.extendedLength,
      ...(inner.withTransaction ? { withTransaction: <T>(fn: () => Promise<T>) => inner.withTransaction!(fn) } : {}),
    };
  }

  get isHeld(): boolean {
    return this.held;
  }

  /** Takes the card for a DTLS association when nobody's APDU is in flight. */
  tryHold(): boolean {
    if (this.held || this.inflight > 0) return false;
    this.held = true;
    return true;
  }

  release(): void {
    this.held = false;
    const w = this.waiters.splice(0);
    for (const f of w) f();
  }
}

/** A card channel lent by a scheduler: its CardClient (applet selected, PIN verified) and how to give it back. */
export interface DtlsCardLease {
  readonly card: CardClient;
  release(): void;
  /** The scheduler may ask for the channel back while the association handshakes (TlsPool ChannelLease). */
  preemptible?(ask: () => boolean): void;
}

export interface CardDtlsOptions {
  /** The card (the DTLS associations' own CardClient on the transport); unused with `acquire`. */
  readonly card?: CardClient;
  /** A channel per association from a scheduler (undefined: none in time; the ClientHello is dropped). */
  readonly acquire?: (peer: DtlsPeer) => Promise<DtlsCardLease | undefined>;
  /** User PIN: SELECT + VERIFY before the first session and after a card error. */
  readonly pin: string;
  /** Shares the card with other users of its transport; without it the card is the DTLS server's alone. */
  readonly gate?: CardGate;
  /** Whether the card may be taken now (e.g. `() => !tandem.inUse && tandem.queued === 0`). */
  readonly available?: () => boolean;
  readonly session?: EapSessionOptions;
  /** Host time for the first Response (Unix seconds). Default: now. */
  readonly now?: () => number;
}

/** openBackend for DtlsServer: one card session per association, busy while one runs. */
export class CardDtlsBackends {
  private busy = false;
  private started = false;
  /** Sessions opened and how many ended busy-refused (for tests and metrics). */
  readonly stats = { opened: 0, busy: 0 };

  constructor(private readonly opts: CardDtlsOptions) {}

  get inUse(): boolean {
    return this.busy;
  }

  private get card(): CardClient {
    if (!this.opts.card) throw new TypeError('CardDtlsBackends needs a card (or acquire)');
    return this.opts.card;
  }

  /** SELECT + VERIFY (once; again after a card error). */
  async start(card: CardClient = this.card): Promise<void> {
    await card.select();
    await card.verifyPin(this.opts.pin, 'user');
    if (card === this.opts.card) this.started = true;
  }

  // on the client's own logical channel (CardClient's CLA carries it)
  private resetState(mode: 'tls' | 'dtls', card: CardClient = this.card): Promise<void> {
    return card.resetState(mode);
  }

  /** openBackend with a channel lent by the scheduler (already selected and verified by its user). */
  private async leased(peer: DtlsPeer): Promise<DtlsBackend | undefined> {
    const lease = await this.opts.acquire!(peer);
    if (!lease) {
      this.stats.busy++;
      return undefined;
    }
    try {
      try {
        await this.resetState('dtls', lease.card);
      } catch {
        await this.start(lease.card); // the card was reset (selection and PIN gone): once more
        await this.resetState('dtls', lease.card);
      }
    } catch (e) {
      lease.release();
      throw e;
    }
    this.stats.opened++;
    const backend = this.backend(() => lease.release(), lease.card);
    if (lease.preemptible) backend.preemptible = (ask) => lease.preemptible!(ask);
    return backend;
  }

  readonly openBackend = async (peer: DtlsPeer): Promise<DtlsBackend | undefined> => {
    if (this.opts.acquire) return this.leased(peer);
    if (this.busy || (this.opts.available && !this.opts.available())) {
      this.stats.busy++;
      return undefined;
    }
    const gate = this.opts.gate;
    if (gate && !gate.tryHold()) {
      this.stats.busy++;
      return undefined;
    }
    this.busy = true;
    const free = (): void => {
      this.busy = false;
      gate?.release();
    };
    try {
      if (!this.started) await this.start();
      try {
        await this.resetState('dtls');
      } catch {
        await this.start(); // the card was reset (selection and PIN gone): once more
        await this.resetState('dtls');
      }
    } catch (e) {
      this.started = false;
      free();
      throw e;
    }
    this.stats.opened++;
    return this.backend(free);
  };

  private backend(free: () => void, card: CardClient = this.card): DtlsBackend {
    // INFO: the card names the alert it sent with its 7001 answer (docs/apdu-protocol.md §3).
    const session = new EapSession(card, { sessionInfo: true, foldSuccess: true, ...this.opts.session });
    let first = true;
    let closed = false;
    const now = this.opts.now ?? (() => Math.floor(Date.now() / 1000));
    return {
      receive: async (record) => {
        if (closed) return NOTHING;
        if (session.phase === 'handshake') {
          const step = await session.handshake([record], first ? now() : undefined);
          first = false;
          if (step.failed) {
            const sentByUs = step.toClient.length > 0;
            // Sent: as the card named it (or a plaintext one we can read); received: the client's record, if in clear.
            const alert = sentByUs ? (step.alert ?? alertOf(step.toClient)) : alertOf(record);
            await session.acknowledgeFailure().catch(() => undefined);
            return { records: step.toClient, plaintext: [], handshakeComplete: false, peerClosed: false, alert: { description: alert, sentByUs } };
          }
          return { records: step.toClient, plaintext: [], handshakeComplete: step.done, peerClosed: false };
        }
        if (session.phase !== 'connected') return NOTHING;
        const d = await session.decrypt(record);
        return {
          records: d.outRecords,
          plaintext: d.plaintext.length > 0 ? [d.plaintext] : [],
          handshakeComplete: false,
          peerClosed: d.peerClosed,
          ...(d.failed ? { alert: { description: d.alert, sentByUs: d.outRecords.length > 0 } } : {}),
        };
      },
      encrypt: (type, plaintext) => session.encrypt(type, plaintext),
      close: async () => {
        if (closed) return;
        closed = true;
        try {
          await this.resetState('tls', card); // wipes the DTLS session in the card
        } catch {
          if (card === this.opts.card) this.started = false;
        } finally {
          free();
        }
      },
    };
  }
}

/** The alert description of a plaintext (epoch-0) DTLS alert record; undefined when it is not one. */
function alertOf(records: Uint8Array): number | undefined {
  if (records.length >= 15 && records[0] === 21 && records[3] === 0 && records[4] === 0) return records[14];
  return undefined;
}
