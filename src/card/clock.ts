/**
 * The card's time model (docs/architecture.md "Time"): the card has no calendar clock; the host
 * sends its GMT time with the first Response of a session, and the card keeps a persisted FLOOR
 * (state `lastTime`) against which it refuses rolled-back times.
 *
 *  - A host time t more than `timeRollbackSeconds` (300 s) below the floor is refused (6A80).
 *  - An accepted t is the session's time (certificate validity, ticket age) and the card's latest
 *    time in RAM (for sessions without time bytes and the TLS-SE applet); neither is persisted.
 *  - The floor follows accepted times, bounded so that host time alone can never make the card
 *    refuse real time for long, and never for good. An accepted t moves the floor to at most
 *      min(t,
 *          the previous time accepted in this power-on + 300 s + card seconds since then,  (corroboration)
 *          floor + 300 s + card seconds since the floor last moved,                         (per accepted time)
 *          floor at power-on + `timeAdvancePerPowerOn` (1 h) + card seconds since power-on) (per power-on)
 *    The first time of a power-on has nothing to corroborate it and moves nothing. "Card seconds"
 *    come from the card's own monotonic tick counter (the emulated card: the process's monotonic
 *    clock; a card without a timer counts none), never from the host's time. So a single bogus time
 *    (followed by real ones) never moves the floor beyond real time, in any number of restarts; a run
 *    of bogus times in one power-on moves it at most 1 h ahead, which real time overtakes within the
 *    hour. The operator resets the floor with SET-CLOCK (operator PIN).
 *  - A floor of 0 (never set: a card made without `setls card init`, which sets it) takes the first
 *    host time as it is (trust on first use); SET-CLOCK 0 returns to that.
 *
 * No secrets. imports card/ siblings.
 */
import { Limits } from './constants.js';
import { cardErr } from './errors.js';

/** Monotonic milliseconds (any origin). */
export type MonotonicMs = () => number;

export const defaultMonotonic: MonotonicMs = () => performance.now();

export class CardClock {
  /** The floor at power-on (or at the last SET-CLOCK / first time), and when that was (card ms). */
  private base: number;
  private baseAt: number;
  /** When the floor last moved (card ms). */
  private movedAt: number;
  /** The latest accepted host time (RAM only) and when it came (card ms); undefined before the first one. */
  private latest: number | undefined;
  private latestAt = 0;

  constructor(
    floor: number,
    private readonly mono: MonotonicMs = defaultMonotonic,
  ) {
    this.base = floor;
    this.baseAt = this.movedAt = mono();
  }

  /** The card's best time: the latest accepted host time, else the floor (Unix seconds; 0 = unknown). */
  now(floor: number): number {
    return this.latest ?? floor;
  }

  /**
   * Checks host time `t` against `floor`; throws ERR_CARD_TIME_ROLLBACK (6A80) for a rollback.
   * Returns the new floor (≥ `floor`, within the bounds above).
   */
  accept(t: number, floor: number): number {
    if (floor !== 0 && t + Limits.timeRollbackSeconds < floor) {
      throw cardErr.timeRollback(`host time ${t} is more than ${Limits.timeRollbackSeconds} s before the card's time floor ${floor}`);
    }
    const at = this.mono();
    const prev = this.latest;
    const prevAt = this.latestAt;
    this.latest = t;
    this.latestAt = at;
    if (floor === 0) {
      this.base = t;
      this.baseAt = this.movedAt = at;
      return t;
    }
    if (t <= floor || prev === undefined) return floor;
    const corroborated = prev + Limits.timeRollbackSeconds + seconds(at - prevAt);
    const perCommand = floor + Limits.timeRollbackSeconds + seconds(at - this.movedAt);
    const perPowerOn = this.base + Limits.timeAdvancePerPowerOn + seconds(at - this.baseAt);
    const next = Math.max(floor, Math.min(t, corroborated, perCommand, perPowerOn));
    if (next > floor) this.movedAt = at;
    return next;
  }

  /** SET-CLOCK: the operator's new floor (0 = unset); the bounds start again from it. */
  set(floor: number): void {
    this.base = floor;
    this.baseAt = this.movedAt = this.latestAt = this.mono();
    this.latest = floor === 0 ? undefined : floor;
  }
}

function seconds(ms: number): number {
  return ms > 0 ? Math.floor(ms / 1000) : 0;
}
