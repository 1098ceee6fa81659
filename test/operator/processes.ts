/**
 * Real processes for the operator's end-to-end tests: a free port, a command run to completion
 * (`exec`, `setls`), long-running `setls …` processes kept in a group that stops them all
 * (`ProcessGroup`), and `setls operator serve` nodes waited on until /healthz answers
 * (`serveOperator`, `operatorServing`). imports node built-ins, test/wait and ./helpers (call).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { waitUntil, within } from '../wait.js';
import { call } from './helpers.js';

export const BIN = join(process.cwd(), 'bin/setls.mjs');

/** A TCP port free on 127.0.0.1 at the time of the call (for processes that need it on their command line). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Exited {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cmd args` to completion (stdin: `input`, then closed); killed after 120 s. stdout is read as latin1 (binary-safe). */
export function exec(cmd: string, args: readonly string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Exited> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, SETLS_LOG: 'info', ...opts.env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input ?? '');
  });
}

/** `setls …` (this repository's bin) to completion. */
export const setls = (args: readonly string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Exited> => exec(process.execPath, [BIN, ...args], opts);

export interface Proc {
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  out: string;
  readonly exited: Promise<number | null>;
}

/** Long-running `setls …` processes of one test file; `stopAll` (in `after`) ends every one still running. */
export class ProcessGroup {
  private readonly procs: Proc[] = [];

  /** Starts `setls args` with info logs; its output accumulates in `out`. */
  background(args: readonly string[]): Proc {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, SETLS_LOG: 'info', SETLS_LOG_LEVEL: 'info' } });
    const p: Proc = { child, out: '', exited: new Promise((r) => child.on('exit', (c) => r(c))) };
    child.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (p.out += d.toString()));
    this.procs.push(p);
    return p;
  }

  /** SIGTERM, then SIGKILL if it has not exited within the default deadline. */
  async stop(p: Proc): Promise<void> {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    await within(p.exited, 'a process stops').catch(() => p.child.kill('SIGKILL'));
  }

  async stopAll(): Promise<void> {
    for (const p of this.procs.reverse()) await this.stop(p);
    this.procs.length = 0;
  }
}

/** One `setls operator serve` process (a node). */
export interface OperatorNode {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<number | null>;
  /** Its stderr so far (its logs, whole: tests look for job ids in them). */
  stderr: string;
}

/** Starts `setls operator serve --dir dir --port port …extra` (stdout discarded, logs kept). */
export function serveOperator(dir: string, port: number, extra: readonly string[] = [], logLevel = 'info'): OperatorNode {
  const child = spawn(process.execPath, [BIN, 'operator', 'serve', '--dir', dir, '--port', String(port), ...extra], { env: { ...process.env, SETLS_LOG_LEVEL: logLevel } });
  const n: OperatorNode = { child, port, exited: new Promise((r) => child.on('exit', (code) => r(code))), stderr: '' };
  child.stderr!.on('data', (d: Buffer) => (n.stderr += d.toString()));
  child.stdout!.resume();
  return n;
}

/** Resolves once the node answers GET /healthz with 200; throws if it exits first or after 60 s. */
export async function operatorServing(n: OperatorNode, caFile: string): Promise<void> {
  await waitUntil(
    async () => {
      if (n.child.exitCode !== null) throw new Error(`operator serve exited: ${n.stderr}`);
      try {
        return (await call(`https://localhost:${n.port}`, caFile, 'GET', '/healthz')).status === 200;
      } catch {
        return false;
      }
    },
    'the operator node serves',
    60_000,
  );
}
