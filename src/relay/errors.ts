/**
 * relay/errors: the one error class of the relay protocol, with stable ERR_RELAY_… codes and the
 * HTTP status the operator answers it with. imports bytes/.
 */
import { SetlsError } from '../bytes/index.js';

/** Stable codes (a code never changes meaning). */
export const RelayErrorCode = {
  /** A header is missing, repeated or not in its syntax. */
  header: 'ERR_RELAY_HEADER',
  /** X-Admin-Protocol is not setls-remote-admin/1. */
  protocol: 'ERR_RELAY_PROTOCOL',
  /** A body is not the JSON this message carries (type, keys, hex, counts, lengths). */
  body: 'ERR_RELAY_BODY',
  /** A body larger than the limit. */
  tooLarge: 'ERR_RELAY_TOO_LARGE',
  /** Content-Type is not application/json. */
  mediaType: 'ERR_RELAY_MEDIA_TYPE',
  /** No or unknown bearer token. */
  unauthorized: 'ERR_RELAY_UNAUTHORIZED',
  /** The token does not belong to the host in X-Admin-From, or the Next-URI to another host. */
  forbidden: 'ERR_RELAY_FORBIDDEN',
  /** No such path, or a Next-URI that is unknown (never issued, expired, operator restarted). */
  notFound: 'ERR_RELAY_NOT_FOUND',
  /** A Next-URI already used (single use). */
  gone: 'ERR_RELAY_GONE',
  /** A method other than POST. */
  method: 'ERR_RELAY_METHOD',
  /** The answers do not fit the script (more R-APDUs than C-APDUs, another card). */
  mismatch: 'ERR_RELAY_MISMATCH',
  /** The hub is closing. */
  unavailable: 'ERR_RELAY_UNAVAILABLE',
  /** runScript: no answer before the deadline. */
  timeout: 'ERR_RELAY_TIMEOUT',
  /** runScript: the agent restarted (or abandoned the dialog) while the script ran; restart the SCP03 session. */
  interrupted: 'ERR_RELAY_INTERRUPTED',
  /** runScript with `continue`: the channel of the previous script is no longer held. */
  sessionLost: 'ERR_RELAY_SESSION_LOST',
  /** runScript: too many scripts queued for the card. */
  queueFull: 'ERR_RELAY_QUEUE_FULL',
  /** runScript: bad arguments (UID, AID, C-APDUs, options). */
  argument: 'ERR_RELAY_ARGUMENT',
  /** The hub was closed while the script waited. */
  closed: 'ERR_RELAY_CLOSED',
} as const;
export type RelayErrorCode = (typeof RelayErrorCode)[keyof typeof RelayErrorCode];

const HTTP_STATUS: Partial<Record<RelayErrorCode, number>> = {
  ERR_RELAY_HEADER: 400,
  ERR_RELAY_PROTOCOL: 400,
  ERR_RELAY_BODY: 400,
  ERR_RELAY_MISMATCH: 400,
  ERR_RELAY_TOO_LARGE: 413,
  ERR_RELAY_MEDIA_TYPE: 415,
  ERR_RELAY_UNAUTHORIZED: 401,
  ERR_RELAY_FORBIDDEN: 403,
  ERR_RELAY_NOT_FOUND: 404,
  ERR_RELAY_GONE: 410,
  ERR_RELAY_METHOD: 405,
  ERR_RELAY_UNAVAILABLE: 503,
};

export class RelayError extends SetlsError {
  constructor(
    code: RelayErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'RelayError';
  }

  /** The HTTP status the operator answers this error with (500 for codes that are not HTTP errors). */
  get httpStatus(): number {
    return HTTP_STATUS[this.code as RelayErrorCode] ?? 500;
  }
}
