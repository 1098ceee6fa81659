/**
 * `npm run bench`: TLS handshakes and bulk transfer through setls (TLS server in the emulated
 * card, reached by APDUs) against node:tls with the same key type, suite, group and handler:
 *   - TLS 1.3 full handshakes (handshake only; + GET /status), APDU counts, short and extended APDUs;
 *   - TLS 1.3 and 1.2, full and resumed handshakes/s, with the card time a real card would take
 *     (FaultyTransport 'real-card' profile, sleep: false) and APDUs per handshake vs the physical minimum;
 *   - bulk GET /bytes/N (default 64 MiB): record layer in the card, exported to the host
 *     (TLS-Tandem, recordLayer 'host'), node:tls;
 *   - concurrency 1/16/256: a TlsPool of 4 cards (backlog 1024) vs node:tls, p50/p99;
 *   - host memory per idle session (bench/memory.ts): K idle TLS 1.3 sessions (handshake + one
 *     keep-alive GET /status each) through a TlsPool of 4 cards × 4 channels, record layer exported
 *     (K = --mem-k, default 200) and in the card (K = 16 slots), vs node:tls at the same K;
 *   - CoAP GET/s over TLS and DTLS and DTLS handshakes/s through the card (bench/coap.ts; not with --quick).
 *   - the operator (bench/operator.ts; not with --quick): enrolments/s end to end through device agents
 *     and lock-to-refusal latency p50/p99 (REST lock → the card refuses the next TLS handshake).
 *   - pressure (bench/pressure.ts; not with --quick): 300 looping clients against the default `serve
 *     https` and node:tls, and the legitimate client's latency under idle / slowloris / trickler /
 *     DTLS-flood attacks and all together.
 *   - with --pcsc: handshakes/s through pcscd + vpcd vs in-process (bench/pcsc.ts; root only).
 *   - issue #14 ratios: host alone and card + host vs node:tls per full handshake (with --only cpu also
 *     with the card on a thread of its own, setls-thread, and the socket floor: a node:net server
 *     replaying setls's handshake bytes), resumed / full card
 *     cost (also bench/card-cpu.ts --resumed), exported bulk vs node:tls, a pool of 4 cards × 4 channels
 *     under --pool-clients (1000) clients: p99 handshake vs node:tls; the top profile frames before
 *     (bench/profile-before.json) and, with --profile, now (bench/profile.ts).
 *
 *   npm run bench -- [--n 200] [--rounds 3] [--warmup 40] [--bulk-bytes 67108864] [--conc-n 768] [--mem-k 200] [--only memory|bulk|coap|pressure|operator|cpu] [--op-cards 8] [--op-locks 20] [--pcsc] [--profile] [--pool-clients 1000] [--json] [--quick] [--keep]
 *
 * Servers live in this process, one loaded at a time; the load generator is bench/client.ts in a
 * child process. Batches of the variants are interleaved round by round (order rotated each round)
 * so they share the machine's noise; ratios from the same run are what to read, not absolute times.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initCard } from '../src/cli/card-setup.js';
import { addCounts, diffCounts, diffFlights, emptyCounts, type ApduCounts, type ApduTally, type FlightTally, type Phase } from './counting-transport.js';
import { PINNED, SETLS_HANDSHAKE_FLIGHTS, percentile, type Job, type JobKind, type JobResult, type SessionFacts } from './protocol.js';
import { sectionOf } from './child-section.js';
import { humanScale, scaleSection, type ScaleSection } from './scale-section.js';
import { makeNodeIdentity, setExportAllowed, startNodeTls, startReplayFloor, startSetls, startSetlsThread, startSetlsChannelPool, startSetlsPool, type CardCall, type ServerUnderTest } from './servers.js';
import { humanMemory, runMemory, type MemorySection } from './memory.js';
import type { CoapSection } from './coap.js';
import type { OperatorSection } from './operator.js';
import { humanPressure, type PressureSection } from './pressure.js';
import { humanProfile, profileServeHttps, type ProfileSummary } from './profile.js';
import { threadCpu } from './thread-cpu.js';
import { LoadClient } from './load-client.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);

// ------------------------------------------------------------------ options

interface Options {
  n: number;
  rounds: number;
  warmup: number;
  bulkBytes: number;
  bulkRounds: number;
  /** Unchecked bulk download per bulk variant before the measured ones, bytes (JIT warm-up of the record path). */
  bulkWarmup: number;
  /** Connections per concurrency level (at least the level itself). */
  concN: number;
  /** Also run bench/pcsc.ts (handshakes/s through pcscd vs in-process; root + pcscd + vpcd, else skipped). */
  pcsc: boolean;
  /** Idle sessions for the memory section (setls record layer on the host, node:tls). */
  memK: number;
  /** memoryUsage() readings per point in the memory section (median). */
  memSamples: number;
  /** Also profile `setls serve https` (bench/profile.ts) and print its top frames next to bench/profile-before.json. */
  profile: boolean;
  /** Concurrent clients against the pool of 4 cards × 4 channels (issue #14: 1000). */
  poolClients: number;
  /** Run only this section ('memory'; 'bulk': setls-card, setls-export and node:tls; 'coap': bench/coap.ts; 'pressure': bench/pressure.ts; 'operator': bench/operator.ts). */
  only?: 'memory' | 'bulk' | 'coap' | 'pressure' | 'operator' | 'cpu';
  /** bench/operator.ts --cards (enrolled at once) and --locks (lock-to-refusal samples). */
  opCards: number;
  /** Registry size per store for the scale section (bench/scale.ts; 0 leaves it out). */
  scaleCards: number;
  /** Enrolments per store and mode in the scale section. */
  scaleEnrol: number;
  opLocks: number;
  /** bench/coap.ts --n (GETs on one connection / association) and --spawns (coap-client runs). */
  coapN: number;
  coapSpawns: number;
  /** bench/pressure.ts --clients, --total, --legit. */
  pressureClients: number;
  pressureTotal: number;
  pressureLegit: number;
  json: boolean;
  quick: boolean;
  keep: boolean;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      'bulk-bytes': { type: 'string' },
      'bulk-rounds': { type: 'string' },
      'bulk-warmup': { type: 'string' },
      'conc-n': { type: 'string' },
      'mem-k': { type: 'string' },
      'mem-samples': { type: 'string' },
      only: { type: 'string' },
      'coap-n': { type: 'string' },
      'coap-spawns': { type: 'string' },
      'op-cards': { type: 'string' },
      'op-locks': { type: 'string' },
      'scale-cards': { type: 'string' },
      'scale-enrol': { type: 'string' },
      'pressure-clients': { type: 'string' },
      'pressure-total': { type: 'string' },
      'pressure-legit': { type: 'string' },
      pcsc: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'pool-clients': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run bench -- [--n N] [--rounds R] [--warmup W] [--bulk-bytes B] [--bulk-rounds R] [--json] [--quick] [--keep]\n' +
        '  --n            sequential connections per batch (default 200; --quick: 5)\n' +
        '  --rounds       interleaved rounds per variant and mode (default 3; --quick: 1)\n' +
        '  --warmup       connections per variant and mode before measuring (default 40; --only cpu: 800, see below; --quick: 2)\n' +
        '  --bulk-bytes   size of the bulk download (default 67108864 = 64 MiB, the demo plug maximum; --quick: 1000000)\n' +
        '  --conc-n       connections per concurrency level 1/16/256 (default 768; --quick: 16), bounded to 60 s each\n' +
        '  --bulk-rounds  bulk downloads per variant (default: --rounds)\n' +
        '  --bulk-warmup  bytes of one unchecked bulk download per bulk variant before the measured ones (default min(--bulk-bytes, 67108864); --quick: 0;\n' +
        '                 0 = only the 1 MB checked warm-up). A setls record path is JavaScript: its first tens of MB run before the JIT has optimised it\n' +
        '                 (with 16 MiB, the exported path\'s first measured round was still 15–30 % slower than its third)\n' +
        '  --mem-k        idle sessions held for the memory section, setls record layer on the host and node:tls (default 200; --quick: 16);\n' +
        '                 record layer in the card: min(K, 16 slots of the 4-card × 4-channel pool)\n' +
        '  --mem-samples  memoryUsage() readings (after gc) per point, median taken (default 5; --quick: 3)\n' +
        '  --only memory  run only the memory section\n' +
        '  --only bulk    run only the bulk section (setls-card, setls-export, node:tls; same interleaving; --bulk-rounds, default --rounds);\n' +
        '                 SETLS_NATIVE=0 in the environment: setls-export seals with node:crypto, as before the native sealer (native/)\n' +
        '  --only cpu     run only what issue #14\'s CPU ratios need: full and resumed TLS 1.3 handshakes (setls-ext, setls-thread, node:tls), exported bulk,\n' +
        '                 the 4 × 4 pool under --pool-clients (0: left out), card-cpu.ts, the socket floor (a node:net server of the same bytes);\n' +
        '                 setls without the APDU counting wrappers\n' +
        '  --only coap    run only the CoAP section (bench/coap.ts; also part of a full run, not of --quick)\n' +
        '  --coap-n       CoAP GETs on one connection / one association (default 2000)\n' +
        '  --coap-spawns  coap-client-openssl runs per handshake-per-request rate (default 40)\n' +
        '  --only operator  run only the operator section (bench/operator.ts; also part of a full run, not of --quick)\n' +
        '  --op-cards     cards enrolled at once, each behind its own agent (default 8)\n' +
        '  --op-locks     lock-to-refusal samples, each followed by an unlock (default 20)\n' +
        '  --scale-cards  registry size per store of the scale section (bench/scale.ts, issue #17; with --only operator and in a full run,\n' +
        '                 not with --quick; PostgreSQL too when SETLS_TEST_PG_URL is set): default 100000, 1000000 for the goals\' registry, 0 leaves it out\n' +
        '  --scale-enrol  enrolments per store and mode in the scale section (default 3000)\n' +
        '  --only pressure  run only the pressure section (bench/pressure.ts; also part of a full run, not of --quick)\n' +
        '  --pressure-clients / --pressure-total / --pressure-legit  looping clients (300), their connections (3000),\n' +
        '                 legitimate requests per attack (20)\n' +
        '  A section that fails makes the report say so (failed: why), ok false and the exit status 1; a\n' +
        '  section whose client program is missing (outside CI) is reported as skipped: why, and does not.\n' +
        '  --profile      also run bench/profile.ts (setls serve https under --cpu-prof) and print its top frames after those of bench/profile-before.json\n' +
        '  --pool-clients concurrent clients against the TlsPool of 4 cards × 4 channels (default 1000)\n' +
        '  --pcsc         also handshakes/s through pcscd + vpcd next to in-process (bench/pcsc.ts; root only, else skipped)\n' +
        '  --json         print one JSON object instead of the table\n' +
        '  --keep         keep the temporary card/CA folder\n',
    );
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const int = (v: string | undefined, dflt: number, name: string, min: number): number => {
    if (v === undefined) return dflt;
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
    return x;
  };
  const n = int(values.n, quick ? 5 : 200, 'n', 1);
  const rounds = int(values.rounds, quick ? 1 : 3, 'rounds', 1);
  if (values.only !== undefined && !['memory', 'bulk', 'coap', 'pressure', 'operator', 'cpu'].includes(values.only)) throw new Error("--only takes 'memory', 'bulk', 'coap', 'pressure', 'operator' or 'cpu'");
  return {
    n,
    rounds,
    // --only cpu: setls runs ~10× more JavaScript per handshake than node:tls (the card's TLS engine,
    // the host): after 40 connections V8 is still compiling it (TurboFan ~15 % of the process CPU,
    // most code in baseline tiers), so the batches measured JIT warm-up, not the server. After 800
    // connections TurboFan still compiled 156 setls and node functions over the next 1000 full
    // handshakes (675 ms of compiler-thread CPU, 0.64 ms per handshake on the "other threads");
    // after 3000, 44 (0.18 ms per handshake) — bench/alloc-profile.ts with --trace-opt. 3000 per mode.
    warmup: int(values.warmup, quick ? 2 : values.only === 'cpu' ? CPU_WARMUP : Math.max(5, Math.round(n / 5)), 'warmup', 0),
    bulkBytes: int(values['bulk-bytes'], quick ? 1_000_000 : 64 * 1024 * 1024, 'bulk-bytes', 0),
    concN: int(values['conc-n'], quick ? 16 : 768, 'conc-n', 1),
    bulkRounds: int(values['bulk-rounds'], rounds, 'bulk-rounds', 0),
    bulkWarmup: int(values['bulk-warmup'], quick ? 0 : Math.min(int(values['bulk-bytes'], quick ? 1_000_000 : 64 * 1024 * 1024, 'bulk-bytes', 0), 64 * 1024 * 1024), 'bulk-warmup', 0),
    json: values.json ?? false,
    pcsc: values.pcsc ?? false,
    memK: int(values['mem-k'], quick ? 16 : 200, 'mem-k', 1),
    memSamples: int(values['mem-samples'], quick ? 3 : 5, 'mem-samples', 1),
    opCards: int(values['op-cards'], 8, 'op-cards', 1),
    opLocks: int(values['op-locks'], 20, 'op-locks', 1),
    scaleCards: int(values['scale-cards'], 100_000, 'scale-cards', 0),
    scaleEnrol: int(values['scale-enrol'], 3000, 'scale-enrol', 1),
    ...(values.only ? { only: values.only as NonNullable<Options['only']> } : {}),
    coapN: int(values['coap-n'], 2000, 'coap-n', 1),
    coapSpawns: int(values['coap-spawns'], 40, 'coap-spawns', 1),
    pressureClients: int(values['pressure-clients'], 300, 'pressure-clients', 1),
    pressureTotal: int(values['pressure-total'], 3000, 'pressure-total', 1),
    pressureLegit: int(values['pressure-legit'], 20, 'pressure-legit', 1),
    quick,
    keep: values.keep ?? false,
    profile: values.profile ?? false,
    poolClients: int(values['pool-clients'], 1000, 'pool-clients', values.only === 'cpu' ? 0 : 1),
  };
}

// ------------------------------------------------------------------ measuring

interface Batch {
  readonly server: string;
  readonly kind: JobKind;
  readonly round: number;
  readonly result: JobResult;
  /** This process's CPU over the batch (server + idle others), µs. */
  readonly serverCpuUs: number;
  /** Of which in the kernel (process.cpuUsage().system: accept, socket reads and writes, close, and the card's file writes), µs. */
  readonly serverSysUs: number;
  /** Of which inside the emulated card's process(), µs (setls in-process). */
  readonly cardCpuUs?: number;
  /** The card's time as the sum, over its command classes, of count × the median call (robust to GC pauses landing in a call), µs. */
  readonly cardMedianUs?: number;
  /** Of which on threads other than the main one (V8 GC and compiler helpers, libuv pool), µs (Linux). */
  readonly otherThreadsCpuUs?: number;
  readonly apdus: ApduCounts | undefined;
  readonly serverErrors: readonly string[];
  /** 'real-card' profile time modelled over the batch, ms (setls). */
  readonly modelledMs?: number;
  readonly flights?: FlightTally;
  /** Label of the extra sections (e.g. 'TLSv1.3 resumed', 'c=16'). */
  readonly tag?: string;
}

type JobExtra = Pick<Job, 'version' | 'resume' | 'concurrency' | 'maxMs' | 'checkBody' | 'flights'>;

/**
 * One unchecked download of --bulk-warmup bytes per bulk variant (not measured): the setls record
 * paths are JavaScript, run by the interpreter until the JIT has seen enough of them (tens of MB),
 * while node:tls seals in C++; without it the first measured rounds time the JIT, not the server.
 */
async function bulkWarmup(client: LoadClient, o: Options, servers: readonly ServerUnderTest[], progress: (s: string) => void): Promise<void> {
  if (o.bulkWarmup <= 0 || o.bulkBytes <= 0) return;
  for (const s of servers) {
    const b = await measure(client, s, 'bulk', 1, -1, o.bulkWarmup, { checkBody: false });
    if (b.result.errors.length) throw new Error(`bulk warm-up of ${s.name} failed: ${b.result.errors.join('; ')}`);
    progress('.');
  }
}

/** Sum over command classes of (calls × the class's median wall time), µs. */
function medianSum(calls: readonly CardCall[]): number {
  const by = new Map<string, number[]>();
  for (const c of calls) {
    const l = by.get(c.cls);
    if (l) l.push(c.us);
    else by.set(c.cls, [c.us]);
  }
  let sum = 0;
  for (const l of by.values()) sum += l.length * percentile(l.sort((a, b) => a - b), 50);
  return sum;
}

async function measure(client: LoadClient, s: ServerUnderTest, kind: JobKind, n: number, round: number, bytes?: number, extra: JobExtra = {}, tag?: string): Promise<Batch> {
  await s.idle();
  const errs0 = s.errors().length;
  const apdu0 = s.apdus?.();
  const fl0 = s.flights?.();
  const mod0 = s.modelledMs?.();
  const card0 = s.cardCpuUs?.();
  const calls0 = s.cardCalls?.().length;
  const thr0 = threadCpu();
  const cpu0 = process.cpuUsage();
  const result = await client.run({ kind, port: s.port, n, ...(bytes !== undefined ? { bytes } : {}), ...extra });
  await s.idle(); // the server's own close work (card RESET-STATE, socket teardown) belongs to the batch
  const cpu = process.cpuUsage(cpu0);
  const thr1 = thr0 ? threadCpu() : undefined;
  const apdus = apdu0 && s.apdus ? diffCounts(s.apdus(), apdu0) : undefined;
  return {
    server: s.name,
    kind,
    round,
    result,
    serverCpuUs: cpu.user + cpu.system,
    serverSysUs: cpu.system,
    ...(card0 !== undefined && s.cardCpuUs ? { cardCpuUs: s.cardCpuUs() - card0 } : {}),
    ...(calls0 !== undefined && s.cardCalls ? { cardMedianUs: medianSum(s.cardCalls().slice(calls0)) } : {}),
    ...(thr0 && thr1 ? { otherThreadsCpuUs: Math.max(0, thr1.othersUs - thr0.othersUs) } : {}),
    apdus,
    serverErrors: s.errors().slice(errs0),
    ...(mod0 !== undefined && s.modelledMs ? { modelledMs: s.modelledMs() - mod0 } : {}),
    ...(fl0 && s.flights ? { flights: diffFlights(s.flights(), fl0) } : {}),
    ...(tag ? { tag } : {}),
  };
}

// ------------------------------------------------------------------ summarising

interface PerConn {
  exchanges: number;
  commandBytes: number;
  responseBytes: number;
}

interface ApduSummary {
  /** Per connection, the handshake proper: RESET-STATE, PROCESS-EAP exchanges, SESSION-INFO. */
  readonly handshake: PerConn;
  /** Per connection, everything (handshake, record layer, teardown RESET-STATE). */
  readonly total: PerConn;
  readonly byPhase: Record<Phase, PerConn>;
  /** Per connection, by command name. */
  readonly byCommand: Record<string, PerConn>;
}

interface KindSummary {
  readonly connections: number;
  readonly errors: number;
  readonly errorSamples: readonly string[];
  /** Connections per second over all rounds (Σ n / Σ wall). */
  readonly perSecond: number;
  /** The same per round, to show the spread. */
  readonly perSecondByRound: readonly number[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly handshakeP50Ms: number;
  readonly handshakeP99Ms: number;
  /** Server process CPU per connection, ms. */
  readonly serverCpuMsPerConn: number;
  /** Of which in the kernel, ms (socket system calls; for setls also the in-process card's file writes). */
  readonly serverSysMsPerConn: number;
  /** Of which the emulated card (setls in-process), ms; the rest is the host's. */
  readonly cardCpuMsPerConn?: number;
  readonly hostCpuMsPerConn?: number;
  /** The card per connection as the sum over its command classes of count × median call, ms (GC pauses inside a call left out). */
  readonly cardMedianMsPerConn?: number;
  /** Of the server CPU, threads other than the main one (GC and compiler helpers, libuv pool), ms (Linux). */
  readonly otherThreadsCpuMsPerConn?: number;
  /** Client process CPU per connection, ms. */
  readonly clientCpuMsPerConn: number;
  readonly resumed: number;
  readonly ticketsPerConn: number;
  readonly apdus?: ApduSummary;
}

interface BulkSummary {
  readonly bytes: number;
  readonly downloads: number;
  readonly errors: number;
  readonly errorSamples: readonly string[];
  /** Body bytes / transfer time (request written → last byte), 10^6 bytes per second, all downloads together. */
  readonly mbPerSecond: number;
  readonly mbPerSecondByRound: readonly number[];
  /** Server process CPU per 10^6 body bytes, ms. */
  readonly serverCpuMsPerMB: number;
  readonly apdus?: { exchangesPerMB: number; commandBytesPerMB: number; responseBytesPerMB: number; byCommand: Record<string, PerConn> };
}

function perConn(t: ApduTally, n: number): PerConn {
  const r = (x: number): number => Math.round((x / n) * 10) / 10;
  return { exchanges: r(t.exchanges), commandBytes: r(t.commandBytes), responseBytes: r(t.responseBytes) };
}

function sumCounts(list: readonly ApduCounts[]): ApduCounts {
  return list.reduce(addCounts, emptyCounts());
}

function summariseApdus(list: readonly ApduCounts[], n: number): ApduSummary | undefined {
  if (list.length === 0 || n === 0) return undefined;
  const c = sumCounts(list);
  const byCommand: Record<string, PerConn> = {};
  for (const [k, v] of Object.entries(c.byCommand).sort((a, b) => b[1].exchanges - a[1].exchanges)) byCommand[k] = perConn(v, n);
  return {
    handshake: perConn(c.byPhase.handshake, n),
    total: perConn(c.total, n),
    byPhase: {
      setup: perConn(c.byPhase.setup, n),
      handshake: perConn(c.byPhase.handshake, n),
      data: perConn(c.byPhase.data, n),
      teardown: perConn(c.byPhase.teardown, n),
    },
    byCommand,
  };
}

function summariseKind(batches: readonly Batch[]): KindSummary {
  const conns = batches.reduce((a, b) => a + b.result.ok, 0);
  const wall = batches.reduce((a, b) => a + b.result.wallMs, 0);
  const lat = batches.flatMap((b) => b.result.latencyMs).sort((a, b) => a - b);
  const hs = batches.flatMap((b) => b.result.handshakeMs).sort((a, b) => a - b);
  const errs = batches.flatMap((b) => [...b.result.errors, ...b.serverErrors.map((e) => `server: ${e}`)]);
  const apdus = batches.map((b) => b.apdus).filter((a): a is ApduCounts => a !== undefined);
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  const ap = summariseApdus(apdus, conns);
  return {
    connections: conns,
    errors: batches.reduce((a, b) => a + (b.result.n - b.result.ok), 0),
    errorSamples: [...new Set(errs)].slice(0, 5),
    perSecond: r2((conns / wall) * 1000),
    perSecondByRound: batches.map((b) => r2((b.result.ok / b.result.wallMs) * 1000)),
    p50Ms: r3(percentile(lat, 50)),
    p99Ms: r3(percentile(lat, 99)),
    handshakeP50Ms: r3(percentile(hs, 50)),
    handshakeP99Ms: r3(percentile(hs, 99)),
    serverCpuMsPerConn: r3(batches.reduce((a, b) => a + b.serverCpuUs, 0) / 1000 / Math.max(1, conns)),
    serverSysMsPerConn: r3(batches.reduce((a, b) => a + b.serverSysUs, 0) / 1000 / Math.max(1, conns)),
    ...(batches.length && batches.every((b) => b.cardCpuUs !== undefined)
      ? {
          cardCpuMsPerConn: r3(batches.reduce((a, b) => a + b.cardCpuUs!, 0) / 1000 / Math.max(1, conns)),
          hostCpuMsPerConn: r3(batches.reduce((a, b) => a + b.serverCpuUs - b.cardCpuUs!, 0) / 1000 / Math.max(1, conns)),
        }
      : {}),
    ...(batches.length && batches.every((b) => b.cardMedianUs !== undefined)
      ? { cardMedianMsPerConn: r3(batches.reduce((a, b) => a + b.cardMedianUs!, 0) / 1000 / Math.max(1, conns)) }
      : {}),
    ...(batches.length && batches.every((b) => b.otherThreadsCpuUs !== undefined)
      ? { otherThreadsCpuMsPerConn: r3(batches.reduce((a, b) => a + b.otherThreadsCpuUs!, 0) / 1000 / Math.max(1, conns)) }
      : {}),
    clientCpuMsPerConn: r3(batches.reduce((a, b) => a + b.result.clientCpuUs, 0) / 1000 / Math.max(1, conns)),
    resumed: batches.reduce((a, b) => a + b.result.resumed, 0),
    ticketsPerConn: r2(batches.reduce((a, b) => a + b.result.ticketsReceived, 0) / Math.max(1, conns)),
    ...(ap ? { apdus: ap } : {}),
  };
}

function summariseBulk(batches: readonly Batch[], bytes: number): BulkSummary {
  const body = batches.reduce((a, b) => a + b.result.bodyBytes, 0);
  const ms = batches.reduce((a, b) => a + b.result.transferMs, 0);
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const apdus = batches.map((b) => b.apdus).filter((a): a is ApduCounts => a !== undefined);
  const mb = body / 1e6;
  let ap: BulkSummary['apdus'];
  if (apdus.length && mb > 0) {
    const c = sumCounts(apdus);
    const byCommand: Record<string, PerConn> = {};
    for (const [k, v] of Object.entries(c.byCommand).sort((a, b) => b[1].exchanges - a[1].exchanges)) byCommand[k] = perConn(v, mb);
    ap = { exchangesPerMB: r2(c.total.exchanges / mb), commandBytesPerMB: Math.round(c.total.commandBytes / mb), responseBytesPerMB: Math.round(c.total.responseBytes / mb), byCommand };
  }
  return {
    bytes,
    downloads: batches.reduce((a, b) => a + b.result.ok, 0),
    errors: batches.reduce((a, b) => a + (b.result.n - b.result.ok), 0),
    errorSamples: [...new Set(batches.flatMap((b) => [...b.result.errors, ...b.serverErrors.map((e) => `server: ${e}`)]))].slice(0, 5),
    mbPerSecond: ms > 0 ? r2(body / 1e6 / (ms / 1000)) : 0,
    mbPerSecondByRound: batches.map((b) => (b.result.transferMs > 0 ? r2(b.result.bodyBytes / 1e6 / (b.result.transferMs / 1000)) : 0)),
    serverCpuMsPerMB: mb > 0 ? r2(batches.reduce((a, b) => a + b.serverCpuUs, 0) / 1000 / mb) : 0,
    ...(ap ? { apdus: ap } : {}),
  };
}

// ------------------------------------------------------------------ output

/** --only cpu: warm-up connections per server and mode (V8 has compiled setls's hot paths by then). */
const CPU_WARMUP = 3000;
const SETLS_EXT = 'setls-ext';
const SETLS_SHORT = 'setls-short';
const NODE = 'node:tls';
const SETLS_EXPORT = 'setls-export';
const SETLS_POOL = 'setls-pool4';
const SETLS_POOL44 = 'setls-pool4x4';
/** --only cpu: the card in a worker thread of its own (serve https --card-thread). */
const SETLS_THREAD = 'setls-thread';
/** --only cpu: the socket floor, a plain node:net server of setls's handshake byte pattern (bench/servers.ts startReplayFloor). */
const FLOOR = 'node:net floor';
const POOL44_TAG = 'pool4x4';

const NOTES = [
  'First two sections (handshake only, handshake + 1 request): every connection is a fresh TCP connection and a FULL TLS 1.3 handshake: fresh x25519 ECDHE key pair and a fresh ECDSA P-256 (ecdsa_secp256r1_sha256) CertificateVerify signature per handshake on both servers; nothing cached that a real server would not cache.',
  'No resumption there (the "TLS 1.3 / 1.2, full and RESUMED" section below has it): the client offers no session (session: undefined, no agent) and checks isSessionReused() is false on every connection. setls sends one TLS 1.3 ticket per connection (card default) and node:tls its default two (counted, never used).',
  `Pinned on both sides: TLSv1.3, ${PINNED.ciphers}, group x25519, ${PINNED.sigalgs}, ALPN ${PINNED.alpn}; server certificate verified against the local CA on every connection.`,
  'Both servers run in the bench (parent) process, one loaded at a time, each batch after the previous one fully closed: the process.cpuUsage() delta over a batch is the server\'s (accept, TLS, HTTP, close, GC). For setls it includes the emulated card, which on a device would run on the secure element: "card" is the time spent inside the card\'s synchronous process() (performance.now() around each APDU), "host" the rest (sockets, EAP/APDU shuttle, record layer, HTTP); "host vs node" compares the host alone with the whole node:tls server.',
  'The load generator is a separate process (bench/client.ts), sequential connections (one at a time). The card is emulated in-process: an APDU costs a function call and two copies, not a reader round trip, so setls numbers are an upper bound for real hardware.',
  'The machine is shared and noisy: read the ratios (same run, interleaved rounds), not absolute times.',
  'The setls variants here count APDUs and model a real card\'s latency (CountingTransport over FaultyTransport: two async layers of bench code per APDU, +3–5 % host CPU per handshake measured): for issue #14\'s CPU ratios read `--only cpu`, which serves the same card without them (as `serve https` does). The card\'s own CPU is the wall time of its synchronous process() on this thread (performance.now() around each APDU; process.cpuUsage() there cost a getrusage() per read, 50–190 µs per handshake). node:tls sends two tickets per connection, setls one.',
];

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => pad(c, widths[i]!, i > 0)).join('  ')).join('\n');
}

const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '–');

function human(report: Report): string {
  const out: string[] = [];
  out.push(`setls bench — ${report.meta.date}  node ${report.meta.node}, ${report.meta.cpus} CPU (${report.meta.cpuModel}), load ${report.meta.loadavg.map((x) => x.toFixed(2)).join(' ')}`);
  out.push(`n=${report.config.n} connections per batch, ${report.config.rounds} round(s) interleaved, warm-up ${report.config.warmup}/variant/mode, bulk ${report.config.bulkBytes} B × ${report.config.bulkRounds} (warm-up ${report.config.bulkWarmup} B/variant)`);
  for (const note of NOTES) out.push(`  * ${note}`);
  out.push('');
  for (const kind of ['handshake', 'request'] as const) {
    out.push(kind === 'handshake' ? '== handshake only (connect, full handshake, close) ==' : '== handshake + 1 request (GET /status, Connection: close) ==');
    const node = report.results[NODE]?.[kind];
    const rows: string[][] = [['server', 'conn/s', 'per round', 'vs node', 'p50 ms', 'p99 ms', 'srv CPU ms/conn', 'vs node', '  card', '  host', 'host vs node', 'cli CPU ms/conn', 'tickets/conn', 'errors']];
    for (const name of report.servers) {
      const k = report.results[name]?.[kind];
      if (!k) continue;
      rows.push([
        name,
        fmt(k.perSecond, 1),
        k.perSecondByRound.map((x) => fmt(x, 0)).join('/'),
        node ? `${fmt(k.perSecond / node.perSecond)}×` : '',
        fmt(k.p50Ms),
        fmt(k.p99Ms),
        fmt(k.serverCpuMsPerConn, 3),
        node ? `${fmt(k.serverCpuMsPerConn / node.serverCpuMsPerConn)}×` : '',
        k.cardCpuMsPerConn !== undefined ? fmt(k.cardCpuMsPerConn, 3) : '',
        k.hostCpuMsPerConn !== undefined ? fmt(k.hostCpuMsPerConn, 3) : '',
        node && k.hostCpuMsPerConn !== undefined ? `${fmt(k.hostCpuMsPerConn / node.serverCpuMsPerConn)}×` : '',
        fmt(k.clientCpuMsPerConn, 3),
        fmt(k.ticketsPerConn, 1),
        String(k.errors),
      ]);
    }
    out.push(table(rows));
    const apRows: string[][] = [['APDUs per connection', 'handshake: exch', 'cmd B', 'resp B', 'total: exch', 'cmd B', 'resp B']];
    for (const name of report.servers) {
      const a = report.results[name]?.[kind]?.apdus;
      if (!a) continue;
      apRows.push([name, fmt(a.handshake.exchanges, 1), fmt(a.handshake.commandBytes, 0), fmt(a.handshake.responseBytes, 0), fmt(a.total.exchanges, 1), fmt(a.total.commandBytes, 0), fmt(a.total.responseBytes, 0)]);
    }
    if (apRows.length > 1) out.push('', table(apRows));
    for (const name of report.servers) {
      const a = report.results[name]?.[kind]?.apdus;
      if (!a) continue;
      out.push(`  ${name} by command: ${Object.entries(a.byCommand).map(([c, v]) => `${c} ${fmt(v.exchanges, 1)}`).join(', ')}`);
    }
    out.push('');
  }
  out.push(`== bulk: one GET /bytes/${report.config.bulkBytes} per download (setls: every record encrypted in the card); MB = 10^6 bytes of body ==`);
  const nodeBulk = report.results[NODE]?.bulk;
  const rows: string[][] = [['server', 'MB/s', 'per round', 'vs node', 'srv CPU ms/MB', 'vs node', 'APDUs/MB', 'cmd B/MB', 'resp B/MB', 'errors']];
  for (const name of report.servers) {
    const b = report.results[name]?.bulk;
    if (!b) continue;
    rows.push([
      name,
      fmt(b.mbPerSecond),
      b.mbPerSecondByRound.map((x) => fmt(x, 1)).join('/'),
      nodeBulk ? `${fmt(b.mbPerSecond / nodeBulk.mbPerSecond, 3)}×` : '',
      fmt(b.serverCpuMsPerMB, 1),
      nodeBulk ? `${fmt(b.serverCpuMsPerMB / nodeBulk.serverCpuMsPerMB)}×` : '',
      b.apdus ? fmt(b.apdus.exchangesPerMB, 1) : '',
      b.apdus ? String(b.apdus.commandBytesPerMB) : '',
      b.apdus ? String(b.apdus.responseBytesPerMB) : '',
      String(b.errors),
    ]);
  }
  out.push(table(rows));
  out.push('');
  const errs = report.servers.flatMap((s) =>
    (['handshake', 'request', 'bulk'] as const).flatMap((k) => (report.results[s]?.[k]?.errorSamples ?? []).map((e) => `${s} ${k}: ${e}`)),
  );
  if (errs.length) out.push('errors:', ...errs.map((e) => `  ${e}`), '');
  out.push(`session (client view): ${JSON.stringify(report.facts)}`);
  return out.join('\n') + '\n';
}

interface Report {
  readonly meta: { date: string; node: string; cpus: number; cpuModel: string; loadavg: number[]; notes: readonly string[]; tempDir?: string };
  readonly config: Omit<Options, 'json' | 'keep'>;
  readonly servers: readonly string[];
  readonly results: Record<string, { handshake: KindSummary; request: KindSummary; bulk?: BulkSummary }>;
  readonly ratios: Record<string, { handshakesPerSecond: number; requestsPerSecond: number; serverCpuPerHandshake: number; hostCpuPerHandshake?: number; bulkMBps?: number }>;
  readonly facts: Record<string, SessionFacts | undefined>;
  readonly extra: Extra;
  readonly ok: boolean;
}


// ------------------------------------------------------------------ extra sections

const HS_MODES: readonly (readonly ['TLSv1.3' | 'TLSv1.2', boolean])[] = [
  ['TLSv1.3', false],
  ['TLSv1.3', true],
  ['TLSv1.2', false],
  ['TLSv1.2', true],
];
const hsTag = (v: string, resume: boolean): string => `${v} ${resume ? 'resumed' : 'full'}`;
const CONCURRENCY = [1, 16, 256] as const;
/** Published time of a full TLS 1.3 handshake with Urien's TLS-SE applet on a real card (draft-urien-tls-se), ms. */
const URIEN_TLS_SE_MS = 1400;

interface ApduFloor {
  /** Measured, handshake phase, per connection. */
  readonly exchanges: number;
  readonly commandBytes: number;
  readonly responseBytes: number;
  /** PROCESS-EAP chains (flight pairs: client flight in, card flight out) per connection. */
  readonly flightPairs: number;
  /** Flight data bytes per connection (EAP-TLS framing included). */
  readonly flightBytesIn: number;
  readonly flightBytesOut: number;
  /** Physical minimum with extended APDUs: one exchange per flight pair. */
  readonly minExtended: number;
  /** Physical minimum with short APDUs: Σ ceil(in/255) + ceil(out/256) − 1 per flight pair. */
  readonly minShort: number;
}

interface Extra {
  /** mode ('TLSv1.3 full' …) → server → summary (handshake only, sequential). */
  readonly handshakes: Record<string, Record<string, KindSummary & { modelledMsPerConn?: number; floor?: ApduFloor }>>;
  /** mode → 'setls-ext/node:tls' → handshakes/s ratio. */
  readonly handshakeRatios: Record<string, Record<string, number>>;
  readonly bulk: Record<string, BulkSummary>;
  bulkRatios: Record<string, number>;
  /** 'c=16' → server → summary (handshake + GET /status). */
  readonly concurrency: Record<string, Record<string, KindSummary>>;
  readonly concurrencyRatios: Record<string, number>;
  readonly urienTlsSeMs: number;
  /** Pool of 4 cards × 4 channels vs node:tls, poolClients concurrent clients (handshake + GET /status). */
  pool44?: Record<string, KindSummary>;
  /** bench/card-cpu.ts --resumed --json: card CPU of full and resumed TLS 1.3 handshakes, card alone. */
  cardCpu?: { fullUs: number; resumedUs: number; resumedVsFull: number } | { failed: string };
  /** bench/profile.ts (with --profile). */
  profile?: ProfileSummary & { failed: number };
  /** bench/coap.ts --json (not with --quick): CoAP GET/s over TLS and DTLS, DTLS handshakes/s; failed ≠ skipped. */
  coap?: CoapSection;
  /** bench/operator.ts --json (not with --quick): enrolments/s, lock-to-refusal p50/p99. */
  operator?: OperatorSection;
  /** bench/scale.ts --json (not with --quick; with --only operator): the operator at scale, issue #17. */
  scale?: ScaleSection;
  /** bench/pressure.ts --json (not with --quick): looping clients and the legitimate client under attack. */
  pressure?: PressureSection;
  /** Host memory per idle session (bench/memory.ts). */
  memory?: MemorySection;
  /** bench/pcsc.ts --json (with --pcsc). */
  pcsc?: { ok: boolean; skipped?: string; failed?: string; ratio?: number; results?: Record<string, { perSecond: number; handshakeP50Ms: number; handshakeP99Ms: number; errors: number }> };
}

function summariseExtra(batches: readonly Batch[], _results: Report['results'], o: Options): Extra {
  const q = (a: number, b: number): number => Math.round((a / b) * 10000) / 10000;
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  const handshakes: Extra['handshakes'] = {};
  const handshakeRatios: Extra['handshakeRatios'] = {};
  for (const [v, resume] of HS_MODES) {
    const tag = hsTag(v, resume);
    const mode: Extra['handshakes'][string] = (handshakes[tag] = {});
    for (const name of [SETLS_EXT, SETLS_SHORT, SETLS_THREAD, NODE, FLOOR]) {
      const bs = batches.filter((b) => b.server === name && b.tag === tag);
      if (!bs.length) continue;
      const k = summariseKind(bs);
      const conns = Math.max(1, k.connections);
      const mod = bs.reduce((a, b) => a + (b.modelledMs ?? 0), 0);
      const fl = bs.map((b) => b.flights).filter((f): f is FlightTally => f !== undefined);
      let floor: ApduFloor | undefined;
      if (fl.length && k.apdus) {
        const f = fl.reduce((a, b) => ({ pairs: a.pairs + b.pairs, cmdData: a.cmdData + b.cmdData, respData: a.respData + b.respData, minShortExchanges: a.minShortExchanges + b.minShortExchanges }));
        floor = {
          exchanges: k.apdus.handshake.exchanges,
          commandBytes: k.apdus.handshake.commandBytes,
          responseBytes: k.apdus.handshake.responseBytes,
          flightPairs: r1(f.pairs / conns),
          flightBytesIn: Math.round(f.cmdData / conns),
          flightBytesOut: Math.round(f.respData / conns),
          minExtended: r1(f.pairs / conns),
          minShort: r1(f.minShortExchanges / conns),
        };
      }
      mode[name] = { ...k, ...(name !== NODE && name !== FLOOR ? { modelledMsPerConn: r1(mod / conns) } : {}), ...(floor ? { floor } : {}) };
    }
    const node = mode[NODE];
    handshakeRatios[tag] = {};
    for (const name of [SETLS_EXT, SETLS_SHORT]) if (mode[name] && node) handshakeRatios[tag]![`${name}/${NODE}`] = q(mode[name]!.perSecond, node.perSecond);
  }
  const concurrency: Extra['concurrency'] = {};
  const concurrencyRatios: Extra['concurrencyRatios'] = {};
  for (const c of CONCURRENCY) {
    const tag = `c=${c}`;
    const m: Record<string, KindSummary> = (concurrency[tag] = {});
    for (const name of [SETLS_POOL, NODE]) {
      const bs = batches.filter((b) => b.server === name && b.tag === tag);
      if (bs.length) m[name] = summariseKind(bs);
    }
    if (m[SETLS_POOL] && m[NODE]) concurrencyRatios[tag] = q(m[SETLS_POOL]!.perSecond, m[NODE]!.perSecond);
  }
  void o;
  return { handshakes, handshakeRatios, bulk: {}, bulkRatios: {}, concurrency, concurrencyRatios, urienTlsSeMs: URIEN_TLS_SE_MS };
}

function humanExtra(x: Extra, cfg: Report['config']): string {
  const out: string[] = [''];
  out.push(`== TLS 1.3 / 1.2, full and RESUMED handshakes (sequential, ${cfg.n}/batch × ${cfg.rounds} round(s)); resumed: the client offers the latest ticket/session it got, every connection checked isSessionReused() ==`);
  const rows: string[][] = [['mode', 'server', 'conn/s', 'vs node', 'p50 ms', 'p99 ms', 'srv CPU ms/conn', '  card', '  host', 'modelled card ms/conn', 'resumed', 'errors']];
  for (const [tag, m] of Object.entries(x.handshakes)) {
    for (const [name, k] of Object.entries(m)) {
      const node = m[NODE];
      rows.push([tag, name, fmt(k.perSecond, 1), node && name !== NODE ? `${fmt(k.perSecond / node.perSecond, 3)}×` : '', fmt(k.p50Ms), fmt(k.p99Ms), fmt(k.serverCpuMsPerConn, 3), k.cardCpuMsPerConn !== undefined ? fmt(k.cardCpuMsPerConn, 3) : '', k.hostCpuMsPerConn !== undefined ? fmt(k.hostCpuMsPerConn, 3) : '', k.modelledMsPerConn !== undefined ? fmt(k.modelledMsPerConn, 0) : '', `${k.resumed}/${k.connections}`, String(k.errors)]);
    }
  }
  out.push(table(rows));
  out.push('');
  out.push(`== real card, modelled ('real-card' latency profile, sleep: false: 30–80 ms per APDU, +900 ms on the ECDHE/sign APDU; whole connection incl. the RESET-STATE after it) vs ~${x.urienTlsSeMs} ms published for Urien's TLS-SE applet (full TLS 1.3 handshake) ==`);
  const rc: string[][] = [['mode', 'server', 'modelled ms/conn', 'vs TLS-SE 1.4 s']];
  for (const [tag, m] of Object.entries(x.handshakes)) {
    for (const name of [SETLS_EXT, SETLS_SHORT]) {
      const k = m[name];
      if (k?.modelledMsPerConn !== undefined) rc.push([tag, name, fmt(k.modelledMsPerConn, 0), `${fmt(k.modelledMsPerConn / x.urienTlsSeMs, 2)}×`]);
    }
  }
  out.push(table(rc));
  out.push('');
  out.push('== APDUs per handshake vs the physical minimum (handshake phase; flight pair = client flight in one PROCESS-EAP chain, card flight out) ==');
  out.push('   minimum, extended APDUs: one exchange per flight pair; short APDUs: ceil(in/255) command segments + ceil(out/256) response blocks − 1 (the last segment carries the first block) per pair');
  const ap: string[][] = [['mode', 'server', 'exchanges', 'cmd B', 'resp B', 'flight pairs', 'flight B in', 'flight B out', 'min ext', 'min short', 'measured / min']];
  for (const [tag, m] of Object.entries(x.handshakes)) {
    for (const name of [SETLS_EXT, SETLS_SHORT]) {
      const f = m[name]?.floor;
      if (!f) continue;
      const min = name === SETLS_EXT ? f.minExtended : f.minShort;
      ap.push([tag, name, fmt(f.exchanges, 1), fmt(f.commandBytes, 0), fmt(f.responseBytes, 0), fmt(f.flightPairs, 1), String(f.flightBytesIn), String(f.flightBytesOut), fmt(f.minExtended, 1), fmt(f.minShort, 1), `${fmt(f.exchanges / min, 2)}×`]);
    }
  }
  out.push(table(ap));
  out.push('   (PROCESS-EAP START folds the RESET-STATE before a handshake and INFO the session-info read after it: with extended APDUs the handshake is the flights alone; RESET-STATE after the connection is teardown, not counted here)');
  out.push('');
  out.push(`== bulk ${cfg.bulkBytes} B: record layer in the card (setls-ext), exported to the host (setls-export: TLS-Tandem, identity policy exportAllowed, recordLayer 'host'), node:tls ==`);
  const br: string[][] = [['ratio', 'MB/s ratio']];
  for (const [k, v] of Object.entries(x.bulkRatios)) br.push([k, `${fmt(v, 3)}×`]);
  for (const [name, b] of Object.entries(x.bulk)) out.push(`  ${name}: ${fmt(b.mbPerSecond)} MB/s (per round ${b.mbPerSecondByRound.map((v) => fmt(v, 1)).join('/')}), server CPU ${fmt(b.serverCpuMsPerMB, 1)} ms/MB, errors ${b.errors}`);
  out.push(table(br));
  out.push('');
  out.push(`== concurrency (handshake + GET /status per connection; setls: TlsPool of 4 emulated cards, backlog 1024, record layer in the card; n = max(c, ${cfg.concN}), ≤ 60 s) ==`);
  const cr: string[][] = [['c', 'server', 'conn/s', 'vs node', 'p50 ms', 'p99 ms', 'hs p50', 'hs p99', 'ok', 'errors']];
  for (const [tag, m] of Object.entries(x.concurrency)) {
    for (const [name, k] of Object.entries(m)) cr.push([tag, name, fmt(k.perSecond, 1), name === SETLS_POOL && x.concurrencyRatios[tag] !== undefined ? `${fmt(x.concurrencyRatios[tag]!, 3)}×` : '', fmt(k.p50Ms, 1), fmt(k.p99Ms, 1), fmt(k.handshakeP50Ms, 1), fmt(k.handshakeP99Ms, 1), String(k.connections), String(k.errors)]);
  }
  out.push(table(cr));
  if (x.memory) out.push('', humanMemory(x.memory).trimEnd());
  if (x.coap) out.push('', humanExtraCoap(x.coap).trimEnd());
  if (x.operator) out.push('', humanExtraOperator(x.operator).trimEnd());
  if (x.scale) out.push('', humanScale(x.scale).trimEnd());
  if (x.pressure) out.push('', humanPressure(x.pressure).trimEnd());
  if (x.pcsc) {
    out.push('');
    out.push('== handshakes/s through pcscd + vpcd (netns lab of test/pcsc/harness.ts) vs in-process; both `serve https` in their own process ==');
    if (x.pcsc.failed) out.push(`  FAILED: ${x.pcsc.failed}`);
    if (x.pcsc.skipped) out.push(`  skipped: ${x.pcsc.skipped}`);
    for (const [name, k] of Object.entries(x.pcsc.results ?? {})) out.push(`  ${name.padEnd(11)} ${fmt(k.perSecond, 1)}/s  hs p50 ${fmt(k.handshakeP50Ms, 1)} ms  p99 ${fmt(k.handshakeP99Ms, 1)} ms  errors ${k.errors}`);
    if (x.pcsc.ratio !== undefined) out.push(`  pcscd / in-process: ${fmt(x.pcsc.ratio, 3)}×`);
  }
  const errs = [...Object.entries(x.handshakes), ...Object.entries(x.concurrency)].flatMap(([t, m]) => Object.entries(m).flatMap(([n, k]) => k.errorSamples.map((e) => `${t} ${n}: ${e}`)));
  for (const [n, b] of Object.entries(x.bulk)) errs.push(...b.errorSamples.map((e) => `bulk ${n}: ${e}`));
  if (errs.length) out.push('errors:', ...errs.map((e) => `  ${e}`));
  return out.join('\n') + '\n';
}

/** Before-profile summary stored with the bench (bench/profile.ts --save), taken before the CPU work of issue #14. */
function storedProfile(): ProfileSummary | undefined {
  try {
    return JSON.parse(readFileSync(join(HERE, 'profile-before.json'), 'utf8')) as ProfileSummary;
  } catch {
    return undefined;
  }
}

/** Card alone, full and resumed TLS 1.3 (bench/card-cpu.ts --resumed --json in a child). */
function cardCpuSection(o: Options): NonNullable<Extra['cardCpu']> {
  const n = o.quick ? 150 : 600;
  // 1 000 warm-up handshakes per mode: after 150 the JIT was still compiling through the first
  // (full) batches, which made full handshakes look dearer (583 against 430 µs) and the resumed /
  // full ratio better than it is (0.75 against 0.88–0.90, same build, same minute)
  const warmup = o.quick ? Math.round(n / 4) : 1000;
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(HERE, 'card-cpu.ts'), '--json', '--resumed', '--n', String(n), '--warmup', String(warmup), '--batches', '3'], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
  try {
    const j = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { typicalUsPerHandshake: number; resumed: { typicalUsPerHandshake: number }; resumedVsFull: number };
    return { fullUs: j.typicalUsPerHandshake, resumedUs: j.resumed.typicalUsPerHandshake, resumedVsFull: j.resumedVsFull };
  } catch {
    return { failed: `bench/card-cpu.ts failed (${r.status}): ${r.stderr.slice(-300)}` };
  }
}

/**
 * The figures issue #14 asks for, each as a ratio with its goal: server CPU per full TLS 1.3
 * handshake (host alone, card + host) vs node:tls, resumed vs full card cost, exported bulk vs
 * node:tls, the 4 × 4 pool's p99 handshake latency under many clients vs node:tls; then the top
 * profile frames before (bench/profile-before.json) and, with --profile, now.
 */
function humanIssue14(report: Report): string {
  const x = report.extra;
  const out: string[] = ['', '== issue #14: server CPU and latency ratios (goal in brackets; same run, interleaved) =='];
  const line = (what: string, v: number | undefined, goal: string, ok: (v: number) => boolean): void => {
    if (v === undefined || !Number.isFinite(v)) out.push(`  ${what.padEnd(66)} n/a`);
    else out.push(`  ${what.padEnd(66)} ${fmt(v, 3).padStart(7)}×  [${goal}] ${ok(v) ? 'met' : 'NOT met'}`);
  };
  const ext = report.results[SETLS_EXT]?.handshake;
  const node = report.results[NODE]?.handshake;
  line('host alone / node:tls, CPU per full TLS 1.3 handshake', ext?.hostCpuMsPerConn !== undefined && node ? ext.hostCpuMsPerConn / node.serverCpuMsPerConn : undefined, '≤ 0.5', (v) => v <= 0.5);
  line('card + host / node:tls, CPU per full TLS 1.3 handshake', ext && node ? ext.serverCpuMsPerConn / node.serverCpuMsPerConn : undefined, '≤ 1.0', (v) => v <= 1.0);
  // the same with the card in a worker thread of its own (serve https --card-thread): its CPU is
  // its thread's (schedstat), its garbage its own heap's
  const th = report.results[SETLS_THREAD]?.handshake;
  if (th?.hostCpuMsPerConn !== undefined && node) {
    line('  card in its own thread (--card-thread): host alone / node:tls', th.hostCpuMsPerConn / node.serverCpuMsPerConn, '≤ 0.5', (v) => v <= 0.5);
    line('  card in its own thread (--card-thread): card + host / node:tls', th.serverCpuMsPerConn / node.serverCpuMsPerConn, '≤ 1.0', (v) => v <= 1.0);
  }
  // The floor under the host's figure: the kernel's part of a connection (accept, reads, the two
  // socket writes, close) is paid by any server that makes the same system calls for it.
  if (ext && node && node.serverCpuMsPerConn > 0) {
    out.push(
      `  ${'  kernel time per connection: node:tls / its whole server'.padEnd(66)} ${fmt(node.serverSysMsPerConn / node.serverCpuMsPerConn, 3).padStart(7)}×  (${fmt(node.serverSysMsPerConn * 1000, 0)} of ${fmt(node.serverCpuMsPerConn * 1000, 0)} µs; setls ${fmt(ext.serverSysMsPerConn * 1000, 0)} µs, its card's file writes included)`,
    );
  }
  // The floor under any Node server of this exchange: the same bytes over plain node:net sockets.
  const fl = x.handshakes['TLSv1.3 full']?.[FLOOR];
  if (ext?.hostCpuMsPerConn !== undefined && node && fl && node.serverCpuMsPerConn > 0) {
    const us = (ms: number): string => fmt(ms * 1000, 0);
    out.push(
      `  ${'  socket floor (node:net, the same bytes, no TLS, no HTTP) / node:tls'.padEnd(66)} ${fmt(fl.serverCpuMsPerConn / node.serverCpuMsPerConn, 3).padStart(7)}×  (${us(fl.serverCpuMsPerConn)} µs; the goal leaves ${us(0.5 * node.serverCpuMsPerConn - fl.serverCpuMsPerConn)} µs above it, the host uses ${us(ext.hostCpuMsPerConn - fl.serverCpuMsPerConn)})`,
    );
  }
  const full = x.handshakes['TLSv1.3 full']?.[SETLS_EXT]?.cardCpuMsPerConn;
  const res = x.handshakes['TLSv1.3 resumed']?.[SETLS_EXT]?.cardCpuMsPerConn;
  line('resumed / full TLS 1.3, card CPU per connection (in the server)', full && res !== undefined ? res / full : undefined, 'clearly < 1', (v) => v < 0.85);
  // the same calls, each command class at its median: a GC pause (of the whole process's garbage)
  // that lands inside a card call is left out
  const fullM = x.handshakes['TLSv1.3 full']?.[SETLS_EXT]?.cardMedianMsPerConn;
  const resM = x.handshakes['TLSv1.3 resumed']?.[SETLS_EXT]?.cardMedianMsPerConn;
  line(`  the same, per-command medians (${fullM !== undefined ? fmt(fullM * 1000, 0) : '?'} / ${resM !== undefined ? fmt(resM * 1000, 0) : '?'} µs full / resumed)`, fullM && resM !== undefined ? resM / fullM : undefined, 'clearly < 1', (v) => v < 0.85);
  if (x.cardCpu && 'fullUs' in x.cardCpu) {
    line(`resumed / full TLS 1.3, card alone (card-cpu.ts: ${fmt(x.cardCpu.resumedUs, 0)} / ${fmt(x.cardCpu.fullUs, 0)} µs)`, x.cardCpu.resumedVsFull, 'clearly < 1', (v) => v < 0.85);
  } else if (x.cardCpu) out.push(`  card-cpu.ts: ${x.cardCpu.failed}`);
  line('exported bulk (setls-export) / node:tls, MB/s', x.bulkRatios[`${SETLS_EXPORT}/${NODE}`], '≥ 0.9', (v) => v >= 0.9);
  const p = x.pool44?.[SETLS_POOL44];
  const pn = x.pool44?.[NODE];
  if (p && pn) {
    line(`pool 4×4, ${p.connections} clients: handshake p99 / node:tls (${fmt(p.handshakeP99Ms, 0)} / ${fmt(pn.handshakeP99Ms, 0)} ms)`, p.handshakeP99Ms / pn.handshakeP99Ms, '≤ 1.5', (v) => v <= 1.5);
    out.push(`  ${`pool 4×4, ${p.connections} clients: failures (setls / node:tls)`.padEnd(66)} ${p.errors} / ${pn.errors}  [0]`);
    for (const e of [...p.errorSamples.map((m) => `${SETLS_POOL44}: ${m}`), ...pn.errorSamples.map((m) => `${NODE}: ${m}`)]) out.push(`    error: ${e}`);
  }
  const before = storedProfile();
  if (before) out.push('', humanProfile(before, 'profile BEFORE (stored: bench/profile-before.json, setls serve https, 8 concurrent full TLS 1.3 handshakes)', 15));
  if (x.profile) out.push('', humanProfile(x.profile, `profile NOW (bench/profile.ts, this run, ${x.profile.failed} failed)`, 15));
  else out.push('', '  (run with --profile for the profile of this build next to the stored one)');
  return out.join('\n') + '\n';
}

function humanExtraCoap(c: CoapSection): string {
  const out = ['== CoAP through the card (bench/coap.ts: Node CoAP-over-TLS client in its own process; libcoap coap-client loops for handshake-per-request rates) =='];
  if (c.failed) out.push(`  FAILED: ${c.failed}`);
  if (c.skipped) out.push(`  skipped: ${c.skipped}`);
  for (const [name, v] of Object.entries(c.results ?? {})) out.push(`  ${name.padEnd(56)} ${fmt(v, 1)}`);
  return out.join('\n') + '\n';
}

function humanExtraOperator(c: OperatorSection): string {
  const out = [
    `== the operator (bench/operator.ts: operator and load generator in one process, ${c.params?.['cards'] ?? '?'} in-process cards behind their device agents in another; loopback, SQLite) ==`,
  ];
  if (c.failed) out.push(`  FAILED: ${c.failed}`);
  for (const [name, v] of Object.entries(c.results ?? {})) out.push(`  ${name.padEnd(64)} ${fmt(v, 1)}`);
  const p99 = c.results?.['lock-to-refusal p99 ms'];
  if (p99 !== undefined) out.push(`  goal lock-to-refusal p99 < ${LOCK_GOAL_MS} ms: ${p99 < LOCK_GOAL_MS ? 'met' : 'NOT met'}`);
  return out.join('\n') + '\n';
}

/** Issue 13's goal for lock-to-refusal (p99), reported next to the measure. */
const LOCK_GOAL_MS = 2000;

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  // --only console: the web console's fleet page on a large registry (bench/console.ts, its own options).
  if (/(^| )--only[= ]console( |$)/.test(process.argv.slice(2).join(' '))) return (await import('./console.js')).runConsoleBench();
  // --only scale: bench/scale.ts with its own options (--cards, --enrol, --conc, --workers, --stores, --json)
  const scaleAt = process.argv.indexOf('--only');
  if (scaleAt > 0 && process.argv[scaleAt + 1] === 'scale') return (await import('./scale.js')).scaleMain(process.argv.slice(2).filter((_, i) => i !== scaleAt - 2 && i !== scaleAt - 1));
  const o = options(process.argv.slice(2));
  const progress = (s: string): void => {
    if (!o.json) process.stderr.write(s);
  };
  if (o.only === 'coap') return onlyCoap(o, progress);
  if (o.only === 'operator') return onlyOperator(o, progress);
  if (o.only === 'pressure') return onlyPressure(o, progress);
  const root = mkdtempSync(join(tmpdir(), 'setls-bench-'));
  const cardDir = join(root, 'card');
  progress(`setls bench: card and CA in ${root}\n`);
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!o.keep) rmSync(root, { recursive: true, force: true });
    process.stderr.write(`bench: ${sig}, stopped\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const init = await initCard({ cardDir });
  const ca = readFileSync(init.caCertPath, 'utf8');
  const nodeId = await makeNodeIdentity(init.paths.caDir);
  await setExportAllowed(cardDir, true); // TLS-Tandem export for the setls-export variant (bulk) and setls-pool-host (memory)
  if (o.only === 'memory') return onlyMemory(o, new LoadClient(ca), { cardDir, caDir: init.paths.caDir, nodeId, root, progress });
  if (o.only === 'bulk') return onlyBulk(o, new LoadClient(ca), { cardDir, nodeId, root, progress });
  if (o.only === 'cpu') return onlyCpu(o, new LoadClient(ca), { cardDir, nodeId, root, progress });

  const setls = await startSetls(cardDir, [
    { name: SETLS_EXT, extendedApdu: true },
    { name: SETLS_SHORT, extendedApdu: false },
    { name: SETLS_EXPORT, extendedApdu: true, recordLayer: 'host' },
  ]);
  const exportVariant = setls.variants.find((v) => v.name === SETLS_EXPORT)!;
  const node = await startNodeTls(NODE, nodeId);
  const servers: ServerUnderTest[] = [...setls.variants.filter((v) => v !== exportVariant), node];
  const bulkServers: ServerUnderTest[] = [servers[0]!, exportVariant, node];
  let pool: ServerUnderTest | undefined;
  let memory: MemorySection | undefined;
  const client = new LoadClient(ca);
  const batches: Batch[] = [];
  const kinds: JobKind[] = ['handshake', 'request'];
  try {
    if (o.warmup > 0) {
      progress('warm-up');
      for (const s of servers) {
        for (const kind of kinds) {
          const b = await measure(client, s, kind, o.warmup, -1);
          if (b.result.errors.length) throw new Error(`warm-up of ${s.name} (${kind}) failed: ${b.result.errors.join('; ')}`);
          progress('.');
        }
        const b = await measure(client, s, 'bulk', 1, -1, Math.min(o.bulkBytes, 1_000_000));
        if (b.result.errors.length) throw new Error(`warm-up of ${s.name} (bulk) failed: ${b.result.errors.join('; ')}`);
        progress('.');
      }
      const b = await measure(client, exportVariant, 'bulk', 1, -1, Math.min(o.bulkBytes, 1_000_000), { checkBody: true });
      if (b.result.errors.length) throw new Error(`warm-up of ${SETLS_EXPORT} (bulk) failed: ${b.result.errors.join('; ')}`);
      progress('\n');
    }
    for (let r = 0; r < o.rounds; r++) {
      progress(`round ${r + 1}/${o.rounds}`);
      // rotate the order each round so no variant always runs first or last
      const order = servers.map((_, i) => servers[(i + r) % servers.length]!);
      for (const kind of kinds) {
        for (const s of order) {
          batches.push(await measure(client, s, kind, o.n, r));
          progress('.');
        }
      }
      progress('\n');
    }
    if (o.bulkBytes > 0) {
      // right before the bulk rounds: thousands of handshakes in between leave the record path cold again
      if (o.warmup > 0) await bulkWarmup(client, o, bulkServers, progress);
      for (let r = 0; r < o.bulkRounds; r++) {
        progress(`bulk ${r + 1}/${o.bulkRounds}`);
        const order = [...servers.filter((x) => !bulkServers.includes(x)), ...bulkServers.map((_, i) => bulkServers[(i + r) % bulkServers.length]!)];
        for (const s of order) {
          // setls-short, setls-ext and node:tls as before; setls-export: the same card, records on the host
          batches.push(await measure(client, s, 'bulk', 1, r, o.bulkBytes, { checkBody: false }));
          progress('.');
        }
        progress('\n');
      }
    }
    // ---- TLS 1.3 / 1.2, full and resumed (setls-ext, setls-short, node:tls)
    for (let r = 0; r < o.rounds; r++) {
      progress(`versions/resumption ${r + 1}/${o.rounds}`);
      const order = servers.map((_, i) => servers[(i + r) % servers.length]!);
      for (const [version, resume] of HS_MODES) {
        for (const s of order) {
          batches.push(await measure(client, s, 'handshake', o.n, r, undefined, { version, resume }, hsTag(version, resume)));
          progress('.');
        }
      }
      progress('\n');
    }
    // ---- concurrency: a TlsPool of 4 cards (backlog 1024) vs node:tls; GET /status per connection
    pool = await startSetlsPool(SETLS_POOL, cardDir, 4, 1024);
    for (const s of [pool, node]) await measure(client, s, 'request', Math.min(o.warmup + 1, 16), -1, undefined, { concurrency: 4 }, 'warm-up');
    for (const c of CONCURRENCY) {
      progress(`concurrency ${c}`);
      for (const s of c % 2 ? [pool, node] : [node, pool]) {
        batches.push(await measure(client, s, 'request', Math.max(c, o.concN), 0, undefined, { concurrency: c, maxMs: 60_000 }, `c=${c}`));
        progress('.');
      }
      progress('\n');
    }
    await pool.close();
    pool = undefined;
    // ---- issue #14: a pool of 4 cards × 4 channels, poolClients concurrent clients vs node:tls
    pool = await startSetlsChannelPool(SETLS_POOL44, cardDir, { cards: 4, channelsPerCard: 4, backlog: Math.max(1024, o.poolClients), recordLayer: 'card', tag: 'p44' });
    progress(`pool 4×4, ${o.poolClients} clients`);
    for (const s of [pool, node]) await measure(client, s, 'request', Math.min(o.warmup + 1, 16), -1, undefined, { concurrency: 4 }, 'warm-up');
    for (const s of [pool, node]) {
      batches.push(await measure(client, s, 'request', o.poolClients, 0, undefined, { concurrency: o.poolClients, maxMs: 120_000 }, POOL44_TAG));
      progress('.');
    }
    progress('\n');
    await pool.close();
    pool = undefined;
    // ---- host memory per idle session: TlsPool 4 × 4 (record layer on the host / in the card) vs node:tls
    memory = await runMemory({ run: (j) => client.run(j), cardDir, caDir: init.paths.caDir, nodeId, progress }, { k: o.memK, samples: o.memSamples, warmup: MEM_WARMUP });
  } finally {
    await client.close();
    await pool?.close();
    await node.close();
    await setls.close();
    if (!o.keep) rmSync(root, { recursive: true, force: true });
  }

  const names = servers.map((s) => s.name);
  const results: Report['results'] = {};
  const facts: Report['facts'] = {};
  for (const name of names) {
    const of = (k: JobKind): Batch[] => batches.filter((b) => b.server === name && b.kind === k && !b.tag);
    const bulk = of('bulk');
    results[name] = { handshake: summariseKind(of('handshake')), request: summariseKind(of('request')), ...(bulk.length ? { bulk: summariseBulk(bulk, o.bulkBytes) } : {}) };
    facts[name] = batches.find((b) => b.server === name && b.result.facts)?.result.facts;
  }
  const ratios: Report['ratios'] = {};
  const nodeRes = results[NODE]!;
  for (const name of names.filter((x) => x !== NODE)) {
    const r = results[name]!;
    const q = (a: number, b: number): number => Math.round((a / b) * 10000) / 10000;
    ratios[`${name}/${NODE}`] = {
      handshakesPerSecond: q(r.handshake.perSecond, nodeRes.handshake.perSecond),
      requestsPerSecond: q(r.request.perSecond, nodeRes.request.perSecond),
      serverCpuPerHandshake: q(r.handshake.serverCpuMsPerConn, nodeRes.handshake.serverCpuMsPerConn),
      ...(r.handshake.hostCpuMsPerConn !== undefined ? { hostCpuPerHandshake: q(r.handshake.hostCpuMsPerConn, nodeRes.handshake.serverCpuMsPerConn) } : {}),
      ...(r.bulk && nodeRes.bulk ? { bulkMBps: q(r.bulk.mbPerSecond, nodeRes.bulk.mbPerSecond) } : {}),
    };
  }
  const extra = summariseExtra(batches, results, o);
  if (memory) extra.memory = memory;
  for (const name of [SETLS_EXPORT]) {
    const bulk = batches.filter((b) => b.server === name && b.kind === 'bulk' && !b.tag);
    if (bulk.length) extra.bulk[name] = summariseBulk(bulk, o.bulkBytes);
  }
  extra.bulkRatios = Object.fromEntries(
    [SETLS_EXT, SETLS_EXPORT].filter((n) => (n === SETLS_EXT ? results[n]?.bulk : extra.bulk[n]) && results[NODE]?.bulk).map((n) => {
      const b = n === SETLS_EXT ? results[n]!.bulk! : extra.bulk[n]!;
      return [`${n === SETLS_EXT ? 'setls-card' : n}/${NODE}`, Math.round((b.mbPerSecond / results[NODE]!.bulk!.mbPerSecond) * 1000) / 1000];
    }),
  );
  {
    const m: Record<string, KindSummary> = {};
    for (const name of [SETLS_POOL44, NODE]) {
      const bs = batches.filter((b) => b.server === name && b.tag === POOL44_TAG);
      if (bs.length) m[name] = summariseKind(bs);
    }
    extra.pool44 = m;
  }
  progress('card CPU, full and resumed (bench/card-cpu.ts)…\n');
  extra.cardCpu = cardCpuSection(o);
  if (o.profile) {
    progress('profile of setls serve https (bench/profile.ts)…\n');
    extra.profile = await profileServeHttps({ seconds: o.quick ? 8 : 15, concurrency: 8, top: 20 });
  }
  if (!o.quick) {
    progress('CoAP over TLS and DTLS…\n');
    extra.coap = coapSection(o);
    progress('the operator…\n');
    extra.operator = operatorSection(o);
    if (o.scaleCards > 0) {
      progress(`the operator at scale (${o.scaleCards} cards per store)…\n`);
      extra.scale = scaleSection(o);
    }
    progress('pressure…\n');
    extra.pressure = pressureSection(o);
  }
  if (o.pcsc) {
    progress('pcscd vs in-process…\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(HERE, 'pcsc.ts'), '--json', '--n', String(Math.min(o.n, 50)), '--rounds', String(o.rounds)], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
    try {
      extra.pcsc = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as NonNullable<Extra['pcsc']>;
    } catch {
      extra.pcsc = { ok: false, failed: `bench/pcsc.ts failed (${r.status}): ${r.stderr.slice(-500)}` };
    }
  }
  const extraErrors = (extra.pcsc && !extra.pcsc.ok ? 1 : 0) + (extra.coap && !extra.coap.ok ? 1 : 0) + (extra.pressure && !extra.pressure.ok ? 1 : 0) + (extra.operator && !extra.operator.ok ? 1 : 0) + (extra.scale && !extra.scale.ok ? 1 : 0) + [...Object.values(extra.handshakes).flatMap((m) => Object.values(m)), ...Object.values(extra.concurrency).flatMap((m) => Object.values(m))].reduce((a, k) => a + k.errors, 0) +
    Object.values(extra.bulk).reduce((a, b) => a + b.errors, 0) + (extra.memory?.errors ?? 0) + Object.values(extra.pool44 ?? {}).reduce((a, k) => a + k.errors, 0) + (extra.cardCpu && 'failed' in extra.cardCpu ? 1 : 0);
  const errorCount = extraErrors + Object.values(results).reduce((a, r) => a + r.handshake.errors + r.request.errors + (r.bulk?.errors ?? 0), 0);
  const resumed = Object.values(results).reduce((a, r) => a + r.handshake.resumed + r.request.resumed, 0);
  const report: Report = {
    meta: metaOf(o, root),
    config: configOf(o),
    servers: names,
    results,
    ratios,
    facts,
    extra,
    ok: errorCount === 0 && resumed === 0,
  };
  if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
  else process.stdout.write(human(report) + humanExtra(report.extra, report.config) + humanIssue14(report) + verdict(report));
  process.exitCode = report.ok ? 0 : 1;
}

/** The last line of a human report: ok, or what failed. */
function verdict(report: Report): string {
  const failed = failedSections(report.extra);
  return report.ok ? '\nbench: ok\n' : `\nbench: FAILED${failed.length ? ` (sections: ${failed.join(', ')})` : ' (errors above)'}\n`;
}

/** --only coap: the CoAP section alone (bench/coap.ts; same report shape, other sections empty). */
function onlyCoap(o: Options, progress: (s: string) => void): void {
  progress('CoAP over TLS and DTLS…\n');
  const coap = coapSection(o);
  const report = sectionReport(o, '', { coap }, coap.ok);
  if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
  else process.stdout.write(`setls bench (--only coap) — ${report.meta.date}  node ${report.meta.node}\n` + humanExtraCoap(coap) + verdict(report));
  process.exitCode = report.ok ? 0 : 1;
}

/** --only operator: the operator section alone (bench/operator.ts; same report shape, other sections empty). */
function onlyOperator(o: Options, progress: (s: string) => void): void {
  progress('the operator…\n');
  const operator = operatorSection(o);
  if (o.scaleCards > 0) progress(`the operator at scale (${o.scaleCards} cards per store)…\n`);
  const scale = o.scaleCards > 0 ? scaleSection(o) : undefined;
  const report = sectionReport(o, '', { operator, ...(scale ? { scale } : {}) }, operator.ok && (scale?.ok ?? true));
  if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
  else process.stdout.write(`setls bench (--only operator) — ${report.meta.date}  node ${report.meta.node}, ${report.meta.cpus} CPU, load ${report.meta.loadavg.map((x) => x.toFixed(2)).join(' ')}\n` + humanExtraOperator(operator) + (scale ? '\n' + humanScale(scale) : '') + verdict(report));
  process.exitCode = report.ok ? 0 : 1;
}

/** bench/operator.ts in its own process; no report, or an exit status that is not 0 with ok true, is a failure. */
function operatorSection(o: Options): OperatorSection {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(HERE, 'operator.ts'), '--json', '--cards', String(o.opCards), '--locks', String(o.opLocks)], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
  return sectionOf<OperatorSection>('bench/operator.ts', r);
}

/** --only pressure: the pressure section alone (bench/pressure.ts; same report shape, other sections empty). */
function onlyPressure(o: Options, progress: (s: string) => void): void {
  progress('pressure…\n');
  const pressure = pressureSection(o);
  const report = sectionReport(o, '', { pressure }, pressure.ok);
  if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
  else process.stdout.write(`setls bench (--only pressure) — ${report.meta.date}  node ${report.meta.node}, ${report.meta.cpus} CPU, load ${report.meta.loadavg.map((x) => x.toFixed(2)).join(' ')}\n` + humanPressure(pressure) + verdict(report));
  process.exitCode = report.ok ? 0 : 1;
}

/** bench/pressure.ts in its own process (its clients and attackers in theirs); no report or a non-zero exit is a failure. */
function pressureSection(o: Options): PressureSection {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(HERE, 'pressure.ts'), '--json', '--clients', String(o.pressureClients), '--total', String(o.pressureTotal), '--legit', String(o.pressureLegit)],
    { cwd: ROOT, encoding: 'utf8', timeout: 1_800_000, stdio: ['ignore', 'pipe', o.json ? 'pipe' : 'inherit'] },
  );
  return sectionOf<PressureSection>('bench/pressure.ts', r);
}

const MEM_WARMUP = 8;

/**
 * bench/coap.ts in its own process. Its report says measured, skipped (with why) or failed (with
 * why); an exit status that is not 0, or no report at all, is a failure whatever the report says.
 */
function coapSection(o: Options): CoapSection {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(HERE, 'coap.ts'), '--json', '--n', String(o.coapN), '--spawns', String(o.coapSpawns)], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  const how = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
  let section: CoapSection | undefined;
  try {
    const parsed = JSON.parse(r.stdout) as CoapSection;
    if (typeof parsed.ok === 'boolean') section = parsed;
  } catch {
    section = undefined;
  }
  if (!section) return { ok: false, failed: `bench/coap.ts gave no report (${how}): ${r.stderr.slice(-500)}` };
  if (r.status !== 0 && section.ok) return { ...section, ok: false, failed: `bench/coap.ts ${how}: ${r.stderr.slice(-500)}` };
  return section;
}

/** The names of the sections that failed (for the last line of a human report). */
function failedSections(x: Extra): string[] {
  return [...(x.coap?.failed || (x.coap && !x.coap.ok) ? ['coap'] : []), ...(x.pressure && !x.pressure.ok ? ['pressure'] : []), ...(x.operator && !x.operator.ok ? ['operator'] : []), ...(x.scale && !x.scale.ok ? ['scale'] : []), ...(x.pcsc && !x.pcsc.ok ? ['pcsc'] : []), ...(x.cardCpu && 'failed' in x.cardCpu ? ['card-cpu'] : []), ...(Object.values(x.pool44 ?? {}).some((k) => k.errors > 0) ? ['pool 4×4'] : [])];
}

function configOf(o: Options): Report['config'] {
  return { n: o.n, rounds: o.rounds, warmup: o.warmup, bulkBytes: o.bulkBytes, bulkRounds: o.bulkRounds, bulkWarmup: o.bulkWarmup, concN: o.concN, memK: o.memK, memSamples: o.memSamples, coapN: o.coapN, coapSpawns: o.coapSpawns, pressureClients: o.pressureClients, pressureTotal: o.pressureTotal, pressureLegit: o.pressureLegit, opCards: o.opCards, opLocks: o.opLocks, scaleCards: o.scaleCards, scaleEnrol: o.scaleEnrol, ...(o.only ? { only: o.only } : {}), pcsc: o.pcsc, quick: o.quick, profile: o.profile, poolClients: o.poolClients };
}

function metaOf(o: Options, root: string): Report['meta'] {
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? '?',
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    notes: NOTES,
    ...(o.keep ? { tempDir: root } : {}),
  };
}

/** The report of an --only run: the full report's shape with the other sections empty. */
function sectionReport(o: Options, root: string, part: Partial<Extra>, ok: boolean): Report {
  return {
    meta: metaOf(o, root),
    config: configOf(o),
    servers: [],
    results: {},
    ratios: {},
    facts: {},
    extra: { handshakes: {}, handshakeRatios: {}, bulk: {}, bulkRatios: {}, concurrency: {}, concurrencyRatios: {}, urienTlsSeMs: URIEN_TLS_SE_MS, ...part },
    ok,
  };
}

/** --only memory: the memory section alone (same report shape, other sections empty). */
async function onlyMemory(
  o: Options,
  client: LoadClient,
  c: { cardDir: string; caDir: string; nodeId: { key: string; cert: string }; root: string; progress: (s: string) => void },
): Promise<void> {
  let memory: MemorySection;
  try {
    memory = await runMemory({ run: (j) => client.run(j), cardDir: c.cardDir, caDir: c.caDir, nodeId: c.nodeId, progress: c.progress }, { k: o.memK, samples: o.memSamples, warmup: MEM_WARMUP });
  } finally {
    await client.close();
    if (!o.keep) rmSync(c.root, { recursive: true, force: true });
  }
  const report = sectionReport(o, c.root, { memory }, memory.errors === 0);
  if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
  else process.stdout.write(`setls bench (--only memory) — ${report.meta.date}  node ${report.meta.node}, ${report.meta.cpus} CPU (${report.meta.cpuModel}), load ${report.meta.loadavg.map((x) => x.toFixed(2)).join(' ')}\n\n` + humanMemory(memory));
  process.exitCode = report.ok ? 0 : 1;
}

/**
 * --only bulk: the bulk section alone (same report shape, other sections empty): setls-card
 * (setls-ext, records in the card), setls-export (records on the host) and node:tls, warmed up and
 * interleaved as in the full run. All three summaries go to extra.bulk, with extra.bulkRatios.
 */
async function onlyBulk(
  o: Options,
  client: LoadClient,
  c: { cardDir: string; nodeId: { key: string; cert: string }; root: string; progress: (s: string) => void },
): Promise<void> {
  const setls = await startSetls(c.cardDir, [
    { name: SETLS_EXT, extendedApdu: true },
    { name: SETLS_EXPORT, extendedApdu: true, recordLayer: 'host' },
  ]);
  const node = await startNodeTls(NODE, c.nodeId);
  const bulkServers: ServerUnderTest[] = [setls.variants.find((v) => v.name === SETLS_EXT)!, setls.variants.find((v) => v.name === SETLS_EXPORT)!, node];
  const batches: Batch[] = [];
  try {
    if (o.warmup > 0) {
      c.progress('warm-up');
      for (const s of bulkServers) {
        const b = await measure(client, s, 'bulk', 1, -1, Math.min(o.bulkBytes, 1_000_000), s.name === SETLS_EXPORT ? { checkBody: true } : {});
        if (b.result.errors.length) throw new Error(`warm-up of ${s.name} (bulk) failed: ${b.result.errors.join('; ')}`);
        c.progress('.');
      }
      await bulkWarmup(client, o, bulkServers, c.progress);
      c.progress('\n');
    }
    if (o.bulkBytes > 0) {
      for (let r = 0; r < o.bulkRounds; r++) {
        c.progress(`bulk ${r + 1}/${o.bulkRounds}`);
        for (const s of bulkServers.map((_, i) => bulkServers[(i + r) % bulkServers.length]!)) {
          batches.push(await measure(client, s, 'bulk', 1, r, o.bulkBytes, { checkBody: false }));
          c.progress('.');
        }
        c.progress('\n');
      }
    }
  } finally {
    await client.close();
    await node.close();
    await setls.close();
    if (!o.keep) rmSync(c.root, { recursive: true, force: true });
  }
  const bulk: Extra['bulk'] = {};
  for (const s of bulkServers) {
    const bs = batches.filter((b) => b.server === s.name);
    if (bs.length) bulk[s.name] = summariseBulk(bs, o.bulkBytes);
  }
  const nodeBulk = bulk[NODE];
  const bulkRatios = Object.fromEntries(
    [SETLS_EXT, SETLS_EXPORT].filter((n) => bulk[n] && nodeBulk).map((n) => [`${n === SETLS_EXT ? 'setls-card' : n}/${NODE}`, Math.round((bulk[n]!.mbPerSecond / nodeBulk!.mbPerSecond) * 1000) / 1000]),
  );
  const report = sectionReport(o, c.root, { bulk, bulkRatios }, Object.values(bulk).every((b) => b.errors === 0));
  if (o.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
  } else {
    const out: string[] = [`setls bench (--only bulk) — ${report.meta.date}  node ${report.meta.node}, ${report.meta.cpus} CPU (${report.meta.cpuModel}), load ${report.meta.loadavg.map((x) => x.toFixed(2)).join(' ')}`, ''];
    out.push(`== bulk: one GET /bytes/${o.bulkBytes} per download × ${o.bulkRounds} round(s) interleaved (after a ${o.bulkWarmup} B warm-up download each); setls-card: records in the card (setls-ext), setls-export: exported to the host (TLS-Tandem); MB = 10^6 bytes of body ==`);
    const rows: string[][] = [['server', 'MB/s', 'per round', 'vs node', 'srv CPU ms/MB', 'vs node', 'errors']];
    for (const s of bulkServers) {
      const b = bulk[s.name];
      if (!b) continue;
      rows.push([s.name, fmt(b.mbPerSecond), b.mbPerSecondByRound.map((x) => fmt(x, 1)).join('/'), nodeBulk ? `${fmt(b.mbPerSecond / nodeBulk.mbPerSecond, 3)}×` : '', fmt(b.serverCpuMsPerMB, 1), nodeBulk ? `${fmt(b.serverCpuMsPerMB / nodeBulk.serverCpuMsPerMB)}×` : '', String(b.errors)]);
    }
    out.push(table(rows));
    const errs = Object.entries(bulk).flatMap(([n, b]) => b.errorSamples.map((e) => `bulk ${n}: ${e}`));
    if (errs.length) out.push('errors:', ...errs.map((e) => `  ${e}`));
    process.stdout.write(out.join('\n') + '\n');
  }
  process.exitCode = report.ok ? 0 : 1;
}

/**
 * --only cpu: what issue #14's CPU ratios need, nothing else: full and resumed TLS 1.3 handshakes
 * (setls-ext, setls-thread, node:tls, and in full rounds the socket floor; sequential, interleaved,
 * order rotated), exported bulk (setls-export,
 * node:tls), the 4 × 4 pool under --pool-clients clients (0 leaves it out), bench/card-cpu.ts, and
 * with --profile bench/profile.ts. The setls variants run WITHOUT the bench's APDU counting and
 * latency-model wrappers (CountingTransport, FaultyTransport): those are bench instrumentation, two
 * extra async layers per APDU that the full run charges to the host; here the host is the same
 * wiring as `serve https` (tandem straight on the in-process transport).
 */
async function onlyCpu(
  o: Options,
  client: LoadClient,
  c: { cardDir: string; nodeId: { key: string; cert: string }; root: string; progress: (s: string) => void },
): Promise<void> {
  const setls = await startSetls(c.cardDir, [
    { name: SETLS_EXT, extendedApdu: true, instrumented: false },
    { name: SETLS_EXPORT, extendedApdu: true, recordLayer: 'host', instrumented: false },
  ]);
  const ext = setls.variants.find((v) => v.name === SETLS_EXT)!;
  const exp = setls.variants.find((v) => v.name === SETLS_EXPORT)!;
  const node = await startNodeTls(NODE, c.nodeId);
  const floor = await startReplayFloor(FLOOR, SETLS_HANDSHAKE_FLIGHTS);
  const thread = await startSetlsThread(SETLS_THREAD, c.cardDir);
  const hsServers: ServerUnderTest[] = [ext, thread, node];
  // the floor takes its turn in the full-handshake rounds (a replay job: the same bytes, no TLS)
  const roundServers: ServerUnderTest[] = [ext, thread, node, floor];
  const replay = { flights: SETLS_HANDSHAKE_FLIGHTS };
  const bulkServers: ServerUnderTest[] = [exp, node];
  const modes = HS_MODES.filter(([v]) => v === 'TLSv1.3');
  const batches: Batch[] = [];
  let pool: ServerUnderTest | undefined;
  try {
    if (o.warmup > 0) {
      c.progress('warm-up');
      for (const s of hsServers) {
        for (const [version, resume] of modes) {
          const b = await measure(client, s, 'handshake', o.warmup, -1, undefined, { version, resume });
          if (b.result.errors.length) throw new Error(`warm-up of ${s.name} failed: ${b.result.errors.join('; ')}`);
          c.progress('.');
        }
      }
      const fb = await measure(client, floor, 'replay', o.warmup, -1, undefined, replay);
      if (fb.result.errors.length) throw new Error(`warm-up of ${floor.name} failed: ${fb.result.errors.join('; ')}`);
      for (const s of bulkServers) {
        const b = await measure(client, s, 'bulk', 1, -1, Math.min(o.bulkBytes, 1_000_000), s === exp ? { checkBody: true } : {});
        if (b.result.errors.length) throw new Error(`warm-up of ${s.name} (bulk) failed: ${b.result.errors.join('; ')}`);
        c.progress('.');
      }
      c.progress('\n');
    }
    for (let r = 0; r < o.rounds; r++) {
      c.progress(`handshakes ${r + 1}/${o.rounds}`);
      const order = roundServers.map((_, i) => roundServers[(i + r) % roundServers.length]!);
      for (const [version, resume] of modes) {
        for (const s of order) {
          if (s === floor && resume) continue;
          if (s === floor) batches.push(await measure(client, s, 'replay', o.n, r, undefined, replay, hsTag(version, resume)));
          else batches.push(await measure(client, s, 'handshake', o.n, r, undefined, { version, resume }, hsTag(version, resume)));
          c.progress('.');
        }
      }
      c.progress('\n');
    }
    // right before the bulk rounds: the handshake rounds in between leave the record path cold again
    if (o.warmup > 0 && o.bulkBytes > 0 && o.bulkRounds > 0) await bulkWarmup(client, o, bulkServers, c.progress);
    for (let r = 0; r < o.bulkRounds && o.bulkBytes > 0; r++) {
      c.progress(`bulk ${r + 1}/${o.bulkRounds}`);
      for (const s of bulkServers.map((_, i) => bulkServers[(i + r) % bulkServers.length]!)) {
        batches.push(await measure(client, s, 'bulk', 1, r, o.bulkBytes, { checkBody: false }));
        c.progress('.');
      }
      c.progress('\n');
    }
    if (o.poolClients > 0) {
      pool = await startSetlsChannelPool(SETLS_POOL44, c.cardDir, { cards: 4, channelsPerCard: 4, backlog: Math.max(1024, o.poolClients), recordLayer: 'card', tag: 'p44' });
      c.progress(`pool 4×4, ${o.poolClients} clients`);
      for (const s of [pool, node]) await measure(client, s, 'request', Math.min(o.warmup + 1, 16), -1, undefined, { concurrency: 4 }, 'warm-up');
      for (const s of [pool, node]) {
        batches.push(await measure(client, s, 'request', o.poolClients, 0, undefined, { concurrency: o.poolClients, maxMs: 120_000 }, POOL44_TAG));
        c.progress('.');
      }
      c.progress('\n');
      await pool.close();
      pool = undefined;
    }
  } finally {
    await client.close();
    await pool?.close();
    await floor.close();
    await thread.close();
    await node.close();
    await setls.close();
  }
  const extra = summariseExtra(batches, {}, o);
  const full = hsTag('TLSv1.3', false);
  const results: Report['results'] = {};
  for (const s of hsServers) {
    const hs = batches.filter((b) => b.server === s.name && b.tag === full);
    const bulk = batches.filter((b) => b.server === s.name && b.kind === 'bulk' && !b.tag);
    results[s.name] = { handshake: summariseKind(hs), request: summariseKind([]), ...(bulk.length ? { bulk: summariseBulk(bulk, o.bulkBytes) } : {}) };
  }
  const expBulk = batches.filter((b) => b.server === SETLS_EXPORT && b.kind === 'bulk');
  if (expBulk.length) extra.bulk[SETLS_EXPORT] = summariseBulk(expBulk, o.bulkBytes);
  if (extra.bulk[SETLS_EXPORT] && results[NODE]?.bulk) extra.bulkRatios[`${SETLS_EXPORT}/${NODE}`] = Math.round((extra.bulk[SETLS_EXPORT]!.mbPerSecond / results[NODE]!.bulk!.mbPerSecond) * 1000) / 1000;
  const m: Record<string, KindSummary> = {};
  for (const name of [SETLS_POOL44, NODE]) {
    const bs = batches.filter((b) => b.server === name && b.tag === POOL44_TAG);
    if (bs.length) m[name] = summariseKind(bs);
  }
  if (Object.keys(m).length) extra.pool44 = m;
  c.progress('card CPU, full and resumed (bench/card-cpu.ts)…\n');
  extra.cardCpu = cardCpuSection(o);
  if (o.profile) {
    c.progress('profile of setls serve https (bench/profile.ts)…\n');
    extra.profile = await profileServeHttps({ seconds: o.quick ? 8 : 15, concurrency: 8, top: 20 });
  }
  if (!o.keep) rmSync(c.root, { recursive: true, force: true });
  const errors = batches.reduce((a, b) => a + (b.result.n - b.result.ok), 0) + (extra.cardCpu && 'failed' in extra.cardCpu ? 1 : 0);
  const report: Report = { ...sectionReport(o, c.root, extra, errors === 0), servers: hsServers.map((s) => s.name), results };
  if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
  else {
    const out: string[] = [`setls bench (--only cpu) — ${report.meta.date}  node ${report.meta.node}, ${report.meta.cpus} CPU (${report.meta.cpuModel}), load ${report.meta.loadavg.map((x) => x.toFixed(2)).join(' ')}`, ''];
    const rows: string[][] = [['mode', 'server', 'conn/s', 'srv CPU ms/conn', '  card', '  host', '  other threads', 'cli CPU ms/conn', 'resumed', 'errors']];
    for (const [tag, mode] of Object.entries(extra.handshakes)) {
      for (const [name, k] of Object.entries(mode)) rows.push([tag, name, fmt(k.perSecond, 1), fmt(k.serverCpuMsPerConn, 3), k.cardCpuMsPerConn !== undefined ? fmt(k.cardCpuMsPerConn, 3) : '', k.hostCpuMsPerConn !== undefined ? fmt(k.hostCpuMsPerConn, 3) : '', k.otherThreadsCpuMsPerConn !== undefined ? fmt(k.otherThreadsCpuMsPerConn, 3) : '', fmt(k.clientCpuMsPerConn, 3), `${k.resumed}/${k.connections}`, String(k.errors)]);
    }
    out.push(
      `== sequential TLS 1.3 handshakes, ${o.n}/batch × ${o.rounds} round(s), interleaved, after ${o.warmup} warm-up connections per server and mode ==`,
      table(rows),
      '  srv CPU = the whole server process (process.cpuUsage: every thread); card = inside card.process() (wall time around each APDU, on the main thread: preemption during a call counts as card, so the',
      '  host share is if anything understated); other threads = of srv CPU, V8 GC/compiler helpers and the libuv pool (/proc schedstat), which a sampled --cpu-prof of the main thread never shows.',
    );
    for (const [name, b] of [...Object.entries(extra.bulk), ...(results[NODE]?.bulk ? [[NODE, results[NODE]!.bulk!] as const] : [])]) out.push(`  bulk ${name}: ${fmt(b.mbPerSecond)} MB/s (per round ${b.mbPerSecondByRound.map((v) => fmt(v, 1)).join('/')}), server CPU ${fmt(b.serverCpuMsPerMB, 1)} ms/MB, errors ${b.errors}`);
    process.stdout.write(out.join('\n') + '\n' + humanIssue14(report) + verdict(report));
  }
  process.exitCode = report.ok ? 0 : 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
