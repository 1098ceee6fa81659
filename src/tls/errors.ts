/**
 * Every internal error the engine raises, and the ONE function that maps an error to the alert we send.
 * imports bytes/ and the API constants only.
 */
import { SetlsError } from '../bytes/index.js';
import { AlertDescription } from './api.js';

/** Stable error codes raised inside src/tls. */
export const TlsErrorCode = {
  decode: 'ERR_TLS_DECODE',
  unexpectedMessage: 'ERR_TLS_UNEXPECTED_MESSAGE',
  badRecordMac: 'ERR_TLS_BAD_RECORD_MAC',
  recordOverflow: 'ERR_TLS_RECORD_OVERFLOW',
  badRecord: 'ERR_TLS_BAD_RECORD',
  handshakeFailure: 'ERR_TLS_HANDSHAKE_FAILURE',
  illegalParameter: 'ERR_TLS_ILLEGAL_PARAMETER',
  badKeyShare: 'ERR_TLS_BAD_KEY_SHARE',
  protocolVersion: 'ERR_TLS_PROTOCOL_VERSION',
  /** RFC 7507: TLS_FALLBACK_SCSV from a client below our highest version. */
  inappropriateFallback: 'ERR_TLS_INAPPROPRIATE_FALLBACK',
  decryptError: 'ERR_TLS_DECRYPT_ERROR',
  missingExtension: 'ERR_TLS_MISSING_EXTENSION',
  unrecognizedName: 'ERR_TLS_UNRECOGNIZED_NAME',
  noApplicationProtocol: 'ERR_TLS_NO_APPLICATION_PROTOCOL',
  sequenceExhausted: 'ERR_TLS_SEQUENCE_EXHAUSTED',
  internal: 'ERR_TLS_INTERNAL',
  /** Client certificate chain verification (x509/) and client authentication. */
  badCertificate: 'ERR_TLS_BAD_CERTIFICATE',
  unsupportedCertificate: 'ERR_TLS_UNSUPPORTED_CERTIFICATE',
  certificateExpired: 'ERR_TLS_CERTIFICATE_EXPIRED',
  unknownCa: 'ERR_TLS_UNKNOWN_CA',
  /** A client certificate on the card's deny-list (TlsIdentity.isRevoked). */
  certificateRevoked: 'ERR_TLS_CERTIFICATE_REVOKED',
  /** The identity for this ClientHello exists but may not serve (locked by the card's operator). */
  accessDenied: 'ERR_TLS_ACCESS_DENIED',
  certificateRequired: 'ERR_TLS_CERTIFICATE_REQUIRED',
  /** TLS 1.2 PSK suites: ClientKeyExchange names an identity findPsk does not know (RFC 4279 §2). */
  unknownPskIdentity: 'ERR_TLS_UNKNOWN_PSK_IDENTITY',
  /** API misuse (wrong state); never turned into an alert. */
  state: 'ERR_TLS_STATE',
  argument: 'ERR_TLS_ARGUMENT',
} as const;

export function tlsError(code: (typeof TlsErrorCode)[keyof typeof TlsErrorCode], message: string): SetlsError {
  return new SetlsError(code, message);
}

/** The alert description sent for an error raised while processing peer input. */
export function alertForError(err: unknown): number {
  const code = err instanceof SetlsError ? err.code : undefined;
  switch (code) {
    case 'ERR_DECODE': // ByteReader: short input or a block not consumed exactly
    case TlsErrorCode.decode:
    case TlsErrorCode.badRecord:
      return AlertDescription.decodeError;
    case TlsErrorCode.unexpectedMessage:
      return AlertDescription.unexpectedMessage;
    case TlsErrorCode.badRecordMac:
      return AlertDescription.badRecordMac;
    case TlsErrorCode.recordOverflow:
      return AlertDescription.recordOverflow;
    case TlsErrorCode.handshakeFailure:
      return AlertDescription.handshakeFailure;
    case TlsErrorCode.illegalParameter:
    case TlsErrorCode.badKeyShare:
      return AlertDescription.illegalParameter;
    case TlsErrorCode.protocolVersion:
      return AlertDescription.protocolVersion;
    case TlsErrorCode.inappropriateFallback:
      return AlertDescription.inappropriateFallback;
    case TlsErrorCode.decryptError:
      return AlertDescription.decryptError;
    case TlsErrorCode.missingExtension:
      return AlertDescription.missingExtension;
    case TlsErrorCode.unrecognizedName:
      return AlertDescription.unrecognizedName;
    case TlsErrorCode.noApplicationProtocol:
      return AlertDescription.noApplicationProtocol;
    case TlsErrorCode.badCertificate:
      return AlertDescription.badCertificate;
    case TlsErrorCode.unsupportedCertificate:
      return AlertDescription.unsupportedCertificate;
    case TlsErrorCode.certificateExpired:
      return AlertDescription.certificateExpired;
    case TlsErrorCode.unknownCa:
      return AlertDescription.unknownCa;
    case TlsErrorCode.certificateRevoked:
      return AlertDescription.certificateRevoked;
    case TlsErrorCode.accessDenied:
      return AlertDescription.accessDenied;
    case TlsErrorCode.certificateRequired:
      return AlertDescription.certificateRequired;
    case TlsErrorCode.unknownPskIdentity:
      return AlertDescription.unknownPskIdentity;
    default: // ERR_TLS_INTERNAL, sequence exhaustion, a throwing identity.sign(), anything unforeseen
      return AlertDescription.internalError;
  }
}
