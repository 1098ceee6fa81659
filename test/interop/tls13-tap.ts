/**
 * A TLS 1.3 client that can see and forge records: Node's own TLS client (OpenSSL,
 * TLS_AES_128_GCM_SHA256) over a real TCP socket, through a relay that records every byte the
 * server sends and can rewrite what the client sends. With the client's key log it decrypts the
 * server's records (handshake and application keys) and seals records of its own, so a test can
 * assert which alert the server sent — close_notify, or a fatal one — and whether a FIN or a reset
 * followed. Key derivation (RFC 8446 §7.1, §7.3) and record protection (§5.2, §5.3) are written here
 * with node:crypto, independently of src/tls. test-only.
 */
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

/** HKDF-Expand-Label with SHA-256 (RFC 8446 §7.1), for key (16) and iv (12) lengths. */
function expandLabel(secret: Buffer, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([0]), Buffer.from([1])]);
  return createHmac('sha256', secret).update(info).digest().subarray(0, length);
}

/** One direction of TLS 1.3 record protection under one traffic secret (AES-128-GCM). */
export class Keys13 {
  private readonly key: Buffer;
  private readonly iv: Buffer;
  seq = 0;
  constructor(secretHex: string) {
    const secret = Buffer.from(secretHex, 'hex');
    this.key = expandLabel(secret, 'key', 16);
    this.iv = expandLabel(secret, 'iv', 12);
  }
  private nonce(seq: number): Buffer {
    const n = Buffer.from(this.iv);
    for (let i = 0; i < 8; i++) n[11 - i]! ^= Number((BigInt(seq) >> BigInt(8 * i)) & 0xffn);
    return n;
  }
  /** The content type and content of `record` at the next sequence number, or undefined (not under this key). */
  open(record: Buffer): { type: number; content: Buffer } | undefined {
    if (record[0] !== 23 || record.length < 5 + 17) return undefined;
    try {
      const d = createDecipheriv('aes-128-gcm', this.key, this.nonce(this.seq));
      d.setAAD(record.subarray(0, 5));
      d.setAuthTag(record.subarray(record.length - 16));
      const inner = Buffer.concat([d.update(record.subarray(5, record.length - 16)), d.final()]);
      let i = inner.length - 1;
      while (i >= 0 && inner[i] === 0) i--;
      this.seq++;
      return { type: inner[i]!, content: inner.subarray(0, i) };
    } catch {
      return undefined;
    }
  }
  seal(type: number, content: Uint8Array): Buffer {
    const len = content.length + 1 + 16;
    const hdr = Buffer.from([23, 3, 3, len >> 8, len & 0xff]);
    const c = createCipheriv('aes-128-gcm', this.key, this.nonce(this.seq++));
    c.setAAD(hdr);
    const body = Buffer.concat([c.update(Buffer.concat([content, Buffer.from([type])])), c.final(), c.getAuthTag()]);
    return Buffer.concat([hdr, body]);
  }
}

/** Splits a byte stream into whole TLS records (the rest stays in `pending`). */
class Records {
  pending = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.pending = Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    while (this.pending.length >= 5) {
      const n = 5 + this.pending.readUInt16BE(3);
      if (this.pending.length < n) break;
      out.push(this.pending.subarray(0, n));
      this.pending = this.pending.subarray(n);
    }
    return out;
  }
}

export interface ServerRecord {
  /** 'plain' (not encrypted), 'handshake' or 'application' (the key that opened it), 'opaque' (none did). */
  readonly key: 'plain' | 'handshake' | 'application' | 'opaque';
  readonly type: number;
  readonly content: Buffer;
}

export interface TapOptions {
  /** Rewrites each whole record the TLS client sends (after the key log has the secrets it needs). */
  readonly rewrite?: (record: Buffer, tap: Tls13Tap) => Buffer;
  readonly servername?: string;
  readonly ca?: string | Buffer;
}

export class Tls13Tap {
  readonly raw: net.Socket;
  readonly client: tls.TLSSocket;
  readonly keylog = new Map<string, string>();
  private readonly fromServer = new Records();
  private readonly fromClient = new Records();
  private readonly serverRecords: Buffer[] = [];
  /** Client application key for sealed records written by the test (after takeOver()). */
  private clientApp: Keys13 | undefined;
  private relay = true;
  /** The raw socket saw the server's FIN. */
  fin = false;
  /** The raw socket's error code (ECONNRESET, EPIPE), if any. */
  error: string | undefined;
  readonly closed: Promise<void>;

  private constructor(port: number, opts: TapOptions) {
    this.raw = net.connect(port, '127.0.0.1');
    this.raw.on('data', (d: Buffer) => {
      this.serverRecords.push(...this.fromServer.push(d));
      if (this.relay) wire.push(d);
    });
    this.raw.on('end', () => {
      this.fin = true;
      if (this.relay) wire.push(null);
    });
    this.raw.on('error', (e: NodeJS.ErrnoException) => (this.error ??= e.code ?? e.message));
    this.closed = new Promise((resolve) => this.raw.once('close', () => resolve()));
    const wire = new Duplex({
      read() {},
      write: (chunk: Buffer, _enc, cb) => {
        if (!this.relay) return cb();
        let out = chunk;
        if (opts.rewrite) out = Buffer.concat(this.fromClient.push(chunk).map((r) => opts.rewrite!(r, this)));
        if (out.length && !this.raw.destroyed) this.raw.write(out);
        cb();
      },
    });
    this.client = tls.connect({
      socket: wire,
      servername: opts.servername ?? 'localhost',
      minVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256',
      ...(opts.ca ? { ca: opts.ca } : { rejectUnauthorized: false }),
    });
    this.client.on('keylog', (line: Buffer) => {
      const [label, , secret] = line.toString('latin1').trim().split(' ');
      if (label && secret) this.keylog.set(label, secret);
    });
    this.client.on('error', () => undefined);
  }

  /** Connects; resolves once the TLS client completed its handshake. */
  static async connect(port: number, opts: TapOptions = {}): Promise<Tls13Tap> {
    const t = new Tls13Tap(port, opts);
    await Promise.race([
      once(t.client, 'secureConnect'),
      once(t.client, 'error').then(([e]) => {
        throw e;
      }),
    ]);
    return t;
  }

  /** The server's records so far, decrypted where the key log allows (from scratch on every call). */
  records(): readonly ServerRecord[] {
    const appSecret = this.keylog.get('SERVER_TRAFFIC_SECRET_0');
    const hsSecret = this.keylog.get('SERVER_HANDSHAKE_TRAFFIC_SECRET');
    const app = appSecret ? new Keys13(appSecret) : undefined;
    const hs = hsSecret ? new Keys13(hsSecret) : undefined;
    const out: ServerRecord[] = [];
    for (const r of this.serverRecords) {
      if (r[0] !== 23) {
        out.push({ key: 'plain', type: r[0]!, content: r.subarray(5) });
        continue;
      }
      // Handshake keys until the application key opens a record, then the application key only.
      const a = app && app.seq > 0 ? app.open(r) : undefined;
      if (a) {
        out.push({ key: 'application', ...a });
        continue;
      }
      const h = app && app.seq > 0 ? undefined : hs?.open(r);
      if (h) {
        out.push({ key: 'handshake', ...h });
        continue;
      }
      const first = app && app.seq === 0 ? app.open(r) : undefined;
      out.push(first ? { key: 'application', ...first } : { key: 'opaque', type: 23, content: r.subarray(5) });
    }
    return out;
  }

  /** The alerts the server sent so far, in order, as [level, description]. */
  alerts(): [number, number][] {
    return this.records().filter((r) => r.type === 21 && r.content.length === 2).map((r) => [r.content[0]!, r.content[1]!]);
  }

  /** Application data the server sent (decrypted), as text. */
  text(): string {
    return Buffer.concat(this.records().filter((r) => r.key === 'application' && r.type === 23).map((r) => r.content)).toString('latin1');
  }

  /** The client handshake key (TLS 1.3), for rewriting the client's Finished. */
  clientHandshakeKeys(): Keys13 {
    const s = this.keylog.get('CLIENT_HANDSHAKE_TRAFFIC_SECRET');
    if (!s) throw new Error('no CLIENT_HANDSHAKE_TRAFFIC_SECRET in the key log yet');
    return new Keys13(s);
  }

  /**
   * From now on the test speaks for the client: the TLS client gets nothing more and sends nothing
   * more; seal() makes records under the client's application key, from sequence 0 (so the TLS
   * client must not have sent application data).
   */
  takeOver(): void {
    this.relay = false;
    const s = this.keylog.get('CLIENT_TRAFFIC_SECRET_0');
    if (!s) throw new Error('no CLIENT_TRAFFIC_SECRET_0 in the key log');
    this.clientApp = new Keys13(s);
  }

  seal(type: number, content: Uint8Array): Buffer {
    if (!this.clientApp) throw new Error('takeOver() first');
    return this.clientApp.seal(type, content);
  }

  /** Polls `pred` (each turn of the event loop, up to `ms`) and returns its last value. */
  async until(pred: () => boolean, ms = 10_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!pred() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return pred();
  }

  destroy(): void {
    this.client.destroy();
    this.raw.destroy();
  }
}
