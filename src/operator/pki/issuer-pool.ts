/**
 * operator/pki/issuer-pool: CSR checks and certificate issuance in node:worker_threads
 * (pki/issuer-worker.ts), so an operator with several cores signs on all of them while its event
 * loop keeps serving. imports pki/issuer-worker (types), pki/enrolment (type), errors.
 *
 * - N workers, one task each at a time; tasks wait in one FIFO queue bounded by `maxQueue`. A task
 *   that finds the queue full is refused at once with ERR_OP_OVERLOADED (HTTP 503): back-pressure
 *   to the caller instead of unbounded memory.
 * - A worker that dies (uncaught error, killed, out of memory) fails the one task it held with
 *   ERR_OP_INTERNAL (never silently retried: a poison input must not kill every worker in turn) and
 *   is replaced; the queue goes on. `restarts` counts replacements.
 * - `close()` refuses new tasks, lets the queued and running ones finish, then ends the workers.
 * - The CA key reaches the workers as a KeyObject through workerData (cloned by the runtime, not
 *   exported to bytes). A request the DER template does not cover runs on `fallbackIssue`.
 */
import { Worker } from 'node:worker_threads';
import type { KeyObject } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import type { CheckedCsr } from './csr.js';
import type { EnrolmentPki } from './enrolment.js';
import type { LeafRequest } from './issuing-ca.js';
import type { WorkerReply, WorkerTask } from './issuer-worker.js';

export interface IssuerPoolOptions {
  readonly size: number;
  /** Tasks waiting for a worker at most (default 1024). */
  readonly maxQueue?: number;
  readonly certDer: Uint8Array;
  readonly key: KeyObject;
  /** Issues what the template does not cover (OperatorCa.issue). */
  readonly fallbackIssue?: (req: LeafRequest) => Promise<Uint8Array>;
  /** Called when a worker died and was replaced. */
  readonly onRestart?: (reason: string) => void;
}

type TaskBody = { readonly op: 'csr'; readonly der: Uint8Array } | { readonly op: 'issue'; readonly req: LeafRequest };
interface Pending {
  readonly id: number;
  readonly body: TaskBody;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}
interface Slot {
  worker: Worker;
  task: Pending | null;
}

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './issuer-worker.ts' : './issuer-worker.js', import.meta.url);

/**
 * Built (dist/): the worker's .js file. From the sources (tsx): Node 20 refuses a .ts worker entry
 * before any loader hook runs, so a two-line entry registers tsx in the worker, then imports it.
 */
function newWorker(workerData: unknown): Worker {
  if (!WORKER_URL.pathname.endsWith('.ts')) return new Worker(WORKER_URL, { workerData });
  const entry = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(entry, { eval: true, workerData });
}

export class IssuerPool implements EnrolmentPki {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private readonly maxQueue: number;
  private nextId = 1;
  private closing = false;
  private closed: Promise<void> | undefined;
  private drained: (() => void) | undefined;
  /** Workers replaced after dying. */
  restarts = 0;

  constructor(private readonly o: IssuerPoolOptions) {
    if (!(o.size >= 1)) throw new RangeError('an IssuerPool needs at least one worker');
    this.maxQueue = o.maxQueue ?? 1024;
    for (let i = 0; i < o.size; i++) this.slots.push(this.spawn());
  }

  get size(): number {
    return this.slots.length;
  }
  /** Tasks waiting for a worker. */
  get queued(): number {
    return this.queue.length;
  }

  async checkCsr(csrDer: Uint8Array): Promise<CheckedCsr> {
    return (await this.run({ op: 'csr', der: csrDer })) as CheckedCsr;
  }

  async issue(req: LeafRequest): Promise<Uint8Array> {
    try {
      return (await this.run({ op: 'issue', req })) as Uint8Array;
    } catch (e) {
      if (e instanceof Unsupported && this.o.fallbackIssue) return this.o.fallbackIssue(req);
      throw e;
    }
  }

  /** Ends worker `i` as a crash would (operations and tests: the pool must replace it). */
  terminateWorker(i: number): Promise<number> {
    return this.slots[i]!.worker.terminate();
  }

  /** Refuses new tasks, finishes the queued and running ones, then ends every worker. */
  close(): Promise<void> {
    this.closing = true;
    this.closed ??= (async () => {
      if (this.queue.length > 0 || this.slots.some((s) => s.task)) await new Promise<void>((r) => (this.drained = r));
      await Promise.all(this.slots.map((s) => s.worker.terminate()));
    })();
    return this.closed;
  }

  private run(body: TaskBody): Promise<unknown> {
    if (this.closing) return Promise.reject(new OpError(OpErrorCode.overloaded, 'the issuance pool is shut down'));
    return new Promise((resolve, reject) => {
      const p: Pending = { id: this.nextId++, body, resolve, reject };
      const free = this.slots.find((s) => !s.task);
      if (free) this.dispatch(free, p);
      else if (this.queue.length >= this.maxQueue) reject(new OpError(OpErrorCode.overloaded, `the issuance queue is full (${this.maxQueue} waiting)`));
      else this.queue.push(p);
    });
  }

  private dispatch(slot: Slot, p: Pending): void {
    slot.task = p;
    slot.worker.ref(); // a worker holding a task keeps the process alive; an idle one does not
    const msg: WorkerTask = p.body.op === 'csr' ? { id: p.id, op: 'csr', der: p.body.der } : { id: p.id, op: 'issue', req: p.body.req };
    slot.worker.postMessage(msg);
  }

  private next(slot: Slot): void {
    slot.task = null;
    const p = this.queue.shift();
    if (p) this.dispatch(slot, p);
    else slot.worker.unref();
    if (!p && this.closing && this.drained && this.slots.every((s) => !s.task)) this.drained();
  }

  private spawn(): Slot {
    const { certDer, key } = this.o;
    const worker = newWorker({ certDer, key });
    const slot: Slot = { worker, task: null };
    worker.on('message', (r: WorkerReply) => {
      const p = slot.task;
      if (!p || p.id !== r.id) return;
      if (r.ok) p.resolve(r.value);
      else p.reject(r.unsupported ? new Unsupported(r.message) : new OpError(r.code as OpErrorCode, r.message));
      this.next(slot);
    });
    let reason = 'exited';
    worker.on('error', (e) => (reason = e.message));
    worker.on('exit', () => {
      if (this.closing && !slot.task && this.queue.length === 0) return;
      const p = slot.task;
      slot.task = null;
      p?.reject(new OpError(OpErrorCode.internal, `an issuance worker died: ${reason}`));
      const i = this.slots.indexOf(slot);
      if (i < 0) return;
      this.restarts++;
      this.o.onRestart?.(reason);
      const fresh = this.spawn();
      this.slots[i] = fresh;
      this.next(fresh);
    });
    worker.unref();
    return slot;
  }
}

class Unsupported extends Error {}
