/**
 * One DTLS association (one client address:port) on the host side: what draft-urien-uta-tls-dtls-
 * security-module gives the host, around a backend that holds the keys (the card, or the engine in
 * tests):
 *
 *   client datagrams ─► records ─► handshake fragments reassembled into whole messages (in message_seq
 *   order, duplicates dropped) ─► backend.receive(one record with one whole message)
 *                       ChangeCipherSpec / epoch ≥ 1 records ─► backend.receive(as received)
 *   backend records ─► epoch-0 handshake messages cut into fragments ≤ PMTU, renumbered with the host's
 *   epoch-0 sequence; epoch-1 records as the backend sealed them ─► datagrams ≤ PMTU
 *
 * Flights (RFC 6347 §4.2.4): every backend output that carries handshake records is a new flight; it
 * is kept and re-sent when its timer fires (1 s, doubling, at most 60 s, at most `maxRetransmits`
 * times, then the association fails) and when the client repeats its previous flight (duplicate
 * fragments); the server's last flight has no timer, it is re-sent only on such a repeat, until the
 * client's first application data shows it arrived.
 * Calls into the backend are serialised; at most `maxQueued` datagrams wait, the rest are dropped.
 * imports tls/record (framing) and host/ siblings.
 */
import { EventEmitter } from 'node:events';
import { alertName } from '../../registry/tls-names.js';
import {
  DTLS_RECORD_HEADER_LENGTH,
  DTLS_HANDSHAKE_HEADER_LENGTH,
  DtlsHandshakeReassembler,
  encodeDtlsHandshake,
  encodeDtlsRecord,
  packDatagrams,
  parseDtlsHandshakeFragments,
  parseDtlsRecords,
  type DtlsRecord,
} from '../../tls/record/dtls-framing.js';

const HANDSHAKE = 22;
const CCS = 20;
const APPLICATION_DATA = 23;

/** What the key holder returns for one call (the engine's TlsOutput shape). */
export interface DtlsBackendOutput {
  /** DTLS records to send, concatenated. */
  readonly records: Uint8Array;
  readonly plaintext: readonly Uint8Array[];
  readonly handshakeComplete: boolean;
  readonly peerClosed: boolean;
  /** `description` undefined: the alert is not known in clear (an encrypted one the card did not name, or one the client sent in a handshake). */
  readonly alert?: { readonly description: number | undefined; readonly sentByUs: boolean };
}

/** The key holder of one association: the card (PROCESS-EAP, docs/apdu-protocol.md §8) or the engine. */
export interface DtlsBackend {
  /** One or more whole DTLS records (handshake records carry whole messages). */
  receive(records: Uint8Array): Promise<DtlsBackendOutput>;
  /** Application data (23) or an alert (21) → DTLS record(s). */
  encrypt(contentType: number, plaintext: Uint8Array): Promise<Uint8Array>;
  /** Ends the session and frees the key holder. */
  close(): Promise<void>;
  /**
   * A key holder lent by a scheduler may ask for itself back while the association handshakes
   * (fair share): the association closes when `ask` is called and it still handshakes (true).
   */
  preemptible?(ask: () => boolean): void;
}

export interface DtlsAssociationOptions {
  /** Path MTU: largest datagram sent (default 1200, RFC 7925 §11 / RFC 8085). */
  readonly mtu?: number;
  /** Initial retransmission timeout (default 1000 ms) and its cap (60 000 ms), RFC 6347 §4.2.4.1. */
  readonly initialTimeoutMs?: number;
  readonly maxTimeoutMs?: number;
  /** Timer-driven retransmissions of one flight before the association fails (default 6). */
  readonly maxRetransmits?: number;
  /** Datagrams waiting for the backend before new ones are dropped (default 32). */
  readonly maxQueued?: number;
}

export type AssociationState = 'handshaking' | 'connected' | 'closed';

/**
 * Events: 'connected'; 'message' (plaintext of one application-data record); 'close' (reason);
 * 'datagram' (bytes to send to the peer; the server wires it to the socket).
 */
export class DtlsAssociation extends EventEmitter {
  state: AssociationState = 'handshaking';
  /** Date.now() at creation: the moment it got its key holder (a card channel). */
  readonly createdAt = Date.now();
  lastActivity = Date.now();
  /** Date.now() of the last handshake progress: creation, or a new flight from the key holder (the stall deadline runs from here). */
  lastProgress = Date.now();
  private readonly reassembler: DtlsHandshakeReassembler;
  private writeSeq0: number;
  private flight: Uint8Array[] = []; // records of the last flight (epoch-0 ones re-numbered on resend)
  private finalFlight = false;
  private lastFlightSent = 0;
  private timer: NodeJS.Timeout | undefined;
  private timeoutMs: number;
  private retransmits = 0;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private readonly mtu: number;
  private readonly opts: Required<DtlsAssociationOptions>;
  /** Retransmissions sent (timer and repeat-triggered), for tests and metrics. */
  retransmissions = 0;

  constructor(
    readonly address: string,
    readonly port: number,
    /** The ClientHello's random (a new one from the same address:port is a new association). */
    readonly clientRandom: Uint8Array,
    firstMessageSeq: number,
    firstRecordSeq: number,
    private readonly backend: DtlsBackend,
    opts: DtlsAssociationOptions = {},
  ) {
    super();
    this.opts = {
      mtu: opts.mtu ?? 1200,
      initialTimeoutMs: opts.initialTimeoutMs ?? 1000,
      maxTimeoutMs: opts.maxTimeoutMs ?? 60_000,
      maxRetransmits: opts.maxRetransmits ?? 6,
      maxQueued: opts.maxQueued ?? 32,
    };
    this.mtu = Math.max(256, this.opts.mtu);
    this.timeoutMs = this.opts.initialTimeoutMs;
    this.reassembler = new DtlsHandshakeReassembler(firstMessageSeq);
    this.writeSeq0 = firstRecordSeq; // RFC 6347 §4.2.1: continue from the ClientHello's record number
  }

  get key(): string {
    return `${this.address}:${this.port}`;
  }

  /** A datagram from the peer (queued behind earlier ones). */
  receive(datagram: Uint8Array): void {
    if (this.state === 'closed') return;
    if (this.queued >= this.opts.maxQueued) return; // overload: dropped like a lost datagram
    this.queued++;
    const copy = new Uint8Array(datagram);
    this.queue = this.queue
      .then(() => this.process(copy))
      .catch((e: unknown) => this.close(`backend error: ${(e as Error).message}`))
      .finally(() => {
        this.queued--;
      });
  }

  /** Sends application data (one record per call when it fits; CoAP messages must). */
  async send(plaintext: Uint8Array): Promise<void> {
    if (this.state !== 'connected') throw new Error(`DTLS association is ${this.state}`);
    const work = this.queue.then(async () => {
      if (this.state !== 'connected') return;
      const records = await this.backend.encrypt(APPLICATION_DATA, plaintext);
      for (const d of packDatagrams(parseDtlsRecords(records).map((r) => r.raw), this.mtu)) this.emit('datagram', d);
    });
    this.queue = work.catch(() => undefined);
    return work;
  }

  /** Sends close_notify (when connected) and ends the association. */
  async end(): Promise<void> {
    if (this.state === 'connected') {
      await this.queue;
      try {
        const rec = await this.backend.encrypt(21, Uint8Array.of(1, 0));
        this.emit('datagram', rec);
      } catch {
        // the backend is gone: nothing to send
      }
    }
    this.close('local close');
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTimer();
    this.flight = [];
    this.reassembler.clear();
    // After the backend call in flight (if any) has finished: a card session's exchange may span
    // several APDUs, and once the backend is closed its card channel may serve someone else.
    void this.queue.then(() => this.backend.close()).catch(() => undefined);
    this.emit('close', reason);
  }

  // ------------------------------------------------------------------ input

  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private async process(datagram: Uint8Array): Promise<void> {
    if (this.state === 'closed') return;
    const records = parseDtlsRecords(datagram);
    if (records.length === 0) return; // garbage: dropped
    this.lastActivity = Date.now();
    let repeated = false;
    for (const r of records) {
      if (this.isClosed()) return;
      if (r.epoch === 0) {
        if (r.type === HANDSHAKE) {
          const frags = parseDtlsHandshakeFragments(r.fragment);
          if (!frags) continue;
          for (const f of frags) {
            const res = this.reassembler.push(f);
            if (res === 'duplicate') repeated = true;
          }
          for (let m = this.reassembler.take(); m; m = this.reassembler.take()) {
            this.progress();
            await this.toBackend(encodeDtlsRecord(HANDSHAKE, 0, r.seq, m.raw, r.version));
          }
        } else if (r.type === CCS || r.type === 21) {
          if (this.state === 'handshaking') await this.toBackend(r.raw);
        }
        // epoch-0 application data: dropped
      } else {
        if (r.type !== APPLICATION_DATA && this.state === 'handshaking') this.progress();
        await this.toBackend(r.raw, r);
      }
    }
    if (repeated) this.onPeerRepeat();
  }

  /** The peer moved on: the flight we were retransmitting arrived. */
  private progress(): void {
    if (this.finalFlight) return;
    this.stopTimer();
  }

  private async toBackend(record: Uint8Array, parsed?: DtlsRecord): Promise<void> {
    const out = await this.backend.receive(record);
    if (this.isClosed()) return;
    if (parsed && parsed.type === APPLICATION_DATA && out.plaintext.length > 0 && this.finalFlight) {
      this.flight = []; // the client sent data under the new keys: it has our Finished
      this.finalFlight = false;
    }
    this.handleOutput(out);
  }

  private handleOutput(out: DtlsBackendOutput): void {
    const recs = parseDtlsRecords(out.records);
    const hasHandshake = recs.some((r) => r.type === HANDSHAKE || r.type === CCS);
    if (hasHandshake) {
      this.lastProgress = Date.now();
      this.flight = recs.map((r) => r.raw.slice());
      this.finalFlight = out.handshakeComplete;
      this.retransmits = 0;
      this.timeoutMs = this.opts.initialTimeoutMs;
      this.sendFlight();
      if (!out.handshakeComplete) this.startTimer();
    } else if (recs.length > 0) {
      for (const d of packDatagrams(this.frameRecords(recs.map((r) => r.raw)), this.mtu)) this.emit('datagram', d);
    }
    if (out.handshakeComplete && this.state === 'handshaking') {
      this.state = 'connected';
      this.stopTimer();
      this.emit('connected');
    }
    for (const p of out.plaintext) this.emit('message', p);
    if (out.peerClosed) this.close('peer closed');
    else if (out.alert) this.close(`alert ${out.alert.description === undefined ? '(description unknown)' : alertName(out.alert.description)} ${out.alert.sentByUs ? 'sent' : 'received'}`);
  }

  // ------------------------------------------------------------------ output

  /** Epoch-0 records re-cut to the MTU and numbered from the host's counter; others unchanged. */
  private frameRecords(raws: readonly Uint8Array[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    const room = this.mtu - DTLS_RECORD_HEADER_LENGTH;
    for (const raw of raws) {
      const [r] = parseDtlsRecords(raw);
      if (!r) continue;
      if (r.epoch !== 0) {
        out.push(raw);
        continue;
      }
      if (r.type !== HANDSHAKE) {
        out.push(encodeDtlsRecord(r.type, 0, this.writeSeq0++, r.fragment, r.version));
        continue;
      }
      for (const f of parseDtlsHandshakeFragments(r.fragment) ?? []) {
        const piece = Math.max(1, room - DTLS_HANDSHAKE_HEADER_LENGTH);
        for (let o = 0; o < f.fragmentLength || (o === 0 && f.fragmentLength === 0); o += piece) {
          const data = f.fragment.subarray(o, o + piece);
          out.push(encodeDtlsRecord(HANDSHAKE, 0, this.writeSeq0++, encodeDtlsHandshake(f.msgType, f.messageSeq, f.length, f.fragmentOffset + o, data), r.version));
          if (f.fragmentLength === 0) break;
        }
      }
    }
    return out;
  }

  private sendFlight(): void {
    if (this.flight.length === 0 || this.state === 'closed') return;
    this.lastFlightSent = Date.now();
    for (const d of packDatagrams(this.frameRecords(this.flight), this.mtu)) this.emit('datagram', d);
  }

  /** The client repeated a flight we already answered: our answer was lost (RFC 6347 §4.2.4). */
  private onPeerRepeat(): void {
    if (this.flight.length === 0 || Date.now() - this.lastFlightSent < 200) return;
    this.retransmissions++;
    this.sendFlight();
  }

  private startTimer(): void {
    this.stopTimer();
    this.timer = setTimeout(() => this.onTimeout(), this.timeoutMs);
    this.timer.unref?.();
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private onTimeout(): void {
    this.timer = undefined;
    if (this.state !== 'handshaking') return;
    if (this.retransmits >= this.opts.maxRetransmits) {
      this.close('handshake timeout: no answer to our flight');
      return;
    }
    this.retransmits++;
    this.retransmissions++;
    this.timeoutMs = Math.min(this.timeoutMs * 2, this.opts.maxTimeoutMs);
    this.sendFlight();
    this.startTimer();
  }
}
