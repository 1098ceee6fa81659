/**
 * A scripted fake card that follows docs/apdu-protocol.md at the APDU/EAP level, with a toy "TLS"
 * instead of real crypto, so the host can be tested without src/card:
 *
 *   ClientHello  = handshake record (type 22); payload ending in EE = "continued in the next record";
 *                  payload starting with BA, or a ClientHello (type 1) whose body starts with BA, = bad
 *                  (SW 7001 + alert 40; with P1 INFO the alert TLV 2C 02 02 28
 *                  follows the EAP packet; `encryptedAlert`: the alert record is toy-encrypted, as TLS 1.3's after ServerHello)
 *   server flight = `flightSize` bytes of handshake records
 *   client Finished = handshake record after the flight (CCS alone → "need more"); BA = bad Finished
 *   application records: type 23, payload = (plaintext ‖ innerType) XOR 5A
 *
 * test-only; imports apdu/, bytes/ and eap/.
 */
import { encodeResponse, parseCommand, PendingResponse, SW, type CommandApdu } from '../../src/apdu/index.js';
import { concat, encodeTlvs } from '../../src/bytes/index.js';
import { EapCode, EapTlsFlag, EapTlsReassembler, encodeEap, encodeEapTls, fragmentTls, isEapTlsAck, parseEapTls } from '../../src/eap/index.js';

export interface FakeCardOptions {
  pin?: string;
  /** Bytes of handshake records in the server flight. Default 3000. */
  flightSize?: number;
  /** Largest TLS data per card EAP fragment. Default 16384. */
  cardFragment?: number;
  /** Answer long responses with 9Fxx instead of 61xx. */
  use9F?: boolean;
  /** Answer the next command that expects data with 6Cxx first (once per INS listed). */
  wrongLeFor?: number[];
  /** Longest response block even when the host asks more. */
  maxBlock?: number;
  /** The handshake failure alert is a toy-encrypted record (outer type 23), not a plaintext one. */
  encryptedAlert?: boolean;
}

const enc = new TextEncoder();

export function record(type: number, payload: Uint8Array): Uint8Array {
  const r = new Uint8Array(5 + payload.length);
  r.set([type, 3, 3, payload.length >> 8, payload.length & 0xff]);
  r.set(payload, 5);
  return r;
}

export function splitRecords(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o + 5 <= b.length) {
    const n = (b[o + 3]! << 8) | b[o + 4]!;
    out.push(b.slice(o, o + 5 + n));
    o += 5 + n;
  }
  return out;
}

/** Toy record protection shared by the fake card and the fake client. */
export function toySeal(innerType: number, plaintext: Uint8Array): Uint8Array {
  const p = new Uint8Array(plaintext.length + 1);
  p.set(plaintext);
  p[plaintext.length] = innerType;
  for (let i = 0; i < p.length; i++) p[i]! ^= 0x5a;
  return record(23, p);
}

export function toyOpen(rec: Uint8Array): { type: number; plaintext: Uint8Array } {
  const p = new Uint8Array(rec.subarray(5)); // a copy even when rec is a Buffer (Buffer#slice is a view)
  for (let i = 0; i < p.length; i++) p[i]! ^= 0x5a;
  return { type: p[p.length - 1]!, plaintext: p.subarray(0, p.length - 1) };
}

export function serverFlight(size: number): Uint8Array {
  const recs: Uint8Array[] = [];
  let left = size;
  let n = 0;
  while (left > 0) {
    const len = Math.min(left - 5 > 0 ? left - 5 : 1, 16000);
    const p = new Uint8Array(len).map((_, i) => (i + n) & 0xff);
    recs.push(record(22, p));
    left -= 5 + len;
    n++;
  }
  return concat(...recs);
}

type TlsPhase = 'idle' | 'wantHello' | 'wantFinished' | 'connected' | 'failed' | 'closed';

export class FakeCard {
  readonly commands: CommandApdu[] = [];
  /** EAP Responses the card received (whole packets, after command chaining). */
  readonly eapIn: Uint8Array[] = [];
  times: number[] = [];
  verified = false;
  tries = 3;
  phase: TlsPhase = 'wantHello';
  private readonly o: Required<Omit<FakeCardOptions, 'wrongLeFor'>> & { wrongLeFor: number[] };
  private pending: PendingResponse | undefined;
  private chain: { cla: number; ins: number; p2: number; parts: Uint8Array[] } | undefined;
  private lastId: number | undefined;
  private readonly reasm = new EapTlsReassembler(1 << 20);
  private outFrags: Uint8Array[] = [];
  private partialHello = false;
  private failing = false;
  private flight: Uint8Array;

  constructor(opts: FakeCardOptions = {}) {
    this.o = {
      pin: opts.pin ?? '1234',
      flightSize: opts.flightSize ?? 3000,
      cardFragment: opts.cardFragment ?? 16384,
      use9F: opts.use9F ?? false,
      wrongLeFor: [...(opts.wrongLeFor ?? [])],
      maxBlock: opts.maxBlock ?? 65536,
      encryptedAlert: opts.encryptedAlert ?? false,
    };
    this.flight = serverFlight(this.o.flightSize);
  }

  get flightBytes(): Uint8Array {
    return this.flight;
  }

  readonly process = (apdu: Uint8Array): Uint8Array => {
    let cmd: CommandApdu;
    try {
      cmd = parseCommand(apdu);
    } catch {
      return encodeResponse(new Uint8Array(0), SW.wrongLength);
    }
    this.commands.push(cmd);
    if (cmd.ins === 0xc0 || cmd.ins === 0x12) {
      if (!this.pending) return encodeResponse(new Uint8Array(0), 0x6985);
      const { data, sw } = this.pending.take(Math.min(cmd.ne || 256, this.o.maxBlock));
      if (this.pending.remaining === 0) this.pending = undefined;
      return encodeResponse(data, this.o.use9F && sw >> 8 === 0x61 ? 0x9f00 | (sw & 0xff) : sw);
    }
    this.pending = undefined;
    // command chaining (P1 bit 0) for the chainable commands
    if (cmd.ins === 0x80 || cmd.ins === 0xda || cmd.ins === 0x4a) {
      if (this.chain && (this.chain.cla !== cmd.cla || this.chain.ins !== cmd.ins || this.chain.p2 !== cmd.p2)) {
        this.chain = undefined;
        return encodeResponse(new Uint8Array(0), SW.lastCommandOfChainExpected);
      }
      if (cmd.p1 & 1) {
        this.chain ??= { cla: cmd.cla, ins: cmd.ins, p2: cmd.p2, parts: [] };
        this.chain.parts.push(cmd.data);
        return encodeResponse(new Uint8Array(0), SW.ok);
      }
      if (this.chain) {
        cmd = { ...cmd, p1: cmd.p1 & ~1, data: concat(...this.chain.parts, cmd.data) };
        this.chain = undefined;
      }
    }
    const { data, sw } = this.dispatch(cmd);
    const ne = cmd.ne === 0 ? 0 : cmd.ne;
    const idx = this.o.wrongLeFor.indexOf(cmd.ins);
    if (idx >= 0 && data.length > 0 && ne !== Math.min(data.length, 256)) {
      this.o.wrongLeFor.splice(idx, 1);
      // the spec'd "wrong Le": the host repeats the command with Le = xx (the state change is redone)
      this.undo?.();
      return encodeResponse(new Uint8Array(0), 0x6c00 | (Math.min(data.length, 256) & 0xff));
    }
    const max = Math.min(ne || 256, this.o.maxBlock);
    if (data.length > max) {
      this.pending = new PendingResponse(data, sw);
      const first = this.pending.take(max);
      return encodeResponse(first.data, this.o.use9F && first.sw >> 8 === 0x61 ? 0x9f00 | (first.sw & 0xff) : first.sw);
    }
    return encodeResponse(data, sw);
  };

  private undo: (() => void) | undefined;

  private r(data: Uint8Array | number[], sw: number = SW.ok): { data: Uint8Array; sw: number } {
    return { data: data instanceof Uint8Array ? data : Uint8Array.from(data), sw };
  }

  private dispatch(c: CommandApdu): { data: Uint8Array; sw: number } {
    this.undo = undefined;
    if (c.cla === 0x00 && c.ins === 0xa4) {
      return c.data.length === 7 && c.data[0] === 0xf0 ? this.r(encodeTlvs([{ tag: 1, value: enc.encode('setls/1') }])) : this.r([], 0x6a82);
    }
    if (c.cla !== 0xa0) return this.r([], 0x6e00);
    switch (c.ins) {
      case 0x20: {
        if (c.data.length === 0) return this.r([], this.verified ? SW.ok : this.tries ? 0x63c0 | this.tries : 0x6983);
        if (this.tries === 0) return this.r([], 0x6983);
        this.tries--;
        const pin = String.fromCharCode(...c.data.filter((b) => b !== 0xff));
        if (pin === this.o.pin) {
          this.tries = 3;
          this.verified = true;
          return this.r([]);
        }
        return this.r([], this.tries ? 0x63c0 | this.tries : 0x6983);
      }
      case 0x19:
        if (!this.verified) return this.r([], 0x6982);
        if (c.p1 === 0x10) {
          this.resetTls();
          return this.r([]);
        }
        return this.r([{ wantHello: 2, wantFinished: 2, idle: 2, connected: 3, failed: 4, closed: 5 }[this.phase]]);
      case 0x86:
        return this.r(
          encodeTlvs([
            { tag: 0x20, value: Uint8Array.of(3, 4) },
            { tag: 0x21, value: Uint8Array.of(0x13, 0x01) },
            { tag: 0x22, value: Uint8Array.of(0, 0x1d) },
            { tag: 0x23, value: Uint8Array.of(4, 3) },
            { tag: 0x24, value: enc.encode('card.example') },
            { tag: 0x25, value: enc.encode('http/1.1') },
          ]),
        );
      case 0xa6:
        if (this.phase !== 'connected') return this.r([], 0x6985);
        return this.r(new Uint8Array(c.ne).fill(0x33));
      case 0xca:
        return this.r(
          encodeTlvs([
            { tag: 1, value: enc.encode('setls/1') },
            { tag: 2, value: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
            { tag: 3, value: enc.encode('web') },
            { tag: 3, value: enc.encode('iot') },
            { tag: 4, value: Uint8Array.of(this.tries) },
            { tag: 7, value: Uint8Array.of(0x65, 0, 0, 1) },
            { tag: 8, value: Uint8Array.of(2) },
          ]),
        );
      case 0xda:
        // echo the chain length as data so tests can check reassembly
        return this.r([]);
      case 0x80:
        if (!this.verified) return this.r([], 0x6982);
        if (c.p2 === 0 && (c.p1 & 0x02) !== 0) this.resetTls(); // START: a fresh session, as RESET-STATE
        return this.eap(c);
      default:
        return this.r([], 0x6d00);
    }
  }

  resetTls(): void {
    this.phase = 'wantHello';
    this.lastId = undefined;
    this.reasm.reset();
    this.outFrags = [];
    this.partialHello = false;
    this.failing = false;
  }

  private req(id: number, tls: Uint8Array, sw: number = SW.ok): { data: Uint8Array; sw: number } {
    const frags = fragmentTls(tls, this.o.cardFragment);
    const pk = frags.map((f, i) =>
      encodeEapTls({ code: EapCode.request, id: (id + i) & 0xff, flags: f.flags, ...(f.tlsLength !== undefined ? { tlsLength: f.tlsLength } : {}), data: f.data }),
    );
    this.outFrags = pk.slice(1);
    this.lastId = id;
    return this.r(pk[0]!, sw);
  }

  private ack(id: number): { data: Uint8Array; sw: number } {
    this.lastId = id;
    return this.r(encodeEapTls({ code: EapCode.request, id, flags: 0 }));
  }

  private eap(c: CommandApdu): { data: Uint8Array; sw: number } {
    let p;
    try {
      p = parseEapTls(c.data);
    } catch {
      return this.r([], 0x6a80);
    }
    if (p.code !== EapCode.response) return this.r([], 0x7000);
    if (this.lastId !== undefined && p.id !== this.lastId) return this.r([], 0x7000);
    this.eapIn.push(c.data);
    const next = (p.id + 1) & 0xff;
    if (this.lastId === undefined && p.trailing.length === 4) this.times.push(new DataView(p.trailing.buffer, p.trailing.byteOffset).getUint32(0));
    // host ACK of our fragments
    if (isEapTlsAck(p) && this.outFrags.length) {
      const f = this.outFrags.shift()!;
      const out = new Uint8Array(f);
      out[1] = next;
      this.lastId = next;
      return this.r(out);
    }
    if (isEapTlsAck(p) && this.failing) {
      this.failing = false;
      this.phase = 'failed';
      this.lastId = next;
      return this.r(encodeEap({ code: EapCode.failure, id: next }));
    }
    let whole: Uint8Array | undefined;
    try {
      whole = this.reasm.push(p);
    } catch {
      return this.r([], 0x6a80);
    }
    if (whole === undefined) return this.ack(next);
    if (c.p2 & 0x80) {
      if (this.phase !== 'connected') return this.r([], 0x6985);
      const ct = c.p2 & 0x7f;
      if (whole.length > 16384) return this.r([], 0x6700);
      if (ct === 21) this.phase = 'closed';
      return this.req(next, toySeal(ct, whole));
    }
    switch (this.phase) {
      case 'wantHello': {
        const recs = splitRecords(whole);
        const hello = recs.find((r) => r[0] === 22);
        if (!hello) return this.ack(next);
        // BA: a bad handshake payload; a ClientHello (type 1) whose body starts with BA is one the card rejects
        if (hello[5] === 0xba || (hello[5] === 1 && hello[9] === 0xba)) return this.fail(next, (c.p1 & 0x04) !== 0);
        if (hello[hello.length - 1] === 0xee && !this.partialHello) {
          this.partialHello = true;
          return this.ack(next);
        }
        this.phase = 'wantFinished';
        return this.req(next, this.flight);
      }
      case 'wantFinished': {
        const recs = splitRecords(whole);
        const fin = recs.find((r) => r[0] !== 20);
        if (!fin) return this.ack(next);
        if (fin[5] === 0xba || fin[0] !== 22) return this.fail(next, (c.p1 & 0x04) !== 0);
        this.phase = 'connected';
        this.lastId = next;
        return this.r(encodeEap({ code: EapCode.success, id: next }));
      }
      case 'connected': {
        if (whole[0] !== 23) {
          const a = this.decryptFail(next, 10);
          if ((c.p1 & 0x08) !== 0) this.resetTls();
          return a;
        }
        const { type, plaintext } = toyOpen(whole);
        if (type === 23) return this.req(next, concat(Uint8Array.of(0, 0, plaintext.length >> 8, plaintext.length & 0xff), plaintext));
        // P1 END (08): the answer that ends the session wipes it, as RESET-STATE would
        const end = (c.p1 & 0x08) !== 0;
        if (type === 21 && plaintext[0] === 1 && plaintext[1] === 0) {
          this.phase = 'closed';
          const a = this.req(next, concat(Uint8Array.of(1, 0, 0, 0), toySeal(21, Uint8Array.of(1, 0))));
          if (end) this.resetTls();
          return a;
        }
        if (type === 21) {
          this.phase = 'failed';
          const a = this.req(next, Uint8Array.of(2, plaintext[1] ?? 0, 0, 0));
          if (end) this.resetTls();
          return a;
        }
        const a = this.decryptFail(next, 20);
        if ((c.p1 & 0x08) !== 0) this.resetTls();
        return a;
      }
      default:
        return this.r([], 0x6985);
    }
  }

  private decryptFail(next: number, alert: number): { data: Uint8Array; sw: number } {
    this.phase = 'failed';
    return this.req(next, concat(Uint8Array.of(2, alert, 0, 0), toySeal(21, Uint8Array.of(2, alert))));
  }

  private fail(next: number, info: boolean): { data: Uint8Array; sw: number } {
    this.failing = true;
    this.phase = 'failed';
    const alert = this.o.encryptedAlert ? toySeal(21, Uint8Array.of(2, 40)) : record(21, Uint8Array.of(2, 40));
    const r = this.req(next, alert, 0x7001 /* 7001 authentication failure */);
    return info ? { data: concat(r.data, Uint8Array.of(0x2c, 0x02, 0x02, 40)), sw: r.sw } : r;
  }
}
