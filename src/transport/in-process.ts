/**
 * InProcessTransport: a card living in the same process (the emulated secure element), reached
 * through a function that takes command APDU bytes and returns response APDU bytes.
 *
 * Only Uint8Array APDUs cross, and each way as a FRESH COPY (own ArrayBuffer, byteOffset 0): Node's
 * pooled Buffers are views on shared slabs, and handing one across would expose neighbouring
 * memory; copying also stops either side from mutating what the other already holds.
 * Calls are serialised: a card processes one APDU at a time.
 * imports bytes/ and transport/.
 */
import { freshCopy, SetlsError } from '../bytes/index.js';
import { checkApdu, transportClosed, type CardTransport } from './card-transport.js';

export type ApduProcessor = (apdu: Uint8Array) => Uint8Array | Promise<Uint8Array>;

export class InProcessTransport implements CardTransport {
  readonly extendedLength = true;
  private tail: Promise<unknown> = Promise.resolve();
  /** Calls accepted and not finished yet (0: the card is idle, a call may run at once). */
  private inFlight = 0;
  private closed = false;

  constructor(
    private readonly process: ApduProcessor,
    private readonly onClose?: () => void | Promise<void>,
  ) {
    if (typeof process !== 'function') throw new TypeError('InProcessTransport needs an APDU processing function');
  }

  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    try {
      const r = this.transmitDirect(apdu);
      return r instanceof Promise ? r : Promise.resolve(r);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * transmit() without a promise when it can: nothing in flight and a synchronous card (the
   * emulated one) → the card runs now and its answer comes back as is; otherwise the queued
   * promise. Serialised all the same (nothing else runs while a synchronous card works).
   */
  transmitDirect(apdu: Uint8Array): Uint8Array | Promise<Uint8Array> {
    checkApdu(apdu);
    if (this.closed) throw transportClosed();
    // Copy now: the caller may reuse its buffer as soon as transmit() returns.
    const cmd = freshCopy(apdu);
    if (this.inFlight === 0) {
      const res = this.process(cmd);
      if (!(res instanceof Promise)) return checkedCopy(res);
      // An asynchronous card: the rest of its call is the queue's head.
      return this.enqueue(res.then(checkedCopy));
    }
    const run = async (): Promise<Uint8Array> => {
      if (this.closed) throw transportClosed();
      return checkedCopy(await this.process(cmd));
    };
    return this.enqueue(this.tail.then(run, run));
  }

  /** Puts a running call at the queue's tail (the next call starts after it settles). */
  private enqueue(p: Promise<Uint8Array>): Promise<Uint8Array> {
    this.inFlight++;
    const done = (): void => {
      this.inFlight--;
    };
    this.tail = p.then(done, done);
    return p;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    await this.onClose?.();
  }
}

/** The card's answer as a fresh copy, after checking it is a response APDU at all. */
function checkedCopy(res: unknown): Uint8Array {
  if (!(res instanceof Uint8Array)) throw new SetlsError('ERR_APDU_RESPONSE', 'the card returned something other than a Uint8Array');
  if (res.length < 2) throw new SetlsError('ERR_APDU_RESPONSE', `response APDU of ${res.length} bytes has no status word`);
  return freshCopy(res);
}
