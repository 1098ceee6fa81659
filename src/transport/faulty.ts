/**
 * FaultyTransport: wraps a CardTransport and injects what real cards do — latency (a profile
 * calibrated to published smart-card figures: 30–80 ms per APDU, ~0.9 s on the APDU where the card
 * runs ECDHE + signature + key schedule), error status words (`6F00`), timeouts (the card never
 * answers), removal (ERR_TRANSPORT_CARD_REMOVED, as PcscTransport) and reset (the card comes back
 * with its transient state cleared: selection and PIN gone).
 *
 * Faults are armed by the test or the bench: `failNext(n, sw)`, `hang()`, `remove()`, `reset()`.
 * `modelledMs` accumulates the latency the profile charged (a bench can model a real card's time
 * without sleeping: `sleep: false`). imports bytes/, protocol/ (INS codes) and transport/.
 */
import { SetlsError } from '../bytes/index.js';
import { EapP1, EapP2, Ins, StateP1, TlsSeIns } from '../protocol/index.js';
import { checkApdu, type CardTransport } from './card-transport.js';

export interface LatencyProfile {
  /** Per-APDU latency range, ms (uniform). */
  readonly perApduMs: readonly [number, number];
  /** Extra latency on a "heavy" APDU (ECDHE + key schedule), ms. */
  readonly heavyMs: number;
  /** Which command APDUs are heavy. Default: see defaultHeavy(). */
  readonly isHeavy?: (apdu: Uint8Array, index: number) => boolean;
}

export const LATENCY_PROFILES: Record<'none' | 'real-card', LatencyProfile> = {
  none: { perApduMs: [0, 0], heavyMs: 0 },
  'real-card': { perApduMs: [30, 80], heavyMs: 900 },
};

export interface FaultyTransportOptions {
  /** 'none' (default), 'real-card' or a custom profile. */
  readonly latency?: 'none' | 'real-card' | LatencyProfile;
  /** Really wait the latency (default true); false only accounts it in `modelledMs`. */
  readonly sleep?: boolean;
  /** Called by reset() (e.g. EmulatedCard.reset: the card's transient state is cleared). */
  readonly onReset?: () => void;
  /** Deterministic randomness for the latency (default Math.random). */
  readonly random?: () => number;
}

/**
 * Default heavy-APDU rule: after RESET-STATE (INS 19 P1 10), SELECT, or a PROCESS-EAP with START
 * (INS 80 P1 bit 1, P2 00: the setls host folds RESET-STATE into the ClientHello), the APDU that
 * completes the first ≥ 100-byte PROCESS-EAP (INS 80; the last segment of a chain: P1 bit 0 clear)
 * or TLS-SE RECV (INS D8; CLA bit 0x10 clear): the card then runs ECDHE, signs and derives the key
 * schedule.
 */
/** CLA bit b5: ISO 7816-4 command chaining. */
const ISO_CHAINING = 0x10;

function defaultHeavy(): (apdu: Uint8Array) => boolean {
  let armed = true;
  let acc = 0;
  return (apdu) => {
    const ins = apdu[1]!;
    if ((ins === Ins.state && apdu[2] === StateP1.reset) || ins === Ins.select) {
      armed = true;
      acc = 0;
      return false;
    }
    // Every segment of a START chain carries START: arm once, on the first.
    if (ins === Ins.processEap && apdu[3] === EapP2.handshakeOrDecrypt && (apdu[2]! & EapP1.start) !== 0 && !armed) {
      armed = true;
      acc = 0;
    }
    if (!armed || (ins !== Ins.processEap && ins !== TlsSeIns.recv)) return false;
    acc += apdu.length;
    const more = ins === Ins.processEap ? (apdu[2]! & EapP1.more) !== 0 : (apdu[0]! & ISO_CHAINING) !== 0;
    if (more || acc < 100) return false;
    armed = false;
    return true;
  };
}

export class FaultyTransport implements CardTransport {
  readonly extendedLength: boolean;
  private readonly profile: LatencyProfile;
  private readonly sleep: boolean;
  private readonly random: () => number;
  private readonly heavy: (apdu: Uint8Array, index: number) => boolean;
  private errorsLeft = 0;
  private errorSw = 0x6f00;
  private hanging = false;
  private removed = false;
  private readonly hung = new Set<(e: Error) => void>();
  private count = 0;
  /** Latency charged by the profile so far, ms (whether slept or not). */
  modelledMs = 0;
  /** Heavy APDUs seen. */
  heavyCount = 0;

  constructor(
    private readonly inner: CardTransport,
    private readonly opts: FaultyTransportOptions = {},
  ) {
    this.extendedLength = inner.extendedLength;
    const l = opts.latency ?? 'none';
    this.profile = typeof l === 'string' ? LATENCY_PROFILES[l] : l;
    if (!this.profile) throw new RangeError(`unknown latency profile ${String(l)}`);
    this.sleep = opts.sleep ?? true;
    this.random = opts.random ?? Math.random;
    this.heavy = this.profile.isHeavy ?? defaultHeavy();
  }

  /** The next `n` APDUs answer `sw` (default 6F00) without reaching the card. */
  failNext(n = 1, sw = 0x6f00): void {
    this.errorsLeft = n;
    this.errorSw = sw;
  }

  /** From now on the card never answers (until reset()). */
  hang(): void {
    this.hanging = true;
  }

  /** The card is pulled out: pending and later APDUs reject ERR_TRANSPORT_CARD_REMOVED (until reset()). */
  remove(): void {
    this.removed = true;
    for (const r of this.hung) r(removedError());
    this.hung.clear();
  }

  /** Card reset / reinserted: faults cleared, the card's transient state cleared (onReset). */
  reset(): void {
    this.hanging = false;
    this.removed = false;
    this.errorsLeft = 0;
    for (const r of this.hung) r(removedError());
    this.hung.clear();
    this.opts.onReset?.();
  }

  get faulted(): boolean {
    return this.hanging || this.removed || this.errorsLeft > 0;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    checkApdu(apdu);
    const index = this.count++;
    if (this.removed) throw removedError();
    if (this.hanging) return new Promise<Uint8Array>((_, reject) => this.hung.add(reject));
    const [lo, hi] = this.profile.perApduMs;
    let ms = lo + (hi - lo) * this.random();
    if (this.heavy(apdu, index)) {
      ms += this.profile.heavyMs;
      this.heavyCount++;
    }
    this.modelledMs += ms;
    if (this.sleep && ms > 0) await new Promise((r) => setTimeout(r, ms));
    if (this.removed) throw removedError();
    if (this.errorsLeft > 0) {
      this.errorsLeft--;
      return Uint8Array.of(this.errorSw >> 8, this.errorSw & 0xff);
    }
    return this.inner.transmit(apdu);
  }

  close(): Promise<void> {
    this.reset();
    return this.inner.close();
  }
}

function removedError(): SetlsError {
  return new SetlsError('ERR_TRANSPORT_CARD_REMOVED', 'the card was removed (injected fault)');
}
