/**
 * operator/store/micro-batch: one store round for many concurrent requests of the same kind (the
 * enrolment's nonce issue and persist steps) — the requests queued while a round runs go together,
 * in order, to ONE call of `handler`, which answers each of them (a value or its own refusal).
 * imports nothing.
 *
 * Semantics are those of one call each: when `handler` throws for the whole batch (a constraint
 * another node's concurrent write violated, a batch it cannot decide exactly, a lost connection),
 * every request of the batch is run again alone through `alone`, in order, so each gets its own
 * result or error. A batch holds at most `maxBatch` requests; nothing waits for a timer: a batch
 * starts as soon as the previous one is done (the first one at once, and a lone request goes
 * straight to `alone`).
 */

/** What the handler answers for one request of its batch. */
export type BatchAnswer<O> = { readonly ok: true; readonly value: O } | { readonly ok: false; readonly error: unknown };

interface Queued<I, O> {
  readonly item: I;
  resolve(v: O): void;
  reject(e: unknown): void;
}

export class MicroBatch<I, O> {
  private readonly queue: Queued<I, O>[] = [];
  private running = false;
  /** Batches answered by one handler call (more than one request), for metrics and tests. */
  batches = 0;
  /** Batches the handler refused as a whole, replayed one by one. */
  replays = 0;

  constructor(
    private readonly handler: (items: readonly I[]) => Promise<readonly BatchAnswer<O>[]>,
    private readonly alone: (item: I) => Promise<O>,
    private readonly maxBatch = 64,
  ) {
    if (!(maxBatch >= 1)) throw new RangeError('maxBatch must be at least 1');
  }

  /** Runs `item` in the next batch; resolves with its value or rejects with its own error. */
  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        if (batch.length === 1) {
          await this.one(batch[0]!);
          continue;
        }
        let answers: readonly BatchAnswer<O>[];
        try {
          answers = await this.handler(batch.map((q) => q.item));
          if (answers.length !== batch.length) throw new Error(`batch handler answered ${answers.length} of ${batch.length}`);
        } catch {
          this.replays++;
          for (const q of batch) await this.one(q);
          continue;
        }
        this.batches++;
        batch.forEach((q, i) => {
          const a = answers[i]!;
          if (a.ok) q.resolve(a.value);
          else q.reject(a.error);
        });
      }
    } finally {
      this.running = false;
    }
  }

  private async one(q: Queued<I, O>): Promise<void> {
    try {
      q.resolve(await this.alone(q.item));
    } catch (e) {
      q.reject(e);
    }
  }
}
