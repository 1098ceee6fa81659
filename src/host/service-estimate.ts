/**
 * ServiceEstimate: how fast the card channels drain their queue, and so how long a new connection
 * queued behind `ahead` others can expect to wait. The rate is measured, not modelled: it is the
 * rate at which channels were given back WHILE others waited (each such release hands the channel
 * straight to the next connection), over the last `window` releases of the current busy period —
 * whatever the card's speed, the number of channels, how much of the card's time the sessions
 * share, or how long they hold on. A busy period ends when the queue empties; the next one starts
 * with no measurement (then the estimate is 0: queue, the queue deadline still bounds the wait).
 * Hold times of all sessions are kept too (their mean is reported). imports nothing.
 */

/** Releases seen in a busy period before the rate is trusted. */
const MIN_SAMPLES = 8;

export class ServiceEstimate {
  private readonly times: Float64Array;
  private count = 0;
  private next = 0;
  private holdSum = 0;
  private holds = 0;
  private readonly holdWindow: Float64Array;
  private holdNext = 0;

  constructor(readonly window = 64) {
    if (!Number.isInteger(window) || window < 2) throw new RangeError('window must be an integer ≥ 2');
    this.times = new Float64Array(window);
    this.holdWindow = new Float64Array(window);
  }

  /**
   * A channel was given back at `now` (performance.now()) after a session held it `heldMs`;
   * `othersWaiting`: someone was queued at that moment (the channel goes straight to the next one).
   */
  released(now: number, heldMs: number, othersWaiting: boolean): void {
    if (Number.isFinite(heldMs) && heldMs >= 0) {
      if (this.holds === this.window) this.holdSum -= this.holdWindow[this.holdNext]!;
      else this.holds++;
      this.holdWindow[this.holdNext] = heldMs;
      this.holdSum += heldMs;
      this.holdNext = (this.holdNext + 1) % this.window;
    }
    if (!othersWaiting) {
      this.count = 0; // the busy period is over
      this.next = 0;
      return;
    }
    this.times[this.next] = now;
    this.next = (this.next + 1) % this.window;
    if (this.count < this.window) this.count++;
  }

  /** Releases per second in the current busy period (0 while not measured). */
  get ratePerSecond(): number {
    if (this.count < MIN_SAMPLES) return 0;
    const newest = this.times[(this.next + this.window - 1) % this.window]!;
    const oldest = this.times[this.count < this.window ? 0 : this.next]!;
    const span = newest - oldest;
    return span > 0 ? ((this.count - 1) * 1000) / span : 0;
  }

  /** Mean time the recent sessions held their channel, ms (0 with no history). */
  get meanHoldMs(): number {
    return this.holds ? this.holdSum / this.holds : 0;
  }

  /** Expected wait of a connection with `ahead` connections before it, ms (0 while the rate is not measured). */
  waitMs(ahead: number): number {
    const rate = this.ratePerSecond;
    return rate > 0 ? ((ahead + 1) * 1000) / rate : 0;
  }
}
