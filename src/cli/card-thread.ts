/**
 * An emulated card folder served from a worker thread (cli/card-worker.ts): the card computes on a
 * thread of its own, with its own heap, as a secure element computes on its own processor. The host
 * keeps only an APDU channel to it: command bytes written into a shared buffer, response bytes read
 * back (cli/card-channel.ts), under the InProcessTransport contract (fresh copies each way, one APDU
 * at a time). The card's master key and state never enter the host thread's heap; the host's event
 * loop runs while the card works; a pool of such cards uses more than one core.
 *
 * A thread that dies or faults fails its APDU in flight and every later one with ERR_CARD_THREAD;
 * close() lets the card write its state and release its folder, then ends the thread.
 * imports bytes/, transport/, cli/card-files and cli/card-channel.
 */
import { Worker } from 'node:worker_threads';
import { SetlsError } from '../bytes/index.js';
import { InProcessTransport, type CardTransport } from '../transport/index.js';
import { cardPaths } from './card-files.js';
import { CARD_CHANNEL_CAPACITY, CARD_CHANNEL_DATA, CardChannelState as S, newCardChannel } from './card-channel.js';

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
  /** Closes the transport, lets the card write its state and release its folder, ends the thread. */
  close(): Promise<void>;
  /**
   * Ends the card thread at once, as a card pulled from its reader: what it did not write yet is
   * lost, its folder stays taken until this process ends; every APDU in flight or later fails
   * with ERR_CARD_THREAD.
   */
  terminate(): Promise<void>;
}

type Start = { readonly t: 'ready'; readonly atr: Uint8Array; readonly tid?: number } | { readonly t: 'open-failed'; readonly code?: unknown; readonly message: string };

/** Atomics.waitAsync (ES2024; in Node since 16), typed here: the project's lib is older. */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> } }).waitAsync;

function threadError(message: string): SetlsError {
  return new SetlsError('ERR_CARD_THREAD', message);
}

/** Opens the emulated card of `cardDir` in a worker thread; rejects with the card's own error (ERR_CARD_LOCKED, …) if it cannot open. */
export async function openCardThread(opts: { cardDir: string; cardKey?: string }): Promise<ThreadCard> {
  const paths = cardPaths(opts.cardDir, { cardKey: opts.cardKey });
  const channel = newCardChannel();
  const ctrl = new Int32Array(channel, 0, 2);
  const data = new Uint8Array(channel, CARD_CHANNEL_DATA, CARD_CHANNEL_CAPACITY);
  const worker = newWorker({ dir: paths.dir, keyFile: paths.keyFile, channel });
  let osThreadId: number | undefined;
  const atr = await new Promise<Uint8Array>((resolve, reject) => {
    const early = (e: Error): void => reject(threadError(`the card thread failed to start: ${e.message}`));
    const earlyExit = (code: number): void => reject(threadError(`the card thread exited (${code}) before the card opened`));
    worker.once('error', early);
    worker.once('exit', earlyExit);
    worker.once('message', (m: Start) => {
      worker.off('error', early);
      worker.off('exit', earlyExit);
      if (m.t === 'ready') {
        osThreadId = typeof m.tid === 'number' ? m.tid : undefined;
        resolve(m.atr);
      } else reject(new SetlsError(typeof m.code === 'string' && m.code.startsWith('ERR_') ? m.code : 'ERR_CARD_THREAD', m.message));
    });
  }).catch(async (e: unknown) => {
    await worker.terminate();
    throw e;
  });

  let dead: SetlsError | undefined;
  // the thread ended (crash, terminate): whoever waits on the control word wakes up and finds it dead
  const die = (e: SetlsError): void => {
    dead ??= e;
    Atomics.store(ctrl, 0, S.dead);
    Atomics.notify(ctrl, 0);
  };
  worker.on('error', (e) => die(threadError(`the card thread failed: ${e.message}`)));
  worker.on('exit', (code) => die(threadError(`the card thread exited (${code})`)));

  /** Waits until the control word leaves `from`; resolves with the new value. */
  const leave = async (from: number): Promise<number> => {
    for (;;) {
      const w = waitAsync(ctrl, 0, from);
      if (w.async) await w.value;
      const now = Atomics.load(ctrl, 0);
      if (now !== from) return now;
    }
  };

  // One APDU at a time: InProcessTransport queues the next call until this one settled.
  const process = async (apdu: Uint8Array): Promise<Uint8Array> => {
    if (dead) throw dead;
    if (apdu.length > CARD_CHANNEL_CAPACITY) throw new SetlsError('ERR_APDU_LENGTH', `command APDU of ${apdu.length} bytes`);
    data.set(apdu);
    ctrl[1] = apdu.length;
    Atomics.store(ctrl, 0, S.command);
    Atomics.notify(ctrl, 0);
    const state = await leave(S.command);
    if (state === S.dead) throw dead ?? threadError('the card thread is gone');
    const n = ctrl[1]!;
    const out = data.slice(0, n);
    // nothing of this exchange (a PIN, exported keys) stays in the shared buffer
    data.fill(0, 0, Math.max(n, apdu.length));
    Atomics.store(ctrl, 0, S.idle);
    if (state === S.fault) throw threadError(`the card faulted: ${new TextDecoder().decode(out)}`);
    if (state !== S.response) throw threadError(`unexpected card channel state ${state}`);
    return out;
  };
  const transport = new InProcessTransport(process);
  let closing: Promise<void> | undefined;
  return {
    transport,
    atr,
    threadId: worker.threadId,
    osThreadId,
    close() {
      closing ??= (async () => {
        await transport.close();
        if (!dead) {
          Atomics.store(ctrl, 0, S.closing);
          Atomics.notify(ctrl, 0);
          await leave(S.closing); // closed (state written, folder released), or dead
        }
        dead ??= threadError('the card thread is closed');
        await worker.terminate();
      })();
      return closing;
    },
    async terminate() {
      await worker.terminate();
      die(threadError('the card thread was terminated'));
    },
  };
}
