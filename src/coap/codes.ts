/**
 * CoAP codes (RFC 7252 §12.1, RFC 8132, RFC 8323 §5): the byte c.dd = class << 5 | detail.
 * imports nothing of the project but errors.
 */
import { coapError } from './errors.js';

/** 'c.dd' → code byte. */
export function parseCode(s: string): number {
  const m = /^([0-7])\.(\d\d)$/.exec(s);
  if (!m) throw coapError('ERR_COAP_CODE', `code '${s}' is not of the form c.dd`);
  const detail = Number(m[2]);
  if (detail > 31) throw coapError('ERR_COAP_CODE', `code '${s}': detail above 31`);
  return (Number(m[1]) << 5) | detail;
}

/** code byte → 'c.dd'. */
export function codeString(code: number): string {
  return `${code >>> 5}.${String(code & 0x1f).padStart(2, '0')}`;
}

export const codeClass = (code: number): number => code >>> 5;

export const EMPTY = 0x00;

export const METHODS = {
  GET: 0x01,
  POST: 0x02,
  PUT: 0x03,
  DELETE: 0x04,
  FETCH: 0x05,
  PATCH: 0x06,
  iPATCH: 0x07,
} as const;
export type CoapMethod = keyof typeof METHODS;

export function methodName(code: number): CoapMethod | undefined {
  return (Object.keys(METHODS) as CoapMethod[]).find((k) => METHODS[k] === code);
}

export const isRequest = (code: number): boolean => code >= 0x01 && code <= 0x1f;
export const isResponse = (code: number): boolean => code >= 0x40 && code <= 0xbf;
export const isSignal = (code: number): boolean => code >= 0xe0;

/** Signalling codes (RFC 8323 §5). */
export const SIGNAL = {
  CSM: 0xe1, // 7.01
  PING: 0xe2, // 7.02
  PONG: 0xe3, // 7.03
  RELEASE: 0xe4, // 7.04
  ABORT: 0xe5, // 7.05
} as const;

/** Response codes by name (RFC 7252 §5.9, RFC 7959, RFC 8132). */
export const RESPONSE = {
  Created: '2.01',
  Deleted: '2.02',
  Valid: '2.03',
  Changed: '2.04',
  Content: '2.05',
  Continue: '2.31',
  BadRequest: '4.00',
  Unauthorized: '4.01',
  BadOption: '4.02',
  Forbidden: '4.03',
  NotFound: '4.04',
  MethodNotAllowed: '4.05',
  NotAcceptable: '4.06',
  RequestEntityIncomplete: '4.08',
  Conflict: '4.09',
  PreconditionFailed: '4.12',
  RequestEntityTooLarge: '4.13',
  UnsupportedContentFormat: '4.15',
  UnprocessableEntity: '4.22',
  InternalServerError: '5.00',
  NotImplemented: '5.01',
  BadGateway: '5.02',
  ServiceUnavailable: '5.03',
  GatewayTimeout: '5.04',
  ProxyingNotSupported: '5.05',
} as const;
