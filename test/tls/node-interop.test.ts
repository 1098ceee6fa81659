/**
 * Interop: Node's own TLS client (OpenSSL) against the engine, over an in-memory Duplex (no sockets).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createTlsServer } from '../../src/tls/index.js';
import type { TlsOutput, TlsServerConfig, TlsServerConnection } from '../../src/tls/api.js';
import { makePki, type TestPki } from './helpers/pki.js';

let pki: TestPki;

/** Waits (event-loop turns, bounded) until cond() holds. */
async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), 'condition not reached');
}
before(async () => {
  pki = await makePki();
});

interface Harness {
  readonly client: tls.TLSSocket;
  readonly server: TlsServerConnection;
  /** Every TlsOutput the engine produced. */
  readonly outputs: TlsOutput[];
  /** Application data the engine received, concatenated on demand. */
  received(): Buffer;
  /** Handshake-record bytes the client sent (to inspect ClientHello). */
  readonly fromClient: Buffer[];
  /** Server-side echo of received data back to the client. */
  echo: boolean;
  /** Pushes engine-made records to the client. */
  toClient(records: Uint8Array): void;
  ended: Promise<void>;
}

function connect(configExtra: Partial<TlsServerConfig>, clientOpts: tls.ConnectionOptions): Harness {
  const names: (string | undefined)[] = [];
  const server = createTlsServer({
    entropy: { random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() },
    selectIdentity: (name) => {
      names.push(name);
      return name === undefined || name === 'localhost' ? pki.identity : undefined;
    },
    alpnProtocols: ['h2', 'http/1.1'],
    ...configExtra,
  });
  const outputs: TlsOutput[] = [];
  const got: Buffer[] = [];
  const fromClient: Buffer[] = [];
  let endResolve!: () => void;
  const ended = new Promise<void>((r) => (endResolve = r));
  const h: Harness = {
    client: undefined as unknown as tls.TLSSocket,
    server,
    outputs,
    received: () => Buffer.concat(got),
    fromClient,
    echo: false,
    ended,
    toClient: (records) => wire.push(Buffer.from(records)),
  };
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      fromClient.push(chunk);
      const out = server.receive(new Uint8Array(chunk));
      outputs.push(out);
      for (const p of out.plaintext) {
        got.push(Buffer.from(p));
        if (h.echo) wire.push(Buffer.from(server.encrypt(23, p)));
      }
      if (out.records.length) wire.push(Buffer.from(out.records));
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
    ca: pki.caPem,
    servername: 'localhost',
    ALPNProtocols: ['http/1.1'],
    minVersion: 'TLSv1.3',
    ecdhCurve: 'X25519',
    ...clientOpts,
  });
  return h;
}

test('Node tls client: handshake, ALPN, echo both ways incl. 100 KiB, exporter, close_notify', async () => {
  const h = connect({}, {});
  await once(h.client, 'secureConnect');
  assert.equal(h.client.authorized, true, String(h.client.authorizationError));
  await waitFor(() => h.server.state === 'connected');
  assert.equal(h.client.alpnProtocol, 'http/1.1');
  assert.equal(h.client.getProtocol(), 'TLSv1.3');
  assert.equal(h.client.getCipher().standardName, 'TLS_AES_128_GCM_SHA256');
  assert.equal(h.server.state, 'connected');
  assert.deepEqual(h.server.info, {
    version: 0x0304,
    cipherSuite: 0x1301,
    group: 0x001d,
    signatureScheme: 0x0403,
    serverName: 'localhost',
    alpn: 'http/1.1',
  });
  assert.ok(h.outputs.some((o) => o.handshakeComplete));

  // Node (OpenSSL) sends a 32-byte legacy_session_id: our flight must contain the CCS record.
  const ch = h.fromClient[0]!;
  assert.equal(ch[5], 1, 'first client record is a ClientHello');
  assert.equal(ch[5 + 4 + 2 + 32], 32, 'OpenSSL sends a 32-byte session id');
  const flight = h.outputs[0]!.records;
  assert.equal(flight[0], 22, 'ServerHello record first');
  const shLen = (flight[3]! << 8) | flight[4]!;
  assert.deepEqual([...flight.subarray(5 + shLen, 5 + shLen + 6)], [20, 3, 3, 0, 1, 1], 'CCS right after ServerHello');
  assert.equal(flight[5 + shLen + 6], 23, 'then the protected flight');
  // ServerHello echoes the 32-byte session id.
  assert.ok(Buffer.from(flight.subarray(5 + 4 + 2 + 32 + 1, 5 + 4 + 2 + 32 + 1 + 32)).equals(ch.subarray(5 + 4 + 2 + 32 + 1, 5 + 4 + 2 + 32 + 1 + 32)));

  // Exporter agrees with OpenSSL's.
  const ctx = Buffer.from('ctx');
  assert.equal(
    Buffer.from(h.server.exportKeyingMaterial('EXPORTER-setls', ctx, 48)).toString('hex'),
    h.client.exportKeyingMaterial(48, 'EXPORTER-setls', ctx).toString('hex'),
  );

  // server → client: a 100 KiB payload split across records.
  const big = randomBytes(100 * 1024);
  const chunks: Buffer[] = [];
  h.client.on('data', (d: Buffer) => chunks.push(d));
  const records = h.server.encrypt(23, big);
  assert.ok(records.length > big.length + 6 * 22, 'several records');
  h.toClient(records);
  while (Buffer.concat(chunks).length < big.length) await once(h.client, 'data');
  assert.ok(Buffer.concat(chunks).equals(big));

  // client → server, echoed back
  h.echo = true;
  chunks.length = 0;
  const up = randomBytes(100 * 1024);
  h.client.write(up);
  while (Buffer.concat(chunks).length < up.length) await once(h.client, 'data');
  assert.ok(h.received().equals(up));
  assert.ok(Buffer.concat(chunks).equals(up));

  // close_notify from the client → engine answers with its own and reports peerClosed.
  h.client.end();
  await h.ended;
  const last = h.outputs.at(-1)!;
  assert.equal(last.peerClosed, true);
  assert.equal(h.server.state, 'closed');
  assert.equal(last.records.length, 5 + 2 + 1 + 16, 'one encrypted close_notify');
});

test('Node tls client without SNI still completes (selectIdentity(undefined))', async () => {
  const h = connect({}, { servername: '' });
  await once(h.client, 'secureConnect');
  assert.equal(h.client.authorized, true, String(h.client.authorizationError));
  assert.equal(h.server.info?.serverName, undefined);
  h.client.end();
  await h.ended;
});

test('Node tls client: unknown SNI → unrecognized_name, client sees the alert', async () => {
  const h = connect({}, { servername: 'other.example' });
  const [err] = (await once(h.client, 'error')) as [Error & { code?: string }];
  assert.match(String(err.message) + String(err.code), /unrecognized.name|UNRECOGNIZED_NAME/i);
  assert.equal(h.server.state, 'failed');
  assert.equal(h.outputs.at(-1)!.alert?.description, 112);
});

test('Node tls client: no ALPN overlap → no_application_protocol', async () => {
  const h = connect({ alpnProtocols: ['h2'] }, {});
  const [err] = (await once(h.client, 'error')) as [Error & { code?: string }];
  assert.match(String(err.message) + String(err.code), /no.application.protocol|NO_APPLICATION_PROTOCOL/i);
  assert.equal(h.outputs.at(-1)!.alert?.description, 120);
});

test('Node tls client limited to TLS 1.2, server limited to TLS 1.3 → protocol_version alert', async () => {
  const h = connect({ versions: [0x0304] }, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ecdhCurve: 'X25519' });
  const [err] = (await once(h.client, 'error')) as [Error & { code?: string }];
  assert.match(String(err.message) + String(err.code), /protocol.version|PROTOCOL_VERSION/i);
  assert.equal(h.server.state, 'failed');
  const out = h.outputs.at(-1)!;
  assert.deepEqual(out.alert, { description: 70, sentByUs: true });
  assert.deepEqual([...out.records], [21, 3, 3, 0, 2, 2, 70], 'plaintext fatal protocol_version alert');
});
