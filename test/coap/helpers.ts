/**
 * Test helpers: an in-memory Duplex pair and a minimal RFC 8323 client speaking raw frames; an
 * RFC 7252 messaging endpoint driven by datagrams in memory (UdpPeer).
 */
import { Duplex } from 'node:stream';
import { CoapUdpEndpoint, decodeTcp, decodeUdp, encodeTcp, encodeUdp, TcpFrameSplitter, type CoapMessage, type CoapOption, type CoapServer, type UdpMessagingOptions } from '../../src/coap/index.js';
import { csmMessage } from '../../src/coap/signals.js';

/** Two connected Duplexes (what one writes, the other reads); end/destroy propagate. */
export function duplexPair(): [Duplex, Duplex] {
  let a!: Duplex;
  let b!: Duplex;
  const make = (other: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        const o = other();
        if (!o.destroyed) o.push(Buffer.from(chunk));
        cb();
      },
      final(cb) {
        const o = other();
        if (!o.destroyed) o.push(null);
        cb();
      },
      destroy(err, cb) {
        const o = other();
        if (!o.destroyed) o.push(null);
        cb(err);
      },
    });
  a = make(() => b);
  b = make(() => a);
  return [a, b];
}

export class RawClient {
  readonly messages: CoapMessage[] = [];
  ended = false;
  private readonly splitter = new TcpFrameSplitter({ maxMessageSize: 16 * 1024 * 1024 });
  private waiters: (() => void)[] = [];
  constructor(readonly stream: Duplex) {
    stream.on('data', (d: Buffer) => {
      for (const f of this.splitter.push(d)) this.messages.push(decodeTcp(f, { maxMessageSize: 16 * 1024 * 1024 }));
      this.wake();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('close', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('error', () => undefined);
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  send(m: Partial<CoapMessage> & { code: number }): void {
    this.stream.write(encodeTcp({ token: new Uint8Array(0), options: [], payload: new Uint8Array(0), ...m }));
  }
  sendRaw(b: Uint8Array): void {
    this.stream.write(b);
  }
  csm(maxMessageSize?: number, bert = false): void {
    this.send(csmMessage({ ...(maxMessageSize !== undefined ? { maxMessageSize } : {}), blockWiseTransfer: bert }));
  }
  /** Waits for a message matching `pred` (searching from index `from`), removing it from the list. */
  async next(pred: (m: CoapMessage) => boolean = () => true, timeoutMs = 3000): Promise<CoapMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex(pred);
      if (i >= 0) return this.messages.splice(i, 1)[0]!;
      if (this.ended) throw new Error('stream ended while waiting for a message');
      if (Date.now() > deadline) throw new Error('timed out waiting for a message');
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
  async waitEnd(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the end');
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

export const tok = (...b: number[]): Uint8Array => Uint8Array.from(b);
export const opt = (number: number, value: Uint8Array | string | number): CoapOption => ({
  number,
  value:
    typeof value === 'string'
      ? new TextEncoder().encode(value)
      : typeof value === 'number'
        ? (() => {
            const out: number[] = [];
            for (let x = value; x > 0; x = Math.floor(x / 256)) out.unshift(x % 256);
            return Uint8Array.from(out);
          })()
        : value,
});
export const path = (p: string): CoapOption[] => p.split('/').filter(Boolean).map((s) => opt(11, s));
export const text = (m: CoapMessage): string => Buffer.from(m.payload).toString('utf8');
export const optVal = (m: CoapMessage, n: number): Uint8Array | undefined => m.options.find((o) => o.number === n)?.value;
export const optUint = (m: CoapMessage, n: number): number | undefined => {
  const v = optVal(m, n);
  if (!v) return undefined;
  let x = 0;
  for (const b of v) x = x * 256 + b;
  return x;
};

/** A client of one CoapUdpEndpoint, in memory: what it sends in, the datagrams it gets back (decoded). */
export class UdpPeer {
  readonly ep: CoapUdpEndpoint;
  readonly received: CoapMessage[] = [];
  private waiters: (() => void)[] = [];
  private mid = 0x100;
  constructor(server: CoapServer, opts: UdpMessagingOptions = {}) {
    this.ep = new CoapUdpEndpoint(
      server,
      (d) => {
        this.received.push(decodeUdp(d));
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      },
      opts,
    );
  }
  /** Sends a message (a new message ID unless given); returns its message ID. */
  send(m: Partial<CoapMessage> & { code: number; type: 'CON' | 'NON' | 'ACK' | 'RST' }): number {
    const messageId = m.messageId ?? this.mid++;
    this.ep.receive(encodeUdp({ token: new Uint8Array(0), options: [], payload: new Uint8Array(0), ...m, messageId }));
    return messageId;
  }
  /** Waits for a datagram matching `pred` (removing it from `received`). */
  async next(pred: (m: CoapMessage) => boolean = () => true, timeoutMs = 3000): Promise<CoapMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.received.findIndex(pred);
      if (i >= 0) return this.received.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`timed out waiting for a datagram (got ${this.received.length} others)`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

/** Polls `cond` until it holds (a generous deadline; no fixed sleep decides an outcome). */
export async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 5));
  }
}
