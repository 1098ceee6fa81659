/**
 * The pressure harness shared by bench/pressure.ts and the pressure tests (test/load/pressure-*):
 * the load/attack agent (bench/pressure-agent.ts) in a child process, `setls serve https` / `setls
 * demo` as a user runs them (bin/setls.mjs, a child process), the legitimate client (a fresh TLS
 * connection, full handshake, GET /status, its latency), and the open-files limit of this process.
 * imports node and bench/pressure-agent (types).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { AgentConfig } from './pressure-agent.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const BIN = join(ROOT, 'bin/setls.mjs');

/** The soft limit of open files of this process (Node raises it to the hard limit at start-up). */
export function openFilesLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    return NaN;
  }
}

export interface AgentStatus {
  readonly [k: string]: unknown;
}

export class Agent {
  private readonly child: ChildProcessWithoutNullStreams;
  last: AgentStatus = {};
  private readyP: Promise<AgentStatus>;
  private doneP: Promise<AgentStatus>;
  stderr = '';

  constructor(cfg: AgentConfig) {
    this.child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/pressure-agent.ts'), JSON.stringify(cfg)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    let ready!: (s: AgentStatus) => void;
    let done!: (s: AgentStatus) => void;
    let fail!: (e: Error) => void;
    this.readyP = new Promise((r, f) => {
      ready = r;
      fail = f;
    });
    this.readyP.catch(() => undefined);
    this.doneP = new Promise((r) => (done = r));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let o: AgentStatus;
      try {
        o = JSON.parse(line) as AgentStatus;
      } catch {
        return;
      }
      this.last = { ...this.last, ...o };
      if (o.ready) ready(this.last);
      if (o.done || o.final) done(this.last);
    });
    this.child.on('exit', (code) => {
      fail(new Error(`agent ${cfg.mode} exited (${code}) before it was ready: ${this.stderr}`));
      done(this.last);
    });
  }

  /** Resolves once the load is in place (bounded: a hang fails the test). */
  ready(timeoutMs = 120_000): Promise<AgentStatus> {
    return bounded(this.readyP, timeoutMs, 'the agent to be ready');
  }

  /** loop: resolves with the final result. */
  done(timeoutMs = 600_000): Promise<AgentStatus> {
    return bounded(this.doneP, timeoutMs, 'the agent to finish');
  }

  /** Stops an attack; resolves with its final status. */
  async stop(): Promise<AgentStatus> {
    if (this.child.exitCode === null) this.child.stdin.end();
    const r = await bounded(this.doneP, 30_000, 'the agent to stop').catch(() => this.last);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
    return r;
  }
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`no answer after ${ms} ms waiting for ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

export interface Served {
  readonly https: number;
  readonly coap?: number;
  readonly adminPort?: number;
  readonly out: () => string;
  stop(): Promise<void>;
}

/**
 * Runs `setls <args>` (serve https / demo) and resolves once it printed its URL(s). The server's
 * output is kept (the test shows it when something fails).
 */
export function runServer(args: string[], opts: { coap?: boolean; env?: Record<string, string> } = {}): Promise<Served> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, SETLS_LOG: 'warn', ...opts.env } });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`setls ${args.join(' ')} did not print its URL: ${out} ${err}`));
    }, 60_000);
    p.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const h = /serving HTTPS through the card at https:\/\/localhost:(\d+)\//.exec(out);
      const c = /coaps:\/\/127\.0\.0\.1:(\d+) \(UDP/.exec(out);
      const m = /metrics: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(out);
      if (h && (!opts.coap || c) && (!args.includes('--admin-port') || m)) {
        clearTimeout(timer);
        resolve({
          https: Number(h[1]),
          ...(c ? { coap: Number(c[1]) } : {}),
          ...(m ? { adminPort: Number(m[1]) } : {}),
          out: () => `${out}\n${err}`,
          stop: () =>
            new Promise((r) => {
              if (p.exitCode !== null) return r();
              p.once('exit', () => r());
              p.kill('SIGTERM');
              setTimeout(() => p.kill('SIGKILL'), 10_000).unref();
            }),
        });
      }
    });
    p.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`setls ${args.join(' ')} exited with ${code}: ${out} ${err}`));
    });
  });
}

/** The legitimate client: a fresh connection, full TLS handshake, GET /status; its latency (connect → last byte). */
export function legitGet(port: number, ca: string, timeoutMs = 60_000): Promise<{ status: number; ms: number; body: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/status', ca, servername: 'localhost', agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`legitimate client: no answer within ${timeoutMs} ms`)));
  });
}

export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

