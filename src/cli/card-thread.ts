/**
 * An emulated card folder served from a worker thread (cli/card-worker.ts): the card computes on a
 * thread of its own, with its own heap, as a secure element computes on its own processor. The host
 * keeps only an APDU channel to it: command bytes posted, response bytes back (the same
 * InProcessTransport contract: fresh copies, one APDU at a time). The card's master key and state
 * never enter the host thread's heap; the host's event loop runs while the card works; a pool of
 * such cards uses more than one core.
 *
 * A thread that dies or faults fails its pending and later APDUs with ERR_CARD_THREAD; close()
 * lets the card write its state and release its folder, then ends the thread.
 * imports bytes/, transport/ and cli/card-files.
 */
import { Worker } from 'node:worker_threads';
import { SetlsError } from '../bytes/index.js';
import { InProcessTransport, type CardTransport } from '../transport/index.js';
import { cardPaths } from './card-files.js';

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './card-worker.ts' : './card-worker.js', import.meta.url);

/** Built (dist/): the worker's .js file. From the sources (tsx): a two-line entry registers tsx in the worker first. */
function newWorker(workerData: unknown): Worker {
  if (!WORKER_URL.pathname.endsWith('.ts')) return new Worker(WORKER_URL, { workerData });
  const entry = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(entry, { eval: true, workerData });
}

export interface ThreadCard {
  /** APDU bytes in, APDU bytes out (an InProcessTransport over the thread). */
  readonly transport: CardTransport;
  /** The card's Answer To Reset. */
  readonly atr: Uint8Array;
  /** The card thread's id (`threadId`). */
  readonly threadId: number;
  /** The card thread's id in the OS (Linux; `top -H -p <pid>` shows it), undefined elsewhere. */
  readonly osThreadId: number | undefined;
  /** Time the card thread has spent working (its event loop active: APDUs processed, wall time), ms. */
  activeMs(): number;
  /** Closes the transport, lets the card write its state and release its folder, ends the thread. */
  close(): Promise<void>;
}

type Out =
  | { readonly t: 'ready'; readonly atr: Uint8Array; readonly tid?: number }
  | { readonly t: 'open-failed'; readonly code?: string; readonly message: string }
  | { readonly t: 'rapdu'; readonly id: number; readonly apdu: Uint8Array }
  | { readonly t: 'fault'; readonly id: number; readonly message: string }
  | { readonly t: 'closed' };

interface Pending {
  resolve(r: Uint8Array): void;
  reject(e: unknown): void;
}

function threadError(message: string): SetlsError {
  return new SetlsError('ERR_CARD_THREAD', message);
}

/** Opens the emulated card of `cardDir` in a worker thread; rejects with the card's own error (ERR_CARD_LOCKED, …) if it cannot open. */
export async function openCardThread(opts: { cardDir: string; cardKey?: string }): Promise<ThreadCard> {
  const paths = cardPaths(opts.cardDir, { cardKey: opts.cardKey });
  const worker = newWorker({ dir: paths.dir, keyFile: paths.keyFile });
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let dead: SetlsError | undefined;
  let onClosed: (() => void) | undefined;
  const die = (e: SetlsError): void => {
    if (dead) return;
    dead = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  let osThreadId: number | undefined;
  const atr = await new Promise<Uint8Array>((resolve, reject) => {
    const early = (e: Error): void => reject(threadError(`the card thread failed to start: ${e.message}`));
    const earlyExit = (code: number): void => reject(threadError(`the card thread exited (${code}) before the card opened`));
    worker.once('error', early);
    worker.once('exit', earlyExit);
    worker.once('message', (m: Out) => {
      worker.off('error', early);
      worker.off('exit', earlyExit);
      if (m.t === 'ready') {
        osThreadId = typeof m.tid === 'number' ? m.tid : undefined;
        resolve(m.atr);
      }
      else if (m.t === 'open-failed') reject(new SetlsError(typeof m.code === 'string' && m.code.startsWith('ERR_') ? m.code : 'ERR_CARD_THREAD', m.message));
      else reject(threadError(`the card thread sent '${m.t}' before opening the card`));
    });
  }).catch(async (e: unknown) => {
    await worker.terminate();
    throw e;
  });
  worker.on('message', (m: Out) => {
    if (m.t === 'rapdu' || m.t === 'fault') {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.t === 'rapdu') p.resolve(m.apdu);
      else p.reject(threadError(`the card faulted: ${m.message}`));
    } else if (m.t === 'closed') onClosed?.();
  });
  worker.on('error', (e) => die(threadError(`the card thread failed: ${e.message}`)));
  worker.on('exit', (code) => die(threadError(`the card thread exited (${code})`)));
  const process = (apdu: Uint8Array): Promise<Uint8Array> =>
    new Promise((resolve, reject) => {
      if (dead) return reject(dead);
      const id = nextId++;
      pending.set(id, { resolve, reject });
      // InProcessTransport hands over a fresh copy it keeps no use for: its buffer moves to the card
      worker.postMessage({ t: 'apdu', id, apdu }, [apdu.buffer as ArrayBuffer]);
    });
  let closing: Promise<void> | undefined;
  const transport = new InProcessTransport(process);
  return {
    transport,
    atr,
    threadId: worker.threadId,
    osThreadId,
    activeMs: () => worker.performance.eventLoopUtilization().active,
    close() {
      closing ??= (async () => {
        await transport.close();
        if (!dead) {
          const closed = new Promise<void>((r) => (onClosed = r));
          const exited = new Promise<void>((r) => worker.once('exit', () => r()));
          worker.postMessage({ t: 'close' });
          await Promise.race([closed, exited]);
        }
        die(threadError('the card thread is closed'));
        await worker.terminate();
      })();
      return closing;
    },
  };
}
