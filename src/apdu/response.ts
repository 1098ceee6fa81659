/**
 * ISO 7816-4 response APDUs: data followed by SW1 SW2. imports bytes/.
 */
import { SetlsError } from '../bytes/index.js';

export interface ResponseApdu {
  readonly data: Uint8Array;
  readonly sw: number;
}

export function encodeResponse(data: Uint8Array, sw: number): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  out[data.length] = (sw >> 8) & 0xff;
  out[data.length + 1] = sw & 0xff;
  return out;
}

export function parseResponse(b: Uint8Array): ResponseApdu {
  if (b.length < 2) {
    throw new SetlsError('ERR_APDU_RESPONSE', `response APDU of ${b.length} bytes has no status word`);
  }
  return { data: b.slice(0, b.length - 2), sw: (b[b.length - 2]! << 8) | b[b.length - 1]! };
}
