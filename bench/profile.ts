/**
 * Where `setls serve https` spends its CPU per handshake: runs the default `setls serve https` (a
 * fresh `setls card init` card, in-process, record layer in the card) under `node --cpu-prof`,
 * drives it with full TLS 1.3 handshakes from this process (8 at a time, each connection closed
 * right after the handshake, as in /work/shared/reference/profile-2026-12.md), stops it with
 * SIGINT and summarises the .cpuprofile: the top self-time frames and shares by area (node:crypto,
 * sockets, src/tls, src/host, logging, GC, …).
 *
 *   node --import tsx bench/profile.ts [--seconds 15] [--concurrency 8] [--top 25] [--json] [--save FILE] [--raw FILE.cpuprofile]
 *   node --import tsx bench/profile.ts --summarise FILE.cpuprofile --handshakes N [--save FILE]
 *
 * `summariseProfile` is also used by bench/run.ts --profile. imports src/cli (card init) and node only.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initCard } from '../src/cli/card-setup.js';
import { PINNED } from './protocol.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);

export interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  handshakes: number;
  seconds: number;
  /** Server busy samples (not idle, not start-up) per handshake, in µs of sampled time. */
  busyUsPerHandshake: number;
  /** Sampled start-up time (module loading, tsx), left out of the shares. */
  startupSeconds?: number;
  /** Share of busy time by area, sorted. */
  areas: { area: string; share: number }[];
  /** Top frames by self time: "function file:line", share of busy time. */
  top: { frame: string; share: number }[];
}

/** Area of a frame: by its file, the nearest setls caller deciding for node internals where useful. */
export function areaOf(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(program)') return 'program (native, unattributed)';
  if (url.includes('node:internal/crypto') || url === 'node:crypto') return 'node:crypto';
  if (/node:(net|internal\/(stream_base_commons|net|streams|tcp_wrap))/.test(url) || url.includes('node:internal/streams') || url === 'node:stream') return 'sockets and streams';
  if (url.includes('node:internal/modules') || url.includes('/tsx/') || url.includes('esbuild')) return 'module loading';
  if (url.includes('pino') || url.includes('sonic-boom') || url.includes('thread-stream')) return 'logging';
  if (url.includes('prom-client')) return 'metrics (prom-client)';
  if (url.includes('node:_http') || url.includes('node:http')) return 'node:http';
  const m = /\/src\/([a-z-]+)\//.exec(url);
  if (m) return `src/${m[1]}`;
  if (url.startsWith('node:')) return `other node (${url.replace(/^node:(internal\/)?/, '')})`;
  if (url === '') return `native (${fn || 'anonymous'})`;
  return 'other';
}

export function summariseProfile(p: CpuProfile, handshakes: number, topN = 25): ProfileSummary {
  const byId = new Map<number, CpuNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  let busy = 0;
  let total = 0;
  const areas = new Map<string, number>();
  const frames = new Map<string, number>();
  // Start-up (module loading, tsx compiling) is not per handshake: counted apart, left out of the shares.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const startupMemo = new Map<number, boolean>();
  const isStartup = (id: number): boolean => {
    const known = startupMemo.get(id);
    if (known !== undefined) return known;
    const u = byId.get(id)!.callFrame.url;
    const here = u.includes('node:internal/modules') || u.includes('/tsx/') || u.includes('esbuild') || u.includes('cjs-module-lexer');
    const up = parent.get(id);
    const v = here || (up !== undefined && isStartup(up));
    startupMemo.set(id, v);
    return v;
  };
  let startup = 0;
  for (const [id, us] of self) {
    total += us;
    const n = byId.get(id)!;
    const { functionName: fn, url, lineNumber } = n.callFrame;
    if (fn === '(idle)') continue;
    if (isStartup(id)) {
      startup += us;
      continue;
    }
    busy += us;
    const area = areaOf(url, fn);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const file = url.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, '$1/');
    const key = `${fn || '(anonymous)'} ${file}${url ? `:${lineNumber + 1}` : ''}`;
    frames.set(key, (frames.get(key) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]);
  return {
    handshakes,
    seconds: total / 1e6,
    busyUsPerHandshake: handshakes ? busy / handshakes : 0,
    startupSeconds: startup / 1e6,
    areas: sorted(areas).map(([area, us]) => ({ area, share: us / busy })),
    top: sorted(frames).slice(0, topN).map(([frame, us]) => ({ frame, share: us / busy })),
  };
}

export function humanProfile(s: ProfileSummary, title: string, topN = 25): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1).padStart(5)} %`;
  const lines = [
    `${title}: ${s.handshakes} handshakes in ${s.seconds.toFixed(1)} s, ${(s.busyUsPerHandshake / 1000).toFixed(3)} ms sampled server busy time per handshake${s.startupSeconds !== undefined ? ` (start-up, ${s.startupSeconds.toFixed(1)} s, left out)` : ''}`,
    '  by area:',
    ...s.areas.slice(0, 14).map((a) => `    ${pct(a.share)}  ${a.area}`),
    `  top ${Math.min(topN, s.top.length)} frames (self time):`,
    ...s.top.slice(0, topN).map((f) => `    ${pct(f.share)}  ${f.frame}`),
  ];
  return lines.join('\n');
}

/** Full TLS 1.3 handshakes, `concurrency` at a time, for `seconds`; each closed after the handshake. */
async function drive(port: number, ca: string, seconds: number, concurrency: number): Promise<{ ok: number; failed: number }> {
  let ok = 0;
  let failed = 0;
  const end = Date.now() + seconds * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca,
        minVersion: PINNED.minVersion,
        maxVersion: PINNED.maxVersion,
        ciphers: PINNED.ciphers,
        ecdhCurve: PINNED.ecdhCurve,
        sigalgs: PINNED.sigalgs,
      });
      const timer = setTimeout(() => s.destroy(new Error('timeout')), 10_000);
      s.once('secureConnect', () => {
        ok++;
        clearTimeout(timer);
        s.end();
        resolve();
      });
      s.once('error', () => {
        failed++;
        clearTimeout(timer);
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  return { ok, failed };
}

/** Runs `setls serve https` under --cpu-prof, drives it, returns the summary. */
export async function profileServeHttps(o: { seconds: number; concurrency: number; top: number; log?: (s: string) => void; raw?: string }): Promise<ProfileSummary & { failed: number }> {
  const root = mkdtempSync(join(tmpdir(), 'setls-profile-'));
  try {
    const cardDir = join(root, 'card');
    const init = await initCard({ cardDir });
    const ca = readFileSync(init.caCertPath, 'utf8');
    const profDir = join(root, 'prof');
    const child = spawn(
      process.execPath,
      ['--cpu-prof', '--cpu-prof-dir', profDir, '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'serve', 'https', '--card-dir', cardDir, '--port', '0'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /https:\/\/[^:\s]+:(\d+)\//.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (c) => reject(new Error(`serve https exited (${c}): ${err}`)));
      setTimeout(() => reject(new Error(`serve https did not print its URL within 60 s: ${out} ${err}`)), 60_000);
    });
    o.log?.(`profiling setls serve https on port ${port} for ${o.seconds} s, ${o.concurrency} at a time\n`);
    const r = await drive(port, ca, o.seconds, o.concurrency);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGINT');
    await exited;
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no .cpuprofile written: ${err}`);
    const text = readFileSync(join(profDir, file), 'utf8');
    if (o.raw) writeFileSync(o.raw, text);
    const prof = JSON.parse(text) as CpuProfile;
    return { ...summariseProfile(prof, r.ok, o.top), failed: r.failed };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '15' },
      concurrency: { type: 'string', default: '8' },
      top: { type: 'string', default: '25' },
      json: { type: 'boolean', default: false },
      save: { type: 'string' },
      raw: { type: 'string' },
      summarise: { type: 'string' },
      handshakes: { type: 'string' },
    },
    strict: true,
  });
  if (values.summarise) {
    // an existing .cpuprofile (e.g. one kept with --raw): summarise it again with --handshakes N
    const s = summariseProfile(JSON.parse(readFileSync(values.summarise, 'utf8')) as CpuProfile, Number(values.handshakes ?? 0), Number(values.top));
    if (values.save) writeFileSync(values.save, JSON.stringify(s, null, 2) + '\n');
    console.log(values.json ? JSON.stringify(s, null, 2) : humanProfile(s, `${values.summarise}`, Number(values.top)));
    process.exit(0);
  }
  const s = await profileServeHttps({ seconds: Number(values.seconds), concurrency: Number(values.concurrency), top: Number(values.top), ...(values.raw ? { raw: values.raw } : {}), log: (m) => process.stderr.write(m) });
  if (values.save) writeFileSync(values.save, JSON.stringify(s, null, 2) + '\n');
  console.log(values.json ? JSON.stringify(s, null, 2) : humanProfile(s, `setls serve https (${s.failed} failed)`, Number(values.top)));
}
