/**
 * CoAP options (RFC 7252 §5.4, §5.10; RFC 7641, 7959, 7967, 8323 §5): the registry with each
 * option's format and length bounds, value encoding/decoding, criticality and the Block option.
 * imports nothing of the project but errors.
 */
import { coapError } from './errors.js';

export type OptionFormat = 'empty' | 'opaque' | 'uint' | 'string';
/** A decoded option value: uint → number, string → string, opaque → Uint8Array, empty → true. */
export type OptionValue = number | string | Uint8Array | true;

export interface OptionDef {
  readonly number: number;
  readonly name: string;
  readonly format: OptionFormat;
  readonly minLength: number;
  readonly maxLength: number;
  readonly repeatable: boolean;
}

/** A raw option as on the wire. */
export interface CoapOption {
  readonly number: number;
  readonly value: Uint8Array;
}

const def = (number: number, name: string, format: OptionFormat, minLength: number, maxLength: number, repeatable = false): OptionDef => ({
  number,
  name,
  format,
  minLength,
  maxLength,
  repeatable,
});

/** Options of requests and responses (codes 0.xx to 5.xx). */
export const OPTIONS: readonly OptionDef[] = [
  def(1, 'If-Match', 'opaque', 0, 8, true),
  def(3, 'Uri-Host', 'string', 1, 255),
  def(4, 'ETag', 'opaque', 1, 8, true),
  def(5, 'If-None-Match', 'empty', 0, 0),
  def(6, 'Observe', 'uint', 0, 3),
  def(7, 'Uri-Port', 'uint', 0, 2),
  def(8, 'Location-Path', 'string', 0, 255, true),
  def(11, 'Uri-Path', 'string', 0, 255, true),
  def(12, 'Content-Format', 'uint', 0, 2),
  def(14, 'Max-Age', 'uint', 0, 4),
  def(15, 'Uri-Query', 'string', 0, 255, true),
  def(17, 'Accept', 'uint', 0, 2),
  def(20, 'Location-Query', 'string', 0, 255, true),
  def(23, 'Block2', 'uint', 0, 3),
  def(27, 'Block1', 'uint', 0, 3),
  def(28, 'Size2', 'uint', 0, 4),
  def(35, 'Proxy-Uri', 'string', 1, 1034),
  def(39, 'Proxy-Scheme', 'string', 1, 255),
  def(60, 'Size1', 'uint', 0, 4),
  def(258, 'No-Response', 'uint', 0, 1),
];

/** Signalling options (RFC 8323 §5), by signalling code. */
export const SIGNAL_OPTIONS: Readonly<Record<number, readonly OptionDef[]>> = {
  0xe1: [def(2, 'Max-Message-Size', 'uint', 0, 4), def(4, 'Block-Wise-Transfer', 'empty', 0, 0)],
  0xe2: [def(2, 'Custody', 'empty', 0, 0)],
  0xe3: [def(2, 'Custody', 'empty', 0, 0)],
  0xe4: [def(2, 'Alternative-Address', 'string', 1, 255, true), def(4, 'Hold-Off', 'uint', 0, 3)],
  0xe5: [def(2, 'Bad-CSM-Option', 'uint', 0, 2)],
};

const BY_NUMBER = new Map(OPTIONS.map((d) => [d.number, d]));
const BY_NAME = new Map(OPTIONS.map((d) => [d.name.toLowerCase(), d]));

export const OPTION = Object.fromEntries(OPTIONS.map((d) => [d.name.replace(/-/g, ''), d.number])) as {
  readonly IfMatch: 1;
  readonly UriHost: 3;
  readonly ETag: 4;
  readonly IfNoneMatch: 5;
  readonly Observe: 6;
  readonly UriPort: 7;
  readonly LocationPath: 8;
  readonly UriPath: 11;
  readonly ContentFormat: 12;
  readonly MaxAge: 14;
  readonly UriQuery: 15;
  readonly Accept: 17;
  readonly LocationQuery: 20;
  readonly Block2: 23;
  readonly Block1: 27;
  readonly Size2: 28;
  readonly ProxyUri: 35;
  readonly ProxyScheme: 39;
  readonly Size1: 60;
  readonly NoResponse: 258;
};

/** The definition of option `number` for messages with `code` (signalling codes have their own). */
export function optionDef(number: number, code = 0x01): OptionDef | undefined {
  if (code >= 0xe0) return SIGNAL_OPTIONS[code]?.find((d) => d.number === number);
  return BY_NUMBER.get(number);
}

export function optionByName(name: string | number, code = 0x01): OptionDef {
  if (typeof name === 'number') {
    const d = optionDef(name, code);
    if (d) return d;
    if (!Number.isInteger(name) || name < 0 || name > 0xffff) throw coapError('ERR_COAP_UNKNOWN_OPTION', `option number ${name} out of range`);
    return def(name, `Option-${name}`, 'opaque', 0, 65535 + 269, true);
  }
  const d = code >= 0xe0 ? SIGNAL_OPTIONS[code]?.find((x) => x.name.toLowerCase() === name.toLowerCase()) : BY_NAME.get(name.toLowerCase());
  if (!d) throw coapError('ERR_COAP_UNKNOWN_OPTION', `unknown option '${name}'`);
  return d;
}

/** Critical options have an odd number (RFC 7252 §5.4.6). */
export const isCritical = (n: number): boolean => (n & 1) === 1;
/** Unsafe-to-forward: bit 1 (RFC 7252 §5.4.6). */
export const isUnsafe = (n: number): boolean => (n & 2) === 2;
/** NoCacheKey: bits 2..4 all ones (RFC 7252 §5.4.6). */
export const isNoCacheKey = (n: number): boolean => (n & 0x1e) === 0x1c;

export function encodeUint(v: number): Uint8Array {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw coapError('ERR_COAP_OPTION_VALUE', `uint option value ${v} outside 0..2^32-1`);
  if (v === 0) return new Uint8Array(0);
  const out: number[] = [];
  for (let x = v; x > 0; x = Math.floor(x / 256)) out.unshift(x % 256);
  return Uint8Array.from(out);
}

/** Big-endian unsigned (leading zeros allowed on receipt, RFC 7252 §3.2). At most 4 bytes. */
export function decodeUint(b: Uint8Array): number {
  if (b.length > 4) throw coapError('ERR_COAP_OPTION_VALUE', `uint option of ${b.length} bytes (at most 4)`);
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const enc = new TextEncoder();

/** Whether `value` respects the option's length bounds and format (invalid → treated as unrecognised). */
export function validOptionValue(d: OptionDef, value: Uint8Array): boolean {
  if (value.length < d.minLength || value.length > d.maxLength) return false;
  if (d.format === 'string') {
    try {
      utf8.decode(value);
    } catch {
      return false;
    }
  }
  return true;
}

export function decodeOptionValue(d: OptionDef, value: Uint8Array): OptionValue {
  switch (d.format) {
    case 'empty':
      return true;
    case 'uint':
      return decodeUint(value);
    case 'string':
      try {
        return utf8.decode(value);
      } catch {
        throw coapError('ERR_COAP_OPTION_VALUE', `option ${d.name} is not valid UTF-8`);
      }
    default:
      return Uint8Array.from(value);
  }
}

export function encodeOptionValue(d: OptionDef, v: OptionValue | Uint8Array): Uint8Array {
  let out: Uint8Array;
  if (v instanceof Uint8Array) out = Uint8Array.from(v);
  else if (d.format === 'empty') {
    if (v !== true && v !== '' && v !== 0) throw coapError('ERR_COAP_OPTION_VALUE', `option ${d.name} is empty; give true`);
    out = new Uint8Array(0);
  } else if (d.format === 'uint') {
    if (typeof v !== 'number') throw coapError('ERR_COAP_OPTION_VALUE', `option ${d.name} takes a number`);
    out = encodeUint(v);
  } else if (d.format === 'string') {
    if (typeof v !== 'string') throw coapError('ERR_COAP_OPTION_VALUE', `option ${d.name} takes a string`);
    out = enc.encode(v);
  } else {
    if (typeof v === 'string') out = enc.encode(v);
    else throw coapError('ERR_COAP_OPTION_VALUE', `option ${d.name} takes bytes`);
  }
  if (out.length < d.minLength || out.length > d.maxLength) {
    throw coapError('ERR_COAP_OPTION_VALUE', `option ${d.name}: ${out.length} bytes outside ${d.minLength}..${d.maxLength}`);
  }
  return out;
}

/** Makes a raw option from a name (or number) and a value in its format. */
export function option(name: string | number, value: OptionValue | Uint8Array, code = 0x01): CoapOption {
  const d = optionByName(name, code);
  return { number: d.number, value: encodeOptionValue(d, value) };
}

// ---- Block options (RFC 7959 §2.2; BERT SZX 7, RFC 8323 §6)

export interface BlockValue {
  /** Block number (0..2^20-1). */
  readonly num: number;
  /** More blocks follow. */
  readonly more: boolean;
  /** Size exponent: block size 2^(szx+4); 7 = BERT (1024-byte units, reliable transports only). */
  readonly szx: number;
}

export const blockSize = (szx: number): number => (szx === 7 ? 1024 : 1 << (szx + 4));

export function encodeBlock(b: BlockValue): Uint8Array {
  if (!Number.isInteger(b.num) || b.num < 0 || b.num > 0xfffff) throw coapError('ERR_COAP_BLOCK', `block number ${b.num} outside 0..2^20-1`);
  if (!Number.isInteger(b.szx) || b.szx < 0 || b.szx > 7) throw coapError('ERR_COAP_BLOCK', `SZX ${b.szx} outside 0..7`);
  return encodeUint(b.num * 16 + (b.more ? 8 : 0) + b.szx);
}

export function decodeBlock(value: Uint8Array | number): BlockValue {
  let v: number;
  if (typeof value === 'number') v = value;
  else {
    if (value.length > 3) throw coapError('ERR_COAP_BLOCK', `block option of ${value.length} bytes (at most 3)`);
    v = decodeUint(value);
  }
  if (!Number.isInteger(v) || v < 0 || v > 0xffffff) throw coapError('ERR_COAP_BLOCK', `block option value ${v} out of range`);
  return { num: v >>> 4, more: (v & 8) !== 0, szx: v & 7 };
}

// ---- Content-Formats (RFC 7252 §12.3 and the IANA registry)

export const CONTENT_FORMAT: Readonly<Record<string, number>> = {
  'text/plain;charset=utf-8': 0,
  'text/plain': 0,
  'application/link-format': 40,
  'application/xml': 41,
  'application/octet-stream': 42,
  'application/exi': 47,
  'application/json': 50,
  'application/json-patch+json': 51,
  'application/merge-patch+json': 52,
  'application/cbor': 60,
  'application/cwt': 61,
  'application/senml+json': 110,
  'application/senml+cbor': 112,
};

export function contentFormatNumber(v: string | number): number {
  if (typeof v === 'number') return v;
  const n = CONTENT_FORMAT[v.replace(/\s+/g, '').toLowerCase()];
  if (n === undefined) throw coapError('ERR_COAP_OPTION_VALUE', `unknown content format '${v}'`);
  return n;
}
