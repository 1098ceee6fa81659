/**
 * Host memory per idle session (issue #6 item 4), measured in the server's process:
 *   - setls-pool-host: TlsPool of 4 emulated cards × 4 logical channels, TLS-Tandem record layer
 *     exported to the host (recordLayer 'host', identity policy exportAllowed): an idle session
 *     holds no card channel, so K is bounded by the host only (default K = 200);
 *   - setls-pool-card: the same pool with the record layer in the card: every session holds a
 *     channel, so K = the number of slots (4 × 4 = 16);
 *   - node:tls (https.createServer, same key type, suite, group, handler) at both K values.
 * Each row runs its server alone in a fresh child process (`node --expose-gc --import tsx
 * bench/memory.ts '<config>'`, driven by JSON lines on stdin), so the readings are that server's
 * and not what earlier bench sections left in the V8 heap or the malloc arenas of the bench process.
 * For each: warm-up (a few held connections, released), baseline = median of `samples`
 * process.memoryUsage() readings (each after two full gc()), then the load generator (bench/client.ts,
 * its own process) opens K connections — full TLS 1.3 handshake + one keep-alive GET /status each — and
 * leaves them open and idle; the server must report K sessions; the same median reading is taken;
 * the server must still report K sessions; then the client does one more GET /status on every
 * connection (each must still be open and answer) and closes them. Per session = (loaded −
 * baseline) / K. The servers use a 60 s HTTP keep-alive and tandem idle deadline for this section
 * so no session is timed out while measured (same setting for node:tls).
 */
import 'reflect-metadata'; // before @peculiar/x509 (servers.ts), as the CLI entry points do
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Job, JobResult } from './protocol.js';
import { percentile } from './protocol.js';
import { makeNodeIdentity, startNodeTls, startSetlsChannelPool, type ServerUnderTest } from './servers.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = dirname(dirname(SELF));

export const MEM_HOST = 'setls-pool-host';
export const MEM_CARD = 'setls-pool-card';
export const MEM_NODE = 'node:tls';
const CARDS = 4;
const CHANNELS = 4;
const KEEPALIVE_MS = 60_000;
const OPEN_CONCURRENCY = 16;
/**
 * V8 flags of the server children: a fixed-size young generation (min = max semi-space), so
 * heapTotal does not grow by tens of MB when the handshakes' allocation rate rises — that growth is
 * V8 sizing, not session state, and it made rss deltas meaningless.
 */
const V8_FLAGS = ['--min-semi-space-size=16', '--max-semi-space-size=16'];

export interface MemoryOptions {
  /** Sessions for setls-pool-host and node:tls. */
  readonly k: number;
  /** process.memoryUsage() readings per point (median taken). */
  readonly samples: number;
  /** Held connections in the warm-up cycle of each server (at least 16, at most K). */
  readonly warmup: number;
}

interface Mem {
  heapUsed: number;
  /** V8 heap committed (its growth is V8 sizing, not sessions: taken out of rss for `native`). */
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  rss: number;
}

export interface MemoryRow {
  readonly server: string;
  readonly recordLayer?: 'host' | 'card';
  readonly k: number;
  /** Bytes per idle session (delta / K). external includes arrayBuffers. */
  readonly heapPerSession: number;
  readonly externalPerSession: number;
  readonly arrayBuffersPerSession: number;
  readonly heapExternalPerSession: number;
  readonly rssPerSession: number;
  /** Δ(rss − heapTotal) / K: memory outside the V8 heap (OpenSSL, ArrayBuffers, libuv, malloc). */
  readonly nativePerSession: number;
  /** heapPerSession + nativePerSession: live JS objects + memory outside the V8 heap. */
  readonly totalPerSession: number;
  /** Same K, node:tls: this row / node's (heap + native, heap alone, rss). */
  readonly vsNode?: { total: number; heap: number; rss: number };
  /** Medians, bytes. */
  readonly baseline: Mem;
  readonly loaded: Mem;
  /** Sessions the server reported before and after the loaded reading (must be K both times). */
  readonly serverSessions: readonly [number, number];
  /** Held connections that answered the final GET /status (must be K). */
  readonly aliveAtEnd: number;
  readonly openSeconds: number;
  readonly handshakeP50Ms: number;
  readonly errors: readonly string[];
}

export interface MemorySection {
  /** How gc() was obtained ('none': readings without a forced gc, noisier). */
  readonly gc: string;
  readonly samples: number;
  readonly slots: number;
  /** Wall time of the section, s. */
  readonly seconds: number;
  readonly rows: readonly MemoryRow[];
  readonly notes: readonly string[];
  readonly errors: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function findGc(): { gc: () => void; how: string } {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return { gc: g, how: 'global.gc (--expose-gc)' };
  try {
    v8.setFlagsFromString('--expose-gc');
    const f = vm.runInNewContext('gc') as unknown;
    if (typeof f === 'function') return { gc: f as () => void, how: "v8.setFlagsFromString('--expose-gc') + vm.runInNewContext('gc')" };
  } catch {
    // fall through
  }
  return { gc: () => undefined, how: 'none' };
}

async function reading(gc: () => void, samples: number): Promise<Mem> {
  const xs: Mem[] = [];
  for (let i = 0; i < samples; i++) {
    await sleep(20);
    gc();
    gc();
    const m = process.memoryUsage();
    xs.push({ heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss });
  }
  const med = (f: keyof Mem): number => percentile(xs.map((x) => x[f]).sort((a, b) => a - b), 50);
  return { heapUsed: med('heapUsed'), heapTotal: med('heapTotal'), external: med('external'), arrayBuffers: med('arrayBuffers'), rss: med('rss') };
}

type Run = (job: Omit<Job, 'id'>) => Promise<JobResult>;

type Variant = 'host' | 'card' | 'node';

interface ServeConfig {
  readonly variant: Variant;
  readonly name: string;
  readonly cardDir: string;
  /** node:tls key + certificate (PEM). */
  readonly nodeId?: { key: string; cert: string };
}

/** What the server child answers (one JSON per line on stdout). */
type Reply =
  | { ready: true; port: number; slots: number; gc: string }
  | { mem: Mem; sessions: [number, number] }
  | { idle: true }
  | { errors: string[] };

async function startVariant(c: ServeConfig): Promise<ServerUnderTest & { slots?: number }> {
  if (c.variant === 'node') return startNodeTls(c.name, c.nodeId!, { keepAliveTimeoutMs: KEEPALIVE_MS });
  return startSetlsChannelPool(c.name, c.cardDir, { cards: CARDS, channelsPerCard: CHANNELS, backlog: 1024, recordLayer: c.variant, tag: c.variant === 'host' ? 'mh' : 'mc', keepAliveTimeoutMs: KEEPALIVE_MS });
}

/**
 * The server child (`node --expose-gc --import tsx bench/memory.ts '<ServeConfig>'`): one server,
 * nothing else, so its memory readings are that server's. Commands on stdin, one JSON per line:
 * {cmd:'idle'} (wait until no session), {cmd:'read', samples}, {cmd:'errors'}, {cmd:'close'}.
 */
async function serveMain(): Promise<void> {
  const c = JSON.parse(process.argv[2] ?? '') as ServeConfig;
  const { gc, how } = findGc();
  const s = await startVariant(c);
  const say = (r: Reply): void => void process.stdout.write(JSON.stringify(r) + '\n');
  say({ ready: true, port: s.port, slots: s.slots ?? 0, gc: how });
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line) as { cmd: 'idle' | 'read' | 'errors' | 'close'; samples?: number };
    if (cmd.cmd === 'idle') {
      await s.idle();
      say({ idle: true });
    } else if (cmd.cmd === 'read') {
      const before = (await s.sessions?.()) ?? NaN;
      const mem = await reading(gc, cmd.samples ?? 5);
      const after = (await s.sessions?.()) ?? NaN;
      say({ mem, sessions: [before, after] });
    } else if (cmd.cmd === 'errors') {
      say({ errors: [...s.errors()] });
    } else {
      await s.close();
      say({ errors: [...s.errors()] });
      break;
    }
  }
  process.exit(0);
}

/** The parent's handle on a server child. */
class ServerChild {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly replies: Reply[] = [];
  private wake: (() => void) | undefined;
  private stderr = '';
  private exited = false;
  /** Server errors already reported to a row. */
  errorsSeen = 0;
  readonly ready: Promise<Extract<Reply, { ready: true }>>;

  constructor(c: ServeConfig) {
    this.child = spawn(process.execPath, ['--expose-gc', ...V8_FLAGS, '--import', 'tsx', SELF, JSON.stringify(c)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    createInterface({ input: this.child.stdout }).on('line', (l) => {
      try {
        this.replies.push(JSON.parse(l) as Reply);
      } catch {
        return;
      }
      this.wake?.();
    });
    this.child.on('exit', () => {
      this.exited = true;
      this.wake?.();
    });
    this.ready = this.next();
  }

  async next<T extends Reply>(timeoutMs = 180_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.exited) throw new Error(`memory server child exited: ${this.stderr}`);
      if (Date.now() > end) throw new Error('memory server child did not answer');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 1000);
      });
      this.wake = undefined;
    }
    return this.replies.shift() as T;
  }

  async ask<T extends Reply>(cmd: object): Promise<T> {
    this.child.stdin.write(JSON.stringify(cmd) + '\n');
    return this.next<T>();
  }

  async close(): Promise<void> {
    if (this.exited) return;
    try {
      await this.ask({ cmd: 'close' });
    } finally {
      this.child.kill();
    }
  }
}

async function measureOne(run: Run, srv: ServerChild, c: ServeConfig, k: number, o: MemoryOptions): Promise<{ row: MemoryRow; gc: string; slots: number }> {
  const errors: string[] = [];
  {
    const ready = await srv.ready;
    const port = ready.port;
    if (c.variant !== 'node') k = Math.min(k, c.variant === 'card' ? ready.slots : k);
    if (o.warmup > 0) {
      // warm-up: JIT, lazily allocated structures, the card channels opened once
      // (at least 16 = every channel of the 4 × 4 pool used once: per-channel state the card allocates lazily)
      const w = Math.min(k, Math.max(o.warmup, CARDS * CHANNELS));
      for (const kind of ['hold', 'release'] as const) {
        const r = await run({ kind, port, n: w, concurrency: OPEN_CONCURRENCY });
        if (r.ok !== r.n) errors.push(...r.errors.map((e) => `warm-up ${kind}: ${e}`));
      }
      await srv.ask({ cmd: 'idle' });
    }
    const base = await srv.ask<Extract<Reply, { mem: Mem }>>({ cmd: 'read', samples: o.samples });
    if (base.sessions[0] !== 0 || base.sessions[1] !== 0) errors.push(`baseline with ${base.sessions.join('/')} sessions held`);
    const hold = await run({ kind: 'hold', port, n: k, concurrency: OPEN_CONCURRENCY });
    if (hold.ok !== k) errors.push(`hold: ${hold.ok}/${k} opened`, ...hold.errors.map((e) => `hold: ${e}`));
    const load = await srv.ask<Extract<Reply, { mem: Mem }>>({ cmd: 'read', samples: o.samples });
    const [before, after] = load.sessions;
    if (before !== k || after !== k) errors.push(`server held ${before} then ${after} sessions, not ${k}`);
    const release = await run({ kind: 'release', port, n: k, concurrency: OPEN_CONCURRENCY });
    if (release.ok !== k) errors.push(`release: ${release.ok}/${k} still open and answering`, ...release.errors.map((e) => `release: ${e}`));
    await srv.ask({ cmd: 'idle' });
    const end = await srv.ask<Extract<Reply, { errors: string[] }>>({ cmd: 'errors' });
    errors.push(...end.errors.slice(srv.errorsSeen).map((e) => `server: ${e}`));
    srv.errorsSeen = end.errors.length;
    const baseline = base.mem;
    const loaded = load.mem;
    const per = (f: keyof Mem): number => Math.round((loaded[f] - baseline[f]) / k);
    const native = Math.round((loaded.rss - loaded.heapTotal - (baseline.rss - baseline.heapTotal)) / k);
    const hs = [...hold.handshakeMs].sort((a, b) => a - b);
    return {
      gc: ready.gc,
      slots: ready.slots,
      row: {
        server: c.name,
        ...(c.variant !== 'node' ? { recordLayer: c.variant } : {}),
        k,
        heapPerSession: per('heapUsed'),
        externalPerSession: per('external'),
        arrayBuffersPerSession: per('arrayBuffers'),
        heapExternalPerSession: per('heapUsed') + per('external'),
        rssPerSession: per('rss'),
        nativePerSession: native,
        totalPerSession: per('heapUsed') + native,
        baseline,
        loaded,
        serverSessions: [before, after],
        aliveAtEnd: release.ok,
        openSeconds: Math.round(hold.wallMs) / 1000,
        handshakeP50Ms: Math.round(percentile(hs, 50) * 10) / 10,
        errors,
      },
    };
  }
}

export const MEMORY_NOTES = [
  'Host memory per idle session: each server runs alone in a fresh child process (node --expose-gc, young generation fixed at 16 MB semi-spaces so V8 does not grow it during the handshakes); its process.memoryUsage() while K sessions are open and idle minus before they were opened (after a warm-up cycle), / K. Each reading = median of the samples, each after two full gc(). heap = V8 heapUsed (live JS objects); external = V8 external memory (ArrayBuffers/Buffers); native = Δ(rss − heapTotal): memory outside the V8 heap (OpenSSL\'s malloc\'d SSL state for node:tls, ArrayBuffers, libuv, malloc fragmentation), without V8 merely growing its heap; heap+native = the per-session cost compared; rss = raw resident set delta (includes V8 heap growth).',
  'Each session: full TLS 1.3 handshake + one keep-alive GET /status, then idle (no request in flight). The server must report K sessions before and after the reading, and every connection must answer one more GET /status afterwards (none closed while measured). HTTP keep-alive and the tandem idle deadline are 60 s for this section, on both servers.',
  'setls-pool-host: TlsPool 4 cards × 4 channels, record layer exported to the host (TLS-Tandem): the idle session holds no card channel, only host state (SeTlsSocket, exported keys, HTTP parser, TCP socket). setls-pool-card: record layer in the card, one channel per session, so K = slots; the emulated cards run in this process, so their per-channel state is counted too (on a device it would be on the secure element).',
  'Noisy: heap deltas move with GC timing and lazily allocated structures (a warm-up cycle of ≥ 16 held sessions first); native/rss move with the allocator (page granularity, arenas, fragmentation from the handshakes\' crypto — for setls also the in-process emulated card\'s) and can come out 0 or negative; at K = 16 one page is 256 B/session and the rows are much noisier than at K = 200. heap is the steady number; compare rows of the same run and K.',
];

export interface MemoryContext {
  readonly run: Run;
  readonly cardDir: string;
  /** A node:tls identity (makeNodeIdentity); made here when absent. */
  readonly nodeId?: { key: string; cert: string };
  readonly caDir: string;
  readonly progress: (s: string) => void;
}

/**
 * Runs the section, each row in a fresh server child: setls-pool-host (K), node:tls (K),
 * setls-pool-card (K = slots), node:tls (slots).
 */
export async function runMemory(ctx: MemoryContext, o: MemoryOptions): Promise<MemorySection> {
  const nodeId = ctx.nodeId ?? (await makeNodeIdentity(ctx.caDir));
  const rows: MemoryRow[] = [];
  let slots = CARDS * CHANNELS;
  let gc = '?';
  const kCard = Math.min(o.k, slots);
  const plan: [ServeConfig, number][] = [
    [{ variant: 'host', name: MEM_HOST, cardDir: ctx.cardDir }, o.k],
    [{ variant: 'node', name: MEM_NODE, cardDir: ctx.cardDir, nodeId }, o.k],
    [{ variant: 'card', name: MEM_CARD, cardDir: ctx.cardDir }, kCard],
    ...(kCard !== o.k ? [[{ variant: 'node', name: MEM_NODE, cardDir: ctx.cardDir, nodeId }, kCard] as [ServeConfig, number]] : []),
  ];
  ctx.progress('memory per idle session');
  const t0 = Date.now();
  // a fresh server child per row (reusing node:tls's child for its second K left the V8 heap sized
  // by the first: heapTotal moved under the reading and the small-K row came out meaningless)
  let srv: ServerChild | undefined;
  try {
    for (const [c, k] of plan) {
      srv = new ServerChild(c);
      const m = await measureOne(ctx.run, srv, c, k, o);
      rows.push(m.row);
      gc = m.gc;
      if (c.variant === 'card') slots = m.slots;
      await srv.close();
      srv = undefined;
      ctx.progress('.');
    }
  } finally {
    await srv?.close().catch(() => undefined);
  }
  const seconds = Math.round((Date.now() - t0) / 100) / 10;
  ctx.progress(` ${seconds} s\n`);
  const withRatios = rows.map((r): MemoryRow => {
    const n = rows.find((x) => x.server === MEM_NODE && x.k === r.k);
    if (!n || r.server === MEM_NODE) return r;
    const q = (a: number, b: number): number => (b > 0 ? Math.round((a / b) * 100) / 100 : NaN);
    return { ...r, vsNode: { total: q(r.totalPerSession, n.totalPerSession), heap: q(r.heapPerSession, n.heapPerSession), rss: q(r.rssPerSession, n.rssPerSession) } };
  });
  return { gc, samples: o.samples, slots, seconds, rows: withRatios, notes: MEMORY_NOTES, errors: rows.reduce((a, r) => a + r.errors.length, 0) };
}

export function humanMemory(m: MemorySection): string {
  const out: string[] = [];
  out.push(`== host memory per idle session (each server alone in a fresh process; median of ${m.samples} readings after gc, gc: ${m.gc}; ${m.seconds} s) ==`);
  for (const n of m.notes) out.push(`  * ${n}`);
  const kb = (x: number): string => (Number.isFinite(x) ? String(x) : '–');
  const ratio = (x: number | undefined): string => (x === undefined ? '' : Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');
  const rows: string[][] = [['server', 'K', 'heap B/sess', 'external B/sess', 'native B/sess', 'heap+native', 'rss B/sess', 'heap+native vs node', 'heap vs node', 'sessions held', 'alive at end', 'open s', 'errors']];
  for (const r of m.rows) {
    rows.push([
      r.server,
      String(r.k),
      kb(r.heapPerSession),
      kb(r.externalPerSession),
      kb(r.nativePerSession),
      kb(r.totalPerSession),
      kb(r.rssPerSession),
      ratio(r.vsNode?.total),
      ratio(r.vsNode?.heap),
      `${r.serverSessions[0]}/${r.serverSessions[1]}`,
      `${r.aliveAtEnd}/${r.k}`,
      r.openSeconds.toFixed(1),
      String(r.errors.length),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  out.push(rows.map((r) => r.map((c, i) => (i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ')).join('\n'));
  const errs = m.rows.flatMap((r) => r.errors.slice(0, 5).map((e) => `${r.server} K=${r.k}: ${e}`));
  if (errs.length) out.push('errors:', ...errs.map((e) => `  ${e}`));
  return out.join('\n') + '\n';
}

if (process.argv[1] && resolve(process.argv[1]) === SELF) {
  serveMain().catch((e: unknown) => {
    process.stderr.write(`memory server: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
