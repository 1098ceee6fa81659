/**
 * ActivityTimer: fires once when nothing happened for `ms` (activity read from a clock function),
 * with one timer at a time, rescheduled lazily. Used for idle deadlines and socket.setTimeout().
 * imports nothing.
 */
export class ActivityTimer {
  private timer: NodeJS.Timeout | undefined;
  private ms = 0;

  constructor(
    private readonly lastActivity: () => number,
    private readonly onIdle: () => void,
  ) {}

  /** (Re)arms with a new idle period; 0 disarms. */
  set(ms: number): void {
    this.clear();
    this.ms = ms;
    if (ms > 0) this.arm(ms);
  }

  get period(): number {
    return this.ms;
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(delay: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const idle = performance.now() - this.lastActivity();
      if (idle + 1 >= this.ms) this.onIdle();
      else this.arm(this.ms - idle);
    }, Math.max(1, delay));
    this.timer.unref();
  }
}
