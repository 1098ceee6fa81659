/**
 * operator/pki/chain: certificate path validation to a set of trust anchors (the manufacturer CAs
 * the operator trusts for attestation), over node:crypto's X509Certificate. imports pki/x509.
 *
 * Checks, for leaf → intermediates… → anchor: each issuer's subject is the next issuer name and its
 * key verifies the signature (`checkIssued` + `verify`), every issuer is a CA (basicConstraints cA),
 * every certificate is within its validity at `now`, the path is at most 4 long, and it ends at a
 * certificate byte-identical to an anchor, or signed by one. Name constraints, policies and
 * revocation of manufacturer certificates are not evaluated (manufacturer CAs are few, pinned by
 * the operator; an untrusted one is removed from the trust list instead).
 *
 * Caches (bounded; enrolments bring the same few manufacturer CAs and intermediates every time, and
 * a card its attestation certificate at each re-enrolment): the parse of a certificate by the
 * SHA-256 of its exact DER (its key as a KeyObject, validity, cA, curve: bytes → facts, nothing
 * trusted), and the signature checks that PASSED, by (SHA-256 of the child, SHA-256 of the issuer).
 * A cached signature only spares the ECDSA/RSA verify of those exact two certificates; everything
 * else is evaluated per call as before: the anchors are the ones given now (a manufacturer CA
 * removed from the trust list ends every path through it), every certificate's validity at `now`,
 * cA, depth. A signature that failed is never cached (it is checked again, and fails again).
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';

export interface ChainResult {
  /** The anchor the path ends at (DER). */
  readonly anchorDer: Uint8Array;
  readonly leaf: X509Certificate;
  /** The leaf's public key (the same object for the same certificate: parsed once). */
  readonly leafKey: KeyObject;
  /** The leaf key's named curve (EC keys), else undefined. */
  readonly leafCurve: string | undefined;
  /** When every certificate of the path (leaf, intermediates used, anchor) is valid: the intersection, ms. */
  readonly pathValidFrom: number;
  readonly pathValidTo: number;
}

export class ChainError extends Error {}

const MAX_DEPTH = 4;

const CACHE_MAX = 4096;

/** What a certificate's bytes say (no trust): parsed once per distinct DER. */
interface Parsed {
  readonly hash: string;
  readonly cert: X509Certificate;
  readonly key: KeyObject;
  readonly curve: string | undefined;
  readonly from: number;
  readonly to: number;
}
const parsedCache = new Map<string, Parsed>();
/** "child hash:issuer hash" of signature checks that passed (checkIssued + verify). */
const verifiedSignatures = new Set<string>();
/** Counters for tests and metrics: parses and signature verifications actually run. */
export const chainCacheStats = { parses: 0, signatureChecks: 0 };

/** Empties both caches (tests; a process that wants to re-verify everything). */
export function clearChainCache(): void {
  parsedCache.clear();
  verifiedSignatures.clear();
}

function parse(der: Uint8Array, what: string): Parsed {
  const hash = createHash('sha256').update(der).digest('hex');
  let p = parsedCache.get(hash);
  if (p) return p;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (e) {
    throw new ChainError(`${what} is not a certificate: ${(e as Error).message}`);
  }
  chainCacheStats.parses++;
  const key = cert.publicKey;
  p = { hash, cert, key, curve: namedCurve(key), from: Date.parse(cert.validFrom), to: Date.parse(cert.validTo) };
  if (parsedCache.size >= CACHE_MAX) parsedCache.clear();
  parsedCache.set(hash, p);
  return p;
}

/** OpenSSL's names (what asymmetricKeyDetails.namedCurve gives) of the curves a JWK names. */
const JWK_CURVES: Readonly<Record<string, string>> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };

/**
 * An EC key's named curve, as `asymmetricKeyDetails.namedCurve` gives it: read from the key's JWK
 * export for the curves a JWK names (~5 µs), else from asymmetricKeyDetails (~25 µs; once per
 * enrolling card, on the enrolment hot path). undefined for other key types.
 */
export function namedCurve(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType !== 'ec') return undefined;
  try {
    const crv = key.export({ format: 'jwk' }).crv;
    const name = crv === undefined ? undefined : JWK_CURVES[crv];
    if (name) return name;
  } catch {
    // a curve JWK does not name (brainpool…): OpenSSL's details say
  }
  return key.asymmetricKeyDetails?.namedCurve;
}

function withinValidity(c: Parsed, now: number, what: string): void {
  if (now < c.from || now > c.to) {
    throw new ChainError(`${what} (${c.cert.subject.replace(/\n/g, ', ')}) is outside its validity ${c.cert.validFrom} – ${c.cert.validTo}`);
  }
}

function signs(issuer: Parsed, child: Parsed): boolean {
  const k = `${child.hash}:${issuer.hash}`;
  if (verifiedSignatures.has(k)) return true;
  if (!child.cert.checkIssued(issuer.cert)) return false;
  chainCacheStats.signatureChecks++;
  const ok = child.cert.verify(issuer.key);
  if (ok) {
    if (verifiedSignatures.size >= CACHE_MAX) verifiedSignatures.clear();
    verifiedSignatures.add(k);
  }
  return ok;
}

/** Validates `leafDer` (with optional intermediates, leaf's issuer first) to one of `anchorsDer`. */
export function verifyChain(leafDer: Uint8Array, intermediatesDer: readonly Uint8Array[], anchorsDer: readonly Uint8Array[], now: number): ChainResult {
  if (anchorsDer.length === 0) throw new ChainError('no trusted manufacturer CA is configured');
  const leaf = parse(leafDer, 'the attestation certificate');
  const anchors = anchorsDer.map((d, i) => ({ der: d, p: parse(d, `trusted CA #${i}`) }));
  const intermediates = intermediatesDer.map((d, i) => parse(d, `intermediate #${i}`));
  if (intermediates.length + 1 > MAX_DEPTH) throw new ChainError(`chain longer than ${MAX_DEPTH}`);
  withinValidity(leaf, now, 'the attestation certificate');
  let from = leaf.from;
  let to = leaf.to;
  const done = (anchorDer: Uint8Array): ChainResult => ({ anchorDer, leaf: leaf.cert, leafKey: leaf.key, leafCurve: leaf.curve, pathValidFrom: from, pathValidTo: to });
  let current = leaf;
  for (let depth = 0; ; depth++) {
    // Ends at an anchor: the current certificate is one, or one signed it.
    const same = anchors.find((a) => a.p.hash === current.hash);
    if (same && depth > 0) return done(same.der);
    const anchor = anchors.find((a) => a.p.cert.ca && signs(a.p, current));
    if (anchor) {
      withinValidity(anchor.p, now, 'the manufacturer CA');
      from = Math.max(from, anchor.p.from);
      to = Math.min(to, anchor.p.to);
      return done(anchor.der);
    }
    const next = intermediates[depth];
    if (!next) throw new ChainError(`the attestation certificate (${leaf.cert.subject.replace(/\n/g, ', ')}) does not chain to a trusted manufacturer CA`);
    if (!next.cert.ca) throw new ChainError(`intermediate #${depth} is not a CA certificate`);
    if (!signs(next, current)) throw new ChainError(`intermediate #${depth} did not sign the certificate below it`);
    withinValidity(next, now, `intermediate #${depth}`);
    from = Math.max(from, next.from);
    to = Math.min(to, next.to);
    current = next;
  }
}
