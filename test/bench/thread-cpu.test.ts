/**
 * bench/thread-cpu.ts: the bench's split of the server process's CPU between the main thread and
 * the others (GC/compiler helpers, libuv pool): work done on a worker thread shows up in `othersUs`,
 * work on the main thread in `mainUs`. Linux only (/proc); skipped elsewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { threadCpu } from '../../bench/thread-cpu.js';

test('threadCpu: CPU burnt on a worker thread counts in othersUs, on the main thread in mainUs', async (t) => {
  const a = threadCpu();
  if (!a) return t.skip('no /proc/self/task here (not Linux)');
  // a worker spinning through a fixed amount of work (no timing involved: it ends when done)
  const w = new Worker('let x = 0; for (let i = 0; i < 3e8; i++) x = (x + i) % 1000003; require("node:worker_threads").parentPort.postMessage(x);', { eval: true });
  const [result] = (await once(w, 'message')) as [number];
  assert.equal(typeof result, 'number');
  const b = threadCpu()!; // while the worker thread still exists
  await w.terminate();
  let y = 0;
  for (let i = 0; i < 3e7; i++) y = (y + i) % 1000003;
  assert.ok(y >= 0);
  const c = threadCpu()!;
  assert.ok(b.othersUs - a.othersUs > 1000, `the worker's CPU is on the other threads (${b.othersUs - a.othersUs} µs)`);
  assert.ok(c.mainUs - b.mainUs > 1000, `the main thread's own loop is on the main thread (${c.mainUs - b.mainUs} µs)`);
});
