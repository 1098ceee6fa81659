/**
 * SocketReader: whole TLS records from a TCP socket (via RecordFramer), with a deadline on every
 * wait and bounded buffering (the socket is paused while records wait to be consumed, so TCP
 * flow control pushes back on the client).
 * imports bytes/, tls/record/framing.ts and host/.
 */
import type { Socket } from 'node:net';
import { freshCopy, SetlsError } from '../bytes/index.js';
import { RecordFramer } from '../tls/record/framing.js';
import { peerClosed } from './errors.js';

/** Records buffered before the socket is paused. */
const HIGH_WATER_RECORDS = 8;

/** Bytes already read from a socket by an earlier stage (the hello stage), for its SocketReader. */
const handedOn = new WeakMap<Socket, Buffer>();

/**
 * Hands bytes read from `socket` (a complete ClientHello, and anything after it) to the SocketReader
 * that will take the socket on, instead of putting them back with socket.unshift(): that ran the
 * stream machinery and a second 'data' event over bytes the host had just read. The socket must be
 * paused; its next SocketReader frames these bytes first.
 */
export function handOn(socket: Socket, bytes: Buffer): void {
  const before = handedOn.get(socket);
  handedOn.set(socket, before ? Buffer.concat([before, bytes]) : bytes);
}

export class SocketReader {
  private readonly framer = new RecordFramer();
  private readonly queue: Uint8Array[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private stop: ((e: Error) => void) | undefined;
  private waiting = false;
  private detached = false;
  /** performance.now() of the last bytes received. */
  lastActivity = performance.now();

  constructor(private readonly socket: Socket) {
    const early = handedOn.get(socket);
    if (early) {
      handedOn.delete(socket);
      this.onData(early);
    }
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastActivity = performance.now();
    try {
      // A plain Uint8Array copy first: on a Buffer, RecordFramer's slice() would return views on
      // Node's pooled memory instead of copies.
      for (const r of this.framer.push(freshCopy(chunk))) this.queue.push(r);
    } catch (e) {
      this.failure ??= e as Error;
      this.socket.pause();
    }
    if (this.queue.length >= HIGH_WATER_RECORDS) this.socket.pause();
    this.notify();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  private readonly onError = (e: Error): void => {
    this.failure ??= new SetlsError('ERR_HOST_SOCKET', `client socket error: ${e.message}`, { cause: e });
    this.notify();
  };

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Records received but not yet consumed. */
  get buffered(): number {
    return this.queue.length;
  }

  /** Puts records back at the head of the queue (records the handshake did not consume). */
  unshift(records: readonly Uint8Array[]): void {
    this.queue.unshift(...records);
  }

  private take(all: boolean): Uint8Array[] | null | undefined {
    if (this.queue.length) {
      const out = all ? this.queue.splice(0) : [this.queue.shift()!];
      if (this.queue.length < HIGH_WATER_RECORDS / 2 && !this.failure && !this.detached) this.socket.resume();
      return out;
    }
    if (this.failure) throw this.failure;
    if (this.detached) return null;
    if (this.ended) {
      if (this.framer.pending > 0) throw peerClosed(`the client closed the connection in the middle of a record (${this.framer.pending} bytes)`);
      return null;
    }
    return undefined;
  }

  /**
   * Waits for records: the next one (`all` false) or everything buffered (at least one).
   * null at EOF; rejects with `timeoutCode` after `timeoutMs` (0 = no deadline).
   */
  async read(all: boolean, timeoutMs: number, timeoutCode = 'ERR_HOST_TIMEOUT'): Promise<Uint8Array[] | null> {
    if (this.waiting) throw new SetlsError('ERR_HOST_STATE', 'concurrent reads on one client socket');
    this.waiting = true;
    try {
      const now = this.take(all);
      if (now !== undefined) return now;
      if (!this.ended) this.socket.resume();
      const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : Infinity;
      for (;;) {
        await new Promise<void>((resolve, reject) => {
          const left = deadline - performance.now();
          if (left <= 0) {
            reject(new SetlsError(timeoutCode, `no record from the client within ${timeoutMs} ms`));
            return;
          }
          const t = Number.isFinite(left) ? setTimeout(() => {
            this.wake = undefined;
            this.stop = undefined;
            reject(new SetlsError(timeoutCode, `no record from the client within ${timeoutMs} ms`));
          }, left) : undefined;
          this.wake = () => {
            if (t) clearTimeout(t);
            this.stop = undefined;
            resolve();
          };
          this.stop = (e) => {
            if (t) clearTimeout(t);
            this.wake = undefined;
            this.stop = undefined;
            reject(e);
          };
        });
        const r = this.take(all);
        if (r !== undefined) return r;
      }
    } finally {
      this.waiting = false;
      this.wake = undefined;
      this.stop = undefined;
    }
  }

  /**
   * Ends a read that is waiting (its deadline was shortened: the handshake's, when others wait for
   * the card) with `err`. Not sticky: a later read is not affected. false when no read was waiting.
   */
  interrupt(err: Error): boolean {
    const f = this.stop;
    if (!f) return false;
    f(err);
    return true;
  }

  /** The next whole record, or null at EOF. */
  async recv(timeoutMs: number, timeoutCode?: string): Promise<Uint8Array | null> {
    const r = await this.read(false, timeoutMs, timeoutCode);
    return r ? r[0]! : null;
  }

  /** Stops listening to the socket (keeps an error listener so a late error cannot crash). */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.notify();
  }
}
