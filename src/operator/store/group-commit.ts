/**
 * operator/store/group-commit: group commit for transactions that arrive concurrently (the
 * enrolment's persist step) — the ones queued while a batch commits run together, one after the
 * other, in ONE store transaction, so N enrolments cost one COMMIT (one WAL flush on PostgreSQL with
 * synchronous_commit=on, one WAL append on SQLite) instead of N. imports store/types.
 *
 * Semantics are those of one transaction each: if any function of a batch throws, the batch's
 * transaction is rolled back and each of its functions runs again alone in its own transaction, so
 * the failing one fails with its own error and touches nothing while the others commit. Functions
 * must touch only the database (they may run twice, like any PostgreSQL transaction function here).
 * A batch holds at most `maxBatch` functions; nothing waits for a timer: a batch starts as soon as
 * the previous one has committed (the first one at once).
 */
import type { OperatorStore } from './types.js';

interface Queued {
  readonly fn: (t: OperatorStore) => Promise<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

class BatchFailed extends Error {}

export class GroupCommit {
  private readonly queue: Queued[] = [];
  private running = false;
  /** Batches committed as one transaction (more than one function), for metrics and tests. */
  batches = 0;
  /** Batches rolled back and replayed one by one. */
  replays = 0;

  constructor(
    private readonly store: OperatorStore,
    private readonly maxBatch = 64,
  ) {}

  /** Runs `fn` in a transaction shared with the other functions queued meanwhile. */
  run<T>(fn: (t: OperatorStore) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        if (batch.length === 1) {
          await this.alone(batch[0]!);
          continue;
        }
        let results: unknown[];
        try {
          results = await this.store.tx(async (t) => {
            const out: unknown[] = [];
            for (const q of batch) {
              try {
                out.push(await q.fn(t));
              } catch {
                throw new BatchFailed();
              }
            }
            return out;
          });
        } catch {
          this.replays++;
          for (const q of batch) await this.alone(q);
          continue;
        }
        this.batches++;
        batch.forEach((q, i) => q.resolve(results[i]));
      }
    } finally {
      this.running = false;
    }
  }

  private async alone(q: Queued): Promise<void> {
    try {
      q.resolve(await this.store.tx(q.fn));
    } catch (e) {
      q.reject(e);
    }
  }
}
