/**
 * Node's TLS client (OpenSSL) against the engine over an in-memory Duplex (no sockets). Unlike the
 * harness in node-interop.test.ts, engine records from receive() are pushed BEFORE any echo made with
 * encrypt() in the same turn (receive() may end with a KeyUpdate that changes the write key).
 */
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { createTlsServer } from '../../../src/tls/index.js';
import type { TlsIdentity, TlsOutput, TlsServerConfig, TlsServerConnection } from '../../../src/tls/api.js';

export interface Harness {
  readonly client: tls.TLSSocket;
  readonly server: TlsServerConnection;
  readonly outputs: TlsOutput[];
  received(): Buffer;
  readonly fromClient: Buffer[];
  /** Every chunk of bytes the engine produced (receive() records and toClient()), in order. */
  readonly toClientLog: Buffer[];
  echo: boolean;
  toClient(records: Uint8Array): void;
  readonly ended: Promise<void>;
}

/** Waits (event-loop turns, bounded) until cond() holds. */
export async function waitFor(cond: () => boolean, turns = 5000): Promise<void> {
  for (let i = 0; i < turns && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), 'condition not reached');
}

export function connectNode(
  identity: TlsIdentity,
  caPem: string,
  configExtra: Partial<TlsServerConfig>,
  clientOpts: tls.ConnectionOptions,
): Harness {
  const server = createTlsServer({
    entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() },
    selectIdentity: (name) => (name === undefined || name === 'localhost' ? identity : undefined),
    ...configExtra,
  });
  const outputs: TlsOutput[] = [];
  const got: Buffer[] = [];
  const fromClient: Buffer[] = [];
  const toClientLog: Buffer[] = [];
  let endResolve!: () => void;
  const ended = new Promise<void>((r) => (endResolve = r));
  const send = (b: Uint8Array) => {
    if (b.length === 0) return;
    toClientLog.push(Buffer.from(b));
    wire.push(Buffer.from(b));
  };
  const h: Harness = {
    client: undefined as unknown as tls.TLSSocket,
    server,
    outputs,
    received: () => Buffer.concat(got),
    fromClient,
    toClientLog,
    echo: false,
    ended,
    toClient: send,
  };
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      fromClient.push(chunk);
      const out = server.receive(new Uint8Array(chunk));
      outputs.push(out);
      send(out.records);
      for (const p of out.plaintext) {
        got.push(Buffer.from(p));
        if (h.echo && server.state === 'connected') send(server.encrypt(23, p));
      }
      if (out.peerClosed || out.alert) {
        wire.push(null);
        endResolve();
      }
      cb();
    },
    final(cb) {
      endResolve();
      cb();
    },
  });
  (h as { client: tls.TLSSocket }).client = tls.connect({
    socket: wire,
    ca: caPem,
    servername: 'localhost',
    minVersion: 'TLSv1.3',
    ...clientOpts,
  });
  return h;
}

/** Handshake messages (type, body) of the plaintext handshake records in `chunk` (before encryption starts). */
export function plaintextHandshakeMessages(chunks: Buffer[]): { type: number; body: Buffer }[] {
  const out: { type: number; body: Buffer }[] = [];
  for (const c of chunks) {
    for (let o = 0; o + 5 <= c.length; ) {
      const len = c.readUInt16BE(o + 3);
      if (c[o] === 22) {
        const frag = c.subarray(o + 5, o + 5 + len);
        for (let p = 0; p + 4 <= frag.length; ) {
          const l = (frag[p + 1]! << 16) | (frag[p + 2]! << 8) | frag[p + 3]!;
          out.push({ type: frag[p]!, body: frag.subarray(p + 4, p + 4 + l) });
          p += 4 + l;
        }
      }
      o += 5 + len;
    }
  }
  return out;
}
