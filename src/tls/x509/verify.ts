/**
 * Client certificate chain verification (mutual TLS, both TLS versions), with node:crypto's
 * X509Certificate doing the parsing and signature checks:
 *   - leaf first, at most MAX_CHAIN_LENGTH certificates of at most MAX_CERTIFICATE_SIZE bytes each;
 *   - each certificate issued by the next one (checkIssued: names, key identifiers, keyCertSign)
 *     and signed by its key (verify);
 *   - the last one equal to a trust anchor or issued and signed by one;
 *   - every certificate (anchor included) valid at `nowMs`;
 *   - intermediates and anchors are CAs (basicConstraints cA);
 *   - a leaf with extendedKeyUsage allows clientAuth (or anyExtendedKeyUsage);
 *   - the leaf key is one a TLS CertificateVerify can use (EC, RSA, RSA-PSS, Ed25519).
 * Errors are SetlsError with ERR_TLS_* codes that errors.ts maps to unknown_ca (48),
 * certificate_expired (45), bad_certificate (42) and unsupported_certificate (43).
 * imports node:crypto, bytes/ and tls/ siblings only.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { equalBytes } from '../../bytes/index.js';
import type { PeerIdentity } from '../api.js';
import { tlsError } from '../errors.js';

export const MAX_CHAIN_LENGTH = 8;
export const MAX_CERTIFICATE_SIZE = 16384;
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const EKU_ANY = '2.5.29.37.0';
const LEAF_KEY_TYPES: readonly string[] = ['ec', 'rsa', 'rsa-pss', 'ed25519'];

function parse(der: Uint8Array, what: string): X509Certificate {
  if (der.length === 0 || der.length > MAX_CERTIFICATE_SIZE) {
    throw tlsError('ERR_TLS_BAD_CERTIFICATE', `${what}: ${der.length} bytes (1..${MAX_CERTIFICATE_SIZE})`);
  }
  try {
    return new X509Certificate(der);
  } catch (e) {
    throw tlsError('ERR_TLS_BAD_CERTIFICATE', `${what} does not parse: ${(e as Error).message}`);
  }
}

function checkValidity(c: X509Certificate, nowMs: number, what: string): void {
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  if (!Number.isFinite(from) || !Number.isFinite(to)) throw tlsError('ERR_TLS_BAD_CERTIFICATE', `${what}: unreadable validity`);
  // RFC 8446 §6.2: certificate_expired covers "expired or not currently valid".
  if (nowMs < from || nowMs > to) throw tlsError('ERR_TLS_CERTIFICATE_EXPIRED', `${what} not valid at ${new Date(nowMs).toISOString()}`);
}

/** Whether `issuer` issued and signed `subject`. */
function issuedBy(subject: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Splits node's subjectAltName ("DNS:a, IP Address:1.2.3.4", values with commas are JSON-quoted). */
export function splitSubjectAltNames(san: string | undefined): string[] {
  if (!san) return [];
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < san.length; i++) {
    const ch = san[i]!;
    if (quoted) {
      cur += ch;
      if (ch === '\\' && i + 1 < san.length) cur += san[++i]!;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
      cur += ch;
    } else if (ch === ',' && san[i + 1] === ' ') {
      out.push(cur);
      cur = '';
      i++;
    } else {
      cur += ch;
    }
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * Verifies a client chain (DER, leaf first) against DER trust anchors at time `nowMs` and returns
 * the peer identity. Throws SetlsError (ERR_TLS_UNKNOWN_CA / _CERTIFICATE_EXPIRED / _BAD_CERTIFICATE /
 * _UNSUPPORTED_CERTIFICATE) when it does not verify.
 */
export function verifyClientChain(chainDer: readonly Uint8Array[], trustAnchors: readonly Uint8Array[], nowMs: number): PeerIdentity {
  if (chainDer.length === 0) throw tlsError('ERR_TLS_BAD_CERTIFICATE', 'empty certificate chain');
  if (chainDer.length > MAX_CHAIN_LENGTH) {
    throw tlsError('ERR_TLS_BAD_CERTIFICATE', `chain of ${chainDer.length} certificates (at most ${MAX_CHAIN_LENGTH})`);
  }
  const chain = chainDer.map((d, i) => parse(d, `certificate ${i}`));
  const anchors: { der: Uint8Array; cert: X509Certificate }[] = [];
  for (const der of trustAnchors) {
    try {
      anchors.push({ der, cert: new X509Certificate(der) });
    } catch {
      // a malformed anchor is configuration, not the peer's fault: it just never matches
    }
  }

  const leaf = chain[0]!;
  const keyType = leaf.publicKey.asymmetricKeyType;
  if (keyType === undefined || !LEAF_KEY_TYPES.includes(keyType)) {
    throw tlsError('ERR_TLS_UNSUPPORTED_CERTIFICATE', `leaf key type ${keyType ?? 'unknown'}`);
  }
  const eku = leaf.keyUsage as string[] | undefined; // node: the extendedKeyUsage OIDs, undefined when absent
  if (eku && eku.length > 0 && !eku.includes(EKU_CLIENT_AUTH) && !eku.includes(EKU_ANY)) {
    throw tlsError('ERR_TLS_UNSUPPORTED_CERTIFICATE', 'leaf extendedKeyUsage does not allow clientAuth');
  }

  // Walk the chain; stop early at a certificate that is itself a trust anchor (clients may send the root).
  let top = chain.length - 1;
  let anchor: X509Certificate | undefined;
  for (let i = 0; i < chain.length; i++) {
    const der = chainDer[i]!;
    const same = anchors.find((a) => equalBytes(a.der, der));
    if (same && i > 0) {
      top = i;
      anchor = same.cert;
      break;
    }
  }
  for (let i = 0; i <= top; i++) {
    const c = chain[i]!;
    checkValidity(c, nowMs, `certificate ${i}`);
    if (i > 0 && !c.ca) throw tlsError('ERR_TLS_BAD_CERTIFICATE', `certificate ${i} is not a CA`);
    if (i < top && !issuedBy(c, chain[i + 1]!)) {
      throw tlsError('ERR_TLS_BAD_CERTIFICATE', `certificate ${i} is not issued by certificate ${i + 1}`);
    }
  }
  if (!anchor) {
    const last = chain[top]!;
    anchor = anchors.find((a) => issuedBy(last, a.cert))?.cert;
    if (!anchor) throw tlsError('ERR_TLS_UNKNOWN_CA', 'chain does not end at a trust anchor');
  }
  if (!anchor.ca) throw tlsError('ERR_TLS_UNKNOWN_CA', 'trust anchor is not a CA');
  checkValidity(anchor, nowMs, 'trust anchor');

  return identityOf(leaf, chainDer[0]!);
}

function identityOf(leaf: X509Certificate, der: Uint8Array): PeerIdentity {
  const certificate = new Uint8Array(der);
  return {
    subject: leaf.subject,
    subjectAltNames: splitSubjectAltNames(leaf.subjectAltName),
    fingerprint256: new Uint8Array(createHash('sha256').update(certificate).digest()),
    certificate,
  };
}

/**
 * The PeerIdentity of a leaf certificate verified earlier (restored from a session ticket the server
 * sealed itself); no chain check. Throws ERR_TLS_BAD_CERTIFICATE when it does not parse.
 */
export function peerIdentityFromCertificate(der: Uint8Array): PeerIdentity {
  return identityOf(parse(der, 'peer certificate'), der);
}
