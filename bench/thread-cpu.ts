/**
 * This process's CPU split by thread (Linux /proc/self/task/<tid>/schedstat: nanoseconds on a CPU,
 * per thread): the main (JavaScript) thread and all the others together (V8's GC and compiler
 * helpers, libuv's pool). process.cpuUsage() adds them up; a server whose JavaScript allocates and
 * compiles much pays a visible share on the helpers, which a sampled --cpu-prof (main thread only)
 * never sees. Elsewhere than Linux: undefined. imports node only.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface ThreadCpu {
  /** CPU of the main thread, µs. */
  readonly mainUs: number;
  /** CPU of every other thread alive now, µs (a thread that exited meanwhile drops out). */
  readonly othersUs: number;
}

export function threadCpu(): ThreadCpu | undefined {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return undefined;
  }
  let main = 0;
  let others = 0;
  const self = String(process.pid);
  for (const tid of tids) {
    let ns: number;
    try {
      ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      continue; // the thread ended while we listed them
    }
    if (!Number.isFinite(ns)) continue;
    if (tid === self) main += ns / 1000;
    else others += ns / 1000;
  }
  return { mainUs: main, othersUs: others };
}
