/**
 * Node's TLS client (OpenSSL) against the engine over an in-memory Duplex, with a hook that may
 * rewrite what the client sends before the engine sees it (tampering tests), the client's key log
 * and its errors. Engine records are pushed in order.
 */
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { createTlsServer } from '../../../src/tls/index.js';
import type { TlsOutput, TlsServerConfig, TlsServerConnection } from '../../../src/tls/api.js';

export interface Peer {
  readonly client: tls.TLSSocket;
  readonly server: TlsServerConnection;
  readonly outputs: TlsOutput[];
  /** What the client sent (before `tap`). */
  readonly fromClient: Buffer[];
  /** Every chunk the engine sent. */
  readonly toClient: Buffer[];
  /** Application data the engine received. */
  received(): Buffer;
  /** Client key log lines by label (CLIENT_HANDSHAKE_TRAFFIC_SECRET, ...). */
  readonly keylog: Map<string, Buffer>;
  /** The client's 'error', if any. */
  clientError: (Error & { code?: string }) | undefined;
  /** When false, client bytes are no longer fed to the engine (session export tests). */
  feed: boolean;
  push(records: Uint8Array): void;
  /** The first alert in the engine's outputs. */
  alert(): { description: number; sentByUs: boolean } | undefined;
}

export function now(): number {
  return Date.now();
}

export function waitFor(cond: () => boolean, turns = 20000): Promise<void> {
  return (async () => {
    for (let i = 0; i < turns && !cond(); i++) await new Promise((r) => setImmediate(r));
    assert.ok(cond(), 'condition not reached');
  })();
}

export function connectPeer(
  config: Partial<TlsServerConfig> & Pick<TlsServerConfig, 'selectIdentity'>,
  clientOpts: tls.ConnectionOptions,
  tap?: (chunk: Buffer, index: number) => Buffer,
): Peer {
  const server = createTlsServer({
    entropy: { random: (n) => new Uint8Array(randomBytes(n)), now },
    ...config,
  });
  const got: Buffer[] = [];
  let chunkIndex = 0;
  const p: Peer = {
    client: undefined as unknown as tls.TLSSocket,
    server,
    outputs: [],
    fromClient: [],
    toClient: [],
    received: () => Buffer.concat(got),
    keylog: new Map(),
    clientError: undefined,
    feed: true,
    push: (b) => {
      if (b.length === 0) return;
      p.toClient.push(Buffer.from(b));
      wire.push(Buffer.from(b));
    },
    alert: () => p.outputs.find((o) => o.alert)?.alert,
  };
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      p.fromClient.push(chunk);
      if (!p.feed) return cb();
      const data = tap ? tap(chunk, chunkIndex++) : chunk;
      const out = server.receive(new Uint8Array(data));
      p.outputs.push(out);
      p.push(out.records);
      for (const d of out.plaintext) got.push(Buffer.from(d));
      if (out.peerClosed || out.alert) wire.push(null);
      cb();
    },
  });
  const client = tls.connect({ socket: wire, minVersion: 'TLSv1.3', servername: 'localhost', ...clientOpts });
  client.on('keylog', (line: Buffer) => {
    const [label, , secret] = line.toString('latin1').trim().split(' ');
    if (label && secret) p.keylog.set(label, Buffer.from(secret, 'hex'));
  });
  client.on('error', (e) => (p.clientError = e));
  (p as { client: tls.TLSSocket }).client = client;
  return p;
}
