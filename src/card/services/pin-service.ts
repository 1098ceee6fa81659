/**
 * card/services/pin-service: the card's PINs and PUK as a service shared by every applet — the
 * retry counters and values are the card's (state), the verification is per logical channel
 * (ChannelContext.verified). docs/apdu-protocol.md §2 "The PIN rules".
 *
 * The check: the counter is decremented and written BEFORE the constant-time comparison (a store
 * `charge`: a failed write never refunds the try), together with the presented value's
 * pending-attempt tag (pins.ts), so a lost write (power cut) never reveals a comparison result
 * without costing a try, and the same value presented again after a crash is not charged twice. A
 * correct value restores the counter and clears the tag in a second write (a transaction).
 *
 * Secrets: presented PINs (the callers' buffers; the digests computed here are wiped), the PIN
 * records in the state. imports bytes/, apdu/, card/.
 */
import { ctEqual, wipe } from '../../bytes/index.js';
import { SW } from '../../apdu/index.js';
import { PinPolicy } from '../constants.js';
import { CardError, cardErr } from '../errors.js';
import { hashPin, isPaddedPin, makePinRecord, padPin, pendingTag, type PinRecord } from '../pins.js';
import type { CardState, PinName } from '../state.js';
import type { ChannelContext, Reply } from '../os/applet.js';
import type { PersistentStore } from '../os/persistent-store.js';
import type { CardRandom } from './random.js';

/** The PINs a channel can verify (the PUK only unblocks). */
export type PinKind = 'user' | 'operator';

const EMPTY = new Uint8Array(0);
const ok = (): Reply => ({ data: EMPTY, sw: SW.ok });

export class PinService {
  constructor(
    private readonly store: PersistentStore<CardState>,
    private readonly rng: CardRandom,
  ) {}

  /** Tries left (0 = blocked). */
  tries(name: PinName): number {
    return this.store.state.pins[name].tries;
  }

  isVerified(ch: ChannelContext, which: PinKind): boolean {
    return ch.verified[which];
  }

  /**
   * VERIFY on `ch`: no data → 9000 if verified, else 63Cx / 6983; an 8-byte padded PIN → checked
   * (the channel's verification is dropped first, set again on success).
   */
  verify(ch: ChannelContext, name: PinKind, data: Uint8Array): Reply {
    if (data.length === 0) {
      if (ch.verified[name]) return ok();
      return this.wrong(name);
    }
    if (data.length !== PinPolicy.padded) throw cardErr.length('VERIFY takes an 8-byte padded PIN');
    if (!isPaddedPin(data)) throw cardErr.data('a PIN is 4–8 ASCII digits padded with FF');
    if (this.blockedWithoutPending(name)) throw cardErr.blocked(`${name} PIN blocked`);
    ch.verified[name] = false;
    if (!this.check(name, data)) return this.wrong(name);
    ch.verified[name] = true;
    return ok();
  }

  /**
   * VERIFY with a raw ASCII PIN (draft-urien-tls-se's VERIFY): its status word (9000, 63Cx, 6983,
   * 6A80 for a PIN that is not 4–8 digits).
   */
  verifyText(ch: ChannelContext, name: PinKind, ascii: Uint8Array): number {
    let padded: Uint8Array;
    try {
      padded = padPin(new TextDecoder('utf-8', { fatal: true }).decode(ascii));
    } catch {
      return SW.wrongData;
    }
    try {
      return this.verify(ch, name, padded).sw;
    } catch (e) {
      if (e instanceof CardError) return e.sw;
      throw e;
    } finally {
      wipe(padded);
    }
  }

  /** CHANGE-PIN on `ch`: old(8) ‖ new(8); success leaves the PIN verified on `ch`. */
  change(ch: ChannelContext, name: PinKind, data: Uint8Array): Reply {
    if (data.length !== 2 * PinPolicy.padded) throw cardErr.length('CHANGE-PIN takes old(8) ‖ new(8)');
    const oldPin = data.subarray(0, 8);
    const newPin = data.subarray(8);
    if (!isPaddedPin(oldPin) || !isPaddedPin(newPin)) throw cardErr.data('a PIN is 4–8 ASCII digits padded with FF');
    if (this.blockedWithoutPending(name)) throw cardErr.blocked(`${name} PIN blocked`);
    ch.verified[name] = false;
    if (!this.check(name, oldPin)) return this.wrong(name);
    this.set(name, newPin);
    ch.verified[name] = true;
    return ok();
  }

  /** UNBLOCK-PIN on `ch`: new(8) ‖ PUK(8); sets the PIN with full tries, not verified. */
  unblock(ch: ChannelContext, name: PinKind, data: Uint8Array): Reply {
    if (data.length !== 2 * PinPolicy.padded) throw cardErr.length('UNBLOCK-PIN takes new(8) ‖ PUK(8)');
    const newPin = data.subarray(0, 8);
    const puk = data.subarray(8);
    if (!isPaddedPin(newPin) || !isPaddedPin(puk)) throw cardErr.data('a PIN or PUK is 4–8 ASCII digits padded with FF');
    if (this.blockedWithoutPending('puk')) throw cardErr.blocked('PUK blocked');
    if (!this.check('puk', puk)) return this.wrong('puk');
    this.set(name, newPin);
    ch.verified[name] = false;
    return ok();
  }

  /**
   * An operator's reset of a PIN or the PUK (no PIN presented: the caller authorised it): a new
   * padded value with full tries, or — without one — the tries restored and any pending attempt
   * cleared. In a store transaction (the caller's, if any). 6A80 for a malformed value.
   */
  reset(name: PinName, newPadded?: Uint8Array): void {
    if (newPadded === undefined) {
      this.store.transaction((s) => {
        s.pins[name].tries = s.pins[name].max;
        s.pins[name].pending = undefined;
      });
      return;
    }
    if (!isPaddedPin(newPadded)) throw cardErr.data('a PIN or PUK is 4–8 ASCII digits padded with FF');
    this.set(name, newPadded);
  }

  /** A new value for a PIN, full tries (one transaction). */
  private set(name: PinName, padded: Uint8Array): void {
    const salt = this.rng.random(16);
    this.store.transaction((s) => {
      (s.pins as Record<PinName, PinRecord>)[name] = makePinRecord(padded, salt, s.pins[name].max);
    });
  }

  /** The counter-before-compare check (see the header). */
  private check(name: PinName, presented: Uint8Array): boolean {
    const rec = this.store.state.pins[name];
    const digest = hashPin(presented, rec.salt);
    try {
      const tag = pendingTag(digest);
      const charged = rec.pending !== undefined && ctEqual(rec.pending, tag);
      if (!charged) {
        if (rec.tries === 0) throw cardErr.blocked(`${name} blocked`);
        // in memory first: a failed write never refunds the try
        this.store.charge((s) => {
          s.pins[name].tries -= 1;
          s.pins[name].pending = tag;
        });
      }
      if (!ctEqual(digest, rec.hash)) return false;
      // Adopted only once written: a torn write leaves the (charged) pending attempt in place.
      this.store.transaction((s) => {
        s.pins[name].tries = s.pins[name].max;
        s.pins[name].pending = undefined;
      });
      return true;
    } finally {
      wipe(digest);
    }
  }

  /** Blocked, unless a pending attempt may still be resolved by presenting the same value (check). */
  private blockedWithoutPending(name: PinName): boolean {
    const rec = this.store.state.pins[name];
    return rec.tries === 0 && rec.pending === undefined;
  }

  private wrong(name: PinName): never {
    const left = this.store.state.pins[name].tries;
    if (left === 0) throw cardErr.blocked(`${name} blocked`);
    throw new CardError('ERR_CARD_WRONG_PIN', `wrong ${name}, ${left} tries left`, SW.wrongPinTries | left);
  }
}
