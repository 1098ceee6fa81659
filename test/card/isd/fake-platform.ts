/**
 * An in-memory `IsdPlatform` for the security domain's tests: the ISD record (through its real
 * codec) and a small stand-in for the TLS applet's state (identity keys, PINs, clock floor) in one
 * byte string held by a `FakeStore`, which commits each transaction with one write and can cut the
 * power at any write — before the new bytes are in place (the old state stays) or just after
 * (the new state is in place, but the process dies before the card answers).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, createHash } from 'node:crypto';
import { fromHex, toHex } from '../../../src/bytes/index.js';
import { KeyAlg } from '../../../src/gp/admin/constants.js';
import {
  blankRecord,
  cloneRecord,
  decodeIsdRecord,
  encodeIsdRecord,
  type IdentityKeysDraft,
  type IdentityKeysView,
  type IdentityPolicyBits,
  type IsdDraft,
  type IsdPlatform,
  type IsdRecord,
  type ManagedApplet,
} from '../../../src/card/applets/isd/index.js';

export class PowerCut extends Error {
  constructor(readonly when: 'before' | 'after') {
    super(`power cut ${when} the write`);
    this.name = 'PowerCut';
  }
}

export class FakeStore {
  writes = 0;
  /** Cut the power at write number `at` (counted from now, 1-based). */
  private cut: { at: number; when: 'before' | 'after' } | undefined;
  constructor(public bytes: Uint8Array) {}

  cutAt(at: number, when: 'before' | 'after'): void {
    this.cut = { at: this.writes + at, when };
  }

  clearCut(): void {
    this.cut = undefined;
  }

  write(b: Uint8Array): void {
    this.writes++;
    if (this.cut && this.writes === this.cut.at) {
      const when = this.cut.when;
      this.cut = undefined;
      if (when === 'after') this.bytes = b.slice();
      throw new PowerCut(when);
    }
    this.bytes = b.slice();
  }

  copy(): FakeStore {
    return new FakeStore(this.bytes.slice());
  }
}

export interface FakeIdentity {
  readonly algorithm: KeyAlg;
  readonly pkcs8: string;
  readonly spki: string;
  readonly chain: readonly string[];
  readonly policy: IdentityPolicyBits;
}

export interface FakeTls {
  identities: Record<string, FakeIdentity>;
  /** Identities outside the slots (e.g. made with the TLS applet's own commands). */
  legacyIdentities: number;
  pins: Record<'user' | 'operator', { value: string; tries: number }>;
  floor: number;
}

interface State {
  isd: IsdRecord;
  tls: FakeTls;
}

export const TLS_AID = fromHex('F0736574 6C7301');

function encodeState(s: State): Uint8Array {
  const isd = encodeIsdRecord(s.isd);
  const tls = new TextEncoder().encode(JSON.stringify(s.tls));
  const out = new Uint8Array(4 + isd.length + tls.length);
  new DataView(out.buffer).setUint32(0, isd.length);
  out.set(isd, 4);
  out.set(tls, 4 + isd.length);
  return out;
}

function decodeState(b: Uint8Array): State {
  const n = new DataView(b.buffer, b.byteOffset).getUint32(0);
  return { isd: decodeIsdRecord(b.subarray(4, 4 + n)), tls: JSON.parse(new TextDecoder().decode(b.subarray(4 + n))) as FakeTls };
}

export function blankState(): Uint8Array {
  return stateWith(blankRecord());
}

/** Store bytes holding `isd` and a TLS stand-in with one legacy identity and PINs 1234 / 5678. */
export function stateWith(isd: IsdRecord): Uint8Array {
  return encodeState({
    isd,
    tls: { identities: {}, legacyIdentities: 1, pins: { user: { value: '1234', tries: 3 }, operator: { value: '5678', tries: 3 } }, floor: 0 },
  });
}

function keysView(tls: FakeTls): IdentityKeysView {
  return {
    key(slot) {
      const i = tls.identities[slot];
      return i ? { algorithm: i.algorithm, spki: fromHex(i.spki) } : undefined;
    },
    sign(slot, data) {
      const i = tls.identities[slot];
      if (!i) throw new Error(`slot ${slot} empty`);
      const key = createPrivateKey({ key: Buffer.from(i.pkcs8, 'hex'), format: 'der', type: 'pkcs8' });
      return new Uint8Array(i.algorithm === KeyAlg.rsa2048 ? sign('sha256', data, key) : sign('sha256', data, { key, dsaEncoding: 'der' }));
    },
  };
}

export interface FakePlatformOptions {
  now?: number;
  seed?: string;
}

export class FakePlatform implements IsdPlatform {
  private committed: State;
  private counter = 0;
  now: () => number;

  constructor(
    readonly store: FakeStore,
    private readonly opts: FakePlatformOptions = {},
  ) {
    this.committed = decodeState(store.bytes);
    const t = opts.now ?? 1_760_000_000;
    this.now = () => t;
  }

  static blank(opts: FakePlatformOptions = {}): FakePlatform {
    return new FakePlatform(new FakeStore(blankState()), opts);
  }

  /** The same store, loaded afresh (what a card finds after a power cut). */
  reload(): FakePlatform {
    return new FakePlatform(this.store, this.opts);
  }

  record(): IsdRecord {
    return this.committed.isd;
  }

  tls(): FakeTls {
    return this.committed.tls;
  }

  identities(): IdentityKeysView {
    return keysView(this.committed.tls);
  }

  applets(): readonly ManagedApplet[] {
    return [{ aid: TLS_AID, hasIdentities: true }];
  }

  random(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32) {
      const h = createHash('sha256').update(`${this.opts.seed ?? 'fake'}/${this.counter++}`).digest();
      out.set(h.subarray(0, Math.min(32, n - o)), o);
    }
    return out;
  }

  transaction<T>(fn: (draft: IsdDraft) => T): T {
    const tls: FakeTls = JSON.parse(JSON.stringify(this.committed.tls)) as FakeTls;
    const record = cloneRecord(this.committed.isd);
    const view = keysView(tls);
    const identities: IdentityKeysDraft = {
      ...view,
      generate(slot, algorithm) {
        if (tls.identities[slot]) throw new Error('occupied');
        const { privateKey, publicKey } =
          algorithm === KeyAlg.rsa2048 ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
        tls.identities[slot] = {
          algorithm,
          pkcs8: toHex(privateKey.export({ format: 'der', type: 'pkcs8' })),
          spki: toHex(spki),
          chain: [],
          policy: { exportAllowed: false, clientAuth: 'none' },
        };
        return spki;
      },
      setChain(slot, chain) {
        const i = tls.identities[slot];
        if (!i) throw new Error('empty slot');
        tls.identities[slot] = { ...i, chain: chain.map((c) => toHex(c)) };
      },
      setPolicy(slot, policy) {
        const i = tls.identities[slot];
        if (!i) throw new Error('empty slot');
        tls.identities[slot] = { ...i, policy: { ...policy } };
      },
      delete(slot) {
        delete tls.identities[slot];
      },
      deleteAll() {
        tls.identities = {};
        tls.legacyIdentities = 0;
      },
    };
    const draft: IsdDraft = {
      record,
      identities,
      pins: {
        reset(pin, newPadded) {
          const p = tls.pins[pin];
          const value = newPadded ? new TextDecoder().decode(newPadded.subarray(0, newPadded.indexOf(0xff) < 0 ? 8 : newPadded.indexOf(0xff))) : p.value;
          tls.pins[pin] = { value, tries: 3 };
        },
      },
      clock: {
        setFloor(t) {
          tls.floor = t;
        },
      },
    };
    const result = fn(draft);
    const bytes = encodeState({ isd: record, tls });
    this.store.write(bytes);
    this.committed = decodeState(bytes);
    return result;
  }
}

/** Public key of a fake identity (tests). */
export function spkiOfPkcs8(hex: string): Uint8Array {
  return new Uint8Array(createPublicKey(createPrivateKey({ key: Buffer.from(hex, 'hex'), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' }));
}
