/**
 * ReadyQueue: connections whose complete ClientHello is in (HelloStage) waiting for a card channel.
 * A new one is queued while
 *   - fewer than `maxReady` wait and their buffered ClientHellos stay within `maxReadyBytes`, and
 *   - the wait it can expect (ServiceEstimate: those ahead / the rate at which channels were given
 *     back while others waited) fits in what is left of its queue deadline (`queueTimeoutMs` from
 *     accept) — "those ahead" being the ones it would not overtake (`aheadOf`);
 * otherwise it gets the overload answer at once (hello-stage.ts: a plaintext internal_error alert)
 * — and so does one still queued when its deadline passes. The data of a queued connection is not
 * read (the socket is paused: TCP flow control holds the rest in the kernel).
 * Events (`setls:session`): overloaded. imports host/ (hello-stage, peer-table, service-estimate, errors).
 */
import type net from 'node:net';
import type { SetlsError } from '../bytes/index.js';
import { hostError } from './errors.js';
import { answerOverloaded, plaintextAlert, publishSession, type CompleteHello } from './hello-stage.js';
import { endAndDrain } from './linger.js';
import type { PeerTable } from './peer-table.js';
import type { HelloPeek } from './pool-hello.js';
import type { ServiceEstimate } from './service-estimate.js';

export interface ReadyQueueOptions {
  /** Connections waiting for a channel at most (default 1024). */
  readonly maxReady?: number;
  /** Bytes of their ClientHellos at most (default 16 MiB). */
  readonly maxReadyBytes?: number;
  /** Deadline from accept to getting a channel, ms (default 10000; 0 = none). */
  readonly queueTimeoutMs?: number;
  /**
   * How many of the queued connections a newcomer from `ip` would wait for, when the scheduler does
   * not serve in arrival order (pool.ts: lighter peers first); default: all of them. Asked only when
   * the whole queue's expected wait would refuse it.
   */
  readonly aheadOf?: (ip: string, queued: readonly ReadyEntry[]) => number;
}

export interface ReadyEntry {
  readonly socket: net.Socket;
  readonly ip: string;
  readonly peek: HelloPeek;
  readonly bytes: number;
  /** performance.now() at accept. */
  readonly since: number;
  /** performance.now() when the ClientHello was complete. */
  readonly readyAt: number;
}

export interface ReadyQueueSink {
  /** Answered "overloaded" (alert sent): at admission or at its queue deadline. */
  overloaded(socket: net.Socket, err: SetlsError): void;
  /** The client closed while queued. */
  gone?(socket: net.Socket): void;
  /** Refused (alert sent) by `refuseAll`: no card can serve it. */
  refused?(socket: net.Socket, err: SetlsError): void;
}

const SWEEP_MS = 250;

export class ReadyQueue {
  readonly maxReady: number;
  readonly maxReadyBytes: number;
  readonly queueTimeoutMs: number;
  private readonly list: ReadyEntry[] = [];
  private readonly onClose = new Map<net.Socket, () => void>();
  private bytesHeld = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly aheadOf: ReadyQueueOptions['aheadOf'];
  /** Overload answers given (admission + queue deadline). */
  overloaded = 0;

  constructor(
    opts: ReadyQueueOptions,
    private readonly peers: PeerTable,
    private readonly estimate: ServiceEstimate,
    private readonly sink: ReadyQueueSink,
  ) {
    this.maxReady = opts.maxReady ?? 1024;
    if (!Number.isInteger(this.maxReady) || this.maxReady < 0) throw new RangeError('backlog (maxReady) must be a non-negative integer');
    this.maxReadyBytes = opts.maxReadyBytes ?? 16 * 1024 * 1024;
    this.queueTimeoutMs = opts.queueTimeoutMs ?? 10_000;
    this.aheadOf = opts.aheadOf;
  }

  get length(): number {
    return this.list.length;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** The queue in arrival order (do not modify; take() removes). */
  get entries(): readonly ReadyEntry[] {
    return this.list;
  }

  /** Expected wait for one more connection, ms. */
  expectedWaitMs(): number {
    return this.estimate.waitMs(this.list.length);
  }

  /**
   * Queues a complete ClientHello, or answers "overloaded" (returns undefined). `servableNow`: a
   * channel is free and nobody is queued, so it leaves the queue at once — no bound applies.
   */
  offer(socket: net.Socket, h: CompleteHello, servableNow = false): ReadyEntry | undefined {
    const now = performance.now();
    let why: string | undefined;
    if (servableNow && this.list.length === 0) why = undefined;
    else if (this.list.length >= this.maxReady) why = `${this.maxReady} connections already wait for a card channel`;
    else if (this.bytesHeld + h.bytes > this.maxReadyBytes) why = `queued ClientHellos would exceed ${this.maxReadyBytes} bytes`;
    else if (this.queueTimeoutMs > 0) {
      let wait = this.expectedWaitMs();
      const left = this.queueTimeoutMs - (now - h.since);
      if (wait > left && this.aheadOf) wait = this.estimate.waitMs(this.aheadOf(h.ip, this.list));
      if (wait > left) why = `expected wait ${Math.round(wait)} ms exceeds the ${Math.round(Math.max(0, left))} ms left before the deadline`;
    }
    if (why) {
      this.answer(socket, why);
      return undefined;
    }
    const e: ReadyEntry = { socket, ip: h.ip, peek: h.peek, bytes: h.bytes, since: h.since, readyAt: now };
    this.list.push(e);
    this.bytesHeld += e.bytes;
    this.peers.add(e.ip, 'ready');
    const onClose = (): void => {
      if (this.remove(e)) this.sink.gone?.(socket);
    };
    this.onClose.set(socket, onClose);
    socket.once('close', onClose);
    if (!this.sweepTimer && this.queueTimeoutMs > 0) {
      this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweepTimer.unref();
    }
    return e;
  }

  /** Removes `e` to serve it; false when it is no longer queued. */
  take(e: ReadyEntry): boolean {
    return this.remove(e);
  }

  private remove(e: ReadyEntry): boolean {
    const i = this.list.indexOf(e);
    if (i < 0) return false;
    this.list.splice(i, 1);
    this.bytesHeld -= e.bytes;
    this.peers.add(e.ip, 'ready', -1);
    const f = this.onClose.get(e.socket);
    if (f) e.socket.off('close', f);
    this.onClose.delete(e.socket);
    if (this.list.length === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
    }
    return true;
  }

  private answer(socket: net.Socket, why: string): void {
    this.overloaded++;
    publishSession({ event: 'overloaded', remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, error: why });
    this.sink.overloaded(socket, hostError('ERR_HOST_OVERLOADED', `overloaded: ${why}`));
    answerOverloaded(socket);
  }

  private sweep(): void {
    const now = performance.now();
    for (const e of [...this.list]) {
      if (now - e.since < this.queueTimeoutMs) continue;
      if (this.remove(e)) this.answer(e.socket, `no card channel within ${this.queueTimeoutMs} ms`);
    }
  }

  /**
   * Answers every queued connection with the plaintext fatal `alert` and reports `err` (sink
   * `refused`): nothing can serve them now (every card locked). Returns how many.
   */
  refuseAll(err: SetlsError, alert: number): number {
    let n = 0;
    for (const e of [...this.list]) {
      if (!this.remove(e)) continue;
      n++;
      publishSession({ event: 'refused', remoteAddress: e.socket.remoteAddress, remotePort: e.socket.remotePort, error: err.message });
      this.sink.refused?.(e.socket, err);
      endAndDrain(e.socket, plaintextAlert(alert));
    }
    return n;
  }

  /** Closes every queued connection. */
  close(): void {
    for (const e of [...this.list]) {
      this.remove(e);
      e.socket.destroy();
    }
  }
}
