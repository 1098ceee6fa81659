/**
 * What the setls server allocates per TLS 1.3 handshake (issue #14: the V8 GC threads cost setls
 * 0.4–0.6 ms per connection against node:tls's 0.03): the in-process card and the host served as
 * in bench/run.ts's setls-ext variant (extended APDUs, record layer in the card, no instrumented
 * transport), driven by bench/client.ts (its own process), full or resumed handshakes. After a
 * warm-up, V8's sampling heap profiler runs (node:inspector, objects collected by minor and major
 * GCs included, so it counts every allocation, not what survives) over N handshakes; prints bytes
 * allocated per handshake by area and the top allocation sites by self size.
 *
 *   node --import tsx bench/alloc-profile.ts [--n 1000] [--warmup 800] [--resume] [--thread] [--top 30] [--interval 4096] [--no-sampling] [--cpu [--raw FILE.cpuprofile]]
 *
 * --thread: the card in a worker thread of its own (`serve https --card-thread`): the main thread and
 * its heap are the host's alone (the card's allocations are not sampled).
 *
 * --no-sampling: CPU by thread and GCs only; --cpu: V8's CPU profiler instead of the heap sampler,
 * the main thread split into card (card.process() on the stack) and host, the host's top frames;
 * --raw also writes that profile (Chrome DevTools' .cpuprofile format) for a look at callers.
 *
 * imports src/cli (card init) and bench/ helpers only.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { initCard } from '../src/cli/card-setup.js';
import { LoadClient } from './load-client.js';
import { areaOf, type CpuProfile } from './profile.js';
import type { JobResult } from './protocol.js';
import { startSetls, startSetlsThread } from './servers.js';
import { cpuByThread, splitMain } from './thread-cpu.js';

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  selfSize: number;
  id: number;
  children: SamplingNode[];
}
interface SamplingProfile {
  head: SamplingNode;
  samples: { size: number; nodeId: number }[];
}

function summarise(p: SamplingProfile, perHandshake: number, top: number): string {
  const bySite = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  const walk = (n: SamplingNode, setlsCaller: string | undefined): void => {
    const f = n.callFrame;
    const here = f.url.includes('/src/') ? `${f.functionName || '(anonymous)'} ${f.url.split('/src/')[1]}:${f.lineNumber + 1}` : setlsCaller;
    if (n.selfSize > 0) {
      const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(src|node_modules)\//, '$1/')}:${f.lineNumber + 1}${here && !f.url.includes('/src/') ? `  ← ${here}` : ''}`;
      bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
      const a = areaOf(f.url, f.functionName);
      byArea.set(a, (byArea.get(a) ?? 0) + n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children) walk(c, here);
  };
  walk(p.head, undefined);
  const kb = (b: number): string => (b / perHandshake / 1024).toFixed(1).padStart(7);
  const out = [`sampled allocations: ${(total / perHandshake / 1024).toFixed(1)} KiB per handshake`, '  by area (KiB per handshake):'];
  for (const [a, b] of [...byArea].sort((x, y) => y[1] - x[1]).slice(0, 15)) out.push(`  ${kb(b)}  ${a}`);
  out.push(`  top ${top} sites (KiB per handshake; ← nearest setls caller):`);
  for (const [s, b] of [...bySite].sort((x, y) => y[1] - x[1]).slice(0, top)) out.push(`  ${kb(b)}  ${s}`);
  return out.join('\n');
}

/**
 * Main-thread CPU split between the card (a sample with card.process() — src/card/os/card-os.ts — on
 * its stack) and the host (the rest), and the host's top frames by self time.
 */
function hostFrames(p: CpuProfile, n: number, top: number): string {
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const parent = new Map<number, number>();
  for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  const inCard = new Map<number, boolean>();
  const cardOf = (id: number): boolean => {
    const k = inCard.get(id);
    if (k !== undefined) return k;
    const f = byId.get(id)!.callFrame;
    const up = parent.get(id);
    const v = (f.url.includes('/src/card/os/card-os.') && f.functionName === 'process') || (up !== undefined && cardOf(up));
    inCard.set(id, v);
    return v;
  };
  let card = 0;
  let host = 0;
  let idle = 0;
  const frames = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const short = (u: string): string => u.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, '$1/');
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const us = p.timeDeltas[i] ?? 0;
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    // this tool's own Profiler.stop (node:inspector's post) is sampled too: neither card nor host
    if (f.url === '' && parent.get(id) !== undefined && byId.get(parent.get(id)!)!.callFrame.url === 'node:inspector') continue;
    if (cardOf(id)) {
      card += us;
      continue;
    }
    host += us;
    const seen = new Set<string>();
    for (let a: number | undefined = id; a !== undefined; a = parent.get(a)) {
      const af = byId.get(a)!.callFrame;
      if (!af.url.includes('/src/')) continue;
      const k = `${af.functionName || '(anonymous)'} ${short(af.url)}`;
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
    const up = parent.get(id);
    const pf = up !== undefined ? byId.get(up)!.callFrame : undefined;
    const key = `${f.functionName || '(anonymous)'} ${short(f.url)}${f.url === '' && pf ? `  ← ${pf.functionName || '(anonymous)'} ${short(pf.url)}` : ''}`;
    frames.set(key, (frames.get(key) ?? 0) + us);
  }
  const out = [`main thread, sampled per handshake: card ${(card / n).toFixed(0)} µs, host ${(host / n).toFixed(0)} µs (idle ${(idle / n).toFixed(0)} µs)`, `  host top ${top} frames (µs per handshake, self):`];
  for (const [k, us] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${(us / n).toFixed(1).padStart(7)}  ${k}`);
  out.push(`  host top ${top} setls frames (µs per handshake, inclusive):`);
  for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${(us / n).toFixed(1).padStart(7)}  ${k}`);
  return out.join('\n');
}

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000' },
    warmup: { type: 'string', default: '800' },
    resume: { type: 'boolean', default: false },
    top: { type: 'string', default: '30' },
    interval: { type: 'string', default: '4096' },
    'no-sampling': { type: 'boolean', default: false },
    cpu: { type: 'boolean', default: false },
    raw: { type: 'string' },
    thread: { type: 'boolean', default: false },
  },
});
if (values.raw !== undefined && !values.cpu) throw new Error('--raw writes the CPU profile: it needs --cpu');
const root = mkdtempSync(join(tmpdir(), 'setls-alloc-'));
try {
  const cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  const ca = readFileSync(init.caCertPath, 'utf8');
  // --thread: the card in a worker thread of its own (serve https --card-thread): this thread is the host alone
  const setls = values.thread ? undefined : await startSetls(cardDir, [{ name: 'setls-ext', extendedApdu: true, instrumented: false }]);
  const server = setls ? setls.variants[0]! : await startSetlsThread('setls-thread', cardDir);
  const c = new LoadClient(ca);
  const job = (n: number): Promise<JobResult> => c.run({ kind: 'handshake', port: server.port, n, ...(values.resume ? { resume: true } : {}) });
  const w = await job(Number(values.warmup));
  if (w.errors.length) throw new Error(`warm-up: ${w.errors.join('; ')}`);
  await server.idle();
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object): Promise<T> => new Promise((resolve, reject) => session.post(method, params ?? {}, (e, r) => (e ? reject(e) : resolve(r as T))));
  if (values.cpu) {
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 200 });
    await post('Profiler.start');
  } else if (!values['no-sampling']) {
    await post('HeapProfiler.enable');
    await post('HeapProfiler.startSampling', { samplingInterval: Number(values.interval), includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  const n = Number(values.n);
  const gc = { minor: 0, minorMs: 0, major: 0, majorMs: 0 };
  const obs = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) (gc.minor++, (gc.minorMs += e.duration));
      else (gc.major++, (gc.majorMs += e.duration));
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const threads0 = cpuByThread();
  const c0 = process.cpuUsage();
  const r = await job(n);
  await server.idle();
  const cpu = process.cpuUsage(c0);
  const threads1 = cpuByThread();
  const t0 = threads0 && splitMain(threads0);
  const t1 = threads1 && splitMain(threads1);
  const before = new Map(threads0?.map((t) => [t.tid, t.us]));
  const byThread = (threads1 ?? [])
    .map((t) => [`${t.name}#${t.tid}${t.main ? ' (main)' : ''}`, t.us - (before.get(t.tid) ?? 0)] as const)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1]);
  obs.disconnect();
  const cpuProfile = values.cpu ? (await post<{ profile: CpuProfile }>('Profiler.stop')).profile : undefined;
  if (cpuProfile && values.raw) writeFileSync(values.raw, JSON.stringify(cpuProfile));
  const profile = values['no-sampling'] || values.cpu ? undefined : (await post<{ profile: SamplingProfile }>('HeapProfiler.stopSampling')).profile;
  session.disconnect();
  if (r.errors.length) throw new Error(`measured run: ${r.errors.join('; ')}`);
  process.stdout.write(`${n} ${values.resume ? 'resumed' : 'full'} TLS 1.3 handshakes (resumed ${r.resumed}), ${setls ? 'setls-ext in-process' : 'setls-thread (the card in a worker thread: the main thread is the host alone)'}\n`);
  const us = (v: number): string => `${(v / n).toFixed(0)} µs`;
  process.stdout.write(`server CPU per handshake: ${us(cpu.user + cpu.system)}${t0 && t1 ? ` (main thread ${us(t1.mainUs - t0.mainUs)}, other threads ${us(t1.othersUs - t0.othersUs)})` : ''}${profile ? ' — under the sampling profiler' : ''}\n`);
  process.stdout.write(`  by thread: ${byThread.map(([k, v]) => `${k} ${us(v)}`).join(', ')}\n`);
  process.stdout.write(`GC: ${gc.minor} minor (${gc.minorMs.toFixed(0)} ms), ${gc.major} major/other (${gc.majorMs.toFixed(0)} ms); heap used ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB\n`);
  if (profile) process.stdout.write(summarise(profile, n, Number(values.top)) + '\n');
  if (cpuProfile) process.stdout.write(hostFrames(cpuProfile, n, Number(values.top)) + '\n');
  await c.close();
  await (setls ? setls.close() : server.close());
} finally {
  rmSync(root, { recursive: true, force: true });
}
