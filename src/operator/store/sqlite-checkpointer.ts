/**
 * operator/store/sqlite-checkpointer: WAL checkpoints of the SQLite store off the event loop —
 * imports node:worker_threads, node:module and (in the worker) the better-sqlite3 package.
 *
 * In WAL mode SQLite copies the log back into the database file ("checkpoint", with an fsync of both
 * files at synchronous=NORMAL) inside whichever COMMIT makes the log pass `wal_autocheckpoint` pages
 * (default 1000): on the operator's event loop, every ~1000 pages. At enrolment rates that was half
 * of the COMMIT time (≈ 0.15 ms of CPU and 0.5 ms of the event loop per enrolment in
 * bench/scale.ts). Here a worker thread with its own connection runs `wal_checkpoint(PASSIVE)` (never
 * blocks the writer or the readers; copies what no reader still needs) after every `everyCommits`
 * commits of the writer, one at a time; the writer's own automatic checkpoint stays as a backstop at
 * `backstopPages` (a log that the worker does not keep short still gets checkpointed).
 * The worker starts at the first request (a short-lived store — the CLI, most tests — never starts
 * it), is unref'd, and ends with `close()`. If it fails, the writer's automatic checkpoint goes back
 * to SQLite's default, as without it.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export const DEFAULT_CHECKPOINT_EVERY_COMMITS = 32;
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000;
export const SQLITE_DEFAULT_AUTOCHECKPOINT_PAGES = 1000;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    parentPort.postMessage({ ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String(e && e.message || e) });
  }
});
`;

/** The last background checkpoint's answer: SQLite's (busy, log pages, pages checkpointed). */
export interface CheckpointResult {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

export class WalCheckpointer {
  private worker: Worker | null = null;
  private inFlight = false;
  private commitsSince = 0;
  private closed = false;
  private failed = false;
  /** Background checkpoints completed (tests, metrics). */
  checkpoints = 0;
  last: CheckpointResult | null = null;

  /** `onFailure` restores the writer's automatic checkpoint (the worker failed or could not start). */
  constructor(
    private readonly path: string,
    private readonly onFailure: () => void,
    private readonly everyCommits = DEFAULT_CHECKPOINT_EVERY_COMMITS,
  ) {}

  /** Called after each COMMIT of the writer. */
  committed(): void {
    if (this.closed || this.failed) return;
    if (++this.commitsSince < this.everyCommits || this.inFlight) return;
    this.commitsSince = 0;
    const w = this.worker ?? this.start();
    if (!w) return;
    this.inFlight = true;
    w.postMessage('checkpoint');
  }

  private start(): Worker | null {
    try {
      const module = createRequire(import.meta.url).resolve('better-sqlite3');
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, path: this.path } });
      w.unref();
      w.on('message', (m: ({ ok: true } & CheckpointResult) | { ok: false; error: string }) => {
        this.inFlight = false;
        if (m.ok) {
          this.checkpoints++;
          this.last = { busy: m.busy, log: m.log, checkpointed: m.checkpointed };
        }
      });
      w.on('error', () => this.fail());
      w.on('exit', () => {
        if (!this.closed) this.fail();
      });
      this.worker = w;
      return w;
    } catch {
      this.fail();
      return null;
    }
  }

  private fail(): void {
    if (this.failed) return;
    this.failed = true;
    this.worker = null;
    this.onFailure();
  }

  /** Ends the worker (its connection closed first); resolves when it has exited. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (!w) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    w.postMessage('close');
    // a checkpoint never blocks (PASSIVE), so the worker ends at once; bounded anyway
    const timer = setTimeout(() => void w.terminate(), 5000);
    await exited;
    clearTimeout(timer);
  }
}
