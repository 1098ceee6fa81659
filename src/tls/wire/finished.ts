/**
 * Finished codec (RFC 8446 §4.4.4).
 *
 *   struct { opaque verify_data[Hash.length]; } Finished;
 *
 * verify_data = HMAC(finished_key, Transcript-Hash(Handshake Context, Certificate*, CertificateVerify*)),
 * finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length) — computed in keyschedule/.
 *
 * imports bytes/ and tls/ siblings only.
 */
import { HandshakeType } from '../constants.js';
import { tlsError } from '../errors.js';
import { encodeHandshake } from './handshake.js';

export function buildFinished(verifyData: Uint8Array): Uint8Array {
  return encodeHandshake(HandshakeType.finished, verifyData);
}

export function parseFinished(body: Uint8Array, hashLength: number): Uint8Array {
  if (body.length !== hashLength) throw tlsError('ERR_TLS_DECODE', `Finished of ${body.length} bytes`);
  return body;
}
