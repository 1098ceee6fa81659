/**
 * operator/jobs/runner: the durable job runner — claims jobs from the store with a lease, runs the
 * executor registered for the job's kind, renews the lease while it runs, and records the outcome
 * only while it still holds the lease (fencing by owner + attempt). imports store/types, errors.
 *
 * Crash safety: a runner that dies leaves its job in_progress with a lease that expires; any
 * runner (this process after a restart, or another one) then claims it again with attempt + 1 and
 * sees the executor's last checkpoint in `job.progress`. A runner that lost its lease (expired while
 * it was stalled) can no longer checkpoint or finish: its writes are refused, its signal aborts.
 * Per card, jobs run one at a time and in creation order (store.claimJob).
 * Outcomes: executor resolves → succeeded (its value is the job's result); throws a JobError with
 * `retryable` → queued again after a back-off while attempts are left, else failed; any other
 * error → failed with its code (ERR_OP_INTEGRITY: reason `integrity`); deadline → timed_out;
 * attempts exhausted by crashes → failed ERR_OP_JOB_ABANDONED.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { OpError, OpErrorCode } from '../errors.js';
import type { CardRow, JobRow, JsonObject, OperatorStore } from '../store/types.js';

/** What an executor gets besides the job row. */
export interface JobContext {
  /** The card the job targets. */
  readonly card: CardRow;
  /** This runner's lease owner id. */
  readonly owner: string;
  /** Aborted when the lease is lost, the deadline passes or the runner stops; stop work then. */
  readonly signal: AbortSignal;
  /** Persists resumable progress (seen as `job.progress` by the next attempt); throws ERR_OP_LEASE_LOST. */
  checkpoint(progress: JsonObject): Promise<void>;
  /** Extends the lease now (the runner also renews it periodically); throws ERR_OP_LEASE_LOST. */
  heartbeat(): Promise<void>;
}

/** Runs one job; resolves with the job's result. Registered per kind: `runner.register(kind, fn)`. */
export type JobExecutor = (job: JobRow, ctx: JobContext) => Promise<JsonObject | void>;

/** An executor's failure with a code; `retryable` asks for another attempt. */
export class JobError extends OpError {
  readonly retryable: boolean;
  constructor(code: OpErrorCode, message: string, options?: { retryable?: boolean; cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, options);
    this.retryable = options?.retryable ?? false;
    this.name = 'JobError';
  }
}

export interface RunnerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RunnerOptions {
  readonly store: OperatorStore;
  /** Lease owner id (default host:pid:random). */
  readonly owner?: string;
  readonly leaseMs?: number;
  /** Lease renewal period (default leaseMs / 3). */
  readonly heartbeatMs?: number;
  /** Idle poll period of the loop (`poke()` wakes it at once). */
  readonly pollMs?: number;
  /** Jobs run at once by this runner. */
  readonly concurrency?: number;
  /** Retry back-off: base · 2^(attempt−1), capped. */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /**
   * Agent routing: a job whose card's agent polled another node within this time is left to that
   * node (default 60 s: longer than the relay's 25 s long poll, so a live agent stays attached).
   */
  readonly agentAttachTtlMs?: number;
  readonly now?: () => number;
  readonly log?: RunnerLog;
  readonly onFinish?: (job: JobRow, status: string) => void;
  /**
   * Writes a job's final outcome: `write` does the guarded UPDATE on the store or transaction it is
   * given and says whether it applied. The default runs it on the store; the operator wraps it in a
   * transaction with the campaign's abort decision (CampaignEngine.recordOutcome).
   */
  readonly recordOutcome?: (job: JobRow, write: (t: OperatorStore) => Promise<boolean>, failed: boolean) => Promise<boolean>;
}

const SILENT: RunnerLog = { info() {}, warn() {}, error() {} };

export class JobRunner {
  readonly owner: string;
  private readonly executors = new Map<string, JobExecutor>();
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly now: () => number;
  private readonly log: RunnerLog;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly pollMs: number;
  private readonly concurrency: number;
  private readonly attachTtlMs: number;
  private loopTimer: NodeJS.Timeout | undefined;
  private active = false;
  private crashed = false;
  private ticking = false;
  private again = false;
  private unwatch: Promise<(() => Promise<void>) | null> | undefined;

  constructor(private readonly o: RunnerOptions) {
    this.owner = o.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.now = o.now ?? Date.now;
    this.log = o.log ?? SILENT;
    this.leaseMs = o.leaseMs ?? 60_000;
    this.heartbeatMs = o.heartbeatMs ?? Math.max(10, Math.floor(this.leaseMs / 3));
    this.pollMs = o.pollMs ?? 1000;
    this.concurrency = o.concurrency ?? 4;
    this.attachTtlMs = o.agentAttachTtlMs ?? 60_000;
  }

  private recordOutcome(job: JobRow, write: (t: OperatorStore) => Promise<boolean>, failed: boolean): Promise<boolean> {
    return this.o.recordOutcome ? this.o.recordOutcome(job, write, failed) : write(this.o.store);
  }

  private claim(): Promise<JobRow | null> {
    const now = this.now();
    return this.o.store.claimJob({ owner: this.owner, now, leaseMs: this.leaseMs, kinds: this.kinds(), node: { id: this.owner, attachedAfter: now - this.attachTtlMs } });
  }

  register(kind: string, executor: JobExecutor): this {
    this.executors.set(kind, executor);
    return this;
  }

  kinds(): string[] {
    return [...this.executors.keys()];
  }

  /** Starts the polling loop, and listens for job changes made by other nodes where the store
   *  announces them (PostgreSQL NOTIFY): the loop then wakes at once instead of at its next poll. */
  start(): void {
    if (this.active) return;
    this.active = true;
    this.unwatch = this.o.store.watchJobs(() => this.poke()).catch((e: unknown) => {
      this.log.warn({ err: e }, 'job notifications unavailable; polling only');
      return null;
    });
    this.schedule(0);
  }

  private async stopWatching(): Promise<void> {
    const w = this.unwatch;
    this.unwatch = undefined;
    const stop = w ? await w : null;
    if (stop) await stop();
  }

  /**
   * Wakes the loop now (a job was just created). During a tick the wake-up is remembered (`again`),
   * not a timer: the tick's end would replace that timer with the next poll, and lose it.
   */
  poke(): void {
    if (!this.active) return;
    if (this.ticking) this.again = true;
    else this.schedule(0);
  }

  /** Stops claiming, aborts running executors and waits for them to settle. */
  async stop(): Promise<void> {
    this.active = false;
    clearTimeout(this.loopTimer);
    await this.stopWatching();
    for (const r of this.running.values()) r.controller.abort(new JobError(OpErrorCode.leaseLost, 'the runner is stopping', { retryable: true }));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  /**
   * Test hook: behave as if the process died now — no more claims, renewals, checkpoints or
   * outcomes are written; leases simply expire.
   */
  crash(): void {
    this.crashed = true;
    this.active = false;
    clearTimeout(this.loopTimer);
    void this.stopWatching();
  }

  /** Expires what must be expired, then claims and runs jobs until none is claimable or the
   *  concurrency is full; resolves when the jobs it started have finished. Returns how many ran. */
  async runOnce(): Promise<number> {
    if (this.crashed) return 0;
    await this.expire();
    const started: Promise<void>[] = [];
    while (this.running.size < this.concurrency && !this.crashed) {
      const job = await this.claim();
      if (!job) break;
      started.push(this.execute(job));
    }
    await Promise.all(started);
    return started.length;
  }

  private schedule(ms: number): void {
    clearTimeout(this.loopTimer);
    this.loopTimer = setTimeout(() => void this.tick(), ms);
    this.loopTimer.unref?.();
  }

  private async tick(): Promise<void> {
    if (!this.active) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    try {
      await this.expire();
      while (this.active && this.running.size < this.concurrency) {
        const job = await this.claim();
        if (!job) break;
        void this.execute(job).then(() => this.poke());
      }
    } catch (e) {
      this.log.error({ err: e }, 'job runner tick failed');
    } finally {
      this.ticking = false;
      if (this.active) this.schedule(this.again ? 0 : this.pollMs);
      this.again = false;
    }
  }

  private async expire(): Promise<void> {
    const now = this.now();
    for (const job of await this.o.store.jobsToExpire(now, 100)) {
      const pastDeadline = job.deadlineAt !== null && job.deadlineAt <= now;
      const ok = await this.recordOutcome(job, (t) =>
        t.expireJob(job.id, job.attempt, {
          status: pastDeadline ? 'timed_out' : 'failed',
          errorCode: pastDeadline ? OpErrorCode.jobTimeout : OpErrorCode.jobAbandoned,
          errorMessage: pastDeadline ? 'the job passed its deadline' : `no attempt left after ${job.attempt} (the runners holding it stopped)`,
          result: { reason: pastDeadline ? 'timeout' : 'abandoned' },
          now,
        }),
        true,
      );
      if (ok) {
        this.log.warn({ job: job.id, kind: job.kind }, pastDeadline ? 'job timed out' : 'job abandoned');
        this.o.onFinish?.(job, pastDeadline ? 'timed_out' : 'failed');
      }
    }
  }

  private execute(job: JobRow): Promise<void> {
    const controller = new AbortController();
    const done = this.executeInner(job, controller).finally(() => this.running.delete(job.id));
    this.running.set(job.id, { controller, done });
    return done;
  }

  private async executeInner(job: JobRow, controller: AbortController): Promise<void> {
    const store = this.o.store;
    const { id, attempt } = job;
    const executor = this.executors.get(job.kind);
    const lost = (): JobError => new JobError(OpErrorCode.leaseLost, `lease on job ${id} lost`);
    const abortWith = (e: Error): void => {
      if (!controller.signal.aborted) controller.abort(e);
    };
    const heartbeat = async (): Promise<void> => {
      if (this.crashed) throw lost();
      const now = this.now();
      if (!(await store.renewLease(id, this.owner, attempt, now + this.leaseMs, now))) {
        abortWith(lost());
        throw lost();
      }
    };
    const hb = setInterval(() => void heartbeat().catch(() => undefined), this.heartbeatMs);
    hb.unref?.();
    let deadlineTimer: NodeJS.Timeout | undefined;
    if (job.deadlineAt !== null) {
      deadlineTimer = setTimeout(() => abortWith(new JobError(OpErrorCode.jobTimeout, 'the job passed its deadline')), Math.max(0, job.deadlineAt - this.now()));
      deadlineTimer.unref?.();
    }
    try {
      const card = await store.cardById(job.cardId);
      if (!executor || !card) throw new JobError(OpErrorCode.noExecutor, executor ? `card ${job.cardId} is gone` : `no executor for job kind '${job.kind}'`);
      const ctx: JobContext = {
        card,
        owner: this.owner,
        signal: controller.signal,
        heartbeat,
        checkpoint: async (progress) => {
          if (this.crashed || !(await store.saveProgress(id, this.owner, attempt, progress, this.now()))) {
            abortWith(lost());
            throw lost();
          }
        },
      };
      const aborted = new Promise<never>((_, reject) => {
        if (controller.signal.aborted) reject(controller.signal.reason);
        controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
      });
      aborted.catch(() => undefined);
      const result = await Promise.race([executor(job, ctx), aborted]);
      await this.finish(job, { status: 'succeeded', result: (result ?? {}) as JsonObject });
    } catch (e) {
      await this.fail(job, e);
    } finally {
      clearInterval(hb);
      clearTimeout(deadlineTimer);
    }
  }

  private async finish(job: JobRow, f: { status: 'succeeded' | 'failed' | 'timed_out'; result?: JsonObject; errorCode?: string; errorMessage?: string }): Promise<void> {
    if (this.crashed) return;
    const now = this.now();
    const ok = await this.recordOutcome(job, (t) => t.finishJob(job.id, this.owner, job.attempt, { ...f, now }), f.status !== 'succeeded');
    if (!ok) {
      this.log.warn({ job: job.id, attempt: job.attempt }, 'job outcome dropped: the lease was lost');
      return;
    }
    this.log.info({ job: job.id, kind: job.kind, status: f.status, code: f.errorCode }, 'job finished');
    this.o.onFinish?.(job, f.status);
  }

  private async fail(job: JobRow, e: unknown): Promise<void> {
    if (this.crashed) return;
    const err = e instanceof OpError ? e : new JobError(OpErrorCode.internal, (e as Error)?.message ?? String(e), { cause: e });
    if (err.code === OpErrorCode.leaseLost && !(err instanceof JobError && err.retryable)) {
      this.log.warn({ job: job.id }, 'lease lost; another runner owns the job now');
      return;
    }
    if (err.code === OpErrorCode.jobTimeout) {
      await this.finish(job, { status: 'timed_out', errorCode: err.code, errorMessage: err.message, result: { reason: 'timeout' } });
      return;
    }
    const retryable = err instanceof JobError && err.retryable;
    if (retryable && job.attempt < job.maxAttempts) {
      const base = this.o.backoffBaseMs ?? 1000;
      const delay = Math.min(this.o.backoffMaxMs ?? 5 * 60_000, base * 2 ** (job.attempt - 1));
      const now = this.now();
      if (await this.o.store.requeueJob(job.id, this.owner, job.attempt, now + delay, err.code, err.message, now)) {
        this.log.info({ job: job.id, attempt: job.attempt, code: err.code, retryInMs: delay }, 'job will be retried');
      }
      return;
    }
    await this.finish(job, { status: 'failed', errorCode: err.code, errorMessage: err.message, result: { reason: reasonOf(err.code) } });
  }
}

/** Short reason of a failure code: ERR_OP_INTEGRITY → 'integrity'. */
export function reasonOf(code: string | null): string | null {
  return code ? code.replace(/^ERR_OP_/, '').toLowerCase() : null;
}
