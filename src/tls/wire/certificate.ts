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
import { ByteReader, ByteWriter } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import { encodeHandshake } from './handshake.js';

export function buildCertificate(chain: readonly Uint8Array[], requestContext: Uint8Array = new Uint8Array(0)): Uint8Array {
  const w = new ByteWriter(1024).vec(1, requestContext);
  w.block(3, (l) => {
    for (const der of chain) l.vec(3, der).u16(0);
  });
  return encodeHandshake(HandshakeType.certificate, w.finish());
}

/** A parsed Certificate: the request context and the cert_data of each entry (extensions ignored). */
export interface CertificateMessage {
  readonly requestContext: Uint8Array;
  readonly certificates: readonly Uint8Array[];
}

export function parseCertificate(body: Uint8Array): CertificateMessage {
  const r = new ByteReader(body, 'Certificate');
  const requestContext = r.vec(1).slice();
  const certificates = r.block(3, (l) => {
    const list: Uint8Array[] = [];
    while (!l.done) {
      list.push(l.vec(3, 1).slice());
      l.vec(2); // CertificateEntry extensions: none requested, none used
    }
    return list;
  });
  r.end();
  return { requestContext, certificates };
}
