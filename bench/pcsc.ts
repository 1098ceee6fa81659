/**
 * Handshakes/s through pcscd next to in-process (same card identity, same client, same run):
 *
 *   node --import tsx bench/pcsc.ts [--n 50] [--rounds 3] [--json]
 *
 * The PC/SC path is the lab of test/pcsc/harness.ts: pcscd + vsmartcard vpcd in a private network
 * namespace, `setls card serve` joined to it, `setls serve https --reader` in its own process. The
 * in-process variant is `setls serve https` on a copy of the same card folder, also in its own
 * process, so both servers are measured the same way (sequential full TLS 1.3 handshakes from the
 * bench load generator, bench/client.ts). Needs root, pcscd, vpcd: otherwise prints the reason and
 * exits 0 (skipped).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { initCard } from '../src/cli/card-setup.js';
import { cardPaths, cloneCardFiles } from '../src/cli/card-files.js';
import { BIN, PcscLab, READER, pcscPrerequisites, startProc, waitFor, type Proc } from '../test/pcsc/harness.js';
import { percentile, type JobResult } from './protocol.js';

const HERE = dirname(fileURLToPath(import.meta.url));

async function serve(args: string[]): Promise<{ proc: Proc; port: number }> {
  const proc = startProc(process.execPath, [BIN, 'serve', 'https', '--port', '0', ...args], { SETLS_LOG: 'warn' });
  const port = await waitFor(
    'serve https to listen',
    () => {
      if (proc.child.exitCode !== null) throw new Error(`serve exited: ${proc.out}`);
      const m = /serving HTTPS through the card at https:\/\/localhost:(\d+)\//.exec(proc.out);
      return m ? Number(m[1]) : undefined;
    },
    30_000,
  );
  return { proc, port };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { n: { type: 'string' }, rounds: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const n = Number(values.n ?? 50);
  const rounds = Number(values.rounds ?? 3);
  const reason = await pcscPrerequisites();
  if (reason) {
    const msg = `skipped: ${reason}`;
    process.stdout.write(values.json ? JSON.stringify({ ok: true, skipped: reason }) + '\n' : `pcsc bench ${msg}\n`);
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'setls-bench-pcsc-'));
  const cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  const ca = readFileSync(init.caCertPath, 'utf8');
  // in-process server: its own copy of the card (the lab's card process holds the original)
  const src = cardPaths(cardDir);
  const copy = cardPaths(join(root, 'card-inproc'));
  cloneCardFiles(src, copy);
  const lab = new PcscLab(root, cardDir);
  const procs: Proc[] = [];
  const results: Record<string, JobResult[]> = { pcscd: [], 'in-process': [] };
  try {
    await lab.start();
    const viaPcsc = await serve(['--card-dir', cardDir, '--reader', READER]);
    procs.push(viaPcsc.proc);
    const inproc = await serve(['--card-dir', copy.dir]);
    procs.push(inproc.proc);
    const child = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'client.ts'), JSON.stringify({ ca, servername: 'localhost', host: '127.0.0.1' })], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    let id = 0;
    const job = async (port: number, count: number): Promise<JobResult> => {
      child.stdin.write(JSON.stringify({ id: ++id, kind: 'handshake', port, n: count }) + '\n');
      const l = await lines.next();
      if (l.done) throw new Error('load generator exited');
      return JSON.parse(l.value) as JobResult;
    };
    await job(viaPcsc.port, 3);
    await job(inproc.port, 3);
    for (let r = 0; r < rounds; r++) {
      const order: [string, number][] = r % 2 ? [['in-process', inproc.port], ['pcscd', viaPcsc.port]] : [['pcscd', viaPcsc.port], ['in-process', inproc.port]];
      for (const [name, port] of order) {
        results[name]!.push(await job(port, n));
        if (!values.json) process.stderr.write('.');
      }
    }
    child.stdin.end();
  } finally {
    for (const p of procs) await p.stop();
    await lab.stop();
    rmSync(root, { recursive: true, force: true });
  }
  const sum = Object.fromEntries(
    Object.entries(results).map(([name, rs]) => {
      const ok = rs.reduce((a, r) => a + r.ok, 0);
      const wall = rs.reduce((a, r) => a + r.wallMs, 0);
      const hs = rs.flatMap((r) => r.handshakeMs).sort((a, b) => a - b);
      return [name, { connections: ok, errors: rs.reduce((a, r) => a + r.n - r.ok, 0), errorSamples: rs.flatMap((r) => r.errors).slice(0, 3), perSecond: Math.round((ok / wall) * 1000 * 10) / 10, handshakeP50Ms: percentile(hs, 50), handshakeP99Ms: percentile(hs, 99) }];
    }),
  );
  const ratio = sum.pcscd!.perSecond / sum['in-process']!.perSecond;
  const rep = { ok: Object.values(sum).every((s) => s.errors === 0), n, rounds, results: sum, ratio };
  if (values.json) process.stdout.write(JSON.stringify(rep) + '\n');
  else {
    process.stdout.write(`\nhandshakes/s, TLS 1.3 full, sequential, ${n} × ${rounds} rounds (both servers in their own process; EAP driver, extended APDUs)\n`);
    for (const [name, s] of Object.entries(sum)) process.stdout.write(`  ${name.padEnd(11)} ${s.perSecond.toFixed(1).padStart(7)}/s  hs p50 ${s.handshakeP50Ms.toFixed(1)} ms  p99 ${s.handshakeP99Ms.toFixed(1)} ms  errors ${s.errors}${s.errorSamples.length ? ' ' + s.errorSamples.join('; ') : ''}\n`);
    process.stdout.write(`  pcscd / in-process: ${ratio.toFixed(3)}×\n`);
  }
  process.exitCode = rep.ok ? 0 : 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench pcsc: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
