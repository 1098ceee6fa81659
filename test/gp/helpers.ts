/** Shared set-up for the gp tests: a key set, a card and a host with an open session. */
import assert from 'node:assert/strict';
import { fromHex } from '../../src/bytes/index.js';
import { Scp03Card, Scp03Host, staticKeys, type StaticKeys } from '../../src/gp/index.js';

export const SD_AID = fromHex('A000000151000000');

export function testKeys(kvn = 0x30, len = 16): StaticKeys {
  const k = (base: number) => Uint8Array.from({ length: len }, (_, i) => (base + i) & 0xff);
  return staticKeys(kvn, k(0x40), k(0x50), k(0x60));
}

export interface Pair {
  readonly host: Scp03Host;
  readonly card: Scp03Card;
  readonly keys: StaticKeys;
  counter: number;
}

export interface PairOptions {
  readonly level?: number;
  readonly i?: number;
  readonly channel?: number;
  readonly counter?: number;
  readonly keyLength?: number;
  readonly allowExtended?: boolean;
  readonly hostChallenge?: Uint8Array;
}

/** A card and a host that have run INITIALIZE UPDATE and EXTERNAL AUTHENTICATE successfully. */
export function openPair(opts: PairOptions = {}): Pair {
  const keys = testKeys(0x30, opts.keyLength ?? 16);
  const i = opts.i ?? 0x70;
  const card = new Scp03Card({ sdAid: SD_AID, lookupKeys: (kvn) => (kvn === 0x30 || kvn === 0 ? keys : undefined), i });
  const host = new Scp03Host({
    keys,
    sdAid: SD_AID,
    channel: opts.channel ?? 0,
    mode: (i & 0x01) !== 0 ? 16 : 8,
    allowExtended: opts.allowExtended ?? true,
  });
  const pair: Pair = { host, card, keys, counter: opts.counter ?? 7 };
  const iu = card.initializeUpdate(host.initializeUpdate(opts.hostChallenge), pair.counter);
  assert.equal(iu.sw, 0x9000);
  host.processInitializeUpdateResponse(iu.response);
  const ea = card.externalAuthenticate(host.externalAuthenticate(opts.level ?? 0x33));
  assert.equal(ea.sw, 0x9000);
  host.processExternalAuthenticateResponse(ea.response);
  return pair;
}
