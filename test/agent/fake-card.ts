/**
 * A card-like fake for the device-agent tests: logical channels (MANAGE CHANNEL open/close, both CLA
 * codings), SELECT by AID, T=0-style response chaining (answers longer than `chunk` come in 61xx
 * pieces fetched with GET RESPONSE), and a record of every APDU exactly as it arrived.
 *
 * Applets: a fake security domain (AID A000000151000000) standing in for the ISD: GET DATA DF50
 * returns `DF50 10 <uid>`; INS E0 answers the status word P1P2 (a script picks its error); INS E2
 * answers P1·256+P2 bytes of a pattern (long answers: 61xx); INS E4 is held until the test releases
 * it (`gate`); anything else is echoed: its data back with 9000. Any other AID can be added.
 * imports src/apdu, src/bytes, src/transport only.
 */
import { parseCommand } from '../../src/apdu/index.js';
import { toHex } from '../../src/bytes/index.js';
import { InProcessTransport, FaultyTransport, type CardTransport } from '../../src/transport/index.js';

export const SD_AID = 'A000000151000000';

export interface RecordedApdu {
  /** The channel the CLA addressed. */
  readonly channel: number;
  /** The APDU exactly as it arrived. */
  readonly apdu: Uint8Array;
  readonly response: Uint8Array;
}

export type Applet = (apdu: Uint8Array, channel: number) => Uint8Array | Promise<Uint8Array>;

interface Channel {
  selected?: string;
  pending?: Uint8Array;
}

const sw = (v: number): Uint8Array => Uint8Array.of(v >> 8, v & 0xff);
const withSw = (data: Uint8Array, v: number): Uint8Array => {
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  out.set(sw(v), data.length);
  return out;
};

export interface FakeCardOptions {
  readonly uid?: Uint8Array;
  /** Logical channels at most, channel 0 included (default 4). */
  readonly channels?: number;
  /** Longest answer before 61xx chaining (default 256). */
  readonly chunk?: number;
}

export class FakeCard {
  readonly log: RecordedApdu[] = [];
  readonly uid: Uint8Array;
  private readonly channels: (Channel | undefined)[];
  private readonly chunk: number;
  readonly applets = new Map<string, Applet>();
  /** INS E4 waits on this (set by `holdNext`). */
  private gate: { reached: () => void; release: Promise<void> } | undefined;

  constructor(o: FakeCardOptions = {}) {
    this.uid = o.uid ?? Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    this.channels = new Array<Channel | undefined>(o.channels ?? 4).fill(undefined);
    this.channels[0] = {};
    this.chunk = o.chunk ?? 256;
    this.applets.set(SD_AID, (apdu) => this.securityDomain(apdu));
  }

  /** An in-process transport to this card (wrapped in a FaultyTransport: tests can remove/reset it). */
  transport(): FaultyTransport {
    return new FaultyTransport(new InProcessTransport((apdu) => this.process(apdu)), { onReset: () => this.reset() });
  }

  /** Card reset: every channel but 0 closed, nothing selected. */
  reset(): void {
    this.channels.fill(undefined);
    this.channels[0] = {};
  }

  get openChannels(): number[] {
    return this.channels.flatMap((c, i) => (c ? [i] : []));
  }

  /** Opens channel `n` directly (tests of a given channel). */
  forceOpen(n: number, selected?: string): void {
    this.channels[n] = { ...(selected ? { selected } : {}) };
  }

  /** The next INS E4 waits until the returned release() is called; `reached` resolves when it arrives. */
  holdNext(): { reached: Promise<void>; release: () => void } {
    let release!: () => void;
    let reached!: () => void;
    const r = new Promise<void>((res) => (reached = res));
    this.gate = { reached, release: new Promise<void>((res) => (release = res)) };
    return { reached: r, release };
  }

  /** APDUs of channel `n` (as they arrived). */
  on(n: number): Uint8Array[] {
    return this.log.filter((l) => l.channel === n).map((l) => l.apdu);
  }

  async process(apdu: Uint8Array): Promise<Uint8Array> {
    const cla = apdu[0]!;
    const ch = (cla & 0x40) === 0 ? cla & 0x03 : 4 + (cla & 0x0f);
    const res = await this.dispatch(apdu, ch);
    this.log.push({ channel: ch, apdu: apdu.slice(), response: res.slice() });
    return res;
  }

  private async dispatch(apdu: Uint8Array, n: number): Promise<Uint8Array> {
    const ch = n < this.channels.length ? this.channels[n] : undefined;
    if (!ch) return sw(0x6881);
    let cmd;
    try {
      cmd = parseCommand(apdu);
    } catch {
      return sw(0x6700);
    }
    const inter = (apdu[0]! & 0x80) === 0;
    if (inter && cmd.ins === 0xc0) {
      const p = ch.pending;
      if (!p) return sw(0x6985);
      return this.chunked(ch, p, cmd.ne);
    }
    ch.pending = undefined;
    if (inter && cmd.ins === 0x70) {
      if (cmd.p1 === 0x00) {
        const free = this.channels.findIndex((c) => !c);
        if (free < 0) return sw(0x6a81);
        this.channels[free] = { ...(n !== 0 && ch.selected ? { selected: ch.selected } : {}) };
        return withSw(Uint8Array.of(free), 0x9000);
      }
      if (cmd.p1 === 0x80) {
        const t = cmd.p2 === 0 ? n : cmd.p2;
        if (t === 0) return sw(0x6a86);
        if (!this.channels[t]) return sw(0x6881);
        this.channels[t] = undefined;
        return sw(0x9000);
      }
      return sw(0x6a86);
    }
    if (inter && cmd.ins === 0xa4 && cmd.p1 === 0x04) {
      const aid = toHex(cmd.data).toUpperCase();
      if (!this.applets.has(aid)) return sw(0x6a82);
      ch.selected = aid;
      return sw(0x9000);
    }
    const applet = ch.selected ? this.applets.get(ch.selected) : undefined;
    if (!applet) return sw(0x6985);
    const r = await applet(apdu, n);
    const data = r.subarray(0, r.length - 2);
    const last = (r[r.length - 2]! << 8) | r[r.length - 1]!;
    if (last === 0x9000 && data.length > this.chunk) return this.chunked(ch, data, this.chunk);
    return r;
  }

  /** Sends up to `ne` bytes of `data`; the rest stays pending behind 61xx. */
  private chunked(ch: Channel, data: Uint8Array, ne: number): Uint8Array {
    const n = Math.min(data.length, ne || 256, this.chunk);
    const rest = data.subarray(n);
    if (rest.length === 0) {
      ch.pending = undefined;
      return withSw(data.slice(0, n), 0x9000);
    }
    ch.pending = rest.slice();
    return withSw(data.slice(0, n), 0x6100 | (rest.length >= 256 ? 0 : rest.length));
  }

  private async securityDomain(apdu: Uint8Array): Promise<Uint8Array> {
    const cmd = parseCommand(apdu);
    if (cmd.ins === 0xca && cmd.p1 === 0xdf && cmd.p2 === 0x50) return withSw(Uint8Array.of(0xdf, 0x50, this.uid.length, ...this.uid), 0x9000);
    if (cmd.ins === 0xe0) return sw((cmd.p1 << 8) | cmd.p2);
    if (cmd.ins === 0xe2) {
      const n = (cmd.p1 << 8) | cmd.p2;
      return withSw(Uint8Array.from({ length: n }, (_, i) => i & 0xff), 0x9000);
    }
    if (cmd.ins === 0xe4 && this.gate) {
      const g = this.gate;
      this.gate = undefined;
      g.reached();
      await g.release;
    }
    return withSw(cmd.data, 0x9000);
  }
}

/** The transport type the agent sees. */
export type { CardTransport };
