/**
 * card/os/persistent-store: the card's one persistent store with transactions, over the sealed
 * store (sealed-store.ts: tmp file, fsync, rename; the folder lock; ERR_CARD_STATE_CHANGED).
 *
 *  - `transaction(fn)`: `fn` changes a draft (a copy of the state); the draft is written in one
 *    atomic write and only then becomes the state. A throw in `fn` or a failed write leaves the state
 *    in memory as it was (and on disk: old or new, never neither), so an applet never half-updates.
 *    Transactions nest: an inner one joins the outer (one write at the end); `afterCommit` hooks run
 *    once the outermost one has committed (never when it failed).
 *  - `charge(fn)`: changes the state in place, then writes it; a failed write keeps the change in
 *    memory. For what must never be refunded by a failure: the PIN retry counter, written before
 *    the comparison (a transaction of its own, never inside another).
 *  - `update(fn)` changes the state without writing (fields persisted lazily with the next write:
 *    the time floor); `flush()` writes the state as it is.
 *
 * Secrets: whatever the state holds (the codec's serialized bytes are wiped after each write).
 * imports bytes/ and card/.
 */
import { SetlsError, wipe } from '../../bytes/index.js';
import type { SealedStore } from './sealed-store.js';

/** How a state becomes bytes and is copied for a draft. */
export interface StateCodec<S> {
  serialize(s: S): Uint8Array;
  /** A copy that can be changed without touching `s` (shared parts must never be mutated in place). */
  clone(s: S): S;
}

export class PersistentStore<S> {
  private current: S;
  private draft: S | undefined;
  private hooks: (() => void)[] = [];
  private readonly written: ((s: S) => void)[] = [];

  constructor(
    private readonly sealed: SealedStore,
    private readonly codec: StateCodec<S>,
    initial: S,
  ) {
    this.current = initial;
  }

  /**
   * The state: the committed one, or inside a transaction its draft (so the steps of one transaction
   * see each other's changes; nothing else runs meanwhile). Change it only through the methods below.
   */
  get state(): S {
    return this.draft ?? this.current;
  }

  /** Whether a transaction is open. */
  get inTransaction(): boolean {
    return this.draft !== undefined;
  }

  /** Called with the state after every successful write (e.g. to know what the disk holds). */
  onWritten(fn: (s: S) => void): void {
    this.written.push(fn);
  }

  /** Runs `fn` on a draft and commits it atomically (see the header); returns `fn`'s result. */
  transaction<T>(fn: (draft: S) => T): T {
    if (this.draft !== undefined) return fn(this.draft);
    const draft = this.codec.clone(this.current);
    this.draft = draft;
    let result: T;
    try {
      result = fn(draft);
      this.write(draft);
    } catch (e) {
      this.hooks = [];
      throw e;
    } finally {
      this.draft = undefined;
    }
    this.current = draft;
    const hooks = this.hooks;
    this.hooks = [];
    for (const h of hooks) h();
    return result;
  }

  /** Runs `fn` once the current transaction has committed; at once outside a transaction. */
  afterCommit(fn: () => void): void {
    if (this.draft === undefined) fn();
    else this.hooks.push(fn);
  }

  /** Changes the state in place and writes it; a failed write keeps the change (see the header). */
  charge(fn: (live: S) => void): void {
    if (this.draft !== undefined) throw new SetlsError('ERR_CARD_INTERNAL', 'a charge is its own write, never inside a transaction');
    fn(this.current);
    this.write(this.current);
  }

  /** Changes the state without writing (inside a transaction: the draft too). */
  update(fn: (s: S) => void): void {
    fn(this.current);
    if (this.draft !== undefined) fn(this.draft);
  }

  /** Writes the state as it is. */
  flush(): void {
    if (this.draft !== undefined) throw new SetlsError('ERR_CARD_INTERNAL', 'flush inside a transaction');
    this.write(this.current);
  }

  private write(s: S): void {
    const plain = this.codec.serialize(s);
    try {
      this.sealed.write(plain);
    } finally {
      wipe(plain);
    }
    for (const f of this.written) f(s);
  }
}
