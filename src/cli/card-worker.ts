/**
 * The emulated card in a thread of its own (`setls serve https --card-thread`, cli/card-thread.ts):
 * this worker opens the card folder (its master key read here, never in the host's thread) and
 * answers the APDUs the host writes into their shared buffer (cli/card-channel.ts), one at a time,
 * as a secure element does on its own processor. Between APDUs it sleeps in Atomics.wait.
 *
 * Start-up is one message: { t: 'ready', atr, tid } once open (tid: its OS thread id, Linux), or
 * { t: 'open-failed', code, message }. After that, only the shared buffer.
 * imports card/, cli/card-files and cli/card-channel only.
 */
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { EmulatedCard } from '../card/index.js';
import { readMasterKey } from './card-files.js';
import { CARD_CHANNEL_CAPACITY, CARD_CHANNEL_DATA, CardChannelState as S } from './card-channel.js';

interface Start {
  readonly dir: string;
  readonly keyFile: string;
  readonly channel: SharedArrayBuffer;
}

/** This thread's id in the OS (Linux: /proc/thread-self → <pid>/task/<tid>), for `top -H` and CPU accounting; elsewhere undefined. */
function osThreadId(): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

const port = parentPort!;
const { dir, keyFile, channel } = workerData as Start;
const ctrl = new Int32Array(channel, 0, 2);
const data = new Uint8Array(channel, CARD_CHANNEL_DATA, CARD_CHANNEL_CAPACITY);
const UTF8 = new TextEncoder();

function serve(card: EmulatedCard): void {
  for (;;) {
    Atomics.wait(ctrl, 0, S.idle);
    const state = Atomics.load(ctrl, 0);
    if (state === S.command) {
      // the command is copied out of the shared buffer: the card keeps nothing the host can touch
      const cmd = data.slice(0, ctrl[1]!);
      let next: number = S.response;
      let out: Uint8Array;
      try {
        out = card.process(cmd);
        if (out.length > CARD_CHANNEL_CAPACITY) throw new RangeError(`response of ${out.length} bytes`);
      } catch (e) {
        out = UTF8.encode(String((e as Error)?.message ?? e)).subarray(0, 1024);
        next = S.fault;
      }
      data.set(out);
      ctrl[1] = out.length;
      Atomics.store(ctrl, 0, next);
      Atomics.notify(ctrl, 0);
    } else if (state === S.closing || state === S.dead) {
      card.close();
      Atomics.store(ctrl, 0, S.closed);
      Atomics.notify(ctrl, 0);
      return;
    }
    // response / fault: the host has not taken it yet (a spurious wake-up): wait again
    else Atomics.wait(ctrl, 0, state);
  }
}

let card: EmulatedCard | undefined;
try {
  const masterKey = readMasterKey(keyFile);
  try {
    card = EmulatedCard.open({ dir, masterKey });
  } finally {
    masterKey.fill(0);
  }
  port.postMessage({ t: 'ready', atr: card.atr, tid: osThreadId() });
} catch (e) {
  port.postMessage({ t: 'open-failed', code: (e as { code?: unknown }).code, message: (e as Error).message });
}
// no listener on the port: after open-failed the thread simply ends
if (card) serve(card);
