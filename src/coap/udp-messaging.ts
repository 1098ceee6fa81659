/**
 * CoAP over UDP/DTLS messaging (RFC 7252 §4) for one peer (one DTLS association), in front of the
 * same request machinery as RFC 8323 (CoapServer.handleStream): the request/response layer — Block2,
 * Block1, Observe, /.well-known/core, 4.02 for unknown critical options — is reused as is by feeding it
 * RFC 8323 frames over an in-memory stream; this file adds what UDP needs:
 *
 *   - CON / NON / ACK / RST; message IDs of ours from a random start;
 *   - deduplication (§4.5): a CON seen within EXCHANGE_LIFETIME (247 s) is not processed again — its
 *     ACK (with the piggybacked response once there is one) is re-sent; a NON within NON_LIFETIME
 *     (145 s) is dropped; the table is bounded;
 *   - piggybacked responses: the first response to a CON request rides in its ACK; if the handler
 *     takes longer than `piggybackMs` (default 1 s) an empty ACK goes first and the response follows
 *     as a CON (separate response, §5.2.2);
 *   - our CONs (separate responses, confirmable notifications) are retransmitted after a random
 *     ACK_TIMEOUT × [1, ACK_RANDOM_FACTOR] = 2..3 s, doubling, at most MAX_RETRANSMIT = 4 times;
 *     a CON notification never ACKed, or RST, ends the observation (RFC 7641 §4.5); so does a RST
 *     matching a NON notification (RFC 7641 §3.6: the message IDs of recent NON notifications are kept);
 *   - a NON request with an unknown or malformed critical option is rejected (RST, §5.4.1 and §4.3);
 *     a CON one gets 4.02 piggybacked in the ACK;
 *   - Observe notifications are NON, and every `conNotificationEvery`-th (default 5) is CON;
 *   - a CON Empty message (CoAP ping) and unparseable CON messages get RST; other garbage is dropped.
 * imports coap/ siblings only.
 */
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import { isRequest, isResponse, isSignal } from './codes.js';
import { decodeTcp, decodeUdp, encodeTcp, encodeUdp, TcpFrameSplitter, type CoapMessage, type MessageType } from './message.js';
import { OPTION, encodeUint } from './options.js';
import type { CoapServer, CoapStreamConnection } from './server.js';
import type { CoapPeer } from './request.js';
import { checkOptions, csmMessage } from './signals.js';

/** RFC 7252 §4.8 transmission parameters (defaults). */
export const ACK_TIMEOUT_MS = 2000;
export const ACK_RANDOM_FACTOR = 1.5;
export const MAX_RETRANSMIT = 4;
/** §4.8.2 derived times. */
export const EXCHANGE_LIFETIME_MS = 247_000;
export const NON_LIFETIME_MS = 145_000;

export interface UdpMessagingOptions {
  readonly peer?: CoapPeer;
  /** Largest CoAP message we send (and advertise to the request layer for Block2 slicing). Default 1152. */
  readonly maxMessageSize?: number;
  readonly ackTimeoutMs?: number;
  readonly ackRandomFactor?: number;
  readonly maxRetransmit?: number;
  readonly exchangeLifetimeMs?: number;
  readonly nonLifetimeMs?: number;
  /** Wait this long for a response before sending an empty ACK (separate response). Default 1000. */
  readonly piggybackMs?: number;
  /** Every n-th notification of an observation is CON (1 = all). Default 5. */
  readonly conNotificationEvery?: number;
  /** Deduplication entries kept (oldest dropped first). Default 512. */
  readonly maxDedup?: number;
  /** Random source for the first message ID and the retransmission jitter (tests). */
  readonly random?: () => number;
  /** Message IDs of NON notifications remembered to match a RST (oldest dropped first). Default 256. */
  readonly maxNonNotifications?: number;
}

interface Exchange {
  readonly mid: number;
  readonly type: MessageType;
  /** The request as received (to deregister an observation on RST). */
  readonly request: CoapMessage;
  answered: boolean;
  emptyAcked: boolean;
  piggyTimer: NodeJS.Timeout | undefined;
  notifications: number;
}

interface DedupEntry {
  readonly at: number;
  /** The ACK (or RST) we sent for this CON, re-sent on a duplicate. */
  reply: Uint8Array | undefined;
}

/** A NON notification we sent, so that a RST with its message ID cancels the observation. */
interface SentNotification {
  readonly at: number;
  readonly token: string;
  readonly exchange: Exchange;
}

interface Outstanding {
  readonly datagram: Uint8Array;
  readonly token: string;
  tries: number;
  timeout: number;
  timer: NodeJS.Timeout;
}

const hex = (t: Uint8Array): string => Buffer.from(t.buffer, t.byteOffset, t.length).toString('hex');
const EMPTY = new Uint8Array(0);

/**
 * One peer's messaging layer. Events: 'processed' (a request handed to the request layer, once per
 * exchange), 'rejected' (a NON request refused with RST, not processed), 'close'. Give it datagrams
 * with receive(); it sends with the `send` callback.
 */
export class CoapUdpEndpoint extends EventEmitter {
  private readonly o: Required<Omit<UdpMessagingOptions, 'peer'>>;
  private nextMid: number;
  private readonly dedup = new Map<number, DedupEntry>();
  private readonly exchanges = new Map<string, Exchange>();
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly nonNotifications = new Map<number, SentNotification>();
  private readonly suppressed = new Set<string>();
  private conn: CoapStreamConnection | undefined;
  private stream: Duplex | undefined;
  private splitter: TcpFrameSplitter | undefined;
  private closed = false;
  /** Requests handed to the request layer (duplicates excluded). */
  processed = 0;

  constructor(
    private readonly server: CoapServer,
    private readonly send: (datagram: Uint8Array) => void,
    private readonly opts: UdpMessagingOptions = {},
  ) {
    super();
    this.o = {
      maxMessageSize: opts.maxMessageSize ?? 1152,
      ackTimeoutMs: opts.ackTimeoutMs ?? ACK_TIMEOUT_MS,
      ackRandomFactor: opts.ackRandomFactor ?? ACK_RANDOM_FACTOR,
      maxRetransmit: opts.maxRetransmit ?? MAX_RETRANSMIT,
      exchangeLifetimeMs: opts.exchangeLifetimeMs ?? EXCHANGE_LIFETIME_MS,
      nonLifetimeMs: opts.nonLifetimeMs ?? NON_LIFETIME_MS,
      piggybackMs: opts.piggybackMs ?? 1000,
      conNotificationEvery: Math.max(1, opts.conNotificationEvery ?? 5),
      maxDedup: opts.maxDedup ?? 512,
      random: opts.random ?? Math.random,
      maxNonNotifications: opts.maxNonNotifications ?? 256,
    };
    this.nextMid = Math.floor(this.o.random() * 0x10000) & 0xffff;
  }

  // ------------------------------------------------------------------ input

  receive(datagram: Uint8Array): void {
    if (this.closed) return;
    let m: CoapMessage;
    try {
      m = decodeUdp(datagram, { maxMessageSize: this.server.maxMessageSize });
    } catch {
      // §4.2/§4.3: a CON (or NON) we cannot parse is rejected with RST when its header is readable
      if (datagram.length >= 4 && datagram[0]! >>> 6 === 1 && ((datagram[0]! >>> 4) & 3) === 0) {
        this.send(encodeUdp({ type: 'RST', messageId: (datagram[2]! << 8) | datagram[3]!, code: 0, token: EMPTY, options: [], payload: EMPTY }));
      }
      return;
    }
    const mid = m.messageId ?? 0;
    switch (m.type) {
      case 'ACK':
      case 'RST':
        this.onAckOrRst(m.type, mid);
        return;
      case 'CON': {
        if (m.code === 0) {
          this.send(encodeUdp({ type: 'RST', messageId: mid, code: 0, token: EMPTY, options: [], payload: EMPTY })); // CoAP ping
          return;
        }
        this.sweepDedup();
        const seen = this.dedup.get(mid);
        if (seen) {
          if (seen.reply) this.send(seen.reply); // duplicate: our ACK again, nothing processed
          return;
        }
        this.remember(mid);
        if (!isRequest(m.code)) {
          // a response or unknown class in a CON: we have no requests out → RST (§4.2)
          this.reply(mid, encodeUdp({ type: 'RST', messageId: mid, code: 0, token: EMPTY, options: [], payload: EMPTY }));
          return;
        }
        this.onRequest(m, 'CON');
        return;
      }
      default: {
        // NON
        if (m.code === 0 || !isRequest(m.code)) return;
        this.sweepDedup();
        if (this.dedup.has(mid)) return;
        this.remember(mid);
        if (checkOptions(m).badCritical !== undefined) {
          // §5.4.1: an unrecognised critical option in a NON rejects the message (§4.3: RST, nothing processed)
          this.send(encodeUdp({ type: 'RST', messageId: mid, code: 0, token: EMPTY, options: [], payload: EMPTY }));
          this.emit('rejected', m);
          return;
        }
        this.onRequest(m, 'NON');
      }
    }
  }

  private remember(mid: number): void {
    this.dedup.set(mid, { at: Date.now(), reply: undefined });
    while (this.dedup.size > this.o.maxDedup) this.dedup.delete(this.dedup.keys().next().value as number);
  }

  private reply(mid: number, datagram: Uint8Array): void {
    const e = this.dedup.get(mid);
    if (e) e.reply = datagram;
    this.send(datagram);
  }

  private sweepDedup(): void {
    const now = Date.now();
    for (const [mid, e] of this.dedup) {
      if (now - e.at <= this.o.exchangeLifetimeMs) break; // insertion order = time order
      this.dedup.delete(mid);
    }
  }

  private onRequest(m: CoapMessage, type: 'CON' | 'NON'): void {
    const key = hex(m.token);
    const old = this.exchanges.get(key);
    if (old?.piggyTimer) clearTimeout(old.piggyTimer);
    const ex: Exchange = { mid: m.messageId ?? 0, type, request: m, answered: false, emptyAcked: false, piggyTimer: undefined, notifications: 0 };
    this.exchanges.set(key, ex);
    this.suppressed.delete(key);
    if (type === 'CON') {
      ex.piggyTimer = setTimeout(() => {
        ex.piggyTimer = undefined;
        if (!ex.answered && !this.closed) {
          ex.emptyAcked = true;
          this.reply(ex.mid, encodeUdp({ type: 'ACK', messageId: ex.mid, code: 0, token: EMPTY, options: [], payload: EMPTY }));
        }
      }, this.o.piggybackMs);
      ex.piggyTimer.unref?.();
    }
    this.processed++;
    this.emit('processed', m);
    this.toRequestLayer({ code: m.code, token: m.token, options: m.options, payload: m.payload });
  }

  private onAckOrRst(type: 'ACK' | 'RST', mid: number): void {
    const o = this.outstanding.get(mid);
    if (!o) {
      const n = type === 'RST' ? this.nonNotifications.get(mid) : undefined;
      if (n) {
        // RFC 7641 §3.6: the client rejected a NON notification: it is not interested any more
        this.nonNotifications.delete(mid);
        if (this.exchanges.get(n.token) === n.exchange) this.cancelObservation(n.token);
      }
      return;
    }
    clearTimeout(o.timer);
    this.outstanding.delete(mid);
    if (type === 'RST') this.cancelObservation(o.token);
  }

  /** RFC 7641 §3.6 / §4.5: the client rejected (or never ACKed) a notification: deregister it. */
  private cancelObservation(token: string): void {
    const ex = this.exchanges.get(token);
    if (!ex) return;
    this.suppressed.add(token);
    const options = ex.request.options.filter((op) => op.number !== OPTION.Observe);
    options.push({ number: OPTION.Observe, value: encodeUint(1) });
    this.toRequestLayer({ code: ex.request.code, token: ex.request.token, options, payload: EMPTY });
  }

  // ------------------------------------------------------------------ the request layer (RFC 8323 frames in memory)

  private toRequestLayer(m: CoapMessage): void {
    this.ensureConnection();
    this.stream!.push(Buffer.from(encodeTcp(m)));
  }

  private ensureConnection(): void {
    if (this.conn && !this.conn.isClosed) return;
    this.splitter = new TcpFrameSplitter({ maxMessageSize: 1024 * 1024 + 64 });
    const stream = new Duplex({
      read() {},
      write: (chunk: Buffer, _enc, cb) => {
        try {
          for (const f of this.splitter!.push(new Uint8Array(chunk))) this.fromRequestLayer(decodeTcp(f));
        } catch {
          // our own layer produced it: cannot be malformed; ignore
        }
        cb();
      },
      final: (cb) => cb(),
    });
    this.stream = stream;
    this.conn = this.server.handleStream(stream, this.opts.peer ? { peer: this.opts.peer } : {});
    // the request layer's peer is "a client that sent a CSM with our UDP message size and no BERT"
    stream.push(Buffer.from(encodeTcp(csmMessage({ maxMessageSize: this.o.maxMessageSize }))));
  }

  private fromRequestLayer(m: CoapMessage): void {
    if (this.closed || isSignal(m.code) || !isResponse(m.code)) return; // CSM, Pong, Release: UDP has none
    const key = hex(m.token);
    if (this.suppressed.has(key)) {
      // the answer to our own deregistration: nobody asked for it
      this.suppressed.delete(key);
      this.exchanges.delete(key);
      return;
    }
    const ex = this.exchanges.get(key);
    if (!ex) return;
    const isNotification = ex.answered;
    const observing = m.options.some((op) => op.number === OPTION.Observe);
    if (!ex.answered && ex.type === 'CON' && !ex.emptyAcked) {
      // piggybacked in the ACK
      ex.answered = true;
      if (ex.piggyTimer) clearTimeout(ex.piggyTimer);
      this.reply(ex.mid, encodeUdp({ ...m, type: 'ACK', messageId: ex.mid }));
    } else {
      ex.answered = true;
      if (ex.piggyTimer) clearTimeout(ex.piggyTimer);
      let type: MessageType = ex.type === 'CON' && !isNotification ? 'CON' : 'NON';
      if (isNotification) {
        ex.notifications++;
        if (ex.notifications % this.o.conNotificationEvery === 0) type = 'CON';
      }
      const mid = this.sendNew(m, type, key);
      if (type === 'NON' && observing) this.rememberNotification(mid, key, ex);
    }
    if (!observing && !isNotification) {
      // a plain response ends the exchange (the token may be reused by the client)
      if (this.exchanges.get(key) === ex) this.exchanges.delete(key);
    }
  }

  private rememberNotification(mid: number, token: string, exchange: Exchange): void {
    const now = Date.now();
    this.nonNotifications.delete(mid);
    this.nonNotifications.set(mid, { at: now, token, exchange });
    for (const [k, n] of this.nonNotifications) {
      if (this.nonNotifications.size <= this.o.maxNonNotifications && now - n.at <= this.o.nonLifetimeMs) break; // insertion order = time order
      this.nonNotifications.delete(k);
    }
  }

  /** Sends a new message of ours (our next message ID); a CON is retransmitted until ACKed. Returns the message ID. */
  private sendNew(m: CoapMessage, type: MessageType, token: string): number {
    const mid = this.nextMid;
    this.nextMid = (this.nextMid + 1) & 0xffff;
    const datagram = encodeUdp({ ...m, type, messageId: mid });
    this.send(datagram);
    if (type !== 'CON') return mid;
    const timeout = this.o.ackTimeoutMs * (1 + this.o.random() * (this.o.ackRandomFactor - 1));
    const o: Outstanding = { datagram, token, tries: 0, timeout, timer: undefined as unknown as NodeJS.Timeout };
    const arm = (): void => {
      o.timer = setTimeout(() => {
        if (this.closed) return;
        if (o.tries >= this.o.maxRetransmit) {
          this.outstanding.delete(mid);
          this.cancelObservation(token); // §4.2: give up; RFC 7641 §4.5: the observer is gone
          return;
        }
        o.tries++;
        o.timeout *= 2;
        this.send(o.datagram);
        arm();
      }, o.timeout);
      o.timer.unref?.();
    };
    arm();
    this.outstanding.set(mid, o);
    return mid;
  }

  /** Our CONs waiting for an ACK. */
  get outstandingCount(): number {
    return this.outstanding.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const o of this.outstanding.values()) clearTimeout(o.timer);
    this.outstanding.clear();
    this.nonNotifications.clear();
    for (const e of this.exchanges.values()) if (e.piggyTimer) clearTimeout(e.piggyTimer);
    this.exchanges.clear();
    this.stream?.destroy();
    this.emit('close');
  }
}
