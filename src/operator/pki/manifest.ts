/**
 * operator/pki/manifest: a manufacturer batch manifest — its JSON entry format, parsing, and the
 * check that every attestation certificate chains to a trusted manufacturer CA. Pure (no store).
 * imports pki/chain, pki/x509, bytes/, errors.
 *
 * Accepted JSON (the card side prints one entry per card: `setls card manifest --card-dir C`):
 *   { "format"?: "setls-manifest-v1", "name"?: "batch name",
 *     "cards": [ ENTRY, … ] }          or   [ ENTRY, … ]   or   ENTRY
 *   ENTRY = { "uid": "<hex, 16 bytes for setls cards>",
 *             "attestationCertificate": "<PEM or base64/hex DER>",   (alias attestation_cert, attestationCert)
 *             "chain"?: ["<PEM intermediate>", …],                   (between it and the manufacturer CA)
 *             "kvn"?: 48 | "30",                                       (factory key set, default 30 hex)
 *             "transportKeyId"?: "<id of D/keys/transport-<id>.key>",
 *             "sequenceCounter"?: <the card's next SCP03 counter (a hint: the first session is precomputed)>,
 *             "labels"?: { "k": "v" }, "profile"?: { "dnsNames": [], "ipAddresses": [] } }
 * Never keys: a manifest carries no secret.
 * When the attestation certificate's subject carries a 32-hex-digit CN or serialNumber, it must be
 * the entry's UID (the manufacturer's signed binding of key to card).
 */
import type { X509Certificate } from 'node:crypto';
import { fromHex, toHex } from '../../bytes/index.js';
import { OpErrorCode } from '../errors.js';
import type { JsonObject } from '../store/types.js';
import { ChainError, verifyChain, type ChainResult } from './chain.js';
import { certificateDer, fingerprintHex, sha256 } from './x509.js';

export const MAX_MANIFEST_ENTRIES = 10_000;

export interface ManifestEntry {
  readonly uid: Uint8Array;
  readonly attestCertDer: Uint8Array;
  readonly attestSpkiSha256: Uint8Array;
  readonly chainDer: readonly Uint8Array[];
  readonly kvn: number;
  readonly transportKeyId: string | null;
  /** The card's next SCP03 sequence counter when it left the factory, if the manufacturer says (a hint). */
  readonly sequenceCounter: number | null;
  readonly labels: JsonObject;
  readonly profile: JsonObject;
  /** The trusted manufacturer CA it chains to (DER fingerprint, hex). */
  readonly anchorFingerprint: string;
  /** What the path check established, kept in the card row (enrolment re-uses it: pki/attestation.ts KnownAttestation). */
  readonly attestKeySpki: Uint8Array;
  readonly attestValidFrom: number;
  readonly attestValidTo: number;
}

export interface EntryProblem {
  readonly index: number;
  readonly uid: string | null;
  readonly code: string;
  readonly message: string;
}

export interface ParsedManifest {
  readonly name: string | null;
  readonly entries: ManifestEntry[];
  readonly problems: EntryProblem[];
}

type Raw = Record<string, unknown>;

function entriesOf(doc: unknown): { name: string | null; raw: unknown[] } | string {
  if (Array.isArray(doc)) return { name: null, raw: doc };
  if (doc && typeof doc === 'object') {
    const d = doc as Raw;
    if (Array.isArray(d['cards'])) {
      if (d['format'] !== undefined && d['format'] !== 'setls-manifest-v1') return `unknown manifest format '${String(d['format'])}'`;
      return { name: typeof d['name'] === 'string' ? d['name'] : null, raw: d['cards'] };
    }
    if ('uid' in d) return { name: null, raw: [d] };
  }
  return 'a manifest is {"cards":[…]}, an array of entries, or one entry';
}

function parseKvn(v: unknown): number {
  if (v === undefined || v === null) return 0x30;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9a-fA-F]{1,2}$/.test(v) ? parseInt(v, 16) : NaN;
  if (!Number.isInteger(n) || n < 0x01 || n > 0x7f) throw new Error(`kvn ${JSON.stringify(v)} is not a key version number (01..7F)`);
  return n;
}

function subjectUidHints(cert: X509Certificate): string[] {
  const out: string[] = [];
  for (const line of cert.subject.split('\n')) {
    const m = /^(CN|serialNumber)=([0-9a-fA-F]{32})$/.exec(line.trim());
    if (m) out.push(m[2]!.toLowerCase());
  }
  return out;
}

function plainObject(v: unknown): JsonObject {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : {};
}

/** Parses and checks a manifest document against the trusted manufacturer CAs (DER). */
export function parseManifest(doc: unknown, trustedCas: readonly Uint8Array[], now: number): ParsedManifest | string {
  const top = entriesOf(doc);
  if (typeof top === 'string') return top;
  if (top.raw.length === 0) return 'the manifest has no entries';
  if (top.raw.length > MAX_MANIFEST_ENTRIES) return `the manifest has ${top.raw.length} entries; at most ${MAX_MANIFEST_ENTRIES} per import`;
  const entries: ManifestEntry[] = [];
  const problems: EntryProblem[] = [];
  const seen = new Set<string>();
  top.raw.forEach((rawEntry, index) => {
    const r = (rawEntry && typeof rawEntry === 'object' ? rawEntry : {}) as Raw;
    const uidText = typeof r['uid'] === 'string' ? r['uid'].replace(/[\s:]/g, '').toLowerCase() : null;
    const fail = (code: string, message: string): void => void problems.push({ index, uid: uidText, code, message });
    if (!uidText || !/^([0-9a-f]{2}){1,32}$/.test(uidText)) return fail(OpErrorCode.manifestInvalid, 'uid must be 1–32 bytes of hex');
    if (seen.has(uidText)) return fail(OpErrorCode.manifestInvalid, `uid ${uidText} appears twice in this manifest`);
    seen.add(uidText);
    const certText = r['attestationCertificate'] ?? r['attestation_cert'] ?? r['attestationCert'];
    if (typeof certText !== 'string') return fail(OpErrorCode.manifestInvalid, 'attestationCertificate (PEM or base64 DER) is missing');
    let certDer: Uint8Array;
    let chainDer: Uint8Array[];
    let kvn: number;
    try {
      certDer = certificateDer(certText);
      const chain = r['chain'] ?? [];
      if (!Array.isArray(chain) || !chain.every((c) => typeof c === 'string')) throw new Error('chain must be an array of PEM certificates');
      chainDer = (chain as string[]).map(certificateDer);
      kvn = parseKvn(r['kvn']);
    } catch (e) {
      return fail(OpErrorCode.manifestInvalid, (e as Error).message);
    }
    const transportKeyId = r['transportKeyId'] ?? r['transport_key_id'] ?? null;
    if (transportKeyId !== null && (typeof transportKeyId !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(transportKeyId))) {
      return fail(OpErrorCode.manifestInvalid, 'transportKeyId must be 1–64 of A–Z a–z 0–9 _ . -');
    }
    const counter = r['sequenceCounter'] ?? null;
    if (counter !== null && (typeof counter !== 'number' || !Number.isInteger(counter) || counter < 0 || counter > 0x1000000)) {
      return fail(OpErrorCode.manifestInvalid, 'sequenceCounter must be an integer 0..16777216');
    }
    let path: ChainResult;
    try {
      path = verifyChain(certDer, chainDer, trustedCas, now);
    } catch (e) {
      if (e instanceof ChainError) return fail(OpErrorCode.attestationChain, e.message);
      throw e;
    }
    const hints = subjectUidHints(path.leaf);
    if (hints.length > 0 && !hints.includes(uidText)) {
      return fail(OpErrorCode.attestationUid, `the attestation certificate names card ${hints[0]}, not ${uidText}`);
    }
    const spki = new Uint8Array(path.leafKey.export({ type: 'spki', format: 'der' }));
    entries.push({
      uid: fromHex(uidText),
      attestCertDer: certDer,
      attestSpkiSha256: sha256(spki),
      attestKeySpki: spki,
      attestValidFrom: path.pathValidFrom,
      attestValidTo: path.pathValidTo,
      chainDer,
      kvn,
      transportKeyId: transportKeyId as string | null,
      sequenceCounter: counter as number | null,
      labels: plainObject(r['labels']),
      profile: plainObject(r['profile']),
      anchorFingerprint: fingerprintHex(path.anchorDer),
    });
  });
  return { name: top.name, entries, problems };
}

export function describeEntry(e: ManifestEntry): string {
  return `${toHex(e.uid)} (kvn ${e.kvn.toString(16)})`;
}
