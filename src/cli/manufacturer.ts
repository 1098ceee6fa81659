/**
 * cli/manufacturer: the local manufacturer of emulated cards, and what the factory writes into each
 * new card through its security domain (docs/admin-protocol.md §8, src/factory).
 *
 * The manufacturer folder (default `.setls/manufacturer/`, next to `.setls/ca/`), made on first use:
 *   ca.crt       the manufacturer CA (public: operators trust it for attestation)
 *   ca.key       its key (0600)
 *   master.key   the manufacturer master key, AES-128 in hex (0600): each card's factory SCP03 key
 *                set (KVN 30) is derived from it and the card's UID (gp/diversify.ts)
 * Its transport key id, `mfr-<KCV of the master in hex>`, names the master in manifests: an operator
 * given the same file (`setls operator init --manufacturer-keys FILE`) keeps it as
 * `keys/transport-<id>.key` and derives each card's factory keys from it.
 *
 * Factory personalisation of one card: a random 16-byte UID, an attestation key generated in the
 * card and certified by the manufacturer CA, the factory key set, then the seal (SECURED). The
 * manifest entry (the operator's format, operator/pki/manifest.ts) carries the UID, the attestation
 * certificate and the KVN — never a key.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SetlsError, concat, equalBytes, fromHex, parseBerTlvs, toHex, wipe } from '../bytes/index.js';
import { AdminClient, GetDataTag, type Transmit } from '../gp/admin/index.js';
import { transportKeyId } from '../gp/diversify.js';
import { FACTORY_KVN, decodeCla, encodeCla } from '../protocol/index.js';
import { factoryKeySet, personalise } from '../factory/index.js';
import { openLocalCa, type LocalCa } from '../pki/local-ca.js';
import { readSecretFile, writeSecretFile } from './card-files.js';

export const MANUFACTURER_CA_NAME = 'setls local manufacturer CA';

export interface Manufacturer {
  readonly dir: string;
  readonly ca: LocalCa;
  readonly masterKeyPath: string;
  /** `mfr-<KCV>`: the name of the master key in manifests (the operator's transportKeyId). */
  readonly transportKeyId: string;
}

/**
 * A transmit that follows `61xx` with GET RESPONSE on the command's channel (what AdminClient and
 * the factory expect), over a raw one (a CardTransport's).
 */
export function withGetResponse(raw: (apdu: Uint8Array) => Promise<Uint8Array>): Transmit {
  return async (apdu) => {
    let r = await raw(apdu);
    const parts: Uint8Array[] = [];
    while (r.length >= 2 && r[r.length - 2] === 0x61) {
      parts.push(r.subarray(0, r.length - 2));
      const ch = decodeCla(apdu[0]!)?.channel ?? 0;
      r = await raw(Uint8Array.of(encodeCla('iso', ch), 0xc0, 0x00, 0x00, r[r.length - 1]!));
    }
    return parts.length ? concat(...parts, r) : r;
  };
}

/** The transport key id of a manufacturer master key: `mfr-` and its AES key check value in hex (gp/diversify.ts). */
export const transportKeyIdOf = transportKeyId;

/** Reads a manufacturer master key file (hex AES key, mode 0600); the caller wipes the result. */
export function readManufacturerMaster(path: string): Uint8Array {
  const text = readSecretFile(path, 'manufacturer master key').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(text)) {
    throw new SetlsError('ERR_CLI_SECRET_FORMAT', `manufacturer master key ${path} must hold an AES key (16, 24 or 32 bytes) in hex`);
  }
  return fromHex(text);
}

/** Opens the manufacturer in `dir`, creating its CA and master key on first use. */
export async function openManufacturer(dir: string): Promise<Manufacturer> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const masterKeyPath = join(dir, 'master.key');
  if (!existsSync(masterKeyPath)) {
    const key = new Uint8Array(randomBytes(16));
    writeSecretFile(masterKeyPath, toHex(key) + '\n');
    wipe(key);
  }
  const master = readManufacturerMaster(masterKeyPath);
  const transportKeyId = transportKeyIdOf(master);
  wipe(master);
  const ca = await openLocalCa(dir, MANUFACTURER_CA_NAME);
  return { dir, ca, masterKeyPath, transportKeyId };
}

/** What the factory knows of a card once it is sealed (never keys). */
export interface FactoryRecord {
  readonly uid: Uint8Array;
  /** Leaf first: the attestation certificate, then the manufacturer CA. */
  readonly attestationChain: readonly Uint8Array[];
  readonly kvn: number;
}

/**
 * Writes the factory state into a new card (its security domain in OP_READY) through `transmit`
 * (61xx followed): UID (random unless given), attestation key made in the card and certified by
 * the manufacturer CA, the factory key set KVN 30 derived from the master key and the UID, the seal.
 */
export async function factoryPersonalise(transmit: Transmit, m: Manufacturer, uid: Uint8Array = new Uint8Array(randomBytes(16))): Promise<FactoryRecord> {
  const master = readManufacturerMaster(m.masterKeyPath);
  const keys = factoryKeySet(master, uid);
  wipe(master);
  try {
    const entry = await personalise(transmit, {
      uid,
      factoryKeys: keys,
      manufacturerCa: async ({ csr }) => [await m.ca.signAttestation(csr), new Uint8Array(m.ca.certificate.rawData)],
    });
    return { uid: entry.uid, attestationChain: entry.attestationChain, kvn: entry.kvn };
  } finally {
    wipe(keys.enc, keys.mac, keys.dek);
  }
}

/** The security domain's public data, read with GET DATA (no secure messaging). */
export interface SecurityDomainInfo {
  readonly lifecycle: number;
  readonly uid: Uint8Array | undefined;
  readonly attestationChain: readonly Uint8Array[];
  readonly kvns: readonly number[];
}

/**
 * Reads the security domain of the card behind `transmit` (SELECT on channel 0, then GET DATA
 * 9F7F, DF50, DF51, 00E0); undefined when the card has none (SELECT 6A82).
 */
export async function readSecurityDomain(transmit: Transmit): Promise<SecurityDomainInfo | undefined> {
  const a = new AdminClient(transmit);
  try {
    await a.select();
  } catch (e) {
    if ((e as { sw?: number }).sw === 0x6a82) return undefined;
    throw e;
  }
  const lcData = parseBerTlvs(parseBerTlvs(await a.getData(GetDataTag.lifecycle))[0]!.value);
  const lifecycle = lcData.find((t) => t.tag === 0x9f70)?.value[0] ?? 0;
  const uid = lcData.find((t) => t.tag === 0x5a)?.value;
  let attestationChain: Uint8Array[] = [];
  if (uid) {
    const chain = parseBerTlvs(await a.getData(GetDataTag.attestationChain))[0]!.value;
    attestationChain = splitCertificates(chain);
  }
  const keyInfo = parseBerTlvs(parseBerTlvs(await a.getData(GetDataTag.keyInformation))[0]!.value);
  const kvns = [...new Set(keyInfo.filter((t) => t.tag === 0xc0).map((t) => t.value[1]!))];
  return { lifecycle, uid, attestationChain, kvns };
}

/** DER certificates back to back → one array per certificate. */
function splitCertificates(b: Uint8Array): Uint8Array[] {
  return parseBerTlvs(b, 16).map((t) => {
    const head = t.value.length < 0x80 ? [0x30, t.value.length] : t.value.length < 0x100 ? [0x30, 0x81, t.value.length] : [0x30, 0x82, t.value.length >> 8, t.value.length & 0xff];
    const out = new Uint8Array(head.length + t.value.length);
    out.set(head);
    out.set(t.value, head.length);
    return out;
  });
}

export const LifecycleName: Readonly<Record<number, string>> = { 0x01: 'OP_READY', 0x07: 'INITIALIZED', 0x0f: 'SECURED', 0x7f: 'CARD_LOCKED', 0xff: 'TERMINATED' };

/** One card in the operator's manifest format (operator/pki/manifest.ts). Never keys. */
export interface ManifestEntryJson {
  readonly uid: string;
  readonly attestationCertificate: string;
  readonly chain?: string[];
  readonly kvn: string;
  readonly transportKeyId?: string;
  readonly labels?: Record<string, string>;
  readonly profile?: { readonly dnsNames: string[]; readonly ipAddresses: string[] };
}

/**
 * The manifest entry of a card: its attestation certificate, the intermediates up to (not
 * including) a self-signed manufacturer root, KVN "30", and the optional fields.
 */
export function manifestEntry(
  r: { readonly uid: Uint8Array; readonly attestationChain: readonly Uint8Array[] },
  extra: { transportKeyId?: string; labels?: Record<string, string>; profile?: { dnsNames: string[]; ipAddresses: string[] } } = {},
): ManifestEntryJson {
  const certs = r.attestationChain.map((d) => new X509Certificate(d));
  if (certs.length === 0) throw new SetlsError('ERR_CLI_NO_SD', 'the card has no attestation certificate');
  const intermediates = certs.slice(1).filter((c) => !(c.checkIssued(c) && c.subject === c.issuer));
  return {
    uid: toHex(r.uid),
    attestationCertificate: certs[0]!.toString(),
    ...(intermediates.length ? { chain: intermediates.map((c) => c.toString()) } : {}),
    kvn: FACTORY_KVN.toString(16),
    ...(extra.transportKeyId ? { transportKeyId: extra.transportKeyId } : {}),
    ...(extra.labels ? { labels: extra.labels } : {}),
    ...(extra.profile ? { profile: extra.profile } : {}),
  };
}

/** Whether `m`'s CA issued the card's attestation certificate (so its master key is the card's transport key). */
export function issuedBy(m: Manufacturer, attestationChain: readonly Uint8Array[]): boolean {
  const leaf = attestationChain[0];
  if (!leaf) return false;
  const ca = new X509Certificate(new Uint8Array(m.ca.certificate.rawData));
  const cert = new X509Certificate(leaf);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey) && attestationChain.slice(1).some((c) => equalBytes(c, new Uint8Array(m.ca.certificate.rawData)));
}
