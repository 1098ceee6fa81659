/**
 * KeyUpdate codec (RFC 8446 §4.6.3).
 *
 *   enum { update_not_requested(0), update_requested(1), (255) } KeyUpdateRequest;
 *   struct { KeyUpdateRequest request_update; } KeyUpdate;
 *
 * imports tls/ siblings only.
 */
import { HandshakeType, KeyUpdateRequest } from '../constants.js';
import { tlsError } from '../errors.js';
import { encodeHandshake } from './handshake.js';

/** The whole KeyUpdate handshake message (header included). */
export function buildKeyUpdate(updateRequested: boolean): Uint8Array {
  return encodeHandshake(
    HandshakeType.keyUpdate,
    Uint8Array.of(updateRequested ? KeyUpdateRequest.updateRequested : KeyUpdateRequest.updateNotRequested),
  );
}

/** Returns whether the peer requested an update; a bad length is decode_error, a bad value illegal_parameter. */
export function parseKeyUpdate(body: Uint8Array): boolean {
  if (body.length !== 1) throw tlsError('ERR_TLS_DECODE', `KeyUpdate of ${body.length} bytes`);
  const v = body[0]!;
  if (v === KeyUpdateRequest.updateRequested) return true;
  if (v === KeyUpdateRequest.updateNotRequested) return false;
  throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `KeyUpdate request_update ${v}`);
}
