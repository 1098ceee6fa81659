/**
 * Certificate codec (RFC 8446 §4.4.2), X.509 only.
 *
 *   struct {
 *       select (certificate_type) { case X509: opaque cert_data<1..2^24-1>; ... };
 *       Extension extensions<0..2^16-1>;
 *   } CertificateEntry;
 *
 *   struct {
 *       opaque certificate_request_context<0..2^8-1>;
 *       CertificateEntry certificate_list<0..2^24-1>;
 *   } Certificate;
 *
 * imports bytes/ and tls/ siblings only.
 */
import { ByteWriter } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import { encodeHandshake } from './handshake.js';

export function buildCertificate(chain: readonly Uint8Array[], requestContext: Uint8Array = new Uint8Array(0)): Uint8Array {
  const w = new ByteWriter(1024).vec(1, requestContext);
  w.block(3, (l) => {
    for (const der of chain) l.vec(3, der).u16(0);
  });
  return encodeHandshake(HandshakeType.certificate, w.finish());
}
