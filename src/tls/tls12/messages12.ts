/**
 * TLS 1.2 handshake message codecs (RFC 5246 §7.4, RFC 8422 §5, RFC 4279 §2, RFC 5077 §3.3) and the
 * TLS 1.2-only extensions (RFC 5746, RFC 7627, RFC 5077, RFC 8422 §5.1.2).
 *
 *   opaque ASN.1Cert<1..2^24-1>;
 *   struct { ASN.1Cert certificate_list<0..2^24-1>; } Certificate;
 *   struct { ECParameters curve_params; ECPoint public; } ServerECDHParams;     curve_type named_curve(3)
 *   struct { ServerECDHParams params; digitally-signed struct {...} signed_params; } ServerKeyExchange;
 *   struct { SignatureAndHashAlgorithm algorithm; opaque signature<0..2^16-1>; } DigitallySigned;
 *   struct { ClientCertificateType certificate_types<1..2^8-1>;
 *            SignatureAndHashAlgorithm supported_signature_algorithms<2..2^16-2>;
 *            DistinguishedName certificate_authorities<0..2^16-1>; } CertificateRequest;
 *   struct { opaque point<1..2^8-1>; } ECPoint;   (ClientKeyExchange, ECDHE)
 *   opaque psk_identity<0..2^16-1>;               (ClientKeyExchange, PSK)
 *   struct { uint32 ticket_lifetime_hint; opaque ticket<0..2^16-1>; } NewSessionTicket;
 *   struct { opaque verify_data[12]; } Finished;
 * imports bytes/ and tls/ siblings only.
 */
import { ByteReader, ByteWriter } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import { tlsError } from '../errors.js';
import { encodeHandshake } from '../wire/handshake.js';

const NAMED_CURVE = 3;

export function buildCertificate12(chain: readonly Uint8Array[]): Uint8Array {
  const body = new ByteWriter().block(3, (w) => chain.forEach((c) => w.vec(3, c))).finish();
  return encodeHandshake(HandshakeType.certificate, body);
}

export function parseCertificate12(body: Uint8Array): Uint8Array[] {
  const r = new ByteReader(body, 'Certificate');
  const list = r.block(3, (l) => {
    const out: Uint8Array[] = [];
    while (!l.done) out.push(l.vec(3, 1).slice());
    return out;
  });
  r.end();
  return list;
}

/** ServerECDHParams (the part covered by the signature together with both randoms). */
export function ecdheParams(group: number, publicKey: Uint8Array): Uint8Array {
  return new ByteWriter(4 + publicKey.length).u8(NAMED_CURVE).u16(group).vec(1, publicKey).finish();
}

export function buildServerKeyExchange(params: Uint8Array, scheme: number, signature: Uint8Array): Uint8Array {
  const body = new ByteWriter(params.length + signature.length + 4).bytes(params).u16(scheme).vec(2, signature).finish();
  return encodeHandshake(HandshakeType.serverKeyExchange, body);
}

/** ClientCertificateType (RFC 5246 §7.4.4, RFC 8422 §5.5). */
export const ClientCertificateType = { rsaSign: 1, ecdsaSign: 64 } as const;

export function buildCertificateRequest12(types: readonly number[], schemes: readonly number[], authorities: readonly Uint8Array[]): Uint8Array {
  const body = new ByteWriter()
    .block(1, (w) => types.forEach((t) => w.u8(t)))
    .block(2, (w) => schemes.forEach((s) => w.u16(s)))
    .block(2, (w) => authorities.forEach((dn) => w.vec(2, dn)))
    .finish();
  return encodeHandshake(HandshakeType.certificateRequest, body);
}

export function buildServerHelloDone(): Uint8Array {
  return encodeHandshake(HandshakeType.serverHelloDone, new Uint8Array(0));
}

export function parseClientKeyExchangeEcdhe(body: Uint8Array): Uint8Array {
  const r = new ByteReader(body, 'ClientKeyExchange');
  const point = r.vec(1, 1);
  r.end();
  return point;
}

export function parseClientKeyExchangePsk(body: Uint8Array): Uint8Array {
  const r = new ByteReader(body, 'ClientKeyExchange');
  const identity = r.vec(2, 0, 128); // RFC 4279 §5.3: identities up to 128 bytes
  r.end();
  return identity;
}

export function parseDigitallySigned(body: Uint8Array): { scheme: number; signature: Uint8Array } {
  const r = new ByteReader(body, 'CertificateVerify');
  const scheme = r.u16();
  const signature = r.vec(2);
  r.end();
  return { scheme, signature };
}

export function buildNewSessionTicket12(lifetimeHint: number, ticket: Uint8Array): Uint8Array {
  return encodeHandshake(HandshakeType.newSessionTicket, new ByteWriter(ticket.length + 6).u32(lifetimeHint).vec(2, ticket).finish());
}

export function buildFinished12(verifyData: Uint8Array): Uint8Array {
  return encodeHandshake(HandshakeType.finished, verifyData);
}

export function parseFinished12(body: Uint8Array): Uint8Array {
  if (body.length !== 12) throw tlsError('ERR_TLS_DECODE', `TLS 1.2 Finished of ${body.length} bytes`);
  return body;
}

// ------------------------------------------------------------------ TLS 1.2-only extensions

/** RFC 5746 §3.2: struct { opaque renegotiated_connection<0..255>; } RenegotiationInfo; */
export function parseRenegotiationInfo(data: Uint8Array): Uint8Array {
  const r = new ByteReader(data, 'renegotiation_info');
  const v = r.vec(1);
  r.end();
  return v;
}

/** The server's RI on an initial handshake: an empty renegotiated_connection. */
export const EMPTY_RENEGOTIATION_INFO = Uint8Array.of(0);

/** RFC 8422 §5.1.2: ECPointFormat ec_point_format_list<1..2^8-1>; must contain uncompressed(0). */
export function parseEcPointFormats(data: Uint8Array): number[] {
  const r = new ByteReader(data, 'ec_point_formats');
  const v = [...r.vec(1, 1)];
  r.end();
  return v;
}

export const EC_POINT_FORMATS_UNCOMPRESSED = Uint8Array.of(1, 0);
