// Shared set-up for the TlsPool tests: N personalised emulated cards (same CA, each its own state
// folder, made by `setls card init`'s code), each behind a FaultyTransport.
import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { initCard, openCard } from '../../src/cli/card-setup.js';
import { cardPaths, readPin } from '../../src/cli/card-files.js';
import { TlsPool, FaultyTransport, type TlsPoolOptions, type FaultyTransportOptions } from '../../src/host/index.js';
import { serveHttps } from '../../src/servers/https/index.js';
import type { EmulatedCard } from '../../src/card/index.js';

export interface PoolCards {
  readonly root: string;
  readonly dirs: string[];
  readonly ca: string;
  readonly pin: string[];
  cleanup(): void;
}

export async function makeCards(n: number): Promise<PoolCards> {
  const root = mkdtempSync(join(tmpdir(), 'setls-pool-'));
  const dirs: string[] = [];
  const pin: string[] = [];
  let ca = '';
  for (let i = 0; i < n; i++) {
    const dir = join(root, `card${i}`);
    const init = await initCard({ cardDir: dir });
    ca = readFileSync(init.caCertPath, 'utf8');
    dirs.push(dir);
    pin.push(readPin(cardPaths(dir).pinFile));
  }
  return { root, dirs, ca, pin, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export interface RunningPool {
  readonly pool: TlsPool;
  readonly port: number;
  readonly faulty: FaultyTransport[];
  readonly cards: EmulatedCard[];
  readonly errors: Error[];
  close(): Promise<void>;
}

/** A pool over the cards (each card its own PIN), each card behind a FaultyTransport (reset() = card reset). */
export async function startPool(c: PoolCards, opts: Partial<TlsPoolOptions> = {}, faults: FaultyTransportOptions = {}): Promise<RunningPool> {
  const cards: EmulatedCard[] = [];
  const faulty: FaultyTransport[] = [];
  for (const dir of c.dirs) {
    const { transport, card } = openCard({ cardDir: dir });
    cards.push(card);
    faulty.push(new FaultyTransport(transport, { ...faults, onReset: () => card.reset() }));
  }
  const pool = new TlsPool({ transports: faulty, pins: c.pin, ...opts });
  await pool.start();
  const errors: Error[] = [];
  pool.on('sessionError', (e: Error) => errors.push(e));
  const http = serveHttps(pool, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => res.end(`ok ${req.url} ${body.length}`));
  });
  const server = pool.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    pool,
    port: (server.address() as AddressInfo).port,
    faulty,
    cards,
    errors,
    async close() {
      await pool.close();
      http.close();
      for (const f of faulty) await f.close();
      for (const k of cards) k.close();
    },
  };
}

export function get(port: number, ca: string, path: string, extra: https.RequestOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, ca, agent: false, servername: 'localhost', ...extra }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('client timeout')));
  });
}
