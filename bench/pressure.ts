/**
 * The pressure section of `npm run bench` (issue #14): the scheduler of the card under load and
 * under attack, next to node:tls where it applies.
 *
 *   node --import tsx bench/pressure.ts [--clients 300] [--total 3000] [--legit 20] [--json]
 *
 *   - loop: `--clients` node:tls clients handshaking in a loop (TLS 1.3, certificate verified; connect,
 *     full handshake, close) until `--total` connections, against the default `setls serve https`
 *     (one emulated card, a process of its own) and against node:tls (an https server in this
 *     process): completed / failed / refused, handshakes/s, latency p50/p99;
 *   - attacks: the legitimate client's latency (fresh connection, full TLS 1.3 handshake, GET /status;
 *     `--legit` of them, one after another) while each attack runs, then all together, against
 *     `setls demo` (HTTPS + coaps+tcp + coaps on one card — the DTLS flood needs its UDP side) and,
 *     for the TCP attacks, against node:tls: 2000 idle TCP connections, 500 slowloris connections
 *     (a real ClientHello one byte a second), a record trickler (a valid HTTP request one byte — one
 *     TLS record — every 800 ms), a half-open DTLS flood (16 lanes: ClientHello, cookie, ClientHello
 *     with the cookie, silence). Each attacker comes from an address of its own (127.0.0.2–5), as
 *     another host would; the load and the attackers are bench/pressure-agent.ts processes.
 *
 * Outcome, as bench/coap.ts: --json prints { ok, params, loop, attacks, failed? }; a legitimate
 * request or a setls loop connection that fails makes the section fail (ok false, exit 1); node:tls
 * failures are reported, not judged. SETLS_BENCH_FAIL_SECTION=pressure injects a failure.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initCard } from '../src/cli/card-setup.js';
import { cardPaths } from '../src/cli/card-files.js';
import type { AgentConfig } from './pressure-agent.js';
import { Agent, legitGet, openFilesLimit, percentile, runServer, type Served } from './pressure-harness.js';
import { makeNodeIdentity, startNodeTls } from './servers.js';

export interface LoopResult {
  readonly completed: number;
  readonly failed: number;
  /** Failures that were refusals: resets, the overload alert. */
  readonly refused: number;
  readonly errors: Record<string, number>;
  readonly handshakesPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface LegitResult {
  readonly n: number;
  readonly ok: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly errors: readonly string[];
  /** What the attackers reported at the end. */
  readonly attackers: Record<string, unknown>;
}

export interface PressureSection {
  readonly ok: boolean;
  readonly params?: Record<string, number>;
  readonly loop?: Record<string, LoopResult>;
  /** attack name → server name → the legitimate client's result. */
  readonly attacks?: Record<string, Record<string, LegitResult>>;
  readonly skipped?: string;
  readonly failed?: string;
}

type Attack = 'idle' | 'slowloris' | 'trickle' | 'dtls-flood';
const ATTACKS: readonly Attack[] = ['idle', 'slowloris', 'trickle', 'dtls-flood'];
const FROM: Record<Attack, string> = { idle: '127.0.0.2', slowloris: '127.0.0.3', trickle: '127.0.0.4', 'dtls-flood': '127.0.0.5' };

function attackConfig(a: Attack, port: { https: number; coap?: number }, ca: string): AgentConfig | undefined {
  const localAddress = FROM[a];
  switch (a) {
    case 'idle':
      return { mode: 'idle', port: port.https, count: 2000, localAddress };
    case 'slowloris':
      return { mode: 'slowloris', port: port.https, count: 500, byteMs: 1000, localAddress };
    case 'trickle':
      return { mode: 'trickle', port: port.https, ca, count: 1, everyMs: 800, localAddress };
    case 'dtls-flood':
      return port.coap === undefined ? undefined : { mode: 'dtls-flood', port: port.coap, count: 16, localAddress };
  }
}

const r1 = (x: number): number => Math.round(x * 10) / 10;

async function loop(port: number, ca: string, clients: number, total: number): Promise<LoopResult> {
  const agent = new Agent({ mode: 'loop', port, ca, clients, total });
  const r = (await agent.done(900_000)) as { completed?: number; failed?: number; errors?: Record<string, number>; handshakesPerSec?: number; p50Ms?: number; p99Ms?: number };
  const errors = r.errors ?? {};
  const refused = Object.entries(errors)
    .filter(([k]) => /ECONNRESET|ECONNREFUSED|EPIPE|INTERNAL_ERROR|closed before/.test(k))
    .reduce((a, [, v]) => a + v, 0);
  return { completed: r.completed ?? 0, failed: r.failed ?? total, refused, errors, handshakesPerSec: r1(r.handshakesPerSec ?? 0), p50Ms: r1(r.p50Ms ?? NaN), p99Ms: r1(r.p99Ms ?? NaN) };
}

async function legitUnder(attacks: readonly Attack[], port: { https: number; coap?: number }, ca: string, n: number): Promise<LegitResult> {
  const agents: [Attack, Agent][] = [];
  const errors: string[] = [];
  const lat: number[] = [];
  try {
    for (const a of attacks) {
      const cfg = attackConfig(a, port, ca);
      if (cfg) agents.push([a, new Agent(cfg)]);
    }
    await Promise.all(agents.map(([, g]) => g.ready()));
    for (let i = 0; i < n; i++) {
      try {
        const r = await legitGet(port.https, ca, 30_000);
        if (r.status === 200) lat.push(r.ms);
        else errors.push(`status ${r.status}`);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
  } finally {
    await Promise.all(agents.map(([, g]) => g.stop()));
  }
  lat.sort((a, b) => a - b);
  return {
    n,
    ok: lat.length,
    p50Ms: r1(percentile(lat, 50)),
    p99Ms: r1(percentile(lat, 99)),
    maxMs: r1(lat.at(-1) ?? NaN),
    errors: [...new Set(errors)].slice(0, 5),
    attackers: Object.fromEntries(agents.map(([a, g]) => [a, g.last])),
  };
}

export async function runPressure(o: { clients: number; total: number; legit: number; progress?: (s: string) => void }): Promise<PressureSection> {
  const progress = o.progress ?? (() => undefined);
  const params = { clients: o.clients, total: o.total, legit: o.legit };
  if (openFilesLimit() < 4096) return { ok: false, params, failed: `open files limit ${openFilesLimit()} < 4096: raise the hard limit (ulimit -Hn 8192)` };
  const root = mkdtempSync(join(tmpdir(), 'setls-bench-pressure-'));
  const servers: Served[] = [];
  const nodeServers: { close(): Promise<void> }[] = [];
  try {
    const cardDir = join(root, 'card');
    const init = await initCard({ cardDir });
    const ca = readFileSync(init.caCertPath, 'utf8');
    const nodeId = await makeNodeIdentity(cardPaths(cardDir).caDir);
    const node = await startNodeTls('node:tls', nodeId);
    nodeServers.push(node);

    progress(`pressure: ${o.clients} looping clients, ${o.total} connections, setls`);
    const https = await runServer(['serve', 'https', '--card-dir', cardDir, '--port', '0']);
    servers.push(https);
    const loopSetls = await loop(https.https, ca, o.clients, o.total);
    await https.stop();
    progress(', node:tls');
    const loopNode = await loop(node.port, ca, o.clients, o.total);
    progress('\n');

    if (process.env.SETLS_BENCH_FAIL_SECTION === 'pressure') throw new Error('injected failure (SETLS_BENCH_FAIL_SECTION=pressure)');

    const attacks: Record<string, Record<string, LegitResult>> = {};
    const demoDir = join(root, 'demo');
    for (const set of [...ATTACKS.map((a) => [a]), [...ATTACKS]] as Attack[][]) {
      const name = set.length > 1 ? 'all' : set[0]!;
      progress(`pressure: legitimate client under ${name}: setls`);
      const demo = await runServer(['demo', '--card-dir', demoDir, '--port', '0', '--coap-port', '0'], { coap: true });
      servers.push(demo);
      const demoCa = readFileSync(join(cardPaths(demoDir).caDir, 'ca.crt'), 'utf8');
      attacks[name] = { setls: await legitUnder(set, { https: demo.https, coap: demo.coap! }, demoCa, o.legit) };
      await demo.stop();
      if (set.length > 1 || set[0] !== 'dtls-flood') {
        // node:tls has no DTLS side: the TCP attacks only
        progress(', node:tls');
        attacks[name]!['node:tls'] = await legitUnder(set, { https: node.port }, ca, o.legit);
      }
      progress('\n');
    }
    const setlsLegitFailures = Object.values(attacks).reduce((a, m) => a + (m.setls ? m.setls.n - m.setls.ok : 0), 0);
    const ok = loopSetls.failed === 0 && setlsLegitFailures === 0;
    return {
      ok,
      params,
      loop: { setls: loopSetls, 'node:tls': loopNode },
      attacks,
      ...(ok ? {} : { failed: `${loopSetls.failed} setls loop connection(s) and ${setlsLegitFailures} legitimate request(s) failed` }),
    };
  } catch (e) {
    return { ok: false, params, failed: (e as Error).message };
  } finally {
    for (const s of servers) await s.stop();
    for (const s of nodeServers) await s.close();
    rmSync(root, { recursive: true, force: true });
  }
}

/** The human table of a pressure section. */
export function humanPressure(p: PressureSection): string {
  const out = ['== pressure: the card scheduler under load and under attack (bench/pressure.ts; clients and attackers in processes of their own) =='];
  if (p.failed) out.push(`  failed: ${p.failed}`);
  if (p.skipped) out.push(`  skipped: ${p.skipped}`);
  const fmt = (x: number): string => (Number.isFinite(x) ? String(x) : '–');
  if (p.loop) {
    out.push(`  ${p.params?.clients} concurrent clients handshaking in a loop (TLS 1.3, connect + full handshake + close), ${p.params?.total} connections; setls = default \`serve https\`, one card:`);
    out.push('    server     completed  failed  refused  handshakes/s  p50 ms  p99 ms  errors');
    for (const [name, r] of Object.entries(p.loop)) {
      out.push(`    ${name.padEnd(9)}  ${String(r.completed).padStart(9)}  ${String(r.failed).padStart(6)}  ${String(r.refused).padStart(7)}  ${fmt(r.handshakesPerSec).padStart(12)}  ${fmt(r.p50Ms).padStart(6)}  ${fmt(r.p99Ms).padStart(6)}  ${Object.keys(r.errors).length ? JSON.stringify(r.errors) : ''}`);
    }
  }
  if (p.attacks) {
    out.push(`  the legitimate client (${p.params?.legit} fresh connections, full TLS 1.3 handshake + GET /status, one after another) under attack; setls = \`demo\` (HTTPS + coaps+tcp + coaps, one card); node:tls gets the TCP attacks only:`);
    out.push('    attack      server     ok      p50 ms  p99 ms  max ms  errors');
    for (const [attack, m] of Object.entries(p.attacks)) {
      for (const [server, r] of Object.entries(m)) {
        out.push(`    ${attack.padEnd(10)}  ${server.padEnd(9)}  ${`${r.ok}/${r.n}`.padStart(6)}  ${fmt(r.p50Ms).padStart(6)}  ${fmt(r.p99Ms).padStart(6)}  ${fmt(r.maxMs).padStart(6)}  ${r.errors.join('; ')}`);
      }
    }
  }
  return out.join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { clients: { type: 'string' }, total: { type: 'string' }, legit: { type: 'string' }, json: { type: 'boolean', default: false } },
    strict: true,
  });
  const int = (v: string | undefined, d: number): number => (v === undefined ? d : Math.max(1, Math.floor(Number(v))));
  const section = await runPressure({
    clients: int(values.clients, 300),
    total: int(values.total, 3000),
    legit: int(values.legit, 20),
    progress: (s) => process.stderr.write(s),
  });
  process.stdout.write(values.json ? JSON.stringify(section) + '\n' : humanPressure(section));
  process.exitCode = section.ok ? 0 : 1;
}

if (process.argv[1] && /pressure\.ts$/.test(process.argv[1])) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench/pressure: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
