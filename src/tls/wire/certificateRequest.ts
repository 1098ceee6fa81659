/**
 * CertificateRequest codec (RFC 8446 §4.3.2, §4.2.4).
 *
 *   struct {
 *       opaque certificate_request_context<0..2^8-1>;
 *       Extension extensions<2..2^16-1>;
 *   } CertificateRequest;
 *
 *   opaque DistinguishedName<1..2^16-1>;
 *   struct { DistinguishedName authorities<3..2^16-1>; } CertificateAuthoritiesExtension;
 *
 * imports bytes/ and tls/ siblings only.
 */
import { ByteWriter } from '../../bytes/index.js';
import { ExtensionType, HandshakeType } from '../constants.js';
import type { Extension } from './clientHello.js';
import { encodeHandshake } from './handshake.js';
import { writeExtensions } from './serverHello.js';

/** ExtensionType certificate_authorities (RFC 8446 §4.2.4). */
export const CERTIFICATE_AUTHORITIES_EXTENSION = 47;

export function buildCertificateAuthorities(subjectsDer: readonly Uint8Array[]): Uint8Array {
  return new ByteWriter(256).block(2, (l) => subjectsDer.forEach((dn) => l.vec(2, dn))).finish();
}

export function buildSignatureAlgorithms(schemes: readonly number[]): Uint8Array {
  return new ByteWriter(2 + 2 * schemes.length).block(2, (l) => schemes.forEach((s) => l.u16(s))).finish();
}

/** The whole message; `authorities` (subject DNs, DER) omitted when empty. */
export function buildCertificateRequest(context: Uint8Array, schemes: readonly number[], authorities: readonly Uint8Array[]): Uint8Array {
  const ext: Extension[] = [{ type: ExtensionType.signatureAlgorithms, data: buildSignatureAlgorithms(schemes) }];
  if (authorities.length > 0) ext.push({ type: CERTIFICATE_AUTHORITIES_EXTENSION, data: buildCertificateAuthorities(authorities) });
  const w = new ByteWriter(256).vec(1, context);
  writeExtensions(w, ext);
  return encodeHandshake(HandshakeType.certificateRequest, w.finish());
}
