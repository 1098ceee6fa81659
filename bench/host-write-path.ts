/**
 * The exported record layer's write path alone (issue #14, bulk): SeTlsSocket → RecordLayer →
 * HostSession (TLS 1.3 AES-128-GCM, random keys) writing 64 KiB chunks to a loopback TCP socket
 * whose reader (a child process) discards them — no HTTP, no body generator, no handshake. Prints
 * this process's CPU ms/MB per round (user+sys, JIT and GC threads included) and the best round:
 * the first rounds show the JIT warming up, the best one the steady state.
 *
 *   node --import tsx bench/host-write-path.ts [--rounds 8] [--mb 32]
 *
 * imports src/host only.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { HostSession } from '../src/host/index.js';
import { RecordLayer } from '../src/host/record-layer.js';
import { SeTlsSocket } from '../src/host/socket.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, mb: { type: 'string', default: '32' } }, strict: true });
const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const child = spawn(process.execPath, ['-e', "const s=require('net').createServer(c=>c.resume()).listen(0,'127.0.0.1',()=>console.log(s.address().port))"], { stdio: ['ignore', 'pipe', 'inherit'] });
const [line] = (await once(child.stdout, 'data')) as [Buffer];
const port = Number(String(line).trim());
const chunk = Buffer.from(randomBytes(65536));

async function round(mib: number): Promise<{ ms: number; user: number; sys: number }> {
  const sock = net.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  const blob = { version: 0x0304, cipherSuite: 0x1301, readSequence: 0n, writeSequence: 0n, clientTrafficSecret: rnd(32), serverTrafficSecret: rnd(32), clientKey: rnd(16), clientIv: rnd(12), serverKey: rnd(16), serverIv: rnd(12) };
  const s = new SeTlsSocket(new RecordLayer(sock, new HostSession(blob), undefined, { mode: 'host' }));
  const c0 = process.cpuUsage();
  const n = mib * 16;
  await new Promise<void>((resolve) => {
    let i = 0;
    const pump = (): void => {
      while (i < n) {
        i++;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      resolve();
    };
    pump();
  });
  await new Promise<void>((r) => s.end(r));
  const c = process.cpuUsage(c0);
  sock.destroy();
  const mb = (mib * 1048576) / 1e6;
  return { ms: (c.user + c.system) / 1000 / mb, user: c.user / 1000 / mb, sys: c.system / 1000 / mb };
}

const res: { ms: number; user: number; sys: number }[] = [];
for (let r = 0; r < Number(values.rounds); r++) res.push(await round(Number(values.mb)));
console.log(`server CPU ms/MB per round: ${res.map((x) => x.ms.toFixed(2)).join(' ')}; best ${Math.min(...res.map((x) => x.ms)).toFixed(2)}; sum ${res.reduce((a, x) => a + x.ms, 0).toFixed(1)}`);
child.kill();
