/**
 * A minimal card OS around the security domain for its tests: logical channels (MANAGE CHANNEL),
 * SELECT by AID (the ISD, or a stand-in TLS applet that answers nothing else), every other
 * command routed to the applet selected on the CLA's channel; whole responses (no 61xx). Logs
 * every exchange. Power cycles keep the store; power cuts reload the platform from it.
 */
import { concat, equalBytes, toHex } from '../../../src/bytes/index.js';
import { parseCla } from '../../../src/gp/cla.js';
import { ISD_AID } from '../../../src/gp/admin/constants.js';
import { IsdApplet, type IsdOptions } from '../../../src/card/applets/isd/index.js';
import { FakePlatform, TLS_AID } from './fake-platform.js';

export interface Exchange {
  readonly c: Uint8Array;
  readonly r: Uint8Array;
}

const sw = (v: number): Uint8Array => Uint8Array.of(v >> 8, v & 0xff);

export class MiniCard {
  isd: IsdApplet;
  private open = new Set<number>([0]);
  private selected = new Map<number, 'isd' | 'tls'>();
  readonly log: Exchange[] = [];
  logging = true;

  constructor(
    public platform: FakePlatform,
    private readonly opts: IsdOptions = {},
  ) {
    this.isd = new IsdApplet(platform, opts);
    this.isd.powerOn();
  }

  /** Power off and on: RAM state gone, the store (and this platform) kept. */
  powerCycle(): void {
    this.open = new Set([0]);
    this.selected.clear();
    this.isd.powerOn();
  }

  /** After a power cut: a new platform loaded from the store, a new applet. */
  restart(): void {
    this.platform = this.platform.reload();
    this.isd = new IsdApplet(this.platform, this.opts);
    this.open = new Set([0]);
    this.selected.clear();
    this.isd.powerOn();
  }

  transmit = (apdu: Uint8Array): Uint8Array => {
    const r = this.answer(apdu);
    if (this.logging) this.log.push({ c: apdu.slice(), r: r.slice() });
    return r;
  };

  private answer(apdu: Uint8Array): Uint8Array {
    if (apdu.length < 4) return sw(0x6700);
    const info = parseCla(apdu[0]!);
    if (!info) return sw(0x6e00);
    const ch = info.channel;
    if (!this.open.has(ch)) return sw(0x6881);
    const ins = apdu[1]!;
    const iso = !info.proprietary && !info.sm;
    if (iso && ins === 0x70) {
      if (apdu[2] === 0x00) {
        for (let n = 1; n < 20; n++) {
          if (!this.open.has(n)) {
            this.open.add(n);
            return Uint8Array.of(n, 0x90, 0x00);
          }
        }
        return sw(0x6a81);
      }
      const n = apdu[3]!;
      if (n === 0 || !this.open.has(n)) return sw(0x6881);
      this.isd.reset(n);
      this.open.delete(n);
      this.selected.delete(n);
      return sw(0x9000);
    }
    if (iso && ins === 0xa4 && apdu[2] === 0x04) {
      const aid = apdu.subarray(5, 5 + apdu[4]!);
      if (this.selected.get(ch) === 'isd') this.isd.reset(ch);
      this.selected.delete(ch);
      if (equalBytes(aid, ISD_AID)) {
        this.selected.set(ch, 'isd');
        const a = this.isd.select(ch);
        return concat(a.data, sw(a.sw));
      }
      if (equalBytes(aid, TLS_AID)) {
        this.selected.set(ch, 'tls');
        return sw(0x9000);
      }
      return sw(0x6a82);
    }
    const app = this.selected.get(ch);
    if (app === 'isd') {
      const a = this.isd.process(apdu, ch);
      return concat(a.data, sw(a.sw));
    }
    return sw(app === 'tls' ? 0x6d00 : 0x6a82);
  }

  /** The whole APDU log as one lower-case hex string (both directions). */
  logHex(): string {
    return this.log.map((e) => toHex(e.c) + ' ' + toHex(e.r)).join('\n');
  }
}
