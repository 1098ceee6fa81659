/**
 * RFC 8323 §5 signalling messages (CSM 7.01, Ping 7.02, Pong 7.03, Release 7.04, Abort 7.05) and
 * the option checks shared by requests and signals (unknown or malformed critical options).
 * imports nothing of the project but coap/.
 */
import { SIGNAL } from './codes.js';
import type { CoapMessage } from './message.js';
import { decodeOptionValue, encodeUint, isCritical, optionDef, validOptionValue, type CoapOption, type OptionValue } from './options.js';

const EMPTY = new Uint8Array(0);
const enc = new TextEncoder();

/** Base value of Max-Message-Size before the peer's CSM (RFC 8323 §5.3.1). */
export const DEFAULT_MAX_MESSAGE_SIZE = 1152;

export interface CsmInfo {
  readonly maxMessageSize?: number;
  readonly blockWiseTransfer: boolean;
}

export function csmMessage(o: { maxMessageSize?: number; blockWiseTransfer?: boolean }): CoapMessage {
  const options: CoapOption[] = [];
  if (o.maxMessageSize !== undefined) options.push({ number: 2, value: encodeUint(o.maxMessageSize) });
  if (o.blockWiseTransfer) options.push({ number: 4, value: EMPTY });
  return { code: SIGNAL.CSM, token: EMPTY, options, payload: EMPTY };
}

export function pingMessage(token: Uint8Array = EMPTY, custody = false): CoapMessage {
  return { code: SIGNAL.PING, token, options: custody ? [{ number: 2, value: EMPTY }] : [], payload: EMPTY };
}

export function pongMessage(token: Uint8Array, custody = false): CoapMessage {
  return { code: SIGNAL.PONG, token, options: custody ? [{ number: 2, value: EMPTY }] : [], payload: EMPTY };
}

export function releaseMessage(o: { alternativeAddress?: string; holdOffS?: number; diagnostic?: string } = {}): CoapMessage {
  const options: CoapOption[] = [];
  if (o.alternativeAddress) options.push({ number: 2, value: enc.encode(o.alternativeAddress) });
  if (o.holdOffS !== undefined) options.push({ number: 4, value: encodeUint(o.holdOffS) });
  return { code: SIGNAL.RELEASE, token: EMPTY, options, payload: o.diagnostic ? enc.encode(o.diagnostic) : EMPTY };
}

export function abortMessage(diagnostic: string, badCsmOption?: number): CoapMessage {
  return {
    code: SIGNAL.ABORT,
    token: EMPTY,
    options: badCsmOption !== undefined ? [{ number: 2, value: encodeUint(badCsmOption) }] : [],
    payload: enc.encode(diagnostic),
  };
}

export interface OptionCheck {
  /** The first critical option that is unknown for this code, repeated when it may not be, or malformed. */
  readonly badCritical?: number;
  readonly reason?: string;
  /** Known, well-formed options decoded (malformed or unknown elective ones are left out, RFC 7252 §5.4.1). */
  readonly decoded: readonly { readonly number: number; readonly name: string; readonly value: OptionValue }[];
}

/**
 * RFC 7252 §5.4.1/§5.4.3/§5.4.5: unknown or malformed critical options make the message bad
 * (4.02 for a request, Abort for a signal); unknown or malformed elective ones are ignored; a
 * non-repeatable option occurring twice is treated as an unrecognised option after the first.
 */
export function checkOptions(m: CoapMessage): OptionCheck {
  const decoded: { number: number; name: string; value: OptionValue }[] = [];
  let prev = -1;
  for (const o of m.options) {
    const d = optionDef(o.number, m.code);
    const repeat = o.number === prev;
    prev = o.number;
    if (!d) {
      if (isCritical(o.number)) return { badCritical: o.number, reason: `unknown critical option ${o.number}`, decoded };
      continue;
    }
    if (repeat && !d.repeatable) {
      if (isCritical(o.number)) return { badCritical: o.number, reason: `option ${d.name} (${o.number}) repeated`, decoded };
      continue;
    }
    if (!validOptionValue(d, o.value)) {
      if (isCritical(o.number)) return { badCritical: o.number, reason: `option ${d.name} (${o.number}): ${o.value.length} bytes outside ${d.minLength}..${d.maxLength} or bad format`, decoded };
      continue;
    }
    decoded.push({ number: o.number, name: d.name, value: decodeOptionValue(d, o.value) });
  }
  return { decoded };
}

export function parseCsm(m: CoapMessage): CsmInfo {
  let maxMessageSize: number | undefined;
  let bert = false;
  for (const o of checkOptions(m).decoded) {
    if (o.number === 2) maxMessageSize = o.value as number;
    if (o.number === 4) bert = true;
  }
  return { ...(maxMessageSize !== undefined ? { maxMessageSize } : {}), blockWiseTransfer: bert };
}
