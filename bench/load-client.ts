/**
 * bench/client.ts (the load generator, node:tls) as a child process of a bench: one Job per line on
 * its stdin, one JobResult per line back; a job whose client dies is rejected with the client's
 * last stderr. Used by bench/run.ts, bench/bulk-profile.ts and bench/alloc-profile.ts.
 * imports node and bench/protocol.ts only.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Job, JobResult } from './protocol.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);

/** Runs bench/client.ts with the local CA `ca` (PEM), for servers on 127.0.0.1 named localhost. */
export class LoadClient {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, { resolve: (r: JobResult) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private stderr = '';

  constructor(ca: string) {
    const cfg = JSON.stringify({ ca, servername: 'localhost', host: '127.0.0.1' });
    this.child = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'client.ts'), cfg], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let r: JobResult;
      try {
        r = JSON.parse(line) as JobResult;
      } catch {
        return; // not ours
      }
      this.pending.get(r.id)?.resolve(r);
      this.pending.delete(r.id);
    });
    this.child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`bench client exited (${code}): ${this.stderr}`));
      this.pending.clear();
    });
  }

  run(job: Omit<Job, 'id'>): Promise<JobResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(JSON.stringify({ ...job, id }) + '\n');
    });
  }

  close(): Promise<void> {
    return new Promise((r) => {
      if (this.child.exitCode !== null) return r();
      this.child.once('exit', () => r());
      this.child.stdin.end();
    });
  }
}
