/**
 * A lossy UDP relay on loopback for DTLS/CoAP tests: client ↔ relay ↔ server, with a policy per
 * datagram that may drop it, duplicate it or hold it back until the next one passes (reordering).
 */
import { createSocket, type Socket } from 'node:dgram';

export type Verdict = 'pass' | 'drop' | 'dup' | 'hold';
export type Policy = (dir: 'up' | 'down', index: number, datagram: Buffer) => Verdict;

export interface Relay {
  readonly port: number;
  /** Datagrams seen per direction (before the policy), and what was done. */
  readonly log: { dir: 'up' | 'down'; index: number; verdict: Verdict; datagram: Buffer }[];
  /** Sends a datagram to the server as if the client had sent it (replays, garbage). */
  inject(d: Uint8Array): void;
  close(): Promise<void>;
}

export async function startRelay(serverPort: number, policy: Policy): Promise<Relay> {
  const front: Socket = createSocket('udp4');
  const back: Socket = createSocket('udp4');
  let client: { address: string; port: number } | undefined;
  const counts = { up: 0, down: 0 };
  const held: Record<'up' | 'down', Buffer | undefined> = { up: undefined, down: undefined };
  const log: Relay['log'] = [];
  const out = (dir: 'up' | 'down', d: Buffer): void => {
    if (dir === 'up') back.send(d, serverPort, '127.0.0.1');
    else if (client) front.send(d, client.port, client.address);
  };
  const handle = (dir: 'up' | 'down', d: Buffer): void => {
    const index = counts[dir]++;
    const verdict = policy(dir, index, d);
    log.push({ dir, index, verdict, datagram: d });
    if (verdict === 'drop') return;
    if (verdict === 'hold' && !held[dir]) {
      held[dir] = d;
      return;
    }
    out(dir, d);
    if (verdict === 'dup') out(dir, d);
    const h = held[dir];
    if (h) {
      held[dir] = undefined;
      out(dir, h); // the held one now arrives after this one
    }
  };
  front.on('message', (d, r) => {
    client = { address: r.address, port: r.port };
    handle('up', d);
  });
  back.on('message', (d) => handle('down', d));
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => back.bind(0, '127.0.0.1', () => r()));
  return {
    port: front.address().port,
    log,
    inject: (d) => back.send(d, serverPort, '127.0.0.1'),
    close: async () => {
      await new Promise<void>((r) => front.close(() => r()));
      await new Promise<void>((r) => back.close(() => r()));
    },
  };
}
