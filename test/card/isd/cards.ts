/**
 * The two cards the security domain's tests run against, behind one interface (`IsdTestCard`):
 *
 *  - 'fake': the ISD applet alone in a minimal card OS (harness.ts) over an in-memory platform
 *    (fake-platform.ts) — fast, and it shows the applet's own behaviour;
 *  - 'card': the real `EmulatedCard` — its card OS (61xx / GET RESPONSE, logical channels, the
 *    admission rules), the real IsdPlatform on the card services and the real sealed store with its
 *    atomic write (power cuts through StoreHooks at every write step). Card folders live on tmpfs
 *    (/dev/shm) when there is one: the tests open thousands of cards.
 *
 * A snapshot is what a card's persistence holds (the fake store's bytes; the sealed state file);
 * `fromSnapshot` makes a fresh card of it. `stateBytes()` is the committed state in clear (the fake
 * store's bytes; the sealed file opened), so "nothing changed" compares bytes in both.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concat } from '../../../src/bytes/index.js';
import { decodeCla } from '../../../src/protocol/index.js';
import { claFor } from '../../../src/gp/cla.js';
import { EmulatedCard, type StoreHooks, type WriteStep } from '../../../src/card/index.js';
import { SealedStore } from '../../../src/card/os/sealed-store.js';
import { deserializeState, serializeState } from '../../../src/card/state.js';
import type { IsdOptions, IsdRecord } from '../../../src/card/applets/isd/index.js';
import { FakePlatform, FakeStore, PowerCut, stateWith } from './fake-platform.js';
import { MiniCard, type Exchange } from './harness.js';

export type CardKind = 'fake' | 'card';
export const CARD_KINDS: readonly CardKind[] = ['fake', 'card'];

/** Where a power cut happens and which state the card must come back with. */
export interface CutPoint {
  readonly when: string;
  readonly expect: 'old' | 'new';
}

export interface IsdTestCard {
  readonly kind: CardKind;
  /** One logical exchange: the whole response (61xx followed); every APDU on the wire is logged. */
  readonly transmit: (apdu: Uint8Array) => Uint8Array;
  readonly log: Exchange[];
  logging: boolean;
  /** Power off and on (EmulatedCard.reset: a card reset is a power cycle for the security domain). */
  powerCycle(): void;
  /** After a power cut: the card loaded afresh from its persistence. */
  restart(): void;
  /** The committed persistent state, in clear. */
  stateBytes(): Uint8Array;
  /** The committed ISD record. */
  record(): IsdRecord;
  sessionState(channel: number): string;
  readonly failedAuths: number;
  /** Persistent writes so far. */
  readonly writes: number;
  /** Cuts the power at write number `k` (counted from now, 1-based) at `when` (one of `cutPoints`). */
  cutAt(k: number, when: string): void;
  readonly cutPoints: readonly CutPoint[];
  snapshot(): Uint8Array;
  /** Frees the card (closes it, removes its folder). */
  dispose(): void;
}

// ---------------------------------------------------------------- fake

class FakeCard implements IsdTestCard {
  readonly kind = 'fake';
  readonly cutPoints: readonly CutPoint[] = [
    { when: 'before', expect: 'old' },
    { when: 'after', expect: 'new' },
  ];
  constructor(readonly mini: MiniCard) {}
  get transmit() {
    return this.mini.transmit;
  }
  get log() {
    return this.mini.log;
  }
  get logging() {
    return this.mini.logging;
  }
  set logging(v: boolean) {
    this.mini.logging = v;
  }
  powerCycle(): void {
    this.mini.powerCycle();
  }
  restart(): void {
    this.mini.restart();
  }
  stateBytes(): Uint8Array {
    return this.mini.platform.store.bytes.slice();
  }
  record(): IsdRecord {
    return this.mini.platform.record();
  }
  sessionState(ch: number): string {
    return this.mini.isd.sessionState(ch);
  }
  get failedAuths(): number {
    return this.mini.isd.failedAuths;
  }
  get writes(): number {
    return this.mini.platform.store.writes;
  }
  cutAt(k: number, when: string): void {
    this.mini.platform.store.cutAt(k, when as 'before' | 'after');
  }
  snapshot(): Uint8Array {
    return this.mini.platform.store.bytes.slice();
  }
  dispose(): void {}
}

// ---------------------------------------------------------------- the real card

const ROOT = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
let base: string | undefined;
function newDir(): string {
  if (!base) {
    base = mkdtempSync(join(ROOT, 'setls-isd-'));
    process.once('exit', () => rmSync(base!, { recursive: true, force: true }));
  }
  const d = mkdtempSync(join(base, 'c'));
  return join(d, 'card');
}

/** The master key every real test card is sealed under (test data). */
export const TEST_MASTER_KEY = new Uint8Array(32).fill(0x5e);
export const USER_PIN = '1234';
export const OPERATOR_PIN = '5678';

const STEP_OF: Record<string, WriteStep> = { beforeTmpWrite: 'beforeTmpWrite', afterTmpWrite: 'afterTmpWrite', afterRename: 'afterRename' };

export class RealCard implements IsdTestCard {
  readonly kind = 'card';
  readonly cutPoints: readonly CutPoint[] = [
    { when: 'beforeTmpWrite', expect: 'old' },
    { when: 'afterTmpWrite', expect: 'old' },
    { when: 'afterRename', expect: 'new' },
  ];
  readonly log: Exchange[] = [];
  logging = true;
  writes = 0;
  card: EmulatedCard;
  private cut: { at: number; step: WriteStep } | undefined;
  private fired = false;
  private readonly hooks: StoreHooks = {
    onWriteStep: (step) => {
      if (step === 'beforeTmpWrite') this.writes++;
      if (this.cut && this.writes === this.cut.at && step === this.cut.step) {
        this.cut = undefined;
        this.fired = true;
        throw new PowerCut(step === 'afterRename' ? 'after' : 'before');
      }
    },
  };

  constructor(
    readonly dir: string,
    private readonly opts: IsdOptions = {},
  ) {
    this.card = this.open();
  }

  private open(): EmulatedCard {
    return EmulatedCard.open({ dir: this.dir, masterKey: TEST_MASTER_KEY, storeHooks: this.hooks, securityDomain: this.opts, channels: 4 });
  }

  /** A new card (PINs 1234 / 5678, a blank OP_READY security domain). */
  static blank(opts: IsdOptions = {}): RealCard {
    const dir = newDir();
    EmulatedCard.create({ dir, masterKey: TEST_MASTER_KEY, userPin: USER_PIN, operatorPin: OPERATOR_PIN, puk: '11223344' }).close();
    return new RealCard(dir, opts);
  }

  /** A card whose state is `snapshot` (the sealed state file). */
  static fromSnapshot(snapshot: Uint8Array, opts: IsdOptions = {}): RealCard {
    const dir = newDir();
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'state.sealed'), snapshot, { mode: 0o600 });
    return new RealCard(dir, opts);
  }

  /** A new card whose security domain record is `rec` (and, with `state`, those state fields). */
  static withRecord(rec: IsdRecord, opts: IsdOptions = {}, state: { lastTime?: number } = {}): RealCard {
    const c = RealCard.blank();
    c.card.close();
    const store = new SealedStore(c.dir, TEST_MASTER_KEY);
    const plain = store.read();
    const st = deserializeState(plain);
    st.isd = rec;
    if (state.lastTime !== undefined) st.lastTime = state.lastTime;
    store.write(serializeState(st));
    return new RealCard(c.dir, opts);
  }

  readonly transmit = (apdu: Uint8Array): Uint8Array => {
    let r = this.exchange(apdu);
    const parts: Uint8Array[] = [];
    while (r.length >= 2 && r[r.length - 2] === 0x61) {
      parts.push(r.subarray(0, r.length - 2));
      const ch = decodeCla(apdu[0]!)?.channel ?? 0;
      r = this.exchange(Uint8Array.of(claFor(ch, { proprietary: false }), 0xc0, 0x00, 0x00, r[r.length - 1]!));
    }
    return parts.length ? concat(...parts, r) : r;
  };

  private exchange(apdu: Uint8Array): Uint8Array {
    this.fired = false;
    const r = this.card.process(apdu);
    if (this.logging) this.log.push({ c: apdu.slice(), r: r.slice() });
    if (this.fired) throw new PowerCut('before'); // the process died: no answer reaches the host
    return r;
  }

  powerCycle(): void {
    this.card.reset();
  }

  restart(): void {
    this.card.close();
    this.card = this.open();
  }

  stateBytes(): Uint8Array {
    return new SealedStore(this.dir, TEST_MASTER_KEY).read();
  }

  record(): IsdRecord {
    return deserializeState(this.stateBytes()).isd!;
  }

  sessionState(ch: number): string {
    return this.card.securityDomain.sessionState(ch);
  }

  get failedAuths(): number {
    return this.card.securityDomain.failedAuths;
  }

  cutAt(k: number, when: string): void {
    const step = STEP_OF[when];
    if (!step) throw new Error(`no write step ${when}`);
    this.cut = { at: this.writes + k, step };
  }

  snapshot(): Uint8Array {
    return new Uint8Array(readFileSync(join(this.dir, 'state.sealed')));
  }

  dispose(): void {
    this.card.close();
    rmSync(join(this.dir, '..'), { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- factories

/** A blank card (OP_READY) of `kind`. */
export function blankCard(kind: CardKind, opts: IsdOptions = {}): IsdTestCard {
  return kind === 'fake' ? new FakeCard(new MiniCard(FakePlatform.blank(), opts)) : RealCard.blank(opts);
}

/** A card of `kind` whose ISD record is `rec` (and, for the fake, a TLS stand-in). */
export function cardWithRecord(kind: CardKind, rec: IsdRecord, opts: IsdOptions = {}): IsdTestCard {
  return kind === 'fake' ? new FakeCard(new MiniCard(new FakePlatform(new FakeStore(stateWith(rec))), opts)) : RealCard.withRecord(rec, opts);
}

/** A card of `kind` made from a snapshot of another card of that kind. */
export function cardFromSnapshot(kind: CardKind, snapshot: Uint8Array): IsdTestCard {
  return kind === 'fake' ? new FakeCard(new MiniCard(new FakePlatform(new FakeStore(snapshot.slice())))) : RealCard.fromSnapshot(snapshot);
}
