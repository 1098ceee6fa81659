/**
 * A TCP client speaking the fake card's toy TLS (see fake-card.ts), to test the tandem's socket
 * handling without real TLS. test-only.
 */
import net from 'node:net';
import { once } from 'node:events';
import { RecordFramer } from '../../src/tls/record/framing.js';
import { record, toyOpen, toySeal } from './fake-card.js';

export class FakeClient {
  readonly records: Uint8Array[] = [];
  ended = false;
  closed = false;
  private framer = new RecordFramer();
  private wake: (() => void) | undefined;
  raw: Buffer[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.raw.push(d);
      try {
        this.records.push(...this.framer.push(d));
      } catch {
        /* garbage from the server: kept in raw */
      }
      this.wake?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<FakeClient> {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    return new FakeClient(s);
  }

  /** Waits until `pred` holds (or the connection closes), up to `ms` (a generous bound on a hang). */
  async until(pred: () => boolean, ms = 30_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (this.closed || Date.now() > deadline) { const v = pred(); if (process.env.DBG) console.log("until-exit", this.closed, v, this.records.map((r) => Buffer.from(r).toString("hex"))); return v; }
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 20);
      });
    }
    return true;
  }

  write(b: Uint8Array): void {
    this.socket.write(b);
  }

  private helloSent = false;

  /** The (toy) ClientHello alone: a complete one, so the tandem queues this client for the card. */
  sendHello(): void {
    if (this.helloSent) return;
    this.helloSent = true;
    this.write(record(22, Uint8Array.of(1, 0, 0, 4, 3, 3, 0, 0)));
  }

  /** ClientHello (unless sendHello() sent it), the server flight (flightSize bytes), then CCS + Finished. */
  async handshake(flightSize: number): Promise<void> {
    this.sendHello();
    const ok = await this.until(() => this.records.reduce((a, r) => a + r.length, 0) >= flightSize);
    if (!ok) throw new Error(`no server flight (closed=${this.closed}, got ${this.records.length} records)`);
    this.records.splice(0);
    this.write(record(20, Uint8Array.of(1)));
    this.write(record(22, Uint8Array.of(20, 0, 0, 32, ...new Uint8Array(32))));
  }

  send(data: Uint8Array | string): void {
    this.write(toySeal(23, typeof data === 'string' ? Buffer.from(data) : data));
  }

  closeNotify(): void {
    this.write(toySeal(21, Uint8Array.of(1, 0)));
  }

  /** Plaintext received so far (application data records), and whether close_notify came. */
  opened(): { text: Buffer; closeNotify: boolean; alerts: number[] } {
    const parts: Buffer[] = [];
    let closeNotify = false;
    const alerts: number[] = [];
    for (const r of this.records) {
      if (r[0] === 21) {
        alerts.push(r[6]!);
        continue;
      }
      const o = toyOpen(r);
      if (o.type === 23) parts.push(Buffer.from(o.plaintext));
      else if (o.type === 21 && o.plaintext[1] === 0) closeNotify = true;
      else if (o.type === 21) alerts.push(o.plaintext[1]!);
    }
    return { text: Buffer.concat(parts), closeNotify, alerts };
  }

  destroy(): void {
    this.socket.destroy();
  }
}
