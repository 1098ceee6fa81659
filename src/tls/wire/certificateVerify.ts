/**
 * CertificateVerify codec and signed content (RFC 8446 §4.4.3).
 *
 *   struct {
 *       SignatureScheme algorithm;
 *       opaque signature<0..2^16-1>;
 *   } CertificateVerify;
 *
 * The signature covers: 64 x 0x20 || "TLS 1.3, server CertificateVerify" || 0x00 || Transcript-Hash
 * (the client's: "TLS 1.3, client CertificateVerify").
 *
 * imports bytes/ and tls/ siblings only.
 */
import { ByteReader, ByteWriter, concat } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import { encodeHandshake } from './handshake.js';

const SERVER_CONTEXT = new TextEncoder().encode('TLS 1.3, server CertificateVerify');

export function serverSignedContent(transcriptHash: Uint8Array): Uint8Array {
  return concat(new Uint8Array(64).fill(0x20), SERVER_CONTEXT, Uint8Array.of(0), transcriptHash);
}

const CLIENT_CONTEXT = new TextEncoder().encode('TLS 1.3, client CertificateVerify');

export function clientSignedContent(transcriptHash: Uint8Array): Uint8Array {
  return concat(new Uint8Array(64).fill(0x20), CLIENT_CONTEXT, Uint8Array.of(0), transcriptHash);
}

export function parseCertificateVerify(body: Uint8Array): { scheme: number; signature: Uint8Array } {
  const r = new ByteReader(body, 'CertificateVerify');
  const scheme = r.u16();
  const signature = r.vec(2).slice();
  r.end();
  return { scheme, signature };
}

export function buildCertificateVerify(scheme: number, signature: Uint8Array): Uint8Array {
  return encodeHandshake(HandshakeType.certificateVerify, new ByteWriter(signature.length + 4).u16(scheme).vec(2, signature).finish());
}
