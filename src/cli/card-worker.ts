/**
 * The emulated card in a thread of its own (`setls serve https --card-thread`, cli/card-thread.ts):
 * this worker opens the card folder (its master key read here, never in the host's thread) and
 * answers APDUs posted by the host, one at a time, as a secure element does on its own processor.
 *
 * Messages in: { t: 'apdu', id, apdu } (the command's ArrayBuffer transferred), { t: 'close' }.
 * Messages out: { t: 'ready', atr, tid } once open (tid: its OS thread id, Linux), { t: 'open-failed', code, message } if not,
 * { t: 'rapdu', id, apdu } (a fresh copy, its ArrayBuffer transferred), { t: 'fault', id, message }
 * when process() threw, { t: 'closed' } after the card closed (state written, folder released).
 * imports card/ and cli/card-files only.
 */
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { EmulatedCard } from '../card/index.js';
import { readMasterKey } from './card-files.js';

interface Start {
  readonly dir: string;
  readonly keyFile: string;
}

type In = { readonly t: 'apdu'; readonly id: number; readonly apdu: Uint8Array } | { readonly t: 'close' };

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
const { dir, keyFile } = workerData as Start;

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
  port.close();
}

port.on('message', (m: In) => {
  if (!card) return;
  if (m.t === 'close') {
    card.close();
    card = undefined;
    port.postMessage({ t: 'closed' });
    port.close();
    return;
  }
  let out: Uint8Array;
  try {
    // a copy the card keeps no reference to: its buffer is handed over whole
    out = card.process(m.apdu).slice();
  } catch (e) {
    port.postMessage({ t: 'fault', id: m.id, message: (e as Error).message });
    return;
  }
  port.postMessage({ t: 'rapdu', id: m.id, apdu: out }, [out.buffer as ArrayBuffer]);
});
