/**
 * Helpers for tests of the security domain inside the real card (test/card/security-domain*.test.ts):
 * a new EmulatedCard personalised through the factory APDUs (src/factory) with a test manufacturer
 * CA, a transmit that follows 61xx (what a host's transceive does), a synchronous SCP03 admin session
 * on any logical channel (to interleave admin commands with a TLS handshake, APDU by APDU), and the
 * enrolment of an identity slot by the operator (key in the card, CSR, certificate, activation).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { concat } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { AdminClient, AdminRequest, Field, Fn, ISD_AID, KeyAlg, parseFunctionResponse, req, type IdentityPolicy } from '../../src/gp/admin/index.js';
import { claFor } from '../../src/gp/cla.js';
import { Scp03Host } from '../../src/gp/host.js';
import type { StaticKeys } from '../../src/gp/keys.js';
import { buildStoreData } from '../../src/gp/store-data.js';
import { factoryKeySet, personalise } from '../../src/factory/personalise.js';
import { makeCa, type TestCa } from './isd/test-ca.js';

export const USER_PIN = '123456';
export const OPERATOR_PIN = '87654321';
export const MASTER = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

export interface Authorities {
  readonly manufacturer: TestCa;
  readonly operatorRoot: TestCa;
  readonly operatorCa: TestCa;
}

let authorities: Promise<Authorities> | undefined;
export function getAuthorities(): Promise<Authorities> {
  authorities ??= (async () => {
    const manufacturer = await makeCa('sd test manufacturer');
    const operatorRoot = await makeCa('sd test operator root');
    return { manufacturer, operatorRoot, operatorCa: await operatorRoot.subordinate('sd test operator CA') };
  })();
  return authorities;
}

/** A transmit that follows 61xx with GET RESPONSE on the command's channel. */
export function follow(card: EmulatedCard): (apdu: Uint8Array) => Uint8Array {
  return (apdu) => {
    let r = card.process(apdu);
    const parts: Uint8Array[] = [];
    while (r.length >= 2 && r[r.length - 2] === 0x61) {
      parts.push(r.subarray(0, r.length - 2));
      const ch = apdu[0]! & 0x40 ? 4 + (apdu[0]! & 0x0f) : apdu[0]! & 0x03;
      r = card.process(Uint8Array.of(claFor(ch, { proprietary: false }), 0xc0, 0, 0, r[r.length - 1]!));
    }
    return parts.length ? concat(...parts, r) : r;
  };
}

export interface SealedCard {
  readonly card: EmulatedCard;
  readonly dir: string;
  readonly masterKey: Uint8Array;
  readonly uid: Uint8Array;
  readonly factoryKeys: StaticKeys;
  readonly ca: Authorities;
  /** Closes the card and removes its folder. */
  cleanup(): void;
}

/** A new card whose security domain was personalised and sealed through the factory APDUs. */
export async function sealedEmulatedCard(opts: { channels?: number } = {}): Promise<SealedCard> {
  const ca = await getAuthorities();
  const base = mkdtempSync(join(tmpdir(), 'setls-sd-'));
  const dir = join(base, 'card');
  const masterKey = new Uint8Array(randomBytes(32));
  const card = EmulatedCard.create({ dir, masterKey, userPin: USER_PIN, operatorPin: OPERATOR_PIN, puk: '11223344', channels: opts.channels ?? 4 });
  const uid = new Uint8Array(randomBytes(16));
  const factoryKeys = factoryKeySet(MASTER, uid);
  await personalise(follow(card), { uid, factoryKeys, manufacturerCa: async ({ csr }) => [await ca.manufacturer.issueFromCsr(csr), ca.manufacturer.cert] });
  return {
    card,
    dir,
    masterKey,
    uid,
    factoryKeys,
    ca,
    cleanup: () => {
      card.close();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** An async admin session (AdminClient) at level 33 on `channel` (opened first when not 0). */
export async function adminOn(c: SealedCard, channel = 0): Promise<AdminClient> {
  const transmit = follow(c.card);
  if (channel !== 0) {
    const r = transmit(Uint8Array.of(0x00, 0x70, 0x00, channel));
    if (r[r.length - 2] !== 0x90) throw new Error(`MANAGE CHANNEL open ${channel} answered ${Buffer.from(r).toString('hex')}`);
  }
  const a = new AdminClient(transmit, { channel });
  await a.select();
  await a.open(c.factoryKeys);
  return a;
}

/**
 * A synchronous SCP03 session (level 33) on `channel`, driven by a Scp03Host directly: what an
 * interleaving test needs between two APDUs of a TLS handshake.
 */
export class SyncAdmin {
  private readonly host: Scp03Host;
  private readonly transmit: (apdu: Uint8Array) => Uint8Array;

  constructor(
    card: EmulatedCard,
    keys: StaticKeys,
    readonly channel: number,
  ) {
    this.transmit = follow(card);
    const sel = this.transmit(concat(Uint8Array.of(claFor(channel, { proprietary: false }), 0xa4, 0x04, 0x00, ISD_AID.length), ISD_AID, Uint8Array.of(0)));
    if (sel[sel.length - 2] !== 0x90) throw new Error('SELECT ISD failed');
    this.host = new Scp03Host({ keys, channel, sdAid: ISD_AID });
    this.host.processInitializeUpdateResponse(this.transmit(this.host.initializeUpdate()));
    this.host.processExternalAuthenticateResponse(this.transmit(this.host.externalAuthenticate(0x33)));
  }

  /** One STORE DATA function; returns its response TLV (throws on an error status word). */
  call(request: Uint8Array): Uint8Array {
    let out: Uint8Array = new Uint8Array(0);
    for (const block of buildStoreData(request, { channel: this.channel })) {
      const { data, sw } = this.host.unwrap(this.transmit(this.host.wrap(block)));
      if (sw !== 0x9000) throw Object.assign(new Error(`STORE DATA answered ${sw.toString(16)}`), { sw });
      out = data;
    }
    return out;
  }
}

/**
 * The operator enrols slot `slot`: operator root anchor (once), a key generated in the card, a
 * certificate from the operator CA for it (SAN `dnsNames`, 127.0.0.1), installed and activated.
 */
export async function enrolSlot(
  a: AdminClient,
  ca: Authorities,
  slot: number,
  opts: { dnsNames?: readonly string[]; policy?: IdentityPolicy; anchor?: boolean } = {},
): Promise<{ leaf: Uint8Array; spki: Uint8Array }> {
  if (opts.anchor !== false) await a.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [ca.operatorRoot.cert] }));
  const spki = req(
    parseFunctionResponse(Fn.generateIdentityKey, await a.call(AdminRequest.generateIdentityKey({ slot, algorithm: KeyAlg.p256, ...(opts.policy ? { policy: opts.policy } : {}) }))),
    Field.spki,
    'spki',
  );
  const leaf = await ca.operatorCa.issueForSpki(spki, `slot ${slot}`, { dnsNames: opts.dnsNames ?? ['localhost'], ipAddresses: ['127.0.0.1'] });
  await a.call(AdminRequest.installCertificateChain({ slot, certificates: [leaf, ca.operatorCa.cert, ca.operatorRoot.cert] }));
  await a.call(AdminRequest.activateIdentity({ slot }));
  return { leaf, spki };
}
