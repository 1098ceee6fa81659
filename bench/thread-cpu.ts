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

/** One thread of this process: its id, name (/proc/self/task/<tid>/comm) and CPU so far, µs. */
export interface ThreadSample {
  readonly tid: string;
  readonly name: string;
  readonly main: boolean;
  readonly us: number;
}

/** Every thread alive now with its CPU so far (a thread that ends while listed is left out). Elsewhere than Linux: undefined. */
export function cpuByThread(): ThreadSample[] | undefined {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return undefined;
  }
  const self = String(process.pid);
  const out: ThreadSample[] = [];
  for (const tid of tids) {
    let ns: number;
    let name: string;
    try {
      ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue; // the thread ended while we listed them
    }
    if (!Number.isFinite(ns)) continue;
    out.push({ tid, name, main: tid === self, us: ns / 1000 });
  }
  return out;
}

/** The main thread's CPU and the other threads' together, from one cpuByThread() reading. */
export function splitMain(threads: readonly ThreadSample[]): ThreadCpu {
  let main = 0;
  let others = 0;
  for (const t of threads) {
    if (t.main) main += t.us;
    else others += t.us;
  }
  return { mainUs: main, othersUs: others };
}

export function threadCpu(): ThreadCpu | undefined {
  const threads = cpuByThread();
  return threads && splitMain(threads);
}
