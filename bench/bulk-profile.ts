/**
 * Where the server spends its CPU on an exported bulk download (issue #14): setls-export (TLS-Tandem,
 * records sealed on the host after EXPORT-SESSION) and node:tls, both in this process with the demo
 * plug, downloaded by curl (another process, TLS 1.3 AES-128-GCM pinned, body discarded) or, with --client node,
 * by bench/client.ts (the node:tls load generator of `npm run bench`). Prints
 * MB/s and server CPU ms/MB per variant (process.cpuUsage over each download), then the top self-time
 * frames of one variant (--variant, default setls-export), profiled with node:inspector around its downloads only.
 *
 *   node --import tsx bench/bulk-profile.ts [--bytes 67108864] [--rounds 2] [--top 30] [--warmup-bytes 67108864] [--measure setls-export|node:tls] [--no-profile] [--client curl|node] [--variant setls-export|node:tls] [--raw FILE.cpuprofile] [--marks]
 *   node --import tsx bench/bulk-profile.ts --summarise FILE.cpuprofile --window FROM_US,TO_US   (a --cpu-prof file of a --marks run)
 *
 * imports src/cli (card init) and bench/ helpers only.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initCard } from '../src/cli/card-setup.js';
import { LoadClient } from './load-client.js';
import { humanProfile, summariseProfile } from './profile.js';
import { makeNodeIdentity, setExportAllowed, startNodeTls, startSetls, type ServerUnderTest } from './servers.js';

function curl(port: number, caFile: string, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', ['-s', '--fail', '--cacert', caFile, '--tlsv1.3', '--tls13-ciphers', 'TLS_AES_128_GCM_SHA256', '-o', '/dev/null', '-w', '%{size_download}', '--max-time', '120', `https://localhost:${port}/bytes/${bytes}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.once('error', reject);
    c.once('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`curl exited ${code}: ${err}`))));
  });
}

/** bench/client.ts (the load generator of `npm run bench`, node:tls) as the downloader: one GET /bytes/N, its body length. */
async function nodeGet(client: LoadClient, port: number, bytes: number): Promise<number> {
  const r = await client.run({ kind: 'bulk', port, n: 1, bytes });
  if (r.ok !== 1) throw new Error(r.errors.join('; '));
  return r.bodyBytes;
}
let nodeClient: LoadClient | undefined;

async function download(s: ServerUnderTest, caFile: string, bytes: number): Promise<{ mbps: number; cpuMsPerMB: number; userMsPerMB: number; faultsPerMB: number }> {
  const f0 = process.resourceUsage().minorPageFault;
  const t0 = performance.now();
  const h0 = process.hrtime.bigint() / 1000n;
  const c0 = process.cpuUsage();
  const got = nodeClient ? await nodeGet(nodeClient, s.port, bytes) : await curl(s.port, caFile, bytes);
  const c = process.cpuUsage(c0);
  const faults = process.resourceUsage().minorPageFault - f0;
  const ms = performance.now() - t0;
  if (got !== bytes) throw new Error(`${s.name}: ${got} bytes, not ${bytes}`);
  // µs on the monotonic clock of V8's profiler: `--window` picks this download out of a --cpu-prof file
  if (values.marks) console.error(`window ${s.name} ${h0},${process.hrtime.bigint() / 1000n}`);
  await s.idle();
  return { mbps: bytes / 1e6 / (ms / 1000), cpuMsPerMB: (c.user + c.system) / 1000 / (bytes / 1e6), userMsPerMB: c.user / 1000 / (bytes / 1e6), faultsPerMB: faults / (bytes / 1e6) };
}

const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: String(64 * 1024 * 1024) },
    rounds: { type: 'string', default: '2' },
    top: { type: 'string', default: '30' },
    'no-profile': { type: 'boolean', default: false },
    raw: { type: 'string' },
    variant: { type: 'string', default: 'setls-export' },
    client: { type: 'string', default: 'curl' },
    'warmup-bytes': { type: 'string', default: '67108864' },
    measure: { type: 'string' },
    marks: { type: 'boolean', default: false },
    summarise: { type: 'string' },
    window: { type: 'string' },
  },
  strict: true,
});
if (values.summarise) {
  // a `node --cpu-prof` file of this script run with --marks: the top frames of the samples inside --window a,b (µs)
  const p = JSON.parse(readFileSync(values.summarise, 'utf8')) as Parameters<typeof summariseProfile>[0] & { startTime: number };
  const [a, b] = (values.window ?? '0,1e18').split(',').map(Number) as [number, number];
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    if (t >= a && t <= b) {
      samples.push(p.samples[i]!);
      timeDeltas.push(p.timeDeltas[i]!);
    }
  }
  console.log(humanProfile(summariseProfile({ ...p, samples, timeDeltas }, 1, Number(values.top)), `${values.summarise} in ${a}..${b}`, Number(values.top)));
  process.exit(0);
}
const bytes = Number(values.bytes);
const rounds = Number(values.rounds);
const root = mkdtempSync(join(tmpdir(), 'setls-bulkprof-'));
try {
  const cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  await setExportAllowed(cardDir, true);
  const nodeId = await makeNodeIdentity(init.paths.caDir);
  const setls = await startSetls(cardDir, [{ name: 'setls-export', extendedApdu: true, recordLayer: 'host', instrumented: false }]);
  const node = await startNodeTls('node:tls', nodeId);
  const exp = setls.variants[0]!;
  if (values.client === 'node') nodeClient = new LoadClient(readFileSync(init.caCertPath, 'utf8'));
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object): Promise<T> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (err, r) => (err ? reject(err) : resolve(r as T))));
  try {
    // warm-up (JIT), not measured
    const warm = Number(values['warmup-bytes']);
    if (warm > 0) for (const s of [exp, node]) await download(s, init.caCertPath, warm);
    const res: Record<string, { mbps: number; cpuMsPerMB: number; userMsPerMB: number; faultsPerMB: number }[]> = { 'setls-export': [], 'node:tls': [] };
    for (let r = 0; r < rounds; r++) {
      for (const s of r % 2 ? [node, exp] : [exp, node]) if (!values.measure || values.measure === s.name) res[s.name]!.push(await download(s, init.caCertPath, bytes));
    }
    const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    for (const [name, xs] of Object.entries(res)) {
      if (!xs.length) continue;
      const best = Math.min(...xs.map((x) => x.cpuMsPerMB));
      console.log(`${name.padEnd(13)} ${avg(xs.map((x) => x.mbps)).toFixed(1).padStart(7)} MB/s (${xs.map((x) => x.mbps.toFixed(0)).join('/')}), server CPU ${avg(xs.map((x) => x.cpuMsPerMB)).toFixed(2)} ms/MB, best ${best.toFixed(2)} (${xs.map((x) => x.cpuMsPerMB.toFixed(2)).join('/')}; user ${avg(xs.map((x) => x.userMsPerMB)).toFixed(2)}; page faults per MB ${avg(xs.map((x) => x.faultsPerMB)).toFixed(0)})`);
    }
    const e = res['setls-export']!;
    const n = res['node:tls']!;
    const best = (xs: { cpuMsPerMB: number }[]): number => Math.min(...xs.map((x) => x.cpuMsPerMB));
    console.log(`ratio setls-export / node:tls: MB/s ${(avg(e.map((x) => x.mbps)) / avg(n.map((x) => x.mbps))).toFixed(3)}×, CPU ms/MB ${(avg(e.map((x) => x.cpuMsPerMB)) / avg(n.map((x) => x.cpuMsPerMB))).toFixed(3)}× (best ${(best(e) / best(n)).toFixed(3)}×)  (load ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')})`);
    if (!values['no-profile']) {
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 100 });
      await post('Profiler.start');
      const target = values.variant === 'node:tls' ? node : exp;
      for (let r = 0; r < rounds; r++) await download(target, init.caCertPath, bytes);
      const { profile } = await post<{ profile: Parameters<typeof summariseProfile>[0] }>('Profiler.stop');
      if (values.raw) writeFileSync(values.raw, JSON.stringify(profile));
      const records = Math.ceil((bytes * rounds) / 16384);
      const s = summariseProfile(profile, records, Number(values.top));
      console.log(humanProfile(s, `${target.name}, ${rounds} × ${bytes} B (per "handshake" read: per 16 KiB record)`, Number(values.top)));
    }
  } finally {
    session.disconnect();
    await nodeClient?.close();
    await node.close();
    await setls.close();
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

