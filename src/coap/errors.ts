/**
 * CoAP errors: SetlsErrors with stable ERR_COAP_* codes. A decoding error never carries more than
 * a short description of the offending bytes. imports bytes/.
 */
import { SetlsError } from '../bytes/index.js';

export type CoapErrorCode =
  | 'ERR_COAP_TRUNCATED' // fewer bytes than the header, token, option or length field announced
  | 'ERR_COAP_VERSION' // UDP header version is not 1
  | 'ERR_COAP_TOKEN_LENGTH' // TKL 9..15 (reserved)
  | 'ERR_COAP_OPTION_DELTA' // delta nibble 15 without the payload marker, or option number > 65535
  | 'ERR_COAP_OPTION_LENGTH' // length nibble 15, or an option running past the message
  | 'ERR_COAP_PAYLOAD_MARKER' // payload marker 0xFF followed by no payload
  | 'ERR_COAP_EMPTY_MESSAGE' // code 0.00 carrying a token, options or payload (UDP)
  | 'ERR_COAP_TOO_LARGE' // beyond a size bound (message, option value, body)
  | 'ERR_COAP_OPTION_VALUE' // an option value outside its format/length (when encoding)
  | 'ERR_COAP_UNKNOWN_OPTION' // an option name the registry does not know (when encoding)
  | 'ERR_COAP_CODE' // a code or method outside its range
  | 'ERR_COAP_BLOCK' // a Block1/Block2 value out of range
  | 'ERR_COAP_TYPE'; // a message type or message ID out of range (UDP)

export class CoapError extends SetlsError {
  constructor(code: CoapErrorCode, message: string) {
    super(code, message);
    this.name = 'CoapError';
  }
}

export function coapError(code: CoapErrorCode, message: string): CoapError {
  return new CoapError(code, message);
}

export function isCoapError(e: unknown): e is CoapError {
  return e instanceof CoapError;
}
