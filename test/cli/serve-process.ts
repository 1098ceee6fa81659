/**
 * `setls serve <kind> …` as a child process for CLI tests: started with the repo's bin, ready once
 * its output matches a pattern (the port in group 1), stopped with SIGTERM. imports node built-ins.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';

export const BIN = join(process.cwd(), 'bin/setls.mjs');

export interface ServeProcess {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly port: number;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `setls serve <kind> …`; resolves once stdout matches `ready` (its port in group 1); rejects on exit or after 60 s. */
export function startServe(kind: 'https' | 'coap', args: readonly string[], ready: RegExp, env: Record<string, string> = {}): Promise<ServeProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, 'serve', kind, ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`serve ${kind} did not get ready: ${out} ${err}`));
    }, 60_000);
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          proc,
          port: Number(m[1]),
          output: () => out + err,
          stop: async () => {
            proc.kill('SIGTERM');
            await exited;
          },
        });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve ${kind} exited with ${code}: ${out} ${err}`));
    });
  });
}
