/**
 * DTLS test plumbing: the engine as a host DtlsBackend (what the card does through PROCESS-EAP),
 * a DtlsServer on loopback that echoes application data upper-cased, openssl s_client -dtls1_2.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createDtlsServer, type DtlsServerConnection, type DtlsServerOptions as EngineOptions } from '../../../src/tls/dtls/index.js';
import type { TlsServerConfig } from '../../../src/tls/api.js';
import { DtlsServer, type DtlsBackend, type DtlsServerOptions, type DtlsAssociation } from '../../../src/host/dtls/index.js';

export function engineBackend(config: Partial<TlsServerConfig> & Pick<TlsServerConfig, 'selectIdentity'>, opts: EngineOptions = {}): DtlsBackend & { engine: DtlsServerConnection } {
  const engine = createDtlsServer({ entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() }, ...config }, opts);
  return {
    engine,
    receive: async (records) => engine.receive(records),
    encrypt: async (type, plaintext) => engine.encrypt(type, plaintext),
    close: async () => engine.dispose(),
  };
}

export interface EchoServer {
  readonly server: DtlsServer;
  readonly port: number;
  readonly sessions: DtlsAssociation[];
  readonly engines: DtlsServerConnection[];
  /** Plaintexts received over all sessions. */
  readonly received: Uint8Array[];
  close(): Promise<void>;
}

export async function startEchoServer(
  config: Partial<TlsServerConfig> & Pick<TlsServerConfig, 'selectIdentity'>,
  opts: Partial<DtlsServerOptions> = {},
  engineOpts: EngineOptions = {},
): Promise<EchoServer> {
  const engines: DtlsServerConnection[] = [];
  const sessions: DtlsAssociation[] = [];
  const received: Uint8Array[] = [];
  const server = new DtlsServer({
    openBackend: async () => {
      const b = engineBackend(config, engineOpts);
      engines.push(b.engine);
      return b;
    },
    ...opts,
  });
  server.on('session', (a: DtlsAssociation) => {
    sessions.push(a);
    a.on('message', (m: Uint8Array) => {
      received.push(m);
      void a.send(new TextEncoder().encode(new TextDecoder().decode(m).toUpperCase())).catch(() => undefined);
    });
  });
  const { port } = await server.listen(0);
  return { server, port, sessions, engines, received, close: () => server.close() };
}

export interface SClient {
  readonly child: ChildProcess;
  out(): string;
  waitFor(re: RegExp, ms?: number): Promise<string>;
  write(s: string): void;
  kill(): Promise<void>;
}

export function sClient(port: number, args: string[]): SClient {
  const child = spawn('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${port}`, '-ign_eof', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => (buf += d.toString('latin1')));
  child.stderr!.on('data', (d: Buffer) => (buf += d.toString('latin1')));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    out: () => buf,
    waitFor: (re, ms = 15000) =>
      new Promise((resolve, reject) => {
        const t0 = Date.now();
        const tick = (): void => {
          const m = re.exec(buf);
          if (m) return resolve(m[0]);
          if (Date.now() - t0 > ms || child.exitCode !== null) return reject(new Error(`timeout waiting for ${re} in:\n${buf}`));
          setTimeout(tick, 20);
        };
        tick();
      }),
    write: (s) => child.stdin!.write(s),
    kill: async () => {
      if (child.exitCode === null) child.kill();
      await exited;
    },
  };
}
