/**
 * A raw TCP connection to a setls server for the negative-conformance tests: hand-built bytes out,
 * whole TLS records in (split by the test itself, independent of src/tls/record/framing.ts), EOF
 * seen as `null`. Every wait has a deadline; nothing here sleeps.
 * imports node:net only.
 */
import net from 'node:net';

/** Deadline of one wait for the server (generous: the machine is shared). */
export const WAIT_MS = 20_000;

export interface Alert {
  readonly level: number;
  readonly description: number;
}

export class RawConn {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', (e) => {
      this.error = e;
      this.ended = true;
      this.notify();
    });
  }

  /** Connects; with `t`, the socket is closed when the test ends (a failed test never blocks the next). */
  static async open(port: number, t?: { after(fn: () => void): void }): Promise<RawConn> {
    const c = await RawConn.connect(port);
    t?.after(() => c.close());
    return c;
  }

  private static connect(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const t = setTimeout(() => s.destroy(new Error('connect: deadline')), WAIT_MS);
      s.once('connect', () => {
        clearTimeout(t);
        s.setNoDelay(true);
        resolve(new RawConn(s));
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  send(...chunks: Uint8Array[]): void {
    this.socket.write(Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.length))));
  }

  /** Whether the server closed (FIN or reset) and everything it sent was read. */
  get closed(): boolean {
    return this.ended && this.buf.length === 0;
  }

  /** The next whole record (header included), or null when the server closed first. */
  async record(timeoutMs = WAIT_MS): Promise<Uint8Array | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 5) {
        const len = this.buf.readUInt16BE(3);
        if (this.buf.length >= 5 + len) {
          const r = new Uint8Array(this.buf.subarray(0, 5 + len));
          this.buf = this.buf.subarray(5 + len);
          return r;
        }
      }
      if (this.ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no record from the server within ${timeoutMs} ms (the server neither answered nor closed)`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Waits until the server closed the connection (its remaining records are returned). */
  async drain(timeoutMs = WAIT_MS): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (let r = await this.record(timeoutMs); r; r = await this.record(timeoutMs)) out.push(r);
    return out;
  }

  /** The socket error that ended the connection, if any (e.g. ECONNRESET). */
  get socketError(): Error | undefined {
    return this.error;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A plaintext record. */
export function record(type: number, content: Uint8Array, version = 0x0303): Uint8Array {
  const r = new Uint8Array(5 + content.length);
  r.set([type, version >> 8, version & 0xff, content.length >> 8, content.length & 0xff]);
  r.set(content, 5);
  return r;
}

/** A plaintext alert record's alert (throws when the record is not one). */
export function plainAlert(rec: Uint8Array | null): Alert {
  if (rec === null) throw new Error('the server closed the connection without an alert');
  if (rec[0] !== 21 || rec.length !== 7) throw new Error(`expected a plaintext alert record, got type ${rec[0]} of ${rec.length - 5} bytes`);
  return { level: rec[5]!, description: rec[6]! };
}

/** Alert descriptions the tests expect (RFC 8446 §6, RFC 7507). */
export const A = {
  unexpectedMessage: 10,
  badRecordMac: 20,
  recordOverflow: 22,
  handshakeFailure: 40,
  illegalParameter: 47,
  decodeError: 50,
  protocolVersion: 70,
  inappropriateFallback: 86,
} as const;

export const FATAL = 2;
