/**
 * factory/personalise: the manufacturer's side of factory personalisation of a setls card's
 * security domain — builds the APDUs, parses the answers, never imports card code. The sequence
 * (docs/admin-protocol.md §8), all without secure messaging, on a card in lifecycle OP_READY:
 *
 *   SELECT ISD; GET DATA 9F7F (lifecycle must be 01 OP_READY)
 *   STORE DATA BF30 FactorySetUid {5A UID}
 *   STORE DATA BF31 FactoryGenerateAttestationKey        → {86 SPKI, 9E CSR}   (key made in the card)
 *   manufacturer CA: certificate for that CSR             (the caller's `manufacturerCa`)
 *   STORE DATA BF32 FactoryInstallAttestationChain {88 cert…}
 *   STORE DATA BF33 FactoryPutKeys {C0 KVN ‖ K-ENC ‖ K-MAC ‖ K-DEK} → KCVs checked
 *   SET STATUS 80 F0 80 0F                                → SECURED: factory functions refused for ever
 *   check: GET DATA 9F7F = 0F, DF50 = UID, DF51 = the chain; an SCP03 session with the factory keys
 *          at level 33 answers GetCardInfo with the UID
 *
 * Returns the batch-manifest entry (UID, attestation chain, KVN — never keys).
 * imports bytes/ and gp/ (gp/admin), node:crypto.
 */
import { X509Certificate } from 'node:crypto';
import { SetlsError, concat, equalBytes, parseBerTlvs, toHex } from '../bytes/index.js';
import { AdminClient, AdminSwError, type Transmit } from '../gp/admin/client.js';
import { sha256 } from '../gp/admin/attestation.js';
import { CardLifecycle, FACTORY_KVN, Field, Fn, GetDataTag, StatusType } from '../gp/admin/constants.js';
import { opt, req } from '../gp/admin/fields.js';
import { AdminRequest, parseCardInfo, parseFunctionResponse } from '../gp/admin/requests.js';
import { claFor } from '../gp/cla.js';
import { deriveCardKeys } from '../gp/diversify.js';
import type { StaticKeys } from '../gp/keys.js';
import { putKeyResponseData } from '../gp/put-key.js';
import { buildStoreData } from '../gp/store-data.js';

export interface AttestationCsr {
  readonly uid: Uint8Array;
  /** PKCS#10 DER, subject CN = UID in hex, signed by the card's new attestation key. */
  readonly csr: Uint8Array;
  /** The attestation key's SubjectPublicKeyInfo DER. */
  readonly spki: Uint8Array;
}

export interface PersonaliseOptions {
  readonly uid: Uint8Array;
  /** The manufacturer CA: certifies the attestation key; returns the chain, leaf first (DER). */
  readonly manufacturerCa: (req: AttestationCsr) => readonly Uint8Array[] | Promise<readonly Uint8Array[]>;
  /** The factory SCP03 key set (KVN 30), e.g. `factoryKeySet(master, uid)`. */
  readonly factoryKeys: StaticKeys;
  /** Logical channel to use (default 0). */
  readonly channel?: number;
  /** Open a session with the factory keys afterwards to prove them (default true). */
  readonly verifyKeys?: boolean;
}

export interface ManifestEntry {
  readonly uid: Uint8Array;
  readonly attestationChain: readonly Uint8Array[];
  readonly kvn: number;
}

/** The factory key set of a card: diversified from the manufacturer master key and the UID (KVN 30). */
export function factoryKeySet(master: Uint8Array, uid: Uint8Array): StaticKeys {
  return deriveCardKeys(master, uid, FACTORY_KVN);
}

function fail(why: string): never {
  throw new SetlsError('ERR_FACTORY', `factory personalisation: ${why}`);
}

function lifecycleOf(data: Uint8Array): number {
  const outer = parseBerTlvs(data, 2);
  const inner = outer[0]?.tag === GetDataTag.lifecycle ? parseBerTlvs(outer[0].value, 4) : [];
  const lc = inner.find((t) => t.tag === 0x9f70)?.value;
  if (!lc || lc.length !== 1) fail('GET DATA 9F7F has no lifecycle');
  return lc[0]!;
}

/** Runs the factory sequence on one card through `send`; returns its manifest entry. */
export async function personalise(send: Transmit, opts: PersonaliseOptions): Promise<ManifestEntry> {
  const channel = opts.channel ?? 0;
  const uid = opts.uid;
  if (uid.length !== 16) fail('the UID is 16 bytes');
  if (opts.factoryKeys.kvn !== FACTORY_KVN) fail(`the factory key set is KVN ${FACTORY_KVN.toString(16)}`);
  const client = new AdminClient(send, { channel });
  await client.select();
  const lc = lifecycleOf(await client.getData(GetDataTag.lifecycle));
  if (lc !== CardLifecycle.opReady) fail(`the card is in lifecycle ${lc.toString(16)}, not OP_READY`);

  const call = async (fn: number, request: Uint8Array) => {
    let data: Uint8Array = new Uint8Array(0);
    for (const block of buildStoreData(request, { channel })) {
      const r = await send(block);
      const sw = (r[r.length - 2]! << 8) | r[r.length - 1]!;
      if (sw !== 0x9000) throw new AdminSwError(sw, `STORE DATA ${fn.toString(16).toUpperCase()}`);
      data = r.slice(0, r.length - 2);
    }
    return parseFunctionResponse(fn, data);
  };

  const u = await call(Fn.factorySetUid, AdminRequest.factorySetUid(uid));
  if (!equalBytes(req(u, Field.uid, 'BF30'), uid)) fail('the card echoed another UID');

  const g = await call(Fn.factoryGenerateAttestationKey, AdminRequest.factoryGenerateAttestationKey());
  const spki = req(g, Field.spki, 'BF31');
  const csr = req(g, Field.csr, 'BF31');
  const chain = [...(await opts.manufacturerCa({ uid, csr, spki }))];
  if (chain.length === 0) fail('the manufacturer CA returned no certificate');
  const leafSpki = new Uint8Array(new X509Certificate(chain[0]!).publicKey.export({ format: 'der', type: 'spki' }));
  if (!equalBytes(leafSpki, spki)) fail("the manufacturer certificate is not for the card's attestation key");

  const c = await call(Fn.factoryInstallAttestationChain, AdminRequest.factoryInstallAttestationChain(chain));
  if (!equalBytes(req(c, Field.digest, 'BF32'), sha256(chain[0]!))) fail('the card installed another certificate');

  const k = opts.factoryKeys;
  const block = concat(Uint8Array.of(k.kvn), k.enc, k.mac, k.dek);
  const p = await call(Fn.factoryPutKeys, AdminRequest.factoryPutKeys(block));
  block.fill(0);
  const kcv = opt(p, Field.keyCheckValues);
  if (!kcv || !equalBytes(kcv, putKeyResponseData(k))) fail('the card holds other factory keys (KCV mismatch)');

  const seal = await send(Uint8Array.of(claFor(channel), 0xf0, StatusType.isd, CardLifecycle.secured));
  if (seal.length !== 2 || seal[0] !== 0x90 || seal[1] !== 0x00) fail(`SET STATUS 0F answered ${toHex(seal)}`);

  if (lifecycleOf(await client.getData(GetDataTag.lifecycle)) !== CardLifecycle.secured) fail('the card is not SECURED after sealing');
  const uidData = await client.getData(GetDataTag.uid);
  if (!equalBytes(uidData, concat(Uint8Array.of(0xdf, 0x50, 16), uid))) fail('GET DATA DF50 is not the UID');
  const chainData = await client.getData(GetDataTag.attestationChain);
  const stored = parseBerTlvs(chainData, 2)[0]?.value;
  if (!stored || !equalBytes(stored, concat(...chain))) fail('GET DATA DF51 is not the installed chain');
  if (opts.verifyKeys !== false) {
    try {
      await client.open(k);
      const info = parseCardInfo(await client.call(AdminRequest.getCardInfo()));
      if (!equalBytes(info.uid, uid)) fail('GetCardInfo answered another UID');
    } finally {
      client.close();
    }
  }
  return { uid: uid.slice(), attestationChain: chain.map((x) => x.slice()), kvn: k.kvn };
}
