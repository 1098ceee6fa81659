/**
 * ServiceEstimate: how long a session holds a card channel, from the last `window` sessions that
 * gave their channel back (handshake, and the record layer while it runs in the card), and the wait
 * that follows for a connection queued behind `ahead` others on `servers` channels. The scheduler
 * queues a new ClientHello while that wait fits in the queue deadline and answers "overloaded"
 * otherwise. With no history yet the estimate is 0 (queue: the deadline still bounds the wait).
 * imports nothing.
 */

export class ServiceEstimate {
  private readonly samples: Float64Array;
  private count = 0;
  private next = 0;
  private sum = 0;

  constructor(readonly window = 64) {
    if (!Number.isInteger(window) || window < 1) throw new RangeError('window must be a positive integer');
    this.samples = new Float64Array(window);
  }

  /** A session gave its channel back after holding it `ms`. */
  record(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    if (this.count === this.window) this.sum -= this.samples[this.next]!;
    else this.count++;
    this.samples[this.next] = ms;
    this.sum += ms;
    this.next = (this.next + 1) % this.window;
  }

  /** Mean hold time of the recent sessions, ms (0 with no history). */
  get meanMs(): number {
    return this.count ? this.sum / this.count : 0;
  }

  get samplesSeen(): number {
    return this.count;
  }

  /**
   * Expected wait of a connection with `ahead` connections before it, on `servers` channels, when
   * each session holds its channel at most `capMs` while others wait (the hold limit), ms.
   */
  waitMs(ahead: number, servers: number, capMs = Infinity): number {
    if (servers <= 0) return Infinity;
    const mean = Math.min(this.meanMs, capMs);
    return ((ahead + 1) * mean) / servers;
  }
}
