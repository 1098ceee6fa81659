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
 */
import { X509Certificate } from 'node:crypto';

export interface ChainResult {
  /** The anchor the path ends at (DER). */
  readonly anchorDer: Uint8Array;
  readonly leaf: X509Certificate;
}

export class ChainError extends Error {}

const MAX_DEPTH = 4;

function parse(der: Uint8Array, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (e) {
    throw new ChainError(`${what} is not a certificate: ${(e as Error).message}`);
  }
}

/** Parsed trust anchors by DER: the same few manufacturer CAs come with every enrolment (bounded). */
const anchorCache = new Map<string, X509Certificate>();
function parseAnchor(der: Uint8Array, what: string): X509Certificate {
  const k = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  let c = anchorCache.get(k);
  if (!c) {
    c = parse(der, what);
    if (anchorCache.size >= 256) anchorCache.clear();
    anchorCache.set(k, c);
  }
  return c;
}

function withinValidity(c: X509Certificate, now: number, what: string): void {
  if (now < Date.parse(c.validFrom) || now > Date.parse(c.validTo)) {
    throw new ChainError(`${what} (${c.subject.replace(/\n/g, ', ')}) is outside its validity ${c.validFrom} – ${c.validTo}`);
  }
}

function signs(issuer: X509Certificate, child: X509Certificate): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

/** Validates `leafDer` (with optional intermediates, leaf's issuer first) to one of `anchorsDer`. */
export function verifyChain(leafDer: Uint8Array, intermediatesDer: readonly Uint8Array[], anchorsDer: readonly Uint8Array[], now: number): ChainResult {
  if (anchorsDer.length === 0) throw new ChainError('no trusted manufacturer CA is configured');
  const leaf = parse(leafDer, 'the attestation certificate');
  const anchors = anchorsDer.map((d, i) => ({ der: d, cert: parseAnchor(d, `trusted CA #${i}`) }));
  const intermediates = intermediatesDer.map((d, i) => parse(d, `intermediate #${i}`));
  if (intermediates.length + 1 > MAX_DEPTH) throw new ChainError(`chain longer than ${MAX_DEPTH}`);
  withinValidity(leaf, now, 'the attestation certificate');
  let current = leaf;
  for (let depth = 0; ; depth++) {
    // Ends at an anchor: the current certificate is one, or one signed it.
    const same = anchors.find((a) => a.cert.raw.equals(current.raw));
    if (same && depth > 0) return { anchorDer: same.der, leaf };
    const anchor = anchors.find((a) => a.cert.ca && signs(a.cert, current));
    if (anchor) {
      withinValidity(anchor.cert, now, 'the manufacturer CA');
      return { anchorDer: anchor.der, leaf };
    }
    const next = intermediates[depth];
    if (!next) throw new ChainError(`the attestation certificate (${leaf.subject.replace(/\n/g, ', ')}) does not chain to a trusted manufacturer CA`);
    if (!next.ca) throw new ChainError(`intermediate #${depth} is not a CA certificate`);
    if (!signs(next, current)) throw new ChainError(`intermediate #${depth} did not sign the certificate below it`);
    withinValidity(next, now, `intermediate #${depth}`);
    current = next;
  }
}
