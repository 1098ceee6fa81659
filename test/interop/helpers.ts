/**
 * Shared set-up for interop tests: a personalised emulated card in a temp folder (made through the
 * same code path as `setls card init`), and an HTTPS server through it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { initCard, type InitResult } from '../../src/cli/card-setup.js';
import { startHttps, type RunningHttps } from '../../src/cli/serve.js';

export interface TestCard {
  readonly root: string;
  readonly cardDir: string;
  readonly init: InitResult;
  readonly ca: string;
  cleanup(): void;
}

export async function makeTestCard(): Promise<TestCard> {
  const root = mkdtempSync(join(tmpdir(), 'setls-interop-'));
  const cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  return {
    root,
    cardDir,
    init,
    ca: readFileSync(init.caCertPath, 'utf8'),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export async function startTestHttps(card: TestCard, trace?: (line: string) => void): Promise<RunningHttps> {
  const silent = (await import('pino')).default({ level: 'silent' });
  return startHttps({ cardDir: card.cardDir, port: 0, host: '127.0.0.1', backlog: 8, trace: trace !== undefined, traceSink: trace }, silent);
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a peer program with a deadline; never rejects (the test inspects the result). */
export function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 20000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input ?? '');
  });
}
