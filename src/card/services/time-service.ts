/**
 * card/services/time-service: the card's time floor as a service (clock.ts has the model;
 * docs/architecture.md "Time"). Host times are checked against the persisted floor (a rollback of
 * more than 300 s: 6A80) and move it within the clock's bounds; the floor is written lazily — at
 * once when first set or moved by more than an hour since the last write, else with the next state
 * write. `setFloor` is the operator's (SET-CLOCK; an operator-signed time anchor later).
 *
 * "Power-on" for the clock's per-power-on bound is the card object's creation (EmulatedCard.create
 * / open), not a card reset: a host that resets the card (a vpcd reconnect) cannot widen the bound.
 *
 * The operator's time anchor (the security domain's PutTimeAnchor, state `isd.timeAnchor`) is a hard
 * floor: a host time below it is refused (ERR_CARD_TIME_ROLLBACK, 6A80) whatever the 300 s
 * tolerance, the card's time never reads below it, and SET-CLOCK may not move the floor back on a
 * card that holds one (6985): PutTimeAnchor is then the only way back.
 * No secrets. imports card/.
 */
import { Limits } from '../constants.js';
import { cardErr } from '../errors.js';
import { CardClock, type MonotonicMs } from '../clock.js';
import type { CardState } from '../state.js';
import type { PersistentStore } from '../os/persistent-store.js';

export class TimeService {
  private readonly clock: CardClock;
  /** `lastTime` (the floor) as last written to the store. */
  private persisted: number;

  constructor(
    private readonly store: PersistentStore<CardState>,
    monotonicMs?: MonotonicMs,
  ) {
    this.persisted = store.state.lastTime;
    this.clock = new CardClock(store.state.lastTime, monotonicMs);
    store.onWritten((s) => {
      this.persisted = s.lastTime;
    });
  }

  /** The persisted time floor (Unix seconds; 0 = unset). */
  get floor(): number {
    return this.store.state.lastTime;
  }

  /** The card's best time: the latest accepted host time, else the floor (Unix seconds; 0 = unknown); never below the time anchor. */
  now(): number {
    const t = this.clock.now(this.store.state.lastTime);
    const anchor = this.anchor;
    return t < anchor ? anchor : t;
  }

  /** The operator's signed time anchor (Unix seconds; 0 = none): card time never goes below it. */
  get anchor(): number {
    return this.store.state.isd?.timeAnchor?.time ?? 0;
  }

  /**
   * A host's GMT time: refuses a rollback of more than 300 s below the floor (ERR_CARD_TIME_ROLLBACK,
   * 6A80); `accepted` runs once it passed (the session takes `t` as its time, even if the write
   * below fails); moves the floor within its bounds and persists it lazily (see the header). A
   * failed write keeps the new floor in memory (it goes with the next write).
   */
  accept(t: number, accepted?: (t: number) => void): void {
    const anchor = this.anchor;
    if (t < anchor) throw cardErr.timeRollback(`host time ${t} is before the operator's time anchor ${anchor}`);
    const floor = this.store.state.lastTime;
    const next = this.clock.accept(t, floor);
    accepted?.(t);
    if (next === floor) return;
    this.store.update((s) => {
      s.lastTime = next;
    });
    if (this.persisted === 0 || next - this.persisted > Limits.timePersistSeconds) this.store.flush();
  }

  /**
   * SET-CLOCK (operator PIN): the floor set to `t` like `setFloor`, except on a card whose security
   * domain holds a time anchor, where it may only move forward (6985): PutTimeAnchor is the only way back.
   */
  setClock(t: number): void {
    if (this.anchor !== 0 && t < this.store.state.lastTime) {
      throw cardErr.conditions("the card holds an operator time anchor: only a newer time anchor (PutTimeAnchor) moves its clock back");
    }
    this.setFloor(t);
  }

  /**
   * Sets the floor to `t` (Unix seconds; 0 unsets it), written at once (in the caller's transaction,
   * if any); the clock's bounds restart from it once committed.
   */
  setFloor(t: number): void {
    this.store.transaction((s) => {
      s.lastTime = t;
    });
    this.store.afterCommit(() => this.clock.set(t));
  }
}
