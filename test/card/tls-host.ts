/**
 * The host role for end-to-end tests: Node's TLS client over an in-memory Duplex, and a driver
 * that shuttles whole records between it and the card as EAP-TLS packets inside APDUs.
 */
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { concat, parseTlvs } from '../../src/bytes/index.js';
import { EapTlsFlag, parseEap, parseEapTls } from '../../src/eap/index.js';
import { RecordFramer } from '../../src/tls/record/framing.js';
import type { EmulatedCard } from '../../src/card/index.js';
import { a0, eapAck, eapResponse, xcv } from './helpers.js';
import type { ResponseApdu } from '../../src/apdu/index.js';

export class ClientPipe {
  private readonly framer = new RecordFramer();
  private readonly queue: Uint8Array[] = [];
  private wake: (() => void) | undefined;
  readonly socket: Duplex;
  ended = false;

  constructor() {
    this.socket = new Duplex({
      read() {},
      write: (chunk: Buffer, _enc, cb) => {
        for (const r of this.framer.push(new Uint8Array(chunk))) this.queue.push(r);
        this.wake?.();
        cb();
      },
      final: (cb) => {
        this.ended = true;
        this.wake?.();
        cb();
      },
    });
  }

  async nextRecord(timeoutMs = 5000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (Date.now() > deadline) throw new Error('timeout waiting for a client record');
      await new Promise<void>((res) => {
        this.wake = res;
        setTimeout(res, 50);
      });
    }
    return this.queue.shift()!;
  }

  deliver(bytes: Uint8Array): void {
    if (bytes.length) this.socket.push(Buffer.from(bytes));
  }
}

export function connectClient(pipe: ClientPipe, caPem: string, extra: tls.ConnectionOptions = {}): tls.TLSSocket {
  return tls.connect({ socket: pipe.socket, ca: caPem, servername: 'localhost', ALPNProtocols: ['http/1.1'], minVersion: 'TLSv1.3', ...extra });
}

export interface HandshakeResult {
  readonly outcome: 'success' | 'failure';
  /** Identifier of the card's last packet. */
  readonly lastId: number;
  /** Every response APDU exchange's final result. */
  readonly responses: ResponseApdu[];
  readonly sawFailureSw: boolean;
  /** The card delivered its last records with SW 9001 (TLS 1.2 CCS + Finished, TLS 1.3 tickets). */
  readonly sawDoneSw: boolean;
  /** FOLD: the card's last records came with the EAP-Success in one answer (no ACK exchange). */
  readonly folded?: boolean;
}

export async function sendEap(card: EmulatedCard, eap: Uint8Array, p2 = 0, extended = false, p1 = 0): Promise<ResponseApdu> {
  return xcv(card, a0(0x80, p1, p2, eap), extended);
}

/**
 * Drives one handshake: reads the client's records, sends each non-CCS record (with the CCS
 * records before it) to the card, delivers the card's records (ACKing fragments) to the client.
 */
export async function driveHandshake(
  card: EmulatedCard,
  pipe: ClientPipe,
  opts: { firstId?: number; time?: number; extended?: boolean; fragment?: number; start?: boolean; info?: boolean; fold?: boolean } = {},
): Promise<HandshakeResult> {
  let id = opts.firstId ?? 0x42;
  let first = true;
  // PROCESS-EAP P1 flags: START (02) on the first Response only, INFO (04) and FOLD (10) on every handshake Response.
  const p1 = (): number => (first && opts.start ? 0x02 : 0) | (opts.info ? 0x04 : 0) | (opts.fold ? 0x10 : 0);
  const responses: ResponseApdu[] = [];
  let ccs: Uint8Array[] = [];
  let sawFailureSw = false;
  let sawDoneSw = false;
  for (;;) {
    const rec = await pipe.nextRecord();
    if (rec[0] === 20) {
      ccs.push(rec);
      continue;
    }
    const msg = concat(...ccs, rec);
    ccs = [];
    const time = first ? { time: opts.time ?? Math.floor(Date.now() / 1000) } : {};
    let r: ResponseApdu;
    if (opts.fragment && msg.length > opts.fragment) {
      // host-side EAP-TLS fragmentation: L|M first, M on all but the last; the card ACKs each
      let o = 0;
      for (;;) {
        const part = msg.subarray(o, o + opts.fragment);
        const last = o + opts.fragment >= msg.length;
        const flags = (o === 0 ? EapTlsFlag.length : 0) | (last ? 0 : EapTlsFlag.more);
        r = await sendEap(card, eapResponse(id, part, { flags, tlsLength: msg.length, ...(o === 0 ? time : {}) }), 0, opts.extended, p1());
        first = false;
        o += opts.fragment;
        if (last) break;
        if (r.sw !== 0x9000) throw new Error(`fragment answered ${r.sw.toString(16)}`);
        const ack = parseEapTls(r.data);
        if (ack.code !== 1 || ack.flags !== 0 || ack.data.length !== 0) throw new Error('the card did not ACK a fragment');
        id = ack.id;
      }
    } else {
      r = await sendEap(card, eapResponse(id, msg, time), 0, opts.extended, p1());
    }
    first = false;
    const collected: Uint8Array[] = [];
    for (;;) {
      responses.push(r);
      if (r.sw === 0x7001) sawFailureSw = true;
      else if (r.sw === 0x9001) sawDoneSw = true;
      else if (r.sw !== 0x9000) throw new Error(`PROCESS-EAP answered ${r.sw.toString(16)}`);
      const eap = parseEap(r.data);
      if (eap.code === 3) return { outcome: 'success', lastId: eap.id, responses, sawFailureSw, sawDoneSw };
      if (eap.code === 4) return { outcome: 'failure', lastId: eap.id, responses, sawFailureSw, sawDoneSw };
      const p = parseEapTls(r.data);
      id = p.id;
      collected.push(p.data);
      if (opts.fold && r.sw === 0x9000 && eap.trailing[0] === 3) {
        // FOLD: the server's last records, then the EAP-Success (Identifier + 1) in the same answer
        pipe.deliver(concat(...collected));
        return { outcome: 'success', lastId: eap.trailing[1]!, responses, sawFailureSw, sawDoneSw, folded: true };
      }
      if (p.flags & EapTlsFlag.more || r.sw === 0x7001 || r.sw === 0x9001) {
        // 7001: the failure alert, 9001: the server's last records (TLS 1.2 CCS + Finished, TLS 1.3
        // tickets): deliver them, then ACK (→ EAP-Failure / EAP-Success)
        if (r.sw === 0x7001 || r.sw === 0x9001) pipe.deliver(concat(...collected.splice(0)));
        r = await sendEap(card, eapAck(id), 0, opts.extended, p1());
        continue;
      }
      break;
    }
    pipe.deliver(concat(...collected));
  }
}

export function once<T>(emitter: NodeJS.EventEmitter, event: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), timeoutMs);
    emitter.once(event, (v: T) => {
      clearTimeout(t);
      resolve(v);
    });
    emitter.once('error', (e: Error) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

export interface ClientSession {
  readonly pipe: ClientPipe;
  readonly client: tls.TLSSocket;
  readonly hs: HandshakeResult;
  /** The client's first error, read live (it may arrive after the card's side is done; wait for it). */
  readonly error: (Error & { code?: string }) | undefined;
}

/**
 * RESET-STATE, then one handshake between Node's client (options `extra`) and the card. Resolves
 * when both sides are done, successfully or not (the client's error is returned, not thrown).
 */
export async function handshakeWith(
  card: EmulatedCard,
  caPem: string,
  extra: tls.ConnectionOptions = {},
  opts: { firstId?: number; time?: number; onClient?: (client: tls.TLSSocket) => void } = {},
): Promise<ClientSession> {
  const reset = await xcv(card, a0(0x19, 0x10, 0x00, new Uint8Array(0), 0));
  if (reset.sw !== 0x9000) throw new Error(`RESET-STATE ${reset.sw.toString(16)}`);
  const pipe = new ClientPipe();
  const client = connectClient(pipe, caPem, extra);
  opts.onClient?.(client);
  let error: (Error & { code?: string }) | undefined;
  client.on('error', (e: Error) => {
    error ??= e;
  });
  const connected = new Promise<void>((resolve) => {
    client.once('secureConnect', () => resolve());
    client.once('error', () => resolve());
    client.once('close', () => resolve());
  });
  const hs = await driveHandshake(card, pipe, opts);
  if (hs.outcome === 'success') await connected;
  else await Promise.race([connected, new Promise((r) => setTimeout(r, 2000))]);
  return {
    pipe,
    client,
    hs,
    get error() {
      return error;
    },
  };
}

/** GET-EXPORTED-PARAMETER session info as tag → value. */
export async function sessionInfo(card: EmulatedCard): Promise<Map<number, Uint8Array>> {
  const r = await xcv(card, a0(0x86, 0, 0, Uint8Array.of(0x10)));
  if (r.sw !== 0x9000) throw new Error(`GET-EXPORTED-PARAMETER ${r.sw.toString(16)}`);
  return new Map(parseTlvs(r.data).map((t) => [t.tag, t.value]));
}
