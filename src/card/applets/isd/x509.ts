/**
 * card/applets/isd/x509: the certificate checks of the security domain, on node:crypto's
 * X509Certificate — a chain for an identity slot or the attestation key (every certificate parses,
 * the leaf's key is the expected key, each is issued and signed by the next, and, once an operator
 * root anchor exists, the last is the anchor or signed by it), CA certificates for anchors, and a
 * certificate's public key. Every refusal is 6A80. Validity dates are not checked here (the card
 * has no trusted calendar; the TLS applet checks client chains at handshake time).
 * imports bytes/ and gp/admin.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { equalBytes } from '../../../bytes/index.js';
import { IsdLimits, IsdSw } from '../../../gp/admin/constants.js';
import { refuse } from './errors.js';

export function parseCertificate(der: Uint8Array, what: string): X509Certificate {
  if (der.length > IsdLimits.maxCertBytes) refuse(IsdSw.wrongData, `${what}: ${der.length} bytes`);
  let c: X509Certificate;
  try {
    c = new X509Certificate(der);
  } catch {
    return refuse(IsdSw.wrongData, `${what} does not parse`);
  }
  if (!equalBytes(new Uint8Array(c.raw), der)) refuse(IsdSw.wrongData, `${what}: trailing bytes`);
  return c;
}

export function spkiOf(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: 'der', type: 'spki' }));
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Checks `certs` (leaf first) for a key whose SPKI is `spki`; with `anchor`, the chain must end at
 * it (the last certificate is the anchor, or is issued and signed by it).
 */
export function checkChain(certs: readonly Uint8Array[], spki: Uint8Array, anchor: Uint8Array | undefined, what: string): void {
  if (certs.length < 1) refuse(IsdSw.wrongData, `${what}: no certificate`);
  if (certs.length > IsdLimits.maxChainCerts) refuse(IsdSw.wrongData, `${what}: more than ${IsdLimits.maxChainCerts} certificates`);
  if (certs.reduce((a, c) => a + c.length, 0) > IsdLimits.maxChainBytes) refuse(IsdSw.notEnoughMemory, `${what}: chain too large`);
  const parsed = certs.map((c, i) => parseCertificate(c, `${what} certificate ${i}`));
  if (!equalBytes(spkiOf(parsed[0]!.publicKey), spki)) refuse(IsdSw.wrongData, `${what}: the leaf certificate is not for this key`);
  for (let i = 0; i + 1 < parsed.length; i++) {
    if (!issuedBy(parsed[i]!, parsed[i + 1]!)) refuse(IsdSw.wrongData, `${what}: certificate ${i} is not issued by certificate ${i + 1}`);
  }
  if (anchor) {
    const last = certs[certs.length - 1]!;
    if (!equalBytes(last, anchor) && !issuedBy(parsed[parsed.length - 1]!, parseCertificate(anchor, 'operator root'))) {
      refuse(IsdSw.wrongData, `${what}: the chain does not end at the operator root anchor`);
    }
  }
}

/** A trust anchor: a CA certificate (basicConstraints cA). */
export function checkCaCertificate(der: Uint8Array, what: string): X509Certificate {
  const c = parseCertificate(der, what);
  if (!c.ca) refuse(IsdSw.wrongData, `${what} is not a CA certificate`);
  return c;
}
