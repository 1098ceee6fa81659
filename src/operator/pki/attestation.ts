/**
 * operator/pki/attestation: key attestation as the operator verifies it — the evidence a card
 * returns from AttestKey (a statement, its signature by the factory attestation key, and that key's
 * certificate chain), the claims decoded from the statement, the `AttestationVerifier` interface,
 * and the default verifier. imports pki/chain, pki/x509, bytes/, errors.
 *
 * The statement's byte format belongs to the card's security domain (src/card/applets/isd, not
 * merged yet): it is isolated behind `AttestationFormat.decode`. `SETLS_ATTESTATION_V1` below is the
 * provisional format used by the operator's tests (software attestations); the integrator swaps in
 * the ISD's decoder without touching the checks:
 *
 *   statement = BF22 L { 5A 10 UID | 84 01 slot | 8B 20 SHA-256(SPKI) | 85 20 nonce | 8C 04 counter }
 *   signature = ECDSA P-256 with SHA-256 over `statement` (DER Ecdsa-Sig-Value, or raw r‖s 64 bytes)
 *   chain     = [attestation certificate, intermediates…] (DER)
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { encodeBerTlv, encodeBerTlvs, equalBytes, parseBerTlvs, toHex } from '../../bytes/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import { ChainError, namedCurve, verifyChain } from './chain.js';
import { p256PublicKey } from './p256-key.js';
import { sha256 } from './x509.js';

/** The facts the card's attestation key signs about one generated key. */
export interface AttestationClaims {
  /** Card UID (16 bytes for setls cards). */
  readonly uid: Uint8Array;
  /** Key slot (key id) in the card. */
  readonly slot: number;
  /** SHA-256 of the attested key's DER SubjectPublicKeyInfo. */
  readonly spkiSha256: Uint8Array;
  /** The operator's nonce (32 bytes) the statement is bound to. */
  readonly nonce: Uint8Array;
  /** The card's attestation counter (monotonic per card). */
  readonly counter: number;
}

/** Evidence as relayed from the card (untrusted until verified). */
export interface AttestationEvidence {
  /** Exactly the bytes the attestation key signed. */
  readonly statement: Uint8Array;
  /** ECDSA-SHA256 signature over `statement`: DER, or raw r‖s (64 bytes). */
  readonly signature: Uint8Array;
  /** The attestation certificate, then any intermediates (DER), up to a manufacturer CA. */
  readonly chain: readonly Uint8Array[];
}

/** Decodes a statement's bytes into claims; throws on malformed input. */
export interface AttestationFormat {
  readonly name: string;
  decode(statement: Uint8Array): AttestationClaims;
}

/**
 * What manifest import verified about a card's attestation certificate (pki/chain.ts), kept in its
 * card row: the certificate's key, the trusted manufacturer CA its path ended at, and when every
 * certificate of that path is valid. Evidence that carries exactly that certificate needs no parse
 * and no path check again: only the anchor's trust and the validity at `now` are re-evaluated.
 */
export interface KnownAttestation {
  /** The attestation certificate (DER) these facts are about. */
  readonly certDer: Uint8Array;
  /** Its SubjectPublicKeyInfo (DER), as OpenSSL read it at import. */
  readonly keySpki: Uint8Array;
  /** SHA-256 of the trusted manufacturer CA (DER) the path ended at. */
  readonly anchorSha256: Uint8Array;
  /** The intersection of the path's certificates' validity periods, ms. */
  readonly validFrom: number;
  readonly validTo: number;
}

export interface VerifiedAttestation {
  readonly claims: AttestationClaims;
  /** The attestation (leaf) certificate, DER. */
  readonly attestCertDer: Uint8Array;
  /** The trusted manufacturer CA the chain ended at, DER. */
  readonly anchorDer: Uint8Array;
  /** true when the chain was taken from what manifest import verified (verifyKnown), not checked again. */
  readonly fromManifest?: boolean;
}

export interface AttestationVerifier {
  /**
   * Verifies the chain to one of `trustedManufacturerCas` (ERR_OP_ATTESTATION_CHAIN), the signature
   * over the statement by the leaf's key (ERR_OP_ATTESTATION_SIGNATURE) and decodes the claims
   * (ERR_OP_ATTESTATION_FORMAT). Binding to a manifest, UID, nonce and CSR: the enrolment checks.
   */
  verify(evidence: AttestationEvidence, trustedManufacturerCas: readonly Uint8Array[], now: number): VerifiedAttestation;
  /**
   * `verify` with what manifest import verified (`known`) in place of a parse and a path check, when
   * the evidence's leaf certificate is byte-equal to `known.certDer`, the anchor its path ended at is
   * still one of `trustedManufacturerCas` and `now` is within that path's validity: the path the
   * import checked (the manifest's intermediates) still holds. Otherwise `verify` decides. Then the
   * signature and the claims as in `verify`. Optional: without it, `verify` runs.
   */
  verifyKnown?(evidence: AttestationEvidence, known: KnownAttestation, trustedManufacturerCas: readonly Uint8Array[], now: number): VerifiedAttestation;
  /**
   * The nonce the statement claims, NOT verified (null when it does not decode): only to start the
   * read of its enrolment while `verify` runs; nothing may be decided on it.
   */
  claimedNonce?(evidence: AttestationEvidence): Uint8Array | null;
}

const TAG_STATEMENT = 0xbf22;
const TAG_UID = 0x5a;
const TAG_SLOT = 0x84;
const TAG_SPKI_HASH = 0x8b;
const TAG_NONCE = 0x85;
const TAG_COUNTER = 0x8c;

/** The provisional statement format (see the header). */
export const SETLS_ATTESTATION_V1: AttestationFormat & { encode(c: AttestationClaims): Uint8Array } = {
  name: 'setls-attestation-v1',
  encode(c: AttestationClaims): Uint8Array {
    const counter = new Uint8Array(4);
    new DataView(counter.buffer).setUint32(0, c.counter >>> 0);
    return encodeBerTlv(
      TAG_STATEMENT,
      encodeBerTlvs([
        { tag: TAG_UID, value: c.uid },
        { tag: TAG_SLOT, value: Uint8Array.of(c.slot) },
        { tag: TAG_SPKI_HASH, value: c.spkiSha256 },
        { tag: TAG_NONCE, value: c.nonce },
        { tag: TAG_COUNTER, value: counter },
      ]),
    );
  },
  decode(statement: Uint8Array): AttestationClaims {
    const outer = parseBerTlvs(statement, 1);
    if (outer.length !== 1 || outer[0]!.tag !== TAG_STATEMENT) throw new Error('not a BF22 attestation statement');
    const items = parseBerTlvs(outer[0]!.value, 16);
    const one = (tag: number, len: number | null): Uint8Array => {
      const found = items.filter((i) => i.tag === tag);
      if (found.length !== 1) throw new Error(`tag ${tag.toString(16)} must appear once`);
      const v = found[0]!.value;
      if (len !== null && v.length !== len) throw new Error(`tag ${tag.toString(16)}: ${v.length} bytes, expected ${len}`);
      return v;
    };
    const uid = one(TAG_UID, null);
    if (uid.length < 1 || uid.length > 32) throw new Error('UID length');
    const counter = one(TAG_COUNTER, 4);
    return {
      uid: uid.slice(),
      slot: one(TAG_SLOT, 1)[0]!,
      spkiSha256: one(TAG_SPKI_HASH, 32).slice(),
      nonce: one(TAG_NONCE, 32).slice(),
      counter: new DataView(counter.buffer, counter.byteOffset, 4).getUint32(0),
    };
  },
};

/** SHA-256 of a trusted CA's DER, once per array (the trust list is cached: pki/trust-cache.ts). */
const anchorHashes = new WeakMap<Uint8Array, Uint8Array>();
function anchorHash(der: Uint8Array): Uint8Array {
  let h = anchorHashes.get(der);
  if (!h) anchorHashes.set(der, (h = sha256(der)));
  return h;
}

/** How often verifyKnown answered from the facts (tests, metrics). */
export const knownAttestations = { used: 0 };

/** The default verifier: chain, then signature, then format. */
export class DefaultAttestationVerifier implements AttestationVerifier {
  constructor(private readonly format: AttestationFormat = SETLS_ATTESTATION_V1) {}

  verify(evidence: AttestationEvidence, trusted: readonly Uint8Array[], now: number): VerifiedAttestation {
    const [leafDer, ...intermediates] = evidence.chain;
    if (!leafDer) throw new OpError(OpErrorCode.attestationChain, 'the attestation carries no certificate');
    let anchorDer: Uint8Array;
    let key: KeyObject;
    let curve: string | undefined;
    try {
      // the chain's parse of the leaf, its key and curve read once per distinct certificate (pki/chain.ts)
      ({ anchorDer, leafKey: key, leafCurve: curve } = verifyChain(leafDer, intermediates, trusted, now));
    } catch (e) {
      if (e instanceof ChainError) throw new OpError(OpErrorCode.attestationChain, e.message);
      throw e;
    }
    return this.signedClaims(evidence, key, curve, leafDer, anchorDer);
  }

  verifyKnown(evidence: AttestationEvidence, known: KnownAttestation, trusted: readonly Uint8Array[], now: number): VerifiedAttestation {
    const leafDer = evidence.chain[0];
    // Only a success is taken from the facts: another certificate, an anchor no longer in the list
    // (removed, or renewed under another DER) or a path outside its validity now is decided by the
    // full check, which may find another path through the evidence's intermediates, or refuses.
    if (!leafDer || !equalBytes(leafDer, known.certDer)) return this.verify(evidence, trusted, now);
    const anchorDer = trusted.find((t) => equalBytes(anchorHash(t), known.anchorSha256));
    if (!anchorDer || now < known.validFrom || now > known.validTo) return this.verify(evidence, trusted, now);
    knownAttestations.used++;
    const p256 = p256PublicKey(known.keySpki);
    // not P-256 (or not its usual encoding): OpenSSL decodes the DER, and the check below refuses it
    const key = p256 ?? createPublicKey({ key: Buffer.from(known.keySpki), format: 'der', type: 'spki' });
    return { ...this.signedClaims(evidence, key, p256 ? 'prime256v1' : namedCurve(key), leafDer, anchorDer), fromManifest: true };
  }

  /** The statement's signature by the attestation key, then its claims (the checks after the chain). */
  private signedClaims(evidence: AttestationEvidence, key: KeyObject, curve: string | undefined, leafDer: Uint8Array, anchorDer: Uint8Array): VerifiedAttestation {
    if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
      throw new OpError(OpErrorCode.attestationSignature, 'the attestation key is not ECDSA P-256');
    }
    const sig = evidence.signature;
    const dsaEncoding = sig.length === 64 && sig[0] !== 0x30 ? 'ieee-p1363' : 'der';
    let ok = false;
    try {
      ok = nodeVerify('sha256', evidence.statement, { key, dsaEncoding }, sig);
    } catch {
      ok = false;
    }
    if (!ok) throw new OpError(OpErrorCode.attestationSignature, 'the attestation statement is not signed by the attestation certificate’s key');
    let claims: AttestationClaims;
    try {
      claims = this.format.decode(evidence.statement);
    } catch (e) {
      throw new OpError(OpErrorCode.attestationFormat, `attestation statement (${this.format.name}): ${(e as Error).message}`);
    }
    return { claims, attestCertDer: new Uint8Array(leafDer), anchorDer };
  }

  claimedNonce(evidence: AttestationEvidence): Uint8Array | null {
    try {
      return this.format.decode(evidence.statement).nonce;
    } catch {
      return null;
    }
  }
}

/** Hex of a UID, the form used in the API, manifests and subjects. */
export function uidHex(uid: Uint8Array): string {
  return toHex(uid);
}
